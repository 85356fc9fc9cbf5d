//! The evaluation layer end to end against the local OpenAI stand-in: two arms of the
//! built-in sample through the batch runner, scripted judges, both reports, a resume
//! after an interruption that judges nothing twice, judgments tied to the image judged
//! (a new image is judged again, the same one never), a failed re-generation whose
//! stale image is never judged, and a WiScore judge prompt from a file. The scripted
//! judges are in `common/eval_judges.rs`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::*;
use iat2i::eval::{Arm, EvalConfig, EvalReport, Evaluation, Metric, PairOutcome, PromptSet};
use iat2i::prelude::*;
use serde_json::{Value, json};
use wiremock::{MockServer, Request as WireRequest, ResponseTemplate};

fn evaluation(h: &Harness, pipeline: &Arc<Pipeline>, out: &std::path::Path) -> Evaluation {
    let config = EvalConfig {
        out: out.to_path_buf(),
        metrics: vec![Metric::Checklist, Metric::WiScore, Metric::Pairwise],
        judge_concurrency: 1,
        resamples: 500,
        ..EvalConfig::default()
    };
    Evaluation::new(
        PromptSet::builtin_sample(),
        Arc::new(chat_client(&h.server, test_http())),
        config,
    )
    .arm(Arm::baseline(pipeline.clone()))
    .arm(Arm::new("augmented", pipeline.clone()))
}

/// The mean checklist score the scripted judge gives over `set`: 2 of each checklist.
fn expected_checklist(set: &PromptSet) -> f64 {
    let per: Vec<f64> = set
        .prompts
        .iter()
        .map(|p| 2.0 / p.checklist.len() as f64)
        .collect();
    per.iter().sum::<f64>() / per.len() as f64
}

#[tokio::test]
async fn a_two_arm_evaluation_of_the_sample_writes_both_reports() {
    let (h, pipeline) = world().await;
    let judges = mount_judges(&h.server, None).await;
    let out = tempfile::tempdir().unwrap();
    let report = evaluation(&h, &pipeline, out.path()).run().await.unwrap();
    let n = PromptSet::builtin_sample().prompts.len();
    assert_eq!(report.prompts_total, n);

    let base = eval_arm(&report, "baseline");
    let aug = eval_arm(&report, "augmented");
    assert_eq!((base.images, aug.images), (n, n));
    // Known judge answers give the exact scores.
    let expected = expected_checklist(&PromptSet::builtin_sample());
    for a in [base, aug] {
        let mean = a.checklist.mean.unwrap();
        assert!(
            (mean - expected).abs() < 1e-9,
            "{mean} (expected {expected})"
        );
        assert_eq!(a.checklist.n, n);
        assert!((a.wiscore.mean.unwrap() - 0.85).abs() < 1e-9);
        assert_eq!(a.categories.len(), 3, "{:?}", a.categories.keys());
    }
    assert_eq!(base.gate_asked_reference, 0.0);
    assert_eq!(base.reference_used, 0.0);
    assert_eq!(aug.gate_asked_reference, 1.0);
    assert_eq!(aug.reference_used, 1.0);
    assert_eq!((base.reference_lost, aug.reference_lost), (0.0, 0.0));
    // Pairwise: both orders asked; the green (augmented) image wins in either position.
    assert_eq!(report.pairs.len(), 1);
    let pair = &report.pairs[0];
    assert_eq!(
        (pair.a.as_str(), pair.b.as_str()),
        ("baseline", "augmented")
    );
    assert_eq!((pair.n, pair.missing), (n, 0));
    assert_eq!((pair.a_wins, pair.ties, pair.b_wins), (0.0, 0.0, 1.0));
    assert!(
        report.prompts[0]
            .pairs
            .iter()
            .all(|p| p.outcome == Some(PairOutcome::Second))
    );
    assert_eq!(judges.pairwise.load(Ordering::SeqCst), 2 * n);
    assert_eq!(judges.checklist.load(Ordering::SeqCst), 2 * n);
    assert_eq!(judges.wiscore.load(Ordering::SeqCst), 2 * n);
    assert_eq!(report.judge_prompts["checklist"], "checklist.v1");

    // Both reports, and every image the page names is on disk.
    let json: EvalReport =
        serde_json::from_slice(&std::fs::read(out.path().join("eval.json")).unwrap()).unwrap();
    // (serde_json parses floats to within one unit in the last place, so compare the parts.)
    assert_eq!(json.pairs, report.pairs);
    assert_eq!(json.arms.len(), 2);
    assert_eq!(
        json.prompts.iter().map(|p| &p.id).collect::<Vec<_>>(),
        report.prompts.iter().map(|p| &p.id).collect::<Vec<_>>()
    );
    assert!((json.arms[0].checklist.mean.unwrap() - expected).abs() < 1e-9);
    let html = std::fs::read_to_string(out.path().join("eval.html")).unwrap();
    for row in &report.prompts {
        for cell in row.arms.values() {
            let image = cell.image.as_ref().unwrap();
            assert!(out.path().join(image).is_file(), "{image}");
            // (HTML escaping writes '/' as &#x2f; in attributes; browsers read both.)
            let escaped = image.replace('/', "&#x2f;");
            assert!(
                html.contains(image.as_str()) || html.contains(&escaped),
                "{image} not on the page"
            );
        }
    }
    assert!(html.contains("augmented") && html.contains("baseline"));
    assert!(!html.contains("<script>alert"), "prompts are escaped");
}

