//! Helpers shared by the engines: URL resolution, error mapping, lenient JSON, and
//! turning one result's links into a candidate.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::{Candidate, HttpError, SearchError, SearchQuery};

/// Resolve `raw` (absolute, protocol-relative `//host/x` or relative) against `base`;
/// only `http` and `https` results are kept.
///
/// A protocol-relative URL becomes `https:` whatever the scheme of `base`: the page it
/// came from may have been fetched over plain HTTP (a proxy, a mirror, a test server),
/// but the image host is somebody else's and is asked for over TLS.
pub(crate) fn resolve(base: &Url, raw: &str) -> Option<Url> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    let url = if raw.starts_with("//") {
        Url::parse(&format!("https:{raw}")).ok()?
    } else {
        base.join(raw).ok()?
    };
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Some(url),
        _ => None,
    }
}

/// `base` joined with `path`, treating `base` as a directory even without a final `/`.
pub(crate) fn endpoint(engine: &str, base: &Url, path: &str) -> Result<Url, SearchError> {
    let mut dir = base.clone();
    if !dir.path().ends_with('/') {
        let p = format!("{}/", dir.path());
        dir.set_path(&p);
    }
    dir.set_query(None);
    dir.join(path).map_err(|e| SearchError::Config {
        engine: engine.to_string(),
        detail: format!(
            "base URL {} cannot take path {path}: {e}",
            crate::http::redact(base)
        ),
    })
}

/// An HTTP failure of `engine`, with a hint for the statuses that mean "blocked".
pub(crate) fn http_error(engine: &str, e: HttpError) -> SearchError {
    SearchError::Http {
        engine: engine.to_string(),
        source: e,
    }
}

/// Words that mark a consent wall, bot check or CAPTCHA served instead of results.
pub(crate) fn looks_like_challenge(text: &str) -> bool {
    const MARKERS: &[&str] = &[
        "captcha",
        "are you a robot",
        "verify you are human",
        "unusual traffic",
        "bots use duckduckgo",
        "anomaly-modal",
        "challenge-form",
        "cf-challenge",
        "consent.",
        "id=\"bnp_container\"",
        "before you continue",
        "accept all cookies",
    ];
    let lower = text
        .get(..text.len().min(200_000))
        .unwrap_or(text)
        .to_ascii_lowercase();
    MARKERS.iter().any(|m| lower.contains(m))
}

/// Parse a JSON body, explaining what was received when it is not the JSON expected.
pub(crate) fn parse_json<T: DeserializeOwned>(engine: &str, body: &[u8]) -> Result<T, SearchError> {
    serde_json::from_slice(body).map_err(|e| {
        let start = String::from_utf8_lossy(body.get(..body.len().min(4096)).unwrap_or(&[]))
            .trim_start()
            .to_string();
        let detail = if body.is_empty() {
            "empty body where JSON was expected".to_string()
        } else if start.starts_with('<') {
            if looks_like_challenge(&start) {
                return SearchError::Blocked {
                    engine: engine.to_string(),
                    detail: "served a consent or CAPTCHA page instead of JSON; retry later or from another network".to_string(),
                };
            }
            "HTML where JSON was expected (is the base URL right?)".to_string()
        } else if e.is_eof() {
            format!("truncated JSON: {e}")
        } else if std::str::from_utf8(body).is_err() {
            "binary data where JSON was expected".to_string()
        } else {
            format!("invalid JSON: {e}")
        };
        SearchError::Parse {
            engine: engine.to_string(),
            detail,
        }
    })
}

/// Deserialize each element on its own, dropping the ones that do not fit, so that
/// one odd result does not lose the page.
pub(crate) fn lenient_items<T: DeserializeOwned>(items: Vec<serde_json::Value>) -> Vec<T> {
    items
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect()
}

