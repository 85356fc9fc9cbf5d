//! Bing image search, keyless: the HTML of `/images/search`, the engine the IA-T2I
//! paper used.

use std::collections::HashSet;

use async_trait::async_trait;
use scraper::{ElementRef, Html, Selector};
use serde::Deserialize;
use url::Url;

use super::util::{
    base_or, endpoint, http_error, looks_like_challenge, parse_resolution, resolve, text,
};
use crate::{Candidate, HttpClient, ImageSearch, SearchError, SearchQuery, Trust};

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
    http: HttpClient,
    base: Option<Url>,
}

impl Bing {
    /// Search `https://www.bing.com` with `http`.
    pub fn new(http: HttpClient) -> Self {
        Bing { http, base: None }
    }

    /// Use another base URL (a proxy, a test server).
    pub fn with_base_url(mut self, base: Url) -> Self {
        self.base = Some(base);
        self
    }

    fn page_url(&self, query: &str, first: usize, safe: bool) -> Result<Url, SearchError> {
        let base = base_or(NAME, &self.base, DEFAULT_BASE)?;
        let mut url = endpoint(NAME, &base, "images/search")?;
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
        let mut out: Vec<Candidate> = Vec::new();
        let mut seen = HashSet::new();
        if query.trim().is_empty() || opts.limit == 0 {
            return Ok(out);
        }
        for page in 0..MAX_PAGES {
            let url = self.page_url(query, page * PAGE_SIZE + 1, opts.safe_search)?;
            let parsed = match self.http.get(&url, Trust::Trusted).await {
                Ok(resp) => parse_page(&resp.text(), &resp.url, query),
                Err(e) => Err(http_error(NAME, e)),
            };
            let found = match parsed {
                Ok(found) => found,
                // Keep what earlier pages gave; report only a first-page failure.
                Err(e) if page > 0 => {
                    tracing::warn!(error = %e, page, "bing: stopping paging");
                    break;
                }
                Err(e) => return Err(e),
            };
            let before = out.len();
            for mut c in found {
                if seen.insert(c.image_url.clone()) && out.len() < opts.limit {
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
        if let Some(c) = candidate(&a, meta, &info_sel, page_url, query, out.len()) {
            out.push(c);
        }
    }
    if out.is_empty() && !saw_result_markup {
        return empty_or_error(html);
    }
    Ok(out)
}

fn candidate(
    a: &ElementRef<'_>,
    meta: Meta,
    info_sel: &Selector,
    page_url: &Url,
    query: &str,
    rank: usize,
) -> Option<Candidate> {
    let image_url = resolve(page_url, meta.murl.as_deref()?)?;
    let mut c = Candidate::new(image_url, NAME, query);
    c.rank = rank as u32;
    c.thumbnail_url = meta.turl.as_deref().and_then(|t| resolve(page_url, t));
    c.source_page = meta.purl.as_deref().and_then(|p| resolve(page_url, p));
    c.title = meta.t.map(|t| clean_title(&t)).filter(|t| !t.is_empty());
    if let Some(info) = result_box(a).and_then(|b| b.select(info_sel).next()) {
        let info: String = info.text().collect();
        if let Some((w, h)) = parse_resolution(&info) {
            c.width = Some(w);
            c.height = Some(h);
        }
        c.mime = info.split('·').nth(1).and_then(mime_of);
    }
    Some(c)
}

/// The element holding one result: the closest `div.imgpt` or `li` above the link.
fn result_box<'a>(a: &ElementRef<'a>) -> Option<ElementRef<'a>> {
    a.ancestors()
        .filter_map(ElementRef::wrap)
        .find(|e| e.value().name() == "li" || e.value().classes().any(|c| c == "imgpt"))
}

/// Bing marks matched words with U+E000/U+E001; drop them and collapse whitespace.
fn clean_title(t: &str) -> String {
    let t: String = t
        .chars()
        .filter(|c| !('\u{e000}'..='\u{e001}').contains(c))
        .collect();
    t.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn mime_of(format: &str) -> Option<String> {
    let f = format.trim().to_ascii_lowercase();
    let m = match f.as_str() {
        "jpeg" | "jpg" => "image/jpeg",
        "png" => "image/png",
        "gif" | "animatedgif" => "image/gif",
        "webp" => "image/webp",
        "bmp" => "image/bmp",
        "svg" => "image/svg+xml",
        "tiff" => "image/tiff",
        _ => return None,
    };
    Some(m.to_string())
}

/// A page without result links: a real "no results" page, a consent/CAPTCHA wall, or a
/// page we do not recognise.
fn empty_or_error(html: &str) -> Result<Vec<Candidate>, SearchError> {
    let lower = html
        .get(..html.len().min(300_000))
        .unwrap_or(html)
        .to_ascii_lowercase();
    let no_results = [
        "dgcontrol",
        "mmcomponent_images",
        "there are no results for",
    ];
    if no_results.iter().any(|m| lower.contains(m)) {
        return Ok(Vec::new());
    }
    if looks_like_challenge(&lower) {
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
