//! Where the CLIP model comes from. A leaf module: the configuration and the embedder both
//! name it, neither through the other.

use std::path::PathBuf;

use crate::cache::default_cache_dir;

/// Where the CLIP model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClipModelSource {
    /// CLIP ViT-B/32 as fastembed's `ClipVitB32` ships it (vision
    /// `Qdrant/clip-ViT-B-32-vision`, text `Qdrant/clip-ViT-B-32-text`), downloaded from the Hugging Face hub on first use into
    /// `cache_dir` (when `None`: `<cache>/models` of [`default_cache_dir`], the user's cache
    /// directory or `$IAT2I_CACHE_DIR`, never the working directory). Needs the crate's
    /// `download` feature.
    Default {
        /// Where downloaded models are kept (a Hugging Face hub cache layout).
        cache_dir: Option<PathBuf>,
    },
    /// A local model directory, for offline use:
    ///
    /// ```text
    /// <dir>/vision/model.onnx             pixel_values [N,3,224,224] -> image_embeds [N,D]
    /// <dir>/vision/preprocessor_config.json
    /// <dir>/text/model.onnx               input_ids, attention_mask [N,S] -> text_embeds [N,D]
    /// <dir>/text/tokenizer.json, tokenizer_config.json, special_tokens_map.json, config.json
    /// ```
    ///
    /// Tokenizer and preprocessor files are looked up in the sub-directory, then in `dir`
    /// itself, then in `tokenizer_dir` when given.
    LocalDir {
        /// The model directory.
        dir: PathBuf,
        /// A further directory holding tokenizer and preprocessor files.
        tokenizer_dir: Option<PathBuf>,
    },
}

impl Default for ClipModelSource {
    fn default() -> Self {
        ClipModelSource::Default { cache_dir: None }
    }
}

impl ClipModelSource {
    /// Where a downloaded model is kept: the configured folder, else `<cache>/models` of
    /// [`default_cache_dir`]; `None` for a local model directory.
    pub fn model_cache_dir(&self) -> Option<PathBuf> {
        match self {
            ClipModelSource::Default { cache_dir } => Some(
                cache_dir
                    .clone()
                    .unwrap_or_else(|| default_cache_dir().join("models")),
            ),
            ClipModelSource::LocalDir { .. } => None,
        }
    }
}
