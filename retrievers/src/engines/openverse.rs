//! Openverse: openly licensed images from many providers, keyless (a token raises
//! the rate limit).

use async_trait::async_trait;
use serde::Deserialize;
use url::Url;

use super::util::{
    Secret, base_or, dim, endpoint, http_error, lenient_items, parse_json, resolve, text,
};
use crate::{
    Candidate, HttpClient, HttpError, ImageSearch, License, SearchError, SearchQuery, Trust,
};

const NAME: &str = "openverse";
const DEFAULT_BASE: &str = "https://api.openverse.org/";
/// Results per page allowed to anonymous clients.
const PAGE_SIZE: usize = 20;
/// Result pages fetched at most for one query.
const MAX_PAGES: usize = 5;

/// Openverse: `GET {base}/v1/images/?q=…&page_size=20&page=N&mature=false`, answering
/// `results[].{url, thumbnail, title, foreign_landing_url, width, height, license,
/// license_version, creator, provider}` with `page_count` for paging.
#[derive(Debug, Clone)]
pub struct Openverse {
    http: HttpClient,
    base: Option<Url>,
    token: Option<Secret>,
}

impl Openverse {
    /// Search `https://api.openverse.org` anonymously with `http`.
    pub fn new(http: HttpClient) -> Self {
        Openverse {
            http,
            base: None,
            token: None,
        }
    }

    /// Use another base URL (a self-hosted Openverse API, a test server).
    pub fn with_base_url(mut self, base: Url) -> Self {
        self.base = Some(base);
        self
    }

    /// Send an OAuth access token (`Authorization: Bearer …`) for a higher rate limit.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(Secret(token.into()));
        self
    }

    fn page_url(&self, query: &str, page: usize, safe: bool) -> Result<Url, SearchError> {
        let base = base_or(NAME, &self.base, DEFAULT_BASE)?;
        let mut url = endpoint(NAME, &base, "v1/images/")?;
        url.query_pairs_mut()
            .append_pair("q", query)
            .append_pair("page_size", &PAGE_SIZE.to_string())
            .append_pair("page", &page.to_string())
            .append_pair("mature", if safe { "false" } else { "true" });
        Ok(url)
    }

    async fn fetch(&self, url: Url) -> Result<crate::HttpResponse, SearchError> {
        let token = self.token.clone();
        self.http
            .execute(Trust::Trusted, move |c| {
                let req = c
                    .get(url.clone())
                    .header(reqwest::header::ACCEPT, "application/json");
                match &token {
                    Some(t) => req.bearer_auth(&t.0),
                    None => req,
                }
            })
            .await
            .map_err(map_status)
    }
}

fn map_status(e: HttpError) -> SearchError {
    match e.status().map(|s| s.as_u16()) {
        Some(401) | Some(403) => SearchError::Config {
            engine: NAME.to_string(),
            detail: format!(
                "{e}; the Openverse token is invalid or expired, renew it or search anonymously"
            ),
        },
        _ => http_error(NAME, e),
    }
}

#[async_trait]
impl ImageSearch for Openverse {
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
            let parsed = match self.fetch(url).await {
                Ok(resp) => parse_page(&resp.body, &resp.url, query),
                Err(e) => Err(e),
            };
            let (found, page_count) = match parsed {
                Ok(p) => p,
                Err(e) if page > 1 => {
                    tracing::warn!(error = %e, page, "openverse: stopping paging");
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
            if out.len() >= opts.limit
                || out.len() == before
                || page_count.is_none_or(|n| page as u64 >= n)
            {
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
    #[serde(default)]
    page_count: Option<u64>,
    #[serde(default, deserialize_with = "text")]
    detail: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Item {
    #[serde(default, deserialize_with = "text")]
    url: Option<String>,
    #[serde(default, deserialize_with = "text")]
    thumbnail: Option<String>,
    #[serde(default, deserialize_with = "text")]
    title: Option<String>,
    #[serde(default, deserialize_with = "text")]
    foreign_landing_url: Option<String>,
    #[serde(default, deserialize_with = "dim")]
    width: Option<u32>,
    #[serde(default, deserialize_with = "dim")]
    height: Option<u32>,
    #[serde(default, deserialize_with = "text")]
    filetype: Option<String>,
    #[serde(default, deserialize_with = "text")]
    license: Option<String>,
    #[serde(default, deserialize_with = "text")]
    license_version: Option<String>,
    #[serde(default, deserialize_with = "text")]
    license_url: Option<String>,
    #[serde(default, deserialize_with = "text")]
    creator: Option<String>,
}

/// Parse one page: candidates in order, and the number of pages.
pub(crate) fn parse_page(
    body: &[u8],
    page_url: &Url,
    query: &str,
) -> Result<(Vec<Candidate>, Option<u64>), SearchError> {
    let answer: Answer = parse_json(NAME, body)?;
    let Some(items) = answer.results else {
        return Err(SearchError::Parse {
            engine: NAME.to_string(),
            detail: match answer.detail {
                Some(d) => format!("API answered without results: {d}"),
                None => "the answer has no `results` array".to_string(),
            },
        });
    };
    let mut out = Vec::new();
    for item in lenient_items::<Item>(items) {
        let Some(image_url) = item.url.as_deref().and_then(|u| resolve(page_url, u)) else {
            continue;
        };
        let mut c = Candidate::new(image_url, NAME, query);
        c.rank = out.len() as u32;
        c.thumbnail_url = item.thumbnail.as_deref().and_then(|u| resolve(page_url, u));
        c.source_page = item
            .foreign_landing_url
            .as_deref()
            .and_then(|u| resolve(page_url, u));
        c.title = item.title;
        c.width = item.width;
        c.height = item.height;
        c.mime = item.filetype.as_deref().and_then(mime_of);
        c.creator = item.creator;
        c.license = item.license.map(|code| License {
            code: code.to_ascii_lowercase(),
            version: item.license_version,
            url: item
                .license_url
                .as_deref()
                .and_then(|u| resolve(page_url, u)),
        });
        out.push(c);
    }
    Ok((out, answer.page_count))
}

fn mime_of(filetype: &str) -> Option<String> {
    match filetype.to_ascii_lowercase().as_str() {
        "jpg" | "jpeg" => Some("image/jpeg".to_string()),
        "png" => Some("image/png".to_string()),
        "gif" => Some("image/gif".to_string()),
        "webp" => Some("image/webp".to_string()),
        "svg" => Some("image/svg+xml".to_string()),
        "tiff" | "tif" => Some("image/tiff".to_string()),
        _ => None,
    }
}
