use std::time::Instant;

use tracing::Instrument;

use super::Pipeline;
use super::retrieval::Target;
use super::state::RunState;
use crate::degraded::{Degradation, Lost};
use crate::error::StageName;
use crate::events::PipelineEvent;
use crate::gate::GateMode;
use crate::generator::{
    GeneratedImage, Generation, GenerationRequest, ProgressSink, ReferenceImage,
};
use crate::guard::{PaidCall, StopReason};
use crate::judge::{Action, ReviewInput, Shown, Verdict};
use crate::report::{ImageRecord, ReferenceRecord, RoundRecord};

impl Pipeline {
    /// Run round `n`; `Some(reason)` ends the loop.
    pub(super) async fn round(&self, st: &mut RunState, n: u32) -> Option<String> {
        let (references, records, dropped) = self.round_references(st);
        // The generator words the references its own way; the report gets what it sent.
        let mut rec = RoundRecord {
            round: n,
            prompt: st.prompt.clone(),
            prompt_sent: st.prompt.clone(),
            references: records,
            references_dropped: dropped,
            ..RoundRecord::default()
        };
        self.events.emit(PipelineEvent::RoundStarted {
            round: n,
            max_rounds: st.max_rounds,
            references: references.len(),
        });
        let mut request = st
            .generation
            .as_ref()
            .unwrap_or(&self.generation)
            .request(st.prompt.clone());
        request.references = references;
        request.edit_image = st.edit_image.clone();
        let events = self.events.clone();
        request.progress = Some(ProgressSink::new(move |progress| {
            events.emit(PipelineEvent::GeneratorProgress { round: n, progress })
        }));
        let span = tracing::info_span!("iat2i.round", round = n);
        let stop = self
            .generate_and_judge(st, n, &request, &mut rec)
            .instrument(span)
            .await;
        st.report.rounds.push(rec);
        stop
    }

    /// The references the round sends, one per slot in use (most unfamiliar entity
    /// first), as many as the generator takes; the entities left out are recorded.
    fn round_references(
        &self,
        st: &mut RunState,
    ) -> (Vec<ReferenceImage>, Vec<ReferenceRecord>, Vec<String>) {
        let current: Vec<(usize, iat2i_selectors::Reference)> = st
            .current_references()
            .into_iter()
            .map(|(i, r)| (i, r.clone()))
            .collect();
        let room = self
            .generator
            .max_input_images()
            .map(|m| m.saturating_sub(usize::from(st.edit_image.is_some())));
        let mut references = Vec::new();
        let mut records = Vec::new();
        let mut dropped = Vec::new();
        let mut sent = Vec::new();
        for (slot, r) in current {
            let label = st.label_for(slot, &r);
            let entity = st.slots[slot].name().map(str::to_string);
            if room.is_some_and(|room| references.len() >= room) {
                let why = format!(
                    "{}: not sent, the generator takes at most {} image(s) a call and the \
                     more unfamiliar entities' references came first",
                    entity.as_deref().unwrap_or(&label),
                    self.generator.max_input_images().unwrap_or_default()
                );
                let d = Degradation::new(
                    Lost::EntityReference,
                    crate::degraded::Cause::Config,
                    StageName::Generate,
                    why.clone(),
                );
                st.degrade(self, d);
                dropped.push(why);
                continue;
            }
            let role = st.slots[slot].role();
            let mut record = ReferenceRecord::new(&label, &r);
            record.entity = entity;
            record.role = role;
            references.push(ReferenceImage {
                image: crate::generator::InputImage {
                    bytes: r.bytes.clone(),
                    mime: r.mime.clone(),
                },
                label,
                role,
            });
            records.push(record);
            sent.push(r);
        }
        st.round_references = sent;
        (references, records, dropped)
    }

    async fn generate_and_judge(
        &self,
        st: &mut RunState,
        n: u32,
        request: &GenerationRequest,
        rec: &mut RoundRecord,
    ) -> Option<String> {
        if !st.allow_images(request.n).await {
            return Some(st.halt_message());
        }
        let t = Instant::now();
        let generated = self
            .generator
            .generate(request)
            .instrument(tracing::info_span!("iat2i.generate"))
            .await;
        rec.generate_ms = t.elapsed().as_millis() as u64;
        let generation = match generated {
            Ok(g) if !g.images.is_empty() => g,
            Ok(_) => {
                st.spent(PaidCall::Generate, Default::default(), Default::default())
                    .await;
                let msg = format!("{} returned no image", self.generator.describe());
                st.record_error(self, StageName::Generate, Some(n), msg.clone());
                rec.error = Some(msg.clone());
                return Some(format!("image generation failed in round {n}: {msg}"));
            }
            Err(e) => {
                // A failed call still ends: the guard releases what it reserved for it.
                st.spent(
                    PaidCall::Generate,
                    Default::default(),
                    e.usage().unwrap_or_default(),
                )
                .await;
                let msg = e.to_string();
                st.record_error(self, StageName::Generate, Some(n), msg.clone());
                st.classify_last(e.class());
                st.stop_kind = Some(StopReason::Failed {
                    stage: StageName::Generate,
                    class: e.class(),
                    round: Some(n),
                });
                rec.error = Some(msg.clone());
                st.last_error = Some((StageName::Generate, e.into()));
                return Some(format!("image generation failed in round {n}: {msg}"));
            }
        };
        self.record_generation(st, &generation, rec);
        st.spent(PaidCall::Generate, Default::default(), generation.usage)
            .await;
        let Some((image, verdict)) = self.judge_each(st, n, request, generation, rec).await else {
            if st.halted.is_some() {
                return Some(st.halt_message());
            }
            st.stop_kind = Some(StopReason::JudgeFailed { round: n });
            return Some(format!("the judge failed in round {n}"));
        };
        rec.revised_prompt = image.revised_prompt.clone();
        rec.image = Some(ImageRecord::of(&image.mime, &image.bytes));
        rec.verdict = Some(verdict.clone());
        self.report_verdict(st, &verdict).await;
        st.consider(n, image, Some(verdict.clone()));
        self.act(st, n, &verdict, rec).await
    }

