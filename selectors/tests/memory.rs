//! The reference memory, on qdrant-edge and on a real Qdrant server (`../shared/bin/qdrant`):
//! reuse without download, recall of a planted entity from a fresh run, licence and
//! freshness filters, feedback changing the order, corrupt or missing blobs fetched again,
//! the asset library, the search policy, two workers on one server, and two processes on one
//! edge directory.
//!
//! A transparent colour embedder stands in for CLIP (no ONNX Runtime needed): an image
//! embeds as its mean colour, the texts "red", "green", "blue" as that colour.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use iat2i_retrievers::{Candidate, License, LicensePolicy};
use iat2i_selectors::image::{DynamicImage, RgbImage};
use iat2i_selectors::memory::MemoryConfig;
use iat2i_selectors::{
    EdgeStore, Embedder, HierarchicalSelector, SearchPolicy, SelectError, Selection,
    SelectionRequest, Selector, SelectorConfig, StoreChoice, VectorStore,
};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Images embed as their mean colour; "red", "green", "blue" (or a text containing one of
/// them) as that colour. Counts the images it embeds.
#[derive(Default)]
struct ColourEmbedder {
    images: AtomicUsize,
}

#[async_trait]
impl Embedder for ColourEmbedder {
    async fn embed_images(&self, images: Vec<DynamicImage>) -> Result<Vec<Vec<f32>>, SelectError> {
        self.images.fetch_add(images.len(), Ordering::SeqCst);
        Ok(images
            .iter()
            .map(|img| {
                let rgb = img.to_rgb8();
                let n = (rgb.width() * rgb.height()) as f32;
                let mut sum = [0f32; 3];
                for p in rgb.pixels() {
                    for (s, v) in sum.iter_mut().zip(p.0) {
                        *s += f32::from(v) / 255.0;
                    }
                }
                sum.iter().map(|s| s / n).collect()
            })
            .collect())
    }
    async fn embed_texts(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, SelectError> {
        Ok(texts
            .iter()
            .map(|t| {
                if t.contains("red") {
                    vec![1.0, 0.1, 0.1]
                } else if t.contains("green") {
                    vec![0.1, 1.0, 0.1]
                } else if t.contains("blue") {
                    vec![0.1, 0.1, 1.0]
                } else {
                    vec![1.0, 1.0, 1.0]
                }
            })
            .collect())
    }
    fn model_id(&self) -> String {
        "colour".into()
    }
}

/// A textured picture tinted towards one channel; `mix` of the other channels kept.
fn tinted(seed: u32, channel: usize, mix: u8) -> Vec<u8> {
    let base = scene(seed, 200, 160);
    png(RgbImage::from_fn(200, 160, |x, y| {
        let mut p = *base.get_pixel(x, y);
        for c in 0..3 {
            if c != channel {
                p.0[c] = (u16::from(p.0[c]) * u16::from(mix) / 255) as u8;
            } else {
                p.0[c] = p.0[c].max(200);
            }
        }
        p
    }))
}

/// Serves `/img/<name>.png` for every name in `images`, logging requests.
struct Images(Vec<(String, Vec<u8>)>);

impl Respond for Images {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let name = req
            .url
            .path()
            .trim_start_matches("/img/")
            .trim_end_matches(".png");
        match self.0.iter().find(|(n, _)| n == name) {
            Some((_, body)) => ResponseTemplate::new(200).set_body_raw(body.clone(), "image/png"),
            None => ResponseTemplate::new(404),
        }
    }
}

/// The image server: red0..red3 (red1 slightly less red), green0, blue0.
async fn image_server() -> MockServer {
    let server = MockServer::start().await;
    let images = vec![
        ("red0".to_string(), tinted(1, 0, 40)),
        ("red1".to_string(), tinted(2, 0, 60)),
        ("red2".to_string(), tinted(3, 0, 90)),
        ("green0".to_string(), tinted(4, 1, 40)),
        ("blue0".to_string(), tinted(5, 2, 40)),
    ];
    Mock::given(method("GET"))
        .respond_with(Images(images))
        .mount(&server)
        .await;
    server
}

async fn requests(server: &MockServer) -> usize {
    server.received_requests().await.map_or(0, |r| r.len())
}

fn cands(server: &MockServer, names: &[&str], query: &str) -> Vec<Candidate> {
    names
        .iter()
        .map(|n| {
            let mut c = candidate(&format!("{}/img/{n}.png", server.uri()), query);
            c.source_page = Some(format!("https://wiki.example/{n}").parse().unwrap());
            c.title = Some(format!("{n} picture"));
            c
        })
        .collect()
}

fn request(prompt: &str, entities: &[&str]) -> SelectionRequest {
    SelectionRequest::new(prompt)
        .with_queries(vec![])
        .with_entities(entities.iter().map(|e| e.to_string()).collect())
        .with_run_id(String::new())
}

/// Where a test's memory lives: qdrant-edge in a temp dir, or a real Qdrant server.
enum Backend {
    Edge,
    #[cfg(feature = "qdrant-server")]
    Server,
}

/// Fields drop in order: the store (which flushes qdrant-edge on drop) before its directory.
struct Env {
    store: Arc<dyn VectorStore>,
    embedder: Arc<ColourEmbedder>,
    #[cfg(feature = "qdrant-server")]
    _server: Option<qdrant::QdrantServer>,
    cache: tempfile::TempDir,
}

impl Env {
    fn new(backend: Backend) -> Option<Env> {
        let cache = tempfile::tempdir().unwrap();
        let (store, _server): (Arc<dyn VectorStore>, _) = match backend {
            Backend::Edge => (
                Arc::new(EdgeStore::new(cache.path().join("qdrant-edge"))),
                None,
            ),
            #[cfg(feature = "qdrant-server")]
            Backend::Server => {
                let server = qdrant::QdrantServer::start()?;
                let store = iat2i_selectors::QdrantStore::new(&server.url(), None).unwrap();
                (Arc::new(store), Some(server))
            }
        };
        Some(Env {
            cache,
            store,
            embedder: Arc::default(),
            #[cfg(feature = "qdrant-server")]
            _server,
        })
    }

    fn config(&self) -> SelectorConfig {
        SelectorConfig::default()
            .embedder(self.embedder.clone() as Arc<dyn Embedder>)
            .cache_dir(self.cache.path())
            .store_instance(self.store.clone())
            .top_k(3)
    }

    /// A fresh selector (as a new run would build) on the same memory.
    fn selector(&self, config: SelectorConfig) -> HierarchicalSelector {
        HierarchicalSelector::new(http(), config)
    }

    fn embedded(&self) -> usize {
        self.embedder.images.load(Ordering::SeqCst)
    }
}

async fn select(
    sel: &HierarchicalSelector,
    req: &SelectionRequest,
    c: Vec<Candidate>,
) -> Selection {
    sel.select(req, c).await.unwrap()
}

fn best_name(s: &Selection) -> String {
    s.best
        .candidate
        .image_url
        .path()
        .trim_start_matches("/img/")
        .trim_end_matches(".png")
        .to_string()
}

macro_rules! on_both {
    ($edge:ident, $server:ident, $body:ident) => {
        #[tokio::test]
        async fn $edge() {
            $body(Env::new(Backend::Edge).unwrap()).await;
        }
        #[cfg(feature = "qdrant-server")]
        #[tokio::test]
        async fn $server() {
            if let Some(env) = Env::new(Backend::Server) {
                $body(env).await;
            }
        }
    };
}

async fn reuse_without_download(env: Env) {
    let server = image_server().await;
    let names = ["red0", "red1", "green0", "blue0"];
    let req = request("red", &["fox"]);
    let first = select(
        &env.selector(env.config()),
        &req,
        cands(&server, &names, "red fox"),
    )
    .await;
    assert_eq!(requests(&server).await, 4);
    assert_eq!(env.embedded(), 4);
    assert_eq!(first.memory.stored, 4);
    assert_eq!(first.memory.reused, 0);
    assert!(first.memory.degraded.is_none(), "{:?}", first.memory);

    let second = select(
        &env.selector(env.config()),
        &req,
        cands(&server, &names, "red fox"),
    )
    .await;
    assert_eq!(
        requests(&server).await,
        4,
        "the request log shows no second fetch"
    );
    assert_eq!(env.embedded(), 4, "no image embedded again");
    assert_eq!(second.memory.reused, 4);
    assert_eq!(best_name(&second), best_name(&first));
    assert_eq!(
        second.best.bytes, first.best.bytes,
        "the cached bytes are the reference"
    );
    assert_eq!(second.ranked.len(), first.ranked.len());
}
on_both!(
    edge_reuses_without_download,
    server_reuses_without_download,
    reuse_without_download
);

async fn recall_planted_entity(env: Env) {
    let server = image_server().await;
    // Plant: the Graphorn's images, found for its entity.
    let req = request("a red graphorn", &["Graphorn"]);
    select(
        &env.selector(env.config()),
        &req,
        cands(&server, &["red0", "green0"], "graphorn"),
    )
    .await;
    let before = requests(&server).await;

    // A fresh run that found nothing on the web recalls them, with their provenance.
    let sel = env.selector(env.config());
    let recalled = select(&sel, &request("graphorn at dusk", &["graphorn"]), vec![]).await;
    assert_eq!(
        requests(&server).await,
        before,
        "recalled from memory, not downloaded"
    );
    assert!(recalled.memory.recalled >= 2, "{:?}", recalled.memory);
    let c = &recalled.best.candidate;
    assert!(c.engine.starts_with("memory/"), "{}", c.engine);
    assert_eq!(
        c.source_page.as_ref().map(|u| u.as_str()),
        Some(format!("https://wiki.example/{}", best_name(&recalled)).as_str())
    );
    assert!(c.title.as_deref().is_some_and(|t| t.ends_with("picture")));

    // Recall by the prompt's vector alone (no entity): the red image for "red".
    let by_text = select(&sel, &request("something red", &[]), vec![]).await;
    assert_eq!(best_name(&by_text), "red0");
}
on_both!(
    edge_recalls_a_planted_entity,
    server_recalls_a_planted_entity,
    recall_planted_entity
);

async fn licence_and_freshness_filters(env: Env) {
    let server = image_server().await;
    let mut planted = cands(&server, &["red0", "red1"], "fox");
    planted[1].license = Some(License {
        code: "cc-by".into(),
        version: Some("4.0".into()),
        url: None,
    });
    let req = request("red fox", &["fox"]);
    select(&env.selector(env.config()), &req, planted).await;

    // Only the openly licensed image is recalled for a user who publishes.
    let mut open = env.config();
    open.prefilter.license_policy = LicensePolicy::CommercialAndDerivatives;
    let s = select(&env.selector(open), &req, vec![]).await;
    assert_eq!(s.memory.recalled, 1);
    assert_eq!(best_name(&s), "red1");
    let lic = s.best.candidate.license.as_ref().unwrap();
    assert_eq!(
        (lic.code.as_str(), lic.version.as_deref()),
        ("cc-by", Some("4.0"))
    );

    // Past the TTL nothing is recalled, and a stale image is fetched and embedded again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut memory = MemoryConfig::default();
    memory.ttl = Duration::ZERO;
    let stale = env.config().memory(memory);
    let err = env
        .selector(stale.clone())
        .select(&req, vec![])
        .await
        .unwrap_err();
    assert!(matches!(err, SelectError::NoCandidates { .. }), "{err}");
    let before = requests(&server).await;
    let s = select(&env.selector(stale), &req, cands(&server, &["red0"], "fox")).await;
    assert_eq!(s.memory.reused, 0);
    assert_eq!(
        requests(&server).await,
        before + 1,
        "stale: downloaded again"
    );
}
on_both!(
    edge_filters_by_licence_and_freshness,
    server_filters_by_licence_and_freshness,
    licence_and_freshness_filters
);

async fn feedback_changes_the_order(env: Env) {
    let server = image_server().await;
    let req = request("red", &[]);
    let names = ["red0", "red1"];
    let sel = env.selector(env.config());
    let first = select(&sel, &req, cands(&server, &names, "red")).await;
    assert_eq!(best_name(&first), "red0", "the redder image wins at first");
    let runner_up = first.alternates.first().cloned().unwrap();
    assert_eq!(runner_up.candidate.image_url.path(), "/img/red1.png");

    // The judge rejects the first reference and accepts the other.
    sel.record_verdict(&first.best, false).await;
    sel.record_verdict(&runner_up, true).await;
    let mut strong = MemoryConfig::default();
    strong.feedback_weight = 0.5;
    let next = select(
        &env.selector(env.config().memory(strong)),
        &req,
        cands(&server, &names, "red"),
    )
    .await;
    assert_eq!(
        best_name(&next),
        "red1",
        "accepted ranks higher, rejected lower"
    );
    assert!(next.best.scores.feedback.unwrap() > 0.0);
    let stats = env
        .selector(env.config())
        .memory()
        .await
        .unwrap()
        .unwrap()
        .stats()
        .await
        .unwrap();
    assert_eq!((stats.accepted, stats.rejected), (1, 1));
}
on_both!(
    edge_feedback_changes_the_order,
    server_feedback_changes_the_order,
    feedback_changes_the_order
);

async fn corrupt_or_missing_blob_is_fetched_again(env: Env) {
    let server = image_server().await;
    let names = ["red0", "green0", "blue0"];
    let req = request("red", &[]);
    select(
        &env.selector(env.config()),
        &req,
        cands(&server, &names, "q"),
    )
    .await;
    let blobs = env.cache.path().join("blobs");
    let mut files: Vec<_> = walk(&blobs);
    files.sort();
    assert_eq!(files.len(), 3);
    std::fs::write(&files[0], b"not the image any more").unwrap();
    std::fs::remove_file(&files[1]).unwrap();
    let s = select(
        &env.selector(env.config()),
        &req,
        cands(&server, &names, "q"),
    )
    .await;
    assert_eq!(
        requests(&server).await,
        5,
        "exactly the two broken blobs fetched again"
    );
    assert_eq!(s.memory.reused, 1);
    assert_eq!(s.ranked.len(), 3);
    assert_eq!(walk(&blobs).len(), 3, "the cache is whole again");
}
on_both!(
    edge_refetches_a_corrupt_or_missing_blob,
    server_refetches_a_corrupt_or_missing_blob,
    corrupt_or_missing_blob_is_fetched_again
);

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else if !e.file_name().to_string_lossy().starts_with('.') {
            out.push(e.path());
        }
    }
    out
}

