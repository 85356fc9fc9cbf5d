//! Brave Image Search API: key header, results shape, key errors.

mod common;

use common::{base, failure, found, http, serve, serving};
use iat2i_retrievers::SearchError;
use iat2i_retrievers::engines::Brave;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn parses_results_with_the_key_header() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/res/v1/images/search"))
        .and(query_param("q", "xenopus laevis"))
        .and(query_param("count", "30"))
        .and(query_param("safesearch", "strict"))
        .and(header("x-subscription-token", "BSA-secret-key"))
        .respond_with(serve("brave/results.json"))
        .expect(1)
        .mount(&server)
        .await;
    let brave = Brave::new(http(), "BSA-secret-key").with_base_url(base(&server));
    assert!(!format!("{brave:?}").contains("BSA-secret-key"));
    let found = found(&brave, "xenopus laevis").await;
    assert_eq!(found.len(), 2, "a result without properties.url is skipped");
    let c = &found[0];
    assert_eq!(
        c.image_url.as_str(),
        "https://upload.wikimedia.org/wikipedia/commons/4/4f/Xenopus_laevis_%28cropped%29.jpg"
    );
    assert!(
        c.thumbnail_url
            .as_ref()
            .unwrap()
            .as_str()
            .starts_with("https://imgs.search.brave.com/")
    );
    assert_eq!(
        c.source_page.as_ref().unwrap().as_str(),
        "https://en.wikipedia.org/wiki/African_clawed_frog"
    );
    assert_eq!((c.width, c.height), (Some(1600), Some(1067)));
    assert_eq!((found[1].width, found[1].height), (None, None));
    assert_eq!(found[1].title.as_deref(), Some("Xénope lisse — 非洲爪蟾"));
}

#[tokio::test]
async fn a_bad_key_is_a_configuration_error_without_the_key() {
    let server = serving(
        "/res/v1/images/search",
        ResponseTemplate::new(422).set_body_raw(
            common::fixture("brave/invalid_token.json"),
            "application/json",
        ),
    )
    .await;
    let brave = Brave::new(http(), "BSA-wrong-key").with_base_url(base(&server));
    let err = failure(&brave, "x").await;
    assert!(matches!(err, SearchError::Config { .. }), "{err}");
    assert!(
        err.to_string().contains("SUBSCRIPTION_TOKEN_INVALID"),
        "{err}"
    );
    assert!(!err.to_string().contains("BSA-wrong-key"), "{err}");
}

#[tokio::test]
async fn an_empty_key_fails_before_any_request() {
    let server = MockServer::start().await;
    Mock::given(path("/res/v1/images/search"))
        .respond_with(serve("brave/results.json"))
        .expect(0)
        .mount(&server)
        .await;
    let brave = Brave::new(http(), " ").with_base_url(base(&server));
    let err = failure(&brave, "x").await;
    assert!(err.to_string().contains("BRAVE_API_KEY"), "{err}");
}
