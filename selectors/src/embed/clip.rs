//! CLIP ViT-B/32 image and text encoders through fastembed, loaded on first use.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use fastembed::{
    ImageEmbedding, ImageInitOptionsUserDefined, ImagePreprocessor, InitOptionsUserDefined,
    TextEmbedding, TokenizerFiles, UserDefinedEmbeddingModel, UserDefinedImageEmbeddingModel,
};
use image::DynamicImage;

use super::runtime::{OrtSearch, load_onnx_runtime};
use super::{ClipModelSource, Embedder};
use crate::error::SelectError;

struct Models {
    image: Mutex<ImageEmbedding>,
    text: Mutex<TextEmbedding>,
    preprocessor: ImagePreprocessor,
}

/// CLIP's paired image and text encoders on fastembed (ONNX Runtime, CPU).
///
/// Nothing is loaded until the first embedding call; loading and inference run on
/// blocking threads, never on the async runtime.
pub struct ClipEmbedder {
    source: ClipModelSource,
    intra_threads: Option<usize>,
    batch: usize,
    ort: Option<OrtSearch>,
    models: tokio::sync::OnceCell<Arc<Models>>,
}

impl std::fmt::Debug for ClipEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipEmbedder")
            .field("source", &self.source)
            .field("loaded", &self.models.initialized())
            .finish()
    }
}

impl ClipEmbedder {
    /// An embedder for `source` (nothing is loaded yet).
    pub fn new(source: ClipModelSource) -> Self {
        ClipEmbedder {
            source,
            intra_threads: None,
            batch: 32,
            ort: None,
            models: tokio::sync::OnceCell::new(),
        }
    }

    /// An embedder for the model in `dir` (see [`ClipModelSource::LocalDir`]).
    pub fn from_dir(dir: impl Into<PathBuf>) -> Self {
        Self::new(ClipModelSource::LocalDir {
            dir: dir.into(),
            tokenizer_dir: None,
        })
    }

    /// Cap ONNX Runtime's intra-op threads.
    pub fn with_intra_threads(mut self, n: usize) -> Self {
        self.intra_threads = Some(n.max(1));
        self
    }

    /// Images or texts per inference call (default 32).
    pub fn with_batch_size(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// Look for ONNX Runtime only as `search` says (default: [`OrtSearch::from_environment`]).
    pub fn with_ort_search(mut self, search: OrtSearch) -> Self {
        self.ort = Some(search);
        self
    }

    /// Load both encoders now (they load on first use otherwise).
    pub async fn load(&self) -> Result<(), SelectError> {
        self.models().await.map(|_| ())
    }

    async fn models(&self) -> Result<Arc<Models>, SelectError> {
        let source = self.source.clone();
        let threads = self.intra_threads;
        let ort = self.ort.clone();
        self.models
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || {
                    let search = ort.unwrap_or_else(OrtSearch::from_environment);
                    load_onnx_runtime(&search)?;
                    load(&source, threads)
                })
                .await
                .map_err(|e| {
                    SelectError::Embedding(format!("loading the CLIP model crashed: {e}"))
                })?
                .map(Arc::new)
            })
            .await
            .cloned()
    }
}

#[async_trait]
impl Embedder for ClipEmbedder {
    async fn warm_up(&self) -> Result<(), SelectError> {
        self.load().await
    }

