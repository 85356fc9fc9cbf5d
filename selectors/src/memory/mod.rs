//! The reference memory: every image the selector fetched and embedded, remembered in a
//! [`VectorStore`] collection per embedding model (its vector and provenance) with its bytes
//! in a content-addressed [`BlobCache`].
//!
//! Selection uses it three ways: a candidate whose URL is remembered (and fresh) reuses its
//! vector and bytes (no download, no embedding); the prompt's and queries' text vectors
//! recall remembered images as candidates of their own; and the judge's verdicts on a
//! reference move it up or down next time. A curated asset folder can be indexed into it
//! ([`ReferenceMemory::index_folder`]).

mod admin;
pub mod blobs;
mod library;
mod record;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use iat2i_retrievers::LicensePolicy;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::SelectError;
use crate::store::{
    CollectionSpec, Condition, Payload, StoreFilter, StorePoint, VectorStore, collection_name,
};

pub use admin::{MemoryStats, PruneRule};
pub use blobs::{BlobCache, BlobStats, content_hash};
pub use library::{IndexReport, LibraryItem};
pub(crate) use record::now_secs;
pub use record::{
    MemoryRecord, SOURCE_LIBRARY, SOURCE_WEB, Tally, VERDICTS, normalize_url, point_id,
};

/// Whether the web is still searched when the memory can answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SearchPolicy {
    /// Always search the web; remembered images join the candidates (default).
    #[default]
    Always,
    /// Search the web only when the memory recalls fewer than this many good hits.
    WhenFewerThan(usize),
    /// Never search the web: select from the memory alone.
    MemoryOnly,
}

impl std::fmt::Display for SearchPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SearchPolicy::Always => f.write_str("always"),
            SearchPolicy::WhenFewerThan(k) => write!(f, "fewer-than:{k}"),
            SearchPolicy::MemoryOnly => f.write_str("memory-only"),
        }
    }
}

impl std::str::FromStr for SearchPolicy {
    type Err = String;

    /// `always`, `memory-only`, or `fewer-than:K` (K from 1).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "always" => return Ok(SearchPolicy::Always),
            "memory-only" | "never" => return Ok(SearchPolicy::MemoryOnly),
            _ => {}
        }
        let k = s
            .strip_prefix("fewer-than:")
            .and_then(|k| k.trim().parse::<usize>().ok())
            .filter(|k| *k >= 1);
        k.map(SearchPolicy::WhenFewerThan).ok_or_else(|| {
            format!(
                "unknown search policy {s:?}: use always, memory-only or fewer-than:K (K from 1)"
            )
        })
    }
}

/// Settings of the reference memory.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MemoryConfig {
    /// Use the memory at all (default true).
    pub enabled: bool,
    /// Fail the selection when the memory cannot be used (locked by another process, server
    /// unreachable) instead of selecting without it (default false).
    pub required: bool,
    /// How long a remembered image counts as fresh (default 30 days); older ones are
    /// downloaded and embedded again, and not recalled.
    pub ttl: Duration,
    /// Whether the web is still searched (default [`SearchPolicy::Always`]).
    pub policy: SearchPolicy,
    /// Hits recalled per text vector (default 20).
    pub recall_limit: usize,
    /// Smallest text-to-image cosine similarity of a good hit (default 0.25).
    pub recall_min_score: f32,
    /// Ranking weight of the judge's verdicts (default 0.1): a combined score moves by up to
    /// this much for references the judge accepted (up) or rejected (down).
    pub feedback_weight: f32,
    /// Size cap of the blob cache in bytes (default 2 GiB).
    pub blob_cap: u64,
    /// Collection name prefix (default `iat2i_refs`); the model and dimension follow it.
    pub collection_prefix: String,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            enabled: true,
            required: false,
            ttl: Duration::from_secs(30 * 24 * 3600),
            policy: SearchPolicy::Always,
            recall_limit: 20,
            recall_min_score: 0.25,
            feedback_weight: 0.1,
            blob_cap: 2 * 1024 * 1024 * 1024,
            collection_prefix: "iat2i_refs".into(),
        }
    }
}

