//! The loop's rounds against wiremock (chat completions + images) with stub search and
//! selection (the real selector needs a CLIP model): no reference, a reference aligned
//! in round 1, three rounds through every judge action, and no round aligned.

mod common;

use common::*;
use iat2i::Action;
use iat2i::prelude::*;

#[tokio::test]
async fn a_prompt_that_needs_no_reference_is_generated_directly() {
    let h = Harness::start(&["gate_no_reference.json"], &["verdict_aligned.json"]).await;
    h.images("generations", &["images_red.json"]).await;
    let out = h.generate("A red apple on a wooden table").await;

    assert_eq!(out.round, 1);
    assert_image_is(&out.image, "images_red.json");
    assert!(h.queries().is_empty(), "no search without a gap");
    assert!(h.selections().is_empty());
    assert!(h.edits().await.is_empty());
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
    let expected = [
        "started",
        "gate_started",
        "assessed",
        "round_started",
        "generated",
        "judged",
        "finished",
    ];
    assert_eq!(h.event_kinds(), expected);
}

#[tokio::test]
async fn a_prompt_needing_a_reference_is_aligned_in_round_one() {
    let h = Harness::start(&["gate_needs_reference.json"], &["verdict_aligned.json"]).await;
    h.images("edits", &["images_green.json"]).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let pipeline = h.builder(GateMode::FromPrompt, 3).event_channel(tx);
    let pipeline = pipeline.build().unwrap();
    let out = pipeline
        .run(Request::new("A Graphorn at dusk"))
        .await
        .unwrap();

    assert_eq!(out.round, 1);
    assert!(out.verdict.as_ref().unwrap().aligned);
    assert_image_is(&out.image, "images_green.json");
    let queries = [
        "Graphorn Fantastic Beasts",
        "Graphorn creature",
        "格拉菲恩 神奇动物",
    ];
    assert_eq!(h.queries(), queries);
    let sel = h.selections();
    assert_eq!(sel.len(), 1);
    assert_eq!(sel[0].entities, ["Graphorn"]);
    assert_eq!(sel[0].prompt, "A Graphorn at dusk");
    assert_reference_sent_with_its_purpose(&h).await;
    // The judge saw the generated image and the reference as data URLs.
    let urls = image_urls(&h.chat("verdict").await[0], 1);
    assert_eq!(urls.len(), 2);
    assert!(urls.iter().all(|u| u.starts_with("data:image/png;base64,")));
    assert_round_one_report(&out.report);

    // The channel saw what the callback saw, every stage included.
    let mut kinds = Vec::new();
    while let Ok(e) = rx.try_recv() {
        kinds.push(event_kind(&e));
    }
    assert_eq!(kinds, h.event_kinds());
    for k in [
        "search_started",
        "search_finished",
        "selection_started",
        "selection_finished",
        "judged",
    ] {
        assert!(kinds.iter().any(|x| x == k), "{k} missing from {kinds:?}");
    }
}

/// The one edits request carries reference A and says what it is for.
async fn assert_reference_sent_with_its_purpose(h: &Harness) {
    let edits = h.edits().await;
    assert_eq!(edits.len(), 1);
    let form = Form::parse(&edits[0]);
    assert_eq!(form.image_bytes(), [&fixture_bytes("reference_a.png")[..]]);
    let prompt = form.text("prompt");
    assert!(prompt.starts_with("A Graphorn at dusk"));
    assert!(
        prompt.contains(
            "Reference image 1 shows Graphorn; use it only for the appearance of Graphorn"
        )
    );
}

fn assert_round_one_report(r: &Report) {
    assert_eq!(r.stop_reason, "aligned in round 1");
    assert_eq!(r.queries.len(), 3);
    assert_eq!(r.retrievals.len(), 1);
    let retrieval = &r.retrievals[0];
    assert_eq!(retrieval.reason, "gate");
    assert_eq!(retrieval.runs.len(), 3);
    assert_eq!(retrieval.candidates.len(), 3);
    let used = &r.rounds[0].references[0];
    assert_eq!(used.image_url.as_str(), "https://upload.example.org/a1.png");
    assert_eq!(used.license.as_ref().unwrap().code, "cc-by-sa");
    assert!(used.source_page.is_some());
    let selection = retrieval.selection.as_ref().unwrap();
    assert_eq!(
        selection.judge_reason.as_deref(),
        Some("the clearest picture")
    );
    let json = serde_json::to_string(r).unwrap();
    assert!(!json.contains(KEY));
}

