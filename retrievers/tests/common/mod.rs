//! Helpers shared by the engine tests: fixtures and a quick client.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use iat2i_retrievers::HttpClient;
use url::Url;
use wiremock::{MockServer, ResponseTemplate};

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

/// A client with tiny backoffs and no rate limit, so tests do not wait.
pub fn http() -> HttpClient {
    HttpClient::builder()
        .backoff(Duration::from_millis(1), Duration::from_millis(5))
        .max_retries(1)
        .per_host_per_second(0)
        .build()
        .unwrap()
}

pub fn base(server: &MockServer) -> Url {
    Url::parse(&format!("{}/", server.uri())).unwrap()
}
