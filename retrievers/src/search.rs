use async_trait::async_trait;

use crate::{Candidate, SearchError};

/// Options for one search call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SearchQuery {
    /// How many results to return at most from one engine for one query.
    pub limit: usize,
    /// Ask the engine to filter explicit content.
    pub safe_search: bool,
}

impl Default for SearchQuery {
    fn default() -> Self {
        SearchQuery {
            limit: 30,
            safe_search: true,
        }
    }
}

impl SearchQuery {
    /// Set the per-engine, per-query result limit.
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
    /// Turn safe search on or off.
    pub fn with_safe_search(mut self, on: bool) -> Self {
        self.safe_search = on;
        self
    }
}

/// One image search engine.
///
/// Implementations return candidates in the engine's own order, with
/// [`Candidate::rank`] set to the zero-based position and [`Candidate::query`] to `query`.
#[async_trait]
pub trait ImageSearch: Send + Sync {
    /// Short stable name used in candidates and reports (`bing`, `wikimedia` ...).
    fn name(&self) -> &str;

    /// Search one query.
    async fn search(&self, query: &str, opts: &SearchQuery) -> Result<Vec<Candidate>, SearchError>;
}