    fn record_generation(&self, st: &mut RunState, g: &Generation, rec: &mut RoundRecord) {
        st.report.usage.images.add(&g.usage);
        rec.prompt_sent = g.prompt_sent.clone();
        rec.image_usage = Some(g.usage);
        rec.images_generated = g.images.len() as u32;
        rec.generator_notes = g.notes.clone();
        if let Some(first) = g.images.first() {
            rec.image = Some(ImageRecord::of(&first.mime, &first.bytes));
            rec.revised_prompt = first.revised_prompt.clone();
        }
    }

    /// Judge every image of the round and keep the best (best of n). `None` when the
    /// judge failed; the images judged so far are still considered for the outcome.
    async fn judge_each(
        &self,
        st: &mut RunState,
        n: u32,
        request: &GenerationRequest,
        generation: Generation,
        rec: &mut RoundRecord,
    ) -> Option<(GeneratedImage, Verdict)> {
        let mut best: Option<(GeneratedImage, Verdict)> = None;
        for image in generation.images {
            self.events.emit(PipelineEvent::Generated {
                round: n,
                bytes: image.bytes.len(),
            });
            let judged = if st.allow(PaidCall::Judge).await {
                self.judge_round(st, n, request, &image, rec).await
            } else {
                None
            };
            let Some(verdict) = judged else {
                if let Some((img, v)) = best {
                    st.consider(n, img, Some(v));
                }
                st.consider(n, image, None);
                return None;
            };
            let better = match &best {
                None => true,
                Some((_, b)) => {
                    super::state::rank(&Some(verdict.clone()))
                        > super::state::rank(&Some(b.clone()))
                }
            };
            if better {
                best = Some((image, verdict));
            }
        }
        best
    }

    async fn judge_round(
        &self,
        st: &mut RunState,
        n: u32,
        request: &GenerationRequest,
        image: &GeneratedImage,
        rec: &mut RoundRecord,
    ) -> Option<Verdict> {
        let judged = crate::generator::InputImage {
            bytes: image.bytes.clone(),
            mime: image.mime.clone(),
        };
        // The judge holds every round to the user's own prompt, not to a rewording.
        let input = ReviewInput {
            prompt: &st.report.request.prompt,
            image: &judged,
            references: &request.references,
            edit_image: st.edit_image.as_ref(),
            has_alternates: st.has_alternates(),
        };
        let t = Instant::now();
        let reviewed = self
            .judge
            .review(&input)
            .instrument(tracing::info_span!("iat2i.judge"))
            .await;
        rec.judge_ms = t.elapsed().as_millis() as u64;
        match reviewed {
            Ok(reply) => {
                st.report.usage.judge.add(&reply.usage);
                let mut usage = rec.judge_usage.unwrap_or_default();
                usage.add(&reply.usage);
                rec.judge_usage = Some(usage);
                st.spent(PaidCall::Judge, reply.usage, Default::default())
                    .await;
                // Any judge's verdict: reference_use only when a reference was sent, and
                // an `aligned` its own scores contradict is noted.
                let verdict = reply.value.checked(!request.references.is_empty());
                if let Some(c) = &verdict.contradiction {
                    tracing::warn!(round = n, contradiction = %c, "judge contradicts itself");
                }
                rec.verdict = Some(verdict.clone());
                self.events.emit(PipelineEvent::Judged {
                    round: n,
                    verdict: verdict.clone(),
                });
                Some(verdict)
            }
            Err(e) => {
                // An answer that was billed and then unusable still counts.
                let billed = e.billed();
                st.report.usage.judge.add(&billed);
                st.spent(PaidCall::Judge, billed, Default::default()).await;
                let msg = e.to_string();
                st.record_error(self, StageName::Judge, Some(n), msg.clone());
                st.classify_last(e.class());
                let cause = super::losses::stage_cause(&crate::error::StageError::Lmm(e));
                let detail = format!("round {n}'s image is kept unjudged: {msg}");
                st.degrade(
                    self,
                    Degradation::new(Lost::Review, cause, StageName::Judge, detail).in_round(n),
                );
                rec.error = Some(msg);
                None
            }
        }
    }

