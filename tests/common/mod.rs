//! Shared test helpers: fixtures, wiremock responders, stub search and selector.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use iat2i::prelude::*;
use iat2i::retrievers::{License, SearchError};
use iat2i::selectors::{SelectError, StageScores};
use serde_json::Value;
use url::Url;
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

/// Chat calls asking for the schema `name` get `fixtures` in turn.
pub async fn mount_chat(server: &MockServer, schema: &str, fixtures: &[&str]) {
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_partial_json(
            serde_json::json!({"response_format": {"json_schema": {"name": schema}}}),
        ))
        .respond_with(Sequence::of_fixtures(fixtures))
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

/// A search engine that returns one candidate per query and remembers the queries.
#[derive(Default, Clone)]
pub struct StubSearch {
    pub queries: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl ImageSearch for StubSearch {
    fn name(&self) -> &str {
        "stub"
    }
    async fn search(&self, query: &str, _: &SearchQuery) -> Result<Vec<Candidate>, SearchError> {
        self.queries.lock().unwrap().push(query.to_string());
        let slug: String = query.chars().filter(char::is_ascii_alphanumeric).collect();
        let mut c = Candidate::new(
            Url::parse(&format!("https://upload.example.org/{slug}.png")).unwrap(),
            "stub",
            query,
        );
        c.source_page = Some(Url::parse(&format!("https://example.org/wiki/{slug}")).unwrap());
        c.title = Some(format!("{query} (photo)"));
        c.license = Some(License {
            code: "cc-by-sa".into(),
            version: Some("4.0".into()),
            url: None,
        });
        c.creator = Some("A. Photographer".into());
        Ok(vec![c])
    }
}

pub fn reference(bytes: Bytes, url: &str, query: &str) -> Reference {
    let mut c = Candidate::new(Url::parse(url).unwrap(), "stub", query);
    c.source_page = Some(Url::parse("https://example.org/wiki/Graphorn").unwrap());
    c.license = Some(License {
        code: "cc-by-sa".into(),
        version: Some("4.0".into()),
        url: None,
    });
    Reference {
        bytes,
        mime: "image/png".into(),
        width: 8,
        height: 8,
        candidate: c,
        scores: StageScores {
            combined: Some(0.8),
            ..StageScores::default()
        },
    }
}

/// A selector that returns reference A with alternate B, remembering each request.
#[derive(Default, Clone)]
pub struct StubSelector {
    pub requests: Arc<Mutex<Vec<SelectionRequest>>>,
}

#[async_trait]
impl Selector for StubSelector {
    async fn select(
        &self,
        request: &SelectionRequest,
        candidates: Vec<Candidate>,
    ) -> Result<Selection, SelectError> {
        self.requests.lock().unwrap().push(request.clone());
        let n = self.requests.lock().unwrap().len();
        let q = candidates
            .first()
            .map(|c| c.query.clone())
            .unwrap_or_default();
        Ok(Selection {
            best: reference(
                fixture_bytes("reference_a.png"),
                &format!("https://upload.example.org/a{n}.png"),
                &q,
            ),
            alternates: vec![reference(
                fixture_bytes("reference_b.png"),
                &format!("https://upload.example.org/b{n}.png"),
                &q,
            )],
            ranked: Vec::new(),
            dropped: Vec::new(),
            stages: Vec::new(),
            judge_reason: Some("the clearest picture".into()),
        })
    }
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
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
        .filter(|b| b["response_format"]["json_schema"]["name"] == schema)
        .collect()
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The names of the multipart parts, in order.
pub fn part_names(body: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(body);
    text.match_indices("name=\"")
        .map(|(i, m)| {
            let rest = &text[i + m.len()..];
            rest[..rest.find('"').unwrap()].to_string()
        })
        .collect()
}

/// The text value of multipart part `name`.
pub fn part_text(body: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let start = text.find(&format!("name=\"{name}\""))?;
    let rest = &text[start..];
    let body_start = rest.find("\r\n\r\n")? + 4;
    let rest = &rest[body_start..];
    Some(rest[..rest.find("\r\n--")?].to_string())
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
