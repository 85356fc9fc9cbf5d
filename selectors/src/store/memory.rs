//! Exact brute-force cosine search in memory: the reference the other stores must agree with.

use std::sync::Mutex;

use async_trait::async_trait;
use uuid::Uuid;

use super::{StoreHit, StorePoint, VectorStore};
use crate::embed::cosine;
use crate::error::SelectError;

/// An in-memory [`VectorStore`] that scores every point exactly.
#[derive(Debug, Default)]
pub struct MemoryStore {
    points: Mutex<Vec<StorePoint>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Vec<StorePoint>>, SelectError> {
        self.points
            .lock()
            .map_err(|_| SelectError::Store("memory store: lock poisoned by a crash".into()))
    }
}

#[async_trait]
impl VectorStore for MemoryStore {
    fn name(&self) -> &str {
        "memory"
    }

    async fn upsert(&self, points: Vec<StorePoint>) -> Result<(), SelectError> {
        let mut all = self.lock()?;
        for p in points {
            let id: Uuid = p.id;
            all.retain(|q| q.id != id);
            all.push(p);
        }
        Ok(())
    }

    async fn search(
        &self,
        run_id: &str,
        vector: &[f32],
        limit: usize,
    ) -> Result<Vec<StoreHit>, SelectError> {
        let all = self.lock()?;
        let mut hits: Vec<StoreHit> = all
            .iter()
            .filter(|p| p.payload.run_id == run_id && p.vector.len() == vector.len())
            .map(|p| StoreHit {
                id: p.id,
                score: cosine(&p.vector, vector),
                payload: p.payload.clone(),
            })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits.truncate(limit);
        Ok(hits)
    }

    async fn delete_run(&self, run_id: &str, dim: usize) -> Result<(), SelectError> {
        self.lock()?
            .retain(|p| !(p.payload.run_id == run_id && p.vector.len() == dim));
        Ok(())
    }
}
