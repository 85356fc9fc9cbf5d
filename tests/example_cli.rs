//! The `generate` example binary, run against wiremock through OPENAI_BASE_URL.
//!
//! `cargo test` builds the examples into target/<profile>/examples/ before running tests.

mod common;

use std::process::Command;

use common::*;
use wiremock::MockServer;

/// The example with no OpenAI settings inherited, run in a scratch directory (it writes
/// image.png and report.json there unless told otherwise).
fn command() -> Command {
    let mut c = iat2i("generate");
    c.current_dir(std::env::temp_dir())
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env("RUST_LOG", "warn");
    c
}

#[tokio::test]
async fn generates_an_image_and_a_report_through_openai_base_url() {
    let server = MockServer::start().await;
    mount_chat(&server, "verdict", &["verdict_aligned.json"]).await;
    mount_images(&server, "generations", &["images_red.json"]).await;
    let dir = tempfile::tempdir().unwrap();
    let (png, report) = (dir.path().join("out.png"), dir.path().join("report.json"));
    let out = command()
        .env("OPENAI_BASE_URL", base(&server))
        .env("OPENAI_API_KEY", KEY)
        .args(["--gate-mode", "never", "--max-rounds", "2", "--quiet"])
        .arg("--out")
        .arg(&png)
        .arg("--report")
        .arg(&report)
        .arg("A red apple on a wooden table")
        .output()
        .unwrap();
    let text = shown(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("aligned in round 1"), "{text}");
    assert!(!text.contains(KEY), "the key leaked: {text}");
    assert_eq!(
        std::fs::read(&png).unwrap(),
        fixture_image("images_red.json")
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["stop_reason"], "aligned in round 1");
    assert_eq!(r["gate_mode"], "never");
    assert_eq!(r["request"]["prompt"], "A red apple on a wooden table");
    assert!(
        r["models"]["generator"]
            .as_str()
            .unwrap()
            .starts_with("gpt-image-1 at http://127.0.0.1")
    );
    assert!(!std::fs::read_to_string(&report).unwrap().contains(KEY));

    let gens = requests_to(&server, "/v1/images/generations").await;
    assert_eq!(gens.len(), 1);
    assert_sent_key(&gens[0]);
    assert!(
        requests_to(&server, "/v1/chat/completions").await.len() == 1,
        "judge only"
    );
}

#[tokio::test]
async fn edits_an_image_with_a_keyless_local_server() {
    let server = MockServer::start().await;
    mount_chat(&server, "verdict", &["verdict_aligned.json"]).await;
    mount_images(&server, "edits", &["images_green.json"]).await;
    let dir = tempfile::tempdir().unwrap();
    let out = command()
        .current_dir(dir.path())
        .args([
            "--gate-mode",
            "never",
            "--quiet",
            "--base-url",
            &base(&server),
        ])
        .arg("--edit")
        .arg(fixture_path("input.png"))
        .arg("Make the background blue")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", shown(&out));
    assert_eq!(
        std::fs::read(dir.path().join("image.png")).unwrap(),
        fixture_image("images_green.json")
    );
    assert!(dir.path().join("report.json").exists());
    let edits = requests_to(&server, "/v1/images/edits").await;
    assert_eq!(edits.len(), 1);
    assert!(edits[0].headers.get("authorization").is_none());
    let form = Form::parse(&edits[0]);
    assert_eq!(form.image_bytes(), [&fixture_bytes("input.png")[..]]);
}

#[test]
fn help_says_what_it_does_what_to_set_and_shows_no_secret() {
    let out = command()
        .env("OPENAI_API_KEY", KEY)
        .env(
            "OPENAI_BASE_URL",
            format!("http://127.0.0.1:9/v1?key={KEY}"),
        )
        .arg("--help")
        .output()
        .unwrap();
    let text = shown(&out);
    assert!(out.status.success(), "{text}");
    for wanted in [
        "reference image",
        "OPENAI_API_KEY",
        "--base-url",
        "Examples",
        "iat2i generate ",
        "--edit dog.png",
        "ORT_DYLIB_PATH",
    ] {
        assert!(text.contains(wanted), "{wanted} missing from:\n{text}");
    }
    assert!(!text.contains(KEY), "a secret was shown: {text}");
}

