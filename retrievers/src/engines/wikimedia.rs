//! Wikimedia Commons through the MediaWiki API: keyless, and every file licensed.

use std::collections::HashMap;

use async_trait::async_trait;
use serde::Deserialize;
use url::Url;

use super::endpoint::Endpoint;
use super::paging::{Paging, gather};
use super::util::{
    Links, dim, lenient_items, nothing_asked, parse_json, ranked, resolve, strip_html, text,
};
use crate::{Candidate, HttpClient, ImageSearch, License, SearchError, SearchQuery};

const NAME: &str = "wikimedia";
const DEFAULT_BASE: &str = "https://commons.wikimedia.org/";
/// Result pages fetched at most for one query.
const MAX_PAGES: usize = 5;
/// Files per API call (`gsrlimit`); extmetadata makes larger pages slow.
const PAGE_SIZE: usize = 50;

/// Wikimedia Commons: `GET {base}/w/api.php?action=query&format=json&formatversion=2
/// &generator=search&gsrsearch=…&gsrnamespace=6&gsrlimit=…&prop=imageinfo
/// &iiprop=url|size|mime|extmetadata&iiurlwidth=…`, following `continue` for more.
///
/// Licence, artist and description page come from `extmetadata`. Wikimedia asks
/// clients for a descriptive User-Agent with contact details: set yours with
/// [`WikimediaCommons::with_user_agent`].
#[derive(Debug, Clone)]
pub struct WikimediaCommons {
    site: Endpoint,
    thumb_width: u32,
}

impl WikimediaCommons {
    /// Search `https://commons.wikimedia.org/w/api.php` with `http`.
    pub fn new(http: HttpClient) -> Self {
        let mut site = Endpoint::new(NAME, http, DEFAULT_BASE);
        site.set_user_agent(format!(
            "iat2i/{} (https://crates.io/crates/iat2i; reference-image search) reqwest",
            env!("CARGO_PKG_VERSION")
        ));
        WikimediaCommons {
            site,
            thumb_width: 640,
        }
    }

    /// Use another site root (a mirror, a test server); the API is at `w/api.php` below it.
    pub fn with_base_url(mut self, base: Url) -> Self {
        self.site.set_base(base);
        self
    }

    /// The width of the thumbnails requested (`iiurlwidth`, default 640).
    pub fn with_thumb_width(mut self, width: u32) -> Self {
        self.thumb_width = width.max(1);
        self
    }

    /// The User-Agent sent to Wikimedia; include a way to contact you, as its policy asks.
    pub fn with_user_agent(mut self, ua: impl Into<String>) -> Self {
        self.site.set_user_agent(ua.into());
        self
    }

    fn api_url(&self, query: &str, limit: usize, safe: bool) -> Result<Url, SearchError> {
        let mut url = self.site.url("w/api.php")?;
        // Commons has no safe-search switch; `filetype:bitmap` keeps results to raster
        // images (no PDFs, audio or video).
        let _ = safe;
        let search = format!("{query} filetype:bitmap");
        url.query_pairs_mut()
            .append_pair("action", "query")
            .append_pair("format", "json")
            .append_pair("formatversion", "2")
            .append_pair("generator", "search")
            .append_pair("gsrsearch", &search)
            .append_pair("gsrnamespace", "6")
            .append_pair("gsrlimit", &limit.clamp(1, PAGE_SIZE).to_string())
            .append_pair("prop", "imageinfo")
            .append_pair("iiprop", "url|size|mime|extmetadata")
            .append_pair("iiurlwidth", &self.thumb_width.to_string())
            .append_pair(
                "iiextmetadatafilter",
                "ObjectName|ImageDescription|Artist|LicenseShortName|License|LicenseUrl",
            )
            .append_pair("iiextmetadatalanguage", "en")
            .append_pair("uselang", "en");
        Ok(url)
    }
}

#[async_trait]
impl ImageSearch for WikimediaCommons {
    fn name(&self) -> &str {
        NAME
    }

    async fn search(&self, query: &str, opts: &SearchQuery) -> Result<Vec<Candidate>, SearchError> {
        if nothing_asked(query, opts) {
            return Ok(Vec::new());
        }
        let first = self.api_url(query, opts.limit, opts.safe_search)?;
        let paging = Paging::new(first.clone(), opts.limit, MAX_PAGES);
        gather(&self.site, paging, |resp, _| {
            let (found, cont) = parse_answer(&resp.body, &resp.url, query)?;
            let next = cont.filter(|c| !c.is_empty()).map(|c| {
                let mut url = first.clone();
                url.query_pairs_mut().extend_pairs(&c);
                url
            });
            Ok((found, next))
        })
        .await
    }
}

#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(default)]
    query: Option<QueryPart>,
    #[serde(default, rename = "continue")]
    cont: Option<HashMap<String, serde_json::Value>>,
    #[serde(default)]
    error: Option<ApiError>,
}

#[derive(Debug, Deserialize)]
struct ApiError {
    #[serde(default, deserialize_with = "text")]
    code: Option<String>,
    #[serde(default, deserialize_with = "text")]
    info: Option<String>,
}

