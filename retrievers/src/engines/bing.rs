//! Bing image search, keyless: the HTML of `/images/search`, the engine the IA-T2I
//! paper used.

use async_trait::async_trait;
use scraper::{ElementRef, Html, Selector};
use serde::Deserialize;
use url::Url;

use super::endpoint::Endpoint;
use super::paging::{Paging, gather};
use super::util::{
    Links, image_mime, looks_like_challenge, nothing_asked, parse_resolution, ranked, text,
};
use crate::{Candidate, HttpClient, ImageSearch, SearchError, SearchQuery};

const NAME: &str = "bing";
const DEFAULT_BASE: &str = "https://www.bing.com/";
/// Results Bing serves per page.
const PAGE_SIZE: usize = 35;
/// Pages fetched at most for one query.
const MAX_PAGES: usize = 6;

/// Bing images, scraped from `GET {base}/images/search?q=…&first=…&count=35`.
///
/// Each result is an `a.iusc` element whose `m` attribute holds HTML-escaped JSON:
/// `murl` (image), `turl` (thumbnail), `purl` (page), `t` (title). Sizes come from the
/// `W x H · format` caption next to it when Bing shows one.
#[derive(Debug, Clone)]
pub struct Bing {
    site: Endpoint,
}

impl Bing {
    /// Search `https://www.bing.com` with `http`.
    pub fn new(http: HttpClient) -> Self {
        Bing {
            site: Endpoint::new(NAME, http, DEFAULT_BASE),
        }
    }

    /// Use another base URL (a proxy, a test server).
    pub fn with_base_url(mut self, base: Url) -> Self {
        self.site.set_base(base);
        self
    }

    /// Send `ua` as the User-Agent of every request to Bing, instead of the
    /// [`HttpClient`]'s (scraped pages may answer some browsers' User-Agents better).
    pub fn with_user_agent(mut self, ua: impl Into<String>) -> Self {
        self.site.set_user_agent(ua.into());
        self
    }

    /// The URL of page `n` (from 0).
    fn page_url(&self, query: &str, n: usize, safe: bool) -> Result<Url, SearchError> {
        let first = n * PAGE_SIZE + 1;
        let mut url = self.site.url("images/search")?;
        url.query_pairs_mut()
            .append_pair("q", query)
            .append_pair("first", &first.to_string())
            .append_pair("count", &PAGE_SIZE.to_string())
            .append_pair("form", "HDRSC2")
            .append_pair("adlt", if safe { "strict" } else { "off" });
        Ok(url)
    }
}

#[async_trait]
impl ImageSearch for Bing {
    fn name(&self) -> &str {
        NAME
    }

    async fn search(&self, query: &str, opts: &SearchQuery) -> Result<Vec<Candidate>, SearchError> {
        if nothing_asked(query, opts) {
            return Ok(Vec::new());
        }
        let safe = opts.safe_search;
        let paging = Paging::new(self.page_url(query, 0, safe)?, opts.limit, MAX_PAGES);
        gather(&self.site, paging, |resp, n| {
            let found = parse_page(&resp.text(), &resp.url, query)?;
            Ok((found, Some(self.page_url(query, n + 1, safe)?)))
        })
        .await
    }
}

/// The JSON in an `a.iusc` element's `m` attribute.
#[derive(Debug, Deserialize)]
struct Meta {
    #[serde(default, deserialize_with = "text")]
    murl: Option<String>,
    #[serde(default, deserialize_with = "text")]
    turl: Option<String>,
    #[serde(default, deserialize_with = "text")]
    purl: Option<String>,
    #[serde(default, deserialize_with = "text")]
    t: Option<String>,
}

/// Parse one Bing images results page into candidates (ranks in page order).
pub(crate) fn parse_page(
    html: &str,
    page_url: &Url,
    query: &str,
) -> Result<Vec<Candidate>, SearchError> {
    let doc = Html::parse_document(html);
    let sel = |s: &str| {
        Selector::parse(s).map_err(|e| SearchError::Parse {
            engine: NAME.to_string(),
            detail: format!("selector {s}: {e}"),
        })
    };
    let result_sel = sel("a.iusc")?;
    let info_sel = sel(".img_info span.nowrap, .img_info span")?;
    let mut out = Vec::new();
    let mut saw_result_markup = false;
    for a in doc.select(&result_sel) {
        saw_result_markup = true;
        let Some(meta) = a
            .attr("m")
            .and_then(|m| serde_json::from_str::<Meta>(m).ok())
        else {
            continue;
        };
        out.extend(candidate(&a, meta, &info_sel, page_url, query));
    }
    if out.is_empty() && !saw_result_markup {
        return empty_or_error(&doc, html);
    }
    Ok(ranked(out))
}

fn candidate(
    a: &ElementRef<'_>,
    meta: Meta,
    info_sel: &Selector,
    page_url: &Url,
    query: &str,
) -> Option<Candidate> {
    let links = Links {
        image: meta.murl.as_deref(),
        thumbnail: meta.turl.as_deref(),
        page: meta.purl.as_deref(),
        title: meta.t.as_deref(),
    };
    let mut c = links.candidate(NAME, query, page_url)?;
    if let Some(info) = result_box(a).and_then(|b| b.select(info_sel).next()) {
        let info: String = info.text().collect();
        if let Some((w, h)) = parse_resolution(&info) {
            c.width = Some(w);
            c.height = Some(h);
        }
        c.mime = info.split('·').nth(1).and_then(image_mime);
    }
    Some(c)
}

/// The element holding one result: the closest `div.imgpt` or `li` above the link.
fn result_box<'a>(a: &ElementRef<'a>) -> Option<ElementRef<'a>> {
    a.ancestors()
        .filter_map(ElementRef::wrap)
        .find(|e| e.value().name() == "li" || e.value().classes().any(|c| c == "imgpt"))
}

/// A page without result links: a real "no results" page, a consent/CAPTCHA wall, or a
/// page we do not recognise.
///
/// "No results" needs the results list itself in the document (an element, not a word
/// in a script: a challenge page's inline script may name the list's class too).
fn empty_or_error(doc: &Html, html: &str) -> Result<Vec<Candidate>, SearchError> {
    let results_list = Selector::parse(
        "ul.dgControl_list, [id^=\"mmComponent_images\"], .dgControl, #b_content .b_no",
    )
    .map_err(|e| SearchError::Parse {
        engine: NAME.to_string(),
        detail: format!("results-list selector: {e}"),
    })?;
    if doc.select(&results_list).next().is_some() {
        return Ok(Vec::new());
    }
    if looks_like_challenge(html) {
        return Err(SearchError::Blocked {
            engine: NAME.to_string(),
            detail: "Bing served a consent or CAPTCHA page instead of results; retry later, or use another engine".to_string(),
        });
    }
    Err(SearchError::Parse {
        engine: NAME.to_string(),
        detail: "no image results markup (a.iusc) in the page; Bing may have changed its HTML"
            .to_string(),
    })
}
