//! The built-in selector, stage by stage.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use iat2i_retrievers::{Candidate, HttpClient};
use tracing::Instrument;

use crate::collect::{Collected, Survivor, fetch_and_embed};
use crate::config::{SelectorConfig, StoreChoice};
use crate::dedup::{DedupItem, dedup};
use crate::embed::{ClipEmbedder, Embedder};
use crate::error::SelectError;
use crate::fetch::{DecodeBudget, FetchContext};
use crate::finish::finish;
use crate::memory::{BlobCache, ReferenceMemory, SearchPolicy};
use crate::original::use_originals;
use crate::prefilter::{Prefiltered, prefilter};
use crate::rank::{RankItem, rank, text_inputs};
use crate::remember::MemoryRun;
use crate::run::{Run, ms};
use crate::stage::{Dropped, Stage, StageScores};
use crate::store::{EdgeStore, MemoryStore, VectorStore};
use crate::types::{CandidateJudge, Reference, Selection, SelectionRequest, Selector};

/// The built-in selector: prefilter -> fetch+decode -> dedup -> CLIP rank -> diversity -> judge.
///
/// Construction never touches the model or the store; both are loaded on first use.
#[derive(Clone)]
pub struct HierarchicalSelector {
    http: HttpClient,
    config: SelectorConfig,
    judge: Option<Arc<dyn CandidateJudge>>,
    embedder: Arc<tokio::sync::OnceCell<Arc<dyn Embedder>>>,
    store: Arc<tokio::sync::OnceCell<Arc<dyn VectorStore>>>,
    memory: Arc<tokio::sync::OnceCell<Option<ReferenceMemory>>>,
    /// The memory collection of the last selection (for the judge's verdicts).
    collection: Arc<std::sync::Mutex<Option<String>>>,
}

impl std::fmt::Debug for HierarchicalSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HierarchicalSelector")
            .field("config", &self.config)
            .field("judge", &self.judge.is_some())
            .finish()
    }
}

impl HierarchicalSelector {
    /// A selector that downloads through `http` and follows `config`.
    pub fn new(http: HttpClient, config: SelectorConfig) -> Self {
        for problem in config.problems() {
            tracing::warn!("selector setting {problem}; using the nearest valid value");
        }
        HierarchicalSelector {
            http,
            config: config.sanitized(),
            judge: None,
            embedder: Arc::default(),
            store: Arc::default(),
            memory: Arc::default(),
            collection: Arc::default(),
        }
    }

    /// Let `judge` pick among the top candidates (without one, CLIP's top-1 wins).
    pub fn with_judge(mut self, judge: Arc<dyn CandidateJudge>) -> Self {
        self.judge = Some(judge);
        self
    }

    /// The settings in use.
    pub fn config(&self) -> &SelectorConfig {
        &self.config
    }

    /// The embedder (built on first use from the configuration).
    pub async fn embedder(&self) -> Arc<dyn Embedder> {
        self.embedder
            .get_or_init(|| async {
                match &self.config.embedder {
                    Some(e) => e.clone(),
                    None => {
                        let mut clip = ClipEmbedder::new(self.config.resolved_model())
                            .with_batch_size(self.config.embed_batch)
                            .with_low_memory(self.config.low_memory);
                        if let Some(n) = self.config.intra_threads {
                            clip = clip.with_intra_threads(n);
                        }
                        Arc::new(clip) as Arc<dyn Embedder>
                    }
                }
            })
            .await
            .clone()
    }

    /// The vector store (built on first use from the configuration).
    pub async fn store(&self) -> Result<Arc<dyn VectorStore>, SelectError> {
        self.store
            .get_or_try_init(|| async { self.build_store() })
            .await
            .cloned()
    }

    fn build_store(&self) -> Result<Arc<dyn VectorStore>, SelectError> {
        let edge = || {
            Arc::new(EdgeStore::new(
                self.config.resolved_cache_dir().join("qdrant-edge"),
            ))
        };
        Ok(match &self.config.store {
            StoreChoice::Instance(s) => s.clone(),
            StoreChoice::Memory => Arc::new(MemoryStore::new()),
            StoreChoice::Edge => edge(),
            StoreChoice::QdrantFromEnv => qdrant_from_env()?,
            StoreChoice::Auto => {
                if std::env::var("QDRANT_URL").is_ok_and(|u| !u.is_empty()) {
                    qdrant_from_env()?
                } else {
                    edge()
                }
            }
        })
    }

