//! Stopping a running pipeline from outside (budgets, deadlines, shutdown) through a
//! `RunGuard`, and the typed stop reasons and error classes in the report.

mod common;

use std::sync::Arc;
use std::sync::Mutex;

use common::*;
use iat2i::prelude::*;
use iat2i::{ErrorClass, Halt, HaltKind, PaidCall, RunGuard, RunOptions, StageName, StopReason};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

/// Allows `images` image calls, then halts for budget; records every call it is asked
/// about and every usage it is told.
#[derive(Default)]
struct ImageBudget {
    images: u32,
    asked: Mutex<Vec<PaidCall>>,
    spent_images: Mutex<u32>,
    spent_tokens: Mutex<u64>,
}

#[async_trait::async_trait]
impl RunGuard for ImageBudget {
    async fn before_call(&self, call: iat2i::PlannedCall) -> Result<(), Halt> {
        let call = call.kind;
        self.asked.lock().unwrap().push(call);
        if call == PaidCall::Generate && *self.spent_images.lock().unwrap() >= self.images {
            return Err(Halt::new(HaltKind::Budget, "--max-images reached"));
        }
        Ok(())
    }
    async fn after_call(&self, _: PaidCall, usage: &iat2i::guard::CallUsage) {
        *self.spent_images.lock().unwrap() += usage.image.images;
        *self.spent_tokens.lock().unwrap() += usage.chat.total_tokens;
    }
}

/// Halts before a given call kind.
struct HaltBefore(PaidCall, HaltKind);
#[async_trait::async_trait]
impl RunGuard for HaltBefore {
    async fn before_call(&self, call: iat2i::PlannedCall) -> Result<(), Halt> {
        let call = call.kind;
        if call == self.0 {
            Err(Halt::new(self.1, "told to stop"))
        } else {
            Ok(())
        }
    }
}

fn guarded(guard: Arc<dyn RunGuard>) -> RunOptions {
    RunOptions::default().with_guard(guard)
}

#[tokio::test]
async fn a_budget_spent_mid_run_stops_before_the_next_image_and_keeps_the_best() {
    let h = Harness::start(
        &["gate_no_reference.json"],
        &["verdict_poor.json", "verdict_better.json"],
    )
    .await;
    h.images("generations", &["images_red.json", "images_green.json"])
        .await;
    let guard = Arc::new(ImageBudget {
        images: 2,
        ..ImageBudget::default()
    });
    let pipeline = h.builder(GateMode::FromPrompt, 3).build().unwrap();
    let out = pipeline
        .run_with(Request::new("A Graphorn"), guarded(guard.clone()))
        .await
        .unwrap();

    assert_eq!(
        h.generations().await.len(),
        2,
        "no third image was asked for"
    );
    assert_eq!(
        out.report.stop,
        StopReason::Halted {
            halt: HaltKind::Budget,
            before: PaidCall::Generate
        }
    );
    assert!(
        out.report.stop_reason.contains("budget"),
        "{}",
        out.report.stop_reason
    );
    assert_eq!(out.report.best_round, Some(out.round));
    assert!(out.round <= 2);
    assert_eq!(*guard.spent_images.lock().unwrap(), 2);
    assert!(
        *guard.spent_tokens.lock().unwrap() > 0,
        "chat usage reported"
    );
    let asked = guard.asked.lock().unwrap().clone();
    assert_eq!(asked.first(), Some(&PaidCall::Gate));
    assert_eq!(
        asked.iter().filter(|c| **c == PaidCall::Judge).count(),
        2,
        "{asked:?}"
    );
}

#[tokio::test]
async fn a_halt_before_the_judge_keeps_the_image_unjudged() {
    let h = Harness::start(&[], &["verdict_aligned.json"]).await;
    h.images("generations", &["images_red.json"]).await;
    let pipeline = h.builder(GateMode::Never, 3).build().unwrap();
    let guard = Arc::new(HaltBefore(PaidCall::Judge, HaltKind::Deadline));
    let out = pipeline
        .run_with(Request::new("A red apple"), guarded(guard))
        .await
        .unwrap();
    assert_image_is(&out.image, "images_red.json");
    assert!(out.verdict.is_none());
    assert!(
        h.chat("verdict").await.is_empty(),
        "the judge was not called"
    );
    assert_eq!(
        out.report.stop,
        StopReason::Halted {
            halt: HaltKind::Deadline,
            before: PaidCall::Judge
        }
    );
}

