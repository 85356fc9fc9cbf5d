//! Self-reflection: a vision LMM reviews a generated image against the prompt and the
//! reference, scores it, and chooses the next action.

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::generator::{InputImage, ReferenceImage};
use crate::lmm::{JsonReply, Lmm, LmmError, Message, chat_json};

/// The lowest score an `aligned` verdict may have on any axis that applies (the rule the
/// judge is given).
pub const ALIGNED_MIN_SCORE: f32 = 7.0;

/// Scores from 0 to 10.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct Scores {
    /// Does the image do what the prompt asks (objects, counts, actions, composition)?
    pub instruction_following: f32,
    /// Are the entities drawn as they really look; is it consistent with common sense?
    pub knowledge_consistency: f32,
    /// Was the reference used for what it is for, without copying its background or style?
    /// `None` when no reference was given: the axis does not apply to that round.
    pub reference_use: Option<f32>,
    /// Aesthetic quality.
    pub aesthetics: f32,
}

impl Scores {
    /// Scores for a round without a reference (`reference_use` does not apply; set it
    /// with [`Scores::with_reference_use`]).
    pub fn new(instruction_following: f32, knowledge_consistency: f32, aesthetics: f32) -> Self {
        Scores {
            instruction_following,
            knowledge_consistency,
            reference_use: None,
            aesthetics,
        }
    }

    /// With a score for how the reference was used.
    pub fn with_reference_use(mut self, score: f32) -> Self {
        self.reference_use = Some(score);
        self
    }

    /// The scores clamped to 0..=10 (NaN becomes 0).
    pub fn clamped(self) -> Scores {
        let c = |v: f32| if v.is_nan() { 0.0 } else { v.clamp(0.0, 10.0) };
        Scores {
            instruction_following: c(self.instruction_following),
            knowledge_consistency: c(self.knowledge_consistency),
            reference_use: self.reference_use.map(c),
            aesthetics: c(self.aesthetics),
        }
    }

    /// The axes that apply, by name: `reference_use` only when it was scored.
    pub fn applicable(&self) -> Vec<(&'static str, f32)> {
        let mut axes = vec![
            ("instruction_following", self.instruction_following),
            ("knowledge_consistency", self.knowledge_consistency),
        ];
        if let Some(r) = self.reference_use {
            axes.push(("reference_use", r));
        }
        axes.push(("aesthetics", self.aesthetics));
        axes
    }

    /// The mean of the axes that apply (a round without a reference is not given a free
    /// 10 for using it).
    pub fn mean(&self) -> f32 {
        let axes = self.applicable();
        axes.iter().map(|(_, v)| v).sum::<f32>() / axes.len() as f32
    }
}

/// What the pipeline should do next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// Keep this image.
    Accept,
    /// Generate again with this prompt.
    RefinePrompt {
        /// The new prompt (the reference instructions are added by the pipeline).
        prompt: String,
    },
    /// Try the next reference among the selection's alternates.
    NextReference,
    /// Generate without the reference (it misleads the model).
    DropReference,
    /// Search again with these queries and select a new reference.
    Research {
        /// New search queries (empty: reuse the gate's).
        queries: Vec<String>,
    },
}

/// Whether the image shows an entity as its reference does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Shown {
    /// As the reference shows it.
    Yes,
    /// Recognisably, with something wrong.
    Partly,
    /// Not, or wrongly.
    No,
}

/// The judge's word on one entity that had a reference of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct EntityVerdict {
    /// The entity, as its reference was labelled.
    pub name: String,
    /// Whether the image shows it as its reference does.
    pub shown: Shown,
    /// Why, in a sentence.
    pub reason: String,
}

/// The judge's review of one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Verdict {
    /// Whether the image is aligned with the prompt.
    pub aligned: bool,
    /// The four scores.
    pub scores: Scores,
    /// What is wrong or right, in a few sentences.
    pub feedback: String,
    /// Whether the failure comes from the image model not knowing what an entity looks
    /// like (used by [`crate::GateMode::GenerateFirst`]).
    pub knowledge_gap: bool,
    /// What to do next.
    pub action: Action,
    /// The entity the action is about (`next_reference`, `drop_reference` and `research`
    /// act on that entity's reference only); `None`: every reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// One word per entity with a reference of its own (empty with a single reference).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<EntityVerdict>,
    /// When the judge said `aligned` but its own scores break the rule it was given
    /// (every applicable score at least [`ALIGNED_MIN_SCORE`]): which score, in words.
    /// Such a verdict is not trusted as aligned when rounds are ranked or the loop stops.
    #[serde(default)]
    pub contradiction: Option<String>,
}

