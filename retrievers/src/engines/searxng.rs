//! SearXNG, the self-hosted metasearch engine, through its JSON output.

use async_trait::async_trait;
use serde::Deserialize;
use url::Url;

use super::util::{
    endpoint, http_error, lenient_items, parse_json, parse_resolution, resolve, text,
};
use crate::{Candidate, HttpClient, HttpError, ImageSearch, SearchError, SearchQuery, Trust};

const NAME: &str = "searxng";
/// Result pages fetched at most for one query.
const MAX_PAGES: usize = 3;

/// A SearXNG instance: `GET {base}/search?q=…&format=json&categories=images&pageno=N
/// &safesearch=…`, answering `results[].{img_src, thumbnail_src, url, title,
/// resolution "W x H", engine}`.
///
/// The instance must allow JSON output (`search.formats: [html, json]` in its
/// `settings.yml`); otherwise it answers 403 and this engine says so.
#[derive(Debug, Clone)]
pub struct Searxng {
    http: HttpClient,
    base: Url,
}

impl Searxng {
    /// Search the instance at `base_url` (such as `http://localhost:8888/`) with `http`.
    pub fn new(http: HttpClient, base_url: Url) -> Self {
        Searxng {
            http,
            base: base_url,
        }
    }

    /// Use another base URL.
    pub fn with_base_url(mut self, base: Url) -> Self {
        self.base = base;
        self
    }

    fn page_url(&self, query: &str, page: usize, safe: bool) -> Result<Url, SearchError> {
        let mut url = endpoint(NAME, &self.base, "search")?;
        url.query_pairs_mut()
            .append_pair("q", query)
            .append_pair("format", "json")
            .append_pair("categories", "images")
            .append_pair("pageno", &page.to_string())
            .append_pair("safesearch", if safe { "2" } else { "0" });
        Ok(url)
    }
}

fn map_status(e: HttpError) -> SearchError {
    if e.status().is_some_and(|s| s.as_u16() == 403) {
        return SearchError::Blocked {
            engine: NAME.to_string(),
            detail: format!(
                "{e}; the instance refuses JSON output: add `json` to `search.formats` in its settings.yml"
            ),
        };
    }
    http_error(NAME, e)
}

#[async_trait]
impl ImageSearch for Searxng {
    fn name(&self) -> &str {
        NAME
    }

    async fn search(&self, query: &str, opts: &SearchQuery) -> Result<Vec<Candidate>, SearchError> {
        let mut out: Vec<Candidate> = Vec::new();
        if query.trim().is_empty() || opts.limit == 0 {
            return Ok(out);
        }
        for page in 1..=MAX_PAGES {
            let url = self.page_url(query, page, opts.safe_search)?;
            let parsed = match self.http.get(&url, Trust::Trusted).await {
                Ok(resp) => parse_page(&resp.body, &resp.url, query),
                Err(e) => Err(map_status(e)),
            };
            let found = match parsed {
                Ok(p) => p,
                Err(e) if page > 1 => {
                    tracing::warn!(error = %e, page, "searxng: stopping paging");
                    break;
                }
                Err(e) => return Err(e),
            };
            let before = out.len();
            for mut c in found {
                if out.len() < opts.limit && !out.iter().any(|o| o.image_url == c.image_url) {
                    c.rank = out.len() as u32;
                    out.push(c);
                }
            }
            if out.len() >= opts.limit || out.len() == before {
                break;
            }
        }
        Ok(out)
    }
}

#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(default)]
    results: Option<Vec<serde_json::Value>>,
}

#[derive(Debug, Deserialize)]
struct Item {
    #[serde(default, deserialize_with = "text")]
    img_src: Option<String>,
    #[serde(default, deserialize_with = "text")]
    thumbnail_src: Option<String>,
    #[serde(default, deserialize_with = "text")]
    url: Option<String>,
    #[serde(default, deserialize_with = "text")]
    title: Option<String>,
    #[serde(default, deserialize_with = "text")]
    resolution: Option<String>,
    #[serde(default, deserialize_with = "text")]
    img_format: Option<String>,
    #[serde(default, deserialize_with = "text")]
    author: Option<String>,
}

/// Parse one SearXNG JSON page; results without `img_src` (non-image results) are skipped.
pub(crate) fn parse_page(
    body: &[u8],
    page_url: &Url,
    query: &str,
) -> Result<Vec<Candidate>, SearchError> {
    let answer: Answer = parse_json(NAME, body)?;
    let Some(items) = answer.results else {
        return Err(SearchError::Parse {
            engine: NAME.to_string(),
            detail: "the answer has no `results` array".to_string(),
        });
    };
    let mut out = Vec::new();
    for item in lenient_items::<Item>(items) {
        let Some(image_url) = item.img_src.as_deref().and_then(|u| resolve(page_url, u)) else {
            continue;
        };
        let mut c = Candidate::new(image_url, NAME, query);
        c.rank = out.len() as u32;
        c.thumbnail_url = item
            .thumbnail_src
            .as_deref()
            .and_then(|u| resolve(page_url, u));
        c.source_page = item.url.as_deref().and_then(|u| resolve(page_url, u));
        c.title = item.title;
        if let Some((w, h)) = item.resolution.as_deref().and_then(parse_resolution) {
            c.width = Some(w);
            c.height = Some(h);
        }
        c.mime = item
            .img_format
            .as_deref()
            .map(|f| f.trim().to_ascii_lowercase())
            .and_then(|f| match f.as_str() {
                "jpeg" | "jpg" => Some("image/jpeg".to_string()),
                "png" | "gif" | "webp" | "bmp" | "tiff" => Some(format!("image/{f}")),
                _ => None,
            });
        c.creator = item.author;
        out.push(c);
    }
    Ok(out)
}
