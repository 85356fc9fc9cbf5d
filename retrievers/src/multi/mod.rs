//! Fan-out over several engines and queries, fusion and de-duplication.

mod fuse;
mod normalize;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::{Candidate, ImageSearch, SearchQuery};

pub use normalize::normalize_url;

/// How one engine fared on one query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineRun {
    /// Engine name.
    pub engine: String,
    /// The query.
    pub query: String,
    /// How many candidates it returned.
    pub count: usize,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// How long it took, in milliseconds.
    pub elapsed_ms: u64,
}

/// The fused answer of several engines to several queries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MultiSearchResult {
    /// Candidates fused by reciprocal rank fusion, best first, duplicates removed.
    pub candidates: Vec<Candidate>,
    /// One entry per (engine, query): which answered, how many, and why others did not.
    pub runs: Vec<EngineRun>,
}

impl MultiSearchResult {
    /// True when no engine answered any query.
    pub fn all_failed(&self) -> bool {
        !self.runs.is_empty() && self.runs.iter().all(|r| r.error.is_some())
    }
}

/// Runs several queries on several engines concurrently and fuses the results.
#[derive(Clone)]
pub struct MultiSearch {
    engines: Vec<Arc<dyn ImageSearch>>,
    deadline: Duration,
    rrf_k: f64,
    concurrency: usize,
}

impl std::fmt::Debug for MultiSearch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.engines.iter().map(|e| e.name()).collect();
        f.debug_struct("MultiSearch")
            .field("engines", &names)
            .field("deadline", &self.deadline)
            .field("rrf_k", &self.rrf_k)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

/// One (engine, query) pair's outcome, with its position for stable ordering.
struct Job {
    order: usize,
    run: EngineRun,
    found: Vec<Candidate>,
}

impl MultiSearch {
    /// Fan out over `engines` with a 20 s per-engine deadline, at most 8 searches at once.
    pub fn new(engines: Vec<Arc<dyn ImageSearch>>) -> Self {
        MultiSearch {
            engines,
            deadline: Duration::from_secs(20),
            rrf_k: 60.0,
            concurrency: 8,
        }
    }

    /// Set the per-engine deadline for one query.
    pub fn with_deadline(mut self, d: Duration) -> Self {
        self.deadline = d;
        self
    }

    /// Set how many (engine, query) searches run at once (default 8, at least 1).
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Set the reciprocal-rank-fusion constant `k` (default 60): a higher `k` flattens
    /// the advantage of top ranks.
    pub fn with_rrf_k(mut self, k: f64) -> Self {
        if k.is_finite() && k >= 0.0 {
            self.rrf_k = k;
        }
        self
    }

    /// The engines searched.
    pub fn engines(&self) -> &[Arc<dyn ImageSearch>] {
        &self.engines
    }

    /// Search every query on every engine; failed engines are reported in
    /// [`MultiSearchResult::runs`] and never fail the whole search.
    pub async fn search(&self, queries: &[String], opts: &SearchQuery) -> MultiSearchResult {
        let mut pairs = Vec::new();
        for q in queries {
            for e in &self.engines {
                pairs.push((pairs.len(), Arc::clone(e), q.clone()));
            }
        }
        let deadline = self.deadline;
        // The per-job futures are built in a plain loop, not in a `StreamExt::map`
        // closure: a closure there makes the compiler unable to prove this future `Send`
        // ("FnOnce is not general enough"), which would stop callers from spawning it.
        let mut pending = Vec::with_capacity(pairs.len());
        for (order, engine, query) in pairs {
            let opts = opts.clone();
            pending.push(async move {
                let name = engine.name().to_string();
                let q = query.clone();
                let task = tokio::spawn(run_one(engine, query, opts, deadline, order));
                task.await.unwrap_or_else(|e| Job {
                    order,
                    run: EngineRun {
                        engine: name,
                        query: q,
                        count: 0,
                        error: Some(format!("the search task failed: {e}")),
                        elapsed_ms: 0,
                    },
                    found: Vec::new(),
                })
            });
        }
        let mut jobs: Vec<Job> = futures::stream::iter(pending)
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        jobs.sort_by_key(|j| j.order);
        let mut runs = Vec::with_capacity(jobs.len());
        let mut lists = Vec::with_capacity(jobs.len());
        for job in jobs {
            runs.push(job.run);
            lists.push(job.found);
        }
        MultiSearchResult {
            candidates: fuse::fuse(lists, self.rrf_k),
            runs,
        }
    }
}

async fn run_one(
    engine: Arc<dyn ImageSearch>,
    query: String,
    opts: SearchQuery,
    deadline: Duration,
    order: usize,
) -> Job {
    let start = Instant::now();
    let outcome = tokio::time::timeout(deadline, engine.search(&query, &opts)).await;
    let elapsed_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (found, error) = match outcome {
        Ok(Ok(found)) => (found, None),
        Ok(Err(e)) => (Vec::new(), Some(e.to_string())),
        Err(_) => (
            Vec::new(),
            Some(format!("no answer within the {deadline:?} deadline")),
        ),
    };
    if let Some(e) = &error {
        tracing::warn!(engine = engine.name(), error = %e, "image search failed");
    }
    Job {
        order,
        run: EngineRun {
            engine: engine.name().to_string(),
            query,
            count: found.len(),
            error,
            elapsed_ms,
        },
        found,
    }
}

#[cfg(test)]
mod tests;
