//! Helpers shared by the engine tests: fixtures and a quick client.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use iat2i_retrievers::{
    Candidate, HttpClient, HttpClientBuilder, ImageSearch, SearchError, SearchQuery,
};
use url::Url;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

pub fn fixture_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/retrievers")
        .join(rel)
}

pub fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(fixture_path(rel)).unwrap_or_else(|e| panic!("fixture {rel}: {e}"))
}

/// A response carrying a fixture with the content type the real engine sends.
pub fn serve(rel: &str) -> ResponseTemplate {
    let ct = if rel.ends_with(".json") {
        "application/json; charset=utf-8"
    } else if rel.ends_with(".html") {
        "text/html; charset=utf-8"
    } else {
        "application/octet-stream"
    };
    ResponseTemplate::new(200).set_body_raw(fixture(rel), ct)
}

/// A client builder with tiny backoffs, one retry and no rate limit, so tests do not wait.
pub fn quick() -> HttpClientBuilder {
    HttpClient::builder()
        .backoff(Duration::from_millis(1), Duration::from_millis(5))
        .max_retries(1)
        .per_host_per_second(0)
}

/// A [`quick`] client.
pub fn http() -> HttpClient {
    quick().build().unwrap()
}

pub fn base(server: &MockServer) -> Url {
    Url::parse(&format!("{}/", server.uri())).unwrap()
}

/// A server answering every request for `at` with `resp`.
pub async fn serving(at: &str, resp: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    answer(&server, at, resp).await;
    server
}

/// Make `server` answer every request for `at` with `resp`.
pub async fn answer(server: &MockServer, at: &str, resp: ResponseTemplate) {
    Mock::given(path(at)).respond_with(resp).mount(server).await;
}

/// Search `query` with the default options, expecting results (or none).
pub async fn found(engine: &dyn ImageSearch, query: &str) -> Vec<Candidate> {
    engine
        .search(query, &SearchQuery::default())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", engine.name()))
}

/// Search `query` with the default options, expecting a failure.
pub async fn failure(engine: &dyn ImageSearch, query: &str) -> SearchError {
    match engine.search(query, &SearchQuery::default()).await {
        Ok(found) => panic!("{}: expected an error, found {found:?}", engine.name()),
        Err(e) => e,
    }
}
