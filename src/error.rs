//! The pipeline's error: which stage failed, what failed, what to do, and the partial
//! report of the work done before.

use crate::generator::{GeneratedImage, ImageError};
use crate::lmm::LmmError;
use crate::report::Report;
use crate::vocabulary::{Halt, PaidCall};
use iat2i_selectors::SelectError;

pub use crate::stage::StageName;

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

impl StageError {
    /// Whether the endpoint answered HTTP 429 (rate limit or quota) after the retries.
    pub fn is_rate_limited(&self) -> bool {
        let status = match self {
            StageError::Lmm(e) => match e.inner() {
                LmmError::Http { source, .. } => source.status(),
                _ => None,
            },
            StageError::Image(ImageError::Http { source, .. }) => source.status(),
            _ => None,
        };
        status.map(|s| s.as_u16()) == Some(429)
    }
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
    /// The caller required a reference image
    /// ([`crate::PipelineBuilder::require_reference`]) and the run has none; the report's
    /// `degraded` list says why.
    #[error(
        "a reference image was required and the run has none: {detail}. See the report's \
         `degraded` list; fix the cause (model directory, ONNX Runtime, search engines, \
         store) or allow runs without a reference"
    )]
    ReferenceRequired {
        /// The stage where the reference was lost.
        stage: StageName,
        /// Why it was lost.
        detail: String,
        /// What was done before the run stopped.
        report: Box<Report>,
        /// The best image made before the run stopped (in generate-first mode), when any.
        image: Option<Box<GeneratedImage>>,
    },
    /// The run lost something its caller required: the judge's review
    /// ([`crate::PipelineBuilder::require_review`]) or the reference memory (a selector
    /// configured with `require_memory`). The report's `degraded` list says why; the best
    /// image made before the loss, if any, travels with the error so that no paid work is
    /// thrown away.
    #[error("the run lost its {lost}, which was required: {detail}")]
    Required {
        /// What was lost.
        lost: crate::degraded::Lost,
        /// The stage where it was lost.
        stage: StageName,
        /// Why it was lost.
        detail: String,
        /// What was done before the run stopped.
        report: Box<Report>,
        /// The best image made before the run stopped, when any.
        image: Option<Box<GeneratedImage>>,
    },
    /// A [`crate::guard::RunGuard`] stopped the run before any image was made.
    #[error("{halt} before the {before} call, before any image was made")]
    Halted {
        /// Why.
        halt: Halt,
        /// The call that was not made.
        before: PaidCall,
        /// What was done before.
        report: Box<Report>,
    },
}

impl PipelineError {
    /// The partial report, when the run got far enough to have one.
    pub fn report(&self) -> Option<&Report> {
        match self {
            PipelineError::Stage { report, .. }
            | PipelineError::Halted { report, .. }
            | PipelineError::ReferenceRequired { report, .. }
            | PipelineError::Required { report, .. } => Some(report),
            _ => None,
        }
    }

    /// The failed stage, when a stage failed.
    pub fn stage(&self) -> Option<StageName> {
        match self {
            PipelineError::Stage { stage, .. } => Some(*stage),
            PipelineError::ReferenceRequired { stage, .. }
            | PipelineError::Required { stage, .. } => Some(*stage),
            _ => None,
        }
    }

    pub(crate) fn stage_failed(stage: StageName, source: StageError, report: Report) -> Self {
        let hint = match stage {
            _ if source.is_rate_limited() => {
                "The model endpoint rate-limited the calls (HTTP 429) and the retries ran out: \
                 wait and run again, lower the request rate or concurrency, or check the \
                 account's quota"
            }
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
