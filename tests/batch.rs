//! The batch layer as a library: a manifest to a contact sheet against the local OpenAI
//! server, budgets, the circuit breaker, resuming, and sharding.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use common::*;
use iat2i::batch::{
    Budget, Format, JobState, Journal, Limits, Manifest, PriceTable, Runner, RunnerConfig, Shard,
    StopCause, fingerprint, write_summary,
};
use iat2i::prelude::*;
use iat2i::{ErrorClass, HaltKind};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn server() -> MockServer {
    let server = MockServer::start().await;
    mount_chat(&server, "verdict", &["verdict_aligned.json"]).await;
    server
}

fn pipeline_for(server: &MockServer) -> Arc<Pipeline> {
    Arc::new(
        pipeline(
            server,
            StubSearch::default(),
            StubSelector::default(),
            GateMode::Never,
            2,
        )
        .build()
        .unwrap(),
    )
}

struct Batch {
    runner: Runner,
    journal: Arc<Journal>,
    jobs: Vec<iat2i::batch::Job>,
}

fn batch(
    server: &MockServer,
    out: &Path,
    manifest: &str,
    limits: Limits,
    concurrency: usize,
) -> Batch {
    batch_with(server, out, manifest, limits, concurrency, None)
}

fn batch_with(
    server: &MockServer,
    out: &Path,
    manifest: &str,
    limits: Limits,
    concurrency: usize,
    job_timeout: Option<(Duration, Duration)>,
) -> Batch {
    let pipeline = pipeline_for(server);
    let m = Manifest::parse(manifest, Format::Jsonl);
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    let fps: Vec<String> = m.jobs.iter().map(|j| fingerprint(j, &pipeline)).collect();
    let journal = Arc::new(Journal::open(&out.join("journal.sqlite")).unwrap());
    let plan = journal.plan(&m.jobs, &fps, false, |_, _| None).unwrap();
    let budget = Arc::new(
        Budget::new(limits, PriceTable::default(), "gpt-4o-mini", "gpt-image-1").expect("budget"),
    );
    let config = RunnerConfig {
        out: out.to_path_buf(),
        concurrency,
        job_timeout: job_timeout.map(|t| t.0),
        job_grace: job_timeout.map_or(Duration::ZERO, |t| t.1),
        max_attempts: 2,
        backoff: Duration::from_millis(10),
        breaker_threshold: 3,
    };
    let runner = Runner::new(
        pipeline,
        journal.clone(),
        budget,
        config,
        Arc::new(AtomicBool::new(false)),
    );
    Batch {
        runner,
        journal,
        jobs: plan.to_run,
    }
}

fn manifest(n: usize) -> String {
    (1..=n)
        .map(|i| format!("{{\"id\":\"job-{i:02}\",\"prompt\":\"A red apple number {i}\",\"metadata\":{{\"sku\":{i}}}}}\n"))
        .collect()
}

fn states(journal: &Journal) -> Vec<JobState> {
    journal
        .rows()
        .unwrap()
        .into_iter()
        .map(|r| r.state)
        .collect()
}

#[tokio::test]
async fn a_manifest_runs_to_a_contact_sheet_and_a_rerun_pays_nothing() {
    let server = server().await;
    mount_images(&server, "generations", &["images_red.json"]).await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}{}\n",
        manifest(3),
        r#"{"id":"evil","prompt":"<script>document.title='pwned'</script> a pear","metadata":{"note":"<b>x</b>"}}"#
    );
    let b = batch(&server, dir.path(), &text, Limits::default(), 2);
    let outcome = b.runner.run(b.jobs).await.unwrap();
    assert_eq!((outcome.done, outcome.failed, outcome.pending), (4, 0, 0));
    assert_eq!(outcome.stop, None);
    for id in ["job-01", "job-02", "job-03", "evil"] {
        let d = dir.path().join(id);
        let png = std::fs::read(d.join("image.png")).unwrap();
        image::load_from_memory(&png).unwrap();
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("report.json")).unwrap()).unwrap();
        assert_eq!(r["job"]["id"], id);
        assert_eq!(r["report"]["stop"]["kind"], "aligned");
    }
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("job-02/report.json")).unwrap())
            .unwrap();
    assert_eq!(r["job"]["metadata"]["sku"], 2);
    assert_eq!(
        requests_to(&server, "/v1/images/generations").await.len(),
        4
    );

    let summary = write_summary(&[dir.path().join("journal.sqlite")], dir.path()).unwrap();
    assert_eq!(summary.by_state.get("done"), Some(&4));
    assert_eq!(summary.images, 4);
    assert!(summary.duration_p50_ms.is_some() && summary.duration_p95_ms.is_some());
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).unwrap()).unwrap();
    assert_eq!(json["by_state"]["done"], 4);
    let html = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
    assert!(html.contains("&lt;script&gt;document.title="), "{html}");
    assert!(
        !html.contains("<script>"),
        "a prompt's <script> reached the page"
    );
    // minijinja escapes `/` in attributes as `&#x2f;`, which browsers read back as `/`.
    let links = html.replace("&#x2f;", "/");
    assert!(
        links.contains(r#"src="job-01/image.png""#),
        "relative image links"
    );

    // The same manifest again (after the first batch closed its journal): everything is
    // done, nothing is asked for.
    drop((b.runner, b.journal));
    let again = batch(&server, dir.path(), &text, Limits::default(), 2);
    assert!(again.jobs.is_empty());
    let outcome = again.runner.run(again.jobs).await.unwrap();
    assert_eq!(outcome.done, 0);
    assert_eq!(
        requests_to(&server, "/v1/images/generations").await.len(),
        4
    );
    let completions = again.journal.completions().unwrap();
    assert!(completions.iter().all(|(_, n)| *n == 1), "{completions:?}");
}

