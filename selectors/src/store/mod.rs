//! Stage 4b: the vector store that ranks candidates. The [`VectorStore`] trait and its
//! backends: [`EdgeStore`] (qdrant-edge, in-process, the default), [`QdrantStore`] (a Qdrant
//! server, feature `qdrant-server`) and [`MemoryStore`] (exact brute force, the reference).

mod edge;
mod memory;
#[cfg(feature = "qdrant-server")]
mod qdrant;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::SelectError;

pub use edge::EdgeStore;
pub use memory::MemoryStore;
#[cfg(feature = "qdrant-server")]
pub use qdrant::QdrantStore;

/// What is stored beside each candidate's vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointPayload {
    /// The selection run the point belongs to (queries filter on it).
    pub run_id: String,
    /// The search query that found the candidate.
    pub query: String,
    /// The image URL.
    pub url: String,
    /// The engine that found it.
    pub engine: String,
    /// Its licence code, when known.
    pub license: Option<String>,
    /// The candidate's position in this run.
    pub index: u64,
}

/// One vector with its id and payload.
#[derive(Debug, Clone, PartialEq)]
pub struct StorePoint {
    /// Point id (stable for a run and URL).
    pub id: Uuid,
    /// The embedding.
    pub vector: Vec<f32>,
    /// The payload.
    pub payload: PointPayload,
}

impl StorePoint {
    /// A point whose id is derived from the run id and the URL.
    pub fn new(vector: Vec<f32>, payload: PointPayload) -> Self {
        let key = format!("{}\n{}", payload.run_id, payload.url);
        StorePoint {
            id: Uuid::new_v5(&Uuid::NAMESPACE_URL, key.as_bytes()),
            vector,
            payload,
        }
    }
}

/// A search result: cosine similarity and the payload.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreHit {
    /// Point id.
    pub id: Uuid,
    /// Cosine similarity to the query vector.
    pub score: f32,
    /// The payload.
    pub payload: PointPayload,
}

/// A store of candidate vectors, searched by cosine similarity within one run.
#[async_trait]
pub trait VectorStore: Send + Sync {
    /// A short name for reports (`qdrant-edge`, `qdrant`, `memory`).
    fn name(&self) -> &str;
    /// Insert or replace points (all of one dimension).
    async fn upsert(&self, points: Vec<StorePoint>) -> Result<(), SelectError>;
    /// The `limit` points of run `run_id` most similar to `vector`, best first.
    async fn search(
        &self,
        run_id: &str,
        vector: &[f32],
        limit: usize,
    ) -> Result<Vec<StoreHit>, SelectError>;
    /// Remove every point of run `run_id` stored with vectors of dimension `dim`.
    async fn delete_run(&self, run_id: &str, dim: usize) -> Result<(), SelectError>;
}

pub(crate) fn store_err(backend: &str, what: &str, e: impl std::fmt::Display) -> SelectError {
    SelectError::Store(format!("{backend}: {what}: {e}"))
}

/// The one vector dimension of an upsert batch: `None` for an empty batch, an error
/// naming `backend` when the points disagree (one collection or shard holds one size).
pub(crate) fn batch_dim(
    backend: &str,
    points: &[StorePoint],
) -> Result<Option<usize>, SelectError> {
    let Some(dim) = points.first().map(|p| p.vector.len()) else {
        return Ok(None);
    };
    if points.iter().any(|p| p.vector.len() != dim) {
        return Err(store_err(
            backend,
            "upsert",
            "points of different dimensions",
        ));
    }
    Ok(Some(dim))
}
