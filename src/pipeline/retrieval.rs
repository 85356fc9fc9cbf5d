use std::time::Instant;

use iat2i_selectors::{ReferenceSource, SelectError, SelectionRequest};
use tracing::Instrument;

use super::Pipeline;
use super::losses::select_cause;
use super::state::RunState;
use crate::degraded::{Cause, Degradation, Lost};
use crate::error::{StageError, StageName};
use crate::events::PipelineEvent;
use crate::gate::Assessment;
use crate::guard::PaidCall;
use crate::report::RetrievalRecord;

impl Pipeline {
    /// Ask the gate about the prompt and record the answer.
    pub(super) async fn assess(&self, st: &mut RunState) -> Result<Assessment, StageError> {
        let Some(gate) = &self.gate else {
            return Err(StageError::Other(
                "the gate mode needs a gate, and none was configured".into(),
            ));
        };
        self.events.emit(PipelineEvent::GateStarted);
        let reply = match gate
            .assess(&st.prompt, st.edit_image.is_some())
            .instrument(tracing::info_span!("iat2i.gate"))
            .await
        {
            Ok(reply) => reply,
            Err(e) => {
                // An answer that was billed and then unusable still counts.
                let billed = e.billed();
                st.report.usage.gate.add(&billed);
                st.spent(PaidCall::Gate, billed, Default::default()).await;
                return Err(e.into());
            }
        };
        st.report.usage.gate.add(&reply.usage);
        st.spent(PaidCall::Gate, reply.usage, Default::default())
            .await;
        st.report.assessment = Some(reply.value.clone());
        st.assessment = Some(reply.value.clone());
        self.events.emit(PipelineEvent::Assessed {
            assessment: reply.value.clone(),
        });
        Ok(reply.value)
    }

    /// Queries for a new search: the given ones, else the gate's (asking it if it has
    /// not been asked), else its entities, else the prompt itself.
    pub(super) async fn queries_for(&self, st: &mut RunState, given: Vec<String>) -> Vec<String> {
        if !given.is_empty() {
            return given;
        }
        let existing = st.assessment.clone();
        let assessment = match existing {
            Some(a) => Some(a),
            None if self.gate.is_some() && !st.gate_failed && st.allow(PaidCall::Gate).await => {
                match self.assess(st).await {
                    Ok(a) => Some(a),
                    Err(e) => {
                        st.record_error(self, StageName::Gate, None, e.to_string());
                        st.classify_last(e.class());
                        st.gate_failed = true;
                        None
                    }
                }
            }
            None => None,
        };
        match assessment {
            Some(a) if !a.queries.is_empty() => a.queries,
            Some(a) if !a.entities.is_empty() => a.entities.into_iter().take(4).collect(),
            _ => vec![st.prompt.chars().take(120).collect()],
        }
    }

    /// Search `queries`, select a reference and make it current. Never fails the run:
    /// problems are recorded, and the previous reference (if any) stays.
    pub(super) async fn retrieve(&self, st: &mut RunState, queries: Vec<String>, reason: String) {
        if !st.allow(PaidCall::Select).await {
            return;
        }
        let mut record = RetrievalRecord {
            reason,
            queries: queries.clone(),
            ..RetrievalRecord::default()
        };
        st.report.queries.extend(queries.iter().cloned());
        let request = self.selection_request(st, &queries);
        // The selector's memory may answer alone (its search policy).
        if !self.selector.needs_web_search(&request).await {
            record
                .reason
                .push_str("; the reference memory answered (web search skipped)");
            self.select(st, &mut record, request, Vec::new()).await;
            self.selected(st, record).await;
            return;
        }
        self.events.emit(PipelineEvent::SearchStarted {
            queries: queries.clone(),
        });
        let t = Instant::now();
        let found = self
            .search
            .search(&queries, &self.search_options)
            .instrument(tracing::info_span!("iat2i.search", queries = queries.len()))
            .await;
        record.search_ms = t.elapsed().as_millis() as u64;
        let failed_runs = found.runs.iter().filter(|r| r.error.is_some()).count();
        self.events.emit(PipelineEvent::SearchFinished {
            count: found.candidates.len(),
            failed_runs,
        });
        self.failed_engines(st, &found.runs);
        record.runs = found.runs;
        record.candidates = found.candidates.clone();
        if found.candidates.is_empty() {
            let why = format!(
                "no candidates from {} engine run(s) ({failed_runs} failed); generating without a new reference",
                record.runs.len()
            );
            st.record_error(self, StageName::Search, None, why.clone());
            let cause = if failed_runs > 0 && failed_runs == record.runs.len() {
                Cause::EngineFailed
            } else {
                Cause::NoCandidates
            };
            self.lost_reference(st, StageName::Search, cause, &why);
            record.error = Some(why);
            st.report.retrievals.push(record);
            st.spent(PaidCall::Select, Default::default(), Default::default())
                .await;
            return;
        }
        self.select(st, &mut record, request, found.candidates)
            .await;
        self.selected(st, record).await;
    }