#[tokio::test]
async fn an_interrupted_evaluation_resumes_without_judging_anything_twice() {
    let (h, pipeline) = world().await;
    let flag_holder: Arc<AtomicBool> = Arc::default();
    let out = tempfile::tempdir().unwrap();
    let first = evaluation(&h, &pipeline, out.path());
    let stop = first.stopping();
    let judges = mount_judges(&h.server, Some((7, stop.clone()))).await;
    let interrupted = first.run().await.unwrap();
    assert!(stop.load(Ordering::SeqCst));
    let missing = eval_arm(&interrupted, "augmented").checklist.missing
        + eval_arm(&interrupted, "baseline").checklist.missing;
    assert!(missing > 0, "the interruption left judgments missing");
    let images_before = h.server.received_requests().await.unwrap_or_default().len();
    drop(flag_holder);

    let report = evaluation(&h, &pipeline, out.path()).run().await.unwrap();
    let n = PromptSet::builtin_sample().prompts.len();
    // Every judgment asked exactly once over the two runs.
    assert_eq!(judges.checklist.load(Ordering::SeqCst), 2 * n);
    assert_eq!(judges.wiscore.load(Ordering::SeqCst), 2 * n);
    assert_eq!(judges.pairwise.load(Ordering::SeqCst), 2 * n);
    assert_eq!(eval_arm(&report, "augmented").checklist.n, n);
    assert_eq!(eval_arm(&report, "baseline").wiscore.missing, 0);
    // And no image was generated again.
    let generated = |reqs: &[WireRequest]| {
        reqs.iter()
            .filter(|r| r.url.path().starts_with("/v1/images/"))
            .count()
    };
    let all = h.server.received_requests().await.unwrap_or_default();
    assert_eq!(
        generated(&all[..images_before]),
        generated(&all),
        "no image generated twice"
    );
    assert_eq!(generated(&all), 2 * n);
}

