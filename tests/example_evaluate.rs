//! The `evaluate` example as a user runs it: a two-arm evaluation of the built-in sample
//! against local servers (OpenAI chat and images, Openverse, an image host), the tiny CLIP
//! model, both reports, and a second run that pays for nothing again.

mod common;

use common::*;
use serde_json::Value;

#[tokio::test]
async fn evaluate_runs_two_arms_of_the_sample_and_resumes_for_free() {
    if skip_without_ort("evaluate_runs_two_arms_of_the_sample_and_resumes_for_free") {
        return;
    }
    let (openverse, images, _) = engine_and_images().await;
    let server = wiremock::MockServer::start().await;
    mount_chat(&server, "assessment", &["gate_needs_reference.json"]).await;
    mount_chat(&server, "pick", &["chat_pick.json"]).await;
    mount_chat(&server, "verdict", &["verdict_aligned.json"]).await;
    mount_chat(&server, "checklist", &["eval_checklist.json"]).await;
    mount_chat(&server, "wiscore", &["eval_wiscore.json"]).await;
    mount_chat(&server, "pairwise", &["eval_pairwise.json"]).await;
    mount_images(&server, "generations", &["images_red.json"]).await;
    mount_images(&server, "edits", &["images_green.json"]).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("eval");
    let run = || {
        example_in("evaluate", dir.path())
            .env("OPENAI_BASE_URL", base(&server))
            .env("OPENAI_API_KEY", KEY)
            .args(local_search(dir.path(), &openverse))
            .args(["--allow-host", "127.0.0.1", "--max-rounds", "1", "--out"])
            .arg(&out)
            .output()
            .unwrap()
    };

    let first = run();
    assert!(first.status.success(), "{}", shown(&first));
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(stdout.contains("baseline vs augmented"), "{stdout}");
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.join("eval.json")).unwrap()).unwrap();
    let n = report["prompts_total"].as_u64().unwrap();
    assert_eq!(n, 30, "the built-in sample");
    let arms = report["arms"].as_array().unwrap();
    assert_eq!(arms.len(), 2);
    for arm in arms {
        assert_eq!(arm["images"], n, "{arm}");
        let checklist = arm["checklist"]["mean"].as_f64().unwrap();
        // The judge answers two items a prompt; items it omits count as unsatisfied, so
        // a prompt scores 2/len(checklist) (at most 2/3 for the sample's lists).
        assert!(
            checklist > 0.3 && checklist <= 2.0 / 3.0 + 1e-9,
            "{checklist}"
        );
        assert!((arm["wiscore"]["mean"].as_f64().unwrap() - 0.85).abs() < 1e-9);
    }
    // The augmented arm used the mirror's pictures, so CLIP agreement exists for it alone.
    assert_eq!(arms[0]["reference_agreement"]["n"], 0);
    assert_eq!(arms[1]["reference_agreement"]["n"], n);
    // The judge always answers "A": the two orders disagree, so every pair is a tie.
    assert_eq!(report["pairs"][0]["ties"], 1.0);
    let html = std::fs::read_to_string(out.join("eval.html")).unwrap();
    assert!(html.contains("Pairwise") && html.contains("augmented"));

    let requests = server.received_requests().await.unwrap().len();
    let again = run();
    assert!(again.status.success(), "{}", shown(&again));
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        requests,
        "the second run asked the models nothing"
    );
    drop(images);
}

#[test]
fn evaluate_help_names_the_arms_metrics_and_exit_codes() {
    let out = example_in("evaluate", &std::env::temp_dir())
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for word in [
        "baseline",
        "augmented-1-round",
        "checklist",
        "wiscore",
        "pairwise",
        "Exit codes",
        "--judge-prompt <FILE>",
        "{prompt_data['Prompt']}",
        "not WISE's official",
    ] {
        assert!(text.contains(word), "{word} missing from --help:\n{text}");
    }
}

#[test]
fn evaluate_refuses_a_judge_prompt_for_a_judge_it_does_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let prompt = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/eval/judge_prompts/three_axis_lines.txt");
    let out = example_in("evaluate", dir.path())
        .arg("--judge-prompt")
        .arg(&prompt)
        .args(["--metrics", "checklist,pairwise"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--metrics has no wiscore"), "{stderr}");
    // A file the judge cannot fill is an error naming it.
    std::fs::write(dir.path().join("bad.txt"), "Score the image.").unwrap();
    let out = example_in("evaluate", dir.path())
        .args(["--judge-prompt", "bad.txt"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error: {}", shown(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("judge prompt file bad.txt: it has no {{prompt}}"),
        "{stderr}"
    );
}

/// A WISE file's first two prompts (one category): per-category scores, and the summary
/// says there is no overall WiScore and why, and that the WiScore is the harness's own.
#[tokio::test]
async fn evaluate_on_part_of_wise_says_the_overall_is_not_defined() {
    let server = wiremock::MockServer::start().await;
    mount_chat(&server, "wiscore", &["eval_wiscore.json"]).await;
    mount_images(&server, "generations", &["images_red.json"]).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("eval");
    let wise =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/eval/wise_sample.json");
    let run = example_in("evaluate", dir.path())
        .env("OPENAI_BASE_URL", base(&server))
        .env("OPENAI_API_KEY", KEY)
        .arg("--prompts")
        .arg(&wise)
        .args(["--limit", "2", "--arms", "baseline", "--metrics", "wiscore"])
        .args(["--cache-dir"])
        .arg(dir.path().join("cache"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", shown(&run));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("WISE: the overall WiScore is not defined for a partial run")
            && stdout.contains("998 of WISE's 1000 prompt ids are missing"),
        "{stdout}"
    );
    assert!(
        stdout.contains("WiScore: not the official WISE number") && stdout.contains("wiscore.v1"),
        "{stdout}"
    );
    assert!(!stdout.contains("WiScore overall"), "{stdout}");
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.join("eval.json")).unwrap()).unwrap();
    assert_eq!(report["wise"]["edition"], "original");
    assert_eq!(report["wise"]["prompt_ids_missing"], 998);
    assert_eq!(report["arms"][0]["wiscore_overall"], Value::Null);
    assert_eq!(report["arms"][0]["categories"]["time"]["wiscore"]["n"], 1);
    assert_eq!(report["wiscore_source"]["judge_prompt"], "wiscore.v1");
    let html = std::fs::read_to_string(out.join("eval.html")).unwrap();
    assert!(html.contains("not the official WISE number"));
}
