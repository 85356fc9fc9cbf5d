//! The `batch` example as a user and cron run it, against the local OpenAI server:
//! surviving SIGKILL at random moments, graceful SIGTERM, manifest errors, --dry-run.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::*;
use iat2i::batch::{JobState, Journal};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn command(server: &MockServer, out: &Path) -> Command {
    let mut c = iat2i("batch");
    c.env_remove("OPENAI_BASE_URL")
        .env_remove("JOB_COMPLETION_INDEX")
        .env_remove("IAT2I_SHARD_COUNT")
        .env_remove("QDRANT_URL")
        .env("OPENAI_API_KEY", KEY)
        .env("RUST_LOG", "warn")
        .args([
            "run",
            "--gate-mode",
            "never",
            "--max-rounds",
            "1",
            "--no-summary",
        ])
        .args(["--base-url", &base(server)])
        .arg("--out")
        .arg(out);
    c
}

/// A server whose judge answers after `chat_ms` and whose images take `image_ms`.
async fn slow_server(chat_ms: u64, image_ms: u64) -> MockServer {
    let server = MockServer::start().await;
    let verdict = ResponseTemplate::new(200)
        .set_body_json(fixture_json("verdict_aligned.json"))
        .set_delay(Duration::from_millis(chat_ms));
    mount_chat_replies(&server, "verdict", verdict).await;
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture_json("images_red.json"))
                .set_delay(Duration::from_millis(image_ms)),
        )
        .mount(&server)
        .await;
    server
}

fn write_manifest(dir: &Path, n: usize) -> std::path::PathBuf {
    let text: String = (1..=n)
        .map(|i| format!("{{\"id\":\"job-{i:02}\",\"prompt\":\"A red apple number {i}\"}}\n"))
        .collect();
    let p = dir.join("prompts.jsonl");
    std::fs::write(&p, text).unwrap();
    p
}

/// The prompts of the image requests from index `from` on.
async fn image_prompts(server: &MockServer, from: usize) -> Vec<String> {
    requests_to(server, "/v1/images/generations")
        .await
        .iter()
        .skip(from)
        .map(|r| json_body(r)["prompt"].as_str().unwrap().to_string())
        .collect()
}

fn done_ids(journal: &Path) -> HashSet<String> {
    if !journal.exists() {
        return HashSet::new();
    }
    Journal::open_read_only(journal)
        .unwrap()
        .rows()
        .unwrap()
        .into_iter()
        .filter(|r| r.state == JobState::Done)
        .map(|r| r.id)
        .collect()
}

/// A small deterministic generator (xorshift), so the kill moments are reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        lo + self.0 % (hi - lo)
    }
}