impl MemoryConfig {
    /// The memory turned off: selection downloads and embeds every candidate.
    pub fn disabled() -> Self {
        MemoryConfig {
            enabled: false,
            ..Self::default()
        }
    }
}

/// How a selection used the memory (part of the [`Selection`](crate::Selection)).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryUse {
    /// The store (`qdrant-edge`, `qdrant`, `memory`), when the memory was on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// The collection used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    /// Candidates whose vector and bytes came from the memory (no download, no embedding).
    pub reused: usize,
    /// Remembered images recalled by the prompt's and queries' text and added as candidates.
    pub recalled: usize,
    /// Images written to the memory by this selection.
    pub stored: usize,
    /// Why the memory was not (fully) used, in words a user can act on; `None` when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degraded: Option<String>,
}

/// A remembered image as read back: its record and vector.
#[derive(Debug, Clone)]
pub struct Remembered {
    /// The point id.
    pub id: Uuid,
    /// The payload.
    pub record: MemoryRecord,
    /// The embedding (empty when not read).
    pub vector: Vec<f32>,
}

/// One image to write: id, record and vector, and its bytes when they are new to the cache.
#[derive(Debug, Clone)]
pub(crate) struct Write {
    pub id: Uuid,
    pub record: MemoryRecord,
    pub vector: Vec<f32>,
    pub bytes: Option<Bytes>,
    pub kind: WriteKind,
}

/// What the memory held for a [`Write`] when it was read, which decides how it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteKind {
    /// Not remembered: inserted whole (unless another writer inserted it meanwhile).
    New,
    /// Remembered with this vector: its fields are merged, its tally left alone.
    Known,
    /// Remembered with another vector (the image at its URL changed): replaced whole.
    Changed,
}

impl WriteKind {
    /// The kind of a write of `vector` over `known` (what the memory held, if anything).
    /// Stores normalise cosine vectors, so "the same vector" means the same direction.
    pub(crate) fn of(known: Option<&Remembered>, vector: &[f32]) -> Self {
        match known {
            None => WriteKind::New,
            Some(k)
                if k.vector.len() == vector.len()
                    && crate::embed::cosine(&k.vector, vector) >= 0.9999 =>
            {
                WriteKind::Known
            }
            Some(_) => WriteKind::Changed,
        }
    }
}

impl Write {
    fn point(self) -> StorePoint {
        StorePoint {
            id: self.id,
            vector: self.vector,
            payload: self.record.to_payload(),
        }
    }
}

/// The reference memory: a vector store and a blob cache (see the module documentation).
#[derive(Clone)]
pub struct ReferenceMemory {
    store: Arc<dyn VectorStore>,
    blobs: Arc<BlobCache>,
    config: MemoryConfig,
}

impl std::fmt::Debug for ReferenceMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReferenceMemory")
            .field("store", &self.store.name())
            .field("blobs", &self.blobs.dir())
            .field("config", &self.config)
            .finish()
    }
}

impl ReferenceMemory {
    /// A memory on `store`, with image bytes in `blobs`.
    pub fn new(store: Arc<dyn VectorStore>, blobs: BlobCache, config: MemoryConfig) -> Self {
        ReferenceMemory {
            store,
            blobs: Arc::new(blobs),
            config,
        }
    }

    /// The vector store.
    pub fn store(&self) -> &Arc<dyn VectorStore> {
        &self.store
    }

    /// The blob cache.
    pub fn blobs(&self) -> &BlobCache {
        &self.blobs
    }

    /// The settings.
    pub fn config(&self) -> &MemoryConfig {
        &self.config
    }

