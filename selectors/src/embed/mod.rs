//! Stage 4a: embeddings. The [`Embedder`] trait, and [`ClipEmbedder`] on ONNX Runtime.

mod clip;
mod preprocess;
mod runtime;
mod source;

use async_trait::async_trait;
use image::DynamicImage;

use crate::error::SelectError;

pub use clip::ClipEmbedder;
pub use runtime::{ORT_INSTALL, ORT_VERSION, OrtSearch, find_onnx_runtime, load_onnx_runtime};
pub use source::ClipModelSource;

/// Turns images and texts into vectors of one shared space (CLIP), L2-normalised.
#[async_trait]
pub trait Embedder: Send + Sync {
    /// Embed `images` (one vector each, in order).
    async fn embed_images(&self, images: Vec<DynamicImage>) -> Result<Vec<Vec<f32>>, SelectError>;
    /// Embed `texts` (one vector each, in order).
    async fn embed_texts(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, SelectError>;
    /// A short, stable name of the model (the reference memory keeps one collection per
    /// model and dimension, so vectors of different models never mix). Override it in
    /// custom embedders; the default is `custom`.
    fn model_id(&self) -> String {
        "custom".into()
    }
    /// Load what embedding needs now rather than on first use (a model from disk), so
    /// that the first selection does not wait for it. The default does nothing.
    async fn warm_up(&self) -> Result<(), SelectError> {
        Ok(())
    }
}

/// Cosine similarity of two vectors (0 when either is zero or their lengths differ).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    dot / (na.sqrt() * nb.sqrt())
}

/// `v` scaled to unit length (unchanged when it is zero).
pub fn normalize(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    v
}
