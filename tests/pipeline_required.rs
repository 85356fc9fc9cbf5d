//! What a caller can require besides the reference: the judge's review
//! (`require_review`) and the reference memory (`require_memory`), each failing the run
//! instead of degrading it, and the memory before any paid call.

mod common;

use std::sync::Arc;

use common::*;
use iat2i::prelude::*;
use iat2i::{Cause, StageName};

async fn judge_storm() -> Harness {
    let h = Harness::start(&["gate_needs_reference.json"], &[]).await;
    mount_chat_replies(&h.server, "verdict", rate_limited()).await;
    h.images("edits", &["images_red.json"]).await;
    h
}

#[tokio::test]
async fn a_failed_review_keeps_the_image_and_says_the_review_was_lost() {
    let h = judge_storm().await;
    let out = h.generate("A Graphorn").await;

    assert!(out.verdict.is_none(), "the image is unjudged");
    let r = &out.report;
    let d = r
        .degraded
        .iter()
        .find(|d| d.lost == Lost::Review)
        .expect("the lost review is recorded");
    assert_eq!(d.cause, Cause::RateLimited);
    assert_eq!(d.stage, StageName::Judge);
    assert_eq!(d.round, Some(1));
    assert!(d.detail.contains("unjudged"), "{}", d.detail);
    assert!(h.event_kinds().contains(&"degraded".to_string()));
    let json = serde_json::to_value(r).unwrap();
    assert!(
        json["degraded"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["lost"] == "review" && d["cause"] == "rate_limited"),
        "{}",
        json["degraded"]
    );
}

#[tokio::test]
async fn require_review_fails_the_run_and_hands_back_the_unjudged_image() {
    let h = judge_storm().await;
    let pipeline = h
        .builder(GateMode::FromPrompt, 3)
        .require_review(true)
        .build()
        .unwrap();
    let err = pipeline.run(Request::new("A Graphorn")).await.unwrap_err();

    let PipelineError::Required {
        lost,
        stage,
        image,
        report,
        ..
    } = &err
    else {
        panic!("expected Required, got {err:?}");
    };
    assert_eq!(*lost, Lost::Review);
    assert_eq!(*stage, StageName::Judge);
    assert!(image.is_some(), "the paid image travels with the error");
    assert!(report.lost(Lost::Review));
    assert_eq!(h.edits().await.len(), 1, "one image was paid for, not more");
    let msg = err.to_string();
    assert!(msg.contains("judge's review"), "{msg}");
}

#[tokio::test]
async fn a_required_memory_held_by_another_process_fails_before_any_paid_call() {
    let server = wiremock::MockServer::start().await;
    mount_chat(&server, "assessment", &["gate_needs_reference.json"]).await;
    mount_images(&server, "edits", &["images_red.json"]).await;
    let cache = tempfile::tempdir().unwrap();
    // Another process holds the embedded store's directory lock.
    let dir = cache.path().join("qdrant-edge");
    std::fs::create_dir_all(&dir).unwrap();
    let held = std::fs::File::create(dir.join(".lock")).unwrap();
    held.try_lock().unwrap();

    let pipeline = Pipeline::builder()
        .lmm(Arc::new(chat_client(&server, test_http())))
        .generator(Arc::new(images_client(&server)))
        .engines(vec![Arc::new(StubSearch::default())])
        .selector_config(
            SelectorConfig::default()
                .cache_dir(cache.path())
                .require_memory(true),
        )
        .build()
        .unwrap();
    let err = pipeline.run(Request::new("A Graphorn")).await.unwrap_err();

    assert_eq!(err.stage(), Some(StageName::Select), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("locked by another process"), "{msg}");
    assert!(
        server
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty(),
        "no chat or image call was made"
    );
    let report = err.report().expect("a partial report");
    assert!(report.rounds.is_empty());

    // A run that never selects has no use for the memory, so it does not open it.
    mount_chat(&server, "verdict", &["verdict_aligned.json"]).await;
    mount_images(&server, "generations", &["images_red.json"]).await;
    let free = Pipeline::builder()
        .lmm(Arc::new(chat_client(&server, test_http())))
        .generator(Arc::new(images_client(&server)))
        .engines(vec![Arc::new(StubSearch::default())])
        .selector_config(
            SelectorConfig::default()
                .cache_dir(cache.path())
                .require_memory(true),
        )
        .gate_mode(GateMode::Never)
        .build()
        .unwrap();
    assert!(
        free.run(Request::new("A red apple")).await.is_ok(),
        "a run that never selects does not need the memory"
    );
    drop(held);
}
