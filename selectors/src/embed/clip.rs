//! CLIP's image and text encoders on ONNX Runtime (through `ort`), each loaded on first use.
//!
//! Sessions are built from the model *files*, never from bytes in memory: ONNX Runtime then
//! parses the weights once, where loading from a buffer held the file, the parsed model and
//! the session's tensors at once (about three times the weights at the peak). The vision and
//! text towers load independently and in parallel, so a selection that has images waiting
//! never waits for the text tower.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use image::DynamicImage;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::Tensor;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::preprocess::ClipPreprocessor;
use super::runtime::{OrtSearch, environment, load_onnx_runtime};
use super::{ClipModelSource, Embedder};
use crate::error::SelectError;

/// Where each file of a CLIP model is.
struct ModelFiles {
    vision: PathBuf,
    text: PathBuf,
    preprocessor: PathBuf,
    tokenizer: PathBuf,
    tokenizer_config: PathBuf,
    special_tokens_map: PathBuf,
}

struct VisionTower {
    session: Mutex<Session>,
    preprocessor: ClipPreprocessor,
    input: String,
    output: String,
}

struct TextTower {
    session: Mutex<Session>,
    tokenizer: Tokenizer,
    input_ids: String,
    attention_mask: Option<String>,
    token_type_ids: Option<String>,
    output: String,
}

/// How ONNX Runtime sessions are built.
#[derive(Debug, Clone, Copy)]
struct SessionOptions {
    intra_threads: Option<usize>,
    low_memory: bool,
}

/// CLIP's paired image and text encoders on ONNX Runtime (CPU).
///
/// Nothing is loaded until the first embedding call (or [`ClipEmbedder::load`]); loading and
/// inference run on blocking threads, never on the async runtime.
pub struct ClipEmbedder {
    source: ClipModelSource,
    options: SessionOptions,
    batch: usize,
    ort: Option<OrtSearch>,
    files: tokio::sync::OnceCell<Arc<ModelFiles>>,
    vision: tokio::sync::OnceCell<Arc<VisionTower>>,
    text: tokio::sync::OnceCell<Arc<TextTower>>,
}

impl std::fmt::Debug for ClipEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipEmbedder")
            .field("source", &self.source)
            .field("low_memory", &self.options.low_memory)
            .field("vision_loaded", &self.vision.initialized())
            .field("text_loaded", &self.text.initialized())
            .finish()
    }
}

impl ClipEmbedder {
    /// An embedder for `source` (nothing is loaded yet).
    pub fn new(source: ClipModelSource) -> Self {
        ClipEmbedder {
            source,
            options: SessionOptions {
                intra_threads: None,
                low_memory: false,
            },
            batch: 32,
            ort: None,
            files: tokio::sync::OnceCell::new(),
            vision: tokio::sync::OnceCell::new(),
            text: tokio::sync::OnceCell::new(),
        }
    }

    /// An embedder for the model in `dir` (see [`ClipModelSource::LocalDir`]).
    pub fn from_dir(dir: impl Into<PathBuf>) -> Self {
        Self::new(ClipModelSource::LocalDir {
            dir: dir.into(),
            tokenizer_dir: None,
        })
    }

    /// Cap ONNX Runtime's intra-op threads (default: one per physical core).
    pub fn with_intra_threads(mut self, n: usize) -> Self {
        self.options.intra_threads = Some(n.max(1));
        self
    }

