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
    let mut c = Command::new(example_binary("batch"));
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
}
