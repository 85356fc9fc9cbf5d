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

/// A server that records what reaches it (the host a redirect points to).
async fn elsewhere() -> MockServer {
    let other = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(serve("brave/results.json"))
        .mount(&other)
        .await;
    other
}

/// The key header is one `reqwest` does not strip on redirects: a redirect to another
/// host must not be followed at all.
#[tokio::test]
async fn the_key_never_follows_a_redirect_to_another_host() {
    let other = elsewhere().await;
    // Same address, another host name: `localhost` instead of `127.0.0.1`.
    let target = format!(
        "http://localhost:{}/res/v1/images/search?q=x",
        other.address().port()
    );
    let server = serving(
        "/res/v1/images/search",
        ResponseTemplate::new(302).insert_header("location", target.as_str()),
    )
    .await;
    let brave = Brave::new(http(), "BSA-secret-key").with_base_url(base(&server));
    let err = failure(&brave, "xenopus laevis").await;
    assert!(err.to_string().contains("another host"), "{err}");
    assert!(!err.to_string().contains("BSA-secret-key"), "{err}");
    let reached = other.received_requests().await.unwrap_or_default();
    assert!(reached.is_empty(), "the redirect was followed: {reached:?}");
}

#[tokio::test]
async fn a_redirect_within_the_host_is_followed_with_the_key() {
    let server = MockServer::start().await;
    Mock::given(path("/res/v1/images/search"))
        .respond_with(ResponseTemplate::new(301).insert_header("location", "/v2/images/search?q=x"))
        .mount(&server)
        .await;
    Mock::given(path("/v2/images/search"))
        .and(header("x-subscription-token", "BSA-secret-key"))
        .respond_with(serve("brave/results.json"))
        .expect(1)
        .mount(&server)
        .await;
    let brave = Brave::new(http(), "BSA-secret-key").with_base_url(base(&server));
    assert_eq!(found(&brave, "xenopus laevis").await.len(), 2);
}
