//! SearXNG, the self-hosted metasearch engine, through its JSON output.

use async_trait::async_trait;
use serde::Deserialize;
use url::Url;

use super::endpoint::{Endpoint, Means, StatusHint};
use super::paging::{Paging, gather};
use super::util::{
    Links, image_mime, nothing_asked, parse_json, parse_resolution, ranked, results, text,
};
use crate::{Candidate, HttpClient, ImageSearch, SearchError, SearchQuery};

const NAME: &str = "searxng";
/// Result pages fetched at most for one query.
const MAX_PAGES: usize = 3;

const HINTS: &[StatusHint] = &[StatusHint {
    codes: &[403],
    means: Means::Blocked,
    hint: "the instance refuses JSON output: add `json` to `search.formats` in its settings.yml",
}];

/// A SearXNG instance: `GET {base}/search?q=…&format=json&categories=images&pageno=N
/// &safesearch=…`, answering `results[].{img_src, thumbnail_src, url, title,
/// resolution "W x H", engine}`.
///
/// The instance must allow JSON output (`search.formats: [html, json]` in its
/// `settings.yml`); otherwise it answers 403 and this engine says so.
#[derive(Debug, Clone)]
pub struct Searxng {
    site: Endpoint,
}

impl Searxng {
    /// Search the instance at `base_url` (such as `http://localhost:8888/`) with `http`.
    pub fn new(http: HttpClient, base_url: Url) -> Self {
        Searxng {
            site: Endpoint::at(NAME, http, base_url).with_hints(HINTS),
        }
    }

    /// Use another base URL.
    pub fn with_base_url(mut self, base: Url) -> Self {
        self.site.set_base(base);
        self
    }

    fn page_url(&self, query: &str, page: usize, safe: bool) -> Result<Url, SearchError> {
        let mut url = self.site.url("search")?;
        url.query_pairs_mut()
            .append_pair("q", query)
            .append_pair("format", "json")
            .append_pair("categories", "images")
            .append_pair("pageno", &page.to_string())
            .append_pair("safesearch", if safe { "2" } else { "0" });
        Ok(url)
    }
}

#[async_trait]
impl ImageSearch for Searxng {
    fn name(&self) -> &str {
        NAME
    }

    async fn search(&self, query: &str, opts: &SearchQuery) -> Result<Vec<Candidate>, SearchError> {
        if nothing_asked(query, opts) {
            return Ok(Vec::new());
        }
        let safe = opts.safe_search;
        let paging = Paging::new(self.page_url(query, 1, safe)?, opts.limit, MAX_PAGES);
        gather(&self.site, paging, |resp, n| {
            let found = parse_page(&resp.body, &resp.url, query)?;
            Ok((found, Some(self.page_url(query, n + 2, safe)?)))
        })
        .await
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
    let mut out = Vec::new();
    for item in results::<Item>(NAME, answer.results, None)? {
        let links = Links {
            image: item.img_src.as_deref(),
            thumbnail: item.thumbnail_src.as_deref(),
            page: item.url.as_deref(),
            title: item.title.as_deref(),
        };
        let Some(mut c) = links.candidate(NAME, query, page_url) else {
            continue;
        };
        if let Some((w, h)) = item.resolution.as_deref().and_then(parse_resolution) {
            c.width = Some(w);
            c.height = Some(h);
        }
        c.mime = item.img_format.as_deref().and_then(image_mime);
        c.creator = item.author;
        out.push(c);
    }
    Ok(ranked(out))
}
