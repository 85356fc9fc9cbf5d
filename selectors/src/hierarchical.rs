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
use crate::original::use_originals;
use crate::prefilter::prefilter;
use crate::rank::{RankItem, rank, text_inputs};
use crate::run::{Run, ms};
use crate::stage::{Dropped, Stage, StageScores};
use crate::store::{EdgeStore, MemoryStore, VectorStore};
use crate::types::{CandidateJudge, Selection, SelectionRequest, Selector};

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
                            .with_batch_size(self.config.embed_batch);
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
        Ok(match &self.config.store {
            StoreChoice::Instance(s) => s.clone(),
            StoreChoice::Memory => Arc::new(MemoryStore::new()),
            StoreChoice::Edge => Arc::new(EdgeStore::new(
                self.config.resolved_cache_dir().join("qdrant-edge"),
            )),
            StoreChoice::QdrantFromEnv => qdrant_from_env(&self.config.collection)?,
        })
    }
}

#[cfg(feature = "qdrant-server")]
fn qdrant_from_env(collection: &str) -> Result<Arc<dyn VectorStore>, SelectError> {
    match crate::store::QdrantStore::from_env(collection)? {
        Some(s) => Ok(Arc::new(s)),
        None => Err(SelectError::Config(
            "the Qdrant server store needs QDRANT_URL (and QDRANT_API_KEY when the server \
             requires one)"
                .into(),
        )),
    }
}

#[cfg(not(feature = "qdrant-server"))]
fn qdrant_from_env(_collection: &str) -> Result<Arc<dyn VectorStore>, SelectError> {
    Err(SelectError::Config(
        "the Qdrant server store needs the `qdrant-server` feature of iat2i-selectors".into(),
    ))
}

#[async_trait]
impl Selector for HierarchicalSelector {
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
        let started = Instant::now();
        let n = candidates.len();
        let (kept, dropped) = prefilter(candidates, request, &self.config.prefilter);
        run.dropped.extend(dropped);
        run.stage(Stage::Prefilter, n, kept.len(), ms(started));
        if kept.is_empty() {
            return Err(run.fail());
        }
        let fetch_started = Instant::now();
        let n = kept.len();
        let ctx = FetchContext {
            cfg: self.config.fetch.clone(),
            max_aspect: self.config.prefilter.max_aspect_ratio,
            budget: Arc::new(DecodeBudget::new(self.config.fetch.max_total_decode)),
        };
        let collected = fetch_and_embed(
            self.http.clone(),
            kept,
            ctx.clone(),
            self.embedder().await,
            texts,
            self.config.embed_batch,
        )
        .await?;
        let Collected {
            survivors,
            dropped,
            texts: text_vectors,
            fetch_ms,
        } = collected;
        // Embedding that outlasted the downloads is part of the ranking stage's time.
        let embed_tail = ms(fetch_started).saturating_sub(fetch_ms);
        let fetched = survivors.len() + dropped.iter().filter(|d| d.stage != Stage::Fetch).count();
        run.dropped.extend(dropped);
        run.stage(Stage::Fetch, n, fetched, fetch_ms);
        let survivors = self.dedup_stage(survivors, &mut run);
        if survivors.is_empty() {
            return Err(run.fail());
        }
        let rank_started = Instant::now();
        let scored = self.rank_stage(request, &survivors, &text_vectors).await?;
        run.stage(
            Stage::Rank,
            survivors.len(),
            survivors.len(),
            ms(rank_started) + embed_tail,
        );
        let mut selection = finish(
            &self.config,
            self.judge.as_deref(),
            request,
            survivors,
            scored,
            run,
        )
        .await?;
        // Ranked on thumbnails; the generator gets the originals.
        let refs = std::iter::once(&mut selection.best)
            .chain(selection.alternates.iter_mut())
            .collect();
        use_originals(&self.http, &ctx.cfg, &ctx.budget, refs).await;
        tracing::debug!(peak_decode_bytes = ctx.budget.peak_bytes(), "decode budget");
        Ok(selection)
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

    async fn rank_stage(
        &self,
        request: &SelectionRequest,
        survivors: &[Survivor],
        text_vectors: &[Vec<f32>],
    ) -> Result<Vec<StageScores>, SelectError> {
        let store = self.store().await?;
        let has_prompt = !request.prompt.trim().is_empty();
        let (prompt, queries) = match (has_prompt, text_vectors.split_first()) {
            (true, Some((p, rest))) => (Some(p.as_slice()), rest),
            _ => (None, text_vectors),
        };
        let items: Vec<RankItem> = survivors
            .iter()
            .map(|s| RankItem {
                candidate: &s.item.candidate,
                vector: &s.vector,
                lexical: s.item.lexical,
                preferred: s.item.preferred,
            })
            .collect();
        let run_id = if request.run_id.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            request.run_id.clone()
        };
        let scores = rank(
            store.as_ref(),
            &run_id,
            &items,
            prompt,
            queries,
            &self.config.weights,
        )
        .await;
        if !self.config.retain_points {
            let dim = survivors.first().map(|s| s.vector.len()).unwrap_or(0);
            if let Err(e) = store.delete_run(&run_id, dim).await {
                tracing::warn!(error = %e, "could not remove this run's points from the store");
            }
        }
        scores
    }
}