#[tokio::test]
async fn a_prompt_without_a_checklist_gets_one_written_once_and_reused() {
    let (h, pipeline) = world().await;
    let judges = mount_judges(&h.server, None).await;
    let writer = Arc::new(AtomicUsize::new(0));
    mount_chat_replies(
        &h.server,
        "checklist_writer",
        Scripted {
            content: json!({"checklist": ["A shoebill stork", "Grey plumage", "A huge bill"]}),
            calls: writer.clone(),
            stop: None,
        },
    )
    .await;
    let prompts = PromptSet::parse(
        "A shoebill at dawn\n",
        std::path::Path::new("prompts.txt"),
        iat2i::eval::Format::Manifest,
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let eval = || {
        Evaluation::new(
            prompts.clone(),
            Arc::new(chat_client(&h.server, test_http())),
            EvalConfig {
                out: out.path().to_path_buf(),
                metrics: vec![Metric::Checklist],
                ..EvalConfig::default()
            },
        )
        .arm(Arm::new("augmented", pipeline.clone()))
    };
    let first = eval().run().await.unwrap();
    let second = eval().run().await.unwrap();
    assert_eq!(
        writer.load(Ordering::SeqCst),
        1,
        "written once, then reused"
    );
    assert_eq!(judges.checklist.load(Ordering::SeqCst), 1);
    assert_eq!(first.prompts[0].checklist.len(), 3);
    assert_eq!(second.prompts[0].checklist, first.prompts[0].checklist);
    assert!((second.arms[0].checklist.mean.unwrap() - 2.0 / 3.0).abs() < 1e-9);
    assert!(first.pairs.is_empty(), "one arm has no pair");
}

/// A pipeline whose images come from `server`'s `/v1/images/generations` under `model`
/// (another model name changes every job's fingerprint, so the jobs run again).
fn pipeline_on(h: &Harness, server: &MockServer, model: &str) -> Arc<Pipeline> {
    let images = iat2i::OpenAiImages::new(test_http(), &base(server), model)
        .unwrap()
        .with_api_key(iat2i::Secret::new(KEY));
    Arc::new(
        h.builder(GateMode::Never, 1)
            .generator(Arc::new(images))
            .build()
            .unwrap(),
    )
}

/// An image server answering `fixture` (200) or, for an `images_error_*` fixture, `status`.
async fn image_server(fixture: &str, status: u16) -> MockServer {
    let server = MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path("/v1/images/generations"))
        .respond_with(ResponseTemplate::new(status).set_body_json(fixture_json(fixture)))
        .mount(&server)
        .await;
    server
}

/// The first three sample prompts, judged by the checklist and WiScore judges.
fn small_eval(h: &Harness, pipeline: &Arc<Pipeline>, out: &std::path::Path) -> Evaluation {
    let mut prompts = PromptSet::builtin_sample();
    prompts.prompts.truncate(3);
    let config = EvalConfig {
        out: out.to_path_buf(),
        metrics: vec![Metric::Checklist, Metric::WiScore],
        judge_concurrency: 1,
        resamples: 100,
        ..EvalConfig::default()
    };
    Evaluation::new(
        prompts,
        Arc::new(chat_client(&h.server, test_http())),
        config,
    )
    .arm(Arm::baseline(pipeline.clone()))
}

#[tokio::test]
async fn a_new_image_is_judged_again_and_the_same_image_never() {
    let h = Harness::start(&[], &["verdict_aligned.json"]).await;
    let judges = mount_judges(&h.server, None).await;
    let out = tempfile::tempdir().unwrap();
    let calls = || {
        (
            judges.checklist.load(Ordering::SeqCst),
            judges.wiscore.load(Ordering::SeqCst),
        )
    };
    let red = image_server("images_red.json", 200).await;
    let first = small_eval(&h, &pipeline_on(&h, &red, "gpt-image-1"), out.path());
    first.run().await.unwrap();
    assert_eq!(calls(), (3, 3));

    // Another image model draws other images into the same folders: judged again.
    let green = image_server("images_green.json", 200).await;
    let p2 = pipeline_on(&h, &green, "gpt-image-1-mini");
    let second = small_eval(&h, &p2, out.path()).run().await.unwrap();
    assert_eq!(calls(), (6, 6), "every new image judged");
    assert_eq!(eval_arm(&second, "baseline").checklist.n, 3);

    // Running again changes nothing; a third model drawing the very same images
    // regenerates them, but the judgments of those images are reused.
    small_eval(&h, &p2, out.path()).run().await.unwrap();
    let same = image_server("images_green.json", 200).await;
    let p3 = pipeline_on(&h, &same, "gpt-image-1.5");
    let third = small_eval(&h, &p3, out.path()).run().await.unwrap();
    let regenerated = same.received_requests().await.unwrap_or_default().len();
    assert_eq!(
        regenerated, 3,
        "the third model generated every image again"
    );
    assert_eq!(calls(), (6, 6), "the same image is never judged twice");
    assert_eq!(eval_arm(&third, "baseline").wiscore.n, 3);
}

