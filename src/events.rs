//! Progress events, delivered to a callback or a channel as the pipeline runs.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::mpsc::UnboundedSender;

use crate::degraded::Degradation;
use crate::gate::Assessment;
use crate::judge::Verdict;
use crate::stage::StageName;

/// One step of a run, in the order they happen.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum PipelineEvent {
    /// A run began.
    Started {
        /// The user's prompt.
        prompt: String,
        /// Whether an image is being edited.
        edit: bool,
        /// The round budget.
        max_rounds: u32,
    },
    /// The gate is assessing the prompt.
    GateStarted,
    /// The gate answered.
    Assessed {
        /// Its assessment.
        assessment: Assessment,
    },
    /// Image search began.
    SearchStarted {
        /// The queries searched.
        queries: Vec<String>,
    },
    /// Image search finished.
    SearchFinished {
        /// Candidates found (fused, deduplicated).
        count: usize,
        /// Engine runs that failed.
        failed_runs: usize,
    },
    /// Reference selection began.
    SelectionStarted {
        /// Candidates going in.
        candidates: usize,
    },
    /// Reference selection finished.
    SelectionFinished {
        /// The chosen reference's image URL.
        reference: String,
        /// Further references available.
        alternates: usize,
    },
    /// A generation round began.
    RoundStarted {
        /// Round number, from 1.
        round: u32,
        /// The round budget.
        max_rounds: u32,
        /// How many reference images are sent.
        references: usize,
    },
    /// The generator reported progress (ComfyUI's queue and sampler steps).
    GeneratorProgress {
        /// Round number.
        round: u32,
        /// What the backend reported.
        progress: crate::generator::GeneratorProgress,
    },
    /// An image was generated.
    Generated {
        /// Round number.
        round: u32,
        /// Size of the image in bytes.
        bytes: usize,
    },
    /// The judge reviewed the round's image.
    Judged {
        /// Round number.
        round: u32,
        /// The verdict.
        verdict: Verdict,
    },
    /// A stage failed; the run goes on when it can (see the report).
    StageFailed {
        /// The stage.
        stage: StageName,
        /// The round, when in one.
        round: Option<u32>,
        /// What failed.
        error: String,
    },
    /// The run lost something and goes on without it (also in the report's
    /// `degraded` list).
    Degraded {
        /// What was lost, where and why.
        degradation: Degradation,
    },
    /// The run finished.
    Finished {
        /// Why it stopped.
        stop_reason: String,
        /// The round whose image is returned, when any.
        best_round: Option<u32>,
    },
}

/// A callback receiving events.
pub type EventCallback = Arc<dyn Fn(&PipelineEvent) + Send + Sync>;

/// Where events go: a callback, a channel, both or nowhere.
#[derive(Clone, Default)]
pub(crate) struct EventSink {
    pub(crate) callback: Option<EventCallback>,
    pub(crate) channel: Option<UnboundedSender<PipelineEvent>>,
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSink")
            .field("callback", &self.callback.is_some())
            .field("channel", &self.channel.is_some())
            .finish()
    }
}

impl EventSink {
    pub(crate) fn emit(&self, event: PipelineEvent) {
        tracing::debug!(?event, "pipeline event");
        if let Some(cb) = &self.callback {
            cb(&event);
        }
        if let Some(tx) = &self.channel {
            // A dropped receiver only means nobody listens any more.
            let _ = tx.send(event);
        }
    }
}
