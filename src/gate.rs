//! The knowledge gate: does a prompt need a reference image from the web?

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::lmm::{JsonReply, Lmm, LmmError, Message, chat_json};

/// Why an image model may fail a prompt without a reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KnowledgeGap {
    /// The entity exists but is rare in training data (a niche species, a minor character).
    KnownButRare,
    /// The entity is likely unknown to the model (new products, recent events, new characters).
    Unknown,
    /// The name could refer to several things; a reference pins down which.
    Ambiguous,
    /// No gap: the model can draw this from common knowledge.
    None,
}

/// The gate's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct Assessment {
    /// Whether a reference image should be retrieved before generating.
    pub needs_reference: bool,
    /// The kind of knowledge gap.
    pub gap: KnowledgeGap,
    /// Image search queries (1 to 4 when a reference is needed, else empty).
    pub queries: Vec<String>,
    /// The entities a reference should show.
    pub entities: Vec<String>,
    /// Why, in a sentence.
    pub rationale: String,
    /// One entry per entity that needs a reference of its own, the most unfamiliar first
    /// (empty in a reply of the older flat shape: then `queries` serve the whole prompt).
    /// With two or more entries the pipeline selects one reference per entity.
    #[serde(default)]
    pub plan: Vec<EntityPlan>,
}

/// What one entity's reference must show, and how to find it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub struct EntityPlan {
    /// The entity's name as the prompt means it ("Graphorn").
    pub name: String,
    /// 1 to 3 image-search queries for it alone, in the requested languages.
    pub queries: Vec<String>,
    /// What the reference is for: the entity's look (`subject`), a `style` or a `layout`.
    #[serde(default)]
    pub role: crate::generator::ReferenceRole,
    /// One line saying what the entity looks like or is ("a large grey horned creature
    /// from Fantastic Beasts"): the text candidates are ranked against.
    #[serde(default)]
    pub description: String,
    /// Why the image model may not know it.
    #[serde(default = "rare")]
    pub gap: KnowledgeGap,
}

fn rare() -> KnowledgeGap {
    KnowledgeGap::KnownButRare
}

impl EntityPlan {
    /// A plan for the entity `name`, found with `queries` (a subject reference, a rare
    /// entity, no description: set them with the `with_` methods).
    pub fn new(name: impl Into<String>, queries: Vec<String>) -> Self {
        EntityPlan {
            name: name.into(),
            queries,
            role: crate::generator::ReferenceRole::default(),
            description: String::new(),
            gap: KnowledgeGap::KnownButRare,
        }
    }

    /// With what the reference is for.
    pub fn with_role(mut self, role: crate::generator::ReferenceRole) -> Self {
        self.role = role;
        self
    }

    /// With one line saying what the entity looks like.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// With why the image model may not know it.
    pub fn with_gap(mut self, gap: KnowledgeGap) -> Self {
        self.gap = gap;
        self
    }
}

impl Assessment {
    /// No reference is needed: the model can draw the prompt from common knowledge. For
    /// gates written outside this crate.
    pub fn no_reference(rationale: impl Into<String>) -> Self {
        Assessment {
            needs_reference: false,
            gap: KnowledgeGap::None,
            queries: Vec::new(),
            entities: Vec::new(),
            rationale: rationale.into(),
            plan: Vec::new(),
        }
    }

    /// A reference is needed for `entities`, found with `queries`.
    pub fn reference(
        gap: KnowledgeGap,
        queries: Vec<String>,
        entities: Vec<String>,
        rationale: impl Into<String>,
    ) -> Self {
        Assessment {
            needs_reference: true,
            gap,
            queries,
            entities,
            rationale: rationale.into(),
            plan: Vec::new(),
        }
    }

    /// With one plan per entity that needs a reference of its own (two or more: the
    /// pipeline selects one reference per entity).
    pub fn with_plan(mut self, plan: Vec<EntityPlan>) -> Self {
        self.plan = plan;
        self
    }

