//! What every engine hands on: titles as plain text (no tags, entities decoded once)
//! and protocol-relative links as `https:`, whatever the scheme of the endpoint.

mod common;

use common::{answer, base, found, http, serve};
use iat2i_retrievers::engines::{
    Bing, Brave, DuckDuckGo, LocalFolder, Openverse, Searxng, WikimediaCommons,
};
use iat2i_retrievers::{Candidate, ImageSearch};
use serde_json::json;
use wiremock::{MockServer, ResponseTemplate};

/// The title each engine sends, with Bing's `<b>` highlighting, entities an engine
/// escaped a second time, and a literal `&lt;` that must be decoded only once.
const RAW_TITLE: &str =
    "<b>Xenopus</b> laevis &amp; Krallenfrosch &#39;Xénope&#39; &quot;frog&quot; &amp;lt;3";
const CLEAN_TITLE: &str = "Xenopus laevis & Krallenfrosch 'Xénope' \"frog\" &lt;3";

fn json_body(v: serde_json::Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(v.to_string(), "application/json; charset=utf-8")
}

/// An http:// endpoint (wiremock) serving `engine`'s answer for one result whose
/// image and thumbnail links are protocol-relative.
async fn engine_serving(name: &str) -> (MockServer, Box<dyn ImageSearch>) {
    let server = MockServer::start().await;
    let img = format!("//img.example/{name}.jpg");
    let thumb = format!("//img.example/{name}-thumb.jpg");
    let engine: Box<dyn ImageSearch> = match name {
        "duckduckgo" => {
            answer(&server, "/", serve("duckduckgo/search_page.html")).await;
            let body = json!({"query": "frog", "queryEncoded": "frog", "response_type": "images",
                "results": [{"height": 600, "image": img, "image_token": "t", "source": "Bing",
                    "thumbnail": thumb, "thumbnail_token": "tt", "title": RAW_TITLE,
                    "url": "//frogs.example/page", "width": 800}],
                "vqd": {"frog": "4-1"}});
            answer(&server, "/i.js", json_body(body)).await;
            Box::new(DuckDuckGo::new(http()).with_base_url(base(&server)))
        }
        "openverse" => {
            let body = json!({"result_count": 1, "page_count": 1, "page_size": 20, "page": 1,
                "results": [{"id": "0aff", "title": RAW_TITLE, "url": img, "thumbnail": thumb,
                    "foreign_landing_url": "//www.flickr.com/photos/x/1", "license": "by",
                    "license_version": "2.0", "width": 800, "height": 600, "filetype": "jpg"}],
                "warnings": []});
            answer(&server, "/v1/images/", json_body(body)).await;
            Box::new(Openverse::new(http()).with_base_url(base(&server)))
        }
        "brave" => {
            let body = json!({"type": "images", "query": {"original": "frog"},
                "results": [{"type": "image_result", "title": RAW_TITLE,
                    "url": "//frogs.example/page", "source": "frogs.example",
                    "thumbnail": {"src": thumb, "width": 500, "height": 375},
                    "properties": {"url": img, "placeholder": thumb, "width": 800, "height": 600}}]});
            answer(&server, "/res/v1/images/search", json_body(body)).await;
            Box::new(Brave::new(http(), "key").with_base_url(base(&server)))
        }
        "searxng" => {
            let body = json!({"query": "frog", "number_of_results": 0,
                "results": [{"template": "images.html", "url": "//frogs.example/page",
                    "title": RAW_TITLE, "content": "", "img_src": img, "thumbnail_src": thumb,
                    "resolution": "800 x 600", "img_format": "jpeg", "engine": "bing",
                    "engines": ["bing"], "positions": [1], "score": 1.0, "category": "images"}],
                "answers": [], "corrections": [], "infoboxes": [], "suggestions": [],
                "unresponsive_engines": []});
            answer(&server, "/search", json_body(body)).await;
            Box::new(Searxng::new(http(), base(&server)))
        }
        "wikimedia" => {
            let body = json!({"batchcomplete": true, "query": {"pages": [{"pageid": 1, "ns": 6,
                "title": "File:Frog.jpg", "index": 1, "imagerepository": "local",
                "imageinfo": [{"width": 800, "height": 600, "url": img, "thumburl": thumb,
                    "descriptionurl": "//commons.wikimedia.org/wiki/File:Frog.jpg",
                    "mime": "image/jpeg",
                    "extmetadata": {"ObjectName": {"value": RAW_TITLE, "source": "commons-desc-page"}}}]}]}});
            answer(&server, "/w/api.php", json_body(body)).await;
            Box::new(WikimediaCommons::new(http()).with_base_url(base(&server)))
        }
        "bing" => {
            // The `m` attribute is JSON, HTML-escaped once more for the attribute.
            let m = json!({"purl": "//frogs.example/page", "murl": img, "turl": thumb,
                "t": format!("\u{e000}{RAW_TITLE}\u{e001}"), "mid": "A1"});
            let attr = m
                .to_string()
                .replace('&', "&amp;")
                .replace('"', "&quot;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            let html = format!(
                "<!DOCTYPE html><html><body><div id=\"mmComponent_images_1\"><ul class=\"dgControl_list\">\
                 <li data-idx=\"1\"><div class=\"imgpt\"><a class=\"iusc\" m=\"{attr}\" href=\"/images/search?view=detailV2\"></a>\
                 <div class=\"img_info\"><span class=\"nowrap\">800 x 600 · jpeg</span></div></div></li></ul></div></body></html>"
            );
            answer(
                &server,
                "/images/search",
                ResponseTemplate::new(200).set_body_raw(html, "text/html; charset=utf-8"),
            )
            .await;
            Box::new(Bing::new(http()).with_base_url(base(&server)))
        }
        other => panic!("no engine {other}"),
    };
    (server, engine)
}

const ENGINES: [&str; 6] = [
    "bing",
    "duckduckgo",
    "wikimedia",
    "openverse",
    "brave",
    "searxng",
];

async fn first(name: &str) -> Candidate {
    let (_server, engine) = engine_serving(name).await;
    let found = found(engine.as_ref(), "frog").await;
    found
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{name} found nothing"))
}

#[tokio::test]
async fn every_engine_gives_plain_text_titles() {
    for name in ENGINES {
        let c = first(name).await;
        assert_eq!(c.title.as_deref(), Some(CLEAN_TITLE), "{name}");
    }
}

#[tokio::test]
async fn protocol_relative_links_become_https_from_an_http_endpoint() {
    for name in ENGINES {
        let c = first(name).await;
        assert_eq!(
            c.image_url.as_str(),
            format!("https://img.example/{name}.jpg"),
            "{name}"
        );
        let thumb = c.thumbnail_url.as_ref().map(|u| u.as_str().to_string());
        assert_eq!(
            thumb,
            Some(format!("https://img.example/{name}-thumb.jpg")),
            "{name}"
        );
        if let Some(page) = &c.source_page {
            assert_eq!(page.scheme(), "https", "{name}: {page}");
        }
    }
}

#[tokio::test]
async fn local_sidecar_titles_are_plain_text_too() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        common::fixture_path("local/brand-logo-red.png"),
        dir.path().join("logo.png"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("logo.json"),
        r#"{"title": "ACME <em>logo</em> &amp; mark"}"#,
    )
    .unwrap();
    let found = found(&LocalFolder::new(dir.path()), "logo").await;
    assert_eq!(found[0].title.as_deref(), Some("ACME logo & mark"));
}
