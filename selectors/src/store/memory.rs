//! Exact brute-force cosine search in memory: the reference the other stores must agree with.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use uuid::Uuid;

use super::{CollectionSpec, Payload, StoreFilter, StoreHit, StorePoint, VectorStore, check_dims};
use crate::embed::cosine;
use crate::error::SelectError;

#[derive(Debug, Default)]
struct Collection {
    dim: usize,
    points: BTreeMap<Uuid, StorePoint>,
}

/// An in-memory [`VectorStore`] that scores every point exactly (nothing persists).
#[derive(Debug, Default)]
pub struct MemoryStore {
    collections: Mutex<HashMap<String, Collection>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Write `points`, replacing existing ones, or with `insert_only` keeping them.
    fn write_points(
        &self,
        collection: &str,
        points: Vec<StorePoint>,
        insert_only: bool,
    ) -> Result<(), SelectError> {
        let mut all = self.lock()?;
        let Some(c) = all.get_mut(collection) else {
            return Err(SelectError::Store(format!(
                "memory store: no collection {collection} (ensure it first)"
            )));
        };
        check_dims("memory", &points, Some(c.dim))?;
        for p in points {
            if insert_only {
                c.points.entry(p.id).or_insert(p);
            } else {
                c.points.insert(p.id, p);
            }
        }
        Ok(())
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Collection>>, SelectError> {
        self.collections
            .lock()
            .map_err(|_| SelectError::Store("memory store: lock poisoned by a crash".into()))
    }
}

#[async_trait]
impl VectorStore for MemoryStore {
    fn name(&self) -> &str {
        "memory"
    }

    async fn ensure(&self, spec: &CollectionSpec) -> Result<(), SelectError> {
        self.lock()?
            .entry(spec.name.clone())
            .or_insert_with(|| Collection {
                dim: spec.dim,
                points: BTreeMap::new(),
            });
        Ok(())
    }

    async fn upsert(&self, collection: &str, points: Vec<StorePoint>) -> Result<(), SelectError> {
        self.write_points(collection, points, false)
    }

    async fn insert(&self, collection: &str, points: Vec<StorePoint>) -> Result<(), SelectError> {
        self.write_points(collection, points, true)
    }

    async fn set_payload(
        &self,
        collection: &str,
        id: Uuid,
        key: Option<&str>,
        fields: Payload,
    ) -> Result<(), SelectError> {
        let mut all = self.lock()?;
        let Some(point) = all.get_mut(collection).and_then(|c| c.points.get_mut(&id)) else {
            return Err(SelectError::Store(format!(
                "memory store: set payload: no point {id} in {collection}"
            )));
        };
        let target = match key {
            None => &mut point.payload,
            Some(key) => {
                let slot = point
                    .payload
                    .entry(key.to_string())
                    .or_insert_with(|| serde_json::Value::Object(Payload::new()));
                if !slot.is_object() {
                    *slot = serde_json::Value::Object(Payload::new());
                }
                match slot.as_object_mut() {
                    Some(map) => map,
                    None => return Ok(()),
                }
            }
        };
        target.extend(fields);
        Ok(())
    }

    async fn search(
        &self,
        collection: &str,
        vector: &[f32],
        filter: &StoreFilter,
        limit: usize,
    ) -> Result<Vec<StoreHit>, SelectError> {
        let all = self.lock()?;
        let Some(c) = all.get(collection) else {
            return Ok(Vec::new());
        };
        let mut hits: Vec<StoreHit> = c
            .points
            .values()
            .filter(|p| filter.matches(&p.payload))
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

    async fn retrieve(
        &self,
        collection: &str,
        ids: &[Uuid],
    ) -> Result<Vec<StorePoint>, SelectError> {
        let all = self.lock()?;
        let Some(c) = all.get(collection) else {
            return Ok(Vec::new());
        };
        Ok(ids
            .iter()
            .filter_map(|id| c.points.get(id).cloned())
            .collect())
    }

    async fn scroll(
        &self,
        collection: &str,
        filter: &StoreFilter,
        offset: Option<Uuid>,
        limit: usize,
    ) -> Result<(Vec<StorePoint>, Option<Uuid>), SelectError> {
        let all = self.lock()?;
        let Some(c) = all.get(collection) else {
            return Ok((Vec::new(), None));
        };
        let mut page: Vec<StorePoint> = c
            .points
            .range(offset.unwrap_or(Uuid::nil())..)
            .map(|(_, p)| p)
            .filter(|p| filter.matches(&p.payload))
            .take(limit.saturating_add(1))
            .map(|p| StorePoint {
                vector: Vec::new(),
                ..p.clone()
            })
            .collect();
        let next = if page.len() > limit {
            page.pop().map(|p| p.id)
        } else {
            None
        };
        Ok((page, next))
    }

    async fn count(&self, collection: &str, filter: &StoreFilter) -> Result<u64, SelectError> {
        let all = self.lock()?;
        Ok(all.get(collection).map_or(0, |c| {
            c.points
                .values()
                .filter(|p| filter.matches(&p.payload))
                .count() as u64
        }))
    }

    async fn delete(&self, collection: &str, filter: &StoreFilter) -> Result<(), SelectError> {
        if let Some(c) = self.lock()?.get_mut(collection) {
            c.points.retain(|_, p| !filter.matches(&p.payload));
        }
        Ok(())
    }

    async fn collections(&self) -> Result<Vec<String>, SelectError> {
        let mut names: Vec<String> = self.lock()?.keys().cloned().collect();
        names.sort();
        Ok(names)
    }
}
