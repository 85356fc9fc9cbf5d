//! The `search` and `select` example binaries, run against wiremock engines and image
//! servers through their base-URL flags. Select runs the tiny CLIP model, so its tests
//! need ONNX Runtime (ORT_DYLIB_PATH, which `make test` sets) and are skipped without it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{encode, ort_available, scene, shown};
use image::ImageFormat;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Settings a developer's shell may hold that would change what the examples do.
/// Example `name` with no engine settings inherited, run in a scratch directory.
fn example(name: &str) -> Command {
    common::example_in(name, &std::env::temp_dir())
}

fn fixture(rel: &str) -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/retrievers");
    std::fs::read(root.join(rel)).unwrap()
}

fn json_reply(body: Vec<u8>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body, "application/json; charset=utf-8")
}

/// A server error the examples' client retries at once (no backoff), then reports.
fn broken() -> ResponseTemplate {
    ResponseTemplate::new(500)
        .insert_header("retry-after", "0")
        .set_body_string("upstream exploded")
}

/// Openverse answering its two fixture pages for any query.
async fn openverse() -> MockServer {
    let server = MockServer::start().await;
    for (page, rel) in [("1", "openverse/page1.json"), ("2", "openverse/page2.json")] {
        Mock::given(method("GET"))
            .and(path("/v1/images/"))
            .and(query_param("page", page))
            .respond_with(json_reply(fixture(rel)))
            .mount(&server)
            .await;
    }
    server
}

/// Wikimedia Commons answering its two fixture pages (continued by `gsroffset`).
async fn wikimedia() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(path("/w/api.php"))
        .and(query_param_is_missing("gsroffset"))
        .respond_with(json_reply(fixture("wikimedia/search_page1.json")))
        .mount(&server)
        .await;
    Mock::given(path("/w/api.php"))
        .and(query_param("gsroffset", "3"))
        .respond_with(json_reply(fixture("wikimedia/search_page2.json")))
        .mount(&server)
        .await;
    server
}

/// A server answering every request with `reply`.
async fn failing(reply: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(reply)
        .mount(&server)
        .await;
    server
}

/// `search xenopus` on Openverse and Wikimedia at these servers, plus `extra` flags.
fn search(ov: &MockServer, wm: &MockServer, extra: &[&str]) -> Output {
    example("search")
        .args(["xenopus", "--engine", "openverse,wikimedia"])
        .args(["--openverse-url", &ov.uri(), "--wikimedia-url", &wm.uri()])
        .args(extra)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The status line the table prints for `engine`.
fn status_line<'t>(text: &'t str, engine: &str) -> &'t str {
    let after = text
        .split("engine status:")
        .nth(1)
        .unwrap_or_else(|| panic!("no status section in:\n{text}"));
    after
        .lines()
        .find(|l| l.trim_start().starts_with(engine))
        .unwrap_or_else(|| panic!("no status line for {engine} in:\n{text}"))
}

