//! The selector's side of the reference memory for one run: recall remembered images as
//! candidates, reuse remembered vectors and bytes instead of downloading and embedding,
//! and afterwards remember what was fetched (and which image was chosen).
//!
//! Selection never depends on the memory: when it cannot be used (locked by another
//! process, server down) the run goes on without it, and [`MemoryUse::degraded`] says why
//! (unless [`MemoryConfig::required`](crate::memory::MemoryConfig) makes that an error).

use std::collections::HashMap;

use image_hasher::ImageHash;
use uuid::Uuid;

use crate::collect::Survivor;
use crate::memory::{
    MemoryRecord, MemoryUse, ReferenceMemory, Remembered, SOURCE_WEB, Write, WriteKind,
    content_hash, now_secs, point_id,
};
use crate::prefilter::{Prefiltered, prefilter};
use crate::store::CollectionSpec;
use crate::{Dropped, SelectError, SelectionRequest};

/// The memory during one selection.
pub(crate) struct MemoryRun {
    memory: Option<ReferenceMemory>,
    pub spec: Option<CollectionSpec>,
    model: String,
    required: bool,
    pub usage: MemoryUse,
    known: HashMap<Uuid, Remembered>,
    recalled: Vec<Uuid>,
    pending: HashMap<Uuid, Write>,
}

impl MemoryRun {
    /// A run with `memory` (`Ok(None)`: the memory is off; an error: it could not be set
    /// up, which degrades the run unless `required`) for embedding model `model`.
    pub fn new(
        memory: Result<Option<ReferenceMemory>, SelectError>,
        model: String,
        required: bool,
    ) -> Result<Self, SelectError> {
        let mut run = MemoryRun {
            memory: None,
            spec: None,
            model,
            required,
            usage: MemoryUse::default(),
            known: HashMap::new(),
            recalled: Vec::new(),
            pending: HashMap::new(),
        };
        match memory {
            Ok(m) => {
                run.usage.store = m.as_ref().map(|m| m.store().name().to_string());
                run.memory = m;
            }
            Err(e) => run.degrade(e)?,
        }
        Ok(run)
    }

    /// True while the memory is in use.
    pub fn active(&self) -> bool {
        self.memory.is_some()
    }

    /// Stop using the memory for this run because of `e` (an error when it is required).
    fn degrade(&mut self, e: SelectError) -> Result<(), SelectError> {
        if self.required {
            return Err(e);
        }
        let why = match &e {
            SelectError::StoreLocked { .. } => e.to_string(),
            other => format!(
                "the reference memory is unavailable ({other}); selected without it: every \
                 candidate was downloaded and embedded, and nothing was remembered"
            ),
        };
        tracing::warn!("{why}");
        self.usage.degraded = Some(why);
        self.memory = None;
        Ok(())
    }

    /// Fix the collection from the text vectors' dimension.
    pub fn set_dim(&mut self, dim: usize) {
        if let Some(m) = &self.memory {
            let spec = m.spec(&self.model, dim);
            self.usage.collection = Some(spec.name.clone());
            self.spec = Some(spec);
        }
    }

    /// Remembered images recalled by the text vectors, prefiltered like web candidates;
    /// those whose URL is already among `web` are left out (they are reused instead).
    pub async fn recall(
        &mut self,
        request: &SelectionRequest,
        cfg: &crate::config::PrefilterConfig,
        web: &[Prefiltered],
        texts: &[Vec<f32>],
    ) -> Result<(Vec<Prefiltered>, Vec<Dropped>), SelectError> {
        let (Some(m), Some(spec)) = (&self.memory, &self.spec) else {
            return Ok((Vec::new(), Vec::new()));
        };
        let hits = m
            .recall(&spec.name, texts, &request.entities, cfg.license_policy)
            .await;
        let hits = match hits {
            Ok(h) => h,
            Err(e) => {
                self.degrade(e)?;
                return Ok((Vec::new(), Vec::new()));
            }
        };
        let web_ids: Vec<Uuid> = web
            .iter()
            .map(|p| point_id(&self.model, &p.candidate.image_url))
            .collect();
        let candidates = hits
            .into_iter()
            .filter(|(_, r)| !web_ids.contains(&r.id))
            .filter_map(|(_, r)| r.record.to_candidate().map(|c| (r.id, c)))
            .collect::<Vec<_>>();
        self.recalled = candidates.iter().map(|(id, _)| *id).collect();
        let (kept, dropped) = prefilter(
            candidates.into_iter().map(|(_, c)| c).collect(),
            request,
            cfg,
        );
        self.usage.recalled = kept.len();
        Ok((kept, dropped))
    }

