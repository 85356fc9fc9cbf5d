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

#[tokio::test]
async fn every_setting_that_shapes_the_image_changes_the_fingerprint_and_nothing_else_does() {
    let server = server().await;
    let job = Manifest::parse("{\"id\":\"a\",\"prompt\":\"A red apple\"}\n", Format::Jsonl).jobs[0]
        .clone();
    let base = || {
        pipeline(
            &server,
            StubSearch::default(),
            StubSelector::default(),
            GateMode::Never,
            2,
        )
    };
    let fp = |b: iat2i::pipeline::PipelineBuilder| fingerprint(&job, &b.build().unwrap());
    let reference = fp(base());
    assert_eq!(
        fp(base()),
        reference,
        "an unchanged pipeline keeps its fingerprint"
    );
    let settings = |f: &dyn Fn(&mut iat2i::generator::GenerationSettings)| {
        let mut s = iat2i::generator::GenerationSettings::default();
        f(&mut s);
        base().generation(s)
    };
    let changed = [
        (
            "size",
            settings(&|s| s.size = Some(iat2i::generator::ImageSize::parse("1536x1024").unwrap())),
        ),
        ("seed", settings(&|s| s.seed = Some(7))),
        ("n", settings(&|s| s.n = 3)),
        (
            "negative prompt",
            settings(&|s| s.negative_prompt = Some("blur".into())),
        ),
        (
            "options",
            settings(&|s| {
                s.options
                    .insert("quality".into(), serde_json::json!("high"));
            }),
        ),
        (
            "reference policy",
            base().gate_mode(GateMode::Always).require_reference(true),
        ),
        (
            "generator quality",
            base().generator(Arc::new(
                images_client(&server).with_quality(Some("high".into())),
            )),
        ),
    ];
    for (what, b) in changed {
        assert_ne!(fp(b), reference, "changing the {what} kept the fingerprint");
    }
    assert_ne!(
        fp(base().gate_mode(GateMode::Always).require_reference(true)),
        fp(base().gate_mode(GateMode::Always)),
        "the reference policy alone changes the fingerprint"
    );
    // The licence policy lives in the default selector's settings.
    let with_policy = |policy| {
        Pipeline::builder()
            .lmm(Arc::new(chat_client(&server, test_http())))
            .generator(Arc::new(images_client(&server)))
            .selector_config(iat2i::selectors::SelectorConfig::default().license_policy(policy))
    };
    use iat2i::retrievers::LicensePolicy;
    assert_eq!(
        fp(with_policy(LicensePolicy::Any)),
        fp(with_policy(LicensePolicy::Any))
    );
    assert_ne!(
        fp(with_policy(LicensePolicy::Any)),
        fp(with_policy(LicensePolicy::CommercialAndDerivatives)),
        "changing the licence policy kept the fingerprint"
    );
}

#[tokio::test]
async fn jobs_built_by_a_caller_are_checked_like_manifest_lines() {
    let server = server().await;
    mount_images(&server, "generations", &["images_red.json"]).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let b = batch(&server, &out, &manifest(1), Limits::default(), 1);
    let mut evil = b.jobs[0].clone();
    evil.id = "../escaped".into();
    let e = b.runner.run(vec![evil.clone()]).await.unwrap_err();
    assert!(e.to_string().contains("../escaped"), "{e}");
    assert!(!dir.path().join("escaped").exists());
    let mut clash = b.jobs[0].clone();
    clash.id = "journal.sqlite".into();
    assert!(b.runner.run(vec![clash]).await.is_err());
    let twice = vec![b.jobs[0].clone(), b.jobs[0].clone()];
    let fps = vec!["f".to_string(), "f".to_string()];
    let e = b
        .journal
        .plan(&twice, &fps, false, |_, _| None)
        .unwrap_err();
    assert!(e.to_string().contains("used by two jobs"), "{e}");
    assert!(
        requests_to(&server, "/v1/images/generations")
            .await
            .is_empty()
    );
}

#[test]
fn a_journal_written_before_the_ledger_keeps_its_spend() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite");
    old_journal(&path);
    let j = Journal::open(&path).unwrap();
    let rows = j.rows().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].images, 2);
    assert_eq!(rows[0].interrupted_calls, 1);
    let spend = j.spend().unwrap();
    assert_eq!(spend.billed.images, 2);
    assert!((spend.billed.cost_usd - 0.08).abs() < 1e-9);
    assert_eq!(spend.interrupted.calls, 1);
}

