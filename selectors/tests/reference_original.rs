//! The generator's reference is the original image, not the thumbnail ranking looked at;
//! a failing embedding batch or a decode over budget drops only its own candidates.
//! A transparent colour embedder stands in for CLIP (no ONNX Runtime needed).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use common::*;
use iat2i_retrievers::Candidate;
use iat2i_selectors::image::DynamicImage;
use iat2i_selectors::{
    Embedder, HierarchicalSelector, MemoryStore, ReferenceSource, SelectError, SelectionRequest,
    Selector, SelectorConfig, Stage,
};
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Images embed as their mean colour; every text as grey. With `panic_on_call`, that image
/// call panics (1-based).
#[derive(Default)]
struct MeanColour {
    calls: AtomicUsize,
    panic_on_call: usize,
    /// How many images the call that panicked held.
    lost: AtomicUsize,
}

#[async_trait]
impl Embedder for MeanColour {
    async fn embed_images(&self, images: Vec<DynamicImage>) -> Result<Vec<Vec<f32>>, SelectError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if call == self.panic_on_call {
            self.lost.store(images.len(), Ordering::SeqCst);
            panic!("the model crashed on batch {call}");
        }
        Ok(images
            .iter()
            .map(|img| {
                let rgb = img.to_rgb8();
                let n = (rgb.width() * rgb.height()).max(1) as f32;
                let mut sum = [0f32; 3];
                for p in rgb.pixels() {
                    for (s, v) in sum.iter_mut().zip(p.0) {
                        *s += f32::from(v) / 255.0;
                    }
                }
                sum.iter().map(|s| s / n + 0.01).collect()
            })
            .collect())
    }
    async fn embed_texts(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, SelectError> {
        Ok(texts.iter().map(|_| vec![1.0, 1.0, 1.0]).collect())
    }
}

fn config(embedder: Arc<MeanColour>) -> SelectorConfig {
    SelectorConfig::default()
        .embedder(embedder)
        .store_instance(Arc::new(MemoryStore::new()))
}

fn request() -> SelectionRequest {
    SelectionRequest::new("a pattern")
        .with_queries(vec!["pattern".into()])
        .with_run_id("original-test")
}

async fn serve(server: &MockServer, name: &str, status: u16, body: Vec<u8>) -> Url {
    Mock::given(method("GET"))
        .and(path(format!("/{name}")))
        .respond_with(ResponseTemplate::new(status).set_body_raw(body, "image/png"))
        .mount(server)
        .await;
    Url::parse(&format!("{}/{name}", server.uri())).unwrap()
}

/// A candidate with a 160x120 thumbnail and a 960x720 original of the same scene.
async fn with_thumbnail(
    server: &MockServer,
    id: &str,
    original_status: u16,
) -> (Candidate, Vec<u8>, Vec<u8>) {
    let thumb = png(scene(3, 160, 120));
    let full = png(scene(3, 960, 720));
    let t = serve(server, &format!("thumb/{id}.png"), 200, thumb.clone()).await;
    let o = serve(
        server,
        &format!("full/{id}.png"),
        original_status,
        full.clone(),
    )
    .await;
    let mut c = Candidate::new(o, "test", "pattern");
    c.thumbnail_url = Some(t);
    (c, thumb, full)
}

#[tokio::test]
async fn the_generator_gets_the_original_and_the_thumbnail_only_when_it_fails() {
    let server = MockServer::start().await;
    let selector = HierarchicalSelector::new(http(), config(Arc::default()));

    let (c, _thumb, full) = with_thumbnail(&server, "ok", 200).await;
    let s = selector.select(&request(), vec![c]).await.unwrap();
    assert_eq!(s.best.source, ReferenceSource::Original);
    assert_eq!(
        s.best.bytes.as_ref(),
        full.as_slice(),
        "the original's bytes"
    );
    assert_eq!((s.best.width, s.best.height), (960, 720));
    assert_eq!(s.best.source_note, None);

    let (c, thumb, _full) = with_thumbnail(&server, "gone", 404).await;
    let s = selector.select(&request(), vec![c]).await.unwrap();
    assert_eq!(s.best.source, ReferenceSource::Thumbnail);
    assert_eq!(
        s.best.bytes.as_ref(),
        thumb.as_slice(),
        "the thumbnail stands in"
    );
    let note = s.best.source_note.clone().unwrap();
    assert!(note.contains("404") && note.contains("thumbnail"), "{note}");
    // The report (the selection serialised) says which one and why.
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["best"]["source"], "thumbnail");
    assert!(
        json["best"]["source_note"]
            .as_str()
            .unwrap()
            .contains("404")
    );
}

