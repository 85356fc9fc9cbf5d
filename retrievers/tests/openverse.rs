//! Openverse: results, licences, paging, token and failures.

mod common;

use common::{base, failure, found, http, serve, serving};
use iat2i_retrievers::engines::Openverse;
use iat2i_retrievers::{LicensePolicy, SearchError};
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

fn openverse(server: &MockServer) -> Openverse {
    Openverse::new(http()).with_base_url(base(server))
}

#[tokio::test]
async fn parses_licensed_results_over_pages() {
    let server = MockServer::start().await;
    pages(&server).await;
    let found = found(&openverse(&server), "xenopus").await;
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
    assert!(LicensePolicy::CommercialAndDerivatives.permits(Some(lic)));
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
    let ov = openverse(&server).with_token("ov-secret-token-123");
    assert!(format!("{ov:?}").contains("***"));
    assert!(!format!("{ov:?}").contains("ov-secret-token-123"));
    assert!(found(&ov, "x").await.is_empty());
}

#[tokio::test]
async fn rejected_token_is_a_configuration_error() {
    let server = serving(
        "/v1/images/",
        ResponseTemplate::new(401).set_body_raw(
            common::fixture("openverse/invalid_token.json"),
            "application/json",
        ),
    )
    .await;
    let err = failure(&openverse(&server).with_token("bad"), "x").await;
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
    assert_eq!(found(&openverse(&server), "xenopus").await.len(), 3);

    let server = serving("/v1/images/", serve("openverse/truncated.json")).await;
    let err = failure(&openverse(&server), "xenopus").await;
    assert!(err.to_string().contains("truncated JSON"), "{err}");
}

#[tokio::test]
async fn an_answer_without_results_says_why() {
    let server = serving("/v1/images/", serve("openverse/throttled.json")).await;
    let err = failure(&openverse(&server), "x").await;
    assert!(err.to_string().contains("Request was throttled"), "{err}");
}