/// A dimension given as a number, a numeric string, or nothing.
pub(crate) fn dim<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(v.and_then(|v| match v {
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
    .filter(|n| *n > 0))
}

/// Any JSON scalar as text (some engines send numbers where strings are expected).
pub(crate) fn text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(v.and_then(|v| match v {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
    .map(|s| s.trim().to_string())
    .filter(|s| !s.is_empty()))
}

/// The text content of an HTML fragment: tags dropped, character references
/// (`&amp;`, `&#39;`, `&quot;` …) decoded exactly once (by html5ever, through
/// `scraper`, to the HTML standard), Bing's U+E000/U+E001 highlight marks removed and
/// whitespace collapsed.
pub(crate) fn strip_html(fragment: &str) -> String {
    let fragment: String = fragment
        .chars()
        .filter(|c| !('\u{e000}'..='\u{e001}').contains(c))
        .collect();
    if !fragment.contains('<') && !fragment.contains('&') {
        return collapse(&fragment);
    }
    let doc = scraper::Html::parse_fragment(&fragment);
    let text: String = doc.root_element().text().collect::<Vec<_>>().join("");
    collapse(&text)
}

/// A title as it should reach the prefilter, the judge and the report: the plain text
/// of what the engine sent (see [`strip_html`]), or `None` when nothing is left.
///
/// Every engine's titles go through here once, where the candidate is built
/// ([`Links::candidate`], and the local folder's sidecars).
pub(crate) fn plain_title(raw: &str) -> Option<String> {
    Some(strip_html(raw)).filter(|t| !t.is_empty())
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Parse "1920 x 1080", "1920×1080" or "1920 x 1080 · jpeg" into width and height.
pub(crate) fn parse_resolution(s: &str) -> Option<(u32, u32)> {
    let head = s.split('·').next().unwrap_or(s);
    let mut parts = head.split(['x', 'X', '×']).map(str::trim);
    let w = parts.next()?.parse::<u32>().ok()?;
    let h = parts.next()?.parse::<u32>().ok()?;
    (w > 0 && h > 0).then_some((w, h))
}

/// A secret (API key, token) whose `Debug` never shows it.
#[derive(Clone)]
pub(crate) struct Secret(pub(crate) String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// True when there is nothing to search for: a blank query or a zero limit.
pub(crate) fn nothing_asked(query: &str, opts: &SearchQuery) -> bool {
    query.trim().is_empty() || opts.limit == 0
}

/// The items of an answer's `results` array that have the shape `T` (see
/// [`lenient_items`]); a missing array is a parse error, with the API's own `why` when
/// it sent one.
pub(crate) fn results<T: DeserializeOwned>(
    engine: &str,
    results: Option<Vec<serde_json::Value>>,
    why: Option<String>,
) -> Result<Vec<T>, SearchError> {
    let Some(items) = results else {
        return Err(SearchError::Parse {
            engine: engine.to_string(),
            detail: match why {
                Some(d) => format!("API answered without results: {d}"),
                None => "the answer has no `results` array".to_string(),
            },
        });
    };
    Ok(lenient_items(items))
}

/// One result's links as the engine wrote them (absolute, protocol-relative or relative).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Links<'a> {
    /// The image itself.
    pub(crate) image: Option<&'a str>,
    /// A thumbnail of it.
    pub(crate) thumbnail: Option<&'a str>,
    /// The page it is shown on.
    pub(crate) page: Option<&'a str>,
    /// Its title or caption as the engine sent it (HTML tags and entities included).
    pub(crate) title: Option<&'a str>,
}

impl Links<'_> {
    /// A candidate of `engine` for `query` with the links resolved against `base` (the
    /// URL the answer came from) and the title made plain text ([`plain_title`]);
    /// `None` when the image link is missing or not http(s).
    pub(crate) fn candidate(&self, engine: &str, query: &str, base: &Url) -> Option<Candidate> {
        let image_url = resolve(base, self.image?)?;
        let mut c = Candidate::new(image_url, engine, query);
        c.thumbnail_url = self.thumbnail.and_then(|u| resolve(base, u));
        c.source_page = self.page.and_then(|u| resolve(base, u));
        c.title = self.title.and_then(plain_title);
        Some(c)
    }
}

/// Set each candidate's rank to its position.
pub(crate) fn ranked(mut candidates: Vec<Candidate>) -> Vec<Candidate> {
    for (i, c) in candidates.iter_mut().enumerate() {
        c.rank = u32::try_from(i).unwrap_or(u32::MAX);
    }
    candidates
}

/// The MIME type of an image format or file extension (`jpg`, `PNG`, `tiff`, Bing's
/// `animatedgif` ...); `None` for anything that is not an image type.
pub(crate) fn image_mime(format: &str) -> Option<String> {
    let f = format.trim().to_ascii_lowercase();
    let ext = match f.as_str() {
        "animatedgif" => "gif",
        other => other,
    };
    mime_guess::from_ext(ext)
        .iter()
        .find(|m| m.type_() == mime_guess::mime::IMAGE)
        .map(|m| m.essence_str().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_mime_knows_engine_format_names() {
        for (f, m) in [
            ("jpg", "image/jpeg"),
            (" JPEG ", "image/jpeg"),
            ("png", "image/png"),
            ("animatedgif", "image/gif"),
            ("webp", "image/webp"),
            ("tif", "image/tiff"),
            ("svg", "image/svg+xml"),
            ("bmp", "image/bmp"),
        ] {
            assert_eq!(image_mime(f).as_deref(), Some(m), "{f}");
        }
        for f in ["", "html", "mp4", "pdf", "weird"] {
            assert_eq!(image_mime(f), None, "{f}");
        }
    }
}
