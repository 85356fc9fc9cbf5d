//! The CLIP embedder on the project's own CLIP-architecture ONNX models (random weights).

mod common;

use common::*;
use iat2i_selectors::embed::cosine;
use iat2i_selectors::image::DynamicImage;
use iat2i_selectors::{ClipEmbedder, ClipModelSource, Embedder, SelectError};

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

#[tokio::test]
async fn tiny_model_embeds_images_and_texts_into_one_space() {
    if !ort_available() {
        return;
    }
    let clip = ClipEmbedder::from_dir(tiny_model()).with_batch_size(2);
    let images: Vec<DynamicImage> = (0..3)
        .map(|s| DynamicImage::ImageRgb8(scene(s, 300, 200)))
        .collect();
    let again = vec![images[1].clone()];
    let v = clip.embed_images(images).await.unwrap();
    assert_eq!(v.len(), 3, "three images over two batches");
    assert!(
        v.iter().all(|e| e.len() == 32),
        "tiny model projects to 32 dims"
    );
    assert!(
        v.iter().all(|e| (norm(e) - 1.0).abs() < 1e-4),
        "unit length"
    );
    let v1 = clip.embed_images(again).await.unwrap();
    assert!(cosine(&v[1], &v1[0]) > 0.9999, "deterministic");
    assert!(cosine(&v[0], &v[2]) < 0.9999, "different pictures differ");

    let texts = vec![
        "a red fox".to_string(),
        "a much longer caption about a fox".to_string(),
    ];
    let t = clip.embed_texts(texts.clone()).await.unwrap();
    assert_eq!((t.len(), t[0].len()), (2, 32));
    // Batches are padded to the longest text; padding must not change an embedding.
    let alone = clip.embed_texts(vec![texts[0].clone()]).await.unwrap();
    assert!(
        cosine(&t[0], &alone[0]) > 0.9999,
        "padding-invariant text tower"
    );
    assert!(cosine(&t[0], &t[1]) < 0.9999);
}

#[tokio::test]
async fn the_real_clip_tokenizer_drives_the_text_tower() {
    if !ort_available() {
        return;
    }
    let Some(tokenizer) = shared_tokenizer() else {
        return;
    };
    // A directory with only the ONNX models: tokenizer files come from ../shared.
    let dir = tempfile::tempdir().unwrap();
    for sub in ["vision", "text"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        std::fs::copy(
            tiny_model().join(sub).join("model.onnx"),
            dir.path().join(sub).join("model.onnx"),
        )
        .unwrap();
    }
    let clip = ClipEmbedder::new(ClipModelSource::LocalDir {
        dir: dir.path().to_path_buf(),
        tokenizer_dir: Some(tokenizer),
    });
    let t = clip
        .embed_texts(vec!["Xenopus laevis".into(), "a frog in a pond".into()])
        .await
        .unwrap();
    assert_eq!(t.len(), 2);
    assert!(cosine(&t[0], &t[1]) < 0.9999);
    let i = clip
        .embed_images(vec![DynamicImage::ImageRgb8(scene(1, 640, 480))])
        .await
        .unwrap();
    assert_eq!(i[0].len(), t[0].len(), "image and text share one space");
}

#[tokio::test]
async fn low_memory_sessions_give_the_same_vectors_and_long_texts_are_truncated() {
    if !ort_available() {
        return;
    }
    let Some(tokenizer) = shared_tokenizer() else {
        return;
    };
    let source = ClipModelSource::LocalDir {
        dir: tiny_model(),
        tokenizer_dir: Some(tokenizer),
    };
    let fast = ClipEmbedder::new(source.clone());
    let lean = ClipEmbedder::new(source).with_low_memory(true);
    fast.load().await.unwrap();
    lean.load().await.unwrap();
    let images: Vec<DynamicImage> = (0..4)
        .map(|s| DynamicImage::ImageRgb8(scene(s, 500 + 40 * s, 333)))
        .collect();
    let a = fast.embed_images(images.clone()).await.unwrap();
    let b = lean.embed_images(images).await.unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert!(cosine(x, y) > 0.9999, "pre-packing changes no result");
    }
    // Far past CLIP's 77 tokens: truncated, not an error, and still its own vector.
    let long = "a very long caption about a rare beetle ".repeat(40);
    let t = fast
        .embed_texts(vec![long.clone(), "a beetle".into()])
        .await
        .unwrap();
    let u = lean.embed_texts(vec![long]).await.unwrap();
    assert_eq!(t.len(), 2);
    assert!(cosine(&t[0], &u[0]) > 0.9999);
    assert!(cosine(&t[0], &t[1]) < 0.9999);
}

#[tokio::test]
async fn a_model_file_that_is_not_onnx_is_a_clear_error() {
    if !ort_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for sub in ["vision", "text"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        for f in std::fs::read_dir(tiny_model().join(sub)).unwrap().flatten() {
            std::fs::copy(f.path(), dir.path().join(sub).join(f.file_name())).unwrap();
        }
    }
    std::fs::write(
        dir.path().join("vision/model.onnx"),
        b"<html>rate limited</html>",
    )
    .unwrap();
    let clip = ClipEmbedder::from_dir(dir.path());
    let err = clip
        .embed_images(vec![DynamicImage::ImageRgb8(scene(1, 300, 300))])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("vision encoder"), "{err}");
    assert!(err.contains("vision/model.onnx"), "{err}");
    // The text tower is separate and still works.
    let t = clip.embed_texts(vec!["a fox".into()]).await.unwrap();
    assert_eq!(t.len(), 1);
}

#[tokio::test]
async fn a_missing_model_directory_says_what_it_needs() {
    if !ort_available() {
        return;
    }
    let clip = ClipEmbedder::from_dir("/nonexistent/clip");
    let err = clip.embed_texts(vec!["x".into()]).await.unwrap_err();
    let SelectError::Embedding(msg) = err else {
        panic!("wrong error kind: {err}");
    };
    assert!(msg.contains("/nonexistent/clip"), "{msg}");
    assert!(
        msg.contains("tokenizer") || msg.contains("model.onnx"),
        "{msg}"
    );
}

#[cfg(not(feature = "download"))]
#[tokio::test]
async fn the_default_model_without_download_support_says_how_to_get_it() {
    if !ort_available() {
        return;
    }
    let clip = ClipEmbedder::new(ClipModelSource::default());
    let msg = clip
        .embed_texts(vec!["x".into()])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("features = [\\\"download\\\"]") || msg.contains("download"),
        "{msg}"
    );
    assert!(msg.contains("model_dir"), "{msg}");
}
