//! Stage bookkeeping for one selection run: the drops and per-stage reports collected on the
//! way. A leaf module shared by the selector and its final stages.

use std::time::Instant;

use crate::error::SelectError;
use crate::stage::{Dropped, Stage, StageReport};

/// Stage bookkeeping for one run.
#[derive(Default)]
pub(crate) struct Run {
    pub dropped: Vec<Dropped>,
    pub stages: Vec<StageReport>,
}

impl Run {
    /// Record how `stage` went.
    pub fn stage(&mut self, stage: Stage, input: usize, output: usize, elapsed_ms: u64) {
        tracing::debug!(?stage, input, output, elapsed_ms, "selection stage");
        self.stages.push(StageReport {
            stage,
            input,
            output,
            elapsed_ms,
        });
    }

    /// The error for a run that ended with no candidate left.
    pub fn fail(self) -> SelectError {
        SelectError::NoCandidates {
            dropped: self.dropped,
        }
    }
}

/// Milliseconds since `since`.
pub(crate) fn ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}
