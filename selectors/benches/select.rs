//! Selection benchmark: 100 candidates served by a local HTTP server with 50-300 ms latency
//! each, the full-size (ViT-B/32) random-weight CLIP model, a real qdrant-edge store.
//!
//! Prints wall time, each stage's time, peak memory (VmHWM), and the ratio of the selection's
//! wall time to (decoding the same images in full, serially, and embedding them + the slowest single
//! download). Target: ratio <= 1.3.
//!
//! Then one reference per entity: the wall time of 1, 2 and 4 selections of 50 candidates
//! each run at once on the same selector (as the pipeline runs one per planned entity),
//! against 1 entity: downloads and embedding overlap, so 4 entities should cost well under
//! 4x one.
//!
//! ```text
//! /tmp/clipvenv/bin/python fixtures/models/make_clip_onnx.py full   # once
//! make bench        # = ORT_DYLIB_PATH=... cargo bench -p iat2i-selectors
//! ```

#[path = "common/picture.rs"]
mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use iat2i_retrievers::{Candidate, HttpClient, Trust};
use iat2i_selectors::{
    ClipEmbedder, ClipModelSource, Embedder, HierarchicalSelector, SelectionRequest, Selector,
    SelectorConfig,
};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A distinct 480x360 JPEG per seed.
fn picture(seed: u32) -> Vec<u8> {
    common::picture(u64::from(seed), 480, 360)
}

/// Latency of image `i`: spread over 50..=300 ms.
fn latency(i: u32) -> Duration {
    Duration::from_millis(50 + u64::from(i * 37 % 251))
}

fn peak_memory_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

async fn serve(n: u32) -> Res<(MockServer, Vec<Vec<u8>>)> {
    let server = MockServer::start().await;
    let mut bodies = Vec::new();
    for i in 0..n {
        let body = picture(i);
        Mock::given(method("GET"))
            .and(path(format!("/img/{i}.jpg")))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_raw(body.clone(), "image/jpeg")
                    .set_delay(latency(i)),
            )
            .mount(&server)
            .await;
        bodies.push(body);
    }
    Ok((server, bodies))
}

fn candidates(base: &str, n: u32) -> Res<Vec<Candidate>> {
    (0..n)
        .map(|i| {
            let url = format!("{base}/img/{i}.jpg").parse()?;
            Ok(Candidate::new(url, "bench", "red fox"))
        })
        .collect()
}

async fn select_once(
    selector: &HierarchicalSelector,
    base: &str,
    n: u32,
    run: &str,
) -> Res<(Duration, iat2i_selectors::Selection)> {
    let request = SelectionRequest::new("a red fox standing in fresh snow at dusk")
        .with_queries(vec!["red fox".into(), "fox in snow".into()])
        .with_entities(vec!["red fox".into()])
        .with_run_id(run);
    let started = Instant::now();
    let sel = selector.select(&request, candidates(base, n)?).await?;
    Ok((started.elapsed(), sel))
}

/// The old baseline: decode every image in full, one after another, then embed them (the
/// embedder already loaded).
async fn direct_embedding(embedder: &ClipEmbedder, bodies: &[Vec<u8>]) -> Res<Duration> {
    let warm = vec![image::load_from_memory(&bodies[0])?];
    embedder.embed_images(warm).await?;
    let started = Instant::now();
    let images = bodies
        .iter()
        .map(|b| image::load_from_memory(b))
        .collect::<Result<Vec<_>, _>>()?;
    let v = embedder.embed_images(images).await?;
    let took = started.elapsed();
    assert_eq!(v.len(), bodies.len());
    Ok(took)
}

async fn slowest_download(http: &HttpClient, base: &str, n: u32) -> Res<Duration> {
    let slowest = (0..n).max_by_key(|&i| latency(i)).unwrap_or(0);
    let url = format!("{base}/img/{slowest}.jpg").parse()?;
    let started = Instant::now();
    http.get(&url, Trust::Untrusted).await?;
    Ok(started.elapsed())
}

fn main() -> Res<()> {
    let model = root().join("fixtures/models/full");
    let tokenizer = root().join("../shared/models/clip-vit-b32-tokenizer");
    if std::env::var_os("ORT_DYLIB_PATH").is_none() {
        println!("skipped: set ORT_DYLIB_PATH (run `make bench`, or `bash scripts/setup-ort.sh`)");
        return Ok(());
    }
    if !model.join("vision/model.onnx").is_file() || !tokenizer.join("tokenizer.json").is_file() {
        println!(
            "skipped: needs {} (python3 fixtures/models/make_clip_onnx.py full) and the CLIP \
             tokenizer in {}",
            model.display(),
            tokenizer.display()
        );
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(model, tokenizer))
}

