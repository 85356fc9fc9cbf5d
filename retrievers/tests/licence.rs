//! Licence permissions and policies: every Creative Commons variant, CC0, public-domain
//! marks, and the licence values Wikimedia Commons and Openverse really send.

mod common;

use common::{base, found, http, serve, serving};
use iat2i_retrievers::engines::{Openverse, WikimediaCommons};
use iat2i_retrievers::{License, LicensePolicy, Permissions};
use url::Url;

use LicensePolicy::{Any, CommercialAndDerivatives, CommercialUse, PublicDomainOnly};

fn lic(code: &str, version: Option<&str>, url: Option<&str>) -> License {
    License {
        code: code.to_string(),
        version: version.map(String::from),
        url: url.map(|u| Url::parse(u).unwrap()),
    }
}

/// (commercial, derivatives, share-alike, public domain)
fn terms(p: Permissions) -> (bool, bool, bool, bool) {
    (p.commercial, p.derivatives, p.share_alike, p.public_domain)
}

fn allowed_by(l: Option<&License>) -> Vec<LicensePolicy> {
    LicensePolicy::ALL
        .into_iter()
        .filter(|p| p.permits(l))
        .collect()
}

const BY: (bool, bool, bool, bool) = (true, true, false, false);
const BY_SA: (bool, bool, bool, bool) = (true, true, true, false);
const BY_NC: (bool, bool, bool, bool) = (false, true, false, false);
const BY_NC_SA: (bool, bool, bool, bool) = (false, true, true, false);
const BY_ND: (bool, bool, bool, bool) = (true, false, false, false);
const BY_NC_ND: (bool, bool, bool, bool) = (false, false, false, false);
const PD: (bool, bool, bool, bool) = (true, true, false, true);

#[test]
fn every_creative_commons_variant_in_every_spelling() {
    let variants = [
        ("by", BY),
        ("by-sa", BY_SA),
        ("by-nc", BY_NC),
        ("by-nc-sa", BY_NC_SA),
        ("by-nd", BY_ND),
        ("by-nc-nd", BY_NC_ND),
        // CC 2.0 and earlier also wrote the elements in this order.
        ("by-nd-nc", BY_NC_ND),
    ];
    for (elements, want) in variants {
        let upper = elements.to_uppercase();
        for version in ["1.0", "2.0", "2.5", "3.0", "4.0"] {
            let spellings = [
                // Openverse: the code, the version apart.
                lic(elements, Some(version), None),
                // Wikimedia's `License` template code, version split off or not.
                lic(&format!("cc-{elements}"), Some(version), None),
                lic(&format!("cc-{elements}-{version}"), None, None),
                lic(&format!("cc-{elements}-{version}-de"), None, None),
                // Wikimedia's `LicenseShortName` label.
                lic(&format!("CC {upper} {version}"), None, None),
                lic(&format!("CC {upper} {version} IGO"), None, None),
                // Only the deed URL is readable.
                lic(
                    "x-unknown",
                    None,
                    Some(&format!(
                        "https://creativecommons.org/licenses/{elements}/{version}/"
                    )),
                ),
            ];
            for l in &spellings {
                let p = l.permissions().unwrap_or_else(|| panic!("{l:?} unread"));
                assert_eq!(terms(p), want, "{l:?}");
                assert!(p.attribution, "{l:?}");
            }
        }
    }
    // The long names of the deeds.
    let long = [
        ("Attribution 4.0 International", BY),
        ("Attribution-ShareAlike 4.0 International", BY_SA),
        ("Attribution-NonCommercial 4.0 International", BY_NC),
        (
            "Attribution-NonCommercial-ShareAlike 3.0 Unported",
            BY_NC_SA,
        ),
        ("Attribution-NoDerivs 3.0 Unported", BY_ND),
        (
            "Attribution-NonCommercial-NoDerivatives 4.0 International",
            BY_NC_ND,
        ),
    ];
    for (name, want) in long {
        assert_eq!(
            terms(lic(name, None, None).permissions().unwrap()),
            want,
            "{name}"
        );
    }
    // CC 1.0 licences without BY, named as CC.
    let p = lic("cc-nc-sa-1.0", None, None).permissions().unwrap();
    assert_eq!((terms(p), p.attribution), (BY_NC_SA, false));
}

#[test]
fn public_domain_marks_cc0_and_copyleft() {
    for l in [
        lic("cc0", Some("1.0"), None),
        lic("CC0", None, None),
        lic("CC0 1.0 Universal", None, None),
        lic("cc-zero", None, None),
        lic("pdm", Some("1.0"), None),
        lic("pd", None, None),
        lic("Public domain", None, None),
        lic("public-domain", None, None),
        lic("PD-US", None, None),
        lic("PD-old-70", None, None),
        lic(
            "x",
            None,
            Some("https://creativecommons.org/publicdomain/zero/1.0/"),
        ),
        lic(
            "x",
            None,
            Some("https://creativecommons.org/publicdomain/mark/1.0/"),
        ),
    ] {
        let p = l.permissions().unwrap_or_else(|| panic!("{l:?} unread"));
        assert_eq!(terms(p), PD, "{l:?}");
        assert!(!p.attribution, "{l:?}");
        assert_eq!(allowed_by(Some(&l)), LicensePolicy::ALL, "{l:?}");
    }
    for l in [lic("GFDL", None, None), lic("gfdl-1.2", None, None)] {
        assert_eq!(terms(l.permissions().unwrap()), BY_SA, "{l:?}");
    }
}

