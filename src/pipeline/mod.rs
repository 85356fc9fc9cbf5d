//! The loop: gate -> search -> select -> (generate -> judge -> act) x rounds.

mod builder;
mod losses;
mod retrieval;
mod round;
mod state;

pub use builder::PipelineBuilder;

use std::sync::Arc;

use bytes::Bytes;
use iat2i_retrievers::{MultiSearch, SearchQuery};
use iat2i_selectors::Selector;
use tracing::Instrument;

use crate::candidate_judge::LmmCandidateJudge;
use crate::error::{PipelineError, StageName};
use crate::events::{EventSink, PipelineEvent};
use crate::gate::{Gate, GateMode};
use crate::generator::{GeneratedImage, Generator, InputImage, sniff_mime};
use crate::judge::{Judge, Verdict};
use crate::report::{ModelsRecord, Report};
use state::RunState;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The prompt.
    pub prompt: String,
    /// An image to edit (PNG, JPEG or WebP bytes), when editing.
    pub edit_image: Option<Bytes>,
}

impl Request {
    /// A text-to-image request.
    pub fn new(prompt: impl Into<String>) -> Self {
        Request {
            prompt: prompt.into(),
            edit_image: None,
        }
    }

    /// Edit this image instead of generating from scratch.
    pub fn with_edit_image(mut self, image: impl Into<Bytes>) -> Self {
        self.edit_image = Some(image.into());
        self
    }
}

/// The result of a run: the best image over all rounds and the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The best image (aligned before unaligned, then by mean judge score).
    pub image: GeneratedImage,
    /// The round it came from.
    pub round: u32,
    /// Its verdict, when the judge reviewed it.
    pub verdict: Option<Verdict>,
    /// Everything the run decided and spent.
    pub report: Report,
}

/// The internet-augmented text-to-image pipeline. Build one with [`Pipeline::builder`];
/// it is cheap to share and can run many requests concurrently.
pub struct Pipeline {
    gate: Option<Arc<dyn Gate>>,
    judge: Arc<dyn Judge>,
    generator: Arc<dyn Generator>,
    search: MultiSearch,
    selector: Arc<dyn Selector>,
    candidate_judge: Option<LmmCandidateJudge>,
    gate_mode: GateMode,
    max_rounds: u32,
    require_reference: bool,
    require_gate: bool,
    search_options: SearchQuery,
    events: EventSink,
    models: ModelsRecord,
    generation: crate::generator::GenerationSettings,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("models", &self.models)
            .field("gate_mode", &self.gate_mode)
            .field("max_rounds", &self.max_rounds)
            .field("require_reference", &self.require_reference)
            .field("require_gate", &self.require_gate)
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// A builder; only the models must be given.
    pub fn builder() -> PipelineBuilder {
        PipelineBuilder::default()
    }

    /// Run one request to the end.
    ///
    /// Fails only when no image at all was produced; then the error carries the partial
    /// report. Failures after a first image are recorded in the report and the best image
    /// so far is returned.
    pub async fn run(&self, request: Request) -> Result<Outcome, PipelineError> {
        let prompt = request.prompt.trim().to_string();
        if prompt.is_empty() {
            return Err(PipelineError::InvalidRequest("the prompt is empty".into()));
        }
        let edit_image = match request.edit_image {
            None => None,
            Some(bytes) => {
                let mime = sniff_mime(&bytes).ok_or_else(|| {
                    PipelineError::InvalidRequest(
                        "the image to edit is not a PNG, JPEG, WebP or GIF image".into(),
                    )
                })?;
                Some(InputImage {
                    bytes,
                    mime: mime.to_string(),
                })
            }
        };
        let st = RunState::new(self, prompt, edit_image);
        let span = tracing::info_span!("iat2i.run", run_id = %st.report.run_id);
        self.drive(st).instrument(span).await
    }

    async fn drive(&self, mut st: RunState) -> Result<Outcome, PipelineError> {
        self.events.emit(PipelineEvent::Started {
            prompt: st.prompt.clone(),
            edit: st.edit_image.is_some(),
            max_rounds: self.max_rounds,
        });
        if matches!(st.gate_mode, GateMode::FromPrompt | GateMode::Always) {
            match self.assess(&mut st).await {
                Ok(assessment) => {
                    if st.gate_mode == GateMode::Always || assessment.needs_reference {
                        let queries = self.queries_for(&mut st, assessment.queries).await;
                        self.retrieve(&mut st, queries, "gate".into()).await;
                    }
                }
                Err(e) if self.require_gate => return Err(st.fail(self, StageName::Gate, e)),
                Err(e) => self.gate_fell_back(&mut st, e).await,
            }
        }
        if st.missing_required_reference(self) {
            // Before the first paid image: the caller asked not to generate without it.
            return Err(st.reference_required(self));
        }
        for n in 1..=self.max_rounds {
            if let Some(stop) = self.round(&mut st, n).await {
                st.stop = Some(stop);
                break;
            }
        }
        st.finish(self)
    }
}