async fn run(model: PathBuf, tokenizer: PathBuf) -> Res<()> {
    const N: u32 = 100;
    let (server, bodies) = serve(N).await?;
    let base = server.uri();
    let http = HttpClient::builder()
        .allow_host("127.0.0.1")
        .per_host_per_second(0) // one local host stands in for a hundred web hosts
        .build()?;
    let cache = tempfile::tempdir()?;
    let embedder = Arc::new(ClipEmbedder::new(ClipModelSource::LocalDir {
        dir: model.clone(),
        tokenizer_dir: Some(tokenizer.clone()),
    }));
    let load = Instant::now();
    embedder.load().await?;
    let load = load.elapsed();
    let config = SelectorConfig::default()
        .embedder(embedder.clone() as Arc<dyn Embedder>)
        .cache_dir(cache.path());
    let selector = HierarchicalSelector::new(http.clone(), config);

    let (small, _) = select_once(&selector, &base, N / 2, "bench-warmup-50").await?;
    let mem_50 = peak_memory_mib();
    let (wall, sel) = select_once(&selector, &base, N, "bench-100").await?;
    let mem_100 = peak_memory_mib();
    let direct = direct_embedding(&embedder, &bodies).await?;
    let slowest = slowest_download(&http, &base, N).await?;
    let ratio = wall.as_secs_f64() / (direct + slowest).as_secs_f64();

    println!("\nselection of {N} candidates (full-size CLIP ViT-B/32 test model, qdrant-edge)");
    println!("| measure | value |\n|---|---|");
    println!("| model load (once) | {:.0} ms |", load.as_secs_f64() * 1e3);
    println!(
        "| selection wall time, 50 candidates (warm-up) | {:.0} ms |",
        small.as_secs_f64() * 1e3
    );
    println!(
        "| selection wall time, {N} candidates | {:.0} ms |",
        wall.as_secs_f64() * 1e3
    );
    for s in &sel.stages {
        println!(
            "| stage {:?} ({} -> {}) | {} ms |",
            s.stage, s.input, s.output, s.elapsed_ms
        );
    }
    println!(
        "| full serial decode + embedding of the same {N} images | {:.0} ms |",
        direct.as_secs_f64() * 1e3
    );
    println!(
        "| slowest single download | {:.0} ms |",
        slowest.as_secs_f64() * 1e3
    );
    println!("| ratio wall / (embed + slowest download) | {ratio:.2} (target <= 1.30) |");
    println!("| peak RSS (VmHWM) after the 50-candidate run | {mem_50:.0} MiB |");
    println!("| peak RSS (VmHWM) after the {N}-candidate run | {mem_100:.0} MiB |");
    println!("| dropped | {} |", sel.dropped.len());
    entities(&selector, &server).await
}

/// Candidates `/e/{k}.jpg` for `k` in `from..from + n`: every entity of every run gets
/// images no selection has seen (nothing is reused from the memory).
fn entity_candidates(base: &str, from: u32, n: u32, entity: &str) -> Res<Vec<Candidate>> {
    (from..from + n)
        .map(|k| {
            let url = format!("{base}/e/{k}.jpg").parse()?;
            Ok(Candidate::new(url, "bench", entity))
        })
        .collect()
}

/// 1, 2 and 4 entities of 50 candidates each, selected concurrently.
async fn entities(selector: &HierarchicalSelector, server: &MockServer) -> Res<()> {
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex(r"^/e/\d+\.jpg$"))
        .respond_with(|req: &wiremock::Request| {
            let k: u32 = req
                .url
                .path()
                .trim_start_matches("/e/")
                .trim_end_matches(".jpg")
                .parse()
                .unwrap_or(0);
            ResponseTemplate::new(200)
                .set_body_raw(picture(10_000 + k), "image/jpeg")
                .set_delay(latency(k))
        })
        .mount(server)
        .await;
    const PER: u32 = 50;
    let names = [
        "Graphorn",
        "Hogwarts Legacy protagonist",
        "Niffler",
        "Moon-calf",
    ];
    let mut next = 0;
    let mut rows = Vec::new();
    for count in [1usize, 2, 4] {
        let mut jobs = Vec::new();
        for (i, name) in names.iter().take(count).enumerate() {
            let request = SelectionRequest::new(format!("{name}: a creature"))
                .with_queries(vec![format!("{name} picture")])
                .with_entities(vec![(*name).to_string()])
                .with_run_id(format!("bench-entities-{count}-{i}"));
            let candidates = entity_candidates(&server.uri(), next, PER, name)?;
            next += PER;
            jobs.push((request, candidates));
        }
        let started = Instant::now();
        let results = futures::future::join_all(
            jobs.iter()
                .map(|(request, candidates)| selector.select(request, candidates.clone())),
        )
        .await;
        let wall = started.elapsed();
        for r in results {
            r?;
        }
        rows.push((count, wall));
    }
    let one = rows[0].1.as_secs_f64();
    println!("\none reference per entity: {PER} candidates per entity, selected at once");
    println!("| entities | wall time | vs 1 entity |\n|---|---|---|");
    for (count, wall) in rows {
        println!(
            "| {count} | {:.0} ms | {:.2}x |",
            wall.as_secs_f64() * 1e3,
            wall.as_secs_f64() / one
        );
    }
    Ok(())
}
