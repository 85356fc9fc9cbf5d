//! Hierarchical selection of the reference image that best shows an image generator
//! what a prompt needs.
//!
//! Tens of web candidates go in; one [`Reference`] (with its bytes) comes out, together
//! with the ranked survivors, the alternates the pipeline may try next, and every dropped
//! candidate with the stage and reason that dropped it.
//!
//! The stages, each in its own module: [`prefilter`](PrefilterConfig) on metadata, fetch and
//! decode under limits, perceptual-hash dedup, CLIP embedding ([`Embedder`],
//! [`ClipEmbedder`]) and ranking in a [`VectorStore`] ([`EdgeStore`] by default), MMR
//! diversity, and an optional [`CandidateJudge`].
//!
//! The [`ReferenceMemory`] remembers every image fetched and embedded (vector, provenance,
//! bytes) across runs and workers: remembered images are reused without a download,
//! recalled by text as candidates of their own, and ranked by the judge's past verdicts.
//!
//! ONNX Runtime is loaded at run time: from `ORT_DYLIB_PATH`, else from where a user would
//! have installed it (the library path, the `onnxruntime` Python wheel, the repository's
//! `.tools/`, the standard library folders; see [`OrtSearch`]). Install it with
//! `pip install onnxruntime==1.31.1` or `scripts/setup-ort.sh`.
//!
//! Models and the embedded store default to the user's cache directory
//! ([`default_cache_dir`]; override with `IAT2I_CACHE_DIR` or [`SelectorConfig::cache_dir`]).
#![warn(missing_docs)]

mod cache;
mod collect;
mod config;
mod dedup;
mod diversity;
pub mod embed;
mod error;
mod fetch;
mod finish;
mod hierarchical;
pub mod memory;
mod original;
mod prefilter;
mod rank;
mod remember;
mod run;
mod spill;
mod stage;
pub mod store;
mod types;

pub use cache::{CACHE_DIR_ENV, default_cache_dir};
pub use config::{FetchConfig, PrefilterConfig, RankWeights, SelectorConfig, StoreChoice};
pub use embed::{
    ClipEmbedder, ClipModelSource, Embedder, ORT_INSTALL, OrtSearch, find_onnx_runtime,
    load_onnx_runtime,
};
pub use error::SelectError;
pub use fetch::{PreparedImage, prepare_image};
pub use hierarchical::HierarchicalSelector;
pub use image;
pub use memory::{MemoryConfig, MemoryUse, ReferenceMemory, SearchPolicy};
pub use stage::{Dropped, RankedCandidate, Stage, StageReport, StageScores};
#[cfg(feature = "qdrant-server")]
pub use store::QdrantStore;
pub use store::{
    CollectionSpec, Condition, EdgeStore, MemoryStore, StoreFilter, StoreHit, StorePoint,
    VectorStore,
};
pub use types::{
    CandidateJudge, JudgeCandidate, JudgePick, Reference, ReferenceSource, Selection,
    SelectionRequest, Selector,
};
