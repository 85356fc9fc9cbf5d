//! DuckDuckGo image search, keyless: a `vqd` token from the HTML page, then the
//! `i.js` JSON endpoint.

use std::collections::HashSet;

use async_trait::async_trait;
use serde::Deserialize;
use url::Url;

use super::util::{
    base_or, dim, endpoint, http_error, lenient_items, looks_like_challenge, parse_json, resolve,
    text,
};
use crate::{Candidate, HttpClient, HttpError, ImageSearch, SearchError, SearchQuery, Trust};

const NAME: &str = "duckduckgo";
const DEFAULT_BASE: &str = "https://duckduckgo.com/";
/// Result pages fetched at most for one query (DuckDuckGo serves 100 per page).
const MAX_PAGES: usize = 4;

/// DuckDuckGo images.
///
/// 1. `GET {base}/?q=…&iar=images&iax=images&ia=images` and read the `vqd` token;
/// 2. `GET {base}/i.js?o=json&q=…&vqd=…&p=1&l=wt-wt&f=,,,,,` with DuckDuckGo's Referer,
///    answering `results[].{image, thumbnail, url, title, width, height, source}` and a
///    relative `next` link for the following page.
#[derive(Debug, Clone)]
pub struct DuckDuckGo {
    http: HttpClient,
    base: Option<Url>,
}

impl DuckDuckGo {
    /// Search `https://duckduckgo.com` with `http`.
    pub fn new(http: HttpClient) -> Self {
        DuckDuckGo { http, base: None }
    }

    /// Use another base URL (a proxy, a test server).
    pub fn with_base_url(mut self, base: Url) -> Self {
        self.base = Some(base);
        self
    }

    async fn vqd(&self, base: &Url, query: &str) -> Result<String, SearchError> {
        let mut url = endpoint(NAME, base, "")?;
        url.query_pairs_mut()
            .append_pair("q", query)
            .append_pair("iar", "images")
            .append_pair("iax", "images")
            .append_pair("ia", "images");
        let resp = self
            .http
            .get(&url, Trust::Trusted)
            .await
            .map_err(|e| http_error(NAME, e))?;
        let html = resp.text();
        match parse_vqd(&html) {
            Some(v) => Ok(v),
            None if looks_like_challenge(&html) => Err(SearchError::Blocked {
                engine: NAME.to_string(),
                detail: "DuckDuckGo served a bot check instead of the search page; retry later or use another engine".to_string(),
            }),
            None => Err(SearchError::Parse {
                engine: NAME.to_string(),
                detail: "no vqd token in the search page; DuckDuckGo may have changed it".to_string(),
            }),
        }
    }

    async fn fetch(&self, url: &Url, referer: &str) -> Result<bytes::Bytes, SearchError> {
        let u = url.clone();
        let referer = referer.to_string();
        let resp = self
            .http
            .execute(Trust::Trusted, move |c| {
                c.get(u.clone())
                    .header(reqwest::header::REFERER, referer.as_str())
                    .header(
                        reqwest::header::ACCEPT,
                        "application/json, text/javascript, */*; q=0.01",
                    )
                    .header("X-Requested-With", "XMLHttpRequest")
            })
            .await
            .map_err(map_status)?;
        Ok(resp.body)
    }
}

fn map_status(e: HttpError) -> SearchError {
    if e.status().is_some_and(|s| s.as_u16() == 403) {
        return SearchError::Blocked {
            engine: NAME.to_string(),
            detail: format!(
                "{e}; DuckDuckGo rejected the vqd token or is rate-limiting this address, retry later"
            ),
        };
    }
    http_error(NAME, e)
}

#[async_trait]
impl ImageSearch for DuckDuckGo {
    fn name(&self) -> &str {
        NAME
    }

