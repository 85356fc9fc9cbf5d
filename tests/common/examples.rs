//! The example binaries, built once per test binary by cargo itself.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use image::ImageFormat;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{encode, ort_available, scene};
use std::sync::OnceLock;

/// The `iat2i` executable, built (or found up to date) by cargo once per test binary:
/// `cargo test` does not build binaries that integration tests do not name, and the
/// subcommands are what the CLI tests run. Cargo's lock is free while tests run and the
/// library is already built, so this only compiles and links the binary.
pub fn iat2i_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.current_dir(env!("CARGO_MANIFEST_DIR")).args([
            "build",
            "--offline",
            "-p",
            "iat2i",
            "--bin",
            "iat2i",
        ]);
        // Cargo gives the test process the variables of the crate under test; some build
        // scripts (ring's) track CARGO_MANIFEST_DIR, so passing them on would make this
        // build and the next plain `cargo build` each recompile the TLS stack (~50 s).
        for (var, _) in std::env::vars_os() {
            if var.to_str().is_some_and(set_by_cargo_for_tests) {
                build.env_remove(var);
            }
        }
        let out = build
            .args(["--message-format", "json-render-diagnostics"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "building the iat2i binary failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "iat2i")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo reported no executable for the iat2i binary")
    })
    .clone()
}

/// `iat2i <command>`, ready for more arguments.
pub fn iat2i(command: &str) -> Command {
    let mut c = Command::new(iat2i_binary());
    c.arg(command);
    c
}

/// Variables cargo sets only for the crate it runs (not the user's CARGO_HOME etc.).
fn set_by_cargo_for_tests(var: &str) -> bool {
    var.starts_with("CARGO_PKG_")
        || var.starts_with("CARGO_MANIFEST_")
        || var.starts_with("CARGO_BIN_")
        || [
            "CARGO_CRATE_NAME",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
            "CARGO_RUSTC_CURRENT_DIR",
        ]
        .contains(&var)
}

/// Everything a run printed, stdout then stderr.
pub fn shown(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Settings a developer's shell may hold that would change what the example does.
pub const INHERITED: [&str; 8] = [
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "BRAVE_API_KEY",
    "SEARXNG_URL",
    "OPENVERSE_TOKEN",
    "IAT2I_CLIP_DIR",
    "IAT2I_CACHE_DIR",
    "RUST_LOG",
];

/// Example `name` with nothing inherited, run in `dir` (stdout and stderr are pipes).
pub fn example_in(name: &str, dir: &Path) -> Command {
    let mut c = iat2i(name);
    c.current_dir(dir);
    for var in INHERITED {
        c.env_remove(var);
    }
    c
}

/// True (after saying so) when ONNX Runtime is absent and the test must skip.
pub fn skip_without_ort(test: &str) -> bool {
    if ort_available() {
        return false;
    }
    eprintln!("{test}: skipped (ONNX Runtime not found; set ORT_DYLIB_PATH)");
    true
}

/// An image server with three pictures, and an Openverse server whose results are
/// those pictures (licence CC BY 4.0, each with its landing page).
pub async fn engine_and_images() -> (MockServer, MockServer, Vec<Vec<u8>>) {
    let images = MockServer::start().await;
    let pictures = [
        ("graphorn.png", encode(scene(1, 320, 240), ImageFormat::Png)),
        ("herd.png", encode(scene(2, 400, 300), ImageFormat::Png)),
        ("horns.png", encode(scene(3, 256, 256), ImageFormat::Png)),
    ];
    for (name, body) in &pictures {
        Mock::given(method("GET"))
            .and(path(format!("/{name}")))
            .respond_with(ResponseTemplate::new(200).set_body_raw(body.clone(), "image/png"))
            .mount(&images)
            .await;
    }
    let results: Vec<Value> = pictures
        .iter()
        .map(|(name, _)| {
            json!({
                "title": format!("Graphorn {name}"),
                "url": format!("{}/{name}", images.uri()),
                "foreign_landing_url": format!("{}/page/{name}", images.uri()),
                "license": "by", "license_version": "4.0", "creator": "A. Painter",
                "width": 320, "height": 240,
            })
        })
        .collect();
    let openverse = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/images/"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "result_count": 3, "page_count": 1, "results": results })),
        )
        .mount(&openverse)
        .await;
    let bodies = pictures.into_iter().map(|(_, b)| b).collect();
    (openverse, images, bodies)
}

/// The tiny CLIP test model.
pub fn tiny_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/models/tiny-clip")
}

/// Flags for the tiny model, a scratch cache, and Openverse at `openverse` only.
pub fn local_search(dir: &Path, openverse: &MockServer) -> Vec<String> {
    vec![
        "--model-dir".into(),
        tiny_model().display().to_string(),
        "--cache-dir".into(),
        dir.join("cache").display().to_string(),
        "--engine".into(),
        "openverse".into(),
        "--openverse-url".into(),
        openverse.uri(),
    ]
}
