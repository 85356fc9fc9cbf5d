//! The vocabulary of selection stages: which stage, what a candidate scored, why one was
//! dropped, how a stage went. A leaf module: the error type and the selection types both
//! build on it.

use iat2i_retrievers::Candidate;
use serde::{Deserialize, Serialize};

/// The stages of hierarchical selection, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Metadata checks before any download.
    Prefilter,
    /// Download, decode and image embedding (overlapped: images are embedded in batches as
    /// their downloads finish, so this stage ends with the last embedding).
    Fetch,
    /// Perceptual-hash near-duplicate removal.
    Dedup,
    /// Ranking: text embedding (when it did not overlap the downloads), the vector store and
    /// scoring.
    Rank,
    /// Keeping distinct options (MMR).
    Diversity,
    /// The candidate judge's pick.
    Judge,
}

/// Scores a candidate earned at each stage it went through (absent: not reached or not run).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageScores {
    /// Lexical relevance of title/caption to the queries, 0..=1.
    pub lexical: Option<f32>,
    /// CLIP cosine similarity to the prompt.
    pub clip_prompt: Option<f32>,
    /// Best CLIP cosine similarity to any query.
    pub clip_query: Option<f32>,
    /// The combined ranking score.
    pub combined: Option<f32>,
    /// Maximal-marginal-relevance score at the diversity stage.
    pub mmr: Option<f32>,
    /// The judge's earlier verdicts on this image from the reference memory, -1..=1
    /// (accepted raises the combined score, rejected lowers it); absent when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<f32>,
}

/// A candidate that survived to the ranking, with its scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedCandidate {
    /// The candidate.
    pub candidate: Candidate,
    /// Its scores.
    pub scores: StageScores,
    /// Decoded width of the fetched image.
    pub width: u32,
    /// Decoded height of the fetched image.
    pub height: u32,
}

/// A candidate that was dropped, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dropped {
    /// The candidate.
    pub candidate: Candidate,
    /// The stage that dropped it.
    pub stage: Stage,
    /// Why, in words a user can act on.
    pub reason: String,
}

/// How one stage went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageReport {
    /// The stage.
    pub stage: Stage,
    /// Candidates in.
    pub input: usize,
    /// Candidates out.
    pub output: usize,
    /// Wall time in milliseconds.
    pub elapsed_ms: u64,
}