impl EntityVerdict {
    /// The judge's word on the entity `name`.
    pub fn new(name: impl Into<String>, shown: Shown, reason: impl Into<String>) -> Self {
        EntityVerdict {
            name: name.into(),
            shown,
            reason: reason.into(),
        }
    }
}

impl Verdict {
    /// An aligned image: keep it. For judges written outside this crate.
    pub fn accept(scores: Scores, feedback: impl Into<String>) -> Self {
        Verdict {
            aligned: true,
            scores,
            feedback: feedback.into(),
            knowledge_gap: false,
            action: Action::Accept,
            entity: None,
            entities: Vec::new(),
            contradiction: None,
        }
    }

    /// An image that is not aligned, and what to do next.
    pub fn reject(scores: Scores, feedback: impl Into<String>, action: Action) -> Self {
        Verdict {
            aligned: false,
            action,
            ..Verdict::accept(scores, feedback)
        }
    }

    /// Saying whether the failure is the image model not knowing what something looks
    /// like (what [`crate::GateMode::GenerateFirst`] retrieves on).
    pub fn with_knowledge_gap(mut self, gap: bool) -> Self {
        self.knowledge_gap = gap;
        self
    }

    /// With the entity the action is about.
    pub fn with_entity(mut self, entity: impl Into<String>) -> Self {
        self.entity = Some(entity.into());
        self
    }

    /// With one word per entity that had a reference of its own.
    pub fn with_entities(mut self, entities: Vec<EntityVerdict>) -> Self {
        self.entities = entities;
        self
    }

    /// The score used to pick the best round: the mean of the axes that apply.
    pub fn score(&self) -> f32 {
        self.scores.mean()
    }

    /// Aligned, and the scores agree (no [`Self::contradiction`]).
    pub fn trusted_aligned(&self) -> bool {
        self.aligned && self.contradiction.is_none()
    }

    /// The verdict for a round that had (or had not) a reference: without one,
    /// `reference_use` does not apply and is removed; an `aligned` that contradicts the
    /// scores is noted in [`Self::contradiction`]. The pipeline applies this to every
    /// judge's verdict.
    pub fn checked(mut self, had_reference: bool) -> Verdict {
        self.scores = self.scores.clamped();
        if !had_reference {
            self.scores.reference_use = None;
        }
        self.contradiction = None;
        if self.aligned {
            let low: Vec<String> = self
                .scores
                .applicable()
                .into_iter()
                .filter(|(_, v)| *v < ALIGNED_MIN_SCORE)
                .map(|(name, v)| format!("{name} {v:.1}"))
                .collect();
            if !low.is_empty() {
                self.contradiction = Some(format!(
                    "the judge said aligned, but scored {} (aligned needs every score at \
                     least {ALIGNED_MIN_SCORE}); not trusted as aligned",
                    low.join(", ")
                ));
            }
        }
        self
    }
}

