//! Stopping a run from outside, and why a run stopped.
//!
//! A [`RunGuard`] passed to [`crate::Pipeline::run_guarded`] is asked before every paid
//! call (the gate, the query writer, selection with its candidate judge, each image, each
//! verdict) whether the run may go on, and told what each call used. A batch uses it for
//! budgets, deadlines and shutdown; the run then ends with the best image so far and a
//! report whose [`StopReason`] says it was halted.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::StageName;
use crate::failure::ErrorClass;
use crate::generator::ImageUsage;
use crate::lmm::Usage;

/// A paid call the pipeline is about to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaidCall {
    /// The knowledge gate (also writes the search queries).
    Gate,
    /// Search and selection (the candidate judge is a chat call).
    Select,
    /// One image generation.
    Generate,
    /// One verdict of the reflection judge.
    Judge,
}

impl PaidCall {
    /// The snake_case name used in JSON and in the journal's ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            PaidCall::Gate => "gate",
            PaidCall::Select => "select",
            PaidCall::Generate => "generate",
            PaidCall::Judge => "judge",
        }
    }
}

impl std::fmt::Display for PaidCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PaidCall::Gate => "gate",
            PaidCall::Select => "selection",
            PaidCall::Generate => "image generation",
            PaidCall::Judge => "judge",
        })
    }
}

/// A paid call the pipeline is about to make, with what it may return, so that a guard
/// can reserve it before it is made (an image call asked for `n` images may return `n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlannedCall {
    /// Which call.
    pub kind: PaidCall,
    /// Images it may return (0 for chat calls).
    pub images: u32,
}

impl PlannedCall {
    /// A chat call (gate, selection, judge): no images.
    pub fn chat(kind: PaidCall) -> Self {
        PlannedCall { kind, images: 0 }
    }

    /// An image call that may return `n` images (at least 1).
    pub fn images(n: u32) -> Self {
        PlannedCall {
            kind: PaidCall::Generate,
            images: n.max(1),
        }
    }
}

/// What a paid call used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallUsage {
    /// Chat tokens, for chat calls.
    pub chat: Usage,
    /// Image usage, for image calls.
    pub image: ImageUsage,
}

/// Why a guard stopped a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HaltKind {
    /// A budget (images, tokens, cost) is spent.
    Budget,
    /// A deadline for the whole batch (or the caller's) has passed.
    Deadline,
    /// This run's own time limit (a batch's `--job-timeout`) has passed: unlike a batch
    /// deadline, the job itself took too long, so a batch records it as failed (timeout).
    JobTimeout,
    /// The caller asked to stop (a signal, a user).
    Cancelled,
    /// The call could not be recorded before it was made (the journal's disk is full or
    /// unwritable): a call nobody can account for is not made.
    Unrecorded,
}

/// A guard's decision to stop, with a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Halt {
    /// Why.
    pub kind: HaltKind,
    /// In words, e.g. `--max-images 3 reached`.
    pub message: String,
}

impl Halt {
    /// A halt of `kind` saying `message`.
    pub fn new(kind: HaltKind, message: impl Into<String>) -> Self {
        Halt {
            kind,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Halt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            HaltKind::Budget => "budget",
            HaltKind::Deadline => "deadline",
            HaltKind::JobTimeout => "job timeout",
            HaltKind::Cancelled => "cancelled",
            HaltKind::Unrecorded => "not recorded",
        };
        write!(f, "stopped ({kind}): {}", self.message)
    }
}

/// Decides, before each paid call, whether a run may go on, and hears what each call
/// used. Every `before_call` that returned `Ok` is followed by exactly one `after_call`
/// for that call (also when the call failed). A run may admit several calls before the
/// first ends (with one reference per entity, each entity's selection is admitted, then
/// they run at once); calls of one kind end in the order they were admitted, so a guard
/// that keeps what it reserved per call keeps a queue per kind. Async, so that a guard can record the call durably (a journal, a remote budget)
/// without blocking the runtime; thread-safe, since one guard may watch several runs.
#[async_trait]
pub trait RunGuard: Send + Sync {
    /// Called before each paid call; `Err` stops the run before the call.
    async fn before_call(&self, call: PlannedCall) -> Result<(), Halt>;

    /// Called after each paid call with what it used (a call that failed is reported with
    /// what the provider billed for it, often nothing, so a guard can release what it
    /// reserved).
    async fn after_call(&self, call: PaidCall, usage: &CallUsage) {
        let _ = (call, usage);
    }
}

/// Why a run stopped, machine-readable (the report's `stop_reason` says it in words).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StopReason {
    /// Not recorded (reports written before stop reasons were typed).
    #[default]
    Unknown,
    /// The judge found the image aligned.
    Aligned {
        /// The round.
        round: u32,
    },
    /// The judge accepted the image without full alignment.
    Accepted {
        /// The round.
        round: u32,
    },
    /// Every round ran without alignment.
    MaxRounds,
    /// The judge failed; the image is unjudged.
    JudgeFailed {
        /// The round.
        round: u32,
    },
    /// A stage failed and ended the run.
    Failed {
        /// The stage.
        stage: StageName,
        /// The failure's class.
        class: ErrorClass,
        /// The round, when in one.
        round: Option<u32>,
    },
    /// A [`RunGuard`] stopped the run before a paid call.
    Halted {
        /// Why.
        halt: HaltKind,
        /// The call that was not made.
        before: PaidCall,
    },
}

impl StopReason {
    /// The class of the failure that stopped the run, when one did.
    pub fn class(&self) -> Option<ErrorClass> {
        match self {
            StopReason::Failed { class, .. } => Some(*class),
            _ => None,
        }
    }
}
