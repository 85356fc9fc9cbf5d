//! Stage 1: metadata checks before any download.

use std::collections::HashSet;

use iat2i_retrievers::Candidate;
use url::Url;

use crate::config::PrefilterConfig;
use crate::stage::{Dropped, Stage};
use crate::types::SelectionRequest;

/// A candidate that passed the prefilter.
#[derive(Debug, Clone)]
pub(crate) struct Prefiltered {
    pub candidate: Candidate,
    pub lexical: f32,
    pub preferred: bool,
}

/// Apply `cfg` to `candidates`; returns the survivors (best fused score first) and the drops.
pub(crate) fn prefilter(
    candidates: Vec<Candidate>,
    request: &SelectionRequest,
    cfg: &PrefilterConfig,
) -> (Vec<Prefiltered>, Vec<Dropped>) {
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    let mut seen = HashSet::new();
    for candidate in candidates {
        if !seen.insert(candidate.preview_url().clone()) {
            dropped.push(drop(candidate, "the same image URL appears twice".into()));
            continue;
        }
        let lexical = lexical_score(&candidate, request);
        match check(&candidate, lexical, cfg) {
            Err(reason) => dropped.push(drop(candidate, reason)),
            Ok(()) => {
                let preferred = on_domain(&candidate, &cfg.preferred_domains);
                kept.push(Prefiltered {
                    candidate,
                    lexical,
                    preferred,
                });
            }
        }
    }
    kept.sort_by(|a, b| {
        b.candidate
            .fused_score
            .total_cmp(&a.candidate.fused_score)
            .then(a.candidate.rank.cmp(&b.candidate.rank))
    });
    if kept.len() > cfg.max_candidates {
        for p in kept.split_off(cfg.max_candidates) {
            let reason = format!("beyond the first {} candidates", cfg.max_candidates);
            dropped.push(drop(p.candidate, reason));
        }
    }
    (kept, dropped)
}

fn drop(candidate: Candidate, reason: String) -> Dropped {
    Dropped {
        candidate,
        stage: Stage::Prefilter,
        reason,
    }
}

fn check(c: &Candidate, lexical: f32, cfg: &PrefilterConfig) -> Result<(), String> {
    for url in [Some(&c.image_url), c.thumbnail_url.as_ref()]
        .into_iter()
        .flatten()
    {
        // file:// is for local asset folders; the fetch stage reads it only under the
        // folders allowed with `SelectorConfig::allow_local_dir`.
        if !matches!(url.scheme(), "http" | "https" | "file") {
            return Err(format!("unsupported URL scheme `{}`", url.scheme()));
        }
    }
    if on_domain(c, &cfg.blocked_domains) {
        return Err("on a blocked domain".into());
    }
    if let Some(mime) = &c.mime {
        let mime = mime.to_ascii_lowercase();
        if !cfg
            .allowed_mimes
            .iter()
            .any(|m| m.eq_ignore_ascii_case(&mime))
        {
            return Err(format!("MIME type {mime} is not allowed"));
        }
    }
    if let (Some(w), Some(h)) = (c.width, c.height) {
        if w < cfg.min_side || h < cfg.min_side {
            return Err(format!(
                "too small: {w}x{h} (minimum side {})",
                cfg.min_side
            ));
        }
        let ratio = w.max(h) as f32 / w.min(h).max(1) as f32;
        if ratio > cfg.max_aspect_ratio {
            return Err(format!(
                "aspect ratio {ratio:.1} exceeds {:.1}",
                cfg.max_aspect_ratio
            ));
        }
    }
    if let Some(reason) = cfg.license_policy.refusal(c.license.as_ref()) {
        return Err(reason);
    }
    if lexical < cfg.min_lexical {
        return Err(format!(
            "title relevance {lexical:.2} below {:.2}",
            cfg.min_lexical
        ));
    }
    Ok(())
}

/// True when the image, its thumbnail or its page is on one of `domains` or a sub-domain.
pub(crate) fn on_domain(c: &Candidate, domains: &[String]) -> bool {
    if domains.is_empty() {
        return false;
    }
    let hosts = [
        Some(&c.image_url),
        c.thumbnail_url.as_ref(),
        c.source_page.as_ref(),
    ];
    hosts
        .into_iter()
        .flatten()
        .any(|u| host_matches(u, domains))
}

