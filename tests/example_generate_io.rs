//! The `generate` example as a user runs it: bad flag values, stderr redirected to a
//! file or a pipe (cron, CI), a reference served from a private address (--allow-host,
//! --cache-dir), and a first run without any model endpoint. Engines and model endpoints
//! are wiremock servers; runs that rank with the tiny CLIP model need ONNX Runtime and
//! say they skipped without it.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use serde_json::Value;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The example with nothing inherited, run in `dir` (stdout and stderr are pipes).
fn generate(dir: &Path) -> Command {
    example_in("generate", dir)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn out_of_range_values_are_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 6] = [
        (&["--max-rounds", "0"], "--max-rounds"),
        (&["--max-rounds", "21"], "--max-rounds"),
        (&["--timeout", "0"], "--timeout"),
        (&["--languages", "en,"], "--languages"),
        (&["--size", "10x10"], "--size"),
        (&["--quality", "ultra"], "--quality"),
    ];
    for (flags, name) in cases {
        let out = generate(dir.path())
            .env("OPENAI_API_KEY", KEY)
            .args(flags)
            .arg("A red apple")
            .output()
            .unwrap();
        let text = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {text}");
        assert!(
            text.contains("invalid value") && text.contains(name),
            "{flags:?}: {text}"
        );
        assert!(!dir.path().join("image.png").exists());
    }
    // The message says what is allowed.
    let out = generate(dir.path())
        .args(["--max-rounds", "0", "x"])
        .output()
        .unwrap();
    assert!(stderr(&out).contains("1..=20"), "{}", stderr(&out));
}