#[tokio::test]
async fn a_failed_regeneration_never_has_its_stale_image_judged() {
    let h = Harness::start(&[], &["verdict_aligned.json"]).await;
    let judges = mount_judges(&h.server, None).await;
    let out = tempfile::tempdir().unwrap();
    let red = image_server("images_red.json", 200).await;
    let first = small_eval(&h, &pipeline_on(&h, &red, "gpt-image-1"), out.path())
        .run()
        .await
        .unwrap();
    assert_eq!(eval_arm(&first, "baseline").images, 3);

    // The new model's requests fail; the old image.png and report.json stay in place.
    let failing = image_server("images_error_400.json", 400).await;
    let p2 = pipeline_on(&h, &failing, "gpt-image-1-mini");
    let second = small_eval(&h, &p2, out.path()).run().await.unwrap();
    let job = out.path().join("arms/baseline").join(&second.prompts[0].id);
    assert!(
        job.join("image.png").is_file(),
        "the stale image is still there"
    );
    assert!(!failing.received_requests().await.unwrap().is_empty());
    let base = eval_arm(&second, "baseline");
    assert_eq!((base.images, base.without_image), (0, 3));
    assert_eq!((base.checklist.n, base.checklist.missing), (0, 3));
    assert_eq!((base.wiscore.n, base.wiscore.missing), (0, 3));
    assert_eq!(
        judges.checklist.load(Ordering::SeqCst),
        3,
        "nothing judged again"
    );
    let cell = &second.prompts[0].arms["baseline"];
    assert!(cell.image.is_none(), "the page shows no stale image");
    let why = cell.scores.error.clone().unwrap_or_default();
    assert!(
        why.contains("400") || why.contains("Invalid value"),
        "{why}"
    );
}

