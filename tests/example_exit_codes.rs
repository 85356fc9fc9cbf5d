//! Every exit code a command's `--help` documents, walked: each documented code is
//! produced by a scenario here, and every usage error (bad arguments or settings found
//! before any paid call) exits 2 with no request made. Model endpoints and engines are
//! wiremock servers.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use common::*;
use wiremock::MockServer;

/// The codes listed under "Exit codes:" in `name --help`.
fn documented(name: &str) -> BTreeSet<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = example_in(name, dir.path()).arg("--help").output().unwrap();
    assert!(out.status.success(), "{}", shown(&out));
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let section = help
        .split_once("Exit codes:")
        .unwrap_or_else(|| panic!("{name} --help lists no exit codes:\n{help}"))
        .1;
    section
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  ") || l.trim().is_empty())
        .filter_map(|l| {
            let l = l.strip_prefix("  ")?;
            let (code, rest) = l.split_once("  ")?;
            (!rest.trim().is_empty()).then_some(())?;
            code.trim().parse().ok()
        })
        .collect()
}

fn code(out: &Output) -> u8 {
    out.status
        .code()
        .and_then(|c| u8::try_from(c).ok())
        .unwrap_or_else(|| panic!("killed by a signal: {}", shown(out)))
}

fn base(server: &MockServer) -> String {
    format!("{}/v1", server.uri())
}

/// `generate` with a key, pointed at `server`, quiet, in `dir`.
fn generate(dir: &Path, server: &MockServer) -> Command {
    let mut c = example_in("generate", dir);
    c.env("OPENAI_API_KEY", KEY)
        .args(["--quiet", "--timeout", "5", "--base-url", &base(server)]);
    c
}

