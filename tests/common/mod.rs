//! Shared test helpers: fixtures, wiremock responders and request readers here; stub
//! search and selection in `stubs`, form decoding in `multipart`, a whole pipeline
//! against one server in `harness`.
#![allow(dead_code, unused_imports)]

mod comfy;
mod eval_judges;
mod examples;
mod generators;
mod harness;
mod media;
mod multipart;
mod stubs;

pub use comfy::{Comfy, HistoryScript, WsScript, comfy_workflow};
pub use eval_judges::*;
pub use examples::{
    INHERITED, engine_and_images, example_in, iat2i, iat2i_binary, local_search, shown,
    skip_without_ort, tiny_model,
};
pub use generators::*;
pub use harness::{Harness, event_kind};
pub use media::{chromium, encode, ort_available, scene, skip_or_fail};
pub use multipart::{Form, Part, header, sent_images};
pub use stubs::{StubSearch, StubSelector, reference};

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use iat2i::prelude::*;
use serde_json::Value;
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, Request as WireRequest, Respond, ResponseTemplate};

pub const KEY: &str = "sk-test-do-not-leak-4242";

pub fn fixture_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/openai")
        .join(name)
}

pub fn fixture_bytes(name: &str) -> Bytes {
    Bytes::from(std::fs::read(fixture_path(name)).unwrap())
}

pub fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture_bytes(name)).unwrap()
}

/// The PNG inside an images fixture.
pub fn fixture_image(name: &str) -> Vec<u8> {
    use base64::Engine as _;
    let v = fixture_json(name);
    base64::engine::general_purpose::STANDARD
        .decode(v["data"][0]["b64_json"].as_str().unwrap())
        .unwrap()
}

/// `image` is the PNG inside images fixture `name`.
pub fn assert_image_is(image: &GeneratedImage, name: &str) {
    let expected = fixture_image(name);
    assert!(
        image.bytes.as_ref() == expected.as_slice(),
        "not the image of {name}"
    );
}

/// Answers with each template in turn, repeating the last.
pub struct Sequence {
    templates: Vec<ResponseTemplate>,
    next: AtomicUsize,
}

impl Sequence {
    pub fn of_fixtures(names: &[&str]) -> Self {
        Sequence::new(
            names
                .iter()
                .map(|n| ResponseTemplate::new(200).set_body_json(fixture_json(n)))
                .collect(),
        )
    }
    pub fn new(templates: Vec<ResponseTemplate>) -> Self {
        Sequence {
            templates,
            next: AtomicUsize::new(0),
        }
    }
}

impl Respond for Sequence {
    fn respond(&self, _: &WireRequest) -> ResponseTemplate {
        let i = self.next.fetch_add(1, Ordering::SeqCst);
        self.templates[i.min(self.templates.len() - 1)].clone()
    }
}

/// An OpenAI-style 429 (a rate limit, to be retried after 0 s): what a storm answers.
pub fn rate_limited() -> ResponseTemplate {
    ResponseTemplate::new(429)
        .insert_header("retry-after", "0")
        .set_body_json(
            serde_json::json!({"error": {"message": "Rate limit reached",
            "type": "requests", "code": "rate_limit_exceeded"}}),
        )
}

/// Chat calls asking for the schema `name` get `fixtures` in turn.
pub async fn mount_chat(server: &MockServer, schema: &str, fixtures: &[&str]) {
    mount_chat_replies(server, schema, Sequence::of_fixtures(fixtures)).await;
}

/// Chat calls asking for the schema `name` get `replies`.
pub async fn mount_chat_replies(
    server: &MockServer,
    schema: &str,
    replies: impl Respond + 'static,
) {
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_partial_json(
            serde_json::json!({"response_format": {"json_schema": {"name": schema}}}),
        ))
        .respond_with(replies)
        .mount(server)
        .await;
}

/// `/v1/images/{endpoint}` answers `fixtures` in turn.
pub async fn mount_images(server: &MockServer, endpoint: &str, fixtures: &[&str]) {
    Mock::given(method("POST"))
        .and(path(format!("/v1/images/{endpoint}")))
        .respond_with(Sequence::of_fixtures(fixtures))
        .mount(server)
        .await;
}

/// The chat calls of a run that needs a reference: the gate asks for one, the candidate
/// judge picks, the judge accepts.
pub async fn mount_reference_run(server: &MockServer) {
    mount_chat(server, "assessment", &["gate_needs_reference.json"]).await;
    mount_chat(server, "pick", &["chat_pick.json"]).await;
    mount_chat(server, "verdict", &["verdict_aligned.json"]).await;
}

