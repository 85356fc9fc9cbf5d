use std::time::Instant;

use iat2i_selectors::{ReferenceSource, SelectError, Selection, SelectionRequest};
use tracing::Instrument;

use super::Pipeline;
use super::losses::select_cause;
use super::slots::{Slot, spread};
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

    /// Search and select for `target` (see [`Target`]), the entities in parallel, and
    /// make each selection current in its slot. Never fails the run: problems are
    /// recorded, and a slot's previous reference (if any) stays. Returns the queries
    /// searched.
    pub(super) async fn research(
        &self,
        st: &mut RunState,
        given: Vec<String>,
        target: Target,
        reason: String,
    ) -> Vec<String> {
        let targets: Vec<(usize, Vec<String>)> = match target {
            Target::Auto => {
                let queries = self.queries_for(st, given.clone()).await;
                let plan = st
                    .assessment
                    .as_ref()
                    .filter(|a| a.per_entity() && given.is_empty())
                    .map(|a| a.plan.clone());
                match plan {
                    Some(plan) => {
                        if st
                            .slots
                            .iter()
                            .all(|s| s.entity.is_none() && s.selection.is_none())
                        {
                            st.slots = plan.into_iter().map(Slot::of).collect();
                        }
                        (0..st.slots.len())
                            .map(|i| (i, st.entity_queries(i)))
                            .collect()
                    }
                    None => vec![(0, queries)],
                }
            }
            Target::Slots(slots) => {
                let one = slots.len() == 1 && !given.is_empty();
                slots
                    .into_iter()
                    .filter(|&i| i < st.slots.len())
                    .map(|i| {
                        (
                            i,
                            if one {
                                given.clone()
                            } else {
                                st.entity_queries(i)
                            },
                        )
                    })
                    .collect()
            }
        };
        let searched: Vec<String> = targets.iter().flat_map(|(_, q)| q.clone()).collect();
        self.retrieve_into(st, targets, reason).await;
        searched
    }

    /// Search and select for each `(slot, queries)` concurrently, then record each in turn.
    async fn retrieve_into(
        &self,
        st: &mut RunState,
        targets: Vec<(usize, Vec<String>)>,
        reason: String,
    ) {
        let mut jobs = Vec::new();
        for (slot, queries) in targets {
            if !st.allow(PaidCall::Select).await {
                break;
            }
            let record = RetrievalRecord {
                reason: reason.clone(),
                queries: queries.clone(),
                entity: st.slots[slot].name().map(str::to_string),
                ..RetrievalRecord::default()
            };
            st.report.queries.extend(queries.iter().cloned());
            let request = self.selection_request(st, slot, &queries);
            jobs.push((slot, record, request));
        }
        let found =
            futures::future::join_all(jobs.into_iter().map(|(slot, record, request)| async move {
                (slot, self.find(record, request).await)
            }))
            .await;
        for (slot, f) in found {
            self.record_found(st, slot, f).await;
        }
        if st.slots.len() > 1 {
            for note in spread(&mut st.slots) {
                tracing::info!(%note, "one reference per entity");
                if let Some(r) = st.report.retrievals.last_mut() {
                    r.notes.push(note);
                }
            }
        }
    }

    /// Search (unless the memory answers alone) and select: no state is touched, so
    /// several entities' searches run at once.
    async fn find(&self, mut record: RetrievalRecord, request: SelectionRequest) -> Found {
        // The selector's memory may answer alone (its search policy).
        if !self.selector.needs_web_search(&request).await {
            record
                .reason
                .push_str("; the reference memory answered (web search skipped)");
            let selected = self.run_selector(&mut record, &request, Vec::new()).await;
            return Found {
                record,
                selected: Some(selected),
            };
        }
        let queries = record.queries.clone();
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
        record.runs = found.runs;
        record.candidates = found.candidates.clone();
        if found.candidates.is_empty() {
            return Found {
                record,
                selected: None,
            };
        }
        let selected = self
            .run_selector(&mut record, &request, found.candidates)
            .await;
        Found {
            record,
            selected: Some(selected),
        }
    }

    async fn run_selector(
        &self,
        record: &mut RetrievalRecord,
        request: &SelectionRequest,
        candidates: Vec<iat2i_retrievers::Candidate>,
    ) -> Result<Selection, SelectError> {
        self.events.emit(PipelineEvent::SelectionStarted {
            candidates: candidates.len(),
        });
        let t = Instant::now();
        let result = self
            .selector
            .select(request, candidates)
            .instrument(tracing::info_span!("iat2i.select"))
            .await;
        record.select_ms = t.elapsed().as_millis() as u64;
        result
    }

    /// Record what one slot's search and selection found, and make it current.
    async fn record_found(&self, st: &mut RunState, slot: usize, found: Found) {
        let Found {
            mut record,
            selected,
        } = found;
        self.failed_engines(st, &record.runs);
        let of = record
            .entity
            .as_ref()
            .map(|e| format!("{e}: "))
            .unwrap_or_default();
        let Some(selected) = selected else {
            let failed_runs = record.runs.iter().filter(|r| r.error.is_some()).count();
            let why = format!(
                "{of}no candidates from {} engine run(s) ({failed_runs} failed); generating without a new reference",
                record.runs.len()
            );
            st.record_error(self, StageName::Search, None, why.clone());
            let cause = if failed_runs > 0 && failed_runs == record.runs.len() {
                Cause::EngineFailed
            } else {
                Cause::NoCandidates
            };
            self.lost_reference(st, slot, StageName::Search, cause, &why);
            record.error = Some(why);
            st.report.retrievals.push(record);
            st.spent(PaidCall::Select, Default::default(), Default::default())
                .await;
            return;
        };
        match selected {
            Ok(selection) => {
                if let Some(reason) = &selection.judge_reason
                    && reason.contains("fell back")
                {
                    let d = Degradation::new(
                        Lost::CandidateJudgePick,
                        Cause::CallFailed,
                        StageName::Select,
                        format!("{of}{reason}"),
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
                        format!(
                            "{of}{}",
                            selection.best.source_note.clone().unwrap_or_default()
                        ),
                    );
                    st.degrade(self, d);
                }
                self.events.emit(PipelineEvent::SelectionFinished {
                    reference: selection.best.candidate.image_url.to_string(),
                    alternates: selection.alternates.len(),
                });
                record.selection = Some(selection.clone());
                st.slots[slot].set(selection);
            }
            Err(e) => {
                let msg = format!("{of}{e}");
                st.record_error(self, StageName::Select, None, msg.clone());
                self.lost_reference(st, slot, StageName::Select, select_cause(&e), &msg);
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

    /// What slot `slot` is ranked against: the entity's name and description (the text
    /// side of CLIP and the candidate judge) with its queries, or the whole prompt.
    fn selection_request(
        &self,
        st: &RunState,
        slot: usize,
        queries: &[String],
    ) -> SelectionRequest {
        let (prompt, entities) = match st.slots.get(slot).and_then(|s| s.entity.as_ref()) {
            Some(e) if e.description.is_empty() => (e.name.clone(), vec![e.name.clone()]),
            Some(e) => (
                format!("{}: {}", e.name, e.description),
                vec![e.name.clone()],
            ),
            None => (
                st.report.request.prompt.clone(),
                st.assessment
                    .as_ref()
                    .map(|a| a.entities.clone())
                    .unwrap_or_default(),
            ),
        };
        SelectionRequest::new(prompt)
            .with_queries(queries.to_vec())
            .with_entities(entities)
            .with_run_id(st.report.run_id.clone())
    }
}

/// Which slots a search is for.
pub(super) enum Target {
    /// Decided from the gate: one search per planned entity when it planned several (and
    /// no queries were given), else one for the whole prompt.
    Auto,
    /// These slots, each with its entity's own queries (the given ones when only one).
    Slots(Vec<usize>),
}

/// One slot's search and selection, before it is recorded.
struct Found {
    record: RetrievalRecord,
    /// `None` when the search found no candidates.
    selected: Option<Result<Selection, SelectError>>,
}
