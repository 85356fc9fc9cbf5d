use std::sync::Arc;

use async_trait::async_trait;
use iat2i_retrievers::{Candidate, HttpClient};

use crate::{CandidateJudge, SelectError, Selection, SelectionRequest, Selector};

/// Settings of the hierarchical selector.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SelectorConfig {}

/// The built-in selector: prefilter -> fetch+decode -> dedup -> CLIP rank -> diversity -> judge.
///
/// Construction never touches the model or the store; both are loaded on first use.
#[derive(Clone)]
pub struct HierarchicalSelector {
    #[allow(dead_code)]
    http: HttpClient,
    #[allow(dead_code)]
    config: SelectorConfig,
    judge: Option<Arc<dyn CandidateJudge>>,
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
        HierarchicalSelector {
            http,
            config,
            judge: None,
        }
    }

    /// Let `judge` pick among the top candidates (without one, CLIP's top-1 wins).
    pub fn with_judge(mut self, judge: Arc<dyn CandidateJudge>) -> Self {
        self.judge = Some(judge);
        self
    }
}

#[async_trait]
impl Selector for HierarchicalSelector {
    async fn select(
        &self,
        _request: &SelectionRequest,
        _candidates: Vec<Candidate>,
    ) -> Result<Selection, SelectError> {
        // TODO(selectors): the real stages.
        Err(SelectError::Config("not implemented yet".into()))
    }
}