    /// Load the CLIP model now, instead of inside the first selection (call it while the
    /// search runs, or before a batch): a selection then spends its time on the candidates.
    pub async fn warm_up(&self) -> Result<(), SelectError> {
        self.embedder().await.warm_up().await
    }

    /// The reference memory (`None` when it is turned off), built on first use: the
    /// configured store, and the blob cache in `<cache_dir>/blobs`.
    pub async fn memory(&self) -> Result<Option<ReferenceMemory>, SelectError> {
        if !self.config.memory.enabled {
            return Ok(None);
        }
        self.memory
            .get_or_try_init(|| async {
                let store = self.store().await?;
                let blobs = BlobCache::new(
                    self.config.resolved_cache_dir().join("blobs"),
                    self.config.memory.blob_cap,
                );
                Ok(Some(ReferenceMemory::new(
                    store,
                    blobs,
                    self.config.memory.clone(),
                )))
            })
            .await
            .cloned()
    }
}

#[cfg(feature = "qdrant-server")]
fn qdrant_from_env() -> Result<Arc<dyn VectorStore>, SelectError> {
    match crate::store::QdrantStore::from_env()? {
        Some(s) => Ok(Arc::new(s)),
        None => Err(SelectError::Config(
            "the Qdrant server store needs QDRANT_URL (and QDRANT_API_KEY when the server \
             requires one)"
                .into(),
        )),
    }
}

#[cfg(not(feature = "qdrant-server"))]
fn qdrant_from_env() -> Result<Arc<dyn VectorStore>, SelectError> {
    Err(SelectError::Config(
        "the Qdrant server store needs the `qdrant-server` feature of iat2i-selectors".into(),
    ))
}

#[async_trait]
impl Selector for HierarchicalSelector {
    async fn prepare(&self) -> Result<(), SelectError> {
        let memory = &self.config.memory;
        if memory.enabled
            && memory.required
            && let Some(m) = self.memory().await?
        {
            m.store().ready().await?;
        }
        Ok(())
    }

    async fn select(
        &self,
        request: &SelectionRequest,
        candidates: Vec<Candidate>,
    ) -> Result<Selection, SelectError> {
        let span =
            tracing::info_span!("select", run_id = %request.run_id, candidates = candidates.len());
        self.select_inner(request, candidates)
            .instrument(span)
            .await
    }

    async fn needs_web_search(&self, request: &SelectionRequest) -> bool {
        let k = match self.config.memory.policy {
            SearchPolicy::Always => return true,
            SearchPolicy::MemoryOnly => return false,
            SearchPolicy::WhenFewerThan(k) => k,
        };
        match self.good_hits(request).await {
            Ok(n) => n < k,
            Err(e) => {
                tracing::warn!(error = %e, "could not ask the reference memory; searching the web");
                true
            }
        }
    }

    async fn record_verdict(&self, reference: &Reference, accepted: bool) {
        if let Err(e) = self.verdict(reference, accepted).await {
            tracing::warn!(error = %e, "could not record the judge's verdict in the reference memory");
        }
    }
}

