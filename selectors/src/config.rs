//! Settings of the hierarchical selector, with builder-style setters.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use iat2i_retrievers::LicensePolicy;

use crate::cache::default_cache_dir;
use crate::embed::{ClipModelSource, Embedder};
use crate::memory::MemoryConfig;
use crate::store::VectorStore;

/// Metadata checks applied before anything is downloaded.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PrefilterConfig {
    /// Smallest acceptable width and height of the full-size image, when the engine reports
    /// them (default 128).
    pub min_side: u32,
    /// Largest acceptable ratio of the longer side to the shorter (default 4.0).
    pub max_aspect_ratio: f32,
    /// MIME types accepted when the engine reports one (default: jpeg, png, webp, gif, bmp, tiff).
    pub allowed_mimes: Vec<String>,
    /// Domains (and their sub-domains) never used.
    pub blocked_domains: Vec<String>,
    /// Domains (and their sub-domains) whose images get a ranking bonus.
    pub preferred_domains: Vec<String>,
    /// Which licences may be used (default [`LicensePolicy::Any`]). Users who publish
    /// pick [`LicensePolicy::CommercialAndDerivatives`] (commercial use of an image
    /// adapted from the reference) or [`LicensePolicy::PublicDomainOnly`]; a missing or
    /// unreadable licence passes only `Any`.
    pub license_policy: LicensePolicy,
    /// Drop candidates whose title/caption relevance is below this (0..=1; default 0: keep
    /// all, because many engines give no caption).
    pub min_lexical: f32,
    /// Keep at most this many candidates, best fused score first (default 100).
    pub max_candidates: usize,
}

impl Default for PrefilterConfig {
    fn default() -> Self {
        PrefilterConfig {
            min_side: 128,
            max_aspect_ratio: 4.0,
            allowed_mimes: ["jpeg", "jpg", "png", "webp", "gif", "bmp", "tiff"]
                .iter()
                .map(|s| format!("image/{s}"))
                .collect(),
            blocked_domains: Vec::new(),
            preferred_domains: Vec::new(),
            license_policy: LicensePolicy::Any,
            min_lexical: 0.0,
            max_candidates: 100,
        }
    }
}

/// Download and decode limits.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FetchConfig {
    /// Downloads in flight at once (default 16).
    pub concurrency: usize,
    /// Time allowed for one image, download and decode (default 15 s).
    pub timeout: Duration,
    /// Largest image body accepted for ranking (thumbnails, or originals without one), in
    /// bytes (default 8 MiB).
    pub max_bytes: usize,
    /// Largest width or height a decoder may allocate (default 8192).
    pub max_dimension: u32,
    /// Most memory one decoder may allocate, in bytes (default 128 MiB).
    pub max_alloc: u64,
    /// Most memory all decoders of one selection may hold at once, in bytes (default
    /// 512 MiB): each decode reserves its need before it starts and waits while the budget
    /// is spent; an image needing more than all of it is dropped.
    pub max_total_decode: u64,
    /// Smallest decoded width and height kept (default 32).
    pub min_decoded_side: u32,
    /// Largest original image downloaded for a chosen reference, in bytes (default 20 MiB).
    pub max_reference_bytes: usize,
    /// Most pixels of the reference handed to a generator (default 16 Mpx): a larger
    /// original is downscaled (aspect kept) and re-encoded.
    pub max_reference_pixels: u64,
    /// Folders whose `file://` candidates (from a local asset library such as
    /// `iat2i_retrievers::engines::LocalFolder`) may be read. Empty by default: a
    /// `file://` URL from anywhere else, a search result say, is refused.
    pub local_roots: Vec<PathBuf>,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            concurrency: 16,
            timeout: Duration::from_secs(15),
            max_bytes: 8 * 1024 * 1024,
            max_dimension: 8192,
            max_alloc: 128 * 1024 * 1024,
            max_total_decode: 512 * 1024 * 1024,
            min_decoded_side: 32,
            max_reference_bytes: 20 * 1024 * 1024,
            max_reference_pixels: 16 * 1024 * 1024,
            local_roots: Vec::new(),
        }
    }
}

/// Weights of the combined ranking score.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RankWeights {
    /// Weight of CLIP similarity to the prompt (default 0.6).
    pub prompt: f32,
    /// Weight of the best CLIP similarity to a query (default 0.3).
    pub query: f32,
    /// Weight of the lexical title relevance (default 0.1).
    pub lexical: f32,
    /// Bonus for a preferred domain (default 0.05).
    pub preferred_domain: f32,
}