#[tokio::test]
async fn a_judge_prompt_file_replaces_the_wiscore_judge_and_is_recorded() {
    let (h, pipeline) = world().await;
    let judges = mount_judges(&h.server, None).await;
    // The file's text (not wiscore.v1's) reaches the judge, which answers in WISE's
    // gpt_eval.py lines.
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path("/v1/chat/completions"))
        .and(wiremock::matchers::body_string_contains(
            "Aesthetic Quality (0-2)",
        ))
        .respond_with(completion_text(
            "Consistency: 2\nRealism: 1\nAesthetic Quality: 0",
        ))
        .mount(&h.server)
        .await;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/eval/judge_prompts/three_axis_lines.txt");
    let file = iat2i::eval::JudgePromptFile::load(&path).unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut prompts = PromptSet::builtin_sample();
    prompts.prompts.truncate(3);
    let eval = |wiscore_prompt: Option<iat2i::eval::JudgePromptFile>| {
        Evaluation::new(
            prompts.clone(),
            Arc::new(chat_client(&h.server, test_http())),
            EvalConfig {
                out: out.path().to_path_buf(),
                metrics: vec![Metric::WiScore],
                resamples: 100,
                wiscore_prompt,
                ..EvalConfig::default()
            },
        )
        .arm(Arm::baseline(pipeline.clone()))
    };
    let report = eval(Some(file.clone())).run().await.unwrap();
    assert_eq!(
        judges.wiscore.load(Ordering::SeqCst),
        0,
        "wiscore.v1 was not asked"
    );
    let base = eval_arm(&report, "baseline");
    assert_eq!(base.wiscore.n, 3);
    // (0.7·2 + 0.2·1 + 0.1·0) / 2
    assert!((base.wiscore.mean.unwrap() - 0.8).abs() < 1e-9);
    let asked: Vec<Value> = h
        .server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("Aesthetic Quality (0-2)"))
        .map(json_body)
        .collect();
    assert_eq!(asked.len(), 3);
    let text = |r: &Value| {
        r["messages"][0]["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let first = &prompts.prompts[0];
    // The prompt and explanation fill WISE's script fields (asked in any order).
    let expected = format!(
        "PROMPT: \"{}\"\nEXPLANATION: \"{}\"",
        first.prompt,
        first.explanation.as_deref().unwrap()
    );
    assert!(
        asked.iter().any(|r| text(r).contains(&expected)),
        "{expected} not in {asked:?}"
    );
    assert!(
        asked.iter().all(|r| r.get("response_format").is_none()),
        "no JSON schema forced"
    );
    // The report and eval.json name the file and its SHA-256.
    assert_eq!(report.judge_prompts["wiscore"], file.id());
    let source = report.wiscore_source.as_ref().unwrap();
    let recorded = source.judge_prompt_file.as_ref().unwrap();
    assert_eq!(recorded.sha256, file.sha256());
    assert!(source.note.contains(file.sha256()) && source.note.starts_with("not the official"));
    let json: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("eval.json")).unwrap()).unwrap();
    assert_eq!(
        json["wiscore_source"]["judge_prompt_file"]["sha256"],
        file.sha256()
    );
    let html = std::fs::read_to_string(out.path().join("eval.html")).unwrap();
    assert!(html.contains(file.sha256()));

    // The built-in judge's judgments are stored apart: switching back asks it afresh.
    let again = eval(None).run().await.unwrap();
    assert_eq!(judges.wiscore.load(Ordering::SeqCst), 3);
    assert!((eval_arm(&again, "baseline").wiscore.mean.unwrap() - 0.85).abs() < 1e-9);
    assert_eq!(again.judge_prompts["wiscore"], "wiscore.v1");

    // A file for a judge that is not run is refused, not dropped.
    let unused = Evaluation::new(
        prompts.clone(),
        Arc::new(chat_client(&h.server, test_http())),
        EvalConfig {
            out: out.path().to_path_buf(),
            metrics: vec![Metric::Checklist],
            wiscore_prompt: Some(file),
            ..EvalConfig::default()
        },
    )
    .arm(Arm::baseline(pipeline.clone()));
    let err = unused.run().await.unwrap_err().to_string();
    assert!(err.contains("WiScore is not among the metrics"), "{err}");
}

#[tokio::test]
async fn eval_json_counts_how_often_each_planned_entity_was_shown() {
    let h = Harness::start(
        &["gate_two_entities.json"],
        &["verdict_entity_two_wrong.json"],
    )
    .await;
    mount_judges(&h.server, None).await;
    h.images("edits", &["images_green.json"]).await;
    let pipeline = Arc::new(h.builder(GateMode::FromPrompt, 1).build().unwrap());
    let out = tempfile::tempdir().unwrap();
    let mut prompts = PromptSet::builtin_sample();
    prompts.prompts.truncate(3);
    let config = EvalConfig {
        out: out.path().to_path_buf(),
        metrics: vec![Metric::Checklist],
        judge_concurrency: 1,
        resamples: 100,
        ..EvalConfig::default()
    };
    let report = Evaluation::new(
        prompts,
        Arc::new(chat_client(&h.server, test_http())),
        config,
    )
    .arm(Arm::new("augmented", pipeline.clone()).gate_mode(GateMode::FromPrompt))
    .run()
    .await
    .unwrap();

    let arm = eval_arm(&report, "augmented");
    let graphorn = arm.entities_shown["Graphorn"];
    let hero = arm.entities_shown["Hogwarts Legacy protagonist"];
    assert_eq!((graphorn.yes, graphorn.partly, graphorn.no), (3, 0, 0));
    assert_eq!((hero.yes, hero.partly, hero.no), (0, 0, 3));
    let json: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("eval.json")).unwrap()).unwrap();
    assert_eq!(
        json["arms"][0]["entities_shown"]["Hogwarts Legacy protagonist"]["no"],
        3
    );
}
