//! Reference-memory benchmark: a 50-prompt workload where 20 entities recur two or three
//! times each, 100 candidates a prompt from a local image server with 50-300 ms latency
//! per request. Runs the workload twice — with the memory (qdrant-edge, one process, as a
//! batch runs) and without — and prints downloads, embeddings and selection wall time (all
//! prompts, first sightings, repeats), and the memory's disk use per 10,000 references.
//!
//! Each entity's candidates are its own images plus `BENCH_SHARED` (default 30) drawn from a
//! pool of 60 images common to every entity (stock pictures, logos and wiki images that
//! many searches return); `BENCH_SHARED=0` makes the entities' candidates disjoint.
//! The CLIP model is the tiny test model by default; `BENCH_MODEL=full` uses the full-size
//! ViT-B/32 test model (`python3 fixtures/models/make_clip_onnx.py full`).
//!
//! ```text
//! make bench-memory       # = ORT_DYLIB_PATH=... cargo bench -p iat2i-selectors --bench memory
//! ```

#[path = "common/picture.rs"]
mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use iat2i_retrievers::{Candidate, HttpClient};
use iat2i_selectors::image::DynamicImage;
use iat2i_selectors::memory::{BlobCache, MemoryRecord, normalize_url, point_id};
use iat2i_selectors::{
    ClipEmbedder, ClipModelSource, EdgeStore, Embedder, HierarchicalSelector, MemoryConfig,
    ReferenceMemory, SelectError, SelectionRequest, Selector, SelectorConfig, StoreChoice,
    StorePoint, VectorStore,
};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const ENTITIES: usize = 20;
const CANDIDATES: usize = 100;
const POOL: usize = 60;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A distinct 320x240 JPEG per seed.
fn picture(seed: u64) -> Vec<u8> {
    common::picture(seed, 320, 240)
}

/// Serves `/img/<anything>.jpg` as a picture seeded by the path, after 50-300 ms; counts
/// requests.
#[derive(Clone, Default)]
struct Images {
    requests: Arc<AtomicUsize>,
    cache: Arc<Mutex<HashMap<String, Vec<u8>>>>,
}

impl Respond for Images {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let path = req.url.path().to_string();
        let seed = path.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let body = match self.cache.lock() {
            Ok(mut c) => c.entry(path).or_insert_with(|| picture(seed)).clone(),
            Err(_) => picture(seed),
        };
        let delay = Duration::from_millis(50 + seed % 251);
        ResponseTemplate::new(200)
            .set_body_raw(body, "image/jpeg")
            .set_delay(delay)
    }
}

/// Counts the images embedded.
struct Counting {
    inner: Arc<ClipEmbedder>,
    images: AtomicUsize,
}

