//! Gate modes, edit mode, and building the pipeline, against wiremock with stub search
//! and selection.

mod common;

use std::sync::Arc;

use common::*;
use iat2i::prelude::*;
use wiremock::MockServer;

#[tokio::test]
async fn generate_first_retrieves_only_after_the_judge_finds_a_knowledge_gap() {
    let verdicts = ["verdict_knowledge_gap.json", "verdict_aligned.json"];
    let h = Harness::start(&["gate_needs_reference.json"], &verdicts).await;
    h.images("generations", &["images_red.json"]).await;
    h.images("edits", &["images_green.json"]).await;
    let request = Request::new("A Graphorn at dusk");
    let out = h.run(GateMode::GenerateFirst, request).await;

    assert_eq!(out.round, 2);
    let gate = h.chat("assessment").await;
    assert!(gate.is_empty(), "the judge gave the queries");
    assert_eq!(h.queries(), ["Graphorn creature"]);
    assert_eq!(h.generations().await.len(), 1);
    assert_eq!(h.edits().await.len(), 1);
    assert_eq!(
        out.report.retrievals[0].reason,
        "the judge found a knowledge gap in round 1"
    );
}

#[tokio::test]
async fn always_mode_retrieves_even_when_the_gate_sees_no_gap() {
    let h = Harness::start(&["gate_no_reference.json"], &["verdict_aligned.json"]).await;
    h.images("edits", &["images_green.json"]).await;
    let out = h.run(GateMode::Always, Request::new("A red apple")).await;

    // The gate wrote no queries, so the prompt itself is searched.
    assert_eq!(h.queries(), ["A red apple"]);
    let asked = h.chat("assessment").await.len();
    assert_eq!(asked, 1, "the gate is asked once");
    assert_eq!(out.report.retrievals.len(), 1);
    assert_eq!(out.report.rounds[0].references.len(), 1);
    assert_eq!(h.edits().await.len(), 1);
}

#[tokio::test]
async fn edit_mode_sends_the_users_image_first_then_the_reference() {
    let h = Harness::start(&["gate_needs_reference.json"], &["verdict_aligned.json"]).await;
    h.images("edits", &["images_blue.json"]).await;
    let input = fixture_bytes("input.png");
    let request = Request::new("Add a Graphorn in the background").with_edit_image(input.clone());
    let out = h.run(GateMode::FromPrompt, request).await;

    assert!(out.report.request.edit);
    let edit_image = out.report.request.edit_image.as_ref().unwrap();
    assert_eq!(edit_image.bytes, input.len());
    let form = Form::parse(&h.edits().await[0]);
    assert!(form.has("model") && form.has("prompt"));
    // The user's image comes first, then the reference.
    let reference = fixture_bytes("reference_a.png");
    assert_eq!(form.image_bytes(), [&input[..], &reference[..]]);
    let prompt = form.text("prompt");
    assert!(prompt.contains("Image 1 is the image to edit"));
    assert!(prompt.contains("Reference image 2 shows Graphorn"));
    // The gate was told it is an edit; the judge saw three images.
    let gate = h.chat("assessment").await;
    let told = gate[0]["messages"][1]["content"].as_str().unwrap();
    assert!(told.contains("editing an image"));
    assert_eq!(image_urls(&h.chat("verdict").await[0], 1).len(), 3);
}