#[derive(Debug, Deserialize)]
struct QueryPart {
    #[serde(default)]
    pages: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Page {
    #[serde(default, deserialize_with = "text")]
    title: Option<String>,
    #[serde(default)]
    index: Option<i64>,
    #[serde(default)]
    imageinfo: Vec<ImageInfo>,
}

#[derive(Debug, Deserialize)]
struct ImageInfo {
    #[serde(default, deserialize_with = "text")]
    url: Option<String>,
    #[serde(default, deserialize_with = "text")]
    thumburl: Option<String>,
    #[serde(default, deserialize_with = "text")]
    descriptionurl: Option<String>,
    #[serde(default, deserialize_with = "text")]
    mime: Option<String>,
    #[serde(default, deserialize_with = "dim")]
    width: Option<u32>,
    #[serde(default, deserialize_with = "dim")]
    height: Option<u32>,
    #[serde(default, deserialize_with = "metadata")]
    extmetadata: HashMap<String, MetaValue>,
}

/// `extmetadata` is an object, except for files without metadata, where PHP sends an
/// empty array `[]`; anything but an object is read as no metadata, and entries that
/// are not `{"value": …}` are skipped, so the file itself is kept.
fn metadata<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<HashMap<String, MetaValue>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    let Some(serde_json::Value::Object(map)) = v else {
        return Ok(HashMap::new());
    };
    Ok(map
        .into_iter()
        .filter_map(|(k, v)| serde_json::from_value(v).ok().map(|m| (k, m)))
        .collect())
}

#[derive(Debug, Deserialize)]
struct MetaValue {
    #[serde(default, deserialize_with = "text")]
    value: Option<String>,
}

type Continue = HashMap<String, String>;

/// Parse one API answer: candidates in search order, and the `continue` parameters.
pub(crate) fn parse_answer(
    body: &[u8],
    page_url: &Url,
    query: &str,
) -> Result<(Vec<Candidate>, Option<Continue>), SearchError> {
    let answer: Answer = parse_json(NAME, body)?;
    if let Some(err) = answer.error {
        return Err(SearchError::Parse {
            engine: NAME.to_string(),
            detail: format!(
                "API error {}: {}",
                err.code.unwrap_or_default(),
                err.info.unwrap_or_default()
            ),
        });
    }
    let mut pages: Vec<Page> = answer
        .query
        .map(|q| lenient_items(q.pages))
        .unwrap_or_default();
    pages.sort_by_key(|p| p.index.unwrap_or(i64::MAX));
    let out: Vec<Candidate> = pages
        .into_iter()
        .filter_map(|page| candidate(page, page_url, query))
        .collect();
    let next = answer.cont.map(|m| {
        m.into_iter()
            .filter_map(|(k, v)| match v {
                serde_json::Value::String(s) => Some((k, s)),
                serde_json::Value::Number(n) => Some((k, n.to_string())),
                _ => None,
            })
            .collect()
    });
    Ok((ranked(out), next))
}

fn candidate(page: Page, page_url: &Url, query: &str) -> Option<Candidate> {
    let info = page.imageinfo.into_iter().next()?;
    let meta = |k: &str| {
        info.extmetadata
            .get(k)
            .and_then(|m| m.value.as_deref())
            .map(strip_html)
            .filter(|s| !s.is_empty())
    };
    // The title stays raw here: `Links::candidate` makes it plain text, once.
    let object_name = info
        .extmetadata
        .get("ObjectName")
        .and_then(|m| m.value.clone())
        .filter(|s| !s.trim().is_empty());
    let title = object_name.or_else(|| page.title.as_deref().map(file_title));
    let links = Links {
        image: info.url.as_deref(),
        thumbnail: info.thumburl.as_deref(),
        page: info.descriptionurl.as_deref(),
        title: title.as_deref(),
    };
    let mut c = links.candidate(NAME, query, page_url)?;
    c.width = info.width;
    c.height = info.height;
    c.mime = info.mime.clone();
    c.creator = meta("Artist");
    c.license = license(
        meta("License"),
        meta("LicenseShortName"),
        meta("LicenseUrl").and_then(|u| resolve(page_url, &u)),
    );
    Some(c)
}

/// "File:Xenopus laevis 01.jpg" -> "Xenopus laevis 01".
fn file_title(t: &str) -> String {
    let t = t.strip_prefix("File:").unwrap_or(t);
    match t.rsplit_once('.') {
        Some((stem, ext)) if ext.len() <= 4 && !stem.is_empty() => stem.to_string(),
        _ => t.to_string(),
    }
}

/// `License` is a code such as `cc-by-sa-4.0` or `pd`; `LicenseShortName` a label such
/// as `CC BY-SA 4.0` or `Public domain`.
fn license(code: Option<String>, short: Option<String>, url: Option<Url>) -> Option<License> {
    let raw = code.or_else(|| short.map(|s| s.replace(' ', "-")))?;
    let raw = raw.to_ascii_lowercase();
    let (code, version) = match raw.rsplit_once('-') {
        Some((c, v)) if v.chars().next().is_some_and(|ch| ch.is_ascii_digit()) => {
            (c.to_string(), Some(v.to_string()))
        }
        _ => (raw.clone(), None),
    };
    Some(License { code, version, url })
}
