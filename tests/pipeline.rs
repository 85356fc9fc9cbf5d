//! The whole loop against wiremock (chat completions + images) with stub search and
//! selection (the real selector needs a CLIP model).

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use iat2i::prelude::*;
use iat2i::{Action, StageName};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn edits_bodies(reqs: &[wiremock::Request]) -> Vec<&[u8]> {
    reqs.iter().map(|r| r.body.as_slice()).collect()
}

#[tokio::test]
async fn a_prompt_that_needs_no_reference_is_generated_directly() {
    let server = MockServer::start().await;
    mount_chat(&server, "assessment", &["gate_no_reference.json"]).await;
    mount_chat(&server, "verdict", &["verdict_aligned.json"]).await;
    mount_images(&server, "generations", &["images_red.json"]).await;
    let search = StubSearch::default();
    let selector = StubSelector::default();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let p = pipeline(
        &server,
        search.clone(),
        selector.clone(),
        GateMode::FromPrompt,
        3,
    )
    .on_event(move |e| sink.lock().unwrap().push(e.clone()))
    .build()
    .unwrap();
    let out = p
        .run(Request::new("A red apple on a wooden table"))
        .await
        .unwrap();

    assert_eq!(out.round, 1);
    assert_eq!(
        out.image.bytes.as_ref(),
        fixture_image("images_red.json").as_slice()
    );
    assert!(
        search.queries.lock().unwrap().is_empty(),
        "no search without a gap"
    );
    assert!(selector.requests.lock().unwrap().is_empty());
    assert!(requests_to(&server, "/v1/images/edits").await.is_empty());
    let r = &out.report;
    assert_eq!(r.stop_reason, "aligned in round 1");
    assert!(!r.assessment.as_ref().unwrap().needs_reference);
    assert!(r.queries.is_empty() && r.retrievals.is_empty());
    assert_eq!(r.rounds.len(), 1);
    assert_eq!(r.rounds[0].prompt_sent, "A red apple on a wooden table");
    assert_eq!(r.usage.gate.total_tokens, 1163);
    assert_eq!(r.usage.judge.total_tokens, 1163);
    assert_eq!(r.usage.lmm_total.calls, 2);
    assert_eq!(r.usage.images.images, 1);
    assert_eq!(r.best_round, Some(1));

    let kinds: Vec<String> = events
        .lock()
        .unwrap()
        .iter()
        .map(|e| {
            serde_json::to_value(e).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "started",
            "gate_started",
            "assessed",
            "round_started",
            "generated",
            "judged",
            "finished"
        ]
    );
}

