use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use iat2i_selectors::Reference;

use super::slots::Slot;
use super::{Outcome, Pipeline, RunOptions};
use crate::degraded::{Degradation, Lost};
use crate::error::{PipelineError, StageError, StageName};
use crate::events::PipelineEvent;
use crate::failure::ErrorClass;
use crate::gate::{Assessment, GateMode};
use crate::generator::ImageUsage;
use crate::generator::{GeneratedImage, InputImage};
use crate::guard::{CallUsage, Halt, PaidCall, PlannedCall, RunGuard, StopReason};
use crate::judge::Verdict;
use crate::lmm::Usage;
use crate::report::{ErrorRecord, ImageRecord, Report, RequestRecord};

static RUN_COUNTER: AtomicU64 = AtomicU64::new(0);

fn new_run_id(now: SystemTime) -> String {
    let nanos = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = RUN_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("run-{nanos:x}-{n}")
}

/// An image and its verdict, kept while it is the best so far.
pub(super) struct Kept {
    pub round: u32,
    pub image: GeneratedImage,
    pub verdict: Option<Verdict>,
    /// The references its round sent, first first.
    pub references: Vec<Reference>,
}

/// Ordering key: judged beats unjudged, aligned (when the scores agree) beats
/// unaligned, then the mean of the axes that apply to the round.
pub(super) fn rank(verdict: &Option<Verdict>) -> (u8, f32) {
    match verdict {
        None => (0, 0.0),
        Some(v) => (1 + u8::from(v.trusted_aligned()), v.score()),
    }
}

/// The mutable state of one run.
pub(super) struct RunState {
    pub started: Instant,
    pub report: Report,
    /// The prompt the next round works from (refined prompts replace it).
    pub prompt: String,
    pub edit_image: Option<InputImage>,
    pub assessment: Option<Assessment>,
    /// The references: one slot per planned entity, or one for the whole prompt.
    pub slots: Vec<Slot>,
    pub best: Option<Kept>,
    pub stop: Option<String>,
    /// Why the run stopped, typed (set where `stop` is decided).
    pub stop_kind: Option<StopReason>,
    pub last_error: Option<(StageName, StageError)>,
    /// The gate mode of this run: the pipeline's (or the run's options'), until a failed
    /// gate falls back to generating first.
    pub gate_mode: GateMode,
    /// The gate failed in this run: it is not asked again (queries come from the judge
    /// or the prompt).
    pub gate_failed: bool,
    /// Asked before every paid call.
    pub guard: Option<Arc<dyn RunGuard>>,
    /// This run's generation settings, when its options override the pipeline's.
    pub generation: Option<crate::generator::GenerationSettings>,
    /// The guard's halt and the call it prevented, once it halted the run.
    pub halted: Option<(Halt, PaidCall)>,
    /// This run's round budget.
    pub max_rounds: u32,
    /// The references the current round was generated with.
    pub round_references: Vec<Reference>,
    /// Something the caller required was lost (the reference memory): the run makes no
    /// further paid call and ends with [`PipelineError::Required`].
    pub required_loss: Option<Lost>,
}

impl RunState {
    pub fn new(
        p: &Pipeline,
        prompt: String,
        edit_image: Option<InputImage>,
        options: RunOptions,
    ) -> Self {
        let now = SystemTime::now();
        let gate_mode = options.gate_mode.unwrap_or(p.gate_mode);
        let max_rounds = options.max_rounds.unwrap_or(p.max_rounds).max(1);
        let report = Report {
            run_id: new_run_id(now),
            started_at_unix: now
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            request: RequestRecord {
                prompt: prompt.clone(),
                edit: edit_image.is_some(),
                edit_image: edit_image
                    .as_ref()
                    .map(|i| ImageRecord::of(&i.mime, &i.bytes)),
            },
            gate_mode,
            max_rounds,
            models: p.models.clone(),
            ..Report::default()
        };
        RunState {
            started: Instant::now(),
            report,
            prompt,
            edit_image,
            assessment: None,
            slots: vec![Slot::whole()],
            best: None,
            stop: None,
            stop_kind: None,
            last_error: None,
            gate_failed: false,
            guard: options.guard,
            generation: options.generation,
            halted: None,
            gate_mode,
            max_rounds,
            round_references: Vec::new(),
            required_loss: None,
        }
    }

    /// Whether the guard lets the chat call `call` go ahead; a halt is remembered and ends
    /// the run.
    pub async fn allow(&mut self, call: PaidCall) -> bool {
        self.admit(PlannedCall::chat(call)).await
    }

    /// Whether the guard lets an image call for `n` images go ahead.
    pub async fn allow_images(&mut self, n: u32) -> bool {
        self.admit(PlannedCall::images(n)).await
    }