    /// Record a finished selection.
    async fn selected(&self, st: &mut RunState, record: RetrievalRecord) {
        st.report.retrievals.push(record);
        // The candidate judge's tokens of this selection: into the report now (not only when
        // the run ends) and to the guard, so budgets count them.
        let judged = self
            .candidate_judge
            .as_ref()
            .map(|cj| cj.take_usage(&st.report.run_id))
            .unwrap_or_default();
        st.report.usage.candidate_judge.add(&judged);
        st.spent(PaidCall::Select, judged, Default::default()).await;
    }

    fn selection_request(&self, st: &RunState, queries: &[String]) -> SelectionRequest {
        SelectionRequest {
            prompt: st.report.request.prompt.clone(),
            queries: queries.to_vec(),
            entities: st
                .assessment
                .as_ref()
                .map(|a| a.entities.clone())
                .unwrap_or_default(),
            run_id: st.report.run_id.clone(),
        }
    }

    async fn select(
        &self,
        st: &mut RunState,
        record: &mut RetrievalRecord,
        request: SelectionRequest,
        candidates: Vec<iat2i_retrievers::Candidate>,
    ) {
        self.events.emit(PipelineEvent::SelectionStarted {
            candidates: candidates.len(),
        });
        let t = Instant::now();
        let result = self
            .selector
            .select(&request, candidates)
            .instrument(tracing::info_span!("iat2i.select"))
            .await;
        record.select_ms = t.elapsed().as_millis() as u64;
        match result {
            Ok(selection) => {
                if let Some(reason) = &selection.judge_reason
                    && reason.contains("fell back")
                {
                    let d = Degradation::new(
                        Lost::CandidateJudgePick,
                        Cause::CallFailed,
                        StageName::Select,
                        reason.clone(),
                    );
                    st.degrade(self, d);
                }
                if let Some(why) = &selection.memory.degraded {
                    let d = Degradation::new(
                        Lost::Memory,
                        Cause::StoreUnavailable,
                        StageName::Select,
                        why.clone(),
                    );
                    st.degrade(self, d);
                }
                if selection.best.source == ReferenceSource::Thumbnail {
                    let d = Degradation::new(
                        Lost::OriginalImage,
                        Cause::DownloadFailed,
                        StageName::Select,
                        selection.best.source_note.clone().unwrap_or_default(),
                    );
                    st.degrade(self, d);
                }
                self.events.emit(PipelineEvent::SelectionFinished {
                    reference: selection.best.candidate.image_url.to_string(),
                    alternates: selection.alternates.len(),
                });
                record.selection = Some(selection.clone());
                st.selection = Some(selection);
                st.ref_index = 0;
                st.use_reference = true;
            }
            Err(e) => {
                let msg = e.to_string();
                st.record_error(self, StageName::Select, None, msg.clone());
                self.lost_reference(st, StageName::Select, select_cause(&e), &msg);
                st.classify_last(crate::failure::ErrorClass::Internal);
                let store_failed =
                    matches!(e, SelectError::Store(_) | SelectError::StoreLocked { .. });
                if store_failed && self.require_memory {
                    // The selector failed rather than select without its memory, as its
                    // settings asked: the run stops before its next paid call.
                    let detail = format!("the selection stopped: {msg}");
                    let d = Degradation::new(
                        Lost::Memory,
                        Cause::StoreUnavailable,
                        StageName::Select,
                        detail,
                    );
                    st.degrade(self, d);
                    st.required_loss = Some(Lost::Memory);
                }
                if let SelectError::NoCandidates { dropped } = e {
                    record.dropped = dropped;
                }
                record.error = Some(msg);
            }
        }
    }
}