#[tokio::test]
async fn a_halt_before_any_image_is_an_error_with_the_report() {
    let h = Harness::start(&["gate_no_reference.json"], &["verdict_aligned.json"]).await;
    h.images("generations", &["images_red.json"]).await;
    let pipeline = h.builder(GateMode::FromPrompt, 3).build().unwrap();
    let guard = Arc::new(HaltBefore(PaidCall::Gate, HaltKind::Cancelled));
    let err = pipeline
        .run_with(Request::new("A red apple"), guarded(guard))
        .await
        .unwrap_err();
    assert!(matches!(err, PipelineError::Halted { .. }), "{err}");
    assert_eq!(err.class(), None);
    let report = err.report().unwrap();
    assert!(matches!(
        report.stop,
        StopReason::Halted {
            halt: HaltKind::Cancelled,
            before: PaidCall::Gate
        }
    ));
    assert!(
        requests_to(&h.server, "/v1/chat/completions")
            .await
            .is_empty()
    );
    assert!(h.generations().await.is_empty());
}

#[tokio::test]
async fn per_run_options_override_rounds_and_gate_mode() {
    let h = Harness::start(&["gate_no_reference.json"], &["verdict_poor.json"]).await;
    h.images("generations", &["images_red.json"]).await;
    let pipeline = h.builder(GateMode::FromPrompt, 3).build().unwrap();
    let options = RunOptions::default()
        .with_gate_mode(GateMode::Never)
        .with_max_rounds(1);
    let out = pipeline
        .run_with(Request::new("A red apple"), options)
        .await
        .unwrap();
    assert_eq!(out.report.max_rounds, 1);
    assert_eq!(out.report.gate_mode, GateMode::Never);
    assert!(h.chat("assessment").await.is_empty());
    assert_eq!(out.report.stop, StopReason::MaxRounds);
}

#[tokio::test]
async fn stop_reasons_are_typed_and_serialised() {
    let h = Harness::start(&[], &["verdict_aligned.json"]).await;
    h.images("generations", &["images_red.json"]).await;
    let out = h.run(GateMode::Never, Request::new("A red apple")).await;
    assert_eq!(out.report.stop, StopReason::Aligned { round: 1 });
    let json = serde_json::to_value(&out.report).unwrap();
    assert_eq!(json["stop"]["kind"], "aligned");
    assert_eq!(json["stop"]["round"], 1);
}

#[tokio::test]
async fn a_generator_answering_401_is_classed_auth() {
    let h = Harness::start(&[], &["verdict_aligned.json"]).await;
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(fixture_json("images_error_401.json")),
        )
        .mount(&h.server)
        .await;
    let err = h.fail(GateMode::Never, Request::new("A red apple")).await;
    assert_eq!(err.class(), Some(ErrorClass::Auth));
    let report = err.report().unwrap();
    assert_eq!(
        report.stop,
        StopReason::Failed {
            stage: StageName::Generate,
            class: ErrorClass::Auth,
            round: Some(1)
        }
    );
    assert_eq!(report.errors[0].class, Some(ErrorClass::Auth));
    let json = serde_json::to_value(report).unwrap();
    assert_eq!(json["errors"][0]["class"], "auth");
}

#[tokio::test]
async fn a_safety_rejection_is_classed_safety() {
    let h = Harness::start(&[], &["verdict_aligned.json"]).await;
    let moderated = serde_json::json!({"error": {
        "message": "Your request was rejected by the safety system.",
        "type": "image_generation_user_error", "code": "moderation_blocked"}});
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .respond_with(ResponseTemplate::new(400).set_body_json(moderated))
        .mount(&h.server)
        .await;
    let err = h.fail(GateMode::Never, Request::new("A red apple")).await;
    assert_eq!(err.class(), Some(ErrorClass::Safety));
}