    async fn admit(&mut self, planned: PlannedCall) -> bool {
        if self.halted.is_some() {
            return false;
        }
        let Some(guard) = self.guard.clone() else {
            return true;
        };
        let call = planned.kind;
        match guard.before_call(planned).await {
            Ok(()) => true,
            Err(halt) => {
                tracing::info!(?call, %halt, "run halted by its guard");
                self.stop_kind = Some(StopReason::Halted {
                    halt: halt.kind,
                    before: call,
                });
                self.halted = Some((halt, call));
                false
            }
        }
    }

    /// Tell the guard what a paid call used.
    pub async fn spent(&self, call: PaidCall, chat: Usage, image: ImageUsage) {
        if let Some(guard) = &self.guard {
            guard.after_call(call, &CallUsage { chat, image }).await;
        }
    }

    /// The halt in words, for `stop_reason`.
    pub fn halt_message(&self) -> String {
        match &self.halted {
            Some((halt, call)) => format!("{halt} (before the {call} call)"),
            None => "stopped".into(),
        }
    }

    /// Attach a failure class to the last recorded error.
    pub fn classify_last(&mut self, class: ErrorClass) {
        if let Some(e) = self.report.errors.last_mut() {
            e.class = Some(class);
        }
    }

    /// The references the next round sends, slot by slot (most unfamiliar entity first).
    pub fn current_references(&self) -> Vec<(usize, &Reference)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.current().map(|r| (i, r)))
            .collect()
    }

    /// Whether any slot has selected a reference.
    pub fn has_selection(&self) -> bool {
        self.slots.iter().any(|s| s.selection.is_some())
    }

    /// Whether another reference can be tried for a slot in use.
    pub fn has_alternates(&self) -> bool {
        self.slots.iter().any(|s| s.active && s.has_alternates())
    }

    /// What the generator is told slot `slot`'s reference `r` shows: the entity's name,
    /// or for the whole prompt the gate's entities (else the query that found it).
    pub fn label_for(&self, slot: usize, r: &Reference) -> String {
        if let Some(name) = self.slots.get(slot).and_then(Slot::name) {
            return name.to_string();
        }
        match &self.assessment {
            Some(a) if !a.entities.is_empty() => a.entities.join(" and "),
            _ => r.candidate.query.clone(),
        }
    }

    /// Slot `slot`'s own queries: its entity's, else the gate's, else the prompt.
    pub fn entity_queries(&self, slot: usize) -> Vec<String> {
        match self.slots.get(slot).and_then(|s| s.entity.as_ref()) {
            Some(e) => e.queries.clone(),
            None => match &self.assessment {
                Some(a) if !a.queries.is_empty() => a.queries.clone(),
                _ => vec![self.prompt.chars().take(120).collect()],
            },
        }
    }

    /// The slot of the entity named `name`, when there is one.
    pub fn slot_of(&self, name: &str) -> Option<usize> {
        self.slots.iter().position(|s| s.is(name))
    }

    pub fn record_error(
        &mut self,
        p: &Pipeline,
        stage: StageName,
        round: Option<u32>,
        msg: String,
    ) {
        tracing::warn!(%stage, ?round, error = %msg, "stage failed");
        p.events.emit(PipelineEvent::StageFailed {
            stage,
            round,
            error: msg.clone(),
        });
        self.report.errors.push(ErrorRecord {
            stage,
            round,
            message: msg,
            class: None,
        });
    }

    /// Record a loss: in the report's `degraded` list, as an event and in the log.
    pub fn degrade(&mut self, p: &Pipeline, degradation: Degradation) {
        tracing::warn!(%degradation, "run degraded");
        p.events.emit(PipelineEvent::Degraded {
            degradation: degradation.clone(),
        });
        self.report.degrade(degradation);
    }

    /// Whether the run wanted a reference, has none, and the caller required one.
    pub fn missing_required_reference(&self, p: &Pipeline) -> bool {
        p.require_reference
            && self.slots.iter().any(|s| s.selection.is_none())
            && self.report.lost_reference()
    }

    /// End the run because the required reference is missing; the best image so far
    /// (if any) travels with the error.
    pub fn reference_required(self, p: &Pipeline) -> PipelineError {
        let (stage, detail, report, image) = self.stop_for_loss(
            p,
            Lost::Reference,
            StageName::Select,
            "no reference was selected".to_string(),
            "a reference image was required and the run has none",
        );
        PipelineError::ReferenceRequired {
            stage,
            detail,
            report,
            image,
        }
    }

    /// End the run because it lost something its caller required (`lost`, recorded in
    /// the report's `degraded` list); the best image so far travels with the error.
    pub fn required_lost(self, p: &Pipeline, lost: Lost) -> PipelineError {
        let why = format!("the run lost its {lost}, which was required");
        let (stage, detail, report, image) = self.stop_for_loss(
            p,
            lost,
            StageName::Judge,
            format!("the {lost} was lost"),
            &why,
        );
        PipelineError::Required {
            lost,
            stage,
            detail,
            report,
            image,
        }
    }

    /// Close the run over the latest loss of `lost` (or `fallback` at `stage` when none is
    /// recorded), saying `why`: the stage, the detail, the report and the best image.
    fn stop_for_loss(
        mut self,
        p: &Pipeline,
        lost: Lost,
        stage: StageName,
        fallback: String,
        why: &str,
    ) -> (StageName, String, Box<Report>, Option<Box<GeneratedImage>>) {
        let loss = self
            .report
            .degraded
            .iter()
            .rev()
            .find(|d| d.lost == lost)
            .cloned();
        let (stage, detail) = match loss {
            Some(d) => (d.stage, format!("{} ({})", d.detail, d.cause)),
            None => (stage, fallback),
        };
        let image = self.best.take().map(|k| Box::new(k.image));
        self.report.best_round = None;
        self.close(p, format!("stopped: {why}: {detail}"));
        (stage, detail, Box::new(self.report), image)
    }

    /// Keep `image` if it beats the best so far.
    pub fn consider(&mut self, round: u32, image: GeneratedImage, verdict: Option<Verdict>) {
        let better = match &self.best {
            None => true,
            Some(k) => rank(&verdict) > rank(&k.verdict),
        };
        if better {
            self.best = Some(Kept {
                round,
                image,
                verdict,
                references: self.round_references.clone(),
            });
        }
    }

    fn close(&mut self, p: &Pipeline, stop_reason: String) {
        self.report.stop_reason = stop_reason.clone();
        if let Some(cj) = &p.candidate_judge {
            let rest = cj.take_usage(&self.report.run_id);
            self.report.usage.candidate_judge.add(&rest);
        }
        let u = &mut self.report.usage;
        let mut total = u.gate;
        total.add(&u.judge);
        total.add(&u.candidate_judge);
        u.lmm_total = total;
        self.report.total_ms = self.started.elapsed().as_millis() as u64;
        p.events.emit(PipelineEvent::Finished {
            stop_reason,
            best_round: self.report.best_round,
        });
    }

    /// End the run with an error (no image was made).
    pub fn fail(
        mut self,
        p: &Pipeline,
        stage: StageName,
        err: impl Into<StageError>,
    ) -> PipelineError {
        let err = err.into();
        let msg = err.to_string();
        if self.report.errors.last().map(|e| &e.message) != Some(&msg) {
            self.record_error(p, stage, None, msg.clone());
            self.classify_last(err.class());
        }
        let round = match self.stop_kind {
            Some(StopReason::Failed { round, .. }) => round,
            _ => None,
        };
        self.report.stop = StopReason::Failed {
            stage,
            class: err.class(),
            round,
        };
        self.close(
            p,
            format!("failed at the {stage} stage before any image was made: {msg}"),
        );
        PipelineError::stage_failed(stage, err, self.report)
    }

    /// End the run with the best image, or the last error when there is none.
    pub fn finish(mut self, p: &Pipeline) -> Result<Outcome, PipelineError> {
        if self.missing_required_reference(p) {
            return Err(self.reference_required(p));
        }
        if let Some(lost) = self.required_loss {
            return Err(self.required_lost(p, lost));
        }
        if p.require_review && self.report.lost(Lost::Review) {
            return Err(self.required_lost(p, Lost::Review));
        }
        let Some(best) = self.best.take() else {
            if let Some((halt, before)) = self.halted.take() {
                let msg = format!("{halt} before any image was made");
                self.report.stop = StopReason::Halted {
                    halt: halt.kind,
                    before,
                };
                self.close(p, msg);
                return Err(PipelineError::Halted {
                    halt,
                    before,
                    report: Box::new(self.report),
                });
            }
            return Err(match self.last_error.take() {
                Some((stage, err)) => self.fail(p, stage, err),
                None => PipelineError::Config("the run made no image and recorded no error".into()),
            });
        };
        self.report.best_round = Some(best.round);
        self.report.best_score = best.verdict.as_ref().map(Verdict::score);
        let score = match &best.verdict {
            Some(v) => format!("mean score {:.1}/10", v.score()),
            None => "not judged".to_string(),
        };
        let stop = self.stop.take().unwrap_or_else(|| {
            format!(
                "max_rounds ({}) reached without alignment; best was round {} ({score})",
                self.max_rounds, best.round
            )
        });
        self.report.stop = self.stop_kind.take().unwrap_or(StopReason::MaxRounds);
        let stop = if stop.contains("best was round") || stop.starts_with("aligned in round") {
            stop
        } else {
            format!("{stop}; returning round {} ({score})", best.round)
        };
        self.close(p, stop);
        Ok(Outcome {
            image: best.image,
            round: best.round,
            verdict: best.verdict,
            reference: best.references.first().cloned(),
            references: best.references,
            report: self.report,
        })
    }
}
