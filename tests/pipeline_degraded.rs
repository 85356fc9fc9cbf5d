//! What a run lost on the way: the report's `degraded` list, the `Degraded` event,
//! `require_reference`, the dropped candidates of a failed selection, and the gate's
//! fallback to generating first.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use common::*;
use iat2i::prelude::*;
use iat2i::retrievers::License;
use iat2i::selectors::{Dropped, SelectError, Stage};
use iat2i::{Cause, StageName};

/// A selector that always fails with the error `make` builds.
#[derive(Clone)]
struct FailingSelector(fn(Vec<Candidate>) -> SelectError);

#[async_trait]
impl Selector for FailingSelector {
    async fn select(
        &self,
        _: &SelectionRequest,
        candidates: Vec<Candidate>,
    ) -> Result<Selection, SelectError> {
        Err((self.0)(candidates))
    }
}

fn missing_model(_: Vec<Candidate>) -> SelectError {
    SelectError::Embedding(
        "cannot read /nowhere/vision/model.onnx: No such file or directory (os error 2)".into(),
    )
}

fn every_one_refused(candidates: Vec<Candidate>) -> SelectError {
    let dropped = candidates
        .into_iter()
        .enumerate()
        .map(|(i, mut candidate)| {
            candidate.license = Some(License {
                code: "cc-by-nc-nd".into(),
                version: None,
                url: None,
            });
            Dropped {
                candidate,
                stage: if i == 0 {
                    Stage::Prefilter
                } else {
                    Stage::Fetch
                },
                reason: format!("reason {i}"),
            }
        })
        .collect();
    SelectError::NoCandidates { dropped }
}

fn builder(h: &Harness, selector: FailingSelector) -> iat2i::PipelineBuilder {
    h.builder(GateMode::FromPrompt, 3)
        .selector(Arc::new(selector))
}

fn events(h: &Harness) -> Vec<String> {
    h.event_kinds()
}

#[tokio::test]
async fn a_run_whose_model_is_missing_says_it_generated_without_its_reference() {
    let h = Harness::start(&["gate_needs_reference.json"], &["verdict_aligned.json"]).await;
    h.images("generations", &["images_red.json"]).await;
    let pipeline = builder(&h, FailingSelector(missing_model)).build().unwrap();
    let out = pipeline.run(Request::new("A Graphorn")).await.unwrap();

    let r = &out.report;
    assert!(r.rounds[0].references.is_empty());
    assert!(r.lost_reference());
    let d = r
        .degraded
        .iter()
        .find(|d| d.lost == Lost::Reference)
        .expect("the lost reference is recorded");
    assert_eq!(d.cause, Cause::ModelMissing);
    assert_eq!(d.stage, StageName::Select);
    assert!(d.detail.contains("model.onnx"), "{}", d.detail);
    assert!(
        events(&h).contains(&"degraded".to_string()),
        "{:?}",
        events(&h)
    );
    let json = serde_json::to_value(r).unwrap();
    assert_eq!(json["degraded"][0]["lost"], "reference");
    assert_eq!(json["degraded"][0]["cause"], "model_missing");
    assert_eq!(json["degraded"][0]["stage"], "select");
}

#[tokio::test]
async fn require_reference_fails_before_the_first_paid_image() {
    let h = Harness::start(&["gate_needs_reference.json"], &["verdict_aligned.json"]).await;
    h.images("generations", &["images_red.json"]).await;
    let pipeline = builder(&h, FailingSelector(missing_model))
        .require_reference(true)
        .build()
        .unwrap();
    let err = pipeline.run(Request::new("A Graphorn")).await.unwrap_err();

    assert!(
        matches!(err, PipelineError::ReferenceRequired { .. }),
        "{err:?}"
    );
    assert_eq!(err.stage(), Some(StageName::Select));
    assert!(
        err.to_string().contains("reference image was required"),
        "{err}"
    );
    assert!(h.generations().await.is_empty() && h.edits().await.is_empty());
    let report = err.report().unwrap();
    assert!(report.lost_reference());
    assert!(report.rounds.is_empty());
}

