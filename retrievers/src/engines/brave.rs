//! The Brave Image Search API (keyed).

use async_trait::async_trait;
use serde::Deserialize;
use url::Url;

use super::util::{
    Secret, base_or, dim, endpoint, http_error, lenient_items, parse_json, resolve, text,
};
use crate::{Candidate, HttpClient, HttpError, ImageSearch, SearchError, SearchQuery, Trust};

const NAME: &str = "brave";
const DEFAULT_BASE: &str = "https://api.search.brave.com/";
/// The most results one call may ask for.
const MAX_COUNT: usize = 200;

/// Brave: `GET {base}/res/v1/images/search?q=…&count=…&safesearch=strict|off` with the
/// `X-Subscription-Token` header, answering `results[].{title, url, source,
/// thumbnail.src, properties.{url, width, height}}`.
#[derive(Debug, Clone)]
pub struct Brave {
    http: HttpClient,
    base: Option<Url>,
    key: Secret,
}

impl Brave {
    /// Search with the subscription token `api_key`.
    pub fn new(http: HttpClient, api_key: impl Into<String>) -> Self {
        Brave {
            http,
            base: None,
            key: Secret(api_key.into()),
        }
    }

    /// Use another base URL (a gateway, a test server).
    pub fn with_base_url(mut self, base: Url) -> Self {
        self.base = Some(base);
        self
    }
}

fn map_status(e: HttpError) -> SearchError {
    match e.status().map(|s| s.as_u16()) {
        Some(401) | Some(403) | Some(422) => SearchError::Config {
            engine: NAME.to_string(),
            detail: format!("{e}; check the Brave API key (BRAVE_API_KEY) and its plan"),
        },
        _ => http_error(NAME, e),
    }
}

#[async_trait]
impl ImageSearch for Brave {
    fn name(&self) -> &str {
        NAME
    }

    async fn search(&self, query: &str, opts: &SearchQuery) -> Result<Vec<Candidate>, SearchError> {
        if query.trim().is_empty() || opts.limit == 0 {
            return Ok(Vec::new());
        }
        if self.key.0.trim().is_empty() {
            return Err(SearchError::Config {
                engine: NAME.to_string(),
                detail: "no API key: set BRAVE_API_KEY or pass one to Brave::new".to_string(),
            });
        }
        let base = base_or(NAME, &self.base, DEFAULT_BASE)?;
        let mut url = endpoint(NAME, &base, "res/v1/images/search")?;
        url.query_pairs_mut()
            .append_pair("q", query)
            .append_pair("count", &opts.limit.clamp(1, MAX_COUNT).to_string())
            .append_pair(
                "safesearch",
                if opts.safe_search { "strict" } else { "off" },
            );
        let key = self.key.clone();
        let resp = self
            .http
            .execute(Trust::Trusted, move |c| {
                c.get(url.clone())
                    .header(reqwest::header::ACCEPT, "application/json")
                    .header("X-Subscription-Token", key.0.as_str())
            })
            .await
            .map_err(map_status)?;
        let mut out = parse_page(&resp.body, &resp.url, query)?;
        out.truncate(opts.limit);
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
    title: Option<String>,
    #[serde(default, deserialize_with = "text")]
    url: Option<String>,
    #[serde(default)]
    thumbnail: Option<Thumb>,
    #[serde(default)]
    properties: Option<Props>,
}

#[derive(Debug, Deserialize)]
struct Thumb {
    #[serde(default, deserialize_with = "text")]
    src: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Props {
    #[serde(default, deserialize_with = "text")]
    url: Option<String>,
    #[serde(default, deserialize_with = "dim")]
    width: Option<u32>,
    #[serde(default, deserialize_with = "dim")]
    height: Option<u32>,
}

/// Parse a Brave image search answer into candidates in order.
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
        let props = item.properties;
        let Some(image_url) = props
            .as_ref()
            .and_then(|p| p.url.as_deref())
            .and_then(|u| resolve(page_url, u))
        else {
            continue;
        };
        let mut c = Candidate::new(image_url, NAME, query);
        c.rank = out.len() as u32;
        c.thumbnail_url = item
            .thumbnail
            .and_then(|t| t.src)
            .and_then(|u| resolve(page_url, &u));
        c.source_page = item.url.as_deref().and_then(|u| resolve(page_url, u));
        c.title = item.title;
        c.width = props.as_ref().and_then(|p| p.width);
        c.height = props.as_ref().and_then(|p| p.height);
        out.push(c);
    }
    Ok(out)
}
