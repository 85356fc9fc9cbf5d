//! The audit trail of a run, as serde-serialisable data (JSON for users and cron logs).
//!
//! A report holds no secrets: model endpoints appear without keys or query strings,
//! and image bytes are summarised by size and type.

use iat2i_retrievers::{Candidate, EngineRun, License};
use iat2i_selectors::{Dropped, Reference, ReferenceSource, Selection};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::degraded::{Degradation, Lost};
use crate::gate::{Assessment, GateMode};
use crate::generator::ImageUsage;
use crate::judge::Verdict;
use crate::lmm::Usage;
use crate::stage::StageName;
use crate::vocabulary::ErrorClass;
use crate::vocabulary::StopReason;

/// Everything a run decided and spent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// An id for this run (also scopes its vector-store points).
    pub run_id: String,
    /// Seconds since the Unix epoch when the run started.
    pub started_at_unix: u64,
    /// The request.
    pub request: RequestRecord,
    /// The gate mode used.
    pub gate_mode: GateMode,
    /// The round budget.
    pub max_rounds: u32,
    /// The models used, without secrets.
    pub models: ModelsRecord,
    /// The gate's assessment, when the gate ran.
    pub assessment: Option<Assessment>,
    /// Every search query issued, in order.
    pub queries: Vec<String>,
    /// Every search-and-select pass.
    pub retrievals: Vec<RetrievalRecord>,
    /// Every generation round.
    pub rounds: Vec<RoundRecord>,
    /// Every stage failure, including ones the run recovered from.
    pub errors: Vec<ErrorRecord>,
    /// What the run lost on the way and why (no reference, an engine blocked, the gate
    /// falling back ...): a run that returned an image may still have lost something a
    /// user relies on. Empty when nothing was lost.
    #[serde(default)]
    pub degraded: Vec<Degradation>,
    /// Token and image usage.
    pub usage: UsageTotals,
    /// The round whose image is returned.
    pub best_round: Option<u32>,
    /// That round's mean judge score (0 to 10), when judged.
    pub best_score: Option<f32>,
    /// Why the run stopped, in words.
    pub stop_reason: String,
    /// Why the run stopped, machine-readable.
    #[serde(default)]
    pub stop: StopReason,
    /// Wall time of the whole run in milliseconds.
    pub total_ms: u64,
}

impl Report {
    /// Record a loss (an identical one already recorded is not repeated).
    pub fn degrade(&mut self, degradation: Degradation) {
        if !self.degraded.contains(&degradation) {
            self.degraded.push(degradation);
        }
    }

    /// Whether the run lost `what`.
    pub fn lost(&self, what: Lost) -> bool {
        self.degraded.iter().any(|d| d.lost == what)
    }

    /// Whether the run wanted a reference image and generated without one.
    pub fn lost_reference(&self) -> bool {
        self.lost(Lost::Reference)
    }
}

/// The request, summarised.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// The user's prompt.
    pub prompt: String,
    /// Whether an image was being edited.
    pub edit: bool,
    /// The edit image's MIME type and size in bytes.
    pub edit_image: Option<ImageRecord>,
}

/// The models used, as `model at base-url` without secrets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelsRecord {
    /// The gate's model, when the gate is an LMM gate.
    pub gate: Option<String>,
    /// The judge's model.
    pub judge: Option<String>,
    /// The candidate judge's model.
    pub candidate_judge: Option<String>,
    /// The image generator.
    pub generator: String,
    /// The search engines.
    pub engines: Vec<String>,
}

/// One search-and-select pass.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RetrievalRecord {
    /// Why it ran (`gate`, `judge asked to research after round 1` ...).
    pub reason: String,
    /// The queries.
    pub queries: Vec<String>,
    /// One entry per engine and query: count, error, time.
    pub runs: Vec<EngineRun>,
    /// Every candidate found, with licence and source page.
    pub candidates: Vec<Candidate>,
    /// The selection (ranked with stage scores, dropped with reasons, stage timings,
    /// the judge's reason), when selection succeeded.
    pub selection: Option<Selection>,
    /// Search time in milliseconds.
    pub search_ms: u64,
    /// Selection time in milliseconds.
    pub select_ms: u64,
    /// Why this pass produced no reference, when it did not.
    pub error: Option<String>,
    /// When selection failed: every candidate with the stage that dropped it and why
    /// (a successful selection keeps them in `selection.dropped`).
    #[serde(default)]
    pub dropped: Vec<Dropped>,
    /// The entity this search was for, when the gate planned one reference per entity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// What was decided across entities (an image already another entity's reference).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// A reference sent to the generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceRecord {
    /// What the prompt told the generator it shows.
    pub label: String,
    /// The image URL.
    pub image_url: Url,
    /// The page it appears on.
    pub source_page: Option<Url>,
    /// Its title.
    pub title: Option<String>,
    /// Its licence.
    pub license: Option<License>,
    /// Its creator.
    pub creator: Option<String>,
    /// The engine that found it.
    pub engine: String,
    /// MIME type and size sent.
    pub image: ImageRecord,
    /// Whether the generator got the original image or the engine's thumbnail.
    #[serde(default)]
    pub source: ReferenceSource,
    /// Why the image sent is not the original as downloaded (the thumbnail stood in, or
    /// the original was downscaled), when that is so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_note: Option<String>,
    /// The entity it is the reference of, when the gate planned one per entity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// What the generator was told to take from it.
    #[serde(default)]
    pub role: crate::generator::ReferenceRole,
}