    /// Images or texts per inference call (default 32).
    pub fn with_batch_size(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// Trade a little speed for memory: ONNX Runtime keeps no pre-packed second copy of the
    /// matrix weights (`session.disable_prepacking`). On ViT-B/32 this holds about a third less
    /// memory and loads about 40 % faster, and inference is a few percent slower (figures in
    /// the README's selection benchmark). Off by default.
    pub fn with_low_memory(mut self, on: bool) -> Self {
        self.options.low_memory = on;
        self
    }

    /// Look for ONNX Runtime only as `search` says (default: [`OrtSearch::from_environment`]).
    pub fn with_ort_search(mut self, search: OrtSearch) -> Self {
        self.ort = Some(search);
        self
    }

    /// Load both encoders now, in parallel (they load on first use otherwise).
    pub async fn load(&self) -> Result<(), SelectError> {
        tokio::try_join!(self.vision(), self.text()).map(|_| ())
    }

    async fn files(&self) -> Result<Arc<ModelFiles>, SelectError> {
        let source = self.source.clone();
        let ort = self.ort.clone();
        self.files
            .get_or_try_init(|| async move {
                blocking("locating the CLIP model", move || {
                    let search = ort.unwrap_or_else(OrtSearch::from_environment);
                    load_onnx_runtime(&search)?;
                    locate(&source)
                })
                .await
                .map(Arc::new)
            })
            .await
            .cloned()
    }

    async fn vision(&self) -> Result<Arc<VisionTower>, SelectError> {
        self.tower(&self.vision, "loading the CLIP vision encoder", load_vision)
            .await
    }

    async fn text(&self) -> Result<Arc<TextTower>, SelectError> {
        self.tower(&self.text, "loading the CLIP text encoder", load_text)
            .await
    }

    /// The tower in `cell`, loaded by `load` on a blocking thread the first time.
    async fn tower<T: Send + Sync + 'static>(
        &self,
        cell: &tokio::sync::OnceCell<Arc<T>>,
        what: &'static str,
        load: fn(&ModelFiles, SessionOptions) -> Result<T, SelectError>,
    ) -> Result<Arc<T>, SelectError> {
        let options = self.options;
        cell.get_or_try_init(|| async move {
            let files = self.files().await?;
            blocking(what, move || load(&files, options))
                .await
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
        let tower = self.vision().await?;
        in_batches("embedding images", images, self.batch, move |chunk| {
            tower.embed(chunk)
        })
        .await
    }

    async fn embed_texts(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, SelectError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let tower = self.text().await?;
        in_batches("embedding texts", texts, self.batch, move |chunk| {
            tower.embed(chunk)
        })
        .await
    }
}

impl VisionTower {
    fn embed(&self, images: &[DynamicImage]) -> Result<Vec<Vec<f32>>, SelectError> {
        let (h, w) = self.preprocessor.input_size();
        let mut pixels = Vec::with_capacity(images.len() * self.preprocessor.len());
        for image in images {
            self.preprocessor.prepare_into(image, &mut pixels);
        }
        let shape = [images.len(), 3, h as usize, w as usize];
        let input = Tensor::from_array((shape, pixels)).map_err(|e| encoder("vision", e))?;
        let mut session = relock(&self.session);
        let outputs = session
            .run(ort::inputs![self.input.as_str() => input])
            .map_err(|e| encoder("vision", e))?;
        let (shape, data) = output(&outputs, &self.output, "vision")?;
        rows(shape, data, images.len(), None, "vision")
    }
}

impl TextTower {
    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, SelectError> {
        let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let encodings = self
            .tokenizer
            .encode_batch(inputs, true)
            .map_err(|e| SelectError::Embedding(format!("tokenizing a text: {e}")))?;
        let len = encodings.iter().map(|e| e.len()).max().unwrap_or(0).max(1);
        let n = encodings.len();
        let (mut ids, mut mask) = (vec![0i64; n * len], vec![0i64; n * len]);
        for (i, e) in encodings.iter().enumerate() {
            for (j, (id, m)) in e
                .get_ids()
                .iter()
                .zip(e.get_attention_mask())
                .enumerate()
                .take(len)
            {
                ids[i * len + j] = i64::from(*id);
                mask[i * len + j] = i64::from(*m);
            }
        }
        let tensor =
            |v: Vec<i64>| Tensor::from_array(([n, len], v)).map_err(|e| encoder("text", e));
        let mut feed = ort::inputs![self.input_ids.as_str() => tensor(ids)?];
        if let Some(name) = &self.attention_mask {
            feed.push((name.clone().into(), tensor(mask.clone())?.into()));
        }
        if let Some(name) = &self.token_type_ids {
            feed.push((name.clone().into(), tensor(vec![0i64; n * len])?.into()));
        }
        let mut session = relock(&self.session);
        let outputs = session.run(feed).map_err(|e| encoder("text", e))?;
        let (shape, data) = output(&outputs, &self.output, "text")?;
        rows(shape, data, n, Some((&mask, len)), "text")
    }
}

/// `items` embedded `batch` at a time by `embed`, on a blocking thread, in order.
async fn in_batches<I: Send + 'static>(
    what: &'static str,
    items: Vec<I>,
    batch: usize,
    embed: impl Fn(&[I]) -> Result<Vec<Vec<f32>>, SelectError> + Send + 'static,
) -> Result<Vec<Vec<f32>>, SelectError> {
    blocking(what, move || {
        let mut out = Vec::with_capacity(items.len());
        for chunk in items.chunks(batch) {
            out.extend(embed(chunk)?);
        }
        Ok(out)
    })
    .await
}

/// The float tensor named `name` among a tower's outputs.
fn output<'a>(
    outputs: &'a ort::session::SessionOutputs<'_>,
    name: &str,
    what: &str,
) -> Result<(&'a [i64], &'a [f32]), SelectError> {
    let value = outputs
        .get(name)
        .ok_or_else(|| SelectError::Embedding(format!("{what} encoder: no `{name}` output")))?;
    let (shape, data) = value
        .try_extract_tensor::<f32>()
        .map_err(|e| encoder(what, e))?;
    Ok((shape, data))
}