fn host_matches(url: &Url, domains: &[String]) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    domains.iter().any(|d| {
        let d = d.trim().trim_start_matches('.').to_ascii_lowercase();
        !d.is_empty() && (host == d || host.ends_with(&format!(".{d}")))
    })
}

/// Share of the query (and entity) words found in the title, caption or file name, 0..=1.
pub(crate) fn lexical_score(c: &Candidate, request: &SelectionRequest) -> f32 {
    let mut terms: HashSet<String> = words(&c.query).collect();
    for e in &request.entities {
        terms.extend(words(e));
    }
    if terms.is_empty() {
        for q in &request.queries {
            terms.extend(words(q));
        }
    }
    if terms.is_empty() {
        terms.extend(words(&request.prompt));
    }
    if terms.is_empty() {
        return 0.0;
    }
    let mut text: HashSet<String> = c
        .title
        .as_deref()
        .map(words)
        .into_iter()
        .flatten()
        .collect();
    if let Some(segments) = c.image_url.path_segments() {
        for s in segments {
            let decoded = percent_decode(s);
            text.extend(words(&decoded));
        }
    }
    let hits = terms.iter().filter(|t| text.contains(*t)).count();
    hits as f32 / terms.len() as f32
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(s.as_bytes())
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

const STOPWORDS: &[&str] = &[
    "a", "an", "the", "of", "in", "on", "and", "or", "at", "to", "with", "for", "by", "from", "is",
    "photo", "image", "picture", "jpg", "jpeg", "png", "webp", "file",
];

fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|ch: char| !ch.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use iat2i_retrievers::{License, LicensePolicy};

    fn cand(url: &str, title: Option<&str>) -> Candidate {
        let mut c = Candidate::new(Url::parse(url).unwrap(), "test", "red fox");
        c.title = title.map(String::from);
        c
    }

    fn req() -> SelectionRequest {
        SelectionRequest {
            prompt: "a red fox in the snow".into(),
            queries: vec!["red fox".into()],
            ..Default::default()
        }
    }

    #[test]
    fn lexical_counts_query_words_in_title_and_file_name() {
        let full = cand("https://a.example/x.jpg", Some("Red Fox, winter"));
        let half = cand("https://a.example/Fox_1.jpg", None);
        let none = cand("https://a.example/cat.jpg", Some("A cat"));
        assert_eq!(lexical_score(&full, &req()), 1.0);
        assert_eq!(lexical_score(&half, &req()), 0.5);
        assert_eq!(lexical_score(&none, &req()), 0.0);
    }

    #[test]
    fn drops_say_why() {
        let mut small = cand("https://a.example/1.jpg", None);
        small.width = Some(50);
        small.height = Some(60);
        let mut wide = cand("https://a.example/2.jpg", None);
        wide.width = Some(2000);
        wide.height = Some(200);
        let blocked = cand("https://img.bad.example/3.jpg", None);
        let mut svg = cand("https://a.example/4.svg", None);
        svg.mime = Some("image/svg+xml".into());
        let mut nc = cand("https://a.example/5.jpg", None);
        nc.license = Some(License {
            code: "all-rights-reserved".into(),
            version: None,
            url: None,
        });
        let mut open = cand("https://a.example/6.jpg", None);
        open.license = Some(License {
            code: "cc-by-sa".into(),
            version: Some("4.0".into()),
            url: None,
        });
        let preferred = cand("https://upload.wikimedia.org/7.jpg", None);
        let cfg = PrefilterConfig {
            blocked_domains: vec!["bad.example".into()],
            preferred_domains: vec!["wikimedia.org".into()],
            ..Default::default()
        };
        let all = vec![small, wide, blocked, svg, nc.clone(), open, preferred];
        let (kept, dropped) = prefilter(all.clone(), &req(), &cfg);
        let reasons: Vec<&str> = dropped.iter().map(|d| d.reason.as_str()).collect();
        assert!(reasons[0].starts_with("too small: 50x60"), "{reasons:?}");
        assert!(reasons[1].starts_with("aspect ratio 10.0"), "{reasons:?}");
        assert_eq!(reasons[2], "on a blocked domain");
        assert_eq!(reasons[3], "MIME type image/svg+xml is not allowed");
        assert_eq!(kept.len(), 3);
        assert!(kept.iter().any(|p| p.preferred));
        let cfg = PrefilterConfig {
            license_policy: LicensePolicy::CommercialUse,
            ..Default::default()
        };
        let (kept, dropped) = prefilter(all, &req(), &cfg);
        assert_eq!(kept.len(), 1, "only the CC one survives");
        assert!(
            dropped
                .iter()
                .any(|d| d.reason.contains("all-rights-reserved"))
        );
    }

    fn licensed(i: u32, code: &str, version: Option<&str>) -> Candidate {
        let mut c = cand(&format!("https://a.example/{i}.jpg"), None);
        c.license = Some(License {
            code: code.into(),
            version: version.map(String::from),
            url: None,
        });
        c
    }

    /// `is_open` let every `cc…`/`by…` code through, CC BY-NC-ND included.
    #[test]
    fn licence_policy_drops_non_commercial_and_no_derivatives() {
        let all = || {
            vec![
                licensed(0, "by-nc-nd", Some("4.0")),
                licensed(1, "cc-by-nc-sa", Some("2.0")),
                licensed(2, "by-nd", Some("4.0")),
                licensed(3, "cc-by-sa", Some("4.0")),
                licensed(4, "cc0", Some("1.0")),
                licensed(5, "byline", None),
                cand("https://a.example/6.jpg", None),
            ]
        };
        let kept = |policy| {
            let cfg = PrefilterConfig {
                license_policy: policy,
                ..Default::default()
            };
            let (kept, dropped) = prefilter(all(), &req(), &cfg);
            assert_eq!(kept.len() + dropped.len(), 7);
            let mut paths: Vec<String> = kept
                .iter()
                .map(|p| p.candidate.image_url.path().to_string())
                .collect();
            paths.sort();
            paths
        };
        assert_eq!(kept(LicensePolicy::Any).len(), 7);
        assert_eq!(
            kept(LicensePolicy::CommercialUse),
            ["/2.jpg", "/3.jpg", "/4.jpg"]
        );
        assert_eq!(
            kept(LicensePolicy::CommercialAndDerivatives),
            ["/3.jpg", "/4.jpg"]
        );
        assert_eq!(kept(LicensePolicy::PublicDomainOnly), ["/4.jpg"]);
        let cfg = PrefilterConfig {
            license_policy: LicensePolicy::CommercialAndDerivatives,
            ..Default::default()
        };
        let (_, dropped) = prefilter(all(), &req(), &cfg);
        let reasons: Vec<&str> = dropped.iter().map(|d| d.reason.as_str()).collect();
        assert!(reasons[0].contains("`by-nc-nd 4.0` does not allow commercial use"));
        assert!(reasons[2].contains("`by-nd 4.0` does not allow derivatives"));
        assert!(reasons[3].contains("`byline` is not one iat2i can read"));
        assert!(reasons[4].contains("no licence given"));
    }

    #[test]
    fn duplicate_urls_and_the_cap() {
        let mut cands: Vec<Candidate> = (0..5)
            .map(|i| {
                let mut c = cand(&format!("https://a.example/{i}.jpg"), None);
                c.fused_score = i as f64;
                c
            })
            .collect();
        cands.push(cand("https://a.example/0.jpg", None));
        let cfg = PrefilterConfig {
            max_candidates: 3,
            ..Default::default()
        };
        let (kept, dropped) = prefilter(cands, &req(), &cfg);
        let urls: Vec<&str> = kept.iter().map(|p| p.candidate.image_url.path()).collect();
        assert_eq!(urls, ["/4.jpg", "/3.jpg", "/2.jpg"]);
        assert_eq!(dropped.len(), 3);
        assert!(dropped[0].reason.contains("appears twice"));
    }
}