    /// Whether the prompt names several entities that each need their own reference.
    pub fn per_entity(&self) -> bool {
        self.needs_reference && self.plan.len() > 1
    }
}

/// The most entities the gate plans references for (every backend takes at least this
/// many images, or says which it dropped).
pub const MAX_ENTITIES: usize = 6;

/// When the pipeline consults the gate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateMode {
    /// Ask the gate from the prompt alone, before generating (the default).
    #[default]
    FromPrompt,
    /// Generate without a reference first; retrieve only when the judge finds a knowledge gap.
    GenerateFirst,
    /// Always retrieve (the gate still writes the queries).
    Always,
    /// Never retrieve: plain generation with self-reflection.
    Never,
}

impl std::str::FromStr for GateMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s
            .trim()
            .to_ascii_lowercase()
            .replace(['-', '_'], "")
            .as_str()
        {
            "fromprompt" | "prompt" => Ok(GateMode::FromPrompt),
            "generatefirst" => Ok(GateMode::GenerateFirst),
            "always" => Ok(GateMode::Always),
            "never" => Ok(GateMode::Never),
            _ => Err(format!(
                "unknown gate mode {s:?}: use from-prompt, generate-first, always or never"
            )),
        }
    }
}

/// Assesses whether a prompt needs a reference image.
#[async_trait]
pub trait Gate: Send + Sync {
    /// Assess `prompt`; `edit` tells whether the user is editing an image of their own.
    async fn assess(&self, prompt: &str, edit: bool) -> Result<JsonReply<Assessment>, LmmError>;
}

/// A [`Gate`] that asks an LMM, answering JSON.
#[derive(Debug, Clone)]
pub struct LmmGate {
    lmm: Arc<dyn Lmm>,
    languages: Vec<String>,
    max_queries: usize,
}

const GATE_SYSTEM: &str = "You decide whether a text-to-image model needs a reference \
image from the web to draw a prompt correctly. Image models know common things (a cat, \
the Eiffel Tower, Mario) but fail on rare or recent entities: niche species, minor or new \
game and film characters, new products, local landmarks, specific people's artworks. \
Answer needs_reference=true only when a specific entity's appearance matters and the model \
is unlikely to know it (gap known_but_rare or unknown) or the name is ambiguous (gap \
ambiguous). Then write short image-search queries that would find a clear picture of each \
entity (the entity's name plus a disambiguating word, no style words), and list the \
entities. Also fill plan with one entry per entity that needs its own reference, the most \
unfamiliar first: its name, 1 to 3 queries for it alone, role (subject for its look, style \
or layout), a one-line description of what it looks like, and its gap. Leave out of plan \
the things any image model draws well (a horse, a misty hillside). Otherwise answer \
needs_reference=false, gap none, queries, entities and plan empty.";

impl LmmGate {
    /// A gate asking `lmm`, writing English queries, at most 4.
    pub fn new(lmm: Arc<dyn Lmm>) -> Self {
        LmmGate {
            lmm,
            languages: vec!["en".into()],
            max_queries: 4,
        }
    }

    /// Ask for queries in these languages (ISO codes such as `en`, `zh`, `ja`): several
    /// languages raise recall on engines indexed by region.
    pub fn with_languages(mut self, languages: Vec<String>) -> Self {
        if !languages.is_empty() {
            self.languages = languages;
        }
        self
    }

    /// The most queries kept (1 to 4; default 4).
    pub fn with_max_queries(mut self, n: usize) -> Self {
        self.max_queries = n.clamp(1, 4);
        self
    }

    fn instructions(&self, prompt: &str, edit: bool) -> String {
        let langs = self.languages.join(", ");
        let edit_note = if edit {
            " The user is editing an image of their own; judge only what the prompt adds."
        } else {
            ""
        };
        format!(
            "Prompt: {prompt:?}\n\nWrite at most {} queries in total, and 1 to 3 per plan \
             entry, covering these languages: {langs}.{edit_note}",
            self.max_queries
        )
    }