    /// The collection for `model` and `dim`: `<prefix>_<model>_<dim>`, with its payload indexes.
    pub fn spec(&self, model: &str, dim: usize) -> CollectionSpec {
        CollectionSpec {
            name: collection_name(&[&self.config.collection_prefix, model, &dim.to_string()]),
            dim,
            indexes: record::indexed_fields(),
        }
    }

    fn fresh_since(&self) -> i64 {
        now_secs().saturating_sub(self.config.ttl.as_secs().min(i64::MAX as u64) as i64)
    }

    /// True when `record` was seen within the TTL (curated assets never go stale).
    pub fn is_fresh(&self, record: &MemoryRecord) -> bool {
        record.source == SOURCE_LIBRARY || record.last_seen >= self.fresh_since()
    }

    /// Fresh records: seen within the TTL, or curated.
    fn fresh_filter(&self) -> StoreFilter {
        StoreFilter::all().with(Condition::Either(vec![
            Condition::Range {
                key: "last_seen".into(),
                gte: Some(self.fresh_since() as f64),
                lt: None,
            },
            Condition::Keyword("source".into(), SOURCE_LIBRARY.into()),
        ]))
    }

    /// The remembered images with these ids (with vectors).
    pub async fn get(
        &self,
        collection: &str,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, Remembered>, SelectError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let points = self.store.retrieve(collection, ids).await?;
        Ok(points
            .into_iter()
            .filter_map(|p| {
                let record = MemoryRecord::from_payload(&p.payload)?;
                Some((
                    p.id,
                    Remembered {
                        id: p.id,
                        record,
                        vector: p.vector,
                    },
                ))
            })
            .collect())
    }

    /// Fresh remembered images most similar to any of `texts` (text vectors), filtered by
    /// licence `policy`; with `entities`, also the fresh images found for any of
    /// them. Each id once, with its best similarity; best first. Vectors are not read.
    pub async fn recall(
        &self,
        collection: &str,
        texts: &[Vec<f32>],
        entities: &[String],
        policy: LicensePolicy,
    ) -> Result<Vec<(f32, Remembered)>, SelectError> {
        let mut base = self.fresh_filter();
        if let Some(c) = record::license_condition(policy) {
            base = base.with(c);
        }
        let limit = self.config.recall_limit.max(1);
        let mut best: HashMap<Uuid, (f32, MemoryRecord)> = HashMap::new();
        let mut keep = |hits: Vec<crate::store::StoreHit>, min: f32| {
            for h in hits.into_iter().filter(|h| h.score >= min) {
                let Some(record) = MemoryRecord::from_payload(&h.payload) else {
                    continue;
                };
                let e = best.entry(h.id).or_insert((h.score, record));
                e.0 = e.0.max(h.score);
            }
        };
        for v in texts {
            let hits = self.store.search(collection, v, &base, limit).await?;
            keep(hits, self.config.recall_min_score);
        }
        let entities: Vec<String> = entities
            .iter()
            .map(|e| e.trim().to_lowercase())
            .filter(|e| !e.is_empty())
            .collect();
        if let (false, Some(v)) = (entities.is_empty(), texts.first()) {
            let f = base.with(Condition::AnyKeyword("entities".into(), entities));
            let hits = self.store.search(collection, v, &f, limit).await?;
            keep(hits, f32::MIN);
        }
        let mut out: Vec<(f32, Remembered)> = best
            .into_iter()
            .map(|(id, (score, record))| {
                (
                    score,
                    Remembered {
                        id,
                        record,
                        vector: Vec::new(),
                    },
                )
            })
            .collect();
        out.sort_by(|a, b| b.0.total_cmp(&a.0));
        Ok(out)
    }

    /// The cached bytes of `hash`, when present and intact.
    pub async fn bytes(&self, hash: &str) -> Option<Bytes> {
        let blobs = self.blobs.clone();
        let hash = hash.to_string();
        tokio::task::spawn_blocking(move || blobs.get(&hash))
            .await
            .ok()
            .flatten()
    }

