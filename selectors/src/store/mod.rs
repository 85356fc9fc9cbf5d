//! The vector stores behind the reference memory. The [`VectorStore`] trait and its
//! backends: [`EdgeStore`] (qdrant-edge, in-process, the default), [`QdrantStore`] (a Qdrant
//! server, feature `qdrant-server`) and [`MemoryStore`] (exact brute force, the reference the
//! others are tested against).
//!
//! A store holds named collections; each has one vector size, cosine distance, and payload
//! indexes on the fields the memory filters by. Payloads are JSON objects.

mod edge;
mod filter;
mod memory;
#[cfg(feature = "qdrant-server")]
mod qdrant;

use async_trait::async_trait;
use uuid::Uuid;

use crate::error::SelectError;

pub use edge::EdgeStore;
pub use filter::{Condition, StoreFilter};
pub use memory::MemoryStore;
#[cfg(feature = "qdrant-server")]
pub use qdrant::QdrantStore;

/// A JSON object stored beside a vector.
pub type Payload = serde_json::Map<String, serde_json::Value>;

/// How a payload field is indexed (for filtering).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldKind {
    /// Exact string match (also arrays of strings).
    Keyword,
    /// Integers (ranges and matches).
    Integer,
    /// Booleans.
    Bool,
}

/// What a collection is: its name, vector size and indexed payload fields.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionSpec {
    /// The collection's name (`[A-Za-z0-9_-]`).
    pub name: String,
    /// The vector size.
    pub dim: usize,
    /// Payload fields to index.
    pub indexes: Vec<(String, FieldKind)>,
}

/// One vector with its id and payload.
#[derive(Debug, Clone, PartialEq)]
pub struct StorePoint {
    /// Point id.
    pub id: Uuid,
    /// The embedding (empty when a read did not ask for vectors).
    pub vector: Vec<f32>,
    /// The payload.
    pub payload: Payload,
}

/// A search result: cosine similarity and the payload.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreHit {
    /// Point id.
    pub id: Uuid,
    /// Cosine similarity to the query vector.
    pub score: f32,
    /// The payload.
    pub payload: Payload,
}

/// A store of vectors in named collections, searched by cosine similarity.
///
/// Reads of a collection that does not exist yet return nothing (not an error); writes
/// need [`VectorStore::ensure`] first.
#[async_trait]
pub trait VectorStore: Send + Sync {
    /// A short name for reports (`qdrant-edge`, `qdrant`, `memory`).
    fn name(&self) -> &str;
    /// Take what serving this process needs now instead of on first use: the embedded
    /// store's directory lock (an error, [`SelectError::StoreLocked`], when another
    /// process holds it), a server's answer. The default: nothing to take.
    async fn ready(&self) -> Result<(), SelectError> {
        Ok(())
    }
    /// Create the collection when it is missing (size, cosine distance, payload indexes).
    /// Safe to call from many workers at once.
    async fn ensure(&self, spec: &CollectionSpec) -> Result<(), SelectError>;
    /// Insert or replace points (all of the collection's dimension). A replaced point loses
    /// its whole payload, including what other writers merged into it: to change part of a
    /// point that may exist, use [`VectorStore::insert`] and [`VectorStore::set_payload`].
    async fn upsert(&self, collection: &str, points: Vec<StorePoint>) -> Result<(), SelectError>;
    /// Insert the points whose ids the collection does not hold yet; points that exist are
    /// left exactly as they are (Qdrant's `insert_only` update mode), so a writer that
    /// raced another one never wipes what that one stored.
    async fn insert(&self, collection: &str, points: Vec<StorePoint>) -> Result<(), SelectError>;
    /// Merge `fields` into the payload of the existing point `id`, leaving every other field
    /// as it is (Qdrant's set-payload). With `key`, the fields are merged into the object at
    /// that top-level field (created when missing), so `set_payload(c, id, Some("m"),
    /// {"x": 1})` sets `m.x` alone. Concurrent writers of different fields never overwrite
    /// each other. An error when the point does not exist.
    async fn set_payload(
        &self,
        collection: &str,
        id: Uuid,
        key: Option<&str>,
        fields: Payload,
    ) -> Result<(), SelectError>;
    /// The `limit` points matching `filter` most similar to `vector`, best first.
    async fn search(
        &self,
        collection: &str,
        vector: &[f32],
        filter: &StoreFilter,
        limit: usize,
    ) -> Result<Vec<StoreHit>, SelectError>;
    /// The points with these ids (with vectors), in no particular order; missing ids are skipped.
    async fn retrieve(
        &self,
        collection: &str,
        ids: &[Uuid],
    ) -> Result<Vec<StorePoint>, SelectError>;
    /// Up to `limit` points matching `filter` (without vectors) from `offset` on, in id
    /// order, and the offset of the next page.
    async fn scroll(
        &self,
        collection: &str,
        filter: &StoreFilter,
        offset: Option<Uuid>,
        limit: usize,
    ) -> Result<(Vec<StorePoint>, Option<Uuid>), SelectError>;
    /// How many points match `filter`.
    async fn count(&self, collection: &str, filter: &StoreFilter) -> Result<u64, SelectError>;
    /// Remove the points matching `filter`.
    async fn delete(&self, collection: &str, filter: &StoreFilter) -> Result<(), SelectError>;
    /// The names of the collections in the store.
    async fn collections(&self) -> Result<Vec<String>, SelectError>;
}

pub(crate) fn store_err(backend: &str, what: &str, e: impl std::fmt::Display) -> SelectError {
    SelectError::Store(format!("{backend}: {what}: {e}"))
}

/// Refuse an upsert whose points do not all have `dim` components (one collection holds
/// one size).
pub(crate) fn check_dims(
    backend: &str,
    points: &[StorePoint],
    dim: Option<usize>,
) -> Result<(), SelectError> {
    let Some(dim) = dim.or_else(|| points.first().map(|p| p.vector.len())) else {
        return Ok(());
    };
    if points.iter().any(|p| p.vector.len() != dim) {
        return Err(store_err(
            backend,
            "upsert",
            format!("points must all have {dim} components (the collection's size)"),
        ));
    }
    Ok(())
}

/// A collection name made of `[A-Za-z0-9_-]` only (anything else becomes `-`).
pub fn collection_name(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| {
            p.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                        c.to_ascii_lowercase()
                    } else {
                        '-'
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("_")
}