/// Image calls to `endpoint` get fixture `name` after `delay` (a slow provider).
pub async fn mount_slow_images(
    server: &MockServer,
    endpoint: &str,
    name: &str,
    delay: std::time::Duration,
) {
    Mock::given(method("POST"))
        .and(path(format!("/v1/images/{endpoint}")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture_json(name))
                .set_delay(delay),
        )
        .mount(server)
        .await;
}

/// Both image endpoints share one sequence (rounds may switch between them).
pub async fn mount_images_any(server: &MockServer, fixtures: &[&str]) {
    let seq = Arc::new(Sequence::of_fixtures(fixtures));
    for endpoint in ["generations", "edits"] {
        Mock::given(method("POST"))
            .and(path(format!("/v1/images/{endpoint}")))
            .respond_with(SharedSeq(seq.clone()))
            .mount(server)
            .await;
    }
}

pub struct SharedSeq(pub Arc<Sequence>);
impl Respond for SharedSeq {
    fn respond(&self, r: &WireRequest) -> ResponseTemplate {
        self.0.respond(r)
    }
}

pub fn test_http() -> HttpClient {
    HttpClient::builder()
        .connect_timeout(Duration::from_secs(2))
        .read_timeout(Duration::from_secs(5))
        .total_timeout(Duration::from_secs(5))
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
        .max_retries(2)
        .per_host_per_second(0)
        .allow_host("127.0.0.1")
        .build()
        .unwrap()
}

/// A client that gives up after 300 ms and never retries, for servers that hang.
pub fn impatient_http() -> HttpClient {
    HttpClient::builder()
        .total_timeout(Duration::from_millis(300))
        .read_timeout(Duration::from_millis(300))
        .max_retries(0)
        .build()
        .unwrap()
}

/// An answer that arrives after 30 s.
pub fn hanging(fixture: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(fixture_json(fixture))
        .set_delay(Duration::from_secs(30))
}

pub fn base(server: &MockServer) -> String {
    format!("{}/v1", server.uri())
}

pub fn chat_client(server: &MockServer, http: HttpClient) -> OpenAiChat {
    OpenAiChat::new(http, &base(server), "gpt-4o-mini")
        .unwrap()
        .with_api_key(Secret::new(KEY))
}

pub fn images_client(server: &MockServer) -> OpenAiImages {
    OpenAiImages::new(test_http(), &base(server), "gpt-image-1")
        .unwrap()
        .with_api_key(Secret::new(KEY))
}

/// Requests received on `path`, in order.
pub async fn requests_to(server: &MockServer, p: &str) -> Vec<WireRequest> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == p)
        .collect()
}

/// Chat requests that asked for schema `name`.
pub async fn chat_requests(server: &MockServer, schema: &str) -> Vec<Value> {
    requests_to(server, "/v1/chat/completions")
        .await
        .into_iter()
        .map(|r| json_body(&r))
        .filter(|b| b["response_format"]["json_schema"]["name"] == schema)
        .collect()
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A request's body as JSON.
pub fn json_body(request: &WireRequest) -> Value {
    serde_json::from_slice(&request.body).unwrap()
}

/// `request` carried [`KEY`] as its bearer token.
pub fn assert_sent_key(request: &WireRequest) {
    let auth = header(request, "authorization");
    assert!(
        auth == format!("Bearer {KEY}"),
        "OPENAI_API_KEY was not sent"
    );
}

/// The `image_url` URLs in message `index` of a chat request body, in order.
pub fn image_urls(chat_body: &Value, index: usize) -> Vec<String> {
    let parts = chat_body["messages"][index]["content"].as_array().unwrap();
    parts
        .iter()
        .filter(|p| p["type"] == "image_url")
        .map(|p| p["image_url"]["url"].as_str().unwrap().to_string())
        .collect()
}

/// A pipeline against `server` with stub search and selection.
pub fn pipeline(
    server: &MockServer,
    search: StubSearch,
    selector: StubSelector,
    mode: GateMode,
    rounds: u32,
) -> iat2i::PipelineBuilder {
    Pipeline::builder()
        .lmm(Arc::new(chat_client(server, test_http())))
        .generator(Arc::new(images_client(server)))
        .engines(vec![Arc::new(search)])
        .selector(Arc::new(selector))
        .gate_mode(mode)
        .max_rounds(rounds)
}
