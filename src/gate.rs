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
}

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
entities. Otherwise answer needs_reference=false, gap none, queries empty.";

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
            "Prompt: {prompt:?}\n\nWrite at most {} queries in total, covering these \
             languages: {langs}.{edit_note}",
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