impl Default for RankWeights {
    fn default() -> Self {
        RankWeights {
            prompt: 0.6,
            query: 0.3,
            lexical: 0.1,
            preferred_domain: 0.05,
        }
    }
}

/// Which vector store holds the reference memory.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum StoreChoice {
    /// The default: a Qdrant server when `QDRANT_URL` is set (with `QDRANT_API_KEY` when
    /// the server needs one), else qdrant-edge under the cache directory.
    #[default]
    Auto,
    /// qdrant-edge on disk under the cache directory (one process per directory).
    Edge,
    /// Exact in-memory brute force (no persistence).
    Memory,
    /// A Qdrant server from `QDRANT_URL` / `QDRANT_API_KEY` (feature `qdrant-server`).
    QdrantFromEnv,
    /// A store instance the caller built.
    Instance(Arc<dyn VectorStore>),
}

impl std::fmt::Debug for StoreChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreChoice::Auto => f.write_str("Auto"),
            StoreChoice::Edge => f.write_str("Edge"),
            StoreChoice::Memory => f.write_str("Memory"),
            StoreChoice::QdrantFromEnv => f.write_str("QdrantFromEnv"),
            StoreChoice::Instance(s) => write!(f, "Instance({})", s.name()),
        }
    }
}

/// Settings of the hierarchical selector.
///
/// ```
/// use iat2i_selectors::SelectorConfig;
/// let config = SelectorConfig::default()
///     .model_dir("fixtures/models/tiny-clip")
///     .cache_dir("/tmp/iat2i-cache")
///     .top_k(5);
/// # let _ = config;
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct SelectorConfig {
    /// Where the CLIP model comes from (ignored when `embedder` is set).
    pub model: ClipModelSource,
    /// ONNX Runtime intra-op threads (default: all cores).
    pub intra_threads: Option<usize>,
    /// Hold less memory for the CLIP model at a small cost in speed (see
    /// [`ClipEmbedder::with_low_memory`](crate::ClipEmbedder::with_low_memory)); default off.
    pub low_memory: bool,
    /// An embedder instance to use instead of loading `model`.
    pub embedder: Option<Arc<dyn Embedder>>,
    /// Cache directory: the edge store lives in `<cache_dir>/qdrant-edge`, the memory's
    /// image bytes in `<cache_dir>/blobs`, a downloaded CLIP model in `<cache_dir>/models`
    /// (default: [`default_cache_dir`], that is `$IAT2I_CACHE_DIR`, else `iat2i` in the
    /// user's cache directory).
    pub cache_dir: Option<PathBuf>,
    /// The vector store of the reference memory.
    pub store: StoreChoice,
    /// The reference memory (on by default).
    pub memory: MemoryConfig,
    /// Metadata prefilter.
    pub prefilter: PrefilterConfig,
    /// Download and decode limits.
    pub fetch: FetchConfig,
    /// Largest Hamming distance between perceptual hashes (64 bits) that still counts as the
    /// same picture (default 10).
    pub dedup_threshold: u32,
    /// Images per embedding batch (default 16).
    pub embed_batch: usize,
    /// Ranking weights.
    pub weights: RankWeights,
    /// How many distinct candidates the diversity stage keeps (default 5): the best and its
    /// alternates.
    pub top_k: usize,
    /// MMR trade-off between relevance (1.0) and novelty (0.0) (default 0.7).
    pub mmr_lambda: f32,
    /// How many candidates the judge sees (default 4).
    pub judge_top_k: usize,
}

impl Default for SelectorConfig {
    fn default() -> Self {
        SelectorConfig {
            model: ClipModelSource::default(),
            intra_threads: None,
            low_memory: false,
            embedder: None,
            cache_dir: None,
            store: StoreChoice::default(),
            memory: MemoryConfig::default(),
            prefilter: PrefilterConfig::default(),
            fetch: FetchConfig::default(),
            dedup_threshold: 10,
            embed_batch: 16,
            weights: RankWeights::default(),
            top_k: 5,
            mmr_lambda: 0.7,
            judge_top_k: 4,
        }
    }
}