async fn library_and_policy(env: Env) {
    let lib = tempfile::tempdir().unwrap();
    std::fs::write(lib.path().join("mascot.png"), tinted(7, 2, 30)).unwrap();
    std::fs::write(lib.path().join("mascot.txt"), "Acme's blue fox mascot\n").unwrap();
    std::fs::write(lib.path().join("logo.png"), tinted(8, 1, 30)).unwrap();
    std::fs::write(
        lib.path().join("logo.json"),
        r#"{"title": "Acme logo", "entities": ["Acme"], "creator": "Acme design"}"#,
    )
    .unwrap();
    std::fs::write(lib.path().join("notes.png"), b"not a picture").unwrap();
    let sel = env.selector(env.config());
    let memory = sel.memory().await.unwrap().unwrap();
    let req = request("acme mascot in blue", &["acme"]);
    let mut policy = MemoryConfig::default();
    policy.policy = SearchPolicy::WhenFewerThan(1);
    let asks = env.selector(env.config().memory(policy.clone()));
    assert!(
        asks.needs_web_search(&req).await,
        "empty memory: search the web"
    );

    let report = memory
        .index_folder(lib.path(), env.embedder.clone(), &Default::default())
        .await
        .unwrap();
    assert_eq!(report.indexed, 2);
    assert_eq!(report.skipped.len(), 1, "{:?}", report.skipped);
    assert!(!asks.needs_web_search(&req).await, "the library answers");
    policy.policy = SearchPolicy::MemoryOnly;
    assert!(
        !env.selector(env.config().memory(policy))
            .needs_web_search(&req)
            .await
    );
    assert!(
        sel.needs_web_search(&req).await,
        "the default policy always searches"
    );

    let s = select(&sel, &req, vec![]).await;
    assert_eq!(s.best.candidate.engine, "library");
    assert_eq!(
        s.best.candidate.title.as_deref(),
        Some("Acme's blue fox mascot")
    );
    let stats = memory.stats().await.unwrap();
    assert_eq!(stats.by_source.get("library"), Some(&2));

    // Prune by source removes the library and its bytes.
    let removed = memory
        .prune(&iat2i_selectors::memory::PruneRule {
            source: Some("library".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(removed, 2);
    assert_eq!(memory.stats().await.unwrap().blobs, 0);
}
on_both!(
    edge_indexes_a_library_and_follows_the_policy,
    server_indexes_a_library_and_follows_the_policy,
    library_and_policy
);

#[tokio::test]
async fn the_memory_can_be_turned_off() {
    let env = Env::new(Backend::Edge).unwrap();
    let server = image_server().await;
    let req = request("red", &[]);
    for _ in 0..2 {
        let s = select(
            &env.selector(env.config().no_memory()),
            &req,
            cands(&server, &["red0"], "q"),
        )
        .await;
        assert_eq!((s.memory.stored, s.memory.reused), (0, 0));
        assert!(s.memory.store.is_none());
    }
    assert_eq!(requests(&server).await, 2, "every run downloads");
    assert!(!env.cache.path().join("blobs").exists());
}

#[cfg(feature = "qdrant-server")]
#[tokio::test]
async fn two_workers_on_one_server_store_each_image_once() {
    let Some(env) = Env::new(Backend::Server) else {
        return;
    };
    let server = image_server().await;
    let names = ["red0", "red1", "red2", "green0", "blue0"];
    let req = request("red", &["fox"]);
    // Two workers, each with its own client and cache directory, write at once.
    let other_cache = tempfile::tempdir().unwrap();
    let url = env._server.as_ref().unwrap().url();
    let other: Arc<dyn VectorStore> =
        Arc::new(iat2i_selectors::QdrantStore::new(&url, None).unwrap());
    let a = env.selector(env.config());
    let b = env.selector(
        env.config()
            .cache_dir(other_cache.path())
            .store_instance(other),
    );
    let (x, y) = tokio::join!(
        a.select(&req, cands(&server, &names, "red fox")),
        b.select(&req, cands(&server, &names, "red fox"))
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(best_name(&x), best_name(&y));
    let collection = x.memory.collection.clone().unwrap();
    let n = env
        .store
        .count(&collection, &iat2i_selectors::StoreFilter::all())
        .await
        .unwrap();
    assert_eq!(n, 5, "five images, stored once each");
    let stats = a.memory().await.unwrap().unwrap().stats().await.unwrap();
    assert_eq!(stats.chosen, 2, "both workers' choices are counted");
}

/// Two workers (each its own client) record verdicts on the same image at once, on a record
/// written before the tally existed (plain counters): every verdict survives, and the old
/// counts still add up.
#[cfg(feature = "qdrant-server")]
#[tokio::test]
async fn concurrent_verdicts_on_one_server_all_survive() {
    use iat2i_selectors::memory::{BlobCache, MemoryRecord, ReferenceMemory, point_id};
    use iat2i_selectors::store::CollectionSpec;
    let Some(env) = Env::new(Backend::Server) else {
        return;
    };
    let url = env._server.as_ref().unwrap().url();
    let worker = |dir: &std::path::Path| {
        let store = Arc::new(iat2i_selectors::QdrantStore::new(&url, None).unwrap());
        ReferenceMemory::new(store, BlobCache::new(dir, 1 << 20), MemoryConfig::default())
    };
    let (a, b) = (
        worker(env.cache.path()),
        worker(&env.cache.path().join("b")),
    );
    let spec: CollectionSpec = a.spec("colour", 3);
    let image = url::Url::parse("https://img.example/fox.png").unwrap();
    let mut old = MemoryRecord::default();
    (old.url, old.image_url) = (image.to_string(), image.to_string());
    (old.chosen, old.accepted, old.rejected) = (4, 3, 1);
    let id = point_id("colour", &image);
    env.store.ensure(&spec).await.unwrap();
    let point = iat2i_selectors::StorePoint {
        id,
        vector: vec![1.0, 0.0, 0.0],
        payload: old.to_payload(),
    };
    env.store.upsert(&spec.name, vec![point]).await.unwrap();

    const EACH: usize = 12;
    let run = |m: ReferenceMemory, accepted: bool| {
        let (name, image) = (spec.name.clone(), image.clone());
        async move {
            let calls = (0..EACH).map(|_| m.verdict(&name, "colour", &image, accepted));
            futures::future::join_all(calls).await
        }
    };
    let (xs, ys) = tokio::join!(run(a.clone(), true), run(b, false));
    assert!(xs.into_iter().chain(ys).all(|r| r.unwrap()));
    let after = a.get(&spec.name, &[id]).await.unwrap().remove(&id).unwrap();
    assert_eq!(after.record.accepted, 3 + EACH as u64, "no acceptance lost");
    assert_eq!(after.record.rejected, 1 + EACH as u64, "no rejection lost");
    assert_eq!(after.record.chosen, 4, "the old counter still reads");
    let ghost = url::Url::parse("https://img.example/never-seen.png").unwrap();
    assert!(!a.verdict(&spec.name, "colour", &ghost, true).await.unwrap());
}

/// Two processes on one edge directory: this test holds the memory, and a child process
/// (this test binary again, running the ignored test below) must still select a reference
/// and report the locked memory — or fail when told the memory is required.
#[tokio::test]
async fn a_second_process_on_one_edge_directory_selects_and_reports_the_lock() {
    let cache = tempfile::tempdir().unwrap();
    let server = image_server().await;
    let embedder: Arc<dyn Embedder> = Arc::new(ColourEmbedder::default());
    let config = SelectorConfig::default()
        .embedder(embedder)
        .cache_dir(cache.path())
        .store(StoreChoice::Edge);
    let sel = HierarchicalSelector::new(http(), config);
    let first = select(
        &sel,
        &request("red", &[]),
        cands(&server, &["red0", "green0"], "q"),
    )
    .await;
    assert_eq!(first.memory.store.as_deref(), Some("qdrant-edge"));
    assert!(first.memory.degraded.is_none());

    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "second_process_child",
            "--ignored",
            "--nocapture",
        ])
        .env("IAT2I_TEST_CACHE", cache.path())
        .env("IAT2I_TEST_IMAGES", server.uri())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("CHILD-SELECTED red0"), "{stdout}");
    assert!(stdout.contains("locked by another process"), "{stdout}");
    assert!(
        stdout.contains("QDRANT_URL") && stdout.contains("another cache directory"),
        "{stdout}"
    );
    assert!(stdout.contains("CHILD-REQUIRED-ERROR"), "{stdout}");
    drop(sel);
}

#[tokio::test]
#[ignore = "run by a_second_process_on_one_edge_directory_selects_and_reports_the_lock"]
async fn second_process_child() {
    let (Ok(cache), Ok(images)) = (
        std::env::var("IAT2I_TEST_CACHE"),
        std::env::var("IAT2I_TEST_IMAGES"),
    ) else {
        panic!("run by the parent test only");
    };
    let embedder: Arc<dyn Embedder> = Arc::new(ColourEmbedder::default());
    let config = SelectorConfig::default()
        .embedder(embedder)
        .cache_dir(&cache)
        .store(StoreChoice::Edge);
    let make = |names: &[&str]| -> Vec<Candidate> {
        names
            .iter()
            .map(|n| candidate(&format!("{images}/img/{n}.png"), "q"))
            .collect()
    };
    let sel = HierarchicalSelector::new(http(), config.clone());
    let s = sel
        .select(&request("red", &[]), make(&["red0", "green0"]))
        .await
        .unwrap();
    println!("CHILD-SELECTED {}", best_name(&s));
    println!("CHILD-DEGRADED {}", s.memory.degraded.unwrap_or_default());
    let strict = HierarchicalSelector::new(http(), config.require_memory(true));
    match strict.select(&request("red", &[]), make(&["red0"])).await {
        Err(SelectError::StoreLocked { .. }) => println!("CHILD-REQUIRED-ERROR"),
        other => println!("CHILD-UNEXPECTED {:?}", other.map(|s| s.memory)),
    }
}

#[cfg(feature = "qdrant-server")]
#[tokio::test]
async fn an_unreachable_server_degrades_the_memory_or_fails_when_required() {
    let env = Env::new(Backend::Edge).unwrap();
    let server = image_server().await;
    // A loopback port nothing listens on (bound, read back, released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = Arc::new(
        iat2i_selectors::QdrantStore::new(&format!("http://127.0.0.1:{port}"), None).unwrap(),
    );
    let config = || env.config().store_instance(down.clone());
    let req = request("red", &[]);

    let s = select(
        &env.selector(config()),
        &req,
        cands(&server, &["red0"], "q"),
    )
    .await;
    assert_eq!(best_name(&s), "red0", "the reference is still selected");
    let why = s.memory.degraded.as_deref().unwrap_or_default();
    assert!(why.contains("unavailable"), "{why}");
    assert_eq!((s.memory.stored, s.memory.reused), (0, 0));

    let err = env
        .selector(config().require_memory(true))
        .select(&req, cands(&server, &["red0"], "q"))
        .await
        .unwrap_err();
    assert!(matches!(err, SelectError::Store(_)), "{err:?}");
}