#[test]
fn each_policy_admits_exactly_what_it_says() {
    let cases: [(&str, &[LicensePolicy]); 11] = [
        ("by", &[Any, CommercialUse, CommercialAndDerivatives]),
        ("by-sa", &[Any, CommercialUse, CommercialAndDerivatives]),
        ("by-nd", &[Any, CommercialUse]),
        ("by-nc", &[Any]),
        ("by-nc-sa", &[Any]),
        ("by-nc-nd", &[Any]),
        ("sampling+", &[Any]),
        ("nc-sampling+", &[Any]),
        ("cc0", &LicensePolicy::ALL),
        ("pdm", &LicensePolicy::ALL),
        ("all rights reserved", &[Any]),
    ];
    for (code, want) in cases {
        let l = lic(code, Some("1.0"), None);
        assert_eq!(allowed_by(Some(&l)), want, "{code}");
    }
}

#[test]
fn unknown_or_missing_licences_pass_only_any() {
    for code in [
        "proprietary",
        "Copyrighted free use",
        "",
        "cc",
        "by-sa-nd",
        "nc",
        "commercial",
        "see source",
    ] {
        let l = lic(code, None, Some("https://example.org/licence"));
        assert_eq!(l.permissions(), None, "{code}");
        assert_eq!(allowed_by(Some(&l)), [Any], "{code}");
        let why = CommercialUse.refusal(Some(&l)).unwrap();
        assert!(why.contains("not one iat2i can read"), "{why}");
    }
    assert_eq!(allowed_by(None), [Any]);
    assert!(
        CommercialAndDerivatives
            .refusal(None)
            .unwrap()
            .contains("no licence given")
    );
    let nd = lic("by-nc-nd", Some("4.0"), None);
    let why = CommercialUse.refusal(Some(&nd)).unwrap();
    assert_eq!(
        why,
        "licence `by-nc-nd 4.0` does not allow commercial use (policy: commercial-use)"
    );
}

#[test]
fn policy_names_round_trip() {
    for p in LicensePolicy::ALL {
        assert_eq!(p.name().parse::<LicensePolicy>().unwrap(), p);
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, format!("\"{}\"", p.name()));
    }
    assert_eq!(
        "commercial".parse::<LicensePolicy>().unwrap(),
        CommercialUse
    );
    assert_eq!(
        "public-domain".parse::<LicensePolicy>().unwrap(),
        PublicDomainOnly
    );
    let err = "open".parse::<LicensePolicy>().unwrap_err();
    assert!(
        err.to_string().contains("commercial-and-derivatives"),
        "{err}"
    );
    assert_eq!(LicensePolicy::default(), Any);
}

/// The licence of each result `engine` found, by title, and the policies allowing it.
fn by_title(found: &[iat2i_retrievers::Candidate]) -> Vec<(String, Vec<LicensePolicy>)> {
    found
        .iter()
        .map(|c| {
            (
                c.title.clone().unwrap_or_default(),
                allowed_by(c.license.as_ref()),
            )
        })
        .collect()
}

#[tokio::test]
async fn openverse_licence_codes_as_openverse_sends_them() {
    let server = serving("/v1/images/", serve("openverse/licences.json")).await;
    let engine = Openverse::new(http()).with_base_url(base(&server));
    let got = by_title(&found(&engine, "frog").await);
    let commercial = vec![Any, CommercialUse, CommercialAndDerivatives];
    let want: Vec<(String, Vec<LicensePolicy>)> = vec![
        ("Frog under by 4.0".into(), commercial.clone()),
        ("Frog under by-sa 4.0".into(), commercial),
        ("Frog under by-nc 2.0".into(), vec![Any]),
        ("Frog under by-nd 3.0".into(), vec![Any, CommercialUse]),
        ("Frog under by-nc-sa 2.0".into(), vec![Any]),
        ("Frog under by-nc-nd 4.0".into(), vec![Any]),
        ("Frog under cc0 1.0".into(), LicensePolicy::ALL.to_vec()),
        ("Frog under pdm 1.0".into(), LicensePolicy::ALL.to_vec()),
        ("Frog under sampling+ 1.0".into(), vec![Any]),
        ("Frog under nc-sampling+ 1.0".into(), vec![Any]),
    ];
    assert_eq!(got, want);
}

#[tokio::test]
async fn wikimedia_licence_values_as_commons_sends_them() {
    let server = serving("/w/api.php", serve("wikimedia/licences.json")).await;
    let engine = WikimediaCommons::new(http()).with_base_url(base(&server));
    let got = by_title(&found(&engine, "frog").await);
    let commercial = vec![Any, CommercialUse, CommercialAndDerivatives];
    let all = LicensePolicy::ALL.to_vec();
    let want: Vec<(String, Vec<LicensePolicy>)> = vec![
        ("Frog cc-by-sa-4.0".into(), commercial.clone()),
        ("Frog cc-by-4.0".into(), commercial.clone()),
        ("Frog cc-by-sa-3.0-de".into(), commercial.clone()),
        ("Frog cc-by-2.5".into(), commercial.clone()),
        ("Frog cc0".into(), all.clone()),
        ("Frog pd".into(), all.clone()),
        ("Frog PD-US".into(), all),
        ("Frog gfdl".into(), commercial.clone()),
        ("Frog attribution".into(), commercial.clone()),
        ("Frog label only".into(), commercial),
        ("Frog copyrighted free use".into(), vec![Any]),
        ("Frog no metadata".into(), vec![Any]),
    ];
    assert_eq!(got, want);
}