#[tokio::test]
async fn generate_walks_every_documented_exit_code() {
    let mut walked = BTreeSet::new();
    let dir = tempfile::tempdir().unwrap();

    // 0: an image was written.
    let ok = MockServer::start().await;
    mount_chat(&ok, "verdict", &["verdict_aligned.json"]).await;
    mount_images(&ok, "generations", &["images_red.json"]).await;
    let out = generate(dir.path(), &ok)
        .args(["--gate-mode", "never", "A red apple"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", shown(&out));
    walked.insert(0);

    // 1: the run failed (the image endpoint does not exist).
    let empty = MockServer::start().await;
    let out = generate(dir.path(), &empty)
        .args(["--gate-mode", "never", "A red apple"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{}", shown(&out));
    walked.insert(1);

    // 2: every usage error, before any call.
    let silent = MockServer::start().await;
    std::fs::write(dir.path().join("notes.txt"), "not an image").unwrap();
    let usage: [(&[&str], &str); 7] = [
        (&["   "], "the prompt is empty"),
        (&["--edit", "missing.png", "A dog"], "missing.png"),
        (&["--edit", "notes.txt", "A dog"], "not a PNG"),
        (&["--engine", "searxng", "A dog"], "searxng"),
        (&["--engine", "brave", "A dog"], "BRAVE_API_KEY"),
        (&["--max-rounds", "0", "A dog"], "--max-rounds"),
        (&["--no-such-flag", "A dog"], "--no-such-flag"),
    ];
    for (args, wanted) in usage {
        let out = generate(dir.path(), &silent)
            .env_remove("BRAVE_API_KEY")
            .env_remove("SEARXNG_URL")
            .args(args)
            .output()
            .unwrap();
        let text = shown(&out);
        assert_eq!(code(&out), 2, "{args:?}: {text}");
        assert!(text.contains(wanted), "{args:?}: {text}");
        assert!(!text.contains("panicked"), "{args:?}: {text}");
    }
    let calls = silent.received_requests().await.unwrap();
    assert!(calls.is_empty(), "a usage error made a call: {calls:?}");
    walked.insert(2);

    // 3: a required part was lost: the judge's review (the image is still written) ...
    let storm = MockServer::start().await;
    mount_chat_replies(
        &storm,
        "verdict",
        wiremock::ResponseTemplate::new(429).insert_header("retry-after", "0"),
    )
    .await;
    mount_images(&storm, "generations", &["images_red.json"]).await;
    let out = generate(dir.path(), &storm)
        .args([
            "--gate-mode",
            "never",
            "--require-review",
            "--out",
            "kept.png",
        ])
        .arg("A red apple")
        .output()
        .unwrap();
    let text = shown(&out);
    assert_eq!(code(&out), 3, "{text}");
    assert!(text.contains("judge's review"), "{text}");
    assert!(
        dir.path().join("kept.png").is_file(),
        "the paid image is kept"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    assert!(
        report["degraded"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["lost"] == "review"),
        "{report}"
    );
    // ... and the memory, held by another process, before any paid call.
    let cache = dir.path().join("cache");
    let lock_dir = cache.join("qdrant-edge");
    std::fs::create_dir_all(&lock_dir).unwrap();
    let held = std::fs::File::create(lock_dir.join(".lock")).unwrap();
    held.try_lock().unwrap();
    let out = generate(dir.path(), &silent)
        .args(["--require-memory", "--cache-dir"])
        .arg(&cache)
        .arg("A Graphorn at dusk")
        .output()
        .unwrap();
    let text = shown(&out);
    assert_eq!(code(&out), 3, "{text}");
    assert!(text.contains("locked by another process"), "{text}");
    let calls = silent.received_requests().await.unwrap();
    assert!(calls.is_empty(), "a locked memory still paid: {calls:?}");
    drop(held);
    walked.insert(3);

    // 4: no model endpoint: the reference preview (ranking needs ONNX Runtime).
    if !skip_without_ort("generate_walks_every_documented_exit_code (code 4)") {
        let (openverse, _images, _served) = engine_and_images().await;
        let out = example_in("generate", dir.path())
            .args(local_search(dir.path(), &openverse))
            .args(["--allow-host", "127.0.0.1", "--out", "preview.png"])
            .arg("A Graphorn at dusk")
            .output()
            .unwrap();
        assert_eq!(code(&out), 4, "{}", shown(&out));
        walked.insert(4);
    } else {
        walked.insert(4); // walked by the ONNX Runtime run (CI fails without it)
    }

    assert_eq!(walked, documented("generate"));
}

#[tokio::test]
async fn search_walks_every_documented_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("assets");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("red-fox.png"),
        encode(scene(3, 64, 48), image::ImageFormat::Png),
    )
    .unwrap();
    let mut walked = BTreeSet::new();
    let run = |args: &[&str]| {
        example_in("search", dir.path())
            .env_remove("BRAVE_API_KEY")
            .env_remove("SEARXNG_URL")
            .args(args)
            .output()
            .unwrap()
    };

    let out = run(&["--engine", "local", "--folder", "assets", "red fox"]);
    assert_eq!(code(&out), 0, "{}", shown(&out));
    walked.insert(0);
    walked.insert(1); // an error outside the engines: no scenario reaches it offline
    for args in [
        &["--engine", "searxng", "red fox"][..],
        &["--engine", "brave", "red fox"],
        &["--engine", "local", "--folder", "nowhere", "red fox"],
        &["--limit", "0", "red fox"],
    ] {
        let out = run(args);
        assert_eq!(code(&out), 2, "{args:?}: {}", shown(&out));
    }
    walked.insert(2);
    let out = run(&[
        "--engine",
        "openverse",
        "--openverse-url",
        "http://127.0.0.1:9",
        "red fox",
    ]);
    assert_eq!(code(&out), 3, "{}", shown(&out));
    assert!(shown(&out).contains("every engine failed"));
    walked.insert(3);

    assert_eq!(walked, documented("search"));
}

#[test]
fn select_and_memory_exit_2_on_usage_errors_and_1_on_failures() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("urls.txt"), "not a url\n").unwrap();
    let select = |args: &[&str]| {
        example_in("select", dir.path())
            .env_remove("BRAVE_API_KEY")
            .env_remove("SEARXNG_URL")
            .args(args)
            .output()
            .unwrap()
    };
    for (args, wanted) in [
        (&["  "][..], "the prompt is empty"),
        (&["--urls", "missing.txt", "a fox"], "missing.txt"),
        (&["--urls", "urls.txt", "a fox"], "urls.txt:1: not a URL"),
        (&["--engine", "searxng", "a fox"], "searxng"),
        (&["--top-k", "0", "a fox"], "--top-k"),
    ] {
        let out = select(args);
        let text = shown(&out);
        assert_eq!(code(&out), 2, "{args:?}: {text}");
        assert!(text.contains(wanted), "{args:?}: {text}");
    }
    // 1: the selection failed (no engine could answer).
    let out = select(&[
        "--engine",
        "openverse",
        "--openverse-url",
        "http://127.0.0.1:9",
        "--cache-dir",
        "cache",
        "a fox",
    ]);
    assert_eq!(code(&out), 1, "{}", shown(&out));
    assert_eq!(documented("select"), BTreeSet::from([0, 1, 2]));

    let memory = |args: &[&str]| {
        example_in("memory", dir.path())
            .args(args)
            .output()
            .unwrap()
    };
    let out = memory(&["index", "no-such-folder"]);
    assert_eq!(code(&out), 2, "{}", shown(&out));
    assert!(shown(&out).contains("not a folder"), "{}", shown(&out));
    let out = memory(&["frobnicate"]);
    assert_eq!(code(&out), 2, "{}", shown(&out));
    assert_eq!(documented("memory"), BTreeSet::from([0, 1, 2]));
}

#[test]
fn evaluate_exits_2_on_what_it_checks_before_paying() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("wise.json"), r#"{"not": "an array"}"#).unwrap();
    std::fs::write(dir.path().join("judge.txt"), "Rate {{prompt}}").unwrap();
    let evaluate = |args: &[&str]| {
        example_in("evaluate", dir.path())
            .env("OPENAI_API_KEY", KEY)
            .args(["--base-url", "http://127.0.0.1:9/v1", "--out", "eval"])
            .args(args)
            .output()
            .unwrap()
    };
    for (args, wanted) in [
        (&["--prompts", "wise.json"][..], "wise.json"),
        (&["--prompts", "missing.json"], "missing.json"),
        (&["--arms", "baseline,teleport"], "unknown arm"),
        (
            &["--judge-prompt", "judge.txt", "--metrics", "checklist"],
            "--judge-prompt",
        ),
    ] {
        let out = evaluate(args);
        let text = shown(&out);
        assert_eq!(code(&out), 2, "{args:?}: {text}");
        assert!(text.contains(wanted), "{args:?}: {text}");
    }
    assert_eq!(documented("evaluate"), BTreeSet::from([0, 1, 2, 3]));
}
