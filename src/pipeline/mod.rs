//! The loop: gate -> search -> select -> (generate -> judge -> act) x rounds.

mod builder;
mod losses;
mod retrieval;
mod round;
mod slots;
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
use crate::guard::{PaidCall, RunGuard};
use crate::judge::{Judge, Verdict};
use crate::report::{ModelsRecord, Report};
use retrieval::Target;
use state::RunState;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
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

/// Per-run options for [`Pipeline::run_with`]; the default runs as [`Pipeline::run`].
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct RunOptions {
    /// Asked before every paid call whether the run may go on.
    pub guard: Option<Arc<dyn RunGuard>>,
    /// The gate mode for this run (default: the pipeline's).
    pub gate_mode: Option<GateMode>,
    /// The round budget for this run (default: the pipeline's; at least 1).
    pub max_rounds: Option<u32>,
    /// What every round of this run asks the generator for (size, seed, images per
    /// round, backend options); default: the pipeline's.
    pub generation: Option<crate::generator::GenerationSettings>,
}

impl RunOptions {
    /// Asking `guard` before every paid call.
    pub fn with_guard(mut self, guard: Arc<dyn RunGuard>) -> Self {
        self.guard = Some(guard);
        self
    }

    /// With this gate mode.
    pub fn with_gate_mode(mut self, mode: GateMode) -> Self {
        self.gate_mode = Some(mode);
        self
    }

    /// With this round budget.
    pub fn with_max_rounds(mut self, n: u32) -> Self {
        self.max_rounds = Some(n);
        self
    }

    /// With these generation settings for every round.
    pub fn with_generation(mut self, settings: crate::generator::GenerationSettings) -> Self {
        self.generation = Some(settings);
        self
    }
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("guard", &self.guard.is_some())
            .field("gate_mode", &self.gate_mode)
            .field("max_rounds", &self.max_rounds)
            .field("generation", &self.generation)
            .finish()
    }
}

/// The result of a run: the best image over all rounds and the report.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Outcome {
    /// The best image (aligned before unaligned, then by mean judge score).
    pub image: GeneratedImage,
    /// The round it came from.
    pub round: u32,
    /// Its verdict, when the judge reviewed it.
    pub verdict: Option<Verdict>,
    /// The (first) reference image that round was generated with, when it had one.
    pub reference: Option<iat2i_selectors::Reference>,
    /// Every reference that round was generated with: one per entity the gate planned,
    /// most unfamiliar first.
    pub references: Vec<iat2i_selectors::Reference>,
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
    require_review: bool,
    /// The default selector's memory is required (its `require_memory` setting).
    require_memory: bool,
    search_options: SearchQuery,
    events: EventSink,
    models: ModelsRecord,
    generation: crate::generator::GenerationSettings,
    settings: String,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("models", &self.models)
            .field("gate_mode", &self.gate_mode)
            .field("max_rounds", &self.max_rounds)
            .field("require_reference", &self.require_reference)
            .field("require_gate", &self.require_gate)
            .field("require_review", &self.require_review)
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// A builder; only the models must be given.
    pub fn builder() -> PipelineBuilder {
        PipelineBuilder::default()
    }

    /// The models this pipeline uses, without secrets (as in every report).
    pub fn models(&self) -> &ModelsRecord {
        &self.models
    }

    /// The default gate mode of a run.
    pub fn gate_mode(&self) -> GateMode {
        self.gate_mode
    }

    /// The default round budget of a run.
    pub fn max_rounds(&self) -> u32 {
        self.max_rounds
    }

    /// Everything besides the request and the models that shapes a run's result, as
    /// canonical JSON without secrets: the generator's identity (its quality, a ComfyUI
    /// workflow's hash), the generation settings (size, seed, n, negative prompt,
    /// backend options), the licence policy, the reference and gate policies and the
    /// query languages. A batch's job fingerprint includes it.
    pub fn settings_fingerprint(&self) -> &str {
        &self.settings
    }

    /// What every round asks the generator for, unless a run's options say otherwise.
    pub fn generation(&self) -> &crate::generator::GenerationSettings {
        &self.generation
    }

    /// Run one request to the end.
    ///
    /// Fails only when no image at all was produced; then the error carries the partial
    /// report. Failures after a first image are recorded in the report and the best image
    /// so far is returned.
    pub async fn run(&self, request: Request) -> Result<Outcome, PipelineError> {
        self.run_with(request, RunOptions::default()).await
    }

    /// Run one request with per-run options: a guard asked before every paid call, and
    /// overrides of the gate mode and round budget.
    ///
    /// When the guard halts the run, the best image so far is returned with a report
    /// whose [`crate::report::Report::stop`] is [`crate::StopReason::Halted`]; with no image yet,
    /// the error is [`PipelineError::Halted`] with the partial report.
    pub async fn run_with(
        &self,
        request: Request,
        options: RunOptions,
    ) -> Result<Outcome, PipelineError> {
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
        let st = RunState::new(self, prompt, edit_image, options);
        let span = tracing::info_span!("iat2i.run", run_id = %st.report.run_id);
        self.drive(st).instrument(span).await
    }

    async fn drive(&self, mut st: RunState) -> Result<Outcome, PipelineError> {
        self.events.emit(PipelineEvent::Started {
            prompt: st.prompt.clone(),
            edit: st.edit_image.is_some(),
            max_rounds: st.max_rounds,
        });
        if st.gate_mode != GateMode::Never
            && let Err(e) = self.selector.prepare().await
        {
            // Before the first paid call: the selector cannot have what its settings
            // require (a required reference memory that another process holds).
            return Err(st.fail(self, StageName::Select, e));
        }
        if matches!(st.gate_mode, GateMode::FromPrompt | GateMode::Always)
            && st.allow(PaidCall::Gate).await
        {
            match self.assess(&mut st).await {
                Ok(assessment) => {
                    if st.gate_mode == GateMode::Always || assessment.needs_reference {
                        // One search per planned entity, or one with the gate's queries.
                        self.research(&mut st, Vec::new(), Target::Auto, "gate".into())
                            .await;
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
        for n in 1..=st.max_rounds {
            if st.halted.is_some() || st.required_loss.is_some() {
                break;
            }
            if let Some(stop) = self.round(&mut st, n).await {
                st.stop = Some(stop);
                break;
            }
        }
        st.finish(self)
    }
}
