//! URL normalisation for de-duplicating candidates across engines.

use url::Url;

/// Query parameters that only track clicks and never change the image.
fn is_tracking(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.starts_with("utm_")
        || matches!(
            k.as_str(),
            "fbclid"
                | "gclid"
                | "dclid"
                | "gclsrc"
                | "msclkid"
                | "yclid"
                | "igshid"
                | "mc_cid"
                | "mc_eid"
                | "_ga"
                | "_gl"
                | "ref_src"
                | "spm"
                | "cmpid"
        )
}

/// The URL a known image proxy or detail link wraps: DuckDuckGo's
/// `external-content.duckduckgo.com/iu/?u=…`, SearXNG's `/image_proxy?url=…`, Bing's
/// detail links carrying `mediaurl=…`.
fn unwrap_proxy(url: &Url) -> Option<Url> {
    let host = url.host_str()?.to_ascii_lowercase();
    let param = if host.ends_with("external-content.duckduckgo.com") {
        "u"
    } else if url.path().ends_with("/image_proxy") {
        "url"
    } else if host.ends_with("bing.com") && url.path().starts_with("/images/search") {
        "mediaurl"
    } else {
        return None;
    };
    let inner = url.query_pairs().find(|(k, _)| k == param)?.1;
    let inner = Url::parse(&inner).ok()?;
    matches!(inner.scheme(), "http" | "https").then_some(inner)
}

/// Bing thumbnails (`tse1.mm.bing.net/th?id=OIP.…`, `th.bing.com/th/id/OIP.…`) are served
/// for the same image by Bing and DuckDuckGo; their id identifies the image.
pub(crate) fn bing_thumb_id(url: &Url) -> Option<String> {
    let host = url.host_str()?.to_ascii_lowercase();
    if !(host.ends_with(".mm.bing.net") || host == "th.bing.com") {
        return None;
    }
    if let Some(id) = url.query_pairs().find(|(k, _)| k == "id").map(|(_, v)| v) {
        return Some(id.into_owned());
    }
    let mut segs = url.path_segments()?;
    match (segs.next(), segs.next(), segs.next()) {
        (Some("th"), Some("id"), Some(id)) if !id.is_empty() => Some(id.to_string()),
        _ => None,
    }
}

/// Wikimedia's `/…/thumb/a/ab/Name.jpg/640px-Name.jpg` is a rendition of `/…/a/ab/Name.jpg`.
fn wikimedia_original(host: &str, segments: &[String]) -> Option<Vec<String>> {
    if !host.ends_with("upload.wikimedia.org") {
        return None;
    }
    let thumb = segments.iter().position(|s| s == "thumb")?;
    // project/lang/thumb/h/hh/Name.ext/NNNpx-Name.ext
    let rest = segments.get(thumb + 1..)?;
    if rest.len() != 4 {
        return None;
    }
    let mut out: Vec<String> = segments.get(..thumb)?.to_vec();
    out.extend(rest.get(..3)?.iter().cloned());
    Some(out)
}

fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

/// A key equal for URLs that name the same image: scheme, `www.`, default ports,
/// fragments, tracking parameters, parameter order and percent-encoding ignored; image
/// proxies unwrapped; Wikimedia thumbnails mapped to their original.
pub fn normalize_url(url: &Url) -> String {
    let unwrapped = unwrap_proxy(url);
    let url = unwrapped.as_ref().unwrap_or(url);
    let host = url.host_str().unwrap_or("").to_ascii_lowercase();
    let host = host
        .strip_prefix("www.")
        .unwrap_or(&host)
        .trim_end_matches('.');
    let port = match url.port() {
        Some(p) => format!(":{p}"),
        None => String::new(),
    };
    let segments: Vec<String> = url
        .path_segments()
        .map(|s| s.map(decode).collect())
        .unwrap_or_default();
    let segments = wikimedia_original(host, &segments).unwrap_or(segments);
    let mut pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !is_tracking(k))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    pairs.sort();
    let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut key = format!("{host}{port}/{}", segments.join("/"));
    if !query.is_empty() {
        key.push('?');
        key.push_str(&query.join("&"));
    }
    key
}

/// The keys under which a candidate is de-duplicated: its image URL, and its thumbnail
/// when the thumbnail identifies the image (a Bing thumbnail id, a Wikimedia thumbnail
/// or a proxied original).
pub(crate) fn dedup_keys(image: &Url, thumbnail: Option<&Url>) -> Vec<String> {
    let mut keys = vec![normalize_url(image)];
    if let Some(id) = bing_thumb_id(image) {
        keys.push(format!("bing-thumb:{id}"));
    }
    if let Some(t) = thumbnail {
        if let Some(id) = bing_thumb_id(t) {
            keys.push(format!("bing-thumb:{id}"));
        } else if unwrap_proxy(t).is_some()
            || t.host_str()
                .is_some_and(|h| h.ends_with("upload.wikimedia.org"))
        {
            keys.push(normalize_url(t));
        }
    }
    keys
}

/// True when `url` is a recognised thumbnail or proxy form of another image URL.
pub(crate) fn is_rendition(url: &Url) -> bool {
    bing_thumb_id(url).is_some()
        || unwrap_proxy(url).is_some()
        || url
            .path_segments()
            .is_some_and(|mut s| s.any(|p| p == "thumb"))
            && url
                .host_str()
                .is_some_and(|h| h.ends_with("upload.wikimedia.org"))
}
