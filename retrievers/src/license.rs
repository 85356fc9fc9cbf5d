//! What a licence permits, and the licence policies a user who publishes can require.
//!
//! Engines report licences in their own words: Openverse sends codes (`by-nc-sa`,
//! `cc0`, `pdm`, `sampling+`) with a separate `license_version`; Wikimedia Commons
//! sends `cc-by-sa-4.0`, `pd` or a label such as `CC BY-SA 4.0` or `Public domain`; a
//! local asset library says whatever its sidecar says. [`License::permissions`] reads
//! any of these (or, failing that, the licence's `creativecommons.org` URL) into
//! [`Permissions`], and a [`LicensePolicy`] decides from those. A licence that cannot
//! be read is unknown, and an unknown licence never passes a restrictive policy.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::License;

/// What a licence lets a user do with the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    /// Free of copyright: a public-domain mark or dedication (CC0 included).
    pub public_domain: bool,
    /// Commercial use of the work is allowed (no `NC` term).
    pub commercial: bool,
    /// Adaptations (derivative works) are allowed (no `ND` term).
    pub derivatives: bool,
    /// Adaptations must be shared under the same licence (`SA`, GFDL, Free Art).
    pub share_alike: bool,
    /// The creator must be credited (`BY`).
    pub attribution: bool,
}

impl Permissions {
    const PUBLIC_DOMAIN: Permissions = Permissions {
        public_domain: true,
        commercial: true,
        derivatives: true,
        share_alike: false,
        attribution: false,
    };
    const COPYLEFT: Permissions = Permissions {
        public_domain: false,
        commercial: true,
        derivatives: true,
        share_alike: true,
        attribution: true,
    };
    const RESERVED: Permissions = Permissions {
        public_domain: false,
        commercial: false,
        derivatives: false,
        share_alike: false,
        attribution: true,
    };
}

impl License {
    /// What this licence permits, read from its code (and version), else from its URL;
    /// `None` when neither is a licence this crate knows.
    ///
    /// Known: every Creative Commons licence (BY, BY-SA, BY-NC, BY-NC-SA, BY-ND,
    /// BY-NC-ND of any version or port, the 1.0 ones without BY, and the retired
    /// Sampling licences, taken as not allowing commercial use of the work itself),
    /// CC0, the Public Domain Mark and other public-domain statements (`pd`, `PD-old`,
    /// `Public domain`), GFDL and the Free Art License (copyleft), and "all rights
    /// reserved".
    pub fn permissions(&self) -> Option<Permissions> {
        let mut code = self.code.clone();
        if let Some(v) = self.version.as_deref().filter(|v| !v.trim().is_empty()) {
            code.push('-');
            code.push_str(v);
        }
        parse_code(&code).or_else(|| self.url.as_ref().and_then(parse_url))
    }
}

/// Which licences a selection may use.
///
/// For images that will be published, pick the policy that matches the use:
/// [`LicensePolicy::CommercialAndDerivatives`] for a commercial product whose
/// generated image is an adaptation of the reference (the safe choice), or
/// [`LicensePolicy::PublicDomainOnly`] to owe no attribution at all. A licence that is
/// missing or unknown passes only [`LicensePolicy::Any`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum LicensePolicy {
    /// Any licence, or none given (default).
    #[default]
    Any,
    /// Commercial use allowed: drops NC (and unknown) licences; keeps ND ones.
    CommercialUse,
    /// Commercial use and derivatives allowed: CC BY, CC BY-SA, CC0, public domain,
    /// GFDL; drops NC, ND, Sampling and unknown licences.
    CommercialAndDerivatives,
    /// Public domain only: CC0, the Public Domain Mark and other public-domain statements.
    PublicDomainOnly,
}

impl LicensePolicy {
    /// Every policy, from the least to the most restrictive.
    pub const ALL: [LicensePolicy; 4] = [
        LicensePolicy::Any,
        LicensePolicy::CommercialUse,
        LicensePolicy::CommercialAndDerivatives,
        LicensePolicy::PublicDomainOnly,
    ];

    /// True when an image under `license` (`None`: the engine gave none) may be used.
    pub fn permits(&self, license: Option<&License>) -> bool {
        self.refusal(license).is_none()
    }

    /// Why an image under `license` may not be used, or `None` when it may.
    pub fn refusal(&self, license: Option<&License>) -> Option<String> {
        if *self == LicensePolicy::Any {
            return None;
        }
        let Some(license) = license else {
            return Some(format!("no licence given (policy: {self})"));
        };
        let named = describe(license);
        let Some(p) = license.permissions() else {
            return Some(format!(
                "licence `{named}` is not one iat2i can read (policy: {self})"
            ));
        };
        let lacks = match self {
            LicensePolicy::Any => None,
            LicensePolicy::CommercialUse => (!p.commercial).then_some("commercial use"),
            LicensePolicy::CommercialAndDerivatives => {
                if !p.commercial {
                    Some("commercial use")
                } else if !p.derivatives {
                    Some("derivatives")
                } else {
                    None
                }
            }
            LicensePolicy::PublicDomainOnly => (!p.public_domain).then_some("public domain"),
        };
        lacks.map(|what| match what {
            "public domain" => format!("licence `{named}` is not public domain (policy: {self})"),
            _ => format!("licence `{named}` does not allow {what} (policy: {self})"),
        })
    }

