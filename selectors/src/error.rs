//! The crate's error type.

use crate::stage::Dropped;

/// What went wrong while selecting a reference.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SelectError {
    /// Every candidate was dropped; `dropped` says by which stage and why.
    #[error("no usable reference among {} candidates", .dropped.len())]
    NoCandidates {
        /// Every candidate with the reason it was dropped.
        dropped: Vec<Dropped>,
    },
    /// The embedding model could not be loaded or run.
    #[error("embedding: {0}")]
    Embedding(String),
    /// The vector store failed.
    #[error("vector store: {0}")]
    Store(String),
    /// The candidate judge failed (the selector falls back to CLIP's top-1 when it can).
    #[error("candidate judge: {0}")]
    Judge(String),
    /// The selector is misconfigured.
    #[error("configuration: {0}")]
    Config(String),
}
