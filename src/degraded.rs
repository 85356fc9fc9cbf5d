//! What a run lost on the way: the typed `degraded` list of a [`crate::Report`].
//!
//! A run that goes on after a failure (no reference, an engine blocked, the gate falling
//! back to generating first ...) still returns an image; each such loss is recorded here,
//! emitted as [`crate::PipelineEvent::Degraded`], and printed by the examples, so that
//! nothing degrades silently. [`crate::PipelineBuilder::require_reference`] turns a run
//! without its reference into a failure.
//!
//! A leaf module: it depends only on [`crate::stage`].

use serde::{Deserialize, Serialize};

use crate::stage::StageName;

/// What was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Lost {
    /// The run wanted a reference image (the gate asked for one, the gate mode is
    /// `always`, or the judge found a knowledge gap) and generates without one.
    Reference,
    /// A new reference the judge asked for; the previous one (if any) stays in use.
    NewReference,
    /// One entity's reference, when the gate planned one per entity: the others are
    /// still sent (the backend takes fewer images than there are entities).
    EntityReference,
    /// The results of one engine for one query.
    EngineResults,
    /// The gate's decision: the run generates first and lets the judge decide.
    GateDecision,
    /// A round's review by the judge: its image is kept unjudged.
    Review,
    /// The reference's original image: the generator got the engine's thumbnail.
    OriginalImage,
    /// The reference memory (vector store): selection ran without it.
    Memory,
    /// The candidate judge's pick: CLIP's top-ranked candidate was used instead.
    CandidateJudgePick,
    /// A setting the pipeline could not honour (see the detail).
    Setting,
    /// Something else (see the detail).
    Other,
}

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Lost::Reference => "reference image",
            Lost::NewReference => "new reference",
            Lost::EntityReference => "reference of one entity",
            Lost::EngineResults => "engine results",
            Lost::GateDecision => "gate decision",
            Lost::Review => "judge's review",
            Lost::OriginalImage => "original reference image",
            Lost::Memory => "reference memory",
            Lost::CandidateJudgePick => "candidate judge's pick",
            Lost::Setting => "setting",
            Lost::Other => "other",
        })
    }
}

/// Why it was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Cause {
    /// The CLIP model (directory or download) could not be found or read.
    ModelMissing,
    /// ONNX Runtime could not be found or loaded.
    RuntimeMissing,
    /// Embedding failed for another reason.
    EmbeddingFailed,
    /// The search found candidates but every one was refused (the report's retrieval
    /// record lists each with its reason).
    AllCandidatesRefused,
    /// The search found no candidates.
    NoCandidates,
    /// The vector store could not be opened or used (locked by another process, ...).
    StoreUnavailable,
    /// An engine refused us (blocked, CAPTCHA, consent page, disabled API).
    EngineBlocked,
    /// An engine failed (HTTP error, timeout, unexpected page).
    EngineFailed,
    /// A model endpoint rate-limited the calls (HTTP 429) after the retries allowed.
    RateLimited,
    /// A model call failed (timeout, server error, unusable answer ...).
    CallFailed,
    /// An image could not be downloaded or decoded (HTTP error, too large, broken).
    DownloadFailed,
    /// The configuration asked for something that cannot be honoured.
    Config,
    /// Anything else (see the detail).
    Other,
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cause::ModelMissing => "the CLIP model is missing",
            Cause::RuntimeMissing => "ONNX Runtime is missing",
            Cause::EmbeddingFailed => "embedding failed",
            Cause::AllCandidatesRefused => "every candidate was refused",
            Cause::NoCandidates => "the search found no candidates",
            Cause::StoreUnavailable => "the vector store is unavailable",
            Cause::EngineBlocked => "the engine blocked the request",
            Cause::EngineFailed => "the engine failed",
            Cause::RateLimited => "rate-limited",
            Cause::CallFailed => "a model call failed",
            Cause::DownloadFailed => "the image could not be downloaded",
            Cause::Config => "configuration",
            Cause::Other => "other",
        })
    }
}

/// One thing a run lost, where and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Degradation {
    /// What was lost.
    pub lost: Lost,
    /// Why.
    pub cause: Cause,
    /// The stage where it happened.
    pub stage: StageName,
    /// The round, when in one.
    pub round: Option<u32>,
    /// The details: the failure's message, the engine, what the run did instead.
    pub detail: String,
}

impl Degradation {
    /// A loss at `stage` (not in a round; see [`Self::in_round`]).
    pub fn new(lost: Lost, cause: Cause, stage: StageName, detail: impl Into<String>) -> Self {
        Degradation {
            lost,
            cause,
            stage,
            round: None,
            detail: detail.into(),
        }
    }

    /// The same loss, in round `round`.
    pub fn in_round(mut self, round: u32) -> Self {
        self.round = Some(round);
        self
    }
}

impl std::fmt::Display for Degradation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: lost the {} ({})", self.stage, self.lost, self.cause)?;
        if let Some(n) = self.round {
            write!(f, " in round {n}")?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}
