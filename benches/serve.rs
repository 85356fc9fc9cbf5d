//! `make bench-serve`: `iat2i serve` under 64 concurrent clients against stand-ins with
//! fixed latencies. Prints throughput, the latency the server adds over the stand-ins'
//! own (measured in the same run by the same clients calling the stand-ins directly),
//! peak RSS over the run, and errors.
//!
//! IAT2I_BENCH_SECS (default 60) sets the duration; IAT2I_BENCH_CLIENTS (default 64) the
//! clients. Requests need no reference (gate mode never), so selection is excluded.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use iat2i::Settings;
use iat2i::serve::{ServeConfig, Server};

const IMAGE_MS: u64 = 120;
const CHAT_MS: u64 = 40;

fn fixture(name: &str) -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/openai")
        .join(name);
    std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| panic!("fixture {}", path.display()))
}

/// The OpenAI stand-in: images after IMAGE_MS, verdicts after CHAT_MS.
async fn stand_in() -> String {
    let image = Arc::new(fixture("images_red.json"));
    let verdict = Arc::new(fixture("verdict_aligned.json"));
    let app = Router::new()
        .route(
            "/v1/images/generations",
            post(move || {
                let image = image.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(IMAGE_MS)).await;
                    axum::Json((*image).clone())
                }
            }),
        )
        .route(
            "/v1/chat/completions",
            post(move || {
                let verdict = verdict.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(CHAT_MS)).await;
                    axum::Json((*verdict).clone())
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Load {
    latencies_ms: Vec<f64>,
    errors: u64,
    requests: u64,
    elapsed: Duration,
}

/// `clients` loops calling `one` for `secs`.
async fn load<F, Fut>(clients: usize, secs: u64, one: F) -> Load
where
    F: Fn(reqwest::Client) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let one = Arc::new(one);
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (one, stop, errors) = (one.clone(), stop.clone(), errors.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut mine = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    if one(http.clone()).await {
                        mine.push(t.elapsed().as_secs_f64() * 1000.0);
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                mine
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies_ms = Vec::new();
    for t in tasks {
        latencies_ms.extend(t.await.unwrap_or_default());
    }
    latencies_ms.sort_by(|a, b| a.total_cmp(b));
    Load {
        requests: latencies_ms.len() as u64 + errors.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        latencies_ms,
        elapsed: started.elapsed(),
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let secs: u64 = std::env::var("IAT2I_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let clients: usize = std::env::var("IAT2I_BENCH_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let api = stand_in().await;
    let dir = tempfile::tempdir().unwrap();
    let mut s = Settings::default();
    s.chat.base_url = format!("{api}/v1");
    s.chat.api_key = Some(iat2i::Secret::new("sk-bench"));
    s.run.gate_mode = iat2i::GateMode::Never;
    s.run.max_rounds = 1;
    s.memory.no_memory = true;
    s.memory.cache_dir = Some(dir.path().join("cache"));
    let mut config = ServeConfig::new(vec![("iat2i/gpt-image-1".into(), s)]);
    config.insecure_no_auth = true;
    config.concurrency = clients;
    config.per_key_concurrency = clients;
    config.queue = clients;
    config.state_dir = dir.path().join("state");
    let server = Server::new(config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(server.run(listener, std::future::pending()));
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Baseline: the same clients making the stand-in calls one request makes, directly.
    let direct = {
        let api = api.clone();
        load(clients, secs.min(15), move |http| {
            let api = api.clone();
            async move {
                let img = http
                    .post(format!("{api}/v1/images/generations"))
                    .json(&serde_json::json!({"prompt": "p"}))
                    .send()
                    .await;
                let chat = http
                    .post(format!("{api}/v1/chat/completions"))
                    .json(&serde_json::json!({"messages": []}))
                    .send()
                    .await;
                img.is_ok_and(|r| r.status().is_success())
                    && chat.is_ok_and(|r| r.status().is_success())
            }
        })
        .await
    };

    let rss_start = rss_kib();
    let peak = Arc::new(AtomicU64::new(rss_start));
    let mut samples = Vec::new();
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            let mut v = Vec::new();
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let r = rss_kib();
                peak.fetch_max(r, Ordering::Relaxed);
                v.push(r);
                if v.len() > 100_000 {
                    break v;
                }
            }
        })
    };
    let served = load(clients, secs, move |http| {
        let base = base.clone();
        async move {
            http.post(format!("{base}/v1/images/generations"))
                .json(&serde_json::json!({"model": "iat2i/gpt-image-1", "prompt": "A red apple"}))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;
    sampler.abort();
    if let Ok(v) = sampler.await {
        samples = v;
    }
    let rss_end = rss_kib();
    let third = |i: usize| samples.get(i).copied().unwrap_or(rss_end);
    let (q1, q3) = (third(samples.len() / 3), rss_end);

    let row = |name: &str, l: &Load| {
        println!(
            "{name:<28} {:>8} {:>7} {:>9.1} {:>9.1} {:>9.1}",
            l.requests,
            l.errors,
            l.requests as f64 / l.elapsed.as_secs_f64(),
            pct(&l.latencies_ms, 0.50),
            pct(&l.latencies_ms, 0.99),
        )
    };
    println!("\n{clients} clients; stand-in latencies: image {IMAGE_MS} ms, chat {CHAT_MS} ms");
    println!(
        "{:<28} {:>8} {:>7} {:>9} {:>9} {:>9}",
        "", "requests", "errors", "req/s", "p50 ms", "p99 ms"
    );
    row("stand-ins called directly", &direct);
    row("through iat2i serve", &served);
    println!(
        "{:<28} {:>8} {:>7} {:>9} {:>9.1} {:>9.1}",
        "added by the server",
        "",
        "",
        "",
        pct(&served.latencies_ms, 0.50) - pct(&direct.latencies_ms, 0.50),
        pct(&served.latencies_ms, 0.99) - pct(&direct.latencies_ms, 0.99),
    );
    println!(
        "RSS: {} MiB at the start, {} MiB a third in, {} MiB at the end, peak {} MiB",
        rss_start / 1024,
        q1 / 1024,
        q3 / 1024,
        peak.load(Ordering::Relaxed) / 1024
    );
}