#[tokio::test]
async fn an_edit_image_that_is_not_an_image_is_rejected() {
    let h = Harness::start(&[], &[]).await;
    let pipeline = h.builder(GateMode::Never, 1).build().unwrap();
    let request = Request::new("x").with_edit_image(b"not an image".to_vec());
    let err = pipeline.run(request).await.unwrap_err();

    assert!(matches!(err, PipelineError::InvalidRequest(_)), "{err:?}");
    assert!(h.server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_builder_says_what_is_missing() {
    let err = Pipeline::builder().build().unwrap_err();
    assert!(err.to_string().contains("no image generator"), "{err}");
    let server = MockServer::start().await;
    let generator = Arc::new(images_client(&server));
    let err = Pipeline::builder()
        .generator(generator)
        .build()
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("no chat model for the gate"), "{msg}");
}

#[tokio::test]
async fn the_default_builder_uses_the_keyless_engines_and_an_lmm_candidate_judge() {
    let server = MockServer::start().await;
    let p = Pipeline::builder()
        .lmm(Arc::new(chat_client(&server, test_http())))
        .generator(Arc::new(images_client(&server)))
        .build()
        .unwrap();
    let shown = format!("{p:?}");
    assert!(!shown.contains(KEY));
    for engine in ["bing", "duckduckgo", "wikimedia", "openverse"] {
        assert!(shown.contains(engine), "{engine} missing: {shown}");
    }
    let judge = "candidate_judge: Some(\"gpt-4o-mini at";
    assert!(shown.contains(judge), "{shown}");
}

#[test]
fn a_run_can_be_spawned_on_a_multithreaded_runtime() {
    fn assert_send<T: Send + 'static>(_: &T) {}
    fn assert_sync<T: Send + Sync>() {}
    assert_sync::<Pipeline>();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let h = Harness::start(&[], &[]).await;
        let p = Arc::new(h.builder(GateMode::Never, 1).build().unwrap());
        let fut = async move { p.run(Request::new("x")).await };
        assert_send(&fut);
        drop(fut);
    });
}

#[tokio::test]
async fn the_builder_refuses_settings_it_would_silently_drop() {
    let h = Harness::start(&[], &[]).await;
    let lmm: Arc<dyn Lmm> = Arc::new(chat_client(&h.server, test_http()));
    let gate: Arc<dyn Gate> = Arc::new(LmmGate::new(lmm.clone()));
    let cases: Vec<(iat2i::PipelineBuilder, &str)> = vec![
        (
            h.builder(GateMode::FromPrompt, 3)
                .selector_config(SelectorConfig::default()),
            "selector_config(..) configures the default selector",
        ),
        (
            h.builder(GateMode::FromPrompt, 3)
                .candidate_judge_lmm(lmm.clone()),
            "candidate_judge_lmm(..) is used by the default selector only",
        ),
        (
            h.builder(GateMode::FromPrompt, 3)
                .gate(gate.clone())
                .query_languages(vec!["en".into(), "ja".into()]),
            "query_languages(..) configures the default LMM gate",
        ),
        (
            h.builder(GateMode::FromPrompt, 0),
            "max_rounds(0): a run needs at least one round",
        ),
        (
            h.builder(GateMode::Never, 3).require_reference(true),
            "GateMode::Never",
        ),
    ];
    for (builder, wanted) in cases {
        let err = builder.build().unwrap_err();
        assert!(matches!(err, PipelineError::Config(_)), "{err:?}");
        assert!(err.to_string().contains(wanted), "{wanted}: {err}");
    }
    // The same settings are accepted where they apply.
    let ok = h
        .builder(GateMode::FromPrompt, 1)
        .query_languages(vec!["en".into(), "ja".into()])
        .build();
    assert!(ok.is_ok(), "{ok:?}");
}

#[tokio::test]
async fn zero_selector_limits_are_refused_not_clamped() {
    let h = Harness::start(&[], &[]).await;
    let lmm: Arc<dyn Lmm> = Arc::new(chat_client(&h.server, test_http()));
    let err = Pipeline::builder()
        .lmm(lmm)
        .generator(Arc::new(images_client(&h.server)))
        .selector_config(
            SelectorConfig::default()
                .judge_top_k(0)
                .embed_batch(0)
                .mmr_lambda(2.0),
        )
        .build()
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, PipelineError::Config(_)), "{err:?}");
    for wanted in ["judge_top_k(0)", "embed_batch(0)", "mmr_lambda(2)"] {
        assert!(msg.contains(wanted), "{wanted}: {msg}");
    }
}