#[tokio::test]
async fn a_prompt_needing_a_reference_is_aligned_in_round_one() {
    let server = MockServer::start().await;
    mount_chat(&server, "assessment", &["gate_needs_reference.json"]).await;
    mount_chat(&server, "verdict", &["verdict_aligned.json"]).await;
    mount_images(&server, "edits", &["images_green.json"]).await;
    let search = StubSearch::default();
    let selector = StubSelector::default();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let p = pipeline(
        &server,
        search.clone(),
        selector.clone(),
        GateMode::FromPrompt,
        3,
    )
    .event_channel(tx)
    .build()
    .unwrap();
    let out = p.run(Request::new("A Graphorn at dusk")).await.unwrap();

    assert_eq!(out.round, 1);
    assert!(out.verdict.as_ref().unwrap().aligned);
    assert_eq!(
        out.image.bytes.as_ref(),
        fixture_image("images_green.json").as_slice()
    );
    assert_eq!(
        *search.queries.lock().unwrap(),
        [
            "Graphorn Fantastic Beasts",
            "Graphorn creature",
            "格拉菲恩 神奇动物"
        ]
    );
    let sel = selector.requests.lock().unwrap().clone();
    assert_eq!(sel.len(), 1);
    assert_eq!(sel[0].entities, ["Graphorn"]);
    assert_eq!(sel[0].prompt, "A Graphorn at dusk");

    // The edits request carries the reference and says what it is for.
    let edits = requests_to(&server, "/v1/images/edits").await;
    assert_eq!(edits.len(), 1);
    let body = &edits[0].body;
    assert_eq!(
        part_names(body).iter().filter(|n| *n == "image[]").count(),
        1
    );
    assert!(find(body, &fixture_bytes("reference_a.png")).is_some());
    let prompt = part_text(body, "prompt").unwrap();
    assert!(prompt.starts_with("A Graphorn at dusk"));
    assert!(
        prompt.contains(
            "Reference image 1 shows Graphorn; use it only for the appearance of Graphorn"
        )
    );

    // The judge saw the generated image and the reference as data URLs.
    let judge = chat_requests(&server, "verdict").await;
    let parts = judge[0]["messages"][1]["content"].as_array().unwrap();
    let urls: Vec<&str> = parts
        .iter()
        .filter(|p| p["type"] == "image_url")
        .map(|p| p["image_url"]["url"].as_str().unwrap())
        .collect();
    assert_eq!(urls.len(), 2);
    assert!(urls.iter().all(|u| u.starts_with("data:image/png;base64,")));

    let r = &out.report;
    assert_eq!(r.stop_reason, "aligned in round 1");
    assert_eq!(r.queries.len(), 3);
    assert_eq!(r.retrievals.len(), 1);
    assert_eq!(r.retrievals[0].reason, "gate");
    assert_eq!(r.retrievals[0].runs.len(), 3);
    assert_eq!(r.retrievals[0].candidates.len(), 3);
    let used = &r.rounds[0].references[0];
    assert_eq!(used.image_url.as_str(), "https://upload.example.org/a1.png");
    assert_eq!(used.license.as_ref().unwrap().code, "cc-by-sa");
    assert!(used.source_page.is_some());
    assert_eq!(
        r.retrievals[0]
            .selection
            .as_ref()
            .unwrap()
            .judge_reason
            .as_deref(),
        Some("the clearest picture")
    );

    let mut kinds = Vec::new();
    while let Ok(e) = rx.try_recv() {
        kinds.push(
            serde_json::to_value(&e).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    for k in [
        "search_started",
        "search_finished",
        "selection_started",
        "selection_finished",
        "judged",
    ] {
        assert!(kinds.iter().any(|x| x == k), "{k} missing from {kinds:?}");
    }
    let json = serde_json::to_string(r).unwrap();
    assert!(!json.contains(KEY));
}

#[tokio::test]
async fn three_rounds_refine_the_prompt_then_try_the_next_reference() {
    let server = MockServer::start().await;
    mount_chat(&server, "assessment", &["gate_needs_reference.json"]).await;
    mount_chat(
        &server,
        "verdict",
        &[
            "verdict_refine.json",
            "verdict_next_reference.json",
            "verdict_aligned.json",
        ],
    )
    .await;
    mount_images(
        &server,
        "edits",
        &["images_red.json", "images_green.json", "images_blue.json"],
    )
    .await;
    let p = pipeline(
        &server,
        StubSearch::default(),
        StubSelector::default(),
        GateMode::FromPrompt,
        3,
    )
    .build()
    .unwrap();
    let out = p.run(Request::new("A Graphorn at dusk")).await.unwrap();

    assert_eq!(out.round, 3);
    assert_eq!(
        out.image.bytes.as_ref(),
        fixture_image("images_blue.json").as_slice()
    );
    let edits = requests_to(&server, "/v1/images/edits").await;
    let bodies = edits_bodies(&edits);
    assert_eq!(bodies.len(), 3);
    // Round 2 sends the refined prompt.
    assert!(
        part_text(bodies[1], "prompt")
            .unwrap()
            .starts_with("A photo of a rider on the back of a Graphorn")
    );
    // Round 3 sends the alternate reference instead of the first.
    assert!(find(bodies[1], &fixture_bytes("reference_a.png")).is_some());
    assert!(find(bodies[2], &fixture_bytes("reference_b.png")).is_some());
    assert!(find(bodies[2], &fixture_bytes("reference_a.png")).is_none());

    let r = &out.report;
    assert_eq!(r.rounds.len(), 3);
    assert_eq!(r.rounds[0].next_step.as_deref(), Some("refine the prompt"));
    assert_eq!(
        r.rounds[1].next_step.as_deref(),
        Some("try alternate reference 1")
    );
    assert_eq!(
        r.rounds[2].references[0].image_url.as_str(),
        "https://upload.example.org/b1.png"
    );
    assert!(matches!(
        r.rounds[0].verdict.as_ref().unwrap().action,
        Action::RefinePrompt { .. }
    ));
    assert_eq!(r.stop_reason, "aligned in round 3");
    assert_eq!(r.usage.images.images, 3);
    assert_eq!(r.usage.images.input_tokens, 50 + 180 + 300);
    assert_eq!(r.usage.judge.calls, 3);
}

#[tokio::test]
async fn three_rounds_research_then_drop_the_reference_then_accept() {
    let server = MockServer::start().await;
    mount_chat(&server, "assessment", &["gate_needs_reference.json"]).await;
    mount_chat(
        &server,
        "verdict",
        &[
            "verdict_research.json",
            "verdict_drop_reference.json",
            "verdict_accept_unaligned.json",
        ],
    )
    .await;
    mount_images_any(
        &server,
        &["images_red.json", "images_green.json", "images_blue.json"],
    )
    .await;
    let search = StubSearch::default();
    let selector = StubSelector::default();
    let p = pipeline(
        &server,
        search.clone(),
        selector.clone(),
        GateMode::FromPrompt,
        3,
    )
    .build()
    .unwrap();
    let out = p.run(Request::new("A Graphorn at dusk")).await.unwrap();

    // Research: the new queries were searched and a second selection made.
    let queries = search.queries.lock().unwrap().clone();
    assert_eq!(
        &queries[3..],
        ["Graphorn illustration Newt Scamander", "グラフォーン"]
    );
    assert_eq!(selector.requests.lock().unwrap().len(), 2);
    // Round 2 used the new selection's reference; round 3 dropped it (generations endpoint).
    let edits = requests_to(&server, "/v1/images/edits").await;
    assert_eq!(edits.len(), 2);
    let gens = requests_to(&server, "/v1/images/generations").await;
    assert_eq!(gens.len(), 1);
    let gen_body: serde_json::Value = serde_json::from_slice(&gens[0].body).unwrap();
    assert_eq!(gen_body["prompt"], "A Graphorn at dusk");
    assert!(gen_body.get("response_format").is_none());

    let r = &out.report;
    assert_eq!(r.retrievals.len(), 2);
    assert_eq!(
        r.retrievals[1].reason,
        "the judge asked to research after round 1"
    );
    assert_eq!(
        r.rounds[1].references[0].image_url.as_str(),
        "https://upload.example.org/a2.png"
    );
    assert!(r.rounds[2].references.is_empty());
    assert_eq!(
        r.rounds[1].next_step.as_deref(),
        Some("generate without the reference")
    );
    assert!(
        r.stop_reason.starts_with("the judge accepted round 3"),
        "{}",
        r.stop_reason
    );
    assert_eq!(out.round, 3);
    assert_eq!(r.queries.len(), 5);
}

#[tokio::test]
async fn when_no_round_is_aligned_the_best_round_is_returned_and_the_report_says_why() {
    let server = MockServer::start().await;
    mount_chat(&server, "assessment", &["gate_no_reference.json"]).await;
    mount_chat(
        &server,
        "verdict",
        &[
            "verdict_poor.json",
            "verdict_better.json",
            "verdict_poor.json",
        ],
    )
    .await;
    mount_images(
        &server,
        "generations",
        &["images_red.json", "images_green.json", "images_blue.json"],
    )
    .await;
    let p = pipeline(
        &server,
        StubSearch::default(),
        StubSelector::default(),
        GateMode::FromPrompt,
        3,
    )
    .build()
    .unwrap();
    let out = p.run(Request::new("A Graphorn")).await.unwrap();
    assert_eq!(out.round, 2);
    assert_eq!(
        out.image.bytes.as_ref(),
        fixture_image("images_green.json").as_slice()
    );
    let r = &out.report;
    assert_eq!(r.rounds.len(), 3);
    assert_eq!(r.best_round, Some(2));
    assert_eq!(r.best_score, Some(6.5));
    assert_eq!(
        r.stop_reason,
        "max_rounds (3) reached without alignment; best was round 2 (mean score 6.5/10)"
    );
}

#[tokio::test]
async fn a_failure_in_round_two_keeps_round_one() {
    let server = MockServer::start().await;
    mount_chat(&server, "assessment", &["gate_no_reference.json"]).await;
    mount_chat(&server, "verdict", &["verdict_refine.json"]).await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::path("/v1/images/generations"))
        .respond_with(Sequence::new(vec![
            ResponseTemplate::new(200).set_body_json(fixture_json("images_red.json")),
            ResponseTemplate::new(400).set_body_json(serde_json::json!({"error": {
                "message": "Your request was rejected by the safety system.",
                "type": "image_generation_user_error", "code": "moderation_blocked"}})),
        ]))
        .mount(&server)
        .await;
    let p = pipeline(
        &server,
        StubSearch::default(),
        StubSelector::default(),
        GateMode::FromPrompt,
        3,
    )
    .build()
    .unwrap();
    let out = p.run(Request::new("A Graphorn")).await.unwrap();
    assert_eq!(out.round, 1);
    assert_eq!(
        out.image.bytes.as_ref(),
        fixture_image("images_red.json").as_slice()
    );
    let r = &out.report;
    assert_eq!(r.rounds.len(), 2);
    assert!(
        r.rounds[1]
            .error
            .as_ref()
            .unwrap()
            .contains("safety system")
    );
    assert_eq!(r.errors.len(), 1);
    assert_eq!(r.errors[0].stage, StageName::Generate);
    assert_eq!(r.errors[0].round, Some(2));
    assert!(
        r.stop_reason
            .starts_with("image generation failed in round 2"),
        "{}",
        r.stop_reason
    );
    assert!(
        r.stop_reason
            .ends_with("returning round 1 (mean score 6.0/10)"),
        "{}",
        r.stop_reason
    );
}

#[tokio::test]
async fn with_no_image_at_all_the_error_names_the_stage_and_carries_the_report() {
    let server = MockServer::start().await;
    mount_chat(&server, "assessment", &["gate_needs_reference.json"]).await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::path("/v1/images/edits"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let p = pipeline(
        &server,
        StubSearch::default(),
        StubSelector::default(),
        GateMode::FromPrompt,
        3,
    )
    .build()
    .unwrap();
    let err = p.run(Request::new("A Graphorn")).await.unwrap_err();
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
    let server = MockServer::start().await;
    mount_chat(&server, "assessment", &["chat_garbage.json"]).await;
    let p = pipeline(
        &server,
        StubSearch::default(),
        StubSelector::default(),
        GateMode::FromPrompt,
        3,
    )
    .build()
    .unwrap();
    let err = p.run(Request::new("A Graphorn")).await.unwrap_err();
    assert_eq!(err.stage(), Some(StageName::Gate));
    assert!(
        err.to_string()
            .contains("did not answer with the JSON asked for"),
        "{err}"
    );
    assert_eq!(chat_requests(&server, "assessment").await.len(), 2);
    assert!(
        requests_to(&server, "/v1/images/generations")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn generate_first_retrieves_only_after_the_judge_finds_a_knowledge_gap() {
    let server = MockServer::start().await;
    mount_chat(&server, "assessment", &["gate_needs_reference.json"]).await;
    mount_chat(
        &server,
        "verdict",
        &["verdict_knowledge_gap.json", "verdict_aligned.json"],
    )
    .await;
    mount_images(&server, "generations", &["images_red.json"]).await;
    mount_images(&server, "edits", &["images_green.json"]).await;
    let search = StubSearch::default();
    let p = pipeline(
        &server,
        search.clone(),
        StubSelector::default(),
        GateMode::GenerateFirst,
        3,
    )
    .build()
    .unwrap();
    let out = p.run(Request::new("A Graphorn at dusk")).await.unwrap();
    assert_eq!(out.round, 2);
    assert!(
        chat_requests(&server, "assessment").await.is_empty(),
        "the judge gave the queries"
    );
    assert_eq!(*search.queries.lock().unwrap(), ["Graphorn creature"]);
    assert_eq!(
        requests_to(&server, "/v1/images/generations").await.len(),
        1
    );
    assert_eq!(requests_to(&server, "/v1/images/edits").await.len(), 1);
    assert_eq!(
        out.report.retrievals[0].reason,
        "the judge found a knowledge gap in round 1"
    );
}

#[tokio::test]
async fn edit_mode_sends_the_users_image_first_then_the_reference() {
    let server = MockServer::start().await;
    mount_chat(&server, "assessment", &["gate_needs_reference.json"]).await;
    mount_chat(&server, "verdict", &["verdict_aligned.json"]).await;
    mount_images(&server, "edits", &["images_blue.json"]).await;
    let input = fixture_bytes("input.png");
    let p = pipeline(
        &server,
        StubSearch::default(),
        StubSelector::default(),
        GateMode::FromPrompt,
        3,
    )
    .build()
    .unwrap();
    let out = p
        .run(Request::new("Add a Graphorn in the background").with_edit_image(input.clone()))
        .await
        .unwrap();
    assert!(out.report.request.edit);
    assert_eq!(
        out.report.request.edit_image.as_ref().unwrap().bytes,
        input.len()
    );
    let edits = requests_to(&server, "/v1/images/edits").await;
    let body = &edits[0].body;
    let names = part_names(body);
    assert_eq!(names.iter().filter(|n| *n == "image[]").count(), 2);
    assert!(names.iter().any(|n| n == "model") && names.iter().any(|n| n == "prompt"));
    let user_at = find(body, &input).unwrap();
    let ref_at = find(body, &fixture_bytes("reference_a.png")).unwrap();
    assert!(user_at < ref_at, "the user's image comes first");
    let prompt = part_text(body, "prompt").unwrap();
    assert!(prompt.contains("Image 1 is the image to edit"));
    assert!(prompt.contains("Reference image 2 shows Graphorn"));
    // The gate was told it is an edit; the judge saw three images.
    let gate = chat_requests(&server, "assessment").await;
    assert!(
        gate[0]["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("editing an image")
    );
    let judge = chat_requests(&server, "verdict").await;
    let images = judge[0]["messages"][1]["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "image_url")
        .count();
    assert_eq!(images, 3);
}

#[tokio::test]
async fn an_edit_image_that_is_not_an_image_is_rejected() {
    let server = MockServer::start().await;
    let p = pipeline(
        &server,
        StubSearch::default(),
        StubSelector::default(),
        GateMode::Never,
        1,
    )
    .build()
    .unwrap();
    let err = p
        .run(Request::new("x").with_edit_image(b"not an image".to_vec()))
        .await
        .unwrap_err();
    assert!(matches!(err, PipelineError::InvalidRequest(_)), "{err:?}");
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_builder_says_what_is_missing() {
    let err = Pipeline::builder().build().unwrap_err();
    assert!(err.to_string().contains("no image generator"), "{err}");
    let server = MockServer::start().await;
    let err = Pipeline::builder()
        .generator(Arc::new(images_client(&server)))
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("no chat model for the gate"),
        "{err}"
    );
}

#[tokio::test]
async fn always_mode_retrieves_even_when_the_gate_sees_no_gap() {
    let server = MockServer::start().await;
    mount_chat(&server, "assessment", &["gate_no_reference.json"]).await;
    mount_chat(&server, "verdict", &["verdict_aligned.json"]).await;
    mount_images(&server, "edits", &["images_green.json"]).await;
    let search = StubSearch::default();
    let p = pipeline(
        &server,
        search.clone(),
        StubSelector::default(),
        GateMode::Always,
        3,
    )
    .build()
    .unwrap();
    let out = p.run(Request::new("A red apple")).await.unwrap();
    // The gate wrote no queries, so the prompt itself is searched.
    assert_eq!(*search.queries.lock().unwrap(), ["A red apple"]);
    assert_eq!(
        chat_requests(&server, "assessment").await.len(),
        1,
        "the gate is asked once"
    );
    assert_eq!(out.report.retrievals.len(), 1);
    assert_eq!(out.report.rounds[0].references.len(), 1);
    assert_eq!(requests_to(&server, "/v1/images/edits").await.len(), 1);
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
    assert!(
        shown.contains("candidate_judge: Some(\"gpt-4o-mini at"),
        "{shown}"
    );
}

#[test]
fn a_run_can_be_spawned_on_a_multithreaded_runtime() {
    fn assert_send<T: Send + 'static>(_: &T) {}
    fn assert_sync<T: Send + Sync>() {}
    assert_sync::<Pipeline>();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let server = MockServer::start().await;
        let p = Arc::new(
            pipeline(
                &server,
                StubSearch::default(),
                StubSelector::default(),
                GateMode::Never,
                1,
            )
            .build()
            .unwrap(),
        );
        let fut = async move { p.run(Request::new("x")).await };
        assert_send(&fut);
        drop(fut);
    });
}