#[tokio::test]
async fn max_images_3_over_10_jobs_stops_after_3_images_with_the_rest_pending() {
    let server = server().await;
    mount_images(&server, "generations", &["images_red.json"]).await;
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_images: Some(3),
        ..Limits::default()
    };
    let b = batch(&server, dir.path(), &manifest(10), limits, 4);
    let outcome = b.runner.run(b.jobs).await.unwrap();
    assert_eq!(
        requests_to(&server, "/v1/images/generations").await.len(),
        3
    );
    assert_eq!(outcome.done, 3);
    assert_eq!(outcome.pending, 7);
    match &outcome.stop {
        Some(StopCause::Halted(h)) => assert_eq!(h.kind, HaltKind::Budget),
        other => panic!("expected a budget stop, got {other:?}"),
    }
    let s = states(&b.journal);
    assert_eq!(s.iter().filter(|s| **s == JobState::Done).count(), 3);
    assert_eq!(s.iter().filter(|s| **s == JobState::Pending).count(), 7);
}

#[tokio::test]
async fn a_generator_answering_401_forever_trips_the_circuit_breaker() {
    let server = server().await;
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(fixture_json("images_error_401.json")),
        )
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let b = batch(&server, dir.path(), &manifest(10), Limits::default(), 1);
    let outcome = b.runner.run(b.jobs).await.unwrap();
    match &outcome.stop {
        Some(StopCause::CircuitBreaker { class, .. }) => assert_eq!(*class, ErrorClass::Auth),
        other => panic!("expected the circuit breaker, got {other:?}"),
    }
    assert_eq!(outcome.failed, 3);
    assert_eq!(outcome.pending, 7);
    assert_eq!(
        requests_to(&server, "/v1/images/generations").await.len(),
        3,
        "an authentication failure is not retried"
    );
    let rows = b.journal.rows().unwrap();
    let failed: Vec<_> = rows
        .iter()
        .filter(|r| r.state == JobState::Failed)
        .collect();
    assert!(
        failed
            .iter()
            .all(|r| r.error_class.as_deref() == Some("auth"))
    );
    assert!(
        dir.path()
            .join(&failed[0].id)
            .join("report.failed.json")
            .exists(),
        "the partial report is kept"
    );
}

#[tokio::test]
async fn a_job_left_running_by_a_dead_process_is_taken_up_again() {
    let server = server().await;
    mount_images(&server, "generations", &["images_red.json"]).await;
    let dir = tempfile::tempdir().unwrap();
    let text = manifest(2);
    {
        let b = batch(&server, dir.path(), &text, Limits::default(), 1);
        b.journal.start("job-01").unwrap(); // and then the process "dies"
    }
    let pipeline = pipeline_for(&server);
    let m = Manifest::parse(&text, Format::Jsonl);
    let fps: Vec<String> = m.jobs.iter().map(|j| fingerprint(j, &pipeline)).collect();
    let journal = Journal::open(&dir.path().join("journal.sqlite")).unwrap();
    let plan = journal.plan(&m.jobs, &fps, true, |_, _| None).unwrap();
    assert_eq!(plan.resumed, 1);
    assert_eq!(plan.to_run.len(), 2);
    // A changed prompt changes the fingerprint.
    let mut changed = m.jobs[0].clone();
    changed.prompt.push_str(", sliced");
    assert_ne!(fingerprint(&changed, &pipeline), fps[0]);
}