impl HierarchicalSelector {
    async fn select_inner(
        &self,
        request: &SelectionRequest,
        candidates: Vec<Candidate>,
    ) -> Result<Selection, SelectError> {
        let mut run = Run::default();
        let texts = text_inputs(&request.prompt, &request.queries);
        if texts.is_empty() {
            return Err(SelectError::Config(
                "nothing to rank against: the request has neither a prompt nor queries".into(),
            ));
        }
        let embedder = self.embedder().await;
        let required = self.config.memory.required;
        let mut mem = MemoryRun::new(self.memory().await, embedder.model_id(), required)?;
        let started = Instant::now();
        let n = candidates.len();
        let (mut kept, dropped) = prefilter(candidates, request, &self.config.prefilter);
        run.dropped.extend(dropped);
        // With the memory, the text vectors come first: they name the collection and recall.
        let early = if mem.active() {
            Some(embedder.embed_texts(texts.clone()).await?)
        } else {
            None
        };
        let mut recalled = 0;
        if let Some(vectors) = &early {
            mem.set_dim(vectors.first().map_or(0, Vec::len));
            let (more, dropped) = mem
                .recall(request, &self.config.prefilter, &kept, vectors)
                .await?;
            recalled = more.len() + dropped.len();
            run.dropped.extend(dropped);
            kept.extend(more);
        }
        run.stage(Stage::Prefilter, n + recalled, kept.len(), ms(started));
        if kept.is_empty() {
            return Err(run.fail());
        }
        mem.lookup(&kept).await?;
        let fetch_started = Instant::now();
        let n = kept.len();
        let (reused, to_fetch, positions) = split_reused(&mut mem, kept).await;
        let ctx = FetchContext {
            cfg: self.config.fetch.clone(),
            max_aspect: self.config.prefilter.max_aspect_ratio,
            budget: Arc::new(DecodeBudget::new(self.config.fetch.max_total_decode)),
            spill: Some(Arc::from(
                self.config.resolved_cache_dir().join("spill").as_path(),
            )),
        };
        let text_inputs = if early.is_some() { Vec::new() } else { texts };
        let Collected {
            survivors: mut fetched,
            dropped,
            texts: late,
            fetch_ms,
        } = fetch_and_embed(
            self.http.clone(),
            to_fetch,
            ctx.clone(),
            embedder,
            text_inputs,
            self.config.embed_batch,
        )
        .await?;
        let text_vectors = early.unwrap_or(late);
        // Images are embedded as they arrive, so the fetch stage runs until the last
        // embedding (and the model's load, when it was still loading) is done.
        let collect_ms = ms(fetch_started);
        tracing::debug!(
            downloads_ms = fetch_ms,
            collect_ms,
            "fetch, decode and embed"
        );
        for s in &mut fetched {
            s.order = positions.get(s.order).copied().unwrap_or(s.order);
            mem.note(s, true, request);
        }
        for s in &reused {
            mem.note(s, false, request);
        }
        let mut survivors = reused;
        survivors.extend(fetched);
        survivors.sort_by_key(|s| s.order);
        let out = survivors.len() + dropped.iter().filter(|d| d.stage != Stage::Fetch).count();
        run.dropped.extend(dropped);
        run.stage(Stage::Fetch, n, out, collect_ms);
        let result = self
            .rank_and_finish(request, survivors, &text_vectors, &mem, run)
            .await;
        let chosen = result
            .as_ref()
            .ok()
            .map(|s| s.best.candidate.image_url.clone());
        mem.finish(chosen.as_ref()).await?;
        if let (Some(spec), Ok(mut c)) = (&mem.spec, self.collection.lock()) {
            *c = Some(spec.name.clone());
        }
        let mut selection = result?;
        selection.memory = mem.usage;
        // Ranked on thumbnails; the generator gets the originals.
        let refs = std::iter::once(&mut selection.best)
            .chain(selection.alternates.iter_mut())
            .collect();
        use_originals(&self.http, &ctx.cfg, &ctx.budget, refs).await;
        tracing::debug!(peak_decode_bytes = ctx.budget.peak_bytes(), "decode budget");
        Ok(selection)
    }

    async fn rank_and_finish(
        &self,
        request: &SelectionRequest,
        survivors: Vec<Survivor>,
        text_vectors: &[Vec<f32>],
        mem: &MemoryRun,
        mut run: Run,
    ) -> Result<Selection, SelectError> {
        let survivors = self.dedup_stage(survivors, &mut run);
        if survivors.is_empty() {
            return Err(run.fail());
        }
        let rank_started = Instant::now();
        let scored = self.rank_stage(request, &survivors, text_vectors, mem);
        run.stage(
            Stage::Rank,
            survivors.len(),
            survivors.len(),
            ms(rank_started),
        );
        finish(
            &self.config,
            self.judge.as_deref(),
            request,
            survivors,
            scored,
            run,
        )
        .await
    }

