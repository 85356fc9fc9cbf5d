//! The pipeline's error: which stage failed, what failed, what to do, and the partial
//! report of the work done before.

use serde::{Deserialize, Serialize};

use crate::generator::ImageError;
use crate::lmm::LmmError;
use crate::report::Report;
use iat2i_selectors::SelectError;

/// The stages of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageName {
    /// The request itself.
    Request,
    /// The knowledge gate.
    Gate,
    /// Image search.
    Search,
    /// Reference selection.
    Select,
    /// Image generation.
    Generate,
    /// Self-reflection.
    Judge,
}

impl std::fmt::Display for StageName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StageName::Request => "request",
            StageName::Gate => "knowledge gate",
            StageName::Search => "image search",
            StageName::Select => "reference selection",
            StageName::Generate => "image generation",
            StageName::Judge => "judge",
        })
    }
}

/// The error of one stage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StageError {
    /// A chat call failed.
    #[error(transparent)]
    Lmm(#[from] LmmError),
    /// Image generation failed.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// Selection failed.
    #[error(transparent)]
    Select(#[from] SelectError),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// Why a run produced no image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// The pipeline was built without something it needs.
    #[error("pipeline configuration: {0}")]
    Config(String),
    /// The request is unusable (empty prompt, edit image that is not an image ...).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A stage failed before any image was made.
    #[error("{stage} failed: {source}. {hint}")]
    Stage {
        /// The stage.
        stage: StageName,
        /// What failed.
        #[source]
        source: Box<StageError>,
        /// What to do about it.
        hint: String,
        /// What was done before the failure.
        report: Box<Report>,
    },
}

impl PipelineError {
    /// The partial report, when the run got far enough to have one.
    pub fn report(&self) -> Option<&Report> {
        match self {
            PipelineError::Stage { report, .. } => Some(report),
            _ => None,
        }
    }

    /// The failed stage, when a stage failed.
    pub fn stage(&self) -> Option<StageName> {
        match self {
            PipelineError::Stage { stage, .. } => Some(*stage),
            _ => None,
        }
    }

    pub(crate) fn stage_failed(stage: StageName, source: StageError, report: Report) -> Self {
        let hint = match stage {
            StageName::Gate | StageName::Judge => {
                "Check the chat model's base URL, API key and model name, and that the model \
                 supports JSON answers (and images, for the judge)"
            }
            StageName::Generate => {
                "Check the image model's base URL, API key and model name; a safety rejection \
                 needs a rephrased prompt"
            }
            _ => "See the report for what ran before the failure",
        }
        .to_string();
        PipelineError::Stage {
            stage,
            source: Box::new(source),
            hint,
            report: Box::new(report),
        }
    }
}