/// A journal in the shape the previous version wrote: spend in the jobs' own columns.
fn old_journal(path: &Path) {
    let sql = "CREATE TABLE jobs (id TEXT PRIMARY KEY, line INTEGER NOT NULL, prompt TEXT NOT NULL,
        fingerprint TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
        error_class TEXT, error_message TEXT, stop_kind TEXT, started_at REAL, finished_at REAL,
        duration_ms INTEGER, chat_tokens INTEGER NOT NULL DEFAULT 0,
        image_tokens INTEGER NOT NULL DEFAULT 0, images INTEGER NOT NULL DEFAULT 0,
        cost_usd REAL NOT NULL DEFAULT 0, output_dir TEXT, engines TEXT, metadata TEXT,
        in_flight INTEGER NOT NULL DEFAULT 0, interrupted_calls INTEGER NOT NULL DEFAULT 0);
      CREATE TABLE completions (job_id TEXT NOT NULL, fingerprint TEXT NOT NULL,
        at REAL NOT NULL, pid INTEGER NOT NULL);
      INSERT INTO jobs (id, line, prompt, fingerprint, state, images, cost_usd, chat_tokens, in_flight)
        VALUES ('a', 1, 'p', 'f', 'done', 2, 0.08, 100, 1);";
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(sql).unwrap();
}

/// A budget with no cap has nothing to decide under the folder's spend lock: its calls
/// are recorded at once even while another shard holds the lock.
#[tokio::test(flavor = "current_thread")]
async fn a_budget_without_caps_records_its_calls_without_waiting_for_the_spend_lock() {
    use iat2i::batch::{BudgetGuard, Ledger};
    use iat2i::{PlannedCall, RunGuard};
    use std::time::Instant;

    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(Journal::open(&dir.path().join("journal.sqlite")).unwrap());
    let budget = Arc::new(
        Budget::new(
            Limits::default(),
            PriceTable::default(),
            "gpt-4o-mini",
            "gpt-image-1",
        )
        .unwrap(),
    );
    let guard =
        BudgetGuard::new(budget, "a", None).with_ledger(Arc::new(Ledger::new(journal.clone())));
    let lock = std::fs::File::create(dir.path().join(".spend.lock")).unwrap();
    lock.lock().unwrap();
    let started = Instant::now();
    guard.before_call(PlannedCall::images(1)).await.unwrap();
    let waited = started.elapsed();
    drop(lock);
    assert!(waited < Duration::from_millis(300), "waited {waited:?}");
    // Still on the books before the call is made.
    assert_eq!(journal.spend().unwrap().in_flight.images, 1);
}

/// The ledger's disk work (a lock another shard holds, fsync'd commits) runs off the
/// runtime's threads: on a one-thread runtime, another job's network I/O goes on while a
/// paid call waits to be recorded.
#[tokio::test(flavor = "current_thread")]
async fn a_slow_ledger_does_not_stall_other_jobs_network_io() {
    use iat2i::batch::{BudgetGuard, Ledger};
    use iat2i::{PlannedCall, RunGuard};
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(Journal::open(&dir.path().join("journal.sqlite")).unwrap());
    // A cap, so that admission decides under the folder's spend lock.
    let limits = Limits {
        max_images: Some(100),
        ..Limits::default()
    };
    let budget =
        Arc::new(Budget::new(limits, PriceTable::default(), "gpt-4o-mini", "gpt-image-1").unwrap());
    let guard = BudgetGuard::new(budget, "a", None).with_ledger(Arc::new(Ledger::new(journal)));
    // Another shard holds the folder's spend lock for 800 ms (a slow shared volume).
    let lock = std::fs::File::create(dir.path().join(".spend.lock")).unwrap();
    lock.lock().unwrap();
    let held = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(800));
        drop(lock);
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let started = Instant::now();
    let network = async {
        let server = async {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
        };
        let client = async {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            c.write_all(b"ping").await.unwrap();
            let mut buf = [0u8; 4];
            c.read_exact(&mut buf).await.unwrap();
        };
        tokio::join!(server, client);
        started.elapsed()
    };
    let admit = async {
        guard.before_call(PlannedCall::images(1)).await.unwrap();
        started.elapsed()
    };
    let (io_done, admitted) = tokio::join!(network, admit);
    held.join().unwrap();
    assert!(
        admitted >= Duration::from_millis(700),
        "admitted after {admitted:?}"
    );
    assert!(
        io_done < Duration::from_millis(300),
        "network I/O waited {io_done:?}"
    );
}
