//! `iat2i serve` in process, on a real socket, against the OpenAI stand-in: every error
//! is OpenAI's error object with OpenAI's status and no paid call; images come back with
//! their report; the queue, the per-key budgets (across a restart) and disconnects hold.

mod common;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use common::*;
use iat2i::Settings;
use iat2i::serve::{ApiKey, ServeConfig, Server};
use iat2i::settings::Backend;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ALICE: &str = "sk-alice-0123456789abcdef";
const BOB: &str = "sk-bob-0123456789abcdef00";

fn settings(api: &MockServer, cache: &std::path::Path) -> Settings {
    let mut s = Settings::default();
    s.chat.base_url = format!("{}/v1", api.uri());
    s.chat.api_key = Some(iat2i::Secret::new(KEY));
    s.chat.timeout = 30;
    s.run.gate_mode = iat2i::GateMode::Never;
    s.run.max_rounds = 1;
    s.generator.generator = Backend::Openai;
    s.memory.no_memory = true;
    s.memory.cache_dir = Some(cache.to_path_buf());
    s.memory.model_dir = Some(tiny_model());
    s
}

struct Running {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(30), self.task).await;
    }
}

async fn start(config: ServeConfig) -> Running {
    let server = Server::new(config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = server
            .run(listener, async {
                let _ = rx.await;
            })
            .await;
    });
    Running {
        base,
        stop: Some(tx),
        task,
    }
}

fn config(api: &MockServer, dir: &std::path::Path) -> ServeConfig {
    let mut c = ServeConfig::new(vec![(
        "iat2i/gpt-image-1".into(),
        settings(api, &dir.join("cache")),
    )]);
    c.keys = ApiKey::parse_lines(&format!("alice:{ALICE}\nbob:{BOB}")).unwrap();
    c.state_dir = dir.join("state");
    c
}