    /// Read what the memory holds about `items` (their vectors and records).
    pub async fn lookup(&mut self, items: &[Prefiltered]) -> Result<(), SelectError> {
        let (Some(m), Some(spec)) = (&self.memory, &self.spec) else {
            return Ok(());
        };
        let ids: Vec<Uuid> = items
            .iter()
            .map(|p| point_id(&self.model, &p.candidate.image_url))
            .collect();
        match m.get(&spec.name, &ids).await {
            Ok(known) => self.known = known,
            Err(e) => self.degrade(e)?,
        }
        Ok(())
    }

    /// The remembered, fresh survivor for `item` at position `order`, when its vector and
    /// intact bytes are at hand (no download, no embedding); else `None`.
    pub async fn reuse(&mut self, item: &Prefiltered, order: usize) -> Option<Survivor> {
        let m = self.memory.as_ref()?;
        let dim = self.spec.as_ref()?.dim;
        let id = point_id(&self.model, &item.candidate.image_url);
        let known = self.known.get(&id)?;
        if !m.is_fresh(&known.record) || known.vector.len() != dim {
            return None;
        }
        let hash = ImageHash::from_base64(&known.record.phash).ok()?;
        let bytes = m.bytes(&known.record.content_hash).await?;
        self.usage.reused += 1;
        Some(Survivor {
            order,
            item: item.clone(),
            bytes,
            mime: known.record.mime.clone(),
            width: known.record.width,
            height: known.record.height,
            hash,
            vector: known.vector.clone(),
            original: known.record.original,
        })
    }

    /// The judge's record on `url`'s image, when remembered.
    pub fn feedback(&self, url: &url::Url) -> Option<f32> {
        let r = self.known.get(&point_id(&self.model, url))?;
        (r.record.accepted + r.record.rejected > 0).then(|| r.record.feedback())
    }

    /// Prepare the write of `s` (fetched now when `fetched`, else reused from the memory).
    pub fn note(&mut self, s: &Survivor, fetched: bool, request: &SelectionRequest) {
        if self.memory.is_none() {
            return;
        }
        let c = &s.item.candidate;
        let id = point_id(&self.model, &c.image_url);
        let now = now_secs();
        let known = self.known.get(&id);
        let kind = WriteKind::of(known, &s.vector);
        let mut record = match known {
            Some(r) => r.record.clone(),
            None => MemoryRecord {
                first_seen: now,
                source: SOURCE_WEB.into(),
                ..MemoryRecord::default()
            },
        };
        // A recalled candidate carries the memory's own provenance: keep the stored one.
        if !self.recalled.contains(&id) {
            record.set_provenance(c);
        }
        record.tag(&c.query, &request.entities);
        record.width = s.width;
        record.height = s.height;
        record.mime = s.mime.clone();
        record.original = s.original;
        record.content_hash = content_hash(&s.bytes);
        record.phash = s.hash.to_base64();
        record.model = self.model.clone();
        record.last_seen = now;
        self.pending.insert(
            id,
            Write {
                id,
                record,
                vector: s.vector.clone(),
                bytes: fetched.then(|| s.bytes.clone()),
                kind,
            },
        );
    }

    /// Write everything noted, counting `chosen` (the selected image's URL) as chosen once.
    pub async fn finish(&mut self, chosen: Option<&url::Url>) -> Result<(), SelectError> {
        let (Some(m), Some(spec)) = (self.memory.clone(), self.spec.clone()) else {
            return Ok(());
        };
        let chosen = chosen
            .map(|u| point_id(&self.model, u))
            .filter(|id| self.pending.contains_key(id));
        let writes: Vec<Write> = self.pending.drain().map(|(_, w)| w).collect();
        match m.write(&spec, writes, chosen).await {
            Ok(n) => self.usage.stored = n,
            Err(e) => self.degrade(e)?,
        }
        Ok(())
    }
}
