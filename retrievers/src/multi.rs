use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Candidate, ImageSearch, SearchQuery};

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

/// Runs several queries on several engines concurrently and fuses the results.
#[derive(Clone)]
pub struct MultiSearch {
    engines: Vec<Arc<dyn ImageSearch>>,
    deadline: Duration,
    rrf_k: f64,
}

impl std::fmt::Debug for MultiSearch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.engines.iter().map(|e| e.name()).collect();
        f.debug_struct("MultiSearch")
            .field("engines", &names)
            .field("deadline", &self.deadline)
            .finish()
    }
}

impl MultiSearch {
    /// Fan out over `engines` with a 20 s per-engine deadline.
    pub fn new(engines: Vec<Arc<dyn ImageSearch>>) -> Self {
        MultiSearch {
            engines,
            deadline: Duration::from_secs(20),
            rrf_k: 60.0,
        }
    }

    /// Set the per-engine deadline for one query.
    pub fn with_deadline(mut self, d: Duration) -> Self {
        self.deadline = d;
        self
    }

    /// The engines searched.
    pub fn engines(&self) -> &[Arc<dyn ImageSearch>] {
        &self.engines
    }

    /// Search every query on every engine; failed engines are reported in
    /// [`MultiSearchResult::runs`] and never fail the whole search.
    pub async fn search(&self, queries: &[String], opts: &SearchQuery) -> MultiSearchResult {
        // TODO(retrievers): concurrent fan-out, RRF fusion, URL normalisation.
        let mut out = MultiSearchResult::default();
        for q in queries {
            for e in &self.engines {
                let start = std::time::Instant::now();
                let r = tokio::time::timeout(self.deadline, e.search(q, opts)).await;
                let elapsed_ms = start.elapsed().as_millis() as u64;
                let (count, error) = match r {
                    Ok(Ok(mut cs)) => {
                        for c in &mut cs {
                            c.fused_score = 1.0 / (self.rrf_k + f64::from(c.rank) + 1.0);
                        }
                        let n = cs.len();
                        out.candidates.extend(cs);
                        (n, None)
                    }
                    Ok(Err(err)) => (0, Some(err.to_string())),
                    Err(_) => (0, Some(format!("no answer within {:?}", self.deadline))),
                };
                out.runs.push(EngineRun {
                    engine: e.name().to_string(),
                    query: q.clone(),
                    count,
                    error,
                    elapsed_ms,
                });
            }
        }
        out.candidates
            .sort_by(|a, b| b.fused_score.total_cmp(&a.fused_score));
        out
    }
}
