//! Looking after the memory: statistics, and pruning by age, source and licence.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::{MemoryRecord, ReferenceMemory, now_secs};
use crate::SelectError;
use crate::store::{Condition, StoreFilter};

/// What the memory holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MemoryStats {
    /// The store's name.
    pub store: String,
    /// Images per collection (one collection per embedding model and dimension).
    pub collections: BTreeMap<String, u64>,
    /// Images per source (`web`, `library`).
    pub by_source: BTreeMap<String, u64>,
    /// Images per engine.
    pub by_engine: BTreeMap<String, u64>,
    /// Images per licence code (`none` when unknown).
    pub by_license: BTreeMap<String, u64>,
    /// Oldest and newest `last_seen` (seconds since the epoch).
    pub last_seen_range: Option<(i64, i64)>,
    /// Times chosen, accepted and rejected, summed.
    pub chosen: u64,
    /// Verdicts that accepted a reference.
    pub accepted: u64,
    /// Verdicts that rejected a reference.
    pub rejected: u64,
    /// Blobs in the cache.
    pub blobs: u64,
    /// Bytes in the blob cache.
    pub blob_bytes: u64,
    /// The blob cache's cap.
    pub blob_cap: u64,
}

/// Which remembered images [`ReferenceMemory::prune`] removes: those matching every rule given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PruneRule {
    /// Last seen longer ago than this.
    pub older_than: Option<Duration>,
    /// From this source (`web`, `library`) or engine (`bing`, `wikimedia`, ...).
    pub source: Option<String>,
    /// With this licence code (`none` for images without a known licence).
    pub license: Option<String>,
}

impl PruneRule {
    fn filter(&self) -> Result<StoreFilter, SelectError> {
        let mut f = StoreFilter::all();
        if self.older_than.is_none() && self.source.is_none() && self.license.is_none() {
            return Err(SelectError::Config(
                "prune needs at least one rule (age, source or licence); nothing was removed"
                    .into(),
            ));
        }
        if let Some(age) = self.older_than {
            let cutoff = now_secs().saturating_sub(age.as_secs().min(i64::MAX as u64) as i64);
            f = f.with(Condition::Range {
                key: "last_seen".into(),
                gte: None,
                lt: Some(cutoff as f64),
            });
        }
        if let Some(s) = &self.source {
            let key = if s == super::SOURCE_WEB || s == super::SOURCE_LIBRARY {
                "source"
            } else {
                "engine"
            };
            f = f.with(Condition::Keyword(key.into(), s.clone()));
        }
        match self.license.as_deref() {
            // Images without a licence have no `license` field; narrow to those no
            // policy but `any` permits here and pick the unlicensed among them while
            // scrolling.
            Some("none") => {
                f = f.with(Condition::Range {
                    key: "license_level".into(),
                    gte: None,
                    lt: Some(1.0),
                })
            }
            Some(code) => {
                f = f.with(Condition::Keyword("license".into(), code.to_lowercase()));
            }
            None => {}
        }
        Ok(f)
    }
}

const PAGE: usize = 1000;

impl ReferenceMemory {
    /// The collections of this memory (those named with its prefix).
    pub async fn collections(&self) -> Result<Vec<String>, SelectError> {
        let prefix = format!("{}_", self.config.collection_prefix);
        Ok(self
            .store
            .collections()
            .await?
            .into_iter()
            .filter(|c| c.starts_with(&prefix))
            .collect())
    }

    /// Every record of `collection` matching `filter`, page by page.
    async fn each(
        &self,
        collection: &str,
        filter: &StoreFilter,
        mut f: impl FnMut(uuid::Uuid, MemoryRecord),
    ) -> Result<(), SelectError> {
        let mut offset = None;
        loop {
            let (page, next) = self.store.scroll(collection, filter, offset, PAGE).await?;
            for p in page {
                if let Some(r) = MemoryRecord::from_payload(&p.payload) {
                    f(p.id, r);
                }
            }
            match next {
                Some(n) => offset = Some(n),
                None => return Ok(()),
            }
        }
    }

    /// What the memory holds, per collection, source, engine and licence.
    pub async fn stats(&self) -> Result<MemoryStats, SelectError> {
        let mut s = MemoryStats {
            store: self.store.name().to_string(),
            ..MemoryStats::default()
        };
        for c in self.collections().await? {
            let mut n = 0;
            self.each(&c, &StoreFilter::all(), |_, r| {
                n += 1;
                *s.by_source.entry(r.source.clone()).or_default() += 1;
                *s.by_engine.entry(r.engine.clone()).or_default() += 1;
                let lic = r.license.clone().unwrap_or_else(|| "none".into());
                *s.by_license.entry(lic).or_default() += 1;
                s.chosen += r.chosen;
                s.accepted += r.accepted;
                s.rejected += r.rejected;
                s.last_seen_range = Some(match s.last_seen_range {
                    None => (r.last_seen, r.last_seen),
                    Some((lo, hi)) => (lo.min(r.last_seen), hi.max(r.last_seen)),
                });
            })
            .await?;
            s.collections.insert(c, n);
        }
        let blobs = self.blobs.clone();
        let b = tokio::task::spawn_blocking(move || blobs.stats())
            .await
            .map_err(|e| SelectError::Store(format!("blob cache: stats crashed: {e}")))?;
        s.blobs = b.count;
        s.blob_bytes = b.bytes;
        s.blob_cap = b.cap;
        Ok(s)
    }

    /// Remove the remembered images matching `rule` (in every collection of this memory)
    /// and their cached bytes; returns how many were removed.
    pub async fn prune(&self, rule: &PruneRule) -> Result<u64, SelectError> {
        let filter = rule.filter()?;
        let no_licence = rule.license.as_deref() == Some("none");
        let mut removed = 0;
        for c in self.collections().await? {
            let mut victims = Vec::new();
            self.each(&c, &filter, |id, r| {
                if !no_licence || r.license.is_none() {
                    victims.push((id, r.content_hash));
                }
            })
            .await?;
            if victims.is_empty() {
                continue;
            }
            if no_licence {
                // The store cannot filter on a missing field portably: delete by URL.
                let ids: Vec<uuid::Uuid> = victims.iter().map(|v| v.0).collect();
                for chunk in ids.chunks(PAGE) {
                    self.delete_ids(&c, chunk).await?;
                }
            } else {
                self.store.delete(&c, &filter).await?;
            }
            removed += victims.len() as u64;
            let blobs = self.blobs.clone();
            let hashes: Vec<String> = victims.into_iter().map(|v| v.1).collect();
            let _ = tokio::task::spawn_blocking(move || {
                for h in hashes {
                    blobs.remove(&h);
                }
            })
            .await;
        }
        Ok(removed)
    }

    async fn delete_ids(&self, collection: &str, ids: &[uuid::Uuid]) -> Result<(), SelectError> {
        let urls: Vec<String> = self
            .get(collection, ids)
            .await?
            .into_values()
            .map(|r| r.record.url)
            .collect();
        if urls.is_empty() {
            return Ok(());
        }
        // `url` is unique per point within a collection, so this removes exactly `ids`.
        let f = StoreFilter::all().with(Condition::AnyKeyword("url".into(), urls));
        self.store.delete(collection, &f).await
    }
}