#[test]
fn shards_cover_every_job_once_and_adding_a_job_moves_no_other() {
    let ids: Vec<String> = (0..500).map(|i| format!("job-{i}")).collect();
    for n in [1u32, 2, 3, 7] {
        let mut seen = vec![0u32; ids.len()];
        for k in 1..=n {
            let shard = Shard { index: k, count: n };
            for (i, id) in ids.iter().enumerate() {
                if shard.owns(id) {
                    seen[i] += 1;
                }
            }
        }
        assert!(
            seen.iter().all(|c| *c == 1),
            "union is every job, shards disjoint"
        );
        let before: Vec<u32> = ids.iter().map(|id| Shard::of(id, n)).collect();
        let mut more = ids.clone();
        more.insert(17, "a-new-job".into());
        let after: Vec<u32> = ids.iter().map(|id| Shard::of(id, n)).collect();
        assert_eq!(before, after);
    }
    let sizes: Vec<usize> = (1..=4)
        .map(|k| {
            ids.iter()
                .filter(|id| Shard { index: k, count: 4 }.owns(id))
                .count()
        })
        .collect();
    assert!(sizes.iter().all(|s| *s > 80), "roughly balanced: {sizes:?}");
    assert_eq!(Shard::parse("2/4").unwrap(), Shard { index: 2, count: 4 });
    assert!(Shard::parse("0/4").is_err() && Shard::parse("5/4").is_err());
    let k8s = Shard::from_completion_index(Some("0"), Some("4")).unwrap();
    assert_eq!(k8s, Some(Shard { index: 1, count: 4 }));
    assert!(Shard::from_completion_index(Some("3"), None).is_err());
    assert_eq!(Shard::from_completion_index(None, Some("4")).unwrap(), None);
}

#[tokio::test]
async fn a_second_writer_on_the_same_journal_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite");
    let first = Journal::open(&path).unwrap();
    match Journal::open(&path) {
        Err(iat2i::batch::BatchError::Busy { holder, .. }) => {
            assert_eq!(holder, Some(std::process::id()))
        }
        other => panic!("expected Busy, got {other:?}"),
    }
    // Readers (summaries) are not writers.
    assert!(Journal::open_read_only(&path).is_ok());
    drop(first);
    assert!(Journal::open(&path).is_ok());
}

#[tokio::test]
async fn a_job_past_its_timeout_keeps_its_image_and_a_hung_one_is_abandoned_as_a_timeout() {
    // Judge 400 ms: a job with a 100 ms timeout has its image but may not pay for a
    // judgment, so it is done with the image it has (stopped for its timeout).
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture_json("verdict_aligned.json"))
                .set_delay(Duration::from_millis(400)),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .and(wiremock::matchers::body_string_contains("hangs"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture_json("images_red.json"))
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture_json("images_red.json"))
                .set_delay(Duration::from_millis(150)),
        )
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let text = "{\"id\":\"slow-judge\",\"prompt\":\"A red apple\"}\n{\"id\":\"hung\",\"prompt\":\"A red apple that hangs\"}\n";
    let b = batch_with(
        &server,
        dir.path(),
        text,
        Limits::default(),
        2,
        Some((Duration::from_millis(100), Duration::from_millis(300))),
    );
    let started = std::time::Instant::now();
    let outcome = b.runner.run(b.jobs).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!((outcome.done, outcome.failed), (1, 1), "{outcome:?}");
    let rows = b.journal.rows().unwrap();
    let slow = rows.iter().find(|r| r.id == "slow-judge").unwrap();
    assert_eq!(slow.state, JobState::Done);
    assert_eq!(slow.stop_kind.as_deref(), Some("halted"));
    image::load_from_memory(&std::fs::read(dir.path().join("slow-judge/image.png")).unwrap())
        .unwrap();
    let hung = rows.iter().find(|r| r.id == "hung").unwrap();
    assert_eq!(hung.state, JobState::Failed);
    assert_eq!(
        hung.error_class.as_deref(),
        Some(ErrorClass::Timeout.as_str())
    );
    assert!(
        hung.error_message
            .as_deref()
            .unwrap_or("")
            .contains("abandoned"),
        "{:?}",
        hung.error_message
    );
}

#[test]
fn a_journal_killed_before_its_tables_were_written_reads_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite");
    std::fs::write(&path, b"").unwrap(); // SQLite creates the file before the schema
    let j = Journal::open_read_only(&path).unwrap();
    assert!(j.rows().unwrap().is_empty());
    assert!(j.completions().unwrap().is_empty());
    // And a writer takes it up as a new journal.
    drop(j);
    let w = Journal::open(&path).unwrap();
    assert!(w.rows().unwrap().is_empty());
}