    /// Tell the selector (its reference memory) what the judge made of the reference used:
    /// accepted (aligned, or accepted as is) or rejected (another reference, or none).
    /// With one reference per entity, each reference is told the judge's word on its own
    /// entity (`yes` accepted, `no` rejected).
    async fn report_verdict(&self, st: &RunState, v: &Verdict) {
        for (slot, reference) in st.current_references() {
            let word = st.slots[slot].name().and_then(|name| {
                v.entities
                    .iter()
                    .find(|e| e.name.eq_ignore_ascii_case(name))
            });
            let (accepted, rejected) = match word {
                Some(e) => (e.shown == Shown::Yes, e.shown == Shown::No),
                None => (
                    v.aligned || v.action == Action::Accept,
                    matches!(v.action, Action::NextReference | Action::DropReference),
                ),
            };
            if accepted || rejected {
                self.selector.record_verdict(reference, accepted).await;
            }
        }
    }

    /// The slots the verdict's action is about: the entity it names; else, with one
    /// reference per entity, those the judge did not find shown as their reference
    /// shows them; else every slot.
    fn targets(st: &RunState, v: &Verdict) -> Vec<usize> {
        if let Some(slot) = v.entity.as_deref().and_then(|e| st.slot_of(e)) {
            return vec![slot];
        }
        let unmet: Vec<usize> = v
            .entities
            .iter()
            .filter(|e| e.shown != Shown::Yes)
            .filter_map(|e| st.slot_of(&e.name))
            .collect();
        if unmet.is_empty() {
            (0..st.slots.len()).collect()
        } else {
            unmet
        }
    }

    /// Carry out the verdict's action for the next round; `Some(reason)` stops.
    async fn act(
        &self,
        st: &mut RunState,
        n: u32,
        v: &Verdict,
        rec: &mut RoundRecord,
    ) -> Option<String> {
        if v.trusted_aligned() {
            rec.next_step = Some("stop: aligned".into());
            st.stop_kind = Some(StopReason::Aligned { round: n });
            return Some(format!("aligned in round {n}"));
        }
        if v.action == Action::Accept {
            rec.next_step = Some("stop: the judge accepted the image".into());
            st.stop_kind = Some(StopReason::Accepted { round: n });
            return Some(format!(
                "the judge accepted round {n} without full alignment"
            ));
        }
        if n >= st.max_rounds {
            rec.next_step = Some("stop: no rounds left".into());
            return None;
        }
        let first_retrieval = st.gate_mode == GateMode::GenerateFirst && !st.has_selection();
        if first_retrieval && (v.knowledge_gap || matches!(v.action, Action::Research { .. })) {
            let given = match &v.action {
                Action::Research { queries } => queries.clone(),
                _ => Vec::new(),
            };
            let reason = format!("the judge found a knowledge gap in round {n}");
            self.research(st, given, Target::Auto, reason).await;
            if st.missing_required_reference(self) {
                rec.next_step = Some("stop: the required reference could not be found".into());
                return Some(format!(
                    "no reference found after round {n}, and one was required"
                ));
            }
            if let Action::RefinePrompt { prompt } = &v.action {
                st.prompt = prompt.clone();
            }
            rec.next_step =
                Some("retrieve a reference (generate-first found a knowledge gap)".into());
            return None;
        }
        rec.next_step = Some(self.apply(st, n, v).await);
        None
    }

    async fn apply(&self, st: &mut RunState, n: u32, v: &Verdict) -> String {
        let targets = Self::targets(st, v);
        let whose = |st: &RunState, slot: usize| {
            st.slots[slot]
                .name()
                .map(|e| format!(" of {e}"))
                .unwrap_or_default()
        };
        match &v.action {
            Action::Accept => "stop".into(),
            Action::RefinePrompt { prompt } => {
                st.prompt = prompt.clone();
                "refine the prompt".into()
            }
            Action::NextReference => {
                let mut moved = Vec::new();
                for &slot in &targets {
                    if st.slots[slot].has_alternates() {
                        let s = &mut st.slots[slot];
                        s.index += 1;
                        s.active = true;
                        let index = s.index;
                        moved.push(format!("alternate reference {index}{}", whose(st, slot)));
                    }
                }
                if moved.is_empty() {
                    "no other reference is available; keep the current one".into()
                } else {
                    format!("try {}", moved.join(", "))
                }
            }
            Action::DropReference => {
                for &slot in &targets {
                    st.slots[slot].active = false;
                }
                if st.slots.len() > 1 && targets.len() < st.slots.len() {
                    let names: Vec<String> = targets.iter().map(|&t| whose(st, t)).collect();
                    format!("generate without the reference{}", names.join(", and"))
                } else {
                    "generate without the reference".into()
                }
            }
            Action::Research { queries } => {
                let reason = format!("the judge asked to research after round {n}");
                let target = if st.slots.len() == 1 && st.slots[0].entity.is_none() {
                    Target::Auto
                } else {
                    Target::Slots(targets)
                };
                let queries = self.research(st, queries.clone(), target, reason).await;
                format!("search again with {queries:?}")
            }
        }
    }
}
