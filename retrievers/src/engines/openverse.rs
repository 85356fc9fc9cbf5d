//! Openverse: openly licensed images from many providers, keyless (a token raises
//! the rate limit).

use async_trait::async_trait;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};
use serde::Deserialize;
use url::Url;

use super::endpoint::{Endpoint, Means, StatusHint};
use super::paging::{Paging, gather};
use super::util::{
    Links, Secret, dim, image_mime, nothing_asked, parse_json, ranked, resolve, results, text,
};
use crate::{Candidate, HttpClient, ImageSearch, License, SearchError, SearchQuery};

const NAME: &str = "openverse";
const DEFAULT_BASE: &str = "https://api.openverse.org/";
/// Results per page allowed to anonymous clients.
const PAGE_SIZE: usize = 20;
/// Result pages fetched at most for one query.
const MAX_PAGES: usize = 5;

const HINTS: &[StatusHint] = &[StatusHint {
    codes: &[401, 403],
    means: Means::Config,
    hint: "the Openverse token is invalid or expired, renew it or search anonymously",
}];

/// Openverse: `GET {base}/v1/images/?q=…&page_size=20&page=N&mature=false`, answering
/// `results[].{url, thumbnail, title, foreign_landing_url, width, height, license,
/// license_version, creator, provider}` with `page_count` for paging.
#[derive(Debug, Clone)]
pub struct Openverse {
    site: Endpoint,
    token: Option<Secret>,
}

impl Openverse {
    /// Search `https://api.openverse.org` anonymously with `http`.
    pub fn new(http: HttpClient) -> Self {
        Openverse {
            site: Endpoint::new(NAME, http, DEFAULT_BASE).with_hints(HINTS),
            token: None,
        }
    }

    /// Use another base URL (a self-hosted Openverse API, a test server).
    pub fn with_base_url(mut self, base: Url) -> Self {
        self.site.set_base(base);
        self
    }

    /// Send an OAuth access token (`Authorization: Bearer …`) for a higher rate limit.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(Secret(token.into()));
        self
    }

    fn page_url(&self, query: &str, page: usize, safe: bool) -> Result<Url, SearchError> {
        let mut url = self.site.url("v1/images/")?;
        url.query_pairs_mut()
            .append_pair("q", query)
            .append_pair("page_size", &PAGE_SIZE.to_string())
            .append_pair("page", &page.to_string())
            .append_pair("mature", if safe { "false" } else { "true" });
        Ok(url)
    }

    fn headers(&self) -> Result<HeaderMap, SearchError> {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(t) = &self.token {
            let bearer = format!("Bearer {}", t.0);
            h.insert(
                AUTHORIZATION,
                self.site.header(&AUTHORIZATION, &bearer, true)?,
            );
        }
        Ok(h)
    }
}

#[async_trait]
impl ImageSearch for Openverse {
    fn name(&self) -> &str {
        NAME
    }

    async fn search(&self, query: &str, opts: &SearchQuery) -> Result<Vec<Candidate>, SearchError> {
        if nothing_asked(query, opts) {
            return Ok(Vec::new());
        }
        let safe = opts.safe_search;
        let paging = Paging::new(self.page_url(query, 1, safe)?, opts.limit, MAX_PAGES)
            .with_headers(self.headers()?);
        gather(&self.site, paging, |resp, n| {
            let (found, page_count) = parse_page(&resp.body, &resp.url, query)?;
            let next = n + 2;
            let more = page_count.is_some_and(|count| next as u64 <= count);
            let next = if more {
                Some(self.page_url(query, next, safe)?)
            } else {
                None
            };
            Ok((found, next))
        })
        .await
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
    let mut out = Vec::new();
    for item in results::<Item>(NAME, answer.results, answer.detail)? {
        let links = Links {
            image: item.url.as_deref(),
            thumbnail: item.thumbnail.as_deref(),
            page: item.foreign_landing_url.as_deref(),
            title: item.title.as_deref(),
        };
        let Some(mut c) = links.candidate(NAME, query, page_url) else {
            continue;
        };
        c.width = item.width;
        c.height = item.height;
        c.mime = item.filetype.as_deref().and_then(image_mime);
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
    Ok((ranked(out), answer.page_count))
}