    /// The name used on command lines and in configuration files.
    pub fn name(&self) -> &'static str {
        match self {
            LicensePolicy::Any => "any",
            LicensePolicy::CommercialUse => "commercial-use",
            LicensePolicy::CommercialAndDerivatives => "commercial-and-derivatives",
            LicensePolicy::PublicDomainOnly => "public-domain-only",
        }
    }
}

impl fmt::Display for LicensePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A licence policy name that is not one of [`LicensePolicy::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown licence policy `{0}`: use any, commercial-use, commercial-and-derivatives or public-domain-only"
)]
pub struct UnknownLicensePolicy(pub String);

impl FromStr for LicensePolicy {
    type Err = UnknownLicensePolicy;

    /// The [`LicensePolicy::name`]s, plus the short forms `commercial`,
    /// `commercial-derivatives` and `public-domain`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match normalise(s).as_str() {
            "any" => Ok(LicensePolicy::Any),
            "commercial" | "commercial-use" => Ok(LicensePolicy::CommercialUse),
            "commercial-derivatives" | "commercial-and-derivatives" => {
                Ok(LicensePolicy::CommercialAndDerivatives)
            }
            "public-domain" | "public-domain-only" | "pd" => Ok(LicensePolicy::PublicDomainOnly),
            _ => Err(UnknownLicensePolicy(s.to_string())),
        }
    }
}

fn describe(l: &License) -> String {
    match l.version.as_deref().filter(|v| !v.trim().is_empty()) {
        Some(v) => format!("{} {v}", l.code),
        None => l.code.clone(),
    }
}

/// Lower case, words joined by single `-`.
fn normalise(s: &str) -> String {
    s.trim()
        .to_lowercase()
        .split(|c: char| c.is_whitespace() || c == '-' || c == '_' || c == '/')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// The permissions of a licence named by `raw` (any engine's spelling, version included).
pub(crate) fn parse_code(raw: &str) -> Option<Permissions> {
    let code = normalise(raw);
    let words: Vec<&str> = code.split('-').filter(|w| !w.is_empty()).collect();
    let first = *words.first()?;
    if is_public_domain(&code, &words) {
        return Some(Permissions::PUBLIC_DOMAIN);
    }
    match first {
        "gfdl" | "fal" => return Some(Permissions::COPYLEFT),
        _ if code.starts_with("free-art") || code.starts_with("art-libre") => {
            return Some(Permissions::COPYLEFT);
        }
        _ if code.starts_with("all-rights-reserved") => {
            return Some(Permissions::RESERVED);
        }
        _ => {}
    }
    let rest: &[&str] = match first {
        "cc" => words.get(1..)?,
        "creative" if words.get(1) == Some(&"commons") => words.get(2..)?,
        _ => &words,
    };
    creative_commons(rest, first == "cc" || first == "creative")
}

/// `pd`, `pd-old-70`, `pdm`, `public domain`, `cc0`, `cc-zero`, `publicdomain-zero`.
fn is_public_domain(code: &str, words: &[&str]) -> bool {
    matches!(
        words.first().copied(),
        Some("pd" | "pdm" | "cc0" | "publicdomain")
    ) || code.starts_with("public-domain")
        || code.starts_with("cc-zero")
        || code.starts_with("cc-pdm")
        || code.starts_with("cc-public-domain")
}

/// The elements (BY, SA, NC, ND, Sampling) of a Creative Commons licence, up to its
/// version or port; `None` when `words` do not name one.
fn creative_commons(words: &[&str], said_cc: bool) -> Option<Permissions> {
    let (mut by, mut sa, mut nc, mut nd) = (false, false, false, false);
    let mut elements = 0;
    for w in words {
        match *w {
            "by" | "attribution" => by = true,
            "sa" | "sharealike" => sa = true,
            "nc" | "noncommercial" => nc = true,
            "nd" | "noderivatives" | "noderivs" => nd = true,
            "sampling+" | "sampling-plus" | "samplingplus" | "sampling" => {
                // The retired Sampling licences allow transforming the work but not
                // sharing it as is for commercial purposes.
                return Some(Permissions {
                    public_domain: false,
                    commercial: false,
                    derivatives: true,
                    share_alike: false,
                    attribution: true,
                });
            }
            _ => break,
        }
        elements += 1;
    }
    // Without BY (the 1.0 licences) the words only name a CC licence after a `cc`.
    let named = elements > 0 && (by || said_cc);
    if !named || (sa && nd) {
        return None;
    }
    Some(Permissions {
        public_domain: false,
        commercial: !nc,
        derivatives: !nd,
        share_alike: sa,
        attribution: by,
    })
}

/// `creativecommons.org/licenses/by-nc/4.0/`, `/publicdomain/zero/1.0/`, `/publicdomain/mark/1.0/`.
pub(crate) fn parse_url(url: &Url) -> Option<Permissions> {
    let host = url.host_str()?.trim_end_matches('.').to_ascii_lowercase();
    if host != "creativecommons.org" && !host.ends_with(".creativecommons.org") {
        return None;
    }
    let mut segs = url.path_segments()?.filter(|s| !s.is_empty());
    match segs.next()? {
        "publicdomain" => Some(Permissions::PUBLIC_DOMAIN),
        "licenses" => {
            let elements = segs.next()?;
            creative_commons(&normalise(elements).split('-').collect::<Vec<_>>(), true)
        }
        _ => None,
    }
}