#[tokio::test]
async fn search_prints_a_table_and_each_engines_status() {
    let (ov, wm) = (openverse().await, wikimedia().await);
    let out = search(&ov, &wm, &[]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", shown(&out));
    let header = text.lines().next().unwrap();
    for column in ["rank", "engine", "size", "title", "licence", "URL"] {
        assert!(header.contains(column), "{column} missing from {header}");
    }
    // One row per fused candidate, numbered from 1, each naming the engine that found it.
    let rows: Vec<&str> = text
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .collect();
    assert!(rows.len() >= 5, "{text}");
    assert!(rows[0].trim_start().starts_with("1 "), "{text}");
    assert!(
        rows.iter()
            .all(|r| r.contains("openverse") || r.contains("wikimedia")),
        "{text}"
    );
    for wanted in [
        "Krallenfrosch – Xénope 🐸",
        "by-sa 4.0",
        "1024x683",
        "Xenopus tadpole",
        "https://live.staticflickr.com/32/4002_8a_b.jpg",
    ] {
        assert!(text.contains(wanted), "{wanted} missing from:\n{text}");
    }
    let ov_status = status_line(&text, "openverse");
    assert!(
        ov_status.contains(" ok ") && ov_status.contains("3 results"),
        "{ov_status}"
    );
    let wm_status = status_line(&text, "wikimedia");
    assert!(
        wm_status.contains(" ok ") && wm_status.contains("4 results"),
        "{wm_status}"
    );
    assert_eq!(ov.received_requests().await.unwrap().len(), 2, "two pages");
    assert_eq!(wm.received_requests().await.unwrap().len(), 2, "two pages");
}

#[tokio::test]
async fn search_json_parses_with_candidates_and_runs() {
    let (ov, wm) = (openverse().await, wikimedia().await);
    let out = search(&ov, &wm, &["--json", "--limit", "3"]);
    assert!(out.status.success(), "{}", shown(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let candidates = v["candidates"].as_array().unwrap();
    assert!(!candidates.is_empty(), "{v:#}");
    for c in candidates {
        // The fixtures' own image hosts (protocol-relative ones take the API's scheme).
        let url = url::Url::parse(c["image_url"].as_str().unwrap()).unwrap();
        assert!(url.scheme().starts_with("http"), "{c}");
        assert!(
            url.host_str().unwrap().ends_with(".org") || url.host_str().unwrap().ends_with(".com"),
            "{c}"
        );
        assert!(["openverse", "wikimedia"].contains(&c["engine"].as_str().unwrap()));
    }
    let runs = v["runs"].as_array().unwrap();
    let mut engines: Vec<&str> = runs.iter().map(|r| r["engine"].as_str().unwrap()).collect();
    engines.sort();
    assert_eq!(engines, ["openverse", "wikimedia"]);
    for run in runs {
        assert!(run["error"].is_null(), "{run}");
        assert_eq!(run["count"], 3, "--limit 3 caps each engine: {run}");
    }
}

#[tokio::test]
async fn a_failing_engine_is_reported_while_the_other_answers() {
    let (ov, wm) = (openverse().await, failing(broken()).await);
    let out = search(&ov, &wm, &[]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", shown(&out));
    let wm_status = status_line(&text, "wikimedia");
    assert!(wm_status.contains("FAILED"), "{wm_status}");
    assert!(wm_status.contains("500"), "{wm_status}");
    assert!(status_line(&text, "openverse").contains(" ok "), "{text}");
    assert!(text.contains("Krallenfrosch"), "{text}");
    assert!(!text.contains("panicked"));
}

#[tokio::test]
async fn every_engine_failing_exits_non_zero_and_says_so() {
    let (ov, wm) = (failing(broken()).await, failing(broken()).await);
    let out = search(&ov, &wm, &[]);
    let text = shown(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("every engine failed"), "{text}");
    for engine in ["openverse", "wikimedia"] {
        assert!(status_line(&text, engine).contains("FAILED"), "{text}");
    }
}

#[test]
fn brave_without_a_key_says_what_to_set() {
    let out = example("search")
        .args(["xenopus", "--engine", "brave"])
        .output()
        .unwrap();
    let text = shown(&out);
    assert_eq!(out.status.code(), Some(2), "a usage error: {text}");
    assert!(text.contains("--brave-key"), "{text}");
    assert!(text.contains("BRAVE_API_KEY"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
}

#[test]
fn search_help_names_the_engines_and_their_flags() {
    let out = example("search")
        .env("BRAVE_API_KEY", "brave-secret-do-not-show")
        .arg("--help")
        .output()
        .unwrap();
    let text = shown(&out);
    assert!(out.status.success(), "{text}");
    for wanted in [
        "bing",
        "duckduckgo",
        "wikimedia",
        "openverse",
        "searxng",
        "brave",
        "local",
        "--openverse-url",
        "--wikimedia-url",
        "--json",
        "Examples:",
    ] {
        assert!(text.contains(wanted), "{wanted} missing from:\n{text}");
    }
    assert!(!text.contains("brave-secret-do-not-show"), "{text}");
}

// ---- select -------------------------------------------------------------------------

/// An image server with three distinct pictures and one HTML page posing as a JPEG;
/// returns it and the bodies of the good images.
async fn images() -> (MockServer, Vec<Vec<u8>>) {
    let server = MockServer::start().await;
    let good = vec![
        (
            "/frog.png",
            encode(scene(1, 320, 240), ImageFormat::Png),
            "image/png",
        ),
        (
            "/pond.jpg",
            encode(scene(2, 400, 300), ImageFormat::Jpeg),
            "image/jpeg",
        ),
        (
            "/lily.png",
            encode(scene(3, 256, 256), ImageFormat::Png),
            "image/png",
        ),
        (
            "/blocked.jpg",
            b"<!DOCTYPE html><html>blocked</html>".to_vec(),
            "text/html",
        ),
    ];
    for (route, body, ct) in &good {
        Mock::given(method("GET"))
            .and(path(*route))
            .respond_with(ResponseTemplate::new(200).set_body_raw(body.clone(), ct))
            .mount(&server)
            .await;
    }
    let bodies = good.into_iter().take(3).map(|(_, b, _)| b).collect();
    (server, bodies)
}

const ROUTES: [&str; 4] = ["frog.png", "pond.jpg", "lily.png", "blocked.jpg"];

/// `select` with the tiny model, a scratch cache and output, downloads allowed to
/// 127.0.0.1, plus `extra` flags; returns the run and where the reference goes.
fn select(dir: &Path, extra: &[&str]) -> (Output, PathBuf) {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/models/tiny-clip");
    let out_stem = dir.join("ref");
    let run = example("select")
        .arg("a green frog on a lily pad")
        .arg("--model-dir")
        .arg(model)
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .arg("--out")
        .arg(&out_stem)
        .args(["--allow-host", "127.0.0.1", "--timeout", "10"])
        .args(extra)
        .output()
        .unwrap();
    (run, out_stem)
}

/// The reference select wrote next to `stem` (its extension follows the image type):
/// it decodes, and is one of the served images.
fn assert_reference_written(stem: &Path, served: &[Vec<u8>]) -> Vec<u8> {
    let written: Vec<PathBuf> = ["png", "jpg", "webp"]
        .iter()
        .map(|ext| stem.with_extension(ext))
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(written.len(), 1, "one reference expected: {written:?}");
    let bytes = std::fs::read(&written[0]).unwrap();
    let img = image::load_from_memory(&bytes).unwrap();
    assert!(img.width() >= 256 && img.height() >= 240);
    assert!(served.contains(&bytes), "not one of the served images");
    bytes
}

fn url_file(dir: &Path, server: &MockServer) -> PathBuf {
    let mut text = String::from("# candidates for the frog\n\n");
    for route in ROUTES {
        text.push_str(&format!("{}/{route}\n", server.uri()));
    }
    let file = dir.join("urls.txt");
    std::fs::write(&file, text).unwrap();
    file
}

#[tokio::test]
async fn select_from_a_url_file_writes_the_best_and_lists_the_drops() {
    if !ort_available() {
        return;
    }
    let (server, served) = images().await;
    let dir = tempfile::tempdir().unwrap();
    let urls = url_file(dir.path(), &server);
    let (out, stem) = select(dir.path(), &["--urls", urls.to_str().unwrap()]);
    let text = shown(&out);
    assert!(out.status.success(), "{text}");
    assert_reference_written(&stem, &served);
    assert!(text.contains("4 candidates; selecting"), "{text}");
    let ranked = text.split("# ranked").nth(1).unwrap();
    let ranked = ranked.split("# stages").next().unwrap();
    for route in ["frog.png", "pond.jpg", "lily.png"] {
        assert!(ranked.contains(route), "{route} not ranked:\n{text}");
    }
    assert!(!ranked.contains("blocked.jpg"), "{text}");
    let drops = text
        .split("# dropped (1)")
        .nth(1)
        .unwrap_or_else(|| panic!("{text}"));
    let drop_line = drops.lines().find(|l| l.contains("blocked.jpg")).unwrap();
    assert!(drop_line.starts_with("- [Fetch]"), "{drop_line}");
    assert!(
        drop_line.contains("HTML"),
        "the reason says why: {drop_line}"
    );
    assert!(text.contains(&format!("best: {}/", server.uri())), "{text}");
    assert!(text.contains("wrote "), "{text}");
}

#[tokio::test]
async fn select_json_parses_with_best_ranked_and_dropped() {
    if !ort_available() {
        return;
    }
    let (server, served) = images().await;
    let dir = tempfile::tempdir().unwrap();
    let urls = url_file(dir.path(), &server);
    let (out, stem) = select(dir.path(), &["--urls", urls.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", shown(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let best_url = v["best"]["candidate"]["image_url"].as_str().unwrap();
    assert!(best_url.starts_with(&server.uri()), "{v:#}");
    let ranked = v["ranked"].as_array().unwrap();
    assert_eq!(ranked.len(), 3, "{v:#}");
    assert_eq!(ranked[0]["candidate"]["image_url"], best_url);
    let dropped = v["dropped"].as_array().unwrap();
    assert_eq!(dropped.len(), 1, "{v:#}");
    assert!(
        dropped[0]["candidate"]["image_url"]
            .as_str()
            .unwrap()
            .ends_with("/blocked.jpg")
    );
    assert!(!dropped[0]["reason"].as_str().unwrap().is_empty());
    let bytes = assert_reference_written(&stem, &served);
    let best = image::load_from_memory(&bytes).unwrap();
    assert_eq!(v["best"]["width"], best.width());
}

/// An Openverse answer whose results are the pictures on `images`.
fn openverse_results(images: &MockServer) -> Vec<u8> {
    let results: Vec<Value> = ROUTES
        .iter()
        .zip([(320, 240), (400, 300), (256, 256), (300, 300)])
        .map(|(route, (w, h))| {
            json!({
                "title": format!("Xenopus {route}"),
                "url": format!("{}/{route}", images.uri()),
                "foreign_landing_url": format!("{}/page/{route}", images.uri()),
                "license": "by", "license_version": "4.0",
                "width": w, "height": h,
            })
        })
        .collect();
    serde_json::to_vec(&json!({ "result_count": 4, "page_count": 1, "results": results })).unwrap()
}

#[tokio::test]
async fn select_searches_openverse_and_fetches_what_it_found() {
    if !ort_available() {
        return;
    }
    let (images, served) = images().await;
    let ov = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/images/"))
        .and(query_param("q", "xenopus"))
        .respond_with(json_reply(openverse_results(&images)))
        .expect(1)
        .mount(&ov)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let (out, stem) = select(
        dir.path(),
        &[
            "--query",
            "xenopus",
            "--engine",
            "openverse",
            "--openverse-url",
            &ov.uri(),
        ],
    );
    let text = shown(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("4 candidates; selecting"), "{text}");
    assert_reference_written(&stem, &served);
    assert!(
        text.contains("| openverse |"),
        "ranked rows name the engine:\n{text}"
    );
    assert!(text.contains("licence: by 4.0"), "{text}");
    assert!(
        text.contains("search: openverse \"xenopus\": 4 results"),
        "{text}"
    );
    assert!(
        text.contains(&format!("page: {}/page/", images.uri())),
        "{text}"
    );
    assert!(
        text.contains("blocked.jpg"),
        "the HTML page is dropped:\n{text}"
    );
}

#[tokio::test]
async fn select_says_so_when_every_search_engine_failed() {
    // The search fails before any model is loaded, so this needs no ONNX Runtime.
    let ov = failing(broken()).await;
    let dir = tempfile::tempdir().unwrap();
    let (out, stem) = select(
        dir.path(),
        &["--engine", "openverse", "--openverse-url", &ov.uri()],
    );
    let text = shown(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("every search engine failed"), "{text}");
    assert!(text.contains("search: openverse"), "{text}");
    assert!(text.contains("FAILED") && text.contains("500"), "{text}");
    assert!(
        !text.contains("panicked") && !text.contains("found nothing"),
        "{text}"
    );
    assert!(!stem.with_extension("png").exists());
}