    /// Clean the model's answer (see [`tidy`]).
    fn tidy(&self, prompt: &str, a: Assessment) -> Assessment {
        tidy(prompt, a, self.max_queries)
    }
}

/// A gate's reply text read as [`LmmGate`] reads it (tolerant JSON extraction, the
/// schema, then [`tidy`]), for the fuzz harness; `None` where the assessment would fail
/// with a non-JSON error. Not part of the API.
#[doc(hidden)]
pub fn parse_assessment_reply(text: &str, prompt: &str, max_queries: usize) -> Option<Assessment> {
    let value = crate::lmm::extract_json(text)?;
    let a: Assessment = serde_json::from_value(value).ok()?;
    Some(tidy(prompt, a, max_queries))
}

/// Clean the model's answer: trim, dedupe, cap the queries, and make sure a reference
/// request has at least one query.
fn tidy(prompt: &str, mut a: Assessment, max_queries: usize) -> Assessment {
    let mut seen = std::collections::HashSet::new();
    a.queries = a
        .queries
        .into_iter()
        .map(|q| q.trim().to_string())
        .filter(|q| !q.is_empty() && seen.insert(q.to_lowercase()))
        .take(max_queries)
        .collect();
    a.entities.retain(|e| !e.trim().is_empty());
    a.plan = tidy_plan(std::mem::take(&mut a.plan), max_queries);
    if !a.needs_reference {
        a.plan.clear();
    }
    if a.queries.is_empty() {
        // A reply that only filled the plan: its queries serve the whole prompt too.
        let mut seen = std::collections::HashSet::new();
        a.queries = a
            .plan
            .iter()
            .flat_map(|e| e.queries.iter().cloned())
            .filter(|q| seen.insert(q.to_lowercase()))
            .take(max_queries)
            .collect();
    }
    if a.entities.is_empty() {
        a.entities = a.plan.iter().map(|e| e.name.clone()).collect();
    }
    if a.needs_reference && a.queries.is_empty() {
        a.queries = if a.entities.is_empty() {
            vec![prompt.chars().take(120).collect()]
        } else {
            a.entities.iter().take(max_queries).cloned().collect()
        };
    }
    if a.needs_reference && a.gap == KnowledgeGap::None {
        a.gap = KnowledgeGap::KnownButRare;
    }
    a
}

/// The plan cleaned: named entries only, one per name, that the model may not know, each
/// with 1 to 3 distinct queries (its name when it gave none) and at most [`MAX_ENTITIES`].
fn tidy_plan(plan: Vec<EntityPlan>, max_queries: usize) -> Vec<EntityPlan> {
    let mut names = std::collections::HashSet::new();
    plan.into_iter()
        .filter_map(|mut e| {
            e.name = e.name.trim().to_string();
            e.description = e.description.trim().to_string();
            if e.name.is_empty() || e.gap == KnowledgeGap::None {
                return None;
            }
            names.insert(e.name.to_lowercase()).then_some(())?;
            let mut seen = std::collections::HashSet::new();
            e.queries = e
                .queries
                .into_iter()
                .map(|q| q.trim().to_string())
                .filter(|q| !q.is_empty() && seen.insert(q.to_lowercase()))
                .take(max_queries.min(3))
                .collect();
            if e.queries.is_empty() {
                e.queries = vec![e.name.clone()];
            }
            Some(e)
        })
        .take(MAX_ENTITIES)
        .collect()
}

