//! End to end: wiremock serves images in many formats plus broken ones; the selector runs
//! every stage with the tiny CLIP model and a real qdrant-edge store in a temp directory.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use iat2i_retrievers::Candidate;
use iat2i_selectors::{
    EdgeStore, HierarchicalSelector, PrefilterConfig, SelectionRequest, Selector, SelectorConfig,
    Stage, VectorStore,
};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn serve(server: &MockServer, route: &str, body: Vec<u8>, content_type: &str) {
    Mock::given(method("GET"))
        .and(path(route))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, content_type))
        .mount(server)
        .await;
}

/// Mounts every image and broken body; returns the candidates in a search-like order.
async fn web(server: &MockServer) -> Vec<Candidate> {
    let good: Vec<(&str, Vec<u8>, &str)> = vec![
        ("/png.png", png(scene(1, 320, 240)), "image/png"),
        ("/photo.jpg", jpeg(scene(2, 400, 300)), "image/jpeg"),
        ("/exif.jpg", fixture("exif_rotated.jpg"), "image/jpeg"),
        ("/cmyk.jpg", fixture("cmyk.jpg"), "image/jpeg"),
        ("/grey.png", grey_png(3, 300, 300), "image/png"),
        ("/alpha.png", alpha_png(4, 256, 256), "image/png"),
        ("/anim.gif", animated_gif(scene(5, 200, 150)), "image/gif"),
        // Served with a wrong content type: sniffing decides.
        (
            "/pic.webp",
            webp(scene(6, 300, 200)),
            "application/octet-stream",
        ),
        ("/pic.bmp", bmp(scene(7, 240, 180)), "image/bmp"),
        ("/original.png", png(scene(8, 300, 220)), "image/png"),
        ("/dup-small.png", png(scene(1, 160, 120)), "image/png"),
    ];
    for (route, body, ct) in good {
        serve(server, route, body, ct).await;
    }
    let mut truncated = jpeg(scene(9, 300, 300));
    truncated.truncate(truncated.len() / 2);
    serve(server, "/trunc.jpg", truncated, "image/jpeg").await;
    serve(
        server,
        "/page.jpg",
        b"<!DOCTYPE html><html>blocked</html>".to_vec(),
        "text/html",
    )
    .await;
    serve(server, "/bomb.png", png_bomb(), "image/png").await;
    Mock::given(method("GET"))
        .and(path("/hang.png"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(png(scene(10, 100, 100)), "image/png")
                .set_delay(Duration::from_secs(60)),
        )
        .mount(server)
        .await;
    // Anything else (missing.png, the broken thumbnail) is a 404.
    let base = server.uri();
    let routes = [
        "png.png",
        "photo.jpg",
        "exif.jpg",
        "cmyk.jpg",
        "grey.png",
        "alpha.png",
        "anim.gif",
        "pic.webp",
        "pic.bmp",
        "dup-small.png",
        "trunc.jpg",
        "page.jpg",
        "bomb.png",
        "missing.png",
        "hang.png",
    ];
    let mut cands: Vec<Candidate> = routes
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut c = candidate(&format!("{base}/{r}"), "red fox");
            c.fused_score = 1.0 - i as f64 / 100.0;
            c
        })
        .collect();
    let mut thumb_fails = candidate(&format!("{base}/original.png"), "red fox");
    thumb_fails.thumbnail_url = Some(format!("{base}/thumb-gone.png").parse().unwrap());
    cands.push(thumb_fails);
    let mut svg = candidate(&format!("{base}/vector.svg"), "red fox");
    svg.mime = Some("image/svg+xml".into());
    cands.push(svg);
    cands
}

fn file(c: &Candidate) -> String {
    c.image_url.path().trim_start_matches('/').to_string()
}

