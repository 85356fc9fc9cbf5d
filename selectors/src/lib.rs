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
//! ONNX Runtime is loaded at run time from `ORT_DYLIB_PATH` (install it with
//! `pip install onnxruntime==1.31.1` or `scripts/setup-ort.sh`).
#![warn(missing_docs)]

mod collect;
mod config;
mod dedup;
mod diversity;
pub mod embed;
mod error;
mod fetch;
mod finish;
mod hierarchical;
mod prefilter;
mod rank;
pub mod store;
mod types;

pub use config::{
    ClipModelSource, FetchConfig, PrefilterConfig, RankWeights, SelectorConfig, StoreChoice,
};
pub use embed::{ClipEmbedder, Embedder};
pub use error::SelectError;
pub use fetch::{PreparedImage, prepare_image};
pub use hierarchical::HierarchicalSelector;
pub use image;
#[cfg(feature = "qdrant-server")]
pub use store::QdrantStore;
pub use store::{EdgeStore, MemoryStore, PointPayload, StoreHit, StorePoint, VectorStore};
pub use types::{
    CandidateJudge, Dropped, JudgeCandidate, JudgePick, RankedCandidate, Reference, Selection,
    SelectionRequest, Selector, Stage, StageReport, StageScores,
};
