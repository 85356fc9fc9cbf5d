//! What the run records when it goes on without something: the gate falling back, a
//! retrieval that produced no reference, engines that failed.

use iat2i_retrievers::EngineRun;
use iat2i_selectors::SelectError;

use super::Pipeline;
use super::retrieval::Target;
use super::state::RunState;
use crate::degraded::{Cause, Degradation, Lost};
use crate::error::StageError;
use crate::gate::GateMode;
use crate::lmm::LmmError;
use crate::stage::StageName;

impl Pipeline {
    /// The gate failed: record it, and go on without its decision. From the prompt, the
    /// run generates first and lets the judge decide; in `always` mode it searches with
    /// the prompt itself.
    pub(super) async fn gate_fell_back(&self, st: &mut RunState, e: StageError) {
        let msg = e.to_string();
        st.record_error(self, StageName::Gate, None, msg.clone());
        st.gate_failed = true;
        let cause = stage_cause(&e);
        if st.gate_mode == GateMode::Always {
            let detail = format!("searching with the prompt itself: {msg}");
            st.degrade(
                self,
                Degradation::new(Lost::GateDecision, cause, StageName::Gate, detail),
            );
            let reason = "gate mode always (the gate failed)".to_string();
            self.research(st, Vec::new(), Target::Auto, reason).await;
        } else {
            let detail =
                format!("generating first and letting the judge decide on a reference: {msg}");
            st.degrade(
                self,
                Degradation::new(Lost::GateDecision, cause, StageName::Gate, detail),
            );
            st.gate_mode = GateMode::GenerateFirst;
        }
    }

    /// A retrieval produced no reference: without an earlier one, the run has lost its
    /// reference; otherwise the earlier one stays.
    pub(super) fn lost_reference(
        &self,
        st: &mut RunState,
        slot: usize,
        stage: StageName,
        cause: Cause,
        why: &str,
    ) {
        let none_yet = st.slots.get(slot).is_none_or(|s| s.selection.is_none());
        let (lost, detail) = if none_yet {
            (
                Lost::Reference,
                format!("generating without a reference: {why}"),
            )
        } else {
            (
                Lost::NewReference,
                format!("keeping the earlier reference: {why}"),
            )
        };
        st.degrade(self, Degradation::new(lost, cause, stage, detail));
    }

    /// Record every engine run that failed.
    pub(super) fn failed_engines(&self, st: &mut RunState, runs: &[EngineRun]) {
        for run in runs {
            let Some(error) = &run.error else { continue };
            let detail = format!("{} for {:?}: {error}", run.engine, run.query);
            st.degrade(
                self,
                Degradation::new(
                    Lost::EngineResults,
                    engine_cause(error),
                    StageName::Search,
                    detail,
                ),
            );
        }
    }
}

/// Why an engine failed, from its message (the retrievers report errors as text).
fn engine_cause(error: &str) -> Cause {
    let e = error.to_ascii_lowercase();
    if ["blocked", "captcha", "consent", "challenge", "403"]
        .iter()
        .any(|w| e.contains(w))
    {
        Cause::EngineBlocked
    } else {
        Cause::EngineFailed
    }
}

/// Why selection produced no reference.
pub(super) fn select_cause(e: &SelectError) -> Cause {
    match e {
        SelectError::NoCandidates { .. } => Cause::AllCandidatesRefused,
        SelectError::Store(_) | SelectError::StoreLocked { .. } => Cause::StoreUnavailable,
        SelectError::Embedding(msg) => embedding_cause(msg),
        SelectError::Config(_) => Cause::Config,
        _ => Cause::Other,
    }
}

fn embedding_cause(msg: &str) -> Cause {
    if msg.contains("ORT_DYLIB_PATH") || msg.contains("ONNX Runtime") || msg.contains("onnxruntime")
    {
        Cause::RuntimeMissing
    } else if msg.contains("cannot read")
        || msg.contains("not found")
        || msg.contains("no download support")
        || msg.contains("downloading or loading")
    {
        Cause::ModelMissing
    } else {
        Cause::EmbeddingFailed
    }
}

/// Why a stage's call failed.
pub(super) fn stage_cause(e: &StageError) -> Cause {
    match e {
        e if e.is_rate_limited() => Cause::RateLimited,
        StageError::Lmm(LmmError::Config(_)) => Cause::Config,
        StageError::Select(s) => select_cause(s),
        _ => Cause::CallFailed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedding_messages_name_the_missing_part() {
        let ort = "ORT_DYLIB_PATH is not set; install ONNX Runtime";
        assert_eq!(embedding_cause(ort), Cause::RuntimeMissing);
        let model = "cannot read /m/vision/model.onnx: No such file or directory";
        assert_eq!(embedding_cause(model), Cause::ModelMissing);
        assert_eq!(
            embedding_cause("image encoder: bad shape"),
            Cause::EmbeddingFailed
        );
        assert_eq!(
            engine_cause("bing: blocked: a CAPTCHA page was served"),
            Cause::EngineBlocked
        );
        assert_eq!(engine_cause("wikimedia: HTTP 500"), Cause::EngineFailed);
    }
}