/// Offline stand-ins for the keyless preview's search: one engine, at a closed port.
const OFFLINE_SEARCH: [&str; 4] = [
    "--engine",
    "openverse",
    "--openverse-url",
    "http://127.0.0.1:9",
];

#[test]
fn without_a_key_or_endpoint_it_says_what_to_set() {
    // Without a key it previews the reference search (here offline, so it fails) and then
    // says what to set; exit 1 for the failed preview, 4 when the preview works.
    let dir = tempfile::tempdir().unwrap();
    let out = command()
        .current_dir(dir.path())
        .args(OFFLINE_SEARCH)
        .arg("A red apple")
        .output()
        .unwrap();
    let text = shown(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("OPENAI_API_KEY"), "{text}");
    assert!(text.contains("--base-url"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    assert!(!dir.path().join("image.png").exists());
}

#[tokio::test]
async fn a_failing_endpoint_exits_non_zero_with_the_stage_named() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let out = command()
        .current_dir(dir.path())
        .env("OPENAI_API_KEY", KEY)
        .args(["--gate-mode", "never", "--quiet", "--timeout", "5"])
        .args(["--base-url", &base(&server), "A red apple"])
        .output()
        .unwrap();
    let text = shown(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("image generation failed"), "{text}");
    assert!(text.contains("404"), "{text}");
    assert!(!text.contains(KEY) && !text.contains("panicked"), "{text}");
    assert!(
        dir.path().join("report.json").exists(),
        "the partial report is written"
    );
}

#[test]
fn a_local_image_server_alone_still_needs_a_key_for_openai_chat() {
    let dir = tempfile::tempdir().unwrap();
    let out = command()
        .current_dir(dir.path())
        .args(["--image-base-url", "http://127.0.0.1:9/v1"])
        .args(OFFLINE_SEARCH)
        .arg("A red apple")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out));
    assert!(shown(&out).contains("OPENAI_API_KEY"));
    assert!(
        !dir.path().join("image.png").exists(),
        "nothing was generated"
    );
}

/// `generate` with the gate asking for a reference that no engine can supply (the only
/// engine, Openverse, points at a server that answers 404).
fn without_a_reference(server: &MockServer, dir: &std::path::Path) -> Command {
    let mut c = command();
    c.current_dir(dir)
        .env("OPENAI_API_KEY", KEY)
        .args(["--quiet", "--timeout", "5", "--base-url", &base(server)])
        .args(["--engine", "openverse", "--openverse-url", &server.uri()])
        .arg("A Graphorn at dusk");
    c
}