#[tokio::test]
async fn progress_goes_to_a_redirected_stderr_as_plain_lines() {
    let server = MockServer::start().await;
    mount_chat(
        &server,
        "verdict",
        &["verdict_refine.json", "verdict_aligned.json"],
    )
    .await;
    mount_images(
        &server,
        "generations",
        &["images_red.json", "images_blue.json"],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = generate(dir.path())
        .env("OPENAI_BASE_URL", base(&server))
        .env("OPENAI_API_KEY", KEY)
        .args(["--gate-mode", "never", "--max-rounds", "3"])
        .arg("A red apple on a wooden table")
        .output()
        .unwrap();
    let text = stderr(&out);
    assert!(out.status.success(), "{}", shown(&out));
    for line in [
        "round 1/3: generating with 0 reference(s)",
        "round 1: aligned = false",
        "round 2/3: generating with 0 reference(s)",
        "round 2: aligned = true",
    ] {
        assert!(text.contains(line), "{line:?} missing from stderr:\n{text}");
    }
    assert!(!text.contains('\u{1b}'), "colour or cursor codes: {text:?}");
    // --quiet still silences it.
    let quiet = generate(dir.path())
        .env("OPENAI_BASE_URL", base(&server))
        .env("OPENAI_API_KEY", KEY)
        .args(["--gate-mode", "never", "--max-rounds", "1", "--quiet"])
        .arg("A red apple")
        .output()
        .unwrap();
    assert!(!stderr(&quiet).contains("round 1"), "{}", shown(&quiet));
}

#[tokio::test]
async fn allow_host_lets_a_private_mirror_serve_the_reference() {
    if skip_without_ort("allow_host_lets_a_private_mirror_serve_the_reference") {
        return;
    }
    let (openverse, images, served) = engine_and_images().await;
    let server = MockServer::start().await;
    mount_chat(&server, "assessment", &["gate_needs_reference.json"]).await;
    mount_chat(&server, "pick", &["chat_pick.json"]).await;
    mount_chat(&server, "verdict", &["verdict_aligned.json"]).await;
    mount_images_any(&server, &["images_green.json"]).await;
    let dir = tempfile::tempdir().unwrap();
    // Each run has its own cache: a shared one would remember the mirror's picture from the
    // allowed run and reuse it without asking the mirror again.
    let fresh = tempfile::tempdir().unwrap();
    let run = |allow: bool| {
        let cache = if allow { dir.path() } else { fresh.path() };
        let mut c = generate(cache);
        c.env("OPENAI_BASE_URL", base(&server))
            .env("OPENAI_API_KEY", KEY)
            .args(local_search(cache, &openverse))
            .args(["--max-rounds", "1"]);
        if allow {
            c.args(["--allow-host", "127.0.0.1"]);
        }
        c.arg("A Graphorn at dusk").output().unwrap()
    };

    let allowed = run(true);
    let text = stderr(&allowed);
    assert!(allowed.status.success(), "{}", shown(&allowed));
    let edits = requests_to(&server, "/v1/images/edits").await;
    assert_eq!(edits.len(), 1, "the reference was sent: {text}");
    let sent = sent_images(&edits);
    assert!(
        served.contains(&sent[0][0]),
        "the mirror's picture was sent"
    );
    assert!(dir.path().join("cache").is_dir(), "--cache-dir was used");
    // The gate, search and reference lines reach a redirected stderr, without noise.
    for line in ["gate: needs reference = true", "search: ", "reference: "] {
        assert!(text.contains(line), "{line:?} missing:\n{text}");
    }
    for noise in [
        "Feature flags not initialized",
        "MULTI_MMAP_SUPPORT_CHECK_RESULT",
    ] {
        assert!(!text.contains(noise), "{noise} printed:\n{text}");
    }
    assert!(!text.contains('\u{1b}'), "colour codes: {text:?}");

    // Without --allow-host the loopback mirror is refused: the image is generated
    // without a reference.
    let refused = run(false);
    assert!(refused.status.code().is_some(), "{}", shown(&refused));
    assert_eq!(requests_to(&server, "/v1/images/edits").await.len(), 1);
    assert_eq!(
        requests_to(&server, "/v1/images/generations").await.len(),
        1
    );
    drop(images);
}

#[tokio::test]
async fn without_a_key_it_selects_and_writes_the_reference_then_says_what_to_set() {
    if skip_without_ort("without_a_key_it_selects_and_writes_the_reference") {
        return;
    }
    let (openverse, images, served) = engine_and_images().await;
    let dir = tempfile::tempdir().unwrap();
    let out = generate(dir.path())
        .args(local_search(dir.path(), &openverse))
        .args(["--allow-host", "127.0.0.1", "--out", "graphorn.png"])
        .arg("A Graphorn at dusk")
        .output()
        .unwrap();
    let (stdout, text) = (String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_eq!(out.status.code(), Some(4), "{}", shown(&out));
    assert!(stdout.contains("# ranked (best first)"), "{stdout}");
    assert!(stdout.contains("| openverse |"), "{stdout}");
    assert!(stdout.contains("licence: by 4.0"), "{stdout}");
    assert!(
        stdout.contains(&format!("page: {}/page/", images.uri())),
        "{stdout}"
    );
    assert!(text.contains("search: openverse"), "{text}");
    assert!(
        text.contains("OPENAI_API_KEY") && text.contains("--base-url"),
        "{text}"
    );
    assert!(
        !dir.path().join("graphorn.png").exists(),
        "nothing generated"
    );
    let reference = std::fs::read(dir.path().join("graphorn-reference.png")).unwrap();
    assert!(
        served.contains(&reference),
        "the written reference is a served picture"
    );
    let sidecar: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("graphorn-reference.json")).unwrap())
            .unwrap();
    assert_eq!(sidecar["reference"]["license"]["code"], "by");
    assert_eq!(sidecar["reference"]["engine"], "openverse");
    assert!(
        sidecar["reference"]["source_page"]
            .as_str()
            .unwrap()
            .contains("/page/")
    );
    assert!(sidecar["selection"]["ranked"].as_array().unwrap().len() >= 2);
}

#[tokio::test]
async fn without_a_key_a_failed_search_still_says_what_to_set() {
    // The search fails before any model is loaded, so this needs no ONNX Runtime.
    let openverse = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&openverse)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let out = generate(dir.path())
        .args(local_search(dir.path(), &openverse))
        .arg("A Graphorn at dusk")
        .output()
        .unwrap();
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("search: openverse") && text.contains("FAILED"),
        "{text}"
    );
    assert!(text.contains("the reference preview failed"), "{text}");
    assert!(text.contains("OPENAI_API_KEY"), "{text}");
}
