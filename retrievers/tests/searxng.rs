//! SearXNG JSON output, relative and protocol-relative URLs, and JSON-disabled instances.

mod common;

use common::{failure, found, http, serve, serving};
use iat2i_retrievers::SearchError;
use iat2i_retrievers::engines::Searxng;
use url::Url;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// An instance served under a path prefix, without a trailing slash.
fn searxng(server: &MockServer) -> Searxng {
    Searxng::new(
        http(),
        Url::parse(&format!("{}/searx", server.uri())).unwrap(),
    )
}

#[tokio::test]
async fn parses_image_results_and_skips_others() {
    let server = MockServer::start().await;
    for (pageno, fixture) in [("1", "searxng/results.json"), ("2", "searxng/empty.json")] {
        Mock::given(method("GET"))
            .and(path("/searx/search"))
            .and(query_param("q", "xenopus laevis"))
            .and(query_param("format", "json"))
            .and(query_param("categories", "images"))
            .and(query_param("safesearch", "2"))
            .and(query_param("pageno", pageno))
            .respond_with(serve(fixture))
            .expect(1)
            .mount(&server)
            .await;
    }
    let found = found(&searxng(&server), "xenopus laevis").await;
    assert_eq!(found.len(), 3, "the web result without img_src is skipped");
    let c = &found[0];
    // Protocol-relative `img_src`: https, though the instance answered over http.
    assert_eq!(
        c.image_url.as_str(),
        "https://upload.wikimedia.org/wikipedia/commons/4/4f/Xenopus_laevis_%28cropped%29.jpg"
    );
    assert_eq!(c.thumbnail_url, None);
    assert_eq!((c.width, c.height), (Some(1600), Some(1067)));
    assert_eq!(c.creator.as_deref(), Some("Brian Gratwicke"));
    assert_eq!(c.mime.as_deref(), Some("image/jpeg"));
    let proxied = &found[1];
    assert_eq!(proxied.image_url.host_str(), Some("127.0.0.1"));
    assert_eq!(proxied.image_url.path(), "/image_proxy");
    assert_eq!(proxied.title.as_deref(), Some("Xénope lisse — 非洲爪蟾"));
    assert_eq!((found[2].width, found[2].height), (None, None));
    assert!(found.iter().all(|c| c.engine == "searxng"));
}

#[tokio::test]
async fn json_disabled_instance_gets_a_clear_error() {
    let server = MockServer::start().await;
    Mock::given(path("/searx/search"))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_raw(common::fixture("searxng/forbidden.html"), "text/html"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let err = failure(&searxng(&server), "x").await;
    assert!(matches!(err, SearchError::Blocked { .. }), "{err}");
    assert!(err.to_string().contains("search.formats"), "{err}");
}

#[tokio::test]
async fn empty_and_html_answers() {
    let server = serving("/searx/search", serve("searxng/empty.json")).await;
    assert!(found(&searxng(&server), "x").await.is_empty());

    let server = serving("/searx/search", serve("bing/changed_layout.html")).await;
    let err = failure(&searxng(&server), "x").await;
    assert!(
        err.to_string().contains("HTML where JSON was expected"),
        "{err}"
    );
}
