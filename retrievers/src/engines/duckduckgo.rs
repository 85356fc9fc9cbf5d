//! DuckDuckGo image search, keyless: a `vqd` token from the HTML page, then the
//! `i.js` JSON endpoint.

use async_trait::async_trait;
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue, REFERER};
use serde::Deserialize;
use url::Url;

use super::endpoint::{Endpoint, Means, StatusHint};
use super::paging::{Paging, gather};
use super::util::{
    Links, dim, endpoint, looks_like_challenge, nothing_asked, parse_json, ranked, results, text,
};
use crate::{Candidate, HttpClient, ImageSearch, SearchError, SearchQuery};

const NAME: &str = "duckduckgo";
const DEFAULT_BASE: &str = "https://duckduckgo.com/";
/// Result pages fetched at most for one query (DuckDuckGo serves 100 per page).
const MAX_PAGES: usize = 4;

const HINTS: &[StatusHint] = &[StatusHint {
    codes: &[403],
    means: Means::Blocked,
    hint: "DuckDuckGo rejected the vqd token or is rate-limiting this address, retry later",
}];

/// DuckDuckGo images.
///
/// 1. `GET {base}/?q=…&iar=images&iax=images&ia=images` and read the `vqd` token;
/// 2. `GET {base}/i.js?o=json&q=…&vqd=…&p=1&l=wt-wt&f=,,,,,` with DuckDuckGo's Referer,
///    answering `results[].{image, thumbnail, url, title, width, height, source}` and a
///    relative `next` link for the following page.
#[derive(Debug, Clone)]
pub struct DuckDuckGo {
    site: Endpoint,
}

impl DuckDuckGo {
    /// Search `https://duckduckgo.com` with `http`.
    pub fn new(http: HttpClient) -> Self {
        DuckDuckGo {
            site: Endpoint::new(NAME, http, DEFAULT_BASE).with_hints(HINTS),
        }
    }

    /// Use another base URL (a proxy, a test server).
    pub fn with_base_url(mut self, base: Url) -> Self {
        self.site.set_base(base);
        self
    }

    /// Send `ua` as the User-Agent of every request to DuckDuckGo, instead of the
    /// [`HttpClient`]'s (scraped pages may answer some browsers' User-Agents better).
    pub fn with_user_agent(mut self, ua: impl Into<String>) -> Self {
        self.site.set_user_agent(ua.into());
        self
    }

    async fn vqd(&self, query: &str) -> Result<String, SearchError> {
        let mut url = self.site.url("")?;
        url.query_pairs_mut()
            .append_pair("q", query)
            .append_pair("iar", "images")
            .append_pair("iax", "images")
            .append_pair("ia", "images");
        let html = self.site.get(&url, HeaderMap::new()).await?.text();
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

    /// The headers of the page's own `i.js` requests.
    fn json_headers(&self) -> Result<HeaderMap, SearchError> {
        let referer = self.site.url("")?;
        let mut h = HeaderMap::new();
        h.insert(
            REFERER,
            self.site.header(&REFERER, referer.as_str(), false)?,
        );
        h.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, text/javascript, */*; q=0.01"),
        );
        h.insert(
            "x-requested-with",
            HeaderValue::from_static("XMLHttpRequest"),
        );
        Ok(h)
    }
}

#[async_trait]
impl ImageSearch for DuckDuckGo {
    fn name(&self) -> &str {
        NAME
    }

    async fn search(&self, query: &str, opts: &SearchQuery) -> Result<Vec<Candidate>, SearchError> {
        if nothing_asked(query, opts) {
            return Ok(Vec::new());
        }
        let base = self.site.base()?;
        let vqd = self.vqd(query).await?;
        let mut first = self.site.url("i.js")?;
        first
            .query_pairs_mut()
            .append_pair("o", "json")
            .append_pair("q", query)
            .append_pair("vqd", &vqd)
            .append_pair("p", if opts.safe_search { "1" } else { "-2" })
            .append_pair("l", "wt-wt")
            .append_pair("f", ",,,,,");
        let paging = Paging::new(first, opts.limit, MAX_PAGES).with_headers(self.json_headers()?);
        gather(&self.site, paging, |resp, _| {
            let (found, next) = parse_results(&resp.body, &resp.url, query)?;
            Ok((found, next.and_then(|n| next_url(&base, &n, &vqd))))
        })
        .await
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

/// The `vqd` token in the search page: in the script of the JavaScript page (`vqd="4-…"`,
/// `vqd='4-…'`, `vqd=4-…&` or `"vqd":"4-…"`), or in the hidden form field of the no-JS
/// page (`<input type="hidden" name="vqd" value="4-…">`, html.duckduckgo.com).
pub(crate) fn parse_vqd(html: &str) -> Option<String> {
    parse_vqd_in_script(html).or_else(|| parse_vqd_field(html))
}

/// A token is short and made of letters, digits, `-` and `_`.
fn clean_token(value: &str) -> Option<String> {
    let value = value.trim();
    let ok = !value.is_empty()
        && value.len() <= 200
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    ok.then(|| value.to_string())
}

/// The no-JS page's hidden form field, in whatever attribute order and quoting.
fn parse_vqd_field(html: &str) -> Option<String> {
    if !html.contains("vqd") {
        return None;
    }
    let page = scraper::Html::parse_document(html);
    let selector = scraper::Selector::parse(r#"input[name="vqd"]"#).ok()?;
    page.select(&selector)
        .find_map(|input| input.value().attr("value").and_then(clean_token))
}

fn parse_vqd_in_script(html: &str) -> Option<String> {
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
        if let Some(token) = rest.get(..end).and_then(clean_token) {
            return Some(token);
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
    let mut out = Vec::new();
    for item in results::<Item>(NAME, answer.results, None)? {
        let links = Links {
            image: item.image.as_deref(),
            thumbnail: item.thumbnail.as_deref(),
            page: item.url.as_deref(),
            title: item.title.as_deref(),
        };
        let Some(mut c) = links.candidate(NAME, query, page_url) else {
            continue;
        };
        c.width = item.width;
        c.height = item.height;
        out.push(c);
    }
    Ok((ranked(out), answer.next))
}

#[cfg(test)]
mod vqd_tests {
    use super::parse_vqd;

    #[test]
    fn the_form_field_is_read_in_any_attribute_order_and_quoting() {
        let cases = [
            r#"<form><input type="hidden" name="vqd" value="4-123_abc" /></form>"#,
            r#"<input value='4-123_abc' type=hidden name='vqd'>"#,
            r#"<INPUT NAME="vqd" VALUE="4-123_abc">"#,
        ];
        for html in cases {
            assert_eq!(parse_vqd(html).as_deref(), Some("4-123_abc"), "{html}");
        }
    }

    #[test]
    fn a_field_without_a_clean_token_is_no_token() {
        for html in [
            r#"<input name="vqd" value="">"#,
            r#"<input name="vqd" value="4-1&quot;><script>">"#,
            r#"<input name="vqd">"#,
            r#"<input name="q" value="4-123">"#,
        ] {
            assert_eq!(parse_vqd(html), None, "{html}");
        }
    }
}
