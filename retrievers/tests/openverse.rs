//! Openverse: results, licences, paging, token and failures.

mod common;

use common::{base, http, serve};
use iat2i_retrievers::engines::Openverse;
use iat2i_retrievers::{ImageSearch, SearchError, SearchQuery};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn pages(server: &MockServer) {
    for (page, fixture) in [("1", "openverse/page1.json"), ("2", "openverse/page2.json")] {
        Mock::given(method("GET"))
            .and(path("/v1/images/"))
            .and(query_param("q", "xenopus"))
            .and(query_param("page", page))
            .and(query_param("page_size", "20"))
            .and(query_param("mature", "false"))
            .respond_with(serve(fixture))
            .expect(1)
            .mount(server)
            .await;
    }
}

#[tokio::test]
async fn parses_licensed_results_over_pages() {
    let server = MockServer::start().await;
    pages(&server).await;
    let ov = Openverse::new(http()).with_base_url(base(&server));
    let found = ov.search("xenopus", &SearchQuery::default()).await.unwrap();
    assert_eq!(found.len(), 3);
    let c = &found[0];
    assert_eq!(c.title.as_deref(), Some("Krallenfrosch – Xénope 🐸"));
    assert_eq!(
        c.source_page.as_ref().unwrap().as_str(),
        "https://commons.wikimedia.org/w/index.php?curid=1203040"
    );
    let lic = c.license.as_ref().unwrap();
    assert_eq!(
        (lic.code.as_str(), lic.version.as_deref()),
        ("by-sa", Some("4.0"))
    );
    assert!(lic.is_open());
    assert_eq!(c.creator.as_deref(), Some("USFWS Mountain-Prairie"));
    assert_eq!((c.width, c.height), (Some(1024), Some(683)));
    assert!(
        c.thumbnail_url
            .as_ref()
            .unwrap()
            .as_str()
            .ends_with("/thumb/")
    );
    // Missing creator and size stay unknown.
    assert_eq!((found[1].creator.as_deref(), found[1].width), (None, None));
    assert_eq!(found[1].mime.as_deref(), Some("image/png"));
    assert_eq!(found[2].title, None);
    assert_eq!(found[2].image_url.host_str(), Some("live.staticflickr.com"));
    assert_eq!(found[2].license.as_ref().unwrap().code, "pdm");
}

#[tokio::test]
async fn sends_the_token_but_never_shows_it() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/images/"))
        .and(header("authorization", "Bearer ov-secret-token-123"))
        .respond_with(serve("openverse/empty.json"))
        .expect(1)
        .mount(&server)
        .await;
    let ov = Openverse::new(http())
        .with_base_url(base(&server))
        .with_token("ov-secret-token-123");
    assert!(format!("{ov:?}").contains("***"));
    assert!(!format!("{ov:?}").contains("ov-secret-token-123"));
    assert!(
        ov.search("x", &SearchQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn rejected_token_is_a_configuration_error() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/images/"))
        .respond_with(ResponseTemplate::new(401).set_body_raw(
            common::fixture("openverse/invalid_token.json"),
            "application/json",
        ))
        .mount(&server)
        .await;
    let ov = Openverse::new(http())
        .with_base_url(base(&server))
        .with_token("bad");
    let err = ov.search("x", &SearchQuery::default()).await.unwrap_err();
    assert!(matches!(err, SearchError::Config { .. }), "{err}");
    assert!(!err.to_string().contains("bad\""), "{err}");
}

#[tokio::test]
async fn throttling_then_success_and_truncated_answers() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/images/"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "0")
                .set_body_raw(
                    common::fixture("openverse/throttled.json"),
                    "application/json",
                ),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    pages(&server).await;
    let ov = Openverse::new(http()).with_base_url(base(&server));
    assert_eq!(
        ov.search("xenopus", &SearchQuery::default())
            .await
            .unwrap()
            .len(),
        3
    );

    let server = MockServer::start().await;
    Mock::given(path("/v1/images/"))
        .respond_with(serve("openverse/truncated.json"))
        .mount(&server)
        .await;
    let ov = Openverse::new(http()).with_base_url(base(&server));
    let err = ov
        .search("xenopus", &SearchQuery::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("truncated JSON"), "{err}");
}

#[tokio::test]
async fn an_answer_without_results_says_why() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/images/"))
        .respond_with(serve("openverse/throttled.json"))
        .mount(&server)
        .await;
    let ov = Openverse::new(http()).with_base_url(base(&server));
    let err = ov.search("x", &SearchQuery::default()).await.unwrap_err();
    assert!(err.to_string().contains("Request was throttled"), "{err}");
}