#[tokio::test]
async fn selects_across_formats_and_reports_every_drop() {
    if !ort_available() {
        return;
    }
    let server = MockServer::start().await;
    let candidates = web(&server).await;
    let cache = tempfile::tempdir().unwrap();
    let config = SelectorConfig::default()
        .model_dir(tiny_model())
        .cache_dir(cache.path())
        .fetch_timeout(Duration::from_secs(2))
        .prefilter(PrefilterConfig::default())
        .top_k(20);
    let selector = HierarchicalSelector::new(http(), config);
    let request = SelectionRequest::new("a red fox in the snow")
        .with_queries(vec!["red fox".into(), "fox winter".into()])
        .with_entities(vec![])
        .with_run_id("e2e-run");
    let sel = selector.select(&request, candidates).await.unwrap();

    let drops: HashMap<String, (Stage, String)> = sel
        .dropped
        .iter()
        .map(|d| (file(&d.candidate), (d.stage, d.reason.clone())))
        .collect();
    let expect = [
        ("vector.svg", Stage::Prefilter, "MIME type image/svg+xml"),
        ("trunc.jpg", Stage::Fetch, "truncated"),
        ("page.jpg", Stage::Fetch, "HTML page"),
        ("bomb.png", Stage::Fetch, "refused Png"),
        ("missing.png", Stage::Fetch, "404"),
        ("hang.png", Stage::Fetch, "timed out"),
        ("dup-small.png", Stage::Dedup, "near-duplicate of"),
    ];
    for (f, stage, needle) in expect {
        let (s, reason) = drops
            .get(f)
            .unwrap_or_else(|| panic!("{f} not dropped: {drops:?}"));
        assert_eq!(*s, stage, "{f}: {reason}");
        assert!(reason.contains(needle), "{f}: {reason}");
    }
    assert!(
        drops["dup-small.png"].1.contains("/png.png"),
        "names the copy it duplicates"
    );
    assert_eq!(sel.dropped.len(), expect.len(), "{drops:?}");

    let ranked: Vec<String> = sel.ranked.iter().map(|r| file(&r.candidate)).collect();
    let mut sorted = ranked.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "alpha.png",
            "anim.gif",
            "cmyk.jpg",
            "exif.jpg",
            "grey.png",
            "original.png",
            "photo.jpg",
            "pic.bmp",
            "pic.webp",
            "png.png"
        ],
        "every good format, and the original behind a broken thumbnail"
    );
    check_scores_and_references(&sel);

    let stages: Vec<(Stage, usize, usize)> = sel
        .stages
        .iter()
        .map(|s| (s.stage, s.input, s.output))
        .collect();
    assert_eq!(
        stages,
        [
            (Stage::Prefilter, 17, 16),
            (Stage::Fetch, 16, 11),
            (Stage::Dedup, 11, 10),
            (Stage::Rank, 10, 10),
            (Stage::Diversity, 10, 10),
        ]
    );
    assert_eq!(sel.judge_reason, None);

    // The reference memory (qdrant-edge under the cache dir) remembers every image that
    // was fetched and embedded, near-duplicates included, in the model's collection.
    assert_eq!(sel.memory.store.as_deref(), Some("qdrant-edge"));
    assert_eq!(sel.memory.stored, 11, "{:?}", sel.memory);
    let collection = sel.memory.collection.clone().unwrap();
    assert!(collection.ends_with("_32"), "{collection}");
    let store = EdgeStore::new(cache.path().join("qdrant-edge"));
    assert!(store.dir().join(&collection).is_dir());
    let all = iat2i_selectors::StoreFilter::all();
    assert_eq!(store.count(&collection, &all).await.unwrap(), 11);
}

fn check_scores_and_references(sel: &iat2i_selectors::Selection) {
    let combined: Vec<f32> = sel
        .ranked
        .iter()
        .map(|r| r.scores.combined.unwrap())
        .collect();
    assert!(
        combined.windows(2).all(|w| w[0] >= w[1]),
        "best first: {combined:?}"
    );
    for r in &sel.ranked {
        assert!(r.scores.clip_prompt.is_some() && r.scores.clip_query.is_some());
        assert!(r.scores.lexical.is_some());
    }
    let exif = sel
        .ranked
        .iter()
        .find(|r| file(&r.candidate) == "exif.jpg")
        .unwrap();
    assert_eq!(
        (exif.width, exif.height),
        (64, 96),
        "EXIF orientation applied"
    );

    let all: Vec<_> = std::iter::once(&sel.best).chain(&sel.alternates).collect();
    assert_eq!(all.len(), 10, "top_k 20 keeps every distinct survivor");
    assert_eq!(
        file(&sel.best.candidate),
        file(&sel.ranked[0].candidate),
        "no judge: CLIP top-1"
    );
    let by_file: HashMap<String, _> = all.iter().map(|r| (file(&r.candidate), *r)).collect();
    for (f, mime) in [
        ("anim.gif", "image/png"),
        ("pic.bmp", "image/png"),
        ("pic.webp", "image/webp"),
        ("photo.jpg", "image/jpeg"),
        ("cmyk.jpg", "image/jpeg"),
    ] {
        let r = by_file[f];
        assert_eq!(r.mime, mime, "{f}");
        let sniffed = image::guess_format(&r.bytes).unwrap();
        assert_eq!(
            sniffed.to_mime_type(),
            mime,
            "{f}: bytes match the MIME type"
        );
    }
}

#[tokio::test]
async fn warm_up_loads_the_model_before_the_first_selection_or_says_why_not() {
    if !ort_available() {
        skip_or_fail("ONNX Runtime is not available (set ORT_DYLIB_PATH)");
        return;
    }
    let missing = HierarchicalSelector::new(
        http(),
        SelectorConfig::default().model_dir("/nowhere/clip-model"),
    );
    let err = missing.warm_up().await.unwrap_err();
    assert!(err.to_string().contains("/nowhere/clip-model"), "{err}");
    let tiny = HierarchicalSelector::new(http(), SelectorConfig::default().model_dir(tiny_model()));
    tiny.warm_up().await.unwrap();
}