    fn dedup_stage(&self, survivors: Vec<Survivor>, run: &mut Run) -> Vec<Survivor> {
        let started = Instant::now();
        let n = survivors.len();
        let items: Vec<DedupItem> = survivors
            .iter()
            .map(|s| DedupItem {
                hash: &s.hash,
                pixels: u64::from(s.width) * u64::from(s.height),
                order: s.order,
            })
            .collect();
        let verdicts = dedup(&items, self.config.dedup_threshold);
        let urls: Vec<String> = survivors
            .iter()
            .map(|s| iat2i_retrievers::http::redact(&s.item.candidate.image_url))
            .collect();
        let mut kept = Vec::with_capacity(n);
        for (s, verdict) in survivors.into_iter().zip(verdicts) {
            match verdict {
                None => kept.push(s),
                Some((twin, dist)) => run.dropped.push(Dropped {
                    candidate: s.item.candidate,
                    stage: Stage::Dedup,
                    reason: format!(
                        "near-duplicate of {} (perceptual hash distance {dist})",
                        urls.get(twin)
                            .map(String::as_str)
                            .unwrap_or("another candidate")
                    ),
                }),
            }
        }
        run.stage(Stage::Dedup, n, kept.len(), ms(started));
        kept
    }

    fn rank_stage(
        &self,
        request: &SelectionRequest,
        survivors: &[Survivor],
        text_vectors: &[Vec<f32>],
        mem: &MemoryRun,
    ) -> Vec<StageScores> {
        let has_prompt = !request.prompt.trim().is_empty();
        let (prompt, queries) = match (has_prompt, text_vectors.split_first()) {
            (true, Some((p, rest))) => (Some(p.as_slice()), rest),
            _ => (None, text_vectors),
        };
        let items: Vec<RankItem> = survivors
            .iter()
            .map(|s| RankItem {
                vector: &s.vector,
                lexical: s.item.lexical,
                preferred: s.item.preferred,
                feedback: mem.feedback(&s.item.candidate.image_url),
            })
            .collect();
        rank(
            &items,
            prompt,
            queries,
            &self.config.weights,
            self.config.memory.feedback_weight,
        )
    }

    /// How many good hits the memory recalls for `request` (for the search policy).
    async fn good_hits(&self, request: &SelectionRequest) -> Result<usize, SelectError> {
        let Some(memory) = self.memory().await? else {
            return Ok(0);
        };
        let texts = text_inputs(&request.prompt, &request.queries);
        let embedder = self.embedder().await;
        let vectors = embedder.embed_texts(texts).await?;
        let Some(dim) = vectors.first().map(Vec::len) else {
            return Ok(0);
        };
        let spec = memory.spec(&embedder.model_id(), dim);
        let policy = self.config.prefilter.license_policy;
        let hits = memory
            .recall(&spec.name, &vectors, &request.entities, policy)
            .await?;
        let min = self.config.memory.recall_min_score;
        Ok(hits.iter().filter(|(score, _)| *score >= min).count())
    }

    /// Record the judge's verdict on `reference` in the memory.
    async fn verdict(&self, reference: &Reference, accepted: bool) -> Result<(), SelectError> {
        let Some(memory) = self.memory().await? else {
            return Ok(());
        };
        let embedder = self.embedder().await;
        let known = self.collection.lock().ok().and_then(|c| c.clone());
        let collection = match known {
            Some(c) => c,
            None => {
                let v = embedder.embed_texts(vec!["reference".into()]).await?;
                let dim = v.first().map_or(0, Vec::len);
                memory.spec(&embedder.model_id(), dim).name
            }
        };
        let url = &reference.candidate.image_url;
        memory
            .verdict(&collection, &embedder.model_id(), url, accepted)
            .await
            .map(|_| ())
    }
}

/// Split `kept` into the survivors the memory already holds (vector and bytes) and the
/// items to download and embed, with each of those items' position in `kept`.
async fn split_reused(
    mem: &mut MemoryRun,
    kept: Vec<Prefiltered>,
) -> (Vec<Survivor>, Vec<Prefiltered>, Vec<usize>) {
    let mut reused = Vec::new();
    let mut to_fetch = Vec::new();
    let mut positions = Vec::new();
    for (i, item) in kept.into_iter().enumerate() {
        match mem.reuse(&item, i).await {
            Some(s) => reused.push(s),
            None => {
                to_fetch.push(item);
                positions.push(i);
            }
        }
    }
    (reused, to_fetch, positions)
}
