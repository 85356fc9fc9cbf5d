//! The contact sheet in a real browser: headless Chromium (Debian's `chromium` package)
//! opens index.html from disk and the test checks that every image loaded and that no
//! script ran, although a prompt and a reference title carry `<script>`. Skipped, saying
//! so, where Chromium is not installed.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use common::*;
use iat2i::batch::{
    Budget, Format, Journal, Limits, Manifest, PriceTable, Runner, RunnerConfig, fingerprint,
    write_summary,
};
use iat2i::prelude::*;
use wiremock::MockServer;

const EVIL: &str = "<script>window.pwned=true;document.title='pwned'</script> a pear";

async fn sheet(out: &Path) {
    let server = MockServer::start().await;
    mount_chat(&server, "verdict", &["verdict_aligned.json"]).await;
    mount_chat(&server, "assessment", &["gate_needs_reference.json"]).await;
    mount_images_any(&server, &["images_red.json"]).await;
    let pipeline = Arc::new(
        pipeline(
            &server,
            StubSearch::default(),
            StubSelector::default(),
            GateMode::Always,
            1,
        )
        .gate_mode(GateMode::Always)
        .build()
        .unwrap(),
    );
    let text = format!(
        "{{\"id\":\"apple\",\"prompt\":\"A red apple\"}}\n{}\n",
        serde_json::json!({"id": "evil", "prompt": EVIL})
    );
    let m = Manifest::parse(&text, Format::Jsonl);
    let fps: Vec<String> = m.jobs.iter().map(|j| fingerprint(j, &pipeline)).collect();
    let journal = Arc::new(Journal::open(&out.join("journal.sqlite")).unwrap());
    let plan = journal.plan(&m.jobs, &fps, false, |_, _| None).unwrap();
    let budget = Arc::new(
        Budget::new(
            Limits::default(),
            PriceTable::default(),
            "gpt-4o-mini",
            "gpt-image-1",
        )
        .expect("budget"),
    );
    let config = RunnerConfig {
        out: out.to_path_buf(),
        concurrency: 2,
        backoff: Duration::from_millis(10),
        ..RunnerConfig::default()
    };
    let runner = Runner::new(
        pipeline,
        journal,
        budget,
        config,
        Arc::new(AtomicBool::new(false)),
    );
    let outcome = runner.run(plan.to_run).await.unwrap();
    assert_eq!(outcome.done, 2);
    write_summary(&[out.join("journal.sqlite")], out).unwrap();
}

const PROBE: &str = r#"<!doctype html><html><body><div id="result">pending</div>
<iframe id="f" src="index.html" width="1200" height="900"></iframe>
<script>
document.getElementById('f').addEventListener('load', function () {
  var d = this.contentDocument, imgs = d.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) { if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++; }
  document.getElementById('result').textContent = 'images=' + imgs.length + ' loaded=' + ok +
    ' pwned=' + (this.contentWindow.pwned === true) + ' title=' + d.title;
});
</script></body></html>"#;

#[tokio::test]
async fn the_contact_sheet_loads_every_image_and_runs_no_script_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    sheet(dir.path()).await;
    let html = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
    assert!(
        html.contains("&lt;script&gt;window.pwned"),
        "the prompt shows as text"
    );
    assert!(!html.contains("<script>"), "no script element in the sheet");
    assert!(dir.path().join("evil/reference.png").exists());
    let Some(browser) = chromium() else {
        eprintln!("skipped: Chromium is not installed (apt-get install chromium)");
        return;
    };
    std::fs::write(dir.path().join("probe.html"), PROBE).unwrap();
    let url = format!("file://{}", dir.path().join("probe.html").display());
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--allow-file-access-from-files",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(&url)
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    let start = dom.find("id=\"result\">").expect("the probe page rendered") + 12;
    let result = &dom[start..start + dom[start..].find('<').unwrap()];
    // Two generated images and two reference thumbnails.
    assert!(result.starts_with("images=4 loaded=4 "), "{result}");
    assert!(result.contains("pwned=false"), "{result}");
    assert!(!result.contains("title=pwned"), "{result}");
}