#[async_trait]
impl Gate for LmmGate {
    async fn assess(&self, prompt: &str, edit: bool) -> Result<JsonReply<Assessment>, LmmError> {
        let messages = vec![
            Message::system(GATE_SYSTEM),
            Message::user(self.instructions(prompt, edit)),
        ];
        let reply = chat_json::<Assessment>(self.lmm.as_ref(), "assessment", messages).await?;
        Ok(JsonReply {
            value: self.tidy(prompt, reply.value),
            ..reply
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = r#"{"needs_reference": true, "gap": "known_but_rare",
        "queries": ["Hogwarts Legacy protagonist", "Graphorn Fantastic Beasts"],
        "entities": ["Hogwarts Legacy protagonist", "Graphorn", "horse"],
        "rationale": "two rare entities",
        "plan": [
          {"name": "Graphorn", "queries": ["Graphorn Fantastic Beasts", " graphorn fantastic beasts ", "Graphorn creature", "Graphorn 4"],
           "role": "subject", "description": "a large grey humped creature with two long horns", "gap": "known_but_rare"},
          {"name": "Hogwarts Legacy protagonist", "queries": [], "role": "subject",
           "description": "the player character of the 2023 game, in school robes", "gap": "unknown"},
          {"name": "horse", "queries": ["horse"], "role": "subject", "description": "", "gap": "none"},
          {"name": " graphorn ", "queries": ["again"], "role": "subject", "description": "", "gap": "unknown"}
        ]}"#;

    #[test]
    fn a_plan_keeps_each_unfamiliar_entity_with_its_own_queries() {
        let a = parse_assessment_reply(TWO, "p", 4).unwrap();
        assert!(a.per_entity());
        let names: Vec<&str> = a.plan.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            ["Graphorn", "Hogwarts Legacy protagonist"],
            "known and repeated names dropped"
        );
        assert_eq!(
            a.plan[0].queries,
            [
                "Graphorn Fantastic Beasts",
                "Graphorn creature",
                "Graphorn 4"
            ]
        );
        assert_eq!(
            a.plan[1].queries,
            ["Hogwarts Legacy protagonist"],
            "its name when it gave none"
        );
        assert_eq!(a.plan[1].gap, KnowledgeGap::Unknown);
        assert!(a.plan[0].description.contains("horns"));
    }

    #[test]
    fn an_old_flat_reply_still_works_and_is_not_per_entity() {
        let old = r#"{"needs_reference": true, "gap": "known_but_rare",
            "queries": ["Graphorn creature"], "entities": ["Graphorn"], "rationale": "rare"}"#;
        let a = parse_assessment_reply(old, "p", 4).unwrap();
        assert!(a.plan.is_empty() && !a.per_entity());
        assert_eq!(a.queries, ["Graphorn creature"]);
    }

    #[test]
    fn a_plan_only_reply_fills_the_flat_fields_and_no_reference_means_no_plan() {
        let only = r#"{"needs_reference": true, "gap": "unknown", "queries": [], "entities": [],
            "rationale": "", "plan": [{"name": "Zorbly", "queries": ["Zorbly toy 2026"],
            "role": "subject", "description": "", "gap": "unknown"}]}"#;
        let a = parse_assessment_reply(only, "p", 4).unwrap();
        assert_eq!(a.queries, ["Zorbly toy 2026"]);
        assert_eq!(a.entities, ["Zorbly"]);
        assert!(!a.per_entity(), "one entity behaves as before");
        let none = r#"{"needs_reference": false, "gap": "none", "queries": [], "entities": [],
            "rationale": "", "plan": [{"name": "cat", "queries": ["cat"], "role": "subject",
            "description": "", "gap": "unknown"}]}"#;
        assert!(
            parse_assessment_reply(none, "p", 4)
                .unwrap()
                .plan
                .is_empty()
        );
    }

    #[test]
    fn the_schema_asks_for_the_plan_strictly() {
        let schema = crate::lmm::strict_schema::<Assessment>();
        let required = schema["required"].to_string();
        assert!(required.contains("plan"), "{required}");
        assert!(
            schema.to_string().contains("\"style\""),
            "the roles are offered"
        );
    }
}