async fn paid_calls(api: &MockServer) -> usize {
    api.received_requests().await.unwrap_or_default().len()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

async fn post_json(base: &str, key: Option<&str>, body: Value) -> reqwest::Response {
    let mut r = client()
        .post(format!("{base}/v1/images/generations"))
        .json(&body);
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    r.send().await.unwrap()
}

/// The response is OpenAI's error object with `status`, `code` and `param`.
async fn assert_error(
    r: reqwest::Response,
    status: u16,
    code: Option<&str>,
    param: Option<&str>,
) -> Value {
    assert_eq!(r.status().as_u16(), status);
    assert!(
        r.headers().contains_key("x-should-retry"),
        "{:?}",
        r.headers()
    );
    let body: Value = r.json().await.unwrap();
    let e = &body["error"];
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(e["type"].is_string(), "{body}");
    assert_eq!(e["code"].as_str(), code, "{body}");
    assert_eq!(e["param"].as_str(), param, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_is_openais_error_object_and_no_paid_call() {
    let api = MockServer::start().await;
    mount_images(&api, "generations", &["images_red.json"]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&api, dir.path());
    c.max_prompt_chars = 100;
    c.max_body_bytes = 1 << 20;
    let s = start(c).await;
    let b = &s.base;
    let ok = json!({"model": "iat2i/gpt-image-1", "prompt": "A red apple"});

    let e = assert_error(
        post_json(b, None, ok.clone()).await,
        401,
        Some("invalid_api_key"),
        None,
    )
    .await;
    assert!(!e.to_string().contains(ALICE));
    assert_error(
        post_json(b, Some("sk-wrong-0123456789abcdef"), ok.clone()).await,
        401,
        Some("invalid_api_key"),
        None,
    )
    .await;
    assert_error(
        post_json(b, Some(ALICE), json!({"model": "dall-e-9", "prompt": "x"})).await,
        404,
        Some("model_not_found"),
        Some("model"),
    )
    .await;
    assert_error(
        post_json(b, Some(ALICE), json!({"prompt": "   "})).await,
        400,
        None,
        Some("prompt"),
    )
    .await;
    assert_error(
        post_json(b, Some(ALICE), json!({"prompt": "x".repeat(101)})).await,
        400,
        Some("string_above_max_length"),
        Some("prompt"),
    )
    .await;
    assert_error(
        post_json(b, Some(ALICE), json!({"prompt": "x", "n": 11})).await,
        400,
        None,
        Some("n"),
    )
    .await;
    assert_error(
        post_json(
            b,
            Some(ALICE),
            json!({"prompt": "x", "response_format": "url"}),
        )
        .await,
        400,
        None,
        Some("response_format"),
    )
    .await;
    assert_error(
        post_json(b, Some(ALICE), json!({"prompt": "x", "size": "5x5"})).await,
        400,
        None,
        Some("size"),
    )
    .await;
    // A 50 MB body: refused whole, before anything is read into a run.
    let big = client()
        .post(format!("{b}/v1/images/generations"))
        .bearer_auth(ALICE)
        .header("content-type", "application/json")
        .body(vec![b' '; 50 << 20])
        .send()
        .await
        .unwrap();
    assert_error(big, 413, None, None).await;
    let garbled = client()
        .post(format!("{b}/v1/images/generations"))
        .bearer_auth(ALICE)
        .header("content-type", "application/json")
        .body("{\"prompt\": ")
        .send()
        .await
        .unwrap();
    assert_error(garbled, 400, None, None).await;
    // An upload that is not an image.
    let form = reqwest::multipart::Form::new()
        .text("prompt", "Put a hat on it")
        .part(
            "image",
            reqwest::multipart::Part::bytes(b"%PDF-1.7 not an image".to_vec()).file_name("x.pdf"),
        );
    let r = client()
        .post(format!("{b}/v1/images/edits"))
        .bearer_auth(ALICE)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_error(r, 400, None, Some("image")).await;
    let r = client()
        .get(format!("{b}/v1/reports/rep_nope"))
        .bearer_auth(ALICE)
        .send()
        .await
        .unwrap();
    assert_error(r, 404, None, None).await;
    // JSON where a form is expected, and a wrong method: the same error object.
    let r = client()
        .post(format!("{b}/v1/images/edits"))
        .bearer_auth(ALICE)
        .json(&json!({"prompt": "x"}))
        .send()
        .await
        .unwrap();
    assert_error(r, 400, None, None).await;
    let r = client()
        .get(format!("{b}/v1/images/generations"))
        .bearer_auth(ALICE)
        .send()
        .await
        .unwrap();
    assert_error(r, 405, None, None).await;

    assert_eq!(
        paid_calls(&api).await,
        0,
        "a refused request made a paid call"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_comes_back_with_its_report_as_json_and_as_a_page() {
    let api = MockServer::start().await;
    mount_images(&api, "generations", &["images_red.json"]).await;
    mount_images(&api, "edits", &["images_blue.json"]).await;
    mount_chat(&api, "verdict", &["verdict_aligned.json"]).await;
    let dir = tempfile::tempdir().unwrap();
    let s = start(config(&api, dir.path())).await;
    let prompt = "A red apple <script>alert(1)</script>";
    let r = post_json(
        &s.base,
        Some(ALICE),
        json!({"model": "gpt-image-1", "prompt": prompt, "size": "1024x1024",
               "response_format": "b64_json", "quality": "high", "unknown_field": true}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let png = base64::engine::general_purpose::STANDARD
        .decode(body["data"][0]["b64_json"].as_str().unwrap())
        .unwrap();
    assert_eq!(png, fixture_image("images_red.json"));
    assert!(body["created"].as_u64().unwrap() > 1_700_000_000);
    assert!(
        body["usage"]["total_tokens"].as_u64().unwrap() > 0,
        "{body}"
    );
    let run = &body["iat2i"][0];
    assert_eq!(run["model"], "iat2i/gpt-image-1");
    assert_eq!(run["rounds"], 1);
    let id = run["report_id"].as_str().unwrap();
    // The quality the client asked for went to the OpenAI backend.
    let sent: Value = requests_to(&api, "/v1/images/generations").await[0]
        .body_json()
        .unwrap();
    assert_eq!(sent["quality"], "high", "{sent}");
    assert_eq!(sent["size"], "1024x1024", "{sent}");

    let report: Value = client()
        .get(format!("{}/v1/reports/{id}", s.base))
        .bearer_auth(BOB)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["request"]["prompt"], prompt);
    let page = client()
        .get(format!("{}/reports/{id}", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("A red apple &lt;script&gt;"),
        "the prompt is escaped: {page}"
    );
    assert!(!page.contains("<script>alert"), "{page}");
    let image = client()
        .get(format!("{}/reports/{id}/image", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(image.headers()["content-type"], "image/png");
    assert_eq!(image.bytes().await.unwrap().as_ref(), png.as_slice());

    // An edit: `image[]` as OpenAI's SDKs send a list, a JPEG asked back.
    let form = reqwest::multipart::Form::new()
        .text("prompt", "Make it blue")
        .text("n", "1")
        .text("output_format", "jpeg")
        .part(
            "image[]",
            reqwest::multipart::Part::bytes(fixture_bytes("input.png").to_vec())
                .file_name("upload"),
        );
    let r = client()
        .post(format!("{}/v1/images/edits", s.base))
        .bearer_auth(ALICE)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["output_format"], "jpeg");
    let jpeg = base64::engine::general_purpose::STANDARD
        .decode(body["data"][0]["b64_json"].as_str().unwrap())
        .unwrap();
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "a JPEG");
    assert_eq!(requests_to(&api, "/v1/images/edits").await.len(), 1);

    let metrics = client()
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("iat2i_http_requests_total{route=\"/v1/images/generations\",status=\"200\",model=\"iat2i/gpt-image-1\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("iat2i_images_generated_total 2"),
        "{metrics}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_429_with_retry_after_instead_of_a_backlog() {
    let api = MockServer::start().await;
    mount_slow_images(
        &api,
        "generations",
        "images_red.json",
        Duration::from_millis(1500),
    )
    .await;
    mount_chat(&api, "verdict", &["verdict_aligned.json"]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&api, dir.path());
    c.concurrency = 1;
    c.queue = 1;
    let s = start(c).await;
    let base = Arc::new(s.base.clone());
    let send = |key: &'static str| {
        let base = base.clone();
        tokio::spawn(
            async move { post_json(&base, Some(key), json!({"prompt": "A red apple"})).await },
        )
    };
    let first = send(ALICE);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = send(BOB);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // One running, one waiting: the third is refused at once.
    let third = post_json(&s.base, Some(ALICE), json!({"prompt": "A red apple"})).await;
    assert_eq!(third.headers()["retry-after"], "5");
    assert_eq!(third.headers()["x-should-retry"], "true");
    assert_error(third, 429, Some("rate_limit_exceeded"), None).await;
    assert_eq!(first.await.unwrap().status(), 200);
    assert_eq!(second.await.unwrap().status(), 200);
    assert_eq!(requests_to(&api, "/v1/images/generations").await.len(), 2);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_key_budget_answers_429_and_a_restart_does_not_reset_it() {
    let api = MockServer::start().await;
    mount_images(&api, "generations", &["images_red.json"]).await;
    mount_chat(&api, "verdict", &["verdict_aligned.json"]).await;
    let dir = tempfile::tempdir().unwrap();
    let budgeted = || {
        let mut c = config(&api, dir.path());
        c.daily_images = Some(1);
        c
    };
    let s = start(budgeted()).await;
    let ok = json!({"prompt": "A red apple"});
    assert_eq!(
        post_json(&s.base, Some(ALICE), ok.clone()).await.status(),
        200
    );
    let spent = post_json(&s.base, Some(ALICE), ok.clone()).await;
    assert_eq!(spent.headers()["x-should-retry"], "false");
    assert_error(spent, 429, Some("insufficient_quota"), None).await;
    s.stop().await;

    // A new process on the same state directory: alice's day is still spent, bob's not.
    let s = start(budgeted()).await;
    assert_error(
        post_json(&s.base, Some(ALICE), ok.clone()).await,
        429,
        Some("insufficient_quota"),
        None,
    )
    .await;
    assert_eq!(
        post_json(&s.base, Some(BOB), ok.clone()).await.status(),
        200
    );
    assert_eq!(requests_to(&api, "/v1/images/generations").await.len(), 2);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_rate_limits_and_failures_keep_openais_statuses() {
    let api = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .respond_with(rate_limited())
        .mount(&api)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let s = start(config(&api, dir.path())).await;
    let ok = json!({"prompt": "A red apple"});
    let limited = post_json(&s.base, Some(ALICE), ok.clone()).await;
    // Nothing was paid before the rate limit: the client may retry.
    assert_eq!(limited.headers()["x-should-retry"], "true");
    let body = assert_error(limited, 429, Some("rate_limit_exceeded"), None).await;
    assert!(
        body["error"]["message"].as_str().unwrap().contains("rep_"),
        "{body}"
    );
    api.reset().await;
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({"error": {
            "message": "The server had an error", "type": "server_error", "param": null, "code": null}})))
        .mount(&api)
        .await;
    let failed = post_json(&s.base, Some(ALICE), ok.clone()).await;
    assert_eq!(failed.headers()["x-should-retry"], "false");
    assert_error(failed, 502, Some("upstream_error"), None).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_stops_its_run_before_the_next_paid_call() {
    let api = MockServer::start().await;
    mount_slow_images(
        &api,
        "generations",
        "images_red.json",
        Duration::from_millis(1200),
    )
    .await;
    mount_chat(&api, "verdict", &["verdict_refine.json"]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&api, dir.path());
    c.models[0].1.run.max_rounds = 3;
    let s = start(c).await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(400))
        .build()
        .unwrap();
    let gone = impatient
        .post(format!("{}/v1/images/generations", s.base))
        .bearer_auth(ALICE)
        .json(&json!({"prompt": "A red apple"}))
        .send()
        .await;
    assert!(gone.is_err(), "the client gave up");
    // The image call in flight finishes (it may be billed), then the run stops: no judge
    // call, no second round.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(requests_to(&api, "/v1/images/generations").await.len(), 1);
    assert_eq!(
        paid_calls(&api).await,
        1,
        "a paid call after the client left"
    );
    s.stop().await;
}

/// With a reference: the shared selector's candidate judge is paid per run, and its
/// tokens are counted in the run's report (and so by the key's budget). Needs ONNX
/// Runtime (the tiny CLIP model): says it skipped without it, fails under `CI=true`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_run_counts_the_shared_candidate_judges_tokens() {
    if !ort_available() {
        return;
    }
    let api = MockServer::start().await;
    mount_reference_run(&api).await;
    mount_images(&api, "edits", &["images_red.json"]).await;
    let (openverse, _images, _) = engine_and_images().await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&api, dir.path());
    {
        let s = &mut c.models[0].1;
        s.run.gate_mode = iat2i::GateMode::FromPrompt;
        s.engines.engines = vec![iat2i::settings::Engine::Openverse];
        s.engines.openverse_url = Some(openverse.uri().parse().unwrap());
        s.engines.allow_hosts = vec!["127.0.0.1".into()];
        s.engines.per_host_rate = 0;
    }
    let s = start(c).await;
    let r = post_json(
        &s.base,
        Some(ALICE),
        json!({"prompt": "A Graphorn at dusk"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let run = &body["iat2i"][0];
    assert!(
        run["references"][0]["source_page"]
            .as_str()
            .is_some_and(|p| p.contains("/page/")),
        "{body}"
    );
    assert_eq!(run["references"][0]["license"], "by 4.0", "{body}");
    let id = run["report_id"].as_str().unwrap();
    let report: Value = client()
        .get(format!("{}/v1/reports/{id}", s.base))
        .bearer_auth(ALICE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let picked = requests_to(&api, "/v1/chat/completions")
        .await
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("\"pick\""))
        .count();
    assert_eq!(picked, 1, "one candidate-judge call");
    assert!(
        report["usage"]["candidate_judge"]["total_tokens"]
            .as_u64()
            .unwrap()
            > 0,
        "the pick's tokens are in the run's report: {}",
        report["usage"]
    );
    s.stop().await;
}
