//! Batch throughput and overhead against local mock models with fixed latencies (chat
//! 300 ms, image 2 s), at concurrency 8, for 50 and 200 jobs; each size runs in its own
//! process so its peak memory (VmHWM) is its own, and the mock models run in a process
//! of their own so that their memory is not charged to the batch. `make bench-batch` runs it (release).
//!
//! Prints: wall time, throughput against the ideal (sum of the mock latencies divided by
//! the concurrency) and against the whole-job bound (ceil(jobs / concurrency) job times:
//! 50 jobs at 8 take 7 waves, so 88 % of the ideal is the most 50 jobs can reach), the batch's own overhead per job (journal and files: a job's time in
//! the journal minus the pipeline's own time), and peak resident memory.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use iat2i::batch::{
    Budget, Format, Journal, Limits, Manifest, PriceTable, Runner, RunnerConfig, fingerprint,
};
use iat2i::prelude::*;
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CHAT_MS: u64 = 300;
const IMAGE_MS: u64 = 2000;

/// `BATCH_BENCH_LATENCY_SCALE=0.05` shrinks the mock latencies (quick memory checks).
fn scaled(ms: u64) -> u64 {
    let scale: f64 = std::env::var("BATCH_BENCH_LATENCY_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|s: &f64| *s > 0.0)
        .unwrap_or(1.0);
    ((ms as f64) * scale).round() as u64
}
const CONCURRENCY: usize = 8;

fn fixture(name: &str) -> serde_json::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/openai")
        .join(name);
    serde_json::from_slice(&std::fs::read(p).expect("fixture")).expect("fixture JSON")
}

async fn mock() -> MockServer {
    let server = MockServer::builder()
        .disable_request_recording()
        .start()
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_partial_json(
            serde_json::json!({"response_format": {"json_schema": {"name": "verdict"}}}),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture("verdict_aligned.json"))
                .set_delay(Duration::from_millis(scaled(CHAT_MS))),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture("images_red.json"))
                .set_delay(Duration::from_millis(scaled(IMAGE_MS))),
        )
        .mount(&server)
        .await;
    server
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// One size, in this process; prints one JSON line.
/// The mock models, in a child process of their own: wiremock keeps every request it
/// matched, which would otherwise grow with the number of jobs and be charged to the batch.
struct MockProcess {
    child: std::process::Child,
    uri: String,
}

impl MockProcess {
    fn start() -> MockProcess {
        use std::io::BufRead;
        let exe = std::env::current_exe().expect("own path");
        let mut child = Command::new(exe)
            .arg("--mock")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("mock process");
        let mut line = String::new();
        let out = child.stdout.take().expect("mock stdout");
        std::io::BufReader::new(out)
            .read_line(&mut line)
            .expect("mock address");
        MockProcess {
            child,
            uri: line.trim().to_string(),
        }
    }
}

impl Drop for MockProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `--mock`: serve the mock models until stdin closes (the bench process ended).
async fn serve_mock() {
    let server = mock().await;
    println!("{}", server.uri());
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        let _ = std::io::stdin().read_line(&mut sink);
    })
    .await;
}