    async fn search(&self, query: &str, opts: &SearchQuery) -> Result<Vec<Candidate>, SearchError> {
        let mut out: Vec<Candidate> = Vec::new();
        if query.trim().is_empty() || opts.limit == 0 {
            return Ok(out);
        }
        let base = base_or(NAME, &self.base, DEFAULT_BASE)?;
        let vqd = self.vqd(&base, query).await?;
        let referer = endpoint(NAME, &base, "")?.to_string();
        let mut url = endpoint(NAME, &base, "i.js")?;
        url.query_pairs_mut()
            .append_pair("o", "json")
            .append_pair("q", query)
            .append_pair("vqd", &vqd)
            .append_pair("p", if opts.safe_search { "1" } else { "-2" })
            .append_pair("l", "wt-wt")
            .append_pair("f", ",,,,,");
        let mut seen = HashSet::new();
        for page in 0..MAX_PAGES {
            let parsed = match self.fetch(&url, &referer).await {
                Ok(body) => parse_results(&body, &url, query),
                Err(e) => Err(e),
            };
            let (found, next) = match parsed {
                Ok(p) => p,
                Err(e) if page > 0 => {
                    tracing::warn!(error = %e, page, "duckduckgo: stopping paging");
                    break;
                }
                Err(e) => return Err(e),
            };
            for mut c in found {
                if seen.insert(c.image_url.clone()) && out.len() < opts.limit {
                    c.rank = out.len() as u32;
                    out.push(c);
                }
            }
            match next.and_then(|n| next_url(&base, &n, &vqd)) {
                Some(n) if out.len() < opts.limit => url = n,
                _ => break,
            }
        }
        Ok(out)
    }
}

/// The `next` link is relative to the site root and may lack the `vqd` token.
fn next_url(base: &Url, next: &str, vqd: &str) -> Option<Url> {
    let mut url = endpoint(NAME, base, next.trim_start_matches('/')).ok()?;
    if !url.query_pairs().any(|(k, _)| k == "vqd") {
        url.query_pairs_mut().append_pair("vqd", vqd);
    }
    Some(url)
}

/// The `vqd` token in the search page: `vqd="4-…"`, `vqd='4-…'`, `vqd=4-…&` or `"vqd":"4-…"`.
pub(crate) fn parse_vqd(html: &str) -> Option<String> {
    for (open, close) in [
        ("vqd=\"", "\""),
        ("vqd='", "'"),
        ("\"vqd\":\"", "\""),
        ("vqd=", "&"),
    ] {
        let Some(start) = html.find(open).map(|i| i + open.len()) else {
            continue;
        };
        let rest = html.get(start..)?;
        let end = rest.find(close).unwrap_or(rest.len()).min(200);
        let value = rest.get(..end)?.trim();
        if !value.is_empty()
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Some(value.to_string());
        }
    }
    None
}

#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(default)]
    results: Option<Vec<serde_json::Value>>,
    #[serde(default, deserialize_with = "text")]
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Item {
    #[serde(default, deserialize_with = "text")]
    image: Option<String>,
    #[serde(default, deserialize_with = "text")]
    thumbnail: Option<String>,
    #[serde(default, deserialize_with = "text")]
    url: Option<String>,
    #[serde(default, deserialize_with = "text")]
    title: Option<String>,
    #[serde(default, deserialize_with = "dim")]
    width: Option<u32>,
    #[serde(default, deserialize_with = "dim")]
    height: Option<u32>,
}

/// Parse one `i.js` answer: candidates in order, and the `next` link.
pub(crate) fn parse_results(
    body: &[u8],
    page_url: &Url,
    query: &str,
) -> Result<(Vec<Candidate>, Option<String>), SearchError> {
    let answer: Answer = parse_json(NAME, body)?;
    let Some(items) = answer.results else {
        return Err(SearchError::Parse {
            engine: NAME.to_string(),
            detail: "the answer has no `results` array".to_string(),
        });
    };
    let mut out = Vec::new();
    for item in lenient_items::<Item>(items) {
        let Some(image_url) = item.image.as_deref().and_then(|u| resolve(page_url, u)) else {
            continue;
        };
        let mut c = Candidate::new(image_url, NAME, query);
        c.rank = out.len() as u32;
        c.thumbnail_url = item.thumbnail.as_deref().and_then(|u| resolve(page_url, u));
        c.source_page = item.url.as_deref().and_then(|u| resolve(page_url, u));
        c.title = item.title;
        c.width = item.width;
        c.height = item.height;
        out.push(c);
    }
    Ok((out, answer.next))
}
