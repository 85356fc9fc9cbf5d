//! The Brave Image Search API (keyed).

use async_trait::async_trait;
use reqwest::header::{ACCEPT, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use url::Url;

use super::endpoint::{Endpoint, Means, StatusHint};
use super::util::{Links, Secret, dim, nothing_asked, parse_json, ranked, results, text};
use crate::{Candidate, HttpClient, ImageSearch, SearchError, SearchQuery};

const NAME: &str = "brave";
const DEFAULT_BASE: &str = "https://api.search.brave.com/";
/// The most results one call may ask for.
const MAX_COUNT: usize = 200;

const HINTS: &[StatusHint] = &[StatusHint {
    codes: &[401, 403, 422],
    means: Means::Config,
    hint: "check the Brave API key (BRAVE_API_KEY) and its plan",
}];

/// Brave: `GET {base}/res/v1/images/search?q=…&count=…&safesearch=strict|off` with the
/// `X-Subscription-Token` header, answering `results[].{title, url, source,
/// thumbnail.src, properties.{url, width, height}}`.
#[derive(Debug, Clone)]
pub struct Brave {
    site: Endpoint,
    key: Secret,
}

impl Brave {
    /// Search with the subscription token `api_key`.
    pub fn new(http: HttpClient, api_key: impl Into<String>) -> Self {
        Brave {
            site: Endpoint::new(NAME, http, DEFAULT_BASE).with_hints(HINTS),
            key: Secret(api_key.into()),
        }
    }

    /// Use another base URL (a gateway, a test server).
    pub fn with_base_url(mut self, base: Url) -> Self {
        self.site.set_base(base);
        self
    }

    fn headers(&self) -> Result<HeaderMap, SearchError> {
        if self.key.0.trim().is_empty() {
            return Err(SearchError::Config {
                engine: NAME.to_string(),
                detail: "no API key: set BRAVE_API_KEY or pass one to Brave::new".to_string(),
            });
        }
        let token = HeaderName::from_static("x-subscription-token");
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, HeaderValue::from_static("application/json"));
        h.insert(token.clone(), self.site.header(&token, &self.key.0, true)?);
        Ok(h)
    }
}

#[async_trait]
impl ImageSearch for Brave {
    fn name(&self) -> &str {
        NAME
    }

    async fn search(&self, query: &str, opts: &SearchQuery) -> Result<Vec<Candidate>, SearchError> {
        if nothing_asked(query, opts) {
            return Ok(Vec::new());
        }
        let headers = self.headers()?;
        let mut url = self.site.url("res/v1/images/search")?;
        url.query_pairs_mut()
            .append_pair("q", query)
            .append_pair("count", &opts.limit.clamp(1, MAX_COUNT).to_string())
            .append_pair(
                "safesearch",
                if opts.safe_search { "strict" } else { "off" },
            );
        let resp = self.site.get(&url, headers).await?;
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
    let mut out = Vec::new();
    for item in results::<Item>(NAME, answer.results, None)? {
        let props = item.properties;
        let links = Links {
            image: props.as_ref().and_then(|p| p.url.as_deref()),
            thumbnail: item.thumbnail.as_ref().and_then(|t| t.src.as_deref()),
            page: item.url.as_deref(),
            title: item.title.as_deref(),
        };
        let Some(mut c) = links.candidate(NAME, query, page_url) else {
            continue;
        };
        c.width = props.as_ref().and_then(|p| p.width);
        c.height = props.as_ref().and_then(|p| p.height);
        out.push(c);
    }
    Ok(ranked(out))
}
