//! The evaluation layer end to end against the local OpenAI stand-in: two arms of the
//! built-in sample through the batch runner, scripted judges, both reports, a resume
//! after an interruption that judges nothing twice, judgments tied to the image judged
//! (a new image is judged again, the same one never), and a failed re-generation whose
//! stale image is never judged.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::*;
use iat2i::eval::{Arm, EvalConfig, EvalReport, Evaluation, Metric, PairOutcome, PromptSet};
use iat2i::prelude::*;
use serde_json::{Value, json};
use wiremock::{MockServer, Request as WireRequest, Respond, ResponseTemplate};

/// A chat completion whose content is `content` (the shape of the recorded fixtures).
fn completion(content: &Value) -> ResponseTemplate {
    let mut body = fixture_json("verdict_aligned.json");
    body["choices"][0]["message"]["content"] = Value::String(content.to_string());
    body["usage"] = json!({"prompt_tokens": 900, "completion_tokens": 40, "total_tokens": 940});
    ResponseTemplate::new(200).set_body_json(body)
}

/// Answers `content`, counting the calls; after `stop_after` calls it sets `stop` (an
/// interruption in the middle of the judging).
struct Scripted {
    content: Value,
    calls: Arc<AtomicUsize>,
    stop: Option<(usize, Arc<AtomicBool>)>,
}

impl Respond for Scripted {
    fn respond(&self, _: &WireRequest) -> ResponseTemplate {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some((after, flag)) = &self.stop
            && n >= *after
        {
            flag.store(true, Ordering::SeqCst);
        }
        completion(&self.content)
    }
}

/// The pairwise judge prefers the augmented arm's (green) image in whichever position it
/// is shown, so the swap rule must give augmented the win every time.
struct PrefersGreen {
    green: String,
    calls: Arc<AtomicUsize>,
}

impl Respond for PrefersGreen {
    fn respond(&self, req: &WireRequest) -> ResponseTemplate {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let body: Value = serde_json::from_slice(&req.body).unwrap_or_default();
        let parts = &body["messages"][0]["content"];
        let urls: Vec<&str> = parts
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["image_url"]["url"].as_str())
            .collect();
        let winner = match urls.first() {
            Some(u) if u.ends_with(&self.green) => "A",
            _ => "B",
        };
        completion(&json!({"winner": winner, "reason": "the right subject"}))
    }
}

struct Judges {
    checklist: Arc<AtomicUsize>,
    wiscore: Arc<AtomicUsize>,
    pairwise: Arc<AtomicUsize>,
}

async fn mount_judges(server: &MockServer, stop: Option<(usize, Arc<AtomicBool>)>) -> Judges {
    let j = Judges {
        checklist: Arc::default(),
        wiscore: Arc::default(),
        pairwise: Arc::default(),
    };
    // Items 1 and 2 satisfied, 3 not, the rest unjudged (so unsatisfied): 2/len per prompt.
    let items = json!({"items": [
        {"index": 1, "satisfied": true, "reason": "visible"},
        {"index": 2, "satisfied": true, "reason": "visible"},
        {"index": 3, "satisfied": false, "reason": "absent"},
    ]});
    mount_chat_replies(
        server,
        "checklist",
        Scripted {
            content: items,
            calls: j.checklist.clone(),
            stop,
        },
    )
    .await;
    mount_chat_replies(
        server,
        "wiscore",
        Scripted {
            content: json!({"consistency": 2, "realism": 1, "aesthetic_quality": 1, "reason": "ok"}),
            calls: j.wiscore.clone(),
            stop: None,
        },
    )
    .await;
    let green = fixture_json("images_green.json")["data"][0]["b64_json"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    mount_chat_replies(
        server,
        "pairwise",
        PrefersGreen {
            green,
            calls: j.pairwise.clone(),
        },
    )
    .await;
    j
}

async fn world() -> (Harness, Arc<Pipeline>) {
    let h = Harness::start(&["gate_needs_reference.json"], &["verdict_aligned.json"]).await;
    h.images("generations", &["images_red.json"]).await;
    h.images("edits", &["images_green.json"]).await;
    let pipeline = Arc::new(h.builder(GateMode::FromPrompt, 1).build().unwrap());
    (h, pipeline)
}

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

fn arm<'a>(r: &'a EvalReport, name: &str) -> &'a iat2i::eval::ArmSummary {
    r.arms.iter().find(|a| a.name == name).unwrap()
}

#[tokio::test]
async fn a_two_arm_evaluation_of_the_sample_writes_both_reports() {
    let (h, pipeline) = world().await;
    let judges = mount_judges(&h.server, None).await;
    let out = tempfile::tempdir().unwrap();
    let report = evaluation(&h, &pipeline, out.path()).run().await.unwrap();
    let n = PromptSet::builtin_sample().prompts.len();
    assert_eq!(report.prompts_total, n);

    let base = arm(&report, "baseline");
    let aug = arm(&report, "augmented");
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
    let missing = arm(&interrupted, "augmented").checklist.missing
        + arm(&interrupted, "baseline").checklist.missing;
    assert!(missing > 0, "the interruption left judgments missing");
    let images_before = h.server.received_requests().await.unwrap_or_default().len();
    drop(flag_holder);

    let report = evaluation(&h, &pipeline, out.path()).run().await.unwrap();
    let n = PromptSet::builtin_sample().prompts.len();
    // Every judgment asked exactly once over the two runs.
    assert_eq!(judges.checklist.load(Ordering::SeqCst), 2 * n);
    assert_eq!(judges.wiscore.load(Ordering::SeqCst), 2 * n);
    assert_eq!(judges.pairwise.load(Ordering::SeqCst), 2 * n);
    assert_eq!(arm(&report, "augmented").checklist.n, n);
    assert_eq!(arm(&report, "baseline").wiscore.missing, 0);
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
    assert_eq!(arm(&second, "baseline").checklist.n, 3);

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
    assert_eq!(arm(&third, "baseline").wiscore.n, 3);
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
    assert_eq!(arm(&first, "baseline").images, 3);

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
    let base = arm(&second, "baseline");
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

/// A chat completion whose content is the plain text `text`.
fn completion_text(text: &str) -> ResponseTemplate {
    let mut body = fixture_json("verdict_aligned.json");
    body["choices"][0]["message"]["content"] = Value::String(text.to_string());
    ResponseTemplate::new(200).set_body_json(body)
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
    let base = arm(&report, "baseline");
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
    assert!((arm(&again, "baseline").wiscore.mean.unwrap() - 0.85).abs() < 1e-9);
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