/// The judge's answer as the model writes it (flat, so small models manage it too).
#[derive(Debug, Deserialize, JsonSchema)]
struct WireVerdict {
    aligned: bool,
    scores: Scores,
    feedback: String,
    knowledge_gap: bool,
    action: ActionKind,
    /// The new prompt, for refine_prompt.
    new_prompt: Option<String>,
    /// New search queries, for research.
    new_queries: Vec<String>,
    /// Per named reference: is its entity shown as the reference shows it.
    #[serde(default)]
    entities: Vec<EntityVerdict>,
    /// The entity next_reference, drop_reference or research is about (null: all).
    #[serde(default)]
    target_entity: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum ActionKind {
    Accept,
    RefinePrompt,
    NextReference,
    DropReference,
    Research,
}

impl WireVerdict {
    fn into_verdict(self, prompt: &str) -> Verdict {
        let action = match self.action {
            ActionKind::Accept => Action::Accept,
            ActionKind::RefinePrompt => Action::RefinePrompt {
                prompt: self
                    .new_prompt
                    .filter(|p| !p.trim().is_empty())
                    .unwrap_or_else(|| format!("{prompt}. {}", self.feedback.trim())),
            },
            ActionKind::NextReference => Action::NextReference,
            ActionKind::DropReference => Action::DropReference,
            ActionKind::Research => Action::Research {
                queries: self
                    .new_queries
                    .into_iter()
                    .map(|q| q.trim().to_string())
                    .filter(|q| !q.is_empty())
                    .take(4)
                    .collect(),
            },
        };
        Verdict {
            aligned: self.aligned,
            scores: self.scores.clamped(),
            feedback: self.feedback,
            knowledge_gap: self.knowledge_gap,
            action,
            entity: self
                .target_entity
                .map(|e| e.trim().to_string())
                .filter(|e| !e.is_empty()),
            entities: self
                .entities
                .into_iter()
                .filter(|e| !e.name.trim().is_empty())
                .collect(),
            contradiction: None,
        }
    }
}

/// A judge's reply text read as [`LmmJudge`] reads it (tolerant JSON extraction, the
/// wire schema, then the verdict), for the fuzz harness; `None` where the review would
/// fail with a non-JSON error. Not part of the API.
#[doc(hidden)]
pub fn parse_verdict_reply(text: &str, prompt: &str) -> Option<Verdict> {
    let value = crate::lmm::extract_json(text)?;
    let wire: WireVerdict = serde_json::from_value(value).ok()?;
    Some(wire.into_verdict(prompt))
}

/// What a judge looks at.
#[derive(Debug, Clone, Copy)]
pub struct ReviewInput<'a> {
    /// The prompt the image should satisfy (the pipeline passes the user's own prompt).
    pub prompt: &'a str,
    /// The generated image.
    pub image: &'a InputImage,
    /// The references the generator was given.
    pub references: &'a [ReferenceImage],
    /// The user's image, in edit mode.
    pub edit_image: Option<&'a InputImage>,
    /// Whether another reference is available for `next_reference`.
    pub has_alternates: bool,
}

/// Reviews a generated image.
#[async_trait]
pub trait Judge: Send + Sync {
    /// Review one image.
    async fn review(&self, input: &ReviewInput<'_>) -> Result<JsonReply<Verdict>, LmmError>;
}

const JUDGE_SYSTEM: &str = "You review an image generated for a prompt. Score from 0 to 10: \
instruction_following (does it show what the prompt asks), knowledge_consistency (are the \
named entities drawn as they really look, is it consistent with common sense), reference_use \
(did it take the entity's appearance from the reference without copying its background, pose \
or style; null when there is no reference), aesthetics. aligned=true only when the image \
satisfies the prompt and every score given is at least 7. knowledge_gap=true when the failure comes \
from not knowing what an entity looks like. Then choose one action: accept (aligned); \
refine_prompt (the prompt wording misled the model: give new_prompt); next_reference (the \
reference shows the wrong thing or is poor and another is available); drop_reference (the \
reference hurts: the model copied it or it is wrong and none other helps); research (no \
reference shows the entity correctly, or one is needed and none was given: give new_queries). \
Use null for new_prompt and [] for new_queries when not needed. When several reference \
images each show a named entity, fill entities with one entry per entity (shown: yes, partly \
or no, and why) and name in target_entity the one entity next_reference, drop_reference or \
research is about (null to act on all); with one reference or none, entities is [] and \
target_entity null.";

/// A [`Judge`] that asks a vision LMM.
#[derive(Debug, Clone)]
pub struct LmmJudge {
    lmm: Arc<dyn Lmm>,
}

impl LmmJudge {
    /// A judge asking `lmm` (it must accept images).
    pub fn new(lmm: Arc<dyn Lmm>) -> Self {
        LmmJudge { lmm }
    }