/// One L2-normalised vector per input from an output of shape `[n, d]`, or `[n, s, d]`
/// (then the first token for images, as CLIP's pooler does, and the mean over the attention
/// mask for texts).
fn rows(
    shape: &[i64],
    data: &[f32],
    n: usize,
    mask: Option<(&[i64], usize)>,
    what: &str,
) -> Result<Vec<Vec<f32>>, SelectError> {
    let bad = || {
        SelectError::Embedding(format!(
            "{what} encoder: output shape {shape:?} is not [{n}, dim] or [{n}, tokens, dim]"
        ))
    };
    let dims: Vec<usize> = shape
        .iter()
        .map(|d| usize::try_from(*d).unwrap_or(0))
        .collect();
    match dims.as_slice() {
        [rows, d] if *rows == n && *d > 0 && data.len() == n * d => Ok(data
            .chunks(*d)
            .map(|r| super::normalize(r.to_vec()))
            .collect()),
        [rows, s, d] if *rows == n && *s > 0 && *d > 0 && data.len() == n * s * d => {
            let per = s * d;
            Ok((0..n)
                .map(|i| {
                    let item = &data[i * per..(i + 1) * per];
                    let mut v = vec![0f32; *d];
                    match mask {
                        Some((mask, len)) if len == *s => {
                            let mut count = 0f32;
                            for t in 0..*s {
                                if mask[i * len + t] != 0 {
                                    count += 1.0;
                                    v.iter_mut()
                                        .zip(&item[t * d..(t + 1) * d])
                                        .for_each(|(a, b)| *a += b);
                                }
                            }
                            if count > 0.0 {
                                v.iter_mut().for_each(|a| *a /= count);
                            }
                        }
                        _ => v.copy_from_slice(&item[..*d]),
                    }
                    super::normalize(v)
                })
                .collect())
        }
        _ => Err(bad()),
    }
}

fn encoder(what: &str, e: impl std::fmt::Display) -> SelectError {
    SelectError::Embedding(format!("{what} encoder: {e}"))
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

async fn blocking<T, F>(what: &str, f: F) -> Result<T, SelectError>
where
    F: FnOnce() -> Result<T, SelectError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SelectError::Embedding(format!("{what} crashed: {e}")))?
}

/// A session for the model file at `path`.
fn session(path: &Path, options: SessionOptions) -> Result<Session, String> {
    let environment = environment().map_err(|e| e.to_string())?;
    build_session(&environment, path, options).map_err(|e| e.to_string())
}

fn build_session(
    environment: &ort::environment::Environment,
    path: &Path,
    options: SessionOptions,
) -> ort::Result<Session> {
    // One intra-op thread per logical core (what fastembed, used before, did).
    let threads = options.intra_threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let mut builder = Session::builder(environment)?
        .with_optimization_level(GraphOptimizationLevel::Level3)?
        // Initializers go straight to the CPU allocator instead of ONNX Runtime's growing
        // arena, which would otherwise hold a second, rounded-up copy of the weights.
        .with_config_entry("session.use_device_allocator_for_initializers", "1")?
        .with_intra_threads(threads)?;
    if options.low_memory {
        builder = builder.with_config_entry("session.disable_prepacking", "1")?;
    }
    builder.commit_from_file(path)
}