impl ReferenceRecord {
    pub(crate) fn new(label: &str, r: &Reference) -> Self {
        ReferenceRecord {
            entity: None,
            role: crate::generator::ReferenceRole::Subject,
            label: label.to_string(),
            image_url: r.candidate.image_url.clone(),
            source_page: r.candidate.source_page.clone(),
            title: r.candidate.title.clone(),
            license: r.candidate.license.clone(),
            creator: r.candidate.creator.clone(),
            engine: r.candidate.engine.clone(),
            image: ImageRecord {
                mime: r.mime.clone(),
                bytes: r.bytes.len(),
                width: Some(r.width),
                height: Some(r.height),
            },
            source: r.source,
            source_note: r.source_note.clone(),
        }
    }
}

/// An image, summarised.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// MIME type.
    pub mime: String,
    /// Size in bytes.
    pub bytes: usize,
    /// Width in pixels, when known.
    pub width: Option<u32>,
    /// Height in pixels, when known.
    pub height: Option<u32>,
}

impl ImageRecord {
    /// Summarise encoded image bytes (size read from the header).
    pub fn of(mime: &str, bytes: &[u8]) -> Self {
        let dims = crate::generator::dimensions(bytes);
        ImageRecord {
            mime: mime.to_string(),
            bytes: bytes.len(),
            width: dims.map(|d| d.0),
            height: dims.map(|d| d.1),
        }
    }
}

/// One generation round.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    /// Round number, from 1.
    pub round: u32,
    /// The prompt the round worked from (the user's or a refined one).
    pub prompt: String,
    /// The full prompt sent to the generator, reference instructions included.
    pub prompt_sent: String,
    /// The references sent.
    pub references: Vec<ReferenceRecord>,
    /// The generated image, summarised.
    pub image: Option<ImageRecord>,
    /// The prompt the generator says it used, when it rewrote it.
    pub revised_prompt: Option<String>,
    /// The generator's usage.
    pub image_usage: Option<ImageUsage>,
    /// Images the generator returned this round (the judge kept the best).
    #[serde(default)]
    pub images_generated: u32,
    /// What the generator left out or changed to fit its limits (references dropped or
    /// re-encoded, unsupported settings).
    #[serde(default)]
    pub generator_notes: Vec<String>,
    /// The judge's verdict.
    pub verdict: Option<Verdict>,
    /// The judge's token usage.
    pub judge_usage: Option<Usage>,
    /// What the pipeline did with the verdict's action.
    pub next_step: Option<String>,
    /// Generation time in milliseconds.
    pub generate_ms: u64,
    /// Judging time in milliseconds.
    pub judge_ms: u64,
    /// The failure that ended the round, when one did.
    pub error: Option<String>,
    /// Entities whose reference this round could not send (the backend takes fewer
    /// images), each with why; the most unfamiliar entities' references were sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references_dropped: Vec<String>,
}

/// A stage failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorRecord {
    /// The stage.
    pub stage: StageName,
    /// The round, when in one.
    pub round: Option<u32>,
    /// What failed.
    pub message: String,
    /// The failure's class, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<ErrorClass>,
}

/// Usage totals of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageTotals {
    /// The gate's chat tokens.
    pub gate: Usage,
    /// The judge's chat tokens.
    pub judge: Usage,
    /// The candidate judge's chat tokens (when the pipeline built it).
    pub candidate_judge: Usage,
    /// All chat tokens.
    pub lmm_total: Usage,
    /// Image generation usage.
    pub images: ImageUsage,
}