fn wait(mut child: Child) -> Output {
    let _ = child.wait();
    child.wait_with_output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_never_loses_or_repeats_a_done_job() {
    let server = slow_server(40, 120).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let manifest = write_manifest(dir.path(), 24);
    let journal = out.join("journal.sqlite");
    let prompt_of = |id: &str| {
        let n: usize = id.trim_start_matches("job-").parse().unwrap();
        format!("A red apple number {n}")
    };
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut snapshots = Vec::new();
    for _ in 0..20 {
        let child = command(&server, &out)
            .args(["--concurrency", "3"])
            .arg(&manifest)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(rng.next(60, 600))).await;
        let mut child = child;
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
        let seen = requests_to(&server, "/v1/images/generations").await.len();
        snapshots.push((seen, done_ids(&journal)));
    }
    let last = command(&server, &out)
        .args(["--concurrency", "3"])
        .arg(&manifest)
        .output()
        .unwrap();
    assert_eq!(last.status.code(), Some(0), "{}", shown(&last));

    let j = Journal::open_read_only(&journal).unwrap();
    let rows = j.rows().unwrap();
    assert_eq!(rows.len(), 24);
    assert!(rows.iter().all(|r| r.state == JobState::Done), "{rows:?}");
    let completions = j.completions().unwrap();
    assert_eq!(completions.len(), 24);
    assert!(
        completions.iter().all(|(_, n)| *n == 1),
        "every job done exactly once: {completions:?}"
    );
    for r in &rows {
        let d = out.join(&r.id);
        let png = std::fs::read(d.join("image.png")).unwrap();
        image::load_from_memory(&png).expect("a complete PNG");
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("report.json")).unwrap()).unwrap();
        assert_eq!(report["job"]["id"], r.id.as_str());
    }
    let mut killed_with_progress = 0;
    for (seen, done) in &snapshots {
        let later = image_prompts(&server, *seen).await;
        for id in done {
            assert!(
                !later.contains(&prompt_of(id)),
                "{id} was done but asked for a new image later"
            );
        }
        killed_with_progress += usize::from(!done.is_empty());
    }
    assert!(killed_with_progress > 0, "the kills landed while jobs ran");

    // The summary accounts for every paid call the server served: what it billed for
    // calls that returned, and as possibly billed those cut off by a kill.
    let summary = iat2i::batch::write_summary(std::slice::from_ref(&journal), &out).unwrap();
    let served_images = requests_to(&server, "/v1/images/generations").await.len() as i64;
    let served_calls = server.received_requests().await.unwrap().len() as i64;
    assert!(
        summary.images <= served_images,
        "{summary:?} vs {served_images}"
    );
    assert!(
        summary.images + summary.possibly_billed.images >= served_images,
        "{summary:?} vs {served_images} images served"
    );
    assert!(summary.billed_calls <= served_calls, "{summary:?}");
    assert!(
        summary.billed_calls + summary.interrupted_paid_calls >= served_calls,
        "{summary:?} vs {served_calls} calls served"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_running_jobs_finish_and_leaves_the_rest_pending() {
    let server = slow_server(20, 1500).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let manifest = write_manifest(dir.path(), 6);
    let child = command(&server, &out)
        .args(["--concurrency", "2", "--grace", "60s"])
        .arg(&manifest)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until both first images are asked for, then ask the batch to stop.
    for _ in 0..100 {
        if requests_to(&server, "/v1/images/generations").await.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let output = wait(child);
    let text = shown(&output);
    assert_eq!(output.status.code(), Some(130), "{text}");
    assert!(text.contains("stopping"), "{text}");
    let j = Journal::open_read_only(&out.join("journal.sqlite")).unwrap();
    let rows = j.rows().unwrap();
    let done = rows.iter().filter(|r| r.state == JobState::Done).count();
    let pending = rows.iter().filter(|r| r.state == JobState::Pending).count();
    assert_eq!(done, 2, "the running jobs finished: {rows:?}");
    assert_eq!(pending, 4);
    assert_eq!(
        requests_to(&server, "/v1/images/generations").await.len(),
        2
    );
}

#[tokio::test]
async fn bad_manifest_lines_are_reported_with_numbers_and_strict_refuses() {
    let server = slow_server(0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let manifest = dir.path().join("m.jsonl");
    std::fs::write(
        &manifest,
        "{\"id\":\"a\",\"prompt\":\"A red apple\"}\n{\"prompt\": 3}\n\n{\"id\":\"b\",\"prompt\":\"A pear\"}\nnot json\n",
    )
    .unwrap();
    let strict = command(&server, &out)
        .arg("--strict")
        .arg(&manifest)
        .output()
        .unwrap();
    let text = shown(&strict);
    assert_eq!(strict.status.code(), Some(2), "{text}");
    assert!(text.contains("line 2") && text.contains("line 5"), "{text}");
    assert!(
        requests_to(&server, "/v1/images/generations")
            .await
            .is_empty()
    );

    let lenient = command(&server, &out).arg(&manifest).output().unwrap();
    let text = shown(&lenient);
    assert_eq!(lenient.status.code(), Some(0), "{text}");
    assert!(
        text.contains("line 2:") && text.contains("line 5:"),
        "{text}"
    );
    assert_eq!(done_ids(&out.join("journal.sqlite")).len(), 2);
}

#[tokio::test]
async fn dry_run_counts_jobs_and_calls_no_model() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let manifest = write_manifest(dir.path(), 5);
    let o = command(&server, &out)
        .args(["--dry-run", "--max-images", "3"])
        .arg(&manifest)
        .output()
        .unwrap();
    let text = shown(&o);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("5 to run, 0 already done"), "{text}");
    assert!(text.contains("at most 3 image(s)"), "{text}");
    assert!(text.contains("no model was called"), "{text}");
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_call_in_flight_at_a_sigkill_is_reported_after_the_restart() {
    let server = slow_server(10, 3000).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let manifest = write_manifest(dir.path(), 1);
    let mut child = command(&server, &out)
        .arg(&manifest)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it while its image request is at the server, unanswered.
    let mut waited = 0;
    while requests_to(&server, "/v1/images/generations")
        .await
        .is_empty()
        && waited < 200
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    assert_eq!(
        requests_to(&server, "/v1/images/generations").await.len(),
        1
    );
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();

    let again = command(&server, &out)
        .args(["--concurrency", "1"])
        .arg(&manifest)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(0), "{}", shown(&again));
    let text = shown(&again);
    assert!(
        text.contains("1 paid call(s) of this job were in flight when an earlier process died"),
        "{text}"
    );
    let rows = Journal::open_read_only(&out.join("journal.sqlite"))
        .unwrap()
        .rows()
        .unwrap();
    assert_eq!(rows[0].state, JobState::Done);
    assert_eq!(rows[0].interrupted_calls, 1);
    let summary = iat2i::batch::write_summary(&[out.join("journal.sqlite")], &out).unwrap();
    assert_eq!(summary.interrupted_paid_calls, 1);
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains("in flight when a process died"), "{html}");
    assert!(html.contains("reserved: 1\nimage(s)"), "{html}");
}