#[async_trait]
impl Embedder for Counting {
    async fn embed_images(&self, images: Vec<DynamicImage>) -> Result<Vec<Vec<f32>>, SelectError> {
        self.images.fetch_add(images.len(), Ordering::SeqCst);
        self.inner.embed_images(images).await
    }
    async fn embed_texts(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, SelectError> {
        self.inner.embed_texts(texts).await
    }
    fn model_id(&self) -> String {
        self.inner.model_id()
    }
}

/// The workload: (entity, occurrence) in order — every entity once, then again, then the
/// first ten a third time: 20 + 20 + 10 = 50 prompts.
fn workload() -> Vec<(usize, usize)> {
    let mut w: Vec<(usize, usize)> = (0..ENTITIES).map(|e| (e, 0)).collect();
    w.extend((0..ENTITIES).map(|e| (e, 1)));
    w.extend((0..ENTITIES / 2).map(|e| (e, 2)));
    w
}

fn candidates(base: &str, entity: usize, shared: usize) -> Res<Vec<Candidate>> {
    let mut out = Vec::with_capacity(CANDIDATES);
    for k in 0..CANDIDATES {
        let path = if k < shared {
            format!("pool/{}", (entity * 7 + k * 13) % POOL)
        } else {
            format!("e{entity}/{k}")
        };
        let mut c = Candidate::new(
            format!("{base}/img/{path}.jpg").parse()?,
            "bench",
            format!("entity {entity}"),
        );
        c.rank = k as u32;
        c.fused_score = 1.0 / (1.0 + k as f64);
        out.push(c);
    }
    Ok(out)
}

#[derive(Default, Debug)]
struct Arm {
    downloads: usize,
    embeddings: usize,
    total: Duration,
    first: Duration,
    repeats: Duration,
    n_repeats: usize,
    reused: usize,
    stored: usize,
}

async fn run_arm(memory: bool, model: &ClipModelSource, shared: usize, cache: &Path) -> Res<Arm> {
    let images = Images::default();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(images.clone())
        .mount(&server)
        .await;
    let http = HttpClient::builder()
        .allow_host("127.0.0.1")
        .per_host_per_second(0) // one local host stands in for many web hosts
        .build()?;
    let clip = Arc::new(ClipEmbedder::new(model.clone()).with_intra_threads(2));
    clip.load().await?;
    let counting = Arc::new(Counting {
        inner: clip,
        images: AtomicUsize::new(0),
    });
    let mut config = SelectorConfig::default()
        .embedder(counting.clone() as Arc<dyn Embedder>)
        .cache_dir(cache)
        .store(StoreChoice::Edge);
    if !memory {
        config = config.no_memory();
    }
    let selector = HierarchicalSelector::new(http, config);
    let mut arm = Arm::default();
    for (entity, occurrence) in workload() {
        let request = SelectionRequest::new(format!(
            "a picture of entity {entity}, occurrence {occurrence}"
        ))
        .with_queries(vec![format!("entity {entity}")])
        .with_entities(vec![format!("entity {entity}")])
        .with_run_id(String::new());
        let c = candidates(&server.uri(), entity, shared)?;
        let started = Instant::now();
        let sel = selector.select(&request, c).await?;
        let took = started.elapsed();
        arm.total += took;
        if occurrence == 0 {
            arm.first += took;
        } else {
            arm.repeats += took;
            arm.n_repeats += 1;
        }
        arm.reused += sel.memory.reused;
        arm.stored += sel.memory.stored;
    }
    arm.downloads = images.requests.load(Ordering::SeqCst);
    arm.embeddings = counting.images.load(Ordering::SeqCst);
    Ok(arm)
}

fn du(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_dir() {
        std::fs::read_dir(path)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| du(&e.path()))
            .sum()
    } else {
        meta.len()
    }
}

fn main() -> Res<()> {
    if std::env::var_os("ORT_DYLIB_PATH").is_none() {
        println!("skipped: set ORT_DYLIB_PATH (run `make bench-memory`)");
        return Ok(());
    }
    let tokenizer = root().join("../shared/models/clip-vit-b32-tokenizer");
    let full = std::env::var("BENCH_MODEL").is_ok_and(|m| m == "full");
    let dir = root().join(if full {
        "fixtures/models/full"
    } else {
        "fixtures/models/tiny-clip"
    });
    if !dir.join("vision/model.onnx").is_file() || !tokenizer.join("tokenizer.json").is_file() {
        println!(
            "skipped: needs {} and the CLIP tokenizer in {}",
            dir.display(),
            tokenizer.display()
        );
        return Ok(());
    }
    let shared: usize = std::env::var("BENCH_SHARED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let model = ClipModelSource::LocalDir {
        dir: dir.clone(),
        tokenizer_dir: Some(tokenizer),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let with_cache = tempfile::tempdir()?;
    let without_cache = tempfile::tempdir()?;
    let with = rt.block_on(run_arm(true, &model, shared, with_cache.path()))?;
    let without = rt.block_on(run_arm(false, &model, shared, without_cache.path()))?;

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::INFINITY };
    println!(
        "\nreference memory: 50 prompts, 20 entities recurring 2-3 times, {CANDIDATES} \
         candidates a prompt ({shared} from a shared pool of {POOL}), 50-300 ms per image, \
         model {}",
        dir.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    );
    println!("| measure | without memory | with memory | ratio |\n|---|---|---|---|");
    println!(
        "| downloads | {} | {} | {:.2}x fewer |",
        without.downloads,
        with.downloads,
        ratio(without.downloads as f64, with.downloads as f64)
    );
    println!(
        "| image embeddings | {} | {} | {:.2}x fewer |",
        without.embeddings,
        with.embeddings,
        ratio(without.embeddings as f64, with.embeddings as f64)
    );
    println!(
        "| selection wall time, all 50 prompts | {:.0} ms | {:.0} ms | {:.2}x faster |",
        ms(without.total),
        ms(with.total),
        ratio(ms(without.total), ms(with.total))
    );
    println!(
        "| selection wall time, 20 first sightings | {:.0} ms | {:.0} ms | {:.2}x |",
        ms(without.first),
        ms(with.first),
        ratio(ms(without.first), ms(with.first))
    );
    let per = |d: Duration, n: usize| ms(d) / n.max(1) as f64;
    println!(
        "| selection wall time per repeated prompt ({}) | {:.0} ms | {:.0} ms | {:.2}x faster |",
        with.n_repeats,
        per(without.repeats, without.n_repeats),
        per(with.repeats, with.n_repeats),
        ratio(
            per(without.repeats, without.n_repeats),
            per(with.repeats, with.n_repeats)
        )
    );
    println!("| candidates reused from memory | - | {} | |", with.reused);

    let edge = du(&with_cache.path().join("qdrant-edge"));
    let blobs = du(&with_cache.path().join("blobs"));
    println!(
        "\ndisk use after the workload: {} references; qdrant-edge {:.1} MiB, blobs {:.1} MiB \
         (the bench's 320x240 JPEGs)",
        with.downloads,
        edge as f64 / 1048576.0,
        blobs as f64 / 1048576.0
    );
    let (empty, full) = rt.block_on(disk_per_10k())?;
    println!(
        "qdrant-edge per 10,000 references (512-d ViT-B/32 vectors, web payloads): {:.1} MiB \
         ({:.1} MiB for an empty collection, {:.1} MiB with 10,000); blobs add the stored images' own \
         sizes (the thumbnail when the engine gave one, else the original)",
        (full.saturating_sub(empty)) as f64 / 1048576.0,
        empty as f64 / 1048576.0,
        full as f64 / 1048576.0,
    );
    Ok(())
}