async fn run_size(jobs: usize) {
    let server = MockProcess::start();
    let base = format!("{}/v1", server.uri);
    let http = HttpClient::builder()
        .allow_host("127.0.0.1")
        .per_host_per_second(0)
        .build()
        .expect("http client");
    let chat = OpenAiChat::new(http.clone(), &base, "gpt-4o-mini").expect("chat");
    let images = OpenAiImages::new(http, &base, "gpt-image-1").expect("images");
    let pipeline = Arc::new(
        Pipeline::builder()
            .lmm(Arc::new(chat))
            .generator(Arc::new(images))
            .gate_mode(GateMode::Never)
            .max_rounds(1)
            .build()
            .expect("pipeline"),
    );
    let text: String = (0..jobs)
        .map(|i| format!("{{\"id\":\"job-{i:04}\",\"prompt\":\"A red apple number {i}\"}}\n"))
        .collect();
    let m = Manifest::parse(&text, Format::Jsonl);
    let dir = tempfile::tempdir().expect("temp dir");
    let journal = Arc::new(Journal::open(&dir.path().join("journal.sqlite")).expect("journal"));
    let fps: Vec<String> = m.jobs.iter().map(|j| fingerprint(j, &pipeline)).collect();
    let plan = journal
        .plan(&m.jobs, &fps, false, |_, _| None)
        .expect("plan");
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
        out: dir.path().to_path_buf(),
        concurrency: CONCURRENCY,
        ..RunnerConfig::default()
    };
    let runner = Runner::new(
        pipeline,
        journal.clone(),
        budget,
        config,
        Arc::new(AtomicBool::new(false)),
    );
    let t = Instant::now();
    let outcome = runner.run(plan.to_run).await.expect("run");
    let wall = t.elapsed().as_secs_f64();
    // The batch's own peak, before this harness reads the outputs back.
    let peak_kib = peak_rss_kib();
    assert_eq!(outcome.done, jobs, "every job done");
    // Overhead: a job's time in the journal minus the pipeline's own time (report).
    let mut overhead_ms = 0.0;
    let mut job_ms = 0.0;
    for row in journal.rows().expect("rows") {
        let d = row.duration_ms.unwrap_or(0) as f64;
        let report: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.path().join(&row.id).join("report.json")).expect("report"),
        )
        .expect("report JSON");
        let pipeline_ms = report["report"]["total_ms"].as_f64().unwrap_or(d);
        overhead_ms += d - pipeline_ms;
        job_ms += d;
    }
    let job_s = (scaled(CHAT_MS) + scaled(IMAGE_MS)) as f64 / 1000.0;
    let ideal = jobs as f64 * job_s / CONCURRENCY as f64;
    // Jobs are whole: n jobs at concurrency c cannot finish before ceil(n/c) job times.
    let waves = jobs.div_ceil(CONCURRENCY) as f64 * job_s;
    println!(
        "{}",
        serde_json::json!({
            "jobs": jobs, "wall_s": wall, "ideal_s": ideal, "waves_s": waves,
            "overhead_ms_per_job": overhead_ms / jobs as f64,
            "job_ms": job_ms / jobs as f64,
            "peak_rss_mib": peak_kib as f64 / 1024.0,
        })
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--size") {
        let n: usize = args
            .get(i + 1)
            .and_then(|s| s.parse().ok())
            .expect("--size N");
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(run_size(n));
        return;
    }
    if args.iter().any(|a| a == "--mock") {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(serve_mock());
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return; // `cargo bench -- --list`
    }
    println!(
        "batch bench: chat {CHAT_MS} ms, image {IMAGE_MS} ms, concurrency {CONCURRENCY}, 1 round"
    );
    println!(
        "| jobs | wall s | ideal s | throughput vs ideal | whole-job bound s | vs bound | overhead ms/job | overhead % of job | peak RSS MiB |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let exe = std::env::current_exe().expect("own path");
    // BATCH_BENCH_SIZES=50,200,800 adds sizes (memory flatness over more jobs).
    let sizes: Vec<usize> = std::env::var("BATCH_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![50, 200]);
    for n in sizes {
        let out = Command::new(&exe)
            .args(["--size", &n.to_string()])
            .output()
            .expect("child");
        let line = String::from_utf8_lossy(&out.stdout);
        let Some(v) = line
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .next_back()
        else {
            eprintln!("size {n} failed: {}", String::from_utf8_lossy(&out.stderr));
            continue;
        };
        let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "| {n} | {:.1} | {:.1} | {:.1} % | {:.1} | {:.1} % | {:.2} | {:.3} % | {:.1} |",
            f("wall_s"),
            f("ideal_s"),
            100.0 * f("ideal_s") / f("wall_s"),
            f("waves_s"),
            100.0 * f("waves_s") / f("wall_s"),
            f("overhead_ms_per_job"),
            100.0 * f("overhead_ms_per_job") / f("job_ms"),
            f("peak_rss_mib"),
        );
    }
}