#[tokio::test]
async fn three_rounds_refine_the_prompt_then_try_the_next_reference() {
    let verdicts = [
        "verdict_refine.json",
        "verdict_next_reference.json",
        "verdict_aligned.json",
    ];
    let h = Harness::start(&["gate_needs_reference.json"], &verdicts).await;
    h.images("edits", &RED_GREEN_BLUE).await;
    let out = h.generate("A Graphorn at dusk").await;

    assert_eq!(out.round, 3);
    assert_image_is(&out.image, "images_blue.json");
    let edits = h.edits().await;
    assert_eq!(edits.len(), 3);
    // Round 2 sends the refined prompt.
    let refined = Form::parse(&edits[1]).text("prompt");
    assert!(refined.starts_with("A photo of a rider on the back of a Graphorn"));
    // Round 3 sends the alternate reference instead of the first.
    let (a, b) = (
        fixture_bytes("reference_a.png"),
        fixture_bytes("reference_b.png"),
    );
    let sent = sent_images(&edits);
    assert_eq!(sent[1], [a.to_vec()]);
    assert_eq!(sent[2], [b.to_vec()]);

    let r = &out.report;
    assert_eq!(r.rounds.len(), 3);
    assert_eq!(r.rounds[0].next_step.as_deref(), Some("refine the prompt"));
    let step = r.rounds[1].next_step.as_deref();
    assert_eq!(step, Some("try alternate reference 1"));
    let third = &r.rounds[2].references[0];
    assert_eq!(
        third.image_url.as_str(),
        "https://upload.example.org/b1.png"
    );
    let first = r.rounds[0].verdict.as_ref().unwrap();
    assert!(matches!(first.action, Action::RefinePrompt { .. }));
    assert_eq!(r.stop_reason, "aligned in round 3");
    assert_eq!(r.usage.images.images, 3);
    assert_eq!(r.usage.images.input_tokens, 50 + 180 + 300);
    assert_eq!(r.usage.judge.calls, 3);
}

const RED_GREEN_BLUE: [&str; 3] = ["images_red.json", "images_green.json", "images_blue.json"];

#[tokio::test]
async fn three_rounds_research_then_drop_the_reference_then_accept() {
    let verdicts = [
        "verdict_research.json",
        "verdict_drop_reference.json",
        "verdict_accept_unaligned.json",
    ];
    let h = Harness::start(&["gate_needs_reference.json"], &verdicts).await;
    mount_images_any(&h.server, &RED_GREEN_BLUE).await;
    let out = h.generate("A Graphorn at dusk").await;

    // Research: the new queries were searched and a second selection made.
    let researched = ["Graphorn illustration Newt Scamander", "グラフォーン"];
    assert_eq!(&h.queries()[3..], researched);
    assert_eq!(h.selections().len(), 2);
    // Round 2 used the new selection's reference; round 3 dropped it (generations endpoint).
    assert_eq!(h.edits().await.len(), 2);
    let gens = h.generations().await;
    assert_eq!(gens.len(), 1);
    let gen_body = json_body(&gens[0]);
    assert_eq!(gen_body["prompt"], "A Graphorn at dusk");
    assert!(gen_body.get("response_format").is_none());

    let r = &out.report;
    assert_eq!(r.retrievals.len(), 2);
    let reason = &r.retrievals[1].reason;
    assert_eq!(reason, "the judge asked to research after round 1");
    let second = &r.rounds[1].references[0];
    assert_eq!(
        second.image_url.as_str(),
        "https://upload.example.org/a2.png"
    );
    assert!(r.rounds[2].references.is_empty());
    let step = r.rounds[1].next_step.as_deref();
    assert_eq!(step, Some("generate without the reference"));
    let stop = &r.stop_reason;
    assert!(stop.starts_with("the judge accepted round 3"), "{stop}");
    assert_eq!(out.round, 3);
    assert_eq!(r.queries.len(), 5);
}

#[tokio::test]
async fn when_no_round_is_aligned_the_best_round_is_returned_and_the_report_says_why() {
    let verdicts = [
        "verdict_poor.json",
        "verdict_better.json",
        "verdict_poor.json",
    ];
    let h = Harness::start(&["gate_no_reference.json"], &verdicts).await;
    h.images("generations", &RED_GREEN_BLUE).await;
    let out = h.generate("A Graphorn").await;

    assert_eq!(out.round, 2);
    assert_image_is(&out.image, "images_green.json");
    let r = &out.report;
    assert_eq!(r.rounds.len(), 3);
    assert_eq!(r.best_round, Some(2));
    // No reference was sent, so reference_use does not count: (7 + 6 + 7) / 3.
    assert_eq!(r.best_score, Some(20.0 / 3.0));
    assert_eq!(
        r.stop_reason,
        "max_rounds (3) reached without alignment; best was round 2 (mean score 6.7/10)"
    );
}

