//! Failures inside the loop: a generation failure after a good round, no image at all,
//! and a gate that answers garbage. (The chat client's own retries, 429s, 500s and
//! timeouts are in lmm_client.rs.)

mod common;

use common::*;
use iat2i::StageName;
use iat2i::prelude::*;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

#[tokio::test]
async fn a_failure_in_round_two_keeps_round_one() {
    let h = Harness::start(&["gate_no_reference.json"], &["verdict_refine.json"]).await;
    let moderated = serde_json::json!({"error": {
        "message": "Your request was rejected by the safety system.",
        "type": "image_generation_user_error", "code": "moderation_blocked"}});
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .respond_with(Sequence::new(vec![
            ResponseTemplate::new(200).set_body_json(fixture_json("images_red.json")),
            ResponseTemplate::new(400).set_body_json(moderated),
        ]))
        .mount(&h.server)
        .await;
    let out = h
        .run(GateMode::FromPrompt, Request::new("A Graphorn"))
        .await;

    assert_eq!(out.round, 1);
    assert_image_is(&out.image, "images_red.json");
    let r = &out.report;
    assert_eq!(r.rounds.len(), 2);
    let error = r.rounds[1].error.as_ref().unwrap();
    assert!(error.contains("safety system"));
    assert_eq!(r.errors.len(), 1);
    assert_eq!(r.errors[0].stage, StageName::Generate);
    assert_eq!(r.errors[0].round, Some(2));
    let stop = &r.stop_reason;
    assert!(
        stop.starts_with("image generation failed in round 2"),
        "{stop}"
    );
    assert!(
        stop.ends_with("returning round 1 (mean score 6.0/10)"),
        "{stop}"
    );
}

#[tokio::test]
async fn with_no_image_at_all_the_error_names_the_stage_and_carries_the_report() {
    let h = Harness::start(&["gate_needs_reference.json"], &[]).await;
    Mock::given(method("POST"))
        .and(path("/v1/images/edits"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&h.server)
        .await;
    let err = h
        .fail(GateMode::FromPrompt, Request::new("A Graphorn"))
        .await;

    assert_eq!(err.stage(), Some(StageName::Generate));
    let msg = err.to_string();
    assert!(msg.starts_with("image generation failed"), "{msg}");
    assert!(msg.contains("Check the image model's base URL"), "{msg}");
    let report = err.report().unwrap();
    assert!(report.assessment.is_some());
    assert_eq!(report.retrievals.len(), 1);
    assert_eq!(report.rounds.len(), 1);
    assert!(report.best_round.is_none());
}

#[tokio::test]
async fn a_garbage_gate_fails_clearly_before_generating() {
    let h = Harness::start(&["chat_garbage.json"], &[]).await;
    let err = h
        .fail(GateMode::FromPrompt, Request::new("A Graphorn"))
        .await;

    assert_eq!(err.stage(), Some(StageName::Gate));
    let msg = err.to_string();
    assert!(
        msg.contains("did not answer with the JSON asked for"),
        "{msg}"
    );
    assert_eq!(h.chat("assessment").await.len(), 2);
    assert!(h.generations().await.is_empty());
}