    fn message(input: &ReviewInput<'_>) -> Message {
        let mut m = Message::user(format!(
            "Prompt: {:?}\nThe first image is the generated one.",
            input.prompt
        ))
        .with_image(input.image.bytes.clone(), input.image.mime.clone());
        if let Some(edit) = input.edit_image {
            m = m
                .with_text("The next image is the user's image that was to be edited.")
                .with_image(edit.bytes.clone(), edit.mime.clone());
        }
        for (i, r) in input.references.iter().enumerate() {
            m = m
                .with_text(format!("Reference image {} shows {}.", i + 1, r.label))
                .with_image(r.image.bytes.clone(), r.image.mime.clone());
        }
        if input.references.is_empty() {
            m = m.with_text("No reference image was given.");
        }
        if !input.has_alternates {
            m = m.with_text("No other reference is available (do not choose next_reference).");
        }
        m
    }
}

#[async_trait]
impl Judge for LmmJudge {
    async fn review(&self, input: &ReviewInput<'_>) -> Result<JsonReply<Verdict>, LmmError> {
        let messages = vec![Message::system(JUDGE_SYSTEM), Self::message(input)];
        let reply = chat_json::<WireVerdict>(self.lmm.as_ref(), "verdict", messages).await?;
        Ok(JsonReply {
            value: reply
                .value
                .into_verdict(input.prompt)
                .checked(!input.references.is_empty()),
            usage: reply.usage,
            degraded: reply.degraded,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_verdict_maps_actions_and_clamps_scores() {
        let w: WireVerdict = serde_json::from_value(serde_json::json!({
            "aligned": false,
            "scores": {"instruction_following": 12, "knowledge_consistency": -1,
                       "reference_use": 5, "aesthetics": 7},
            "feedback": "horns wrong",
            "knowledge_gap": true,
            "action": "refine_prompt",
            "new_prompt": null,
            "new_queries": []
        }))
        .unwrap();
        let v = w.into_verdict("a graphorn");
        assert_eq!(v.scores.instruction_following, 10.0);
        assert_eq!(v.scores.knowledge_consistency, 0.0);
        assert_eq!(
            v.action,
            Action::RefinePrompt {
                prompt: "a graphorn. horns wrong".into()
            }
        );
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["action"]["kind"], "refine_prompt");
    }

    fn verdict(aligned: bool, scores: [f32; 4]) -> Verdict {
        Verdict {
            aligned,
            scores: Scores {
                instruction_following: scores[0],
                knowledge_consistency: scores[1],
                reference_use: Some(scores[2]),
                aesthetics: scores[3],
            },
            feedback: String::new(),
            knowledge_gap: false,
            action: Action::Accept,
            entity: None,
            entities: Vec::new(),
            contradiction: None,
        }
    }

    #[test]
    fn a_round_without_a_reference_is_scored_on_the_axes_that_apply() {
        // The judge still sent reference_use 10 for a round without a reference.
        let without = verdict(false, [7.0, 7.0, 10.0, 7.0]).checked(false);
        assert_eq!(without.scores.reference_use, None);
        assert_eq!(without.score(), 7.0);
        let with = verdict(false, [8.0, 8.0, 6.0, 8.0]).checked(true);
        assert_eq!(with.score(), 7.5);
        assert!(with.score() > without.score());
    }

    #[test]
    fn an_aligned_that_contradicts_the_scores_is_noted_and_not_trusted() {
        let v = verdict(true, [9.0, 3.0, 8.0, 8.0]).checked(true);
        assert!(v.aligned && !v.trusted_aligned());
        let note = v.contradiction.as_deref().unwrap();
        assert!(note.contains("knowledge_consistency 3.0"), "{note}");
        let honest = verdict(true, [9.0, 7.0, 8.0, 8.0]).checked(true);
        assert!(honest.trusted_aligned() && honest.contradiction.is_none());
        // A low reference_use does not count when there was no reference.
        let no_ref = verdict(true, [9.0, 8.0, 0.0, 8.0]).checked(false);
        assert!(no_ref.trusted_aligned());
    }

    #[test]
    fn the_judge_is_no_longer_told_to_give_reference_use_ten() {
        assert!(!JUDGE_SYSTEM.contains("10 when there is no reference"));
        assert!(JUDGE_SYSTEM.contains("null when there is no reference"));
        let schema = crate::lmm::strict_schema::<WireVerdict>();
        let r = &schema["properties"]["scores"]["properties"]["reference_use"];
        assert!(r.to_string().contains("null"), "{r}");
    }
}