#[tokio::test]
async fn a_run_without_its_reference_says_so_and_require_reference_fails_it() {
    let server = MockServer::start().await;
    mount_chat(&server, "assessment", &["gate_needs_reference.json"]).await;
    mount_chat(&server, "verdict", &["verdict_aligned.json"]).await;
    mount_images(&server, "generations", &["images_red.json"]).await;
    let dir = tempfile::tempdir().unwrap();

    let out = without_a_reference(&server, dir.path()).output().unwrap();
    let text = shown(&out);
    assert!(out.status.success(), "{text}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("degraded ("), "{text}");
    assert!(stdout.contains("lost the reference image"), "{text}");
    assert!(stdout.contains("WITHOUT the reference"), "{text}");
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    let lost: Vec<&str> = r["degraded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["lost"].as_str().unwrap())
        .collect();
    assert!(lost.contains(&"reference"), "{lost:?}");
    assert_eq!(
        requests_to(&server, "/v1/images/generations").await.len(),
        1
    );

    let out = without_a_reference(&server, dir.path())
        .arg("--require-reference")
        .output()
        .unwrap();
    let text = shown(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("reference image was required"), "{text}");
    assert_eq!(
        requests_to(&server, "/v1/images/generations").await.len(),
        1,
        "no image paid for in the second run"
    );
}

#[tokio::test]
async fn a_bad_out_path_or_model_dir_is_refused_before_any_call() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 3] = [
        (&["--out", "no/such/dir/image.png"], "does not exist"),
        (&["--report", "."], "is a directory"),
        (&["--model-dir", "no-model-here"], "vision/model.onnx"),
    ];
    for (args, wanted) in cases {
        let out = command()
            .current_dir(dir.path())
            .env("OPENAI_API_KEY", KEY)
            .args(["--quiet", "--base-url", &base(&server)])
            .args(args)
            .arg("A red apple")
            .output()
            .unwrap();
        let text = shown(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {text}");
        assert!(text.contains(wanted), "{args:?}: {text}");
    }
    let calls = server.received_requests().await.unwrap();
    assert!(calls.is_empty(), "a call was made: {calls:?}");
}

#[test]
fn one_binary_lists_its_subcommands_and_prints_completions_and_a_man_page() {
    let out = Command::new(iat2i_binary()).arg("--help").output().unwrap();
    let text = shown(&out);
    assert!(out.status.success(), "{text}");
    for sub in [
        "generate",
        "search",
        "select",
        "batch",
        "evaluate",
        "memory",
        "completions",
    ] {
        assert!(
            text.contains(&format!("  {sub} ")),
            "{sub} missing from:\n{text}"
        );
    }
    let bash = Command::new(iat2i_binary())
        .args(["completions", "bash"])
        .output()
        .unwrap();
    let script = String::from_utf8_lossy(&bash.stdout);
    assert!(
        bash.status.success() && script.contains("_iat2i()"),
        "{script}"
    );
    assert!(
        script.contains("--require-review"),
        "subcommand flags are completed"
    );
    let man = Command::new(iat2i_binary()).arg("man").output().unwrap();
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(man.status.success() && page.contains(".TH iat2i"), "{page}");
}

#[test]
fn a_config_file_sets_defaults_that_flags_override_and_typos_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("iat2i.toml"),
        "log-format = \"json\"\n\n[generate]\nmodel = \"from-the-file\"\nbrave-key = \"brave-secret-1234\"\n\n\
         [batch.run]\nmax_cost = 25\n\n[search]\nlimit = 0\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(iat2i_binary())
            .current_dir(d)
            .env_remove("IAT2I_CONFIG")
            .env("OPENAI_BASE_URL", "http://env.example/v1")
            .args(args)
            .output()
            .unwrap()
    };
    // `config show`: each value with its source, secrets masked.
    let out = run(&["--config", "iat2i.toml", "config", "show"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", shown(&out));
    assert!(
        text.contains("model = \"from-the-file\"   # config file"),
        "{text}"
    );
    assert!(text.contains("max-cost = \"25\"   # config file"), "{text}");
    // A global option is a key at the top, shown once, before the tables.
    assert!(
        text.contains("# global options\nlog-format = \"json\"   # config file"),
        "{text}"
    );
    assert!(text.contains("# environment OPENAI_BASE_URL"), "{text}");
    assert!(
        !text.contains("brave-secret-1234"),
        "a secret was shown: {text}"
    );
    // The file's value is used (and checked like a flag) ...
    let out = run(&["--config", "iat2i.toml", "search", "--engine", "local", "x"]);
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    assert!(shown(&out).contains("--limit"), "{}", shown(&out));
    // ... and a flag overrides it (the run then fails for another reason: no --folder).
    let out = run(&[
        "--config",
        "iat2i.toml",
        "search",
        "--limit",
        "5",
        "--engine",
        "local",
        "x",
    ]);
    assert!(!shown(&out).contains("--limit"), "{}", shown(&out));
    // A key that is no flag is refused, naming it.
    std::fs::write(d.join("typo.toml"), "[generate]\nmax-roundz = 3\n").unwrap();
    let out = run(&["--config", "typo.toml", "generate", "x"]);
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    assert!(
        shown(&out).contains("generate.max-roundz"),
        "{}",
        shown(&out)
    );
    std::fs::write(d.join("global.toml"), "log-formatt = \"json\"\n").unwrap();
    let out = run(&["--config", "global.toml", "generate", "x"]);
    assert_eq!(out.status.code(), Some(2), "{}", shown(&out));
    assert!(
        shown(&out).contains("`log-formatt` is neither a subcommand nor a global option"),
        "{}",
        shown(&out)
    );
}