/// Disk use of a qdrant-edge memory collection, empty and with 10,000 references of the
/// full-size model's dimension and realistic web payloads (no images: blobs are apart).
async fn disk_per_10k() -> Res<(u64, u64)> {
    let dir = tempfile::tempdir()?;
    let edge_dir = dir.path().join("qdrant-edge");
    let spec = {
        let store: Arc<dyn VectorStore> = Arc::new(EdgeStore::new(&edge_dir));
        let memory = ReferenceMemory::new(
            store.clone(),
            BlobCache::new(dir.path().join("blobs"), 1 << 30),
            MemoryConfig::default(),
        );
        let spec = memory.spec("clip-vit-b32", 512);
        store.ensure(&spec).await?;
        spec
    };
    let empty = du(&edge_dir);
    {
        let store: Arc<dyn VectorStore> = Arc::new(EdgeStore::new(&edge_dir));
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f32 / (1u64 << 53) as f32 - 0.5
        };
        for batch in 0..100 {
            let mut points = Vec::with_capacity(100);
            for k in 0..100 {
                let i = batch * 100 + k;
                let url: url::Url =
                    format!("https://upload.wikimedia.org/wikipedia/commons/a/a{i}/Image_{i}.jpg")
                        .parse()?;
                let mut r = MemoryRecord::default();
                r.url = normalize_url(&url);
                r.image_url = url.to_string();
                r.thumbnail_url = Some(format!("{url}/320px-thumb.jpg"));
                r.source_page = Some(format!(
                    "https://commons.wikimedia.org/wiki/File:Image_{i}.jpg"
                ));
                r.engine = "wikimedia".into();
                r.source = "web".into();
                r.license = Some("cc-by-sa".into());
                r.license_version = Some("4.0".into());
                r.title = Some(format!("A photograph of entity {} in its habitat", i % 500));
                r.creator = Some("A. Photographer".into());
                r.queries = vec![
                    format!("entity {}", i % 500),
                    format!("entity {} photo", i % 500),
                ];
                r.entities = vec![format!("entity {}", i % 500)];
                r.width = 1600;
                r.height = 1200;
                r.mime = "image/jpeg".into();
                r.content_hash = format!("{:064x}", i);
                r.phash = "AAAAAAAAAAA=".into();
                r.model = "clip-vit-b32".into();
                r.first_seen = 1_790_000_000;
                r.last_seen = 1_790_000_000;
                let vector: Vec<f32> = (0..512).map(|_| next()).collect();
                points.push(StorePoint {
                    id: point_id("clip-vit-b32", &url),
                    vector,
                    payload: r.to_payload(),
                });
            }
            store.upsert(&spec.name, points).await?;
        }
    }
    Ok((empty, du(&edge_dir)))
}
