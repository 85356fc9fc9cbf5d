//! Entry points for the fuzz harness (`fuzz/`, `make fuzz`): each engine's response
//! parser on raw bytes, as the engine would get them. Not part of the API.
//!
//! Each returns a short outcome signature (`ok 3`, `err parse`, …) the harness uses to
//! tell new behaviour from old.

use url::Url;

use crate::engines::{bing, brave, duckduckgo, local, openverse, searxng, wikimedia};
use crate::{License, SearchError};

/// The URL the answers are taken to come from (plain http, like a test server).
fn page_url() -> Url {
    Url::parse("http://127.0.0.1:8080/search?q=frog").unwrap_or_else(|_| BASE.clone())
}

static BASE: std::sync::LazyLock<Url> = std::sync::LazyLock::new(|| {
    Url::from_file_path("/").unwrap_or_else(|()| std::process::abort())
});

fn outcome<T>(r: Result<Vec<T>, SearchError>) -> String {
    match r {
        Ok(v) => format!("ok {}", v.len().min(8)),
        Err(e) => format!("err {}", kind(&e)),
    }
}

fn kind(e: &SearchError) -> &'static str {
    match e {
        SearchError::Parse { .. } => "parse",
        SearchError::Blocked { .. } => "blocked",
        SearchError::Config { .. } => "config",
        _ => "other",
    }
}

/// Bing's results page (HTML).
pub fn bing(input: &[u8]) -> String {
    outcome(bing::parse_page(
        &String::from_utf8_lossy(input),
        &page_url(),
        "frog",
    ))
}

/// DuckDuckGo's `i.js` answer (JSON).
pub fn duckduckgo(input: &[u8]) -> String {
    outcome(duckduckgo::parse_results(input, &page_url(), "frog").map(|(c, _)| c))
}

/// DuckDuckGo's search page, for the `vqd` token (HTML).
pub fn duckduckgo_vqd(input: &[u8]) -> String {
    match duckduckgo::parse_vqd(&String::from_utf8_lossy(input)) {
        Some(v) => format!("vqd {}", v.len().min(8)),
        None => "none".to_string(),
    }
}

/// The MediaWiki API answer of Wikimedia Commons (JSON).
pub fn wikimedia(input: &[u8]) -> String {
    outcome(wikimedia::parse_answer(input, &page_url(), "frog").map(|(c, _)| c))
}

/// Openverse's answer (JSON).
pub fn openverse(input: &[u8]) -> String {
    outcome(openverse::parse_page(input, &page_url(), "frog").map(|(c, _)| c))
}

/// Brave's answer (JSON).
pub fn brave(input: &[u8]) -> String {
    outcome(brave::parse_page(input, &page_url(), "frog"))
}

/// SearXNG's answer (JSON).
pub fn searxng(input: &[u8]) -> String {
    outcome(searxng::parse_page(input, &page_url(), "frog"))
}

/// A local folder's `.json` sidecar.
pub fn local_sidecar(input: &[u8]) -> String {
    match serde_json::from_slice::<local::Sidecar>(input) {
        Ok(s) => format!("ok {}", s.title.is_some() as u8),
        Err(_) => "err".to_string(),
    }
}

/// A licence as an engine writes it: the input's first line is the code, the second
/// the version, the third the URL.
pub fn licence(input: &[u8]) -> String {
    let text = String::from_utf8_lossy(input);
    let mut lines = text.lines();
    let license = License {
        code: lines.next().unwrap_or("").to_string(),
        version: lines.next().map(String::from),
        url: lines.next().and_then(|u| Url::parse(u).ok()),
    };
    match license.permissions() {
        Some(p) => format!(
            "{} {} {} {}",
            p.commercial as u8, p.derivatives as u8, p.share_alike as u8, p.public_domain as u8
        ),
        None => "unknown".to_string(),
    }
}
