//! Failures inside the loop: a generation failure after a good round, no image at all,
//! and the LMM answering garbage, 429 then success, 500 forever, or hanging past the
//! timeout. (The chat client's own handling of each is in lmm_client.rs.)

mod common;

use std::sync::Arc;

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
    let out = h.generate("A Graphorn").await;

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
    // The 500 may have come after the image was made: one paid attempt, and the failed
    // round says it was not retried.
    assert_eq!(h.edits().await.len(), 1);
    let round_error = report.rounds[0].error.as_deref().unwrap_or_default();
    assert!(round_error.contains("not retried"), "{round_error}");
    assert!(report.best_round.is_none());
}

#[tokio::test]
async fn a_garbage_gate_fails_clearly_before_generating() {
    let h = Harness::start(&["chat_garbage.json"], &[]).await;
    let err = fails_at_the_gate(&h).await;

    let msg = err.to_string();
    assert!(
        msg.contains("did not answer with the JSON asked for"),
        "{msg}"
    );
    assert_eq!(h.chat("assessment").await.len(), 2);
}

/// Runs "A Graphorn" with `require_gate` (without it, a failed gate falls back to
/// generating first: see pipeline_degraded.rs); it must fail at the gate before any
/// image is asked for.
async fn fails_at_the_gate(h: &Harness) -> PipelineError {
    let pipeline = h.builder(GateMode::FromPrompt, 3).require_gate(true);
    let err = pipeline
        .build()
        .unwrap()
        .run(Request::new("A Graphorn"))
        .await
        .unwrap_err();
    assert_eq!(err.stage(), Some(StageName::Gate));
    assert!(h.generations().await.is_empty() && h.edits().await.is_empty());
    err
}

#[tokio::test]
async fn a_judge_rate_limited_once_is_retried_and_the_round_still_judged() {
    let h = Harness::start(&["gate_no_reference.json"], &[]).await;
    let limited = ResponseTemplate::new(429)
        .insert_header("retry-after", "0")
        .set_body_json(
            serde_json::json!({"error": {"message": "Rate limit reached",
            "type": "requests", "code": "rate_limit_exceeded"}}),
        );
    let aligned = ResponseTemplate::new(200).set_body_json(fixture_json("verdict_aligned.json"));
    mount_chat_replies(&h.server, "verdict", Sequence::new(vec![limited, aligned])).await;
    h.images("generations", &["images_red.json"]).await;
    let out = h.generate("A red apple").await;

    assert_eq!(h.chat("verdict").await.len(), 2, "one 429, one retry");
    assert!(out.verdict.as_ref().unwrap().aligned);
    assert_eq!(out.report.stop_reason, "aligned in round 1");
    assert!(out.report.errors.is_empty(), "{:?}", out.report.errors);
}

#[tokio::test]
async fn a_gate_failing_with_500_stops_the_run_without_paying_twice() {
    let h = Harness::start(&[], &[]).await;
    let broken = ResponseTemplate::new(500).set_body_string("upstream exploded");
    mount_chat_replies(&h.server, "assessment", broken).await;
    let err = fails_at_the_gate(&h).await;

    let msg = err.to_string();
    assert!(
        msg.contains("500") && msg.contains("try again later"),
        "{msg}"
    );
    // A completion bills: a 500 may have been processed, so it is not retried.
    assert_eq!(h.chat("assessment").await.len(), 1);
    assert!(msg.contains("not retried"), "{msg}");
    assert!(err.report().unwrap().rounds.is_empty());
}

#[tokio::test]
async fn a_judge_hanging_past_the_timeout_keeps_the_image_unjudged() {
    let h = Harness::start(&["gate_no_reference.json"], &[]).await;
    mount_chat_replies(&h.server, "verdict", hanging("verdict_aligned.json")).await;
    h.images("generations", &["images_red.json"]).await;
    let judge = Arc::new(chat_client(&h.server, impatient_http()));
    let pipeline = h.builder(GateMode::FromPrompt, 3).judge_lmm(judge);
    let out = pipeline
        .build()
        .unwrap()
        .run(Request::new("A red apple"))
        .await;
    let out = out.unwrap();

    assert_eq!(out.round, 1);
    assert_image_is(&out.image, "images_red.json");
    assert!(out.verdict.is_none());
    let r = &out.report;
    assert_eq!(r.errors.len(), 1);
    assert_eq!(r.errors[0].stage, StageName::Judge);
    assert!(r.errors[0].message.contains("timed out"), "{:?}", r.errors);
    let stop = &r.stop_reason;
    assert!(stop.starts_with("the judge failed in round 1"), "{stop}");
    assert!(stop.ends_with("returning round 1 (not judged)"), "{stop}");
}