#[tokio::test]
async fn a_prompt_that_needs_no_reference_is_not_degraded_even_when_required() {
    let h = Harness::start(&["gate_no_reference.json"], &["verdict_aligned.json"]).await;
    h.images("generations", &["images_red.json"]).await;
    let pipeline = builder(&h, FailingSelector(missing_model))
        .require_reference(true)
        .build()
        .unwrap();
    let out = pipeline.run(Request::new("A red apple")).await.unwrap();

    assert!(out.report.degraded.is_empty(), "{:?}", out.report.degraded);
}

#[tokio::test]
async fn generate_first_with_a_required_reference_stops_and_keeps_the_image() {
    let h = Harness::start(&[], &["verdict_knowledge_gap.json"]).await;
    h.images("generations", &["images_red.json"]).await;
    let pipeline = h
        .builder(GateMode::GenerateFirst, 3)
        .selector(Arc::new(FailingSelector(missing_model)))
        .require_reference(true)
        .build()
        .unwrap();
    let err = pipeline.run(Request::new("A Graphorn")).await.unwrap_err();

    let PipelineError::ReferenceRequired { image, report, .. } = &err else {
        panic!("{err:?}")
    };
    assert_image_is(image.as_ref().unwrap(), "images_red.json");
    assert_eq!(h.generations().await.len(), 1, "no round after the loss");
    assert_eq!(report.rounds.len(), 1);
}

#[tokio::test]
async fn a_failed_selection_keeps_every_candidates_drop_reason() {
    let h = Harness::start(&["gate_needs_reference.json"], &["verdict_aligned.json"]).await;
    h.images("generations", &["images_red.json"]).await;
    let pipeline = builder(&h, FailingSelector(every_one_refused))
        .build()
        .unwrap();
    let out = pipeline.run(Request::new("A Graphorn")).await.unwrap();

    let retrieval = &out.report.retrievals[0];
    let searched = retrieval.candidates.len();
    assert!(searched >= 2, "the stub search answers each query");
    assert_eq!(retrieval.dropped.len(), searched);
    assert_eq!(retrieval.dropped[0].stage, Stage::Prefilter);
    assert_eq!(retrieval.dropped[1].reason, "reason 1");
    let json = serde_json::to_value(&out.report).unwrap();
    assert_eq!(json["retrievals"][0]["dropped"][1]["reason"], "reason 1");
    let d = &out.report.degraded;
    assert!(
        d.iter()
            .any(|d| d.lost == Lost::Reference && d.cause == Cause::AllCandidatesRefused),
        "{d:?}"
    );
}

#[tokio::test]
async fn a_rate_limited_gate_falls_back_to_generating_first() {
    let h = Harness::start(&[], &["verdict_knowledge_gap.json", "verdict_aligned.json"]).await;
    mount_chat_replies(&h.server, "assessment", rate_limited()).await;
    h.images("generations", &["images_red.json"]).await;
    h.images("edits", &["images_green.json"]).await;
    let out = h.generate("A Graphorn").await;

    assert_eq!(out.round, 2);
    assert_eq!(
        h.chat("assessment").await.len(),
        3,
        "asked once, with retries"
    );
    assert_eq!(h.queries(), ["Graphorn creature"], "the judge's queries");
    let r = &out.report;
    let d = r
        .degraded
        .iter()
        .find(|d| d.lost == Lost::GateDecision)
        .expect("the fallback is recorded");
    assert_eq!(d.cause, Cause::RateLimited);
    assert!(d.detail.contains("generating first"), "{}", d.detail);
    assert_eq!(r.errors[0].stage, StageName::Gate);
    assert_eq!(r.rounds[1].references.len(), 1);
}