    /// Write images (their bytes to the blob cache first, then the points), and count
    /// `chosen` (one of them) as chosen once.
    ///
    /// Nothing another writer counted is lost: new images are inserted only where no
    /// other writer inserted them first, remembered ones get their fields merged (never
    /// their counts), and the choice is a tally entry of its own (see [`VERDICTS`]). An
    /// image whose bytes changed at its URL is replaced whole (new vector) with the counts
    /// as read; only then can a verdict recorded in the same instant be lost.
    pub(crate) async fn write(
        &self,
        spec: &CollectionSpec,
        writes: Vec<Write>,
        chosen: Option<Uuid>,
    ) -> Result<usize, SelectError> {
        if writes.is_empty() {
            return Ok(0);
        }
        let blobs = self.blobs.clone();
        let datas: Vec<Bytes> = writes.iter().filter_map(|w| w.bytes.clone()).collect();
        tokio::task::spawn_blocking(move || {
            for d in datas {
                if let Err(e) = blobs.put(&d) {
                    tracing::warn!(error = %e, "could not cache an image's bytes");
                }
            }
        })
        .await
        .map_err(|e| SelectError::Store(format!("blob cache: writing crashed: {e}")))?;
        self.store.ensure(spec).await?;
        let n = writes.len();
        let (replace, keep): (Vec<Write>, Vec<Write>) = writes
            .into_iter()
            .partition(|w| w.kind == WriteKind::Changed);
        let merges: Vec<(Uuid, Payload)> = keep
            .iter()
            .filter(|w| w.kind == WriteKind::Known)
            .map(|w| (w.id, w.record.merge_payload()))
            .collect();
        let name = &spec.name;
        self.store
            .insert(name, keep.into_iter().map(Write::point).collect())
            .await?;
        for (id, fields) in merges {
            self.store.set_payload(name, id, None, fields).await?;
        }
        self.store
            .upsert(name, replace.into_iter().map(Write::point).collect())
            .await?;
        if let Some(id) = chosen {
            self.tally(name, id, Tally::Chosen).await?;
        }
        Ok(n)
    }

    /// Add `event` to the tally of point `id` (a key of its own: see [`VERDICTS`]).
    async fn tally(&self, collection: &str, id: Uuid, event: Tally) -> Result<(), SelectError> {
        self.store
            .set_payload(collection, id, Some(VERDICTS), event.entry())
            .await
    }

    /// Record the judge's verdict on the reference with image URL `url`: accepted (it
    /// ranks higher next time) or rejected (lower). A URL the memory does not hold is
    /// ignored; returns whether a record changed.
    ///
    /// Only the verdict is written, as a tally entry of its own (see [`VERDICTS`]): workers
    /// recording verdicts on the same image at once (batch shards on one Qdrant server)
    /// never overwrite each other's counts.
    pub async fn verdict(
        &self,
        collection: &str,
        model: &str,
        url: &url::Url,
        accepted: bool,
    ) -> Result<bool, SelectError> {
        let id = point_id(model, url);
        if self.store.retrieve(collection, &[id]).await?.is_empty() {
            return Ok(false);
        }
        let event = if accepted {
            Tally::Accepted
        } else {
            Tally::Rejected
        };
        self.tally(collection, id, event).await?;
        Ok(true)
    }
}

#[cfg(test)]
mod policy_tests {
    use super::SearchPolicy;

    #[test]
    fn search_policies_parse_and_print_back() {
        for p in [
            SearchPolicy::Always,
            SearchPolicy::MemoryOnly,
            SearchPolicy::WhenFewerThan(3),
        ] {
            assert_eq!(p.to_string().parse::<SearchPolicy>(), Ok(p));
        }
        assert_eq!("never".parse(), Ok(SearchPolicy::MemoryOnly));
        for bad in ["", "sometimes", "fewer-than:0", "fewer-than:x"] {
            assert!(bad.parse::<SearchPolicy>().is_err(), "{bad:?}");
        }
    }
}