/// A chat completion (shaped like the recorded ones) whose answer is `verdict`.
fn verdict_reply(verdict: serde_json::Value) -> wiremock::ResponseTemplate {
    let mut body = fixture_json("verdict_aligned.json");
    body["choices"][0]["message"]["content"] = serde_json::json!(verdict.to_string());
    wiremock::ResponseTemplate::new(200).set_body_json(body)
}

fn verdict(aligned: bool, scores: [f32; 4], action: &str) -> serde_json::Value {
    serde_json::json!({
        "aligned": aligned,
        "scores": {"instruction_following": scores[0], "knowledge_consistency": scores[1],
                   "reference_use": scores[2], "aesthetics": scores[3]},
        "feedback": "feedback", "knowledge_gap": false, "action": action,
        "new_prompt": null, "new_queries": []
    })
}

#[tokio::test]
async fn a_round_without_a_reference_does_not_win_on_a_free_reference_score() {
    let h = Harness::start(&["gate_needs_reference.json"], &[]).await;
    // Round 1 (with the reference): mean 7.5. Round 2 (reference dropped): the judge
    // still sends reference_use 10, which used to lift its mean to 7.75.
    let replies = vec![
        verdict_reply(verdict(false, [8.0, 8.0, 6.0, 8.0], "drop_reference")),
        verdict_reply(verdict(false, [7.0, 7.0, 10.0, 7.0], "refine_prompt")),
    ];
    mount_chat_replies(&h.server, "verdict", Sequence::new(replies)).await;
    mount_images_any(&h.server, &["images_green.json", "images_red.json"]).await;
    let pipeline = h.builder(GateMode::FromPrompt, 2).build().unwrap();
    let out = pipeline.run(Request::new("A Graphorn")).await.unwrap();

    assert_eq!(out.round, 1, "the round with the reference scored higher");
    assert_image_is(&out.image, "images_green.json");
    let r = &out.report;
    assert!(r.rounds[1].references.is_empty());
    let v2 = r.rounds[1].verdict.as_ref().unwrap();
    assert_eq!(v2.scores.reference_use, None, "the axis does not apply");
    assert_eq!(v2.score(), 7.0);
    assert_eq!(r.best_score, Some(7.5));
    let sent = &h.chat("verdict").await[1];
    let system = sent["messages"][0]["content"].to_string();
    assert!(
        !system.contains("10 when there is no reference"),
        "{system}"
    );
}

#[tokio::test]
async fn an_aligned_that_contradicts_its_scores_is_shown_and_not_trusted() {
    let h = Harness::start(&["gate_no_reference.json"], &[]).await;
    // Round 1: "aligned" with knowledge_consistency 3 (the rule needs every score >= 7).
    // Round 2: honestly unaligned, but better on every axis.
    let replies = vec![
        verdict_reply(verdict(true, [8.0, 3.0, 0.0, 8.0], "refine_prompt")),
        verdict_reply(verdict(false, [8.0, 6.0, 0.0, 8.0], "refine_prompt")),
    ];
    mount_chat_replies(&h.server, "verdict", Sequence::new(replies)).await;
    h.images("generations", &["images_red.json", "images_blue.json"])
        .await;
    let pipeline = h.builder(GateMode::FromPrompt, 2).build().unwrap();
    let out = pipeline.run(Request::new("A red apple")).await.unwrap();

    let r = &out.report;
    assert_eq!(
        r.rounds.len(),
        2,
        "a contradicted `aligned` does not stop the loop"
    );
    let v1 = r.rounds[0].verdict.as_ref().unwrap();
    assert!(v1.aligned);
    let note = v1.contradiction.as_deref().unwrap();
    assert!(note.contains("knowledge_consistency 3.0"), "{note}");
    let json = serde_json::to_value(r).unwrap();
    assert!(json["rounds"][0]["verdict"]["contradiction"].is_string());
    assert_eq!(
        out.round, 2,
        "the ranking did not trust the contradicted aligned"
    );
    assert_image_is(&out.image, "images_blue.json");
}
