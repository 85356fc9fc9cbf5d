//! Usage is counted per run: two runs at once on one pipeline (with the default selector
//! and its LMM candidate judge), then a third, each report carrying only its own tokens.
//! The selector runs for real on images served by wiremock, with a stub embedder (the
//! CLIP path is tested in full_stack.rs) and the in-memory store.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use common::*;
use iat2i::prelude::*;
use iat2i::retrievers::SearchError;
use iat2i::selectors::{Embedder, SelectError, StoreChoice};
use image::DynamicImage;
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Finds the two pictures the web server serves.
struct TwoPictures(String);

#[async_trait]
impl ImageSearch for TwoPictures {
    fn name(&self) -> &str {
        "two-pictures"
    }
    async fn search(&self, query: &str, _: &SearchQuery) -> Result<Vec<Candidate>, SearchError> {
        Ok(["a", "b"]
            .iter()
            .map(|id| {
                let url = Url::parse(&format!("{}/img/{id}.png", self.0)).unwrap();
                let mut c = Candidate::new(url, "two-pictures", query);
                c.title = Some(format!("Graphorn {id}"));
                c
            })
            .collect())
    }
}

/// A tiny deterministic embedder: images by mean colour, texts all alike.
struct MeanColour;

#[async_trait]
impl Embedder for MeanColour {
    async fn embed_images(&self, images: Vec<DynamicImage>) -> Result<Vec<Vec<f32>>, SelectError> {
        Ok(images
            .iter()
            .map(|img| {
                let rgb = img.to_rgb8();
                let n = (rgb.width() * rgb.height()).max(1) as f32;
                let mut v = vec![0.0f32; 3];
                for p in rgb.pixels() {
                    for (i, c) in p.0.iter().enumerate() {
                        v[i] += f32::from(*c) / n;
                    }
                }
                v
            })
            .collect())
    }
    async fn embed_texts(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, SelectError> {
        Ok(texts.iter().map(|_| vec![1.0, 1.0, 1.0]).collect())
    }
}

async fn web() -> MockServer {
    let web = MockServer::start().await;
    for (id, seed) in [("a", 1), ("b", 7)] {
        let png = encode(scene(seed, 320, 240), image::ImageFormat::Png);
        Mock::given(method("GET"))
            .and(path(format!("/img/{id}.png")))
            .respond_with(ResponseTemplate::new(200).set_body_raw(png, "image/png"))
            .mount(&web)
            .await;
    }
    web
}

/// A pipeline whose gate asks for a reference, whose selector runs for real on the two
/// pictures (with its LMM candidate judge), and whose judge accepts; with its servers.
async fn selecting_pipeline() -> (MockServer, MockServer, Pipeline) {
    let server = MockServer::start().await;
    mount_chat(&server, "assessment", &["gate_needs_reference.json"]).await;
    mount_chat(&server, "verdict", &["verdict_aligned.json"]).await;
    mount_chat(&server, "pick", &["chat_pick.json"]).await;
    mount_images_any(&server, &["images_green.json"]).await;
    let web = web().await;
    let selector = SelectorConfig::default()
        .embedder(Arc::new(MeanColour))
        .store(StoreChoice::Memory);
    let pipeline = Pipeline::builder()
        .lmm(Arc::new(chat_client(&server, test_http())))
        .generator(Arc::new(images_client(&server)))
        .engines(vec![Arc::new(TwoPictures(web.uri()))])
        .http(test_http())
        .selector_config(selector)
        .build()
        .unwrap();
    (server, web, pipeline)
}

#[tokio::test]
async fn concurrent_runs_on_one_pipeline_each_count_only_their_own_tokens() {
    let (server, _web, pipeline) = selecting_pipeline().await;

    let (a, b) = tokio::join!(
        pipeline.run(Request::new("A Graphorn at dusk")),
        pipeline.run(Request::new("A Graphorn at dawn")),
    );
    let c = pipeline.run(Request::new("A Graphorn at noon")).await;
    let picks = chat_requests(&server, "pick").await.len();
    assert_eq!(picks, 3, "the candidate judge ran once per run");
    for out in [a, b, c] {
        let r = out.unwrap().report;
        let u = &r.usage;
        assert_eq!(u.candidate_judge.calls, 1, "{}: {u:?}", r.request.prompt);
        assert_eq!(u.candidate_judge.total_tokens, 1163);
        assert_eq!((u.gate.calls, u.judge.calls), (1, 1));
        assert_eq!(u.lmm_total.calls, 3);
        assert_eq!(u.lmm_total.total_tokens, 3 * 1163);
        assert_eq!(u.images.images, 1);
        let selection = r.retrievals[0].selection.as_ref().unwrap();
        assert!(selection.judge_reason.is_some());
    }
}

#[tokio::test]
async fn answers_billed_and_then_unusable_are_counted() {
    // The judge answers prose twice (the call and its one retry): both answers were billed,
    // so the report counts them although the review failed.
    let server = MockServer::start().await;
    mount_chat(&server, "verdict", &["chat_garbage.json"]).await;
    mount_images_any(&server, &["images_green.json"]).await;
    let pipeline = Pipeline::builder()
        .lmm(Arc::new(chat_client(&server, test_http())))
        .generator(Arc::new(images_client(&server)))
        .gate_mode(GateMode::Never)
        .max_rounds(1)
        .build()
        .unwrap();
    let out = pipeline.run(Request::new("A red apple")).await.unwrap();
    let u = &out.report.usage;
    assert_eq!(chat_requests(&server, "verdict").await.len(), 2);
    assert_eq!(u.judge.calls, 2, "{u:?}");
    assert_eq!(u.judge.total_tokens, 2 * 1163, "{u:?}");
    assert_eq!(u.lmm_total.total_tokens, 2 * 1163, "{u:?}");
    let error = &out.report.errors[0].message;
    assert!(error.contains("2326 tokens were billed"), "{error}");
}

/// Adds up the chat tokens each kind of paid call reports to the guard.
#[derive(Default)]
struct Tally(std::sync::Mutex<Vec<(iat2i::PaidCall, u64)>>);

#[async_trait::async_trait]
impl iat2i::RunGuard for Tally {
    async fn before_call(&self, _: iat2i::PlannedCall) -> Result<(), iat2i::Halt> {
        Ok(())
    }
    async fn after_call(&self, call: iat2i::PaidCall, usage: &iat2i::guard::CallUsage) {
        self.0.lock().unwrap().push((call, usage.chat.total_tokens));
    }
}

#[tokio::test]
async fn the_candidate_judges_tokens_reach_the_guard() {
    let (_server, _web, pipeline) = selecting_pipeline().await;
    let tally = Arc::new(Tally::default());
    let options = iat2i::pipeline::RunOptions::default().with_guard(tally.clone());
    let out = pipeline
        .run_with(Request::new("A Graphorn at dusk"), options)
        .await
        .unwrap();
    let calls = tally.0.lock().unwrap().clone();
    let of = |kind: iat2i::PaidCall| -> u64 {
        calls
            .iter()
            .filter(|(c, _)| *c == kind)
            .map(|(_, t)| t)
            .sum()
    };
    assert_eq!(of(iat2i::PaidCall::Select), 1163, "{calls:?}");
    let reported: u64 = calls.iter().map(|(_, t)| t).sum();
    assert_eq!(
        reported, out.report.usage.lmm_total.total_tokens,
        "{calls:?}"
    );
}