/// Waits until the server has seen `n` image requests (or about 10 s).
async fn wait_for_images(server: &MockServer, n: usize) {
    for _ in 0..200 {
        if requests_to(server, "/v1/images/generations").await.len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cap_holds_across_a_kill_and_a_restart() {
    // Capped at 3 images, killed after 2, restarted with the same cap: at most 3 in all.
    let server = slow_server(10, 400).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let manifest = write_manifest(dir.path(), 8);
    let mut child = command(&server, &out)
        .args(["--concurrency", "1", "--max-images", "3"])
        .arg(&manifest)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_images(&server, 2).await;
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    let again = command(&server, &out)
        .args(["--concurrency", "2", "--max-images", "3"])
        .arg(&manifest)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(4), "{}", shown(&again));
    let served = requests_to(&server, "/v1/images/generations").await.len();
    assert!(served <= 3, "the cap of 3 paid {served} images");
    let text = shown(&again);
    assert!(text.contains("already spent in this folder"), "{text}");
    let summary = iat2i::batch::write_summary(&[out.join("journal.sqlite")], &out).unwrap();
    assert!(
        summary.images + summary.possibly_billed.images >= served as i64,
        "{summary:?}"
    );
    assert!(summary.images <= served as i64, "{summary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_shards_with_restarts_share_one_cap() {
    let server = slow_server(5, 150).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let manifest = write_manifest(dir.path(), 24);
    let spawn = |k: u32| {
        command(&server, &out)
            .args(["--concurrency", "2", "--max-images", "7"])
            .args(["--shard", &format!("{k}/4")])
            .arg(&manifest)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Every shard starts, two are killed mid-run and started again.
    let mut first: Vec<Child> = (1..=4).map(spawn).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for c in first.iter_mut().take(2) {
        c.kill().unwrap();
    }
    let mut codes = Vec::new();
    for c in first {
        codes.push(wait(c).status.code());
    }
    for k in 1..=2 {
        let o = wait(spawn(k));
        codes.push(o.status.code());
    }
    let served = requests_to(&server, "/v1/images/generations").await.len();
    assert!(
        served <= 7,
        "4 shards under --max-images 7 paid {served} images ({codes:?})"
    );
    assert!(
        served >= 6,
        "the shards stopped early: {served} images ({codes:?})"
    );
    assert!(
        codes.contains(&Some(4)),
        "a shard stopped on the cap: {codes:?}"
    );
    let journals = iat2i::batch::folder_journals(&out).unwrap();
    assert_eq!(journals.len(), 4);
    let summary = iat2i::batch::write_summary(&journals, &out).unwrap();
    assert!(summary.images <= served as i64, "{summary:?}");
    assert!(
        summary.images + summary.possibly_billed.images >= served as i64,
        "{summary:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cost_cap_with_an_unpriced_model_is_refused_before_any_call() {
    let server = slow_server(5, 5).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let manifest = write_manifest(dir.path(), 2);
    let o = command(&server, &out)
        .args(["--max-cost", "5", "--image-model", "my-flux-dev"])
        .arg(&manifest)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", shown(&o));
    let text = shown(&o);
    assert!(
        text.contains("\"my-flux-dev\"") && text.contains("--prices"),
        "{text}"
    );
    assert!(server.received_requests().await.unwrap().is_empty());
    // With a price for it, the same batch runs.
    let prices = dir.path().join("prices.toml");
    std::fs::write(&prices, "[models.\"my-flux-dev\"]\nper_image = 0.01\n").unwrap();
    let o = command(&server, &out)
        .args([
            "--max-cost",
            "5",
            "--image-model",
            "my-flux-dev",
            "--prices",
        ])
        .arg(&prices)
        .arg(&manifest)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", shown(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_split_of_the_same_folder_is_refused() {
    let server = slow_server(5, 5).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let manifest = write_manifest(dir.path(), 4);
    let o = command(&server, &out).arg(&manifest).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", shown(&o));
    let paid = server.received_requests().await.unwrap().len();
    let o = command(&server, &out)
        .args(["--shard", "1/2"])
        .arg(&manifest)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", shown(&o));
    assert!(shown(&o).contains("split into 1 shard(s)"), "{}", shown(&o));
    assert_eq!(server.received_requests().await.unwrap().len(), paid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_outputs_cannot_be_written_fails_as_io_and_the_rest_run() {
    let server = slow_server(5, 5).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    // The job's folder is taken by a file: its outputs cannot be written.
    std::fs::write(out.join("job-02"), b"not a folder").unwrap();
    let manifest = write_manifest(dir.path(), 3);
    let c = command(&server, &out);
    let args: Vec<_> = c.get_args().map(|a| a.to_os_string()).collect();
    // The same command line (its first argument is the subcommand), without --no-summary.
    let mut c = Command::new(iat2i_binary());
    c.envs(
        command(&server, &out)
            .get_envs()
            .filter_map(|(k, v)| v.map(|v| (k, v))),
    );
    c.args(args.iter().filter(|a| *a != "--no-summary"));
    let o = c.arg(&manifest).output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", shown(&o));
    let rows = Journal::open_read_only(&out.join("journal.sqlite"))
        .unwrap()
        .rows()
        .unwrap();
    let bad = rows.iter().find(|r| r.id == "job-02").unwrap();
    assert_eq!(bad.state, JobState::Failed);
    assert_eq!(bad.error_class.as_deref(), Some("io"));
    assert_eq!(bad.images, 1, "its paid image is accounted for");
    assert_eq!(rows.iter().filter(|r| r.state == JobState::Done).count(), 2);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["by_error_class"]["io"], 1);
    assert_eq!(summary["images"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_files_the_batch_cannot_read_safely_are_refused_before_any_call() {
    let server = slow_server(5, 5).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let toml = dir.path().join("prompts.toml");
    std::fs::write(&toml, "[job]\nprompt = \"a red apple\"\n").unwrap();
    let o = command(&server, &out).arg(&toml).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", shown(&o));
    assert!(shown(&o).contains("--format"), "{}", shown(&o));
    // A reserved id, a huge prompt and a line that is not UTF-8 are bad lines, named.
    let jsonl = dir.path().join("bad.jsonl");
    let mut bytes = b"{\"id\":\"index.html\",\"prompt\":\"a pear\"}\n".to_vec();
    bytes.extend(format!("{{\"prompt\":\"{}\"}}\n", "x".repeat(40_000)).as_bytes());
    bytes.extend(b"{\"prompt\":\"caf\xe9\"}\n{\"id\":\"ok\",\"prompt\":\"a plum\"}\n");
    std::fs::write(&jsonl, bytes).unwrap();
    let o = command(&server, &out)
        .arg("--strict")
        .arg(&jsonl)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", shown(&o));
    let text = shown(&o);
    assert!(
        text.contains("line 1") && text.contains("batch's own files"),
        "{text}"
    );
    assert!(
        text.contains("line 2") && text.contains("over the limit"),
        "{text}"
    );
    assert!(text.contains("line 3") && text.contains("UTF-8"), "{text}");
    assert!(server.received_requests().await.unwrap().is_empty());
    let o = command(&server, &out).arg(&jsonl).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", shown(&o));
    assert_eq!(
        requests_to(&server, "/v1/images/generations").await.len(),
        1
    );
}

/// An Openverse server whose one result is a picture licensed CC BY-NC 4.0, served by a
/// loopback image host.
async fn nc_engine() -> (MockServer, MockServer) {
    use serde_json::json;
    let images = MockServer::start().await;
    let body = encode(scene(1, 320, 240), image::ImageFormat::Png);
    Mock::given(method("GET"))
        .and(path("/nc.png"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "image/png"))
        .mount(&images)
        .await;
    let result = json!({
        "title": "Graphorn", "url": format!("{}/nc.png", images.uri()),
        "foreign_landing_url": format!("{}/page/nc", images.uri()),
        "license": "by-nc", "license_version": "4.0", "creator": "A. Painter",
        "width": 320, "height": 240,
    });
    let openverse = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/images/"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "result_count": 1, "page_count": 1, "results": [result] })),
        )
        .mount(&openverse)
        .await;
    (openverse, images)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn licence_and_allow_host_shape_the_batchs_references() {
    if skip_without_ort("licence_and_allow_host_shape_the_batchs_references") {
        return;
    }
    let (openverse, _images) = nc_engine().await;
    let server = MockServer::start().await;
    mount_chat(&server, "assessment", &["gate_needs_reference.json"]).await;
    mount_chat(&server, "pick", &["chat_pick.json"]).await;
    mount_chat(&server, "verdict", &["verdict_aligned.json"]).await;
    mount_images_any(&server, &["images_green.json"]).await;
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("p.txt");
    std::fs::write(&manifest, "A Graphorn at dusk\n").unwrap();
    let run = |out: &str, licence: Option<&str>| {
        let mut c = iat2i("batch");
        c.env_remove("OPENAI_BASE_URL")
            .env_remove("JOB_COMPLETION_INDEX")
            .env_remove("QDRANT_URL")
            .env("OPENAI_API_KEY", KEY)
            .args(["run", "--max-rounds", "1", "--no-memory", "--no-summary"])
            .args(["--base-url", &base(&server), "--allow-host", "127.0.0.1"])
            .args(["--model-dir", &tiny_model().display().to_string()])
            .args(["--engine", "openverse", "--openverse-url", &openverse.uri()])
            .arg("--out")
            .arg(dir.path().join(out));
        if let Some(l) = licence {
            c.args(["--licence", l]);
        }
        c.arg(&manifest).output().unwrap()
    };
    // Any licence: the NC picture is the reference (an edit with it).
    let o = run("any", None);
    assert_eq!(o.status.code(), Some(0), "{}", shown(&o));
    assert_eq!(
        requests_to(&server, "/v1/images/edits").await.len(),
        1,
        "{}",
        shown(&o)
    );
    // Commercial use: the NC picture must not become a reference.
    let o = run("commercial", Some("commercial-and-derivatives"));
    assert_eq!(o.status.code(), Some(0), "{}", shown(&o));
    assert_eq!(
        requests_to(&server, "/v1/images/edits").await.len(),
        1,
        "{}",
        shown(&o)
    );
    assert_eq!(
        requests_to(&server, "/v1/images/generations").await.len(),
        1
    );
    let job = |out: &str| {
        std::fs::read_dir(dir.path().join(out))
            .unwrap()
            .filter_map(Result::ok)
            .find(|e| e.path().join("report.json").exists())
            .unwrap()
            .path()
    };
    assert!(job("any").join("reference.json").exists());
    assert!(
        !job("commercial").join("reference.json").exists(),
        "an NC image became the reference"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_folder_is_a_reference_source_for_the_batch() {
    if skip_without_ort("a_local_folder_is_a_reference_source_for_the_batch") {
        return;
    }
    let server = MockServer::start().await;
    mount_chat(&server, "assessment", &["gate_needs_reference.json"]).await;
    mount_chat(&server, "pick", &["chat_pick.json"]).await;
    mount_chat(&server, "verdict", &["verdict_aligned.json"]).await;
    mount_images_any(&server, &["images_green.json"]).await;
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("refs");
    std::fs::create_dir_all(&folder).unwrap();
    for (i, name) in ["graphorn", "graphorn-herd"].iter().enumerate() {
        let png = encode(scene(i as u32 + 1, 320, 240), image::ImageFormat::Png);
        std::fs::write(folder.join(format!("{name}.png")), png).unwrap();
        std::fs::write(folder.join(format!("{name}.txt")), "A Graphorn at dusk").unwrap();
    }
    let manifest = dir.path().join("p.txt");
    std::fs::write(&manifest, "A Graphorn at dusk\n").unwrap();
    let out = dir.path().join("out");
    let o = iat2i("batch")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("JOB_COMPLETION_INDEX")
        .env_remove("QDRANT_URL")
        .env("OPENAI_API_KEY", KEY)
        .args(["run", "--max-rounds", "1", "--no-memory", "--no-summary"])
        .args(["--base-url", &base(&server)])
        .args(["--model-dir", &tiny_model().display().to_string()])
        .args(["--engine", "local", "--folder"])
        .arg(&folder)
        .arg("--out")
        .arg(&out)
        .arg(&manifest)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", shown(&o));
    assert_eq!(
        requests_to(&server, "/v1/images/edits").await.len(),
        1,
        "the folder's picture was sent: {}",
        shown(&o)
    );
    let job = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| e.path().join("report.json").exists())
        .unwrap()
        .path();
    assert!(job.join("reference.json").exists(), "{}", shown(&o));
}