#[tokio::test]
async fn an_original_over_the_pixel_bound_is_downscaled_and_says_so() {
    let server = MockServer::start().await;
    let (c, _, _) = with_thumbnail(&server, "big", 200).await;
    let cfg = config(Arc::default()).reference_bounds(8 << 20, 200_000);
    let s = HierarchicalSelector::new(http(), cfg)
        .select(&request(), vec![c])
        .await
        .unwrap();
    assert_eq!(s.best.source, ReferenceSource::Original);
    assert!(u64::from(s.best.width) * u64::from(s.best.height) <= 200_000);
    let back = iat2i_selectors::image::load_from_memory(&s.best.bytes).unwrap();
    assert_eq!((back.width(), back.height()), (s.best.width, s.best.height));
    let note = s.best.source_note.clone().unwrap();
    assert!(
        note.contains("960x720") && note.contains("downscaled"),
        "{note}"
    );
}

#[tokio::test]
async fn a_failed_embedding_batch_drops_only_its_candidates() {
    let server = MockServer::start().await;
    let mut candidates = Vec::new();
    for i in 0..6 {
        let url = serve(
            &server,
            &format!("{i}.png"),
            200,
            png(scene(i + 1, 200, 150)),
        )
        .await;
        candidates.push(Candidate::new(url, "test", "pattern"));
    }
    let embedder = Arc::new(MeanColour {
        panic_on_call: 2,
        ..MeanColour::default()
    });
    let cfg = config(embedder.clone()).embed_batch(2).dedup_threshold(0);
    let s = HierarchicalSelector::new(http(), cfg)
        .select(&request(), candidates)
        .await
        .expect("one failed batch does not abort the selection");
    // Batches are formed as images arrive, so the failed one held one or two images.
    let lost = embedder.lost.load(Ordering::SeqCst);
    assert!((1..=2).contains(&lost), "{lost}");
    assert_eq!(s.ranked.len(), 6 - lost, "{:?}", s.dropped);
    let failed: Vec<_> = s
        .dropped
        .iter()
        .filter(|d| d.stage == Stage::Rank && d.reason.contains("embedding batch failed"))
        .collect();
    assert_eq!(failed.len(), lost, "{:?}", s.dropped);
    assert!(
        failed[0].reason.contains("panicked"),
        "{}",
        failed[0].reason
    );
}

#[tokio::test]
async fn sizes_engines_did_not_report_are_checked_after_decoding() {
    let server = MockServer::start().await;
    let wide = serve(&server, "wide.png", 200, png(scene(1, 800, 100))).await;
    let fine = serve(&server, "fine.png", 200, png(scene(2, 400, 300))).await;
    let big = serve(&server, "big.png", 200, png(scene(4, 1200, 900))).await;
    let candidates = [wide, fine, big]
        .into_iter()
        .map(|u| Candidate::new(u, "test", "pattern"))
        .collect();
    // 1200x900 RGB needs ~6 MiB to decode: over a 4 MiB budget; 400x300 fits.
    let cfg = config(Arc::default()).max_total_decode(4 << 20);
    let s = HierarchicalSelector::new(http(), cfg)
        .select(&request(), candidates)
        .await
        .unwrap();
    assert_eq!(s.ranked.len(), 1, "{:?}", s.dropped);
    assert!(s.best.candidate.image_url.path().ends_with("fine.png"));
    let reason = |name: &str| {
        s.dropped
            .iter()
            .find(|d| d.candidate.image_url.path().ends_with(name))
            .map(|d| (d.stage, d.reason.clone()))
            .unwrap()
    };
    let (stage, why) = reason("wide.png");
    assert_eq!(stage, Stage::Fetch);
    assert!(why.contains("aspect ratio 8.0:1 after decoding"), "{why}");
    let (stage, why) = reason("big.png");
    assert_eq!(stage, Stage::Fetch);
    assert!(why.contains("decode budget"), "{why}");
}
