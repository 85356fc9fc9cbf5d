//! Selection logic with a transparent colour embedder (no ONNX Runtime needed): ranking
//! follows the prompt, the judge hook picks or falls back, total failure lists every drop,
//! and constructing a selector touches nothing.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use common::*;
use iat2i_retrievers::Candidate;
use iat2i_selectors::image::{DynamicImage, RgbImage};
use iat2i_selectors::{
    CandidateJudge, Embedder, HierarchicalSelector, JudgeCandidate, JudgePick, MemoryStore,
    SelectError, SelectionRequest, Selector, SelectorConfig, Stage,
};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Images embed as their mean colour; the texts "red", "green", "blue" as that colour.
struct ColourEmbedder {
    image_calls: AtomicUsize,
}

#[async_trait]
impl Embedder for ColourEmbedder {
    async fn embed_images(&self, images: Vec<DynamicImage>) -> Result<Vec<Vec<f32>>, SelectError> {
        self.image_calls.fetch_add(1, Ordering::SeqCst);
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
            .map(|t| match t.as_str() {
                "red" => vec![1.0, 0.1, 0.1],
                "green" => vec![0.1, 1.0, 0.1],
                "blue" => vec![0.1, 0.1, 1.0],
                _ => vec![1.0, 1.0, 1.0],
            })
            .collect())
    }
}

/// A textured picture tinted towards one channel (texture keeps perceptual hashes apart).
fn tinted(seed: u32, channel: usize) -> Vec<u8> {
    let base = scene(seed, 200, 160);
    png(RgbImage::from_fn(200, 160, |x, y| {
        let mut p = *base.get_pixel(x, y);
        for c in 0..3 {
            if c != channel {
                p.0[c] /= 5;
            }
        }
        p
    }))
}

async fn colours(server: &MockServer) -> Vec<Candidate> {
    let mut out = Vec::new();
    for (i, (name, ch)) in [("green", 1), ("red", 0), ("blue", 2)]
        .into_iter()
        .enumerate()
    {
        Mock::given(method("GET"))
            .and(path(format!("/{name}.png")))
            .respond_with(
                ResponseTemplate::new(200).set_body_raw(tinted(i as u32 + 1, ch), "image/png"),
            )
            .mount(server)
            .await;
        out.push(candidate(&format!("{}/{name}.png", server.uri()), "red"));
    }
    out
}

fn selector(embedder: Arc<ColourEmbedder>) -> HierarchicalSelector {
    let config = SelectorConfig::default()
        .embedder(embedder)
        .store_instance(Arc::new(MemoryStore::new()));
    HierarchicalSelector::new(http(), config)
}

fn request() -> SelectionRequest {
    SelectionRequest::new("red")
        .with_queries(vec!["red".into()])
        .with_run_id("logic")
}

fn name(c: &Candidate) -> &str {
    c.image_url.path()
}

#[tokio::test]
async fn the_candidate_closest_to_the_prompt_wins() {
    let server = MockServer::start().await;
    let embedder = Arc::new(ColourEmbedder {
        image_calls: AtomicUsize::new(0),
    });
    let sel = selector(embedder.clone())
        .select(&request(), colours(&server).await)
        .await
        .unwrap();
    assert_eq!(name(&sel.best.candidate), "/red.png");
    assert_eq!(sel.best.mime, "image/png");
    assert!(!sel.best.bytes.is_empty());
    let order: Vec<&str> = sel.ranked.iter().map(|r| name(&r.candidate)).collect();
    assert_eq!(order[0], "/red.png");
    assert_eq!(sel.alternates.len(), 2);
    assert!(embedder.image_calls.load(Ordering::SeqCst) >= 1);
}

struct PickSecond;
#[async_trait]
impl CandidateJudge for PickSecond {
    async fn pick(
        &self,
        _: &SelectionRequest,
        options: &[JudgeCandidate],
    ) -> Result<JudgePick, SelectError> {
        assert!(
            options
                .iter()
                .all(|o| o.mime == "image/png" && !o.image.is_empty())
        );
        Ok(JudgePick {
            index: 1,
            reason: "shows the fur best".into(),
        })
    }
}

struct Broken;
#[async_trait]
impl CandidateJudge for Broken {
    async fn pick(
        &self,
        _: &SelectionRequest,
        _: &[JudgeCandidate],
    ) -> Result<JudgePick, SelectError> {
        Err(SelectError::Judge("model endpoint returned 503".into()))
    }
}

