//! Stopping a run from outside, and why a run stopped.
//!
//! A [`RunGuard`] passed to [`crate::Pipeline::run_guarded`] is asked before every paid
//! call (the gate, the query writer, selection with its candidate judge, each image, each
//! verdict) whether the run may go on, and told what each call used. A batch uses it for
//! budgets, deadlines and shutdown; the run then ends with the best image so far and a
//! report whose [`StopReason`] says it was halted.

use async_trait::async_trait;

use crate::generator::ImageUsage;
use crate::lmm::Usage;
pub use crate::vocabulary::{Halt, HaltKind, PaidCall, StopReason};

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

/// Decides, before each paid call, whether a run may go on, and hears what each call
/// used. Every `before_call` that returned `Ok` is followed by exactly one `after_call`
/// for that call (also when the call failed). A run may admit several calls before the
/// first ends (with one reference per entity, each entity's selection is admitted, then
/// they run at once); calls of one kind end in the order they were admitted, so a guard
/// that keeps what it reserved per call keeps a queue per kind. Async, so that a guard
/// can record the call durably (a journal, a remote budget) without blocking the runtime;
/// thread-safe, since one guard may watch several runs.
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