fn load_error(what: &str, path: &Path, e: impl std::fmt::Display) -> SelectError {
    SelectError::Embedding(format!(
        "loading the CLIP {what} from {}: {e} (is it a CLIP-architecture ONNX model?)",
        path.display()
    ))
}

fn load_vision(files: &ModelFiles, options: SessionOptions) -> Result<VisionTower, SelectError> {
    let preprocessor = ClipPreprocessor::from_json(&read(&files.preprocessor)?)
        .map_err(|e| SelectError::Embedding(format!("{}: {e}", files.preprocessor.display())))?;
    let session = session(&files.vision, options)
        .map_err(|e| load_error("vision encoder", &files.vision, e))?;
    let input = session
        .inputs()
        .first()
        .map(|i| i.name().to_string())
        .ok_or_else(|| load_error("vision encoder", &files.vision, "the model has no input"))?;
    let output = pick_output(&session, "image_embeds")
        .ok_or_else(|| load_error("vision encoder", &files.vision, "the model has no output"))?;
    Ok(VisionTower {
        session: Mutex::new(session),
        preprocessor,
        input,
        output,
    })
}

fn load_text(files: &ModelFiles, options: SessionOptions) -> Result<TextTower, SelectError> {
    let tokenizer = load_tokenizer(files)?;
    let session =
        session(&files.text, options).map_err(|e| load_error("text encoder", &files.text, e))?;
    let names: Vec<String> = session
        .inputs()
        .iter()
        .map(|i| i.name().to_string())
        .collect();
    let find = |n: &str| names.iter().find(|x| x.as_str() == n).cloned();
    let input_ids = find("input_ids").ok_or_else(|| {
        load_error(
            "text encoder",
            &files.text,
            format!("the model has no `input_ids` input (it has {names:?})"),
        )
    })?;
    let output = pick_output(&session, "text_embeds")
        .ok_or_else(|| load_error("text encoder", &files.text, "the model has no output"))?;
    Ok(TextTower {
        attention_mask: find("attention_mask"),
        token_type_ids: find("token_type_ids"),
        session: Mutex::new(session),
        tokenizer,
        input_ids,
        output,
    })
}

/// The output named `preferred` (CLIP's projected embedding), else the first.
fn pick_output(session: &Session, preferred: &str) -> Option<String> {
    let outputs = session.outputs();
    outputs
        .iter()
        .find(|o| o.name() == preferred)
        .or_else(|| outputs.first())
        .map(|o| o.name().to_string())
}

/// The tokenizer, padding each batch to its longest text with the model's pad token and
/// truncating at its maximum length (77 for CLIP).
fn load_tokenizer(files: &ModelFiles) -> Result<Tokenizer, SelectError> {
    let bad = |path: &Path, e: &dyn std::fmt::Display| {
        SelectError::Embedding(format!("the CLIP tokenizer file {}: {e}", path.display()))
    };
    let mut tokenizer =
        Tokenizer::from_file(&files.tokenizer).map_err(|e| bad(&files.tokenizer, &e))?;
    let json = |path: &Path| -> Result<serde_json::Value, SelectError> {
        serde_json::from_slice(&read(path)?).map_err(|e| bad(path, &e))
    };
    let config = json(&files.tokenizer_config)?;
    let special = json(&files.special_tokens_map)?;
    let max_length = config
        .get("model_max_length")
        .and_then(serde_json::Value::as_f64)
        .filter(|n| *n >= 2.0)
        .map_or(77, |n| n.min(77.0) as usize);
    let token = |v: &serde_json::Value| -> Option<String> {
        match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
            _ => None,
        }
    };
    let pad_token = special
        .get("pad_token")
        .and_then(token)
        .or_else(|| config.get("pad_token").and_then(token))
        .ok_or_else(|| bad(&files.special_tokens_map, &"no `pad_token`"))?;
    let pad_id = tokenizer.token_to_id(&pad_token).ok_or_else(|| {
        bad(
            &files.tokenizer,
            &format!("the pad token {pad_token:?} is not in the vocabulary"),
        )
    })?;
    tokenizer.with_padding(Some(PaddingParams {
        strategy: PaddingStrategy::BatchLongest,
        pad_id,
        pad_token,
        ..PaddingParams::default()
    }));
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length,
            ..TruncationParams::default()
        }))
        .map_err(|e| bad(&files.tokenizer_config, &e))?;
    Ok(tokenizer)
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