    fn model_id(&self) -> String {
        match &self.source {
            ClipModelSource::Default { .. } => "clip-vit-b32".into(),
            ClipModelSource::LocalDir { dir, .. } => {
                let name = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "local".into());
                format!("clip-{name}")
            }
        }
    }

    async fn embed_images(&self, images: Vec<DynamicImage>) -> Result<Vec<Vec<f32>>, SelectError> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let models = self.models().await?;
        let batch = self.batch;
        blocking(move || {
            let mut out = Vec::with_capacity(images.len());
            let mut images = images.into_iter().peekable();
            while images.peek().is_some() {
                let arrays = images
                    .by_ref()
                    .take(batch)
                    .map(|img| models.preprocessor.preprocess(img))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| SelectError::Embedding(format!("preprocessing an image: {e}")))?;
                let mut model = relock(&models.image);
                let vectors = model
                    .embed_preprocessed(arrays)
                    .map_err(|e| SelectError::Embedding(format!("image encoder: {e}")))?;
                out.extend(vectors);
            }
            Ok(out)
        })
        .await
    }

    async fn embed_texts(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, SelectError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let models = self.models().await?;
        let batch = self.batch;
        blocking(move || {
            let mut model = relock(&models.text);
            model
                .embed(&texts, Some(batch))
                .map_err(|e| SelectError::Embedding(format!("text encoder: {e}")))
        })
        .await
    }
}

/// Lock a model, recovering it when an earlier call panicked while holding it: the ONNX
/// session keeps no state between calls, so the model is as good as before, and one crashed
/// call must not disable embedding for the rest of the process.
fn relock<T>(model: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    model.lock().unwrap_or_else(|poisoned| {
        tracing::warn!("an earlier embedding call panicked; the model lock was recovered");
        model.clear_poison();
        poisoned.into_inner()
    })
}

async fn blocking<T, F>(f: F) -> Result<T, SelectError>
where
    F: FnOnce() -> Result<T, SelectError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SelectError::Embedding(format!("embedding crashed: {e}")))?
}

fn load(source: &ClipModelSource, threads: Option<usize>) -> Result<Models, SelectError> {
    match source {
        ClipModelSource::LocalDir { dir, tokenizer_dir } => {
            load_local(dir, tokenizer_dir.as_deref(), threads)
        }
        ClipModelSource::Default { cache_dir } => load_default(cache_dir.as_deref(), threads),
    }
}

/// The ONNX Runtime session setting that keeps weights out of the memory arena.
const LOW_MEMORY: (&str, &str) = ("session.use_device_allocator_for_initializers", "1");

fn load_local(
    dir: &Path,
    extra: Option<&Path>,
    threads: Option<usize>,
) -> Result<Models, SelectError> {
    let vision = dir.join("vision");
    let text = dir.join("text");
    let find = |sub: &Path, name: &str| read_first(name, &[Some(sub), Some(dir), extra]);
    let preprocessor_file = find(&vision, "preprocessor_config.json")?;
    let image_model =
        UserDefinedImageEmbeddingModel::new(read(&vision.join("model.onnx"))?, preprocessor_file);
    // Initializers go straight to the CPU allocator instead of ONNX Runtime's growing
    // arena, which would otherwise hold a second, rounded-up copy of the weights.
    let mut image_opts =
        ImageInitOptionsUserDefined::new().with_session_config(LOW_MEMORY.0, LOW_MEMORY.1);
    let mut text_opts =
        InitOptionsUserDefined::new().with_session_config(LOW_MEMORY.0, LOW_MEMORY.1);
    if let Some(n) = threads {
        image_opts = image_opts.with_intra_threads(n);
        text_opts = text_opts.with_intra_threads(n);
    }
    let image = ImageEmbedding::try_new_from_user_defined(image_model, image_opts)
        .map_err(|e| load_error("vision encoder", &vision, e))?;
    let tokenizer_files = TokenizerFiles {
        tokenizer_file: find(&text, "tokenizer.json")?,
        config_file: find(&text, "config.json")?,
        special_tokens_map_file: find(&text, "special_tokens_map.json")?,
        tokenizer_config_file: find(&text, "tokenizer_config.json")?,
    };
    let text_model =
        UserDefinedEmbeddingModel::new(read(&text.join("model.onnx"))?, tokenizer_files);
    let text_embedding = TextEmbedding::try_new_from_user_defined(text_model, text_opts)
        .map_err(|e| load_error("text encoder", &text, e))?;
    Ok(Models {
        preprocessor: image.preprocessor(),
        image: Mutex::new(image),
        text: Mutex::new(text_embedding),
    })
}

