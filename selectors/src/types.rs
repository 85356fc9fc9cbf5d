//! What a selection takes and gives: the request, the chosen references, the
//! [`Selector`] and [`CandidateJudge`] traits.

use async_trait::async_trait;
use bytes::Bytes;
use iat2i_retrievers::Candidate;
use serde::{Deserialize, Serialize};

use crate::error::SelectError;
use crate::stage::{Dropped, RankedCandidate, StageReport, StageScores};

/// Which download a [`Reference`]'s bytes are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceSource {
    /// The full-size original image (bounded; see `source_note` when it was downscaled).
    #[default]
    Original,
    /// The engine's thumbnail: the original could not be had (`source_note` says why).
    Thumbnail,
}

/// A chosen reference image, ready to send to a generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    /// The encoded image: the original (bounded in bytes and pixels, downscaled and
    /// re-encoded when larger), or the thumbnail when the original failed; see `source`.
    /// PNG, JPEG or WebP. Not serialised into reports.
    #[serde(skip)]
    pub bytes: Bytes,
    /// Whether `bytes` are the original image or the engine's thumbnail.
    #[serde(default)]
    pub source: ReferenceSource,
    /// Why the reference is not the original as downloaded (the thumbnail stood in, or the
    /// original was downscaled), when that is so.
    #[serde(default)]
    pub source_note: Option<String>,
    /// MIME type of `bytes`, sniffed from the content.
    pub mime: String,
    /// Pixel width of `bytes`.
    pub width: u32,
    /// Pixel height of `bytes`.
    pub height: u32,
    /// Where it came from.
    pub candidate: Candidate,
    /// Its scores.
    pub scores: StageScores,
}

/// The result of a selection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// The chosen reference.
    pub best: Reference,
    /// Further distinct references, best first, for a pipeline that wants to try another.
    pub alternates: Vec<Reference>,
    /// Every candidate that reached the ranking, best first.
    pub ranked: Vec<RankedCandidate>,
    /// Every candidate dropped, with stage and reason.
    pub dropped: Vec<Dropped>,
    /// Per-stage counts and timings.
    pub stages: Vec<StageReport>,
    /// The candidate judge's reason for its pick, when a judge ran.
    pub judge_reason: Option<String>,
    /// How the reference memory was used: reused, recalled and stored images, and why it
    /// was not (fully) used when it could not be.
    #[serde(default)]
    pub memory: crate::memory::MemoryUse,
}

/// What a selection is for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SelectionRequest {
    /// The user's prompt.
    pub prompt: String,
    /// The search queries that produced the candidates.
    pub queries: Vec<String>,
    /// The entities the reference should show.
    pub entities: Vec<String>,
    /// An id that scopes this run's points in the vector store.
    pub run_id: String,
}

impl SelectionRequest {
    /// A selection for `prompt` (no queries, entities or run id yet).
    pub fn new(prompt: impl Into<String>) -> Self {
        SelectionRequest {
            prompt: prompt.into(),
            ..SelectionRequest::default()
        }
    }

    /// With the search queries that produced the candidates.
    pub fn with_queries(mut self, queries: Vec<String>) -> Self {
        self.queries = queries;
        self
    }

    /// With the entities the reference should show.
    pub fn with_entities(mut self, entities: Vec<String>) -> Self {
        self.entities = entities;
        self
    }

    /// With the id that scopes this run's points in the vector store.
    pub fn with_run_id(mut self, run_id: impl Into<String>) -> Self {
        self.run_id = run_id.into();
        self
    }
}

/// Chooses the best reference among candidates.
#[async_trait]
pub trait Selector: Send + Sync {
    /// Select from `candidates` for `request`.
    async fn select(
        &self,
        request: &SelectionRequest,
        candidates: Vec<Candidate>,
    ) -> Result<Selection, SelectError>;

    /// Whether the web should still be searched for `request`, or the selector's memory can
    /// answer alone (its search policy). The default: always search.
    async fn needs_web_search(&self, _request: &SelectionRequest) -> bool {
        true
    }

    /// The judge's verdict on an image generated with `reference`: `accepted`, or rejected
    /// (the judge asked for another reference or none). A selector with a memory ranks
    /// accepted references higher next time and rejected ones lower; the default ignores it.
    async fn record_verdict(&self, _reference: &Reference, _accepted: bool) {}

    /// Open what this selector's settings require, before the caller spends anything on
    /// the run: a selector whose reference memory is required (locked by another process,
    /// a server that is unreachable) fails here, so that a pipeline stops before its first
    /// paid call instead of after it. The default: nothing to open.
    async fn prepare(&self) -> Result<(), SelectError> {
        Ok(())
    }
}

/// One option shown to a [`CandidateJudge`].
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeCandidate {
    /// The candidate.
    pub candidate: Candidate,
    /// Its downloaded image (a thumbnail).
    pub image: Bytes,
    /// MIME type of `image`.
    pub mime: String,
}

/// A judge's pick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgePick {
    /// Index into the options shown.
    pub index: usize,
    /// Why this one.
    pub reason: String,
}

/// Looks at the top few candidates with the prompt and picks the most instructive one.
#[async_trait]
pub trait CandidateJudge: Send + Sync {
    /// Pick one of `options` (at least one is given) for `request`.
    async fn pick(
        &self,
        request: &SelectionRequest,
        options: &[JudgeCandidate],
    ) -> Result<JudgePick, SelectError>;
}