fn locate(source: &ClipModelSource) -> Result<ModelFiles, SelectError> {
    match source {
        ClipModelSource::LocalDir { dir, tokenizer_dir } => {
            locate_local(dir, tokenizer_dir.as_deref())
        }
        ClipModelSource::Default { cache_dir } => download_default(cache_dir.as_deref()),
    }
}

fn locate_local(dir: &Path, extra: Option<&Path>) -> Result<ModelFiles, SelectError> {
    let vision = dir.join("vision");
    let text = dir.join("text");
    let find = |sub: &Path, name: &str| first_file(name, &[Some(sub), Some(dir), extra]);
    let model = |sub: &Path| -> Result<PathBuf, SelectError> {
        let path = sub.join("model.onnx");
        if path.is_file() {
            Ok(path)
        } else {
            read(&path).map(|_| path)
        }
    };
    Ok(ModelFiles {
        vision: model(&vision)?,
        text: model(&text)?,
        preprocessor: find(&vision, "preprocessor_config.json")?,
        tokenizer: find(&text, "tokenizer.json")?,
        tokenizer_config: find(&text, "tokenizer_config.json")?,
        special_tokens_map: find(&text, "special_tokens_map.json")?,
    })
}

fn first_file(name: &str, dirs: &[Option<&Path>]) -> Result<PathBuf, SelectError> {
    let candidates: Vec<PathBuf> = dirs.iter().flatten().map(|d| d.join(name)).collect();
    if let Some(path) = candidates.iter().find(|p| p.is_file()) {
        return Ok(path.clone());
    }
    let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    Err(SelectError::Embedding(format!(
        "{name} not found (looked in {}); set a tokenizer directory holding the CLIP tokenizer \
         and preprocessor files",
        looked.join(", ")
    )))
}

/// The Hugging Face repositories fastembed's `ClipVitB32` uses.
#[cfg(feature = "download")]
const VISION_REPO: &str = "Qdrant/clip-ViT-B-32-vision";
#[cfg(feature = "download")]
const TEXT_REPO: &str = "Qdrant/clip-ViT-B-32-text";

#[cfg(feature = "download")]
fn download_default(cache_dir: Option<&Path>) -> Result<ModelFiles, SelectError> {
    // Never a folder in the working directory.
    let dir = cache_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| crate::cache::default_cache_dir().join("models"));
    let api = hf_hub::api::sync::ApiBuilder::new()
        .with_cache_dir(dir)
        .with_progress(false)
        .build()
        .map_err(|e| SelectError::Embedding(format!("the Hugging Face hub client: {e}")))?;
    let get = |repo: &str, file: &str| {
        api.model(repo.to_string()).get(file).map_err(|e| {
            SelectError::Embedding(format!(
                "downloading {file} of CLIP ViT-B/32 ({repo}) from the Hugging Face hub: {e} \
                 (offline? use a local model directory instead)"
            ))
        })
    };
    Ok(ModelFiles {
        vision: get(VISION_REPO, "model.onnx")?,
        preprocessor: get(VISION_REPO, "preprocessor_config.json")?,
        text: get(TEXT_REPO, "model.onnx")?,
        tokenizer: get(TEXT_REPO, "tokenizer.json")?,
        tokenizer_config: get(TEXT_REPO, "tokenizer_config.json")?,
        special_tokens_map: get(TEXT_REPO, "special_tokens_map.json")?,
    })
}

#[cfg(not(feature = "download"))]
fn download_default(_cache_dir: Option<&Path>) -> Result<ModelFiles, SelectError> {
    Err(SelectError::Embedding(
        "the default CLIP model (ViT-B/32 from the Hugging Face hub, Qdrant/clip-ViT-B-32-*) is \
         downloaded on first use, but this build has no download support: enable the feature \
         with `iat2i-selectors = { version = \"0.1\", features = [\"download\"] }` (or \
         `--features iat2i-selectors/download`), or point the selector at a local model \
         directory with SelectorConfig::model_dir (vision/model.onnx, text/model.onnx and the \
         tokenizer and preprocessor files)"
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