#[tokio::test]
async fn the_judge_picks_and_a_failing_judge_falls_back_to_clip() {
    let server = MockServer::start().await;
    let embedder = Arc::new(ColourEmbedder {
        image_calls: AtomicUsize::new(0),
    });
    let cands = colours(&server).await;

    let judged = selector(embedder.clone()).with_judge(Arc::new(PickSecond));
    let sel = judged.select(&request(), cands.clone()).await.unwrap();
    assert_ne!(
        name(&sel.best.candidate),
        "/red.png",
        "the judge's pick, not CLIP's top-1"
    );
    assert_eq!(sel.judge_reason.as_deref(), Some("shows the fur best"));
    assert!(
        sel.alternates
            .iter()
            .any(|a| name(&a.candidate) == "/red.png")
    );
    assert_eq!(sel.stages.last().map(|s| s.stage), Some(Stage::Judge));

    let broken = selector(embedder).with_judge(Arc::new(Broken));
    let sel = broken.select(&request(), cands).await.unwrap();
    assert_eq!(name(&sel.best.candidate), "/red.png");
    let reason = sel.judge_reason.unwrap();
    assert!(
        reason.contains("503") && reason.contains("fell back"),
        "{reason}"
    );
}

#[tokio::test]
async fn when_everything_fails_the_error_lists_every_drop() {
    let server = MockServer::start().await; // answers 404 to everything
    let cands: Vec<Candidate> = ["a.png", "b.jpg", "c.webp"]
        .iter()
        .map(|f| candidate(&format!("{}/{f}", server.uri()), "red"))
        .collect();
    let embedder = Arc::new(ColourEmbedder {
        image_calls: AtomicUsize::new(0),
    });
    let err = selector(embedder.clone())
        .select(&request(), cands)
        .await
        .unwrap_err();
    let SelectError::NoCandidates { dropped } = err else {
        panic!("wrong error: {err}");
    };
    assert_eq!(dropped.len(), 3);
    assert!(
        dropped
            .iter()
            .all(|d| d.stage == Stage::Fetch && d.reason.contains("404"))
    );
    assert_eq!(embedder.image_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn constructing_a_selector_loads_and_opens_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("never-created");
    let selector = HierarchicalSelector::new(http(), SelectorConfig::default().cache_dir(&cache));
    let _clone = selector.clone();
    assert!(!cache.exists(), "no store opened by new()");
    // A request with nothing to rank against is refused before any work.
    let err = selector
        .select(&SelectionRequest::default(), vec![])
        .await
        .unwrap_err();
    assert!(matches!(err, SelectError::Config(_)), "{err}");
    assert!(!cache.exists());
}

#[tokio::test]
async fn a_local_asset_folder_is_selected_from_once_allowed() {
    use iat2i_retrievers::engines::LocalFolder;
    use iat2i_retrievers::{ImageSearch, SearchQuery};
    let lib = tempfile::tempdir().unwrap();
    for (name, ch) in [("mascot-red", 0), ("mascot-blue", 2)] {
        std::fs::write(
            lib.path().join(format!("{name}.png")),
            tinted(3 + ch as u32, ch),
        )
        .unwrap();
    }
    let found = LocalFolder::new(lib.path())
        .search("mascot", &SearchQuery::default())
        .await
        .unwrap();
    assert_eq!(found.len(), 2);
    assert!(found.iter().all(|c| c.image_url.scheme() == "file"));
    let embedder = Arc::new(ColourEmbedder {
        image_calls: AtomicUsize::new(0),
    });
    let config = |allowed: bool| {
        let c = SelectorConfig::default()
            .embedder(embedder.clone())
            .store_instance(Arc::new(MemoryStore::new()));
        if allowed {
            c.allow_local_dir(lib.path())
        } else {
            c
        }
    };

    // Not allowed: every file:// candidate is dropped at fetch, saying how to allow it.
    let refused = HierarchicalSelector::new(http(), config(false))
        .select(&request(), found.clone())
        .await
        .unwrap_err();
    let SelectError::NoCandidates { dropped } = refused else {
        panic!("expected NoCandidates, got {refused:?}");
    };
    assert!(
        dropped
            .iter()
            .all(|d| d.stage == Stage::Fetch && d.reason.contains("allow_local_dir"))
    );

    // Allowed: the red mascot wins for the prompt "red".
    let sel = HierarchicalSelector::new(http(), config(true))
        .select(&request(), found)
        .await
        .unwrap();
    assert!(name(&sel.best.candidate).ends_with("/mascot-red.png"));
    assert_eq!(sel.best.mime, "image/png");
}
