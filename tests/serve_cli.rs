//! `iat2i serve` as a process, as clients meet it: the official OpenAI Python SDK
//! (pinned in tests/sdk/requirements.txt, in a venv this test makes) generates and edits
//! against it; SIGTERM lets a running request finish before the process exits.
//!
//! The SDK test needs python3 with venv and pip (PyPI on the first run): it says it
//! skipped without them, and fails under `CI=true`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use wiremock::MockServer;

const CLIENT_KEY: &str = "sk-client-0123456789abcdef";

/// Start `iat2i serve` on a free port against `api`; its base URL and the child.
fn serve(api: &MockServer, dir: &Path, extra: &[&str]) -> (String, Child) {
    let mut c = Command::new(iat2i_binary());
    for var in INHERITED {
        c.env_remove(var);
    }
    let mut child = c
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--gate-mode",
            "never",
            "--max-rounds",
            "1",
        ])
        .args(["--base-url", &format!("{}/v1", api.uri())])
        .args(["--model-dir", &tiny_model().display().to_string()])
        .args(["--no-memory", "--log-format", "text"])
        .args(["--state-dir", &dir.join("state").display().to_string()])
        .args(["--cache-dir", &dir.join("cache").display().to_string()])
        .args(extra)
        .env("OPENAI_API_KEY", KEY)
        .env("IAT2I_SERVE_KEYS", format!("pipeline:{CLIENT_KEY}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("serve exited before listening")
            .unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    (base, child)
}

async fn stand_in() -> MockServer {
    let api = MockServer::start().await;
    mount_images(&api, "generations", &["images_red.json"]).await;
    mount_images(&api, "edits", &["images_blue.json"]).await;
    mount_chat(&api, "verdict", &["verdict_aligned.json"]).await;
    api
}

/// The pinned SDK's venv, made once (PyPI on the first run); `None` (skipped) without
/// python3.
fn sdk_python() -> Option<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if Command::new("python3").arg("--version").output().is_err() {
        skip_or_fail("python3 is not installed: the OpenAI SDK test needs it");
        return None;
    }
    let venv = root.join(".tools/venv-openai-sdk");
    let made = Command::new("bash")
        .current_dir(root)
        .args([
            "-c",
            "set -euo pipefail; source scripts/pinned-venv.sh; \
             pinned_venv openai-sdk .tools/venv-openai-sdk tests/sdk/requirements.txt",
        ])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "making the SDK venv failed: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    Some(venv.join("bin/python"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_sdk_generates_and_edits_against_iat2i_serve() {
    let Some(python) = sdk_python() else {
        return;
    };
    let api = stand_in().await;
    let dir = tempfile::tempdir().unwrap();
    let (base, mut server) = serve(&api, dir.path(), &[]);
    let out = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        move || {
            Command::new(python)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .env_remove("OPENAI_BASE_URL")
                .env_remove("OPENAI_API_KEY")
                .args([
                    "tests/sdk/openai_images.py",
                    "--base-url",
                    &format!("{base}/v1"),
                ])
                .args(["--api-key", CLIENT_KEY, "--model", "iat2i/gpt-image-1"])
                .args(["--image", "fixtures/openai/input.png", "--max-retries", "0"])
                .arg("--out")
                .arg(&dir)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let _ = server.kill();
    assert!(out.status.success(), "{}", shown(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["generate"]["png"], true, "{r}");
    assert!(r["generate"]["bytes"].as_u64().unwrap() > 0, "{r}");
    assert!(
        r["generate"]["iat2i"][0]["report_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("rep_")),
        "{r}"
    );
    assert_eq!(r["edit"]["png"], true, "{r}");
    assert_eq!(r["unknown_model"]["class"], "NotFoundError", "{r}");
    assert_eq!(r["unknown_model"]["status"], 404, "{r}");
    assert_eq!(r["unknown_model"]["code"], "model_not_found", "{r}");
    // One call each: what the SDK asked is what was paid.
    assert_eq!(requests_to(&api, "/v1/images/generations").await.len(), 1);
    assert_eq!(requests_to(&api, "/v1/images/edits").await.len(), 1);
    assert_eq!(
        std::fs::read(dir.path().join("generate.png")).unwrap(),
        fixture_image("images_red.json")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_running_request_finish_then_exits_zero() {
    let api = MockServer::start().await;
    mount_slow_images(
        &api,
        "generations",
        "images_red.json",
        Duration::from_millis(2000),
    )
    .await;
    mount_chat(&api, "verdict", &["verdict_aligned.json"]).await;
    let dir = tempfile::tempdir().unwrap();
    let (base, mut server) = serve(&api, dir.path(), &["--shutdown-grace", "30s"]);
    let request = tokio::spawn({
        let base = base.clone();
        async move {
            reqwest::Client::new()
                .post(format!("{base}/v1/images/generations"))
                .bearer_auth(CLIENT_KEY)
                .json(&json!({"prompt": "A red apple"}))
                .send()
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(600)).await;
    // SAFETY: kill only sends a signal to the child we started.
    unsafe {
        libc::kill(server.id() as i32, libc::SIGTERM);
    }
    let response = request.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(body["data"][0]["b64_json"].is_string(), "{body}");
    let status = tokio::task::spawn_blocking(move || server.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(
        reqwest::get(format!("{base}/healthz")).await.is_err(),
        "still accepting after SIGTERM"
    );
}

/// The Deployment's configuration files (deploy/k8s/serve.yaml's ConfigMap) are what this
/// binary accepts: `config show` takes the file, and its pipelines file loads.
#[test]
fn the_deployments_config_files_load() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/k8s/serve.yaml"),
    )
    .unwrap();
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let config = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "iat2i-serve-config")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pipelines = config["data"]["pipelines.toml"].as_str().unwrap();
    std::fs::write(dir.path().join("pipelines.toml"), pipelines).unwrap();
    let toml = config["data"]["iat2i.toml"]
        .as_str()
        .unwrap()
        .replace("/etc/iat2i", &dir.path().display().to_string());
    std::fs::write(dir.path().join("iat2i.toml"), toml).unwrap();
    let out = Command::new(iat2i_binary())
        .arg("--config")
        .arg(dir.path().join("iat2i.toml"))
        .args(["config", "show"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", shown(&out));
    let shown_text = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown_text.contains("daily-cost = \"50\"   # config file"),
        "{shown_text}"
    );
    let models = iat2i::serve::models_from_toml(pipelines, &iat2i::Settings::default()).unwrap();
    let names: Vec<&str> = models.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["iat2i/gpt-image-1", "iat2i/gpt-image-1-fast"]);
    assert_eq!(models[1].1.run.max_rounds, 1);
}