fn load_error(what: &str, dir: &Path, e: fastembed::Error) -> SelectError {
    SelectError::Embedding(format!(
        "loading the CLIP {what} from {}: {e} (is it a CLIP-architecture ONNX model?)",
        dir.display()
    ))
}

fn read(path: &Path) -> Result<Vec<u8>, SelectError> {
    std::fs::read(path).map_err(|e| {
        SelectError::Embedding(format!(
            "cannot read {}: {e} (a local CLIP model directory holds vision/model.onnx, \
             vision/preprocessor_config.json, text/model.onnx and the text/ tokenizer files)",
            path.display()
        ))
    })
}

fn read_first(name: &str, dirs: &[Option<&Path>]) -> Result<Vec<u8>, SelectError> {
    let candidates: Vec<PathBuf> = dirs.iter().flatten().map(|d| d.join(name)).collect();
    for path in &candidates {
        if path.is_file() {
            return read(path);
        }
    }
    let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    Err(SelectError::Embedding(format!(
        "{name} not found (looked in {}); set a tokenizer directory holding the CLIP tokenizer \
         and preprocessor files",
        looked.join(", ")
    )))
}

#[cfg(feature = "download")]
fn load_default(cache_dir: Option<&Path>, threads: Option<usize>) -> Result<Models, SelectError> {
    use fastembed::{EmbeddingModel, ImageEmbeddingModel, ImageInitOptions, TextInitOptions};
    // Never fastembed's own default (`.fastembed_cache` in the working directory).
    let dir = cache_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| crate::cache::default_cache_dir().join("models"));
    let image_opts =
        ImageInitOptions::new(ImageEmbeddingModel::ClipVitB32).with_cache_dir(dir.clone());
    let text_opts = TextInitOptions::new(EmbeddingModel::ClipVitB32).with_cache_dir(dir);
    let (image_opts, text_opts) = match threads {
        Some(n) => (
            image_opts.with_intra_threads(n),
            text_opts.with_intra_threads(n),
        ),
        None => (image_opts, text_opts),
    };
    let download = |what: &str, e: fastembed::Error| {
        SelectError::Embedding(format!(
            "downloading or loading CLIP ViT-B/32 {what} from the Hugging Face hub: {e} \
             (offline? use a local model directory instead)"
        ))
    };
    let image = ImageEmbedding::try_new(image_opts).map_err(|e| download("vision", e))?;
    let text = TextEmbedding::try_new(text_opts).map_err(|e| download("text", e))?;
    Ok(Models {
        preprocessor: image.preprocessor(),
        image: Mutex::new(image),
        text: Mutex::new(text),
    })
}

#[cfg(not(feature = "download"))]
fn load_default(_cache_dir: Option<&Path>, _threads: Option<usize>) -> Result<Models, SelectError> {
    Err(SelectError::Embedding(
        "the default CLIP model (fastembed ClipVitB32) is downloaded on first use, but this build \
         has no download support: enable the feature with \
         `iat2i-selectors = { version = \"0.1\", features = [\"download\"] }` (or `--features \
         iat2i-selectors/download`), or point the selector at a local model directory with \
         SelectorConfig::model_dir (vision/model.onnx, text/model.onnx and the tokenizer and \
         preprocessor files)"
            .into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_while_holding_the_model_does_not_disable_it() {
        let model = Arc::new(Mutex::new(41));
        let m = model.clone();
        let crashed = std::thread::spawn(move || {
            let _guard = m.lock().unwrap();
            panic!("the encoder crashed");
        })
        .join();
        assert!(crashed.is_err());
        assert!(model.is_poisoned());
        *relock(&model) += 1;
        assert_eq!(*relock(&model), 42);
        assert!(
            !model.is_poisoned(),
            "the poison is cleared for every later call"
        );
    }
}