impl std::fmt::Debug for SelectorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelectorConfig")
            .field("model", &self.model)
            .field("embedder", &self.embedder.is_some())
            .field("cache_dir", &self.cache_dir)
            .field("store", &self.store)
            .field("memory", &self.memory)
            .field("prefilter", &self.prefilter)
            .field("fetch", &self.fetch)
            .field("dedup_threshold", &self.dedup_threshold)
            .field("top_k", &self.top_k)
            .field("mmr_lambda", &self.mmr_lambda)
            .field("judge_top_k", &self.judge_top_k)
            .finish_non_exhaustive()
    }
}

impl SelectorConfig {
    /// Use the CLIP model in a local directory (see [`ClipModelSource::LocalDir`]).
    pub fn model_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        let tokenizer_dir = match self.model {
            ClipModelSource::LocalDir { tokenizer_dir, .. } => tokenizer_dir,
            ClipModelSource::Default { .. } => None,
        };
        self.model = ClipModelSource::LocalDir {
            dir: dir.into(),
            tokenizer_dir,
        };
        self
    }
    /// Look for tokenizer and preprocessor files in `dir` too (only with [`Self::model_dir`]).
    pub fn tokenizer_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        if let ClipModelSource::LocalDir { tokenizer_dir, .. } = &mut self.model {
            *tokenizer_dir = Some(dir.into());
        }
        self
    }
    /// Set the model source.
    pub fn model(mut self, model: ClipModelSource) -> Self {
        self.model = model;
        self
    }
    /// Cap ONNX Runtime's intra-op threads.
    pub fn intra_threads(mut self, n: usize) -> Self {
        self.intra_threads = Some(n);
        self
    }
    /// Hold less memory for the CLIP model at a small cost in speed (see
    /// [`ClipEmbedder::with_low_memory`](crate::ClipEmbedder::with_low_memory)).
    pub fn low_memory(mut self, on: bool) -> Self {
        self.low_memory = on;
        self
    }
    /// Use this embedder instead of loading a CLIP model.
    pub fn embedder(mut self, embedder: Arc<dyn Embedder>) -> Self {
        self.embedder = Some(embedder);
        self
    }
    /// Set the cache directory.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }
    /// Choose the vector store.
    pub fn store(mut self, store: StoreChoice) -> Self {
        self.store = store;
        self
    }
    /// Use this vector store instance.
    pub fn store_instance(mut self, store: Arc<dyn VectorStore>) -> Self {
        self.store = StoreChoice::Instance(store);
        self
    }
    /// Configure the reference memory.
    pub fn memory(mut self, memory: MemoryConfig) -> Self {
        self.memory = memory;
        self
    }
    /// Turn the reference memory off: every candidate is downloaded and embedded, nothing
    /// is remembered.
    pub fn no_memory(mut self) -> Self {
        self.memory.enabled = false;
        self
    }
    /// Fail a selection whose memory cannot be used (locked, unreachable) instead of
    /// selecting without it.
    pub fn require_memory(mut self, required: bool) -> Self {
        self.memory.required = required;
        self
    }
    /// Whether the web is still searched when the memory can answer (see [`SearchPolicy`]).
    pub fn search_policy(mut self, policy: crate::memory::SearchPolicy) -> Self {
        self.memory.policy = policy;
        self
    }
    /// Use only images whose licence `policy` permits (see [`LicensePolicy`]).
    pub fn license_policy(mut self, policy: LicensePolicy) -> Self {
        self.prefilter.license_policy = policy;
        self
    }

    /// Set the prefilter.
    pub fn prefilter(mut self, prefilter: PrefilterConfig) -> Self {
        self.prefilter = prefilter;
        self
    }
    /// Set download and decode limits.
    pub fn fetch(mut self, fetch: FetchConfig) -> Self {
        self.fetch = fetch;
        self
    }
    /// What in these settings cannot be honoured as given (a zero count, a trade-off
    /// outside 0..=1), each in words. The pipeline's builder refuses settings with
    /// problems; [`crate::HierarchicalSelector::new`] warns and uses the nearest valid
    /// value.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let zero = |name: &str| format!("{name}(0): at least 1 is needed");
        if self.fetch.concurrency == 0 {
            out.push(zero("fetch_concurrency"));
        }
        if self.embed_batch == 0 {
            out.push(zero("embed_batch"));
        }
        if self.top_k == 0 {
            out.push(zero("top_k"));
        }
        if self.judge_top_k == 0 {
            out.push(zero("judge_top_k"));
        }
        if !(0.0..=1.0).contains(&self.mmr_lambda) {
            out.push(format!(
                "mmr_lambda({}): the trade-off is from 0 (novelty) to 1 (relevance)",
                self.mmr_lambda
            ));
        }
        out
    }

    /// These settings with every problem replaced by the nearest valid value.
    pub(crate) fn sanitized(mut self) -> Self {
        self.fetch.concurrency = self.fetch.concurrency.max(1);
        self.embed_batch = self.embed_batch.max(1);
        self.top_k = self.top_k.max(1);
        self.judge_top_k = self.judge_top_k.max(1);
        self.mmr_lambda = if self.mmr_lambda.is_nan() {
            SelectorConfig::default().mmr_lambda
        } else {
            self.mmr_lambda.clamp(0.0, 1.0)
        };
        self
    }

    /// Downloads in flight at once.
    pub fn fetch_concurrency(mut self, n: usize) -> Self {
        self.fetch.concurrency = n;
        self
    }
    /// Time allowed per image.
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch.timeout = timeout;
        self
    }
    /// Largest image body accepted, in bytes.
    pub fn max_image_bytes(mut self, n: usize) -> Self {
        self.fetch.max_bytes = n;
        self
    }
    /// Let candidates with `file://` URLs under `dir` be read (the folder of a
    /// `LocalFolder` engine); repeat for several folders.
    pub fn allow_local_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.fetch.local_roots.push(dir.into());
        self
    }
    /// Most memory all decoders of one selection may hold at once, in bytes.
    pub fn max_total_decode(mut self, bytes: u64) -> Self {
        self.fetch.max_total_decode = bytes;
        self
    }
    /// Bounds of the original image handed to a generator: encoded bytes and pixels.
    pub fn reference_bounds(mut self, max_bytes: usize, max_pixels: u64) -> Self {
        self.fetch.max_reference_bytes = max_bytes;
        self.fetch.max_reference_pixels = max_pixels;
        self
    }
    /// Largest decoded width or height.
    pub fn max_image_dimension(mut self, n: u32) -> Self {
        self.fetch.max_dimension = n;
        self
    }
    /// Perceptual-hash distance that still counts as a duplicate.
    pub fn dedup_threshold(mut self, bits: u32) -> Self {
        self.dedup_threshold = bits;
        self
    }
    /// Images per embedding batch.
    pub fn embed_batch(mut self, n: usize) -> Self {
        self.embed_batch = n;
        self
    }
    /// Ranking weights.
    pub fn weights(mut self, weights: RankWeights) -> Self {
        self.weights = weights;
        self
    }
    /// Distinct candidates kept by the diversity stage.
    pub fn top_k(mut self, k: usize) -> Self {
        self.top_k = k;
        self
    }
    /// MMR relevance/novelty trade-off.
    pub fn mmr_lambda(mut self, lambda: f32) -> Self {
        self.mmr_lambda = lambda;
        self
    }
    /// Candidates shown to the judge.
    pub fn judge_top_k(mut self, k: usize) -> Self {
        self.judge_top_k = k;
        self
    }
    /// The memory's collection name prefix (the model and dimension follow it).
    pub fn collection(mut self, prefix: impl Into<String>) -> Self {
        self.memory.collection_prefix = prefix.into();
        self
    }

    /// The cache directory actually used: the configured one, else [`default_cache_dir`]
    /// (`$IAT2I_CACHE_DIR`, else the user's cache directory).
    pub fn resolved_cache_dir(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(default_cache_dir)
    }

    /// The CLIP model source with its download folder resolved: a default model without a
    /// folder of its own is kept in `<cache>/models` of [`Self::resolved_cache_dir`].
    pub fn resolved_model(&self) -> ClipModelSource {
        match &self.model {
            ClipModelSource::Default { cache_dir: None } => ClipModelSource::Default {
                cache_dir: Some(self.resolved_cache_dir().join("models")),
            },
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_limits_are_named_and_a_selector_uses_the_nearest_valid_value() {
        let cfg = SelectorConfig::default()
            .top_k(0)
            .judge_top_k(0)
            .fetch_concurrency(0)
            .mmr_lambda(f32::NAN);
        let problems = cfg.problems();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems.iter().any(|p| p.starts_with("judge_top_k(0)")));
        let fixed = cfg.sanitized();
        assert!(fixed.problems().is_empty());
        assert_eq!(
            (fixed.top_k, fixed.judge_top_k, fixed.fetch.concurrency),
            (1, 1, 1)
        );
        assert_eq!(fixed.mmr_lambda, SelectorConfig::default().mmr_lambda);
        assert!(SelectorConfig::default().problems().is_empty());
    }
}