#[tokio::test]
async fn require_gate_fails_a_rate_limited_run_and_says_it_was_rate_limited() {
    let h = Harness::start(&[], &[]).await;
    mount_chat_replies(&h.server, "assessment", rate_limited()).await;
    let pipeline = h
        .builder(GateMode::FromPrompt, 3)
        .require_gate(true)
        .build()
        .unwrap();
    let err = pipeline.run(Request::new("A Graphorn")).await.unwrap_err();

    assert_eq!(err.stage(), Some(StageName::Gate));
    let msg = err.to_string();
    assert!(msg.contains("rate-limited"), "{msg}");
    assert!(!msg.contains("Check the chat model's base URL"), "{msg}");
    assert!(h.generations().await.is_empty());
}

#[tokio::test]
async fn failed_engines_are_recorded_as_lost_results() {
    let h = Harness::start(&["gate_needs_reference.json"], &["verdict_aligned.json"]).await;
    h.images("edits", &["images_green.json"]).await;
    let blocked: Arc<dyn ImageSearch> = Arc::new(BlockedEngine);
    let pipeline = h
        .builder(GateMode::FromPrompt, 3)
        .engines(vec![Arc::new(h.search.clone()), blocked])
        .build()
        .unwrap();
    let out = pipeline.run(Request::new("A Graphorn")).await.unwrap();

    let lost: Vec<_> = out
        .report
        .degraded
        .iter()
        .filter(|d| d.lost == Lost::EngineResults)
        .collect();
    assert!(!lost.is_empty(), "{:?}", out.report.degraded);
    assert!(lost.iter().all(|d| d.cause == Cause::EngineBlocked));
    assert!(
        lost[0].detail.starts_with("bing-ish for"),
        "{}",
        lost[0].detail
    );
    assert!(
        !out.report.lost_reference(),
        "the other engine gave a reference"
    );
}

/// An engine answering with a challenge page.
struct BlockedEngine;

#[async_trait]
impl ImageSearch for BlockedEngine {
    fn name(&self) -> &str {
        "bing-ish"
    }
    async fn search(
        &self,
        _: &str,
        _: &SearchQuery,
    ) -> Result<Vec<Candidate>, iat2i::retrievers::SearchError> {
        Err(iat2i::retrievers::SearchError::Blocked {
            engine: "bing-ish".into(),
            detail: "a CAPTCHA page was served instead of results".into(),
        })
    }
}

/// The stub selector, but its reference memory was locked by another process.
#[derive(Clone, Default)]
struct LockedMemory(StubSelector);

const LOCKED: &str = "the reference memory at /cache/qdrant-edge is locked by another process; \
                      selected without it (share it with QDRANT_URL, or give this process \
                      another cache directory)";

#[async_trait]
impl Selector for LockedMemory {
    async fn select(
        &self,
        request: &SelectionRequest,
        candidates: Vec<Candidate>,
    ) -> Result<Selection, SelectError> {
        let mut s = self.0.select(request, candidates).await?;
        s.memory.degraded = Some(LOCKED.into());
        Ok(s)
    }
}

#[tokio::test]
async fn a_locked_memory_is_reported_while_the_reference_is_still_used() {
    let h = Harness::start(&["gate_needs_reference.json"], &["verdict_aligned.json"]).await;
    h.images("edits", &["images_red.json"]).await;
    let pipeline = h
        .builder(GateMode::FromPrompt, 3)
        .selector(Arc::new(LockedMemory::default()))
        .build()
        .unwrap();
    let out = pipeline.run(Request::new("A Graphorn")).await.unwrap();

    let r = &out.report;
    assert!(!r.lost_reference(), "the reference was still selected");
    assert_eq!(r.rounds[0].references.len(), 1);
    let d = r
        .degraded
        .iter()
        .find(|d| d.lost == Lost::Memory)
        .expect("the locked memory is recorded");
    assert_eq!(d.cause, Cause::StoreUnavailable);
    assert!(d.detail.contains("QDRANT_URL"), "{}", d.detail);
    assert!(events(&h).contains(&"degraded".to_string()));
    let json = serde_json::to_value(r).unwrap();
    assert!(
        json["degraded"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["lost"] == "memory" && d["cause"] == "store_unavailable"),
        "{}",
        json["degraded"]
    );
}
