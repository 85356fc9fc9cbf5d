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
    /// The embedded store's directory is locked by another process (qdrant-edge serves one
    /// process per directory).
    #[error(
        "the reference memory at {} is locked by another process; share one memory through a \
         Qdrant server (set QDRANT_URL), or give this process another cache directory",
        path.display()
    )]
    StoreLocked {
        /// The locked directory.
        path: std::path::PathBuf,
    },
    /// The selector is misconfigured.
    #[error("configuration: {0}")]
    Config(String),
}
