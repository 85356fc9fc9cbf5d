//! A whole pipeline against one wiremock server speaking OpenAI's protocols, with stub
//! search and selection, and everything each test reads back afterwards.

use std::sync::{Arc, Mutex};

use iat2i::prelude::*;
use serde_json::Value;
use wiremock::{MockServer, Request as WireRequest};

use super::*;

/// The server, the stubs, and the events of the last run.
pub struct Harness {
    pub server: MockServer,
    pub search: StubSearch,
    pub selector: StubSelector,
    events: Arc<Mutex<Vec<PipelineEvent>>>,
}

impl Harness {
    /// A server whose gate answers `gate` and whose judge answers `verdicts`, each in
    /// turn (an empty list mounts nothing).
    pub async fn start(gate: &[&str], verdicts: &[&str]) -> Harness {
        let server = MockServer::start().await;
        if !gate.is_empty() {
            mount_chat(&server, "assessment", gate).await;
        }
        if !verdicts.is_empty() {
            mount_chat(&server, "verdict", verdicts).await;
        }
        Harness {
            server,
            search: StubSearch::default(),
            selector: StubSelector::default(),
            events: Arc::default(),
        }
    }

    /// `/v1/images/{endpoint}` answers `fixtures` in turn.
    pub async fn images(&self, endpoint: &str, fixtures: &[&str]) {
        mount_images(&self.server, endpoint, fixtures).await;
    }

    /// A pipeline builder wired to the server and stubs that records its events.
    pub fn builder(&self, mode: GateMode, rounds: u32) -> iat2i::PipelineBuilder {
        let sink = self.events.clone();
        pipeline(
            &self.server,
            self.search.clone(),
            self.selector.clone(),
            mode,
            rounds,
        )
        .on_event(move |e| sink.lock().unwrap().push(e.clone()))
    }

    /// Runs `prompt` in the default gate mode with at most three rounds; it must succeed.
    pub async fn generate(&self, prompt: &str) -> Outcome {
        self.run(GateMode::FromPrompt, Request::new(prompt)).await
    }

    /// Runs `request` with at most three rounds; it must succeed.
    pub async fn run(&self, mode: GateMode, request: Request) -> Outcome {
        self.builder(mode, 3)
            .build()
            .unwrap()
            .run(request)
            .await
            .unwrap()
    }

    /// Runs `request` with at most three rounds; it must fail.
    pub async fn fail(&self, mode: GateMode, request: Request) -> PipelineError {
        let pipeline = self.builder(mode, 3).build().unwrap();
        pipeline.run(request).await.unwrap_err()
    }

    /// The `event` tag of every event so far, in order.
    pub fn event_kinds(&self) -> Vec<String> {
        self.events.lock().unwrap().iter().map(event_kind).collect()
    }

    /// The queries the stub search was asked, in order.
    pub fn queries(&self) -> Vec<String> {
        self.search.queries.lock().unwrap().clone()
    }

    /// The selection requests the stub selector got, in order.
    pub fn selections(&self) -> Vec<SelectionRequest> {
        self.selector.requests.lock().unwrap().clone()
    }

    /// Requests to `/v1/images/edits`, in order.
    pub async fn edits(&self) -> Vec<WireRequest> {
        requests_to(&self.server, "/v1/images/edits").await
    }

    /// Requests to `/v1/images/generations`, in order.
    pub async fn generations(&self) -> Vec<WireRequest> {
        requests_to(&self.server, "/v1/images/generations").await
    }

    /// Bodies of the chat requests that asked for schema `name`.
    pub async fn chat(&self, schema: &str) -> Vec<Value> {
        chat_requests(&self.server, schema).await
    }
}

/// An event's `event` tag, as serialized.
pub fn event_kind(event: &PipelineEvent) -> String {
    let v = serde_json::to_value(event).unwrap();
    v["event"].as_str().unwrap().to_string()
}
