//! The evaluation report: per arm and per category means with bootstrap 95 % intervals,
//! pairwise win/tie/loss rates, cost and time per prompt (generation and judging apart),
//! how often the gate asked for a reference and how often one was used; as JSON
//! (`eval.json`) and as an HTML page (`eval.html`) with the images side by side.

mod build;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub(crate) use build::{Inputs, ReportSettings, build_report};

use super::judge_prompts::{PairOutcome, PairwiseReply, resolve_pair};
use super::judgments::Stored;
use super::wise::WiseEdition;

/// A metric of the evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Knowledge Checklist Score (WorldGenBench): the fraction of checklist items the
    /// judge found satisfied.
    Checklist,
    /// WiScore (WISE): (0.7 consistency + 0.2 realism + 0.1 aesthetic quality) / 2.
    #[serde(rename = "wiscore")]
    WiScore,
    /// Pairwise preference with the swap rule (IA-T2I).
    Pairwise,
    /// CLIP image-image similarity of the generated image and the reference it used.
    ReferenceAgreement,
}

impl Metric {
    /// Every metric.
    pub const ALL: [Metric; 4] = [
        Metric::Checklist,
        Metric::WiScore,
        Metric::Pairwise,
        Metric::ReferenceAgreement,
    ];
}

impl std::str::FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "checklist" => Ok(Metric::Checklist),
            "wiscore" => Ok(Metric::WiScore),
            "pairwise" => Ok(Metric::Pairwise),
            "reference_agreement" | "reference" => Ok(Metric::ReferenceAgreement),
            other => Err(format!(
                "unknown metric {other:?}: use checklist, wiscore, pairwise or reference-agreement"
            )),
        }
    }
}

/// One arm's scores on one prompt (`None`: not judged, or the judgment failed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// Knowledge Checklist Score, 0..=1.
    pub checklist: Option<f64>,
    /// WiScore, 0..=1.
    pub wiscore: Option<f64>,
    /// CLIP similarity to the reference used (absent without a reference).
    pub reference_agreement: Option<f64>,
    /// Judge tokens spent on this cell.
    pub judge_tokens: u64,
    /// Judge wall time on this cell, in milliseconds.
    pub judge_ms: u64,
    /// Why something is missing (no image, a failed judgment), when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Cell {
    /// Count one judge call's tokens, time and error against this cell.
    pub(crate) fn judged(&mut self, s: &Stored) {
        self.judge_tokens += s.usage.total_tokens;
        self.judge_ms += s.elapsed_ms;
        self.note(s.error.clone());
    }

    pub(crate) fn note(&mut self, error: Option<String>) {
        if let Some(e) = error {
            self.error = Some(match self.error.take() {
                Some(prev) => format!("{prev}; {e}"),
                None => e,
            });
        }
    }
}

/// Two arms judged on one prompt, in both orders.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PairJudgment {
    /// The prompt.
    pub prompt_id: String,
    /// The first arm (image A in the first order).
    pub a: String,
    /// The second arm.
    pub b: String,
    /// The combined outcome: `first` is arm `a`, `second` arm `b`, `tie` also when the
    /// two orders disagreed. `None` when a judgment is missing.
    pub outcome: Option<PairOutcome>,
    /// Judge tokens of both judgments.
    pub judge_tokens: u64,
    /// Why it is missing, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl PairJudgment {
    pub(crate) fn set(&mut self, first: Stored, swapped: Stored) {
        self.judge_tokens = first.usage.total_tokens + swapped.usage.total_tokens;
        let winner = |s: &Stored| {
            s.result
                .as_ref()
                .and_then(|v| serde_json::from_value::<PairwiseReply>(v.clone()).ok())
                .map(|r| r.winner)
        };
        match (winner(&first), winner(&swapped)) {
            (Some(w1), Some(w2)) => self.outcome = Some(resolve_pair(w1, w2)),
            _ => {
                self.error = first
                    .error
                    .or(swapped.error)
                    .or_else(|| Some("a pairwise judgment is missing".into()))
            }
        }
    }
}

/// A mean with its bootstrap 95 % interval, over the judgments that exist.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// Judgments counted.
    pub n: usize,
    /// Prompts whose judgment is missing (never counted as zero).
    pub missing: usize,
    /// The mean.
    pub mean: Option<f64>,
    /// The 95 % interval's lower end.
    pub ci_low: Option<f64>,
    /// The 95 % interval's upper end.
    pub ci_high: Option<f64>,
}

/// What one arm's generation and judging cost, per prompt.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Costs {
    /// Estimated generation cost per prompt in US dollars (the batch price table).
    pub generation_usd_per_prompt: f64,
    /// Generation wall time per prompt, in seconds.
    pub generation_s_per_prompt: f64,
    /// Judge tokens per prompt (this arm's checklist and WiScore judgments; pairwise
    /// judgments are in the pair's figures).
    pub judge_tokens_per_prompt: f64,
    /// Judge wall time per prompt, in seconds.
    pub judge_s_per_prompt: f64,
}

/// One arm's results.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmSummary {
    /// The arm.
    pub name: String,
    /// Prompts with an image.
    pub images: usize,
    /// Prompts whose generation failed or did not run.
    pub without_image: usize,
    /// Knowledge Checklist Score.
    pub checklist: Score,
    /// WiScore.
    pub wiscore: Score,
    /// WISE's overall WiScore, when the prompts are WISE's and all six categories were
    /// run: the category means weighted with the prompt file's edition's weights (see
    /// [`EvalReport::wise`]). WISE defines no overall for part of its categories.
    pub wiscore_overall: Option<f64>,
    /// Why there is no overall WiScore, for WISE prompts (a partial run; a category with
    /// no WiScore judged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wiscore_overall_note: Option<String>,
    /// Reference agreement.
    pub reference_agreement: Score,
    /// Per category: checklist and WiScore.
    pub categories: BTreeMap<String, CategoryScores>,
    /// Per subcategory (WISE's `Subcategory`, WorldGenBench's class), in order of first
    /// appearance: checklist and WiScore.
    #[serde(default)]
    pub subcategories: Vec<SubcategoryScores>,
    /// Fraction of prompts whose gate asked for a reference.
    pub gate_asked_reference: f64,
    /// Fraction of prompts whose image was generated with a reference.
    pub reference_used: f64,
    /// Fraction of prompts whose run wanted a reference and generated without one (the
    /// search found nothing, every candidate was refused, the model was missing ...): the
    /// runs' reports say why, in their `degraded` lists.
    pub reference_lost: f64,
    /// With one reference per entity: per entity named by the gate's plan, how often the
    /// pipeline's judge found it shown as its reference shows it, in each prompt's kept
    /// image (empty when no prompt planned several entities).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub entities_shown: BTreeMap<String, EntityShown>,
    /// Cost and time.
    pub costs: Costs,
}

/// One category's scores.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CategoryScores {
    /// Knowledge Checklist Score.
    pub checklist: Score,
    /// WiScore.
    pub wiscore: Score,
}

/// One subcategory's scores.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubcategoryScores {
    /// The category it belongs to.
    pub category: Option<String>,
    /// The subcategory.
    pub subcategory: String,
    /// Prompts in it.
    pub prompts: usize,
    /// Knowledge Checklist Score.
    pub checklist: Score,
    /// WiScore.
    pub wiscore: Score,
}

/// WISE's overall for this run: the edition, its weights, and whether the run covers what
/// the overall is defined over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WiseSummary {
    /// The edition the prompt file belongs to: its id ranges gave the categories, its
    /// weights the overall.
    pub edition: WiseEdition,
    /// Each category's weight in the overall.
    pub weights: BTreeMap<String, f64>,
    /// WISE prompt ids in this run.
    pub prompt_ids: usize,
    /// WISE prompt ids not in this run, out of 1000.
    pub prompt_ids_missing: usize,
    /// WISE's categories with no prompt in this run.
    pub categories_missing: Vec<String>,
    /// Whether the overall WiScore is defined: every category is in the run.
    pub overall_defined: bool,
    /// What the overall is, or why there is none, as a sentence.
    pub note: String,
}

/// Where a metric's scores come from: the judge model and the exact prompt it was given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScoreSource {
    /// The judge model.
    pub judge_model: String,
    /// The judge prompt's id: a built-in version (`wiscore.v1`) or a file given by the user
    /// (`wiscore.file-<first 12 hex digits of its SHA-256>`).
    pub judge_prompt: String,
    /// The prompt file, when the user gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge_prompt_file: Option<PromptFileRecord>,
    /// Whether the numbers are the benchmark's official ones (never: the harness makes
    /// its own judge calls).
    pub official: bool,
    /// What the numbers are, as a sentence to show next to them.
    pub note: String,
}

/// A judge prompt file, as the report records it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptFileRecord {
    /// The path it was read from.
    pub path: String,
    /// The SHA-256 of its bytes, in hex.
    pub sha256: String,
}

/// Two arms compared.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PairSummary {
    /// The first arm.
    pub a: String,
    /// The second arm.
    pub b: String,
    /// Prompts judged in both orders.
    pub n: usize,
    /// Prompts without a complete pair of judgments.
    pub missing: usize,
    /// Fraction of `n` that `a` won.
    pub a_wins: f64,
    /// Fraction of `n` that were ties (including disagreeing orders).
    pub ties: f64,
    /// Fraction of `n` that `b` won.
    pub b_wins: f64,
    /// Judge tokens spent on the pair.
    pub judge_tokens: u64,
}

/// One prompt's row: each arm's image and scores.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptRow {
    /// The prompt's id.
    pub id: String,
    /// The prompt.
    pub prompt: String,
    /// Its category.
    pub category: Option<String>,
    /// The checklist judged (its own, or the one the judge wrote).
    pub checklist: Vec<String>,
    /// Per arm: the image (relative to the report), the reference and the scores.
    pub arms: BTreeMap<String, ArmCell>,
    /// The pairwise outcomes on this prompt.
    pub pairs: Vec<PairJudgment>,
}

/// One arm's image and scores on one prompt.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmCell {
    /// The image, relative to the report's folder.
    pub image: Option<String>,
    /// The reference the image was generated with, relative to the report's folder.
    pub reference: Option<String>,
    /// The scores.
    pub scores: Cell,
}

/// How often one entity was shown as its reference shows it, by the pipeline's judge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityShown {
    /// Kept images the judge said show it.
    pub yes: usize,
    /// Kept images that show it with something wrong.
    pub partly: usize,
    /// Kept images that do not show it.
    pub no: usize,
}

/// The evaluation report (`eval.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// The prompt set's name.
    pub prompt_set: String,
    /// Prompts evaluated.
    pub prompts_total: usize,
    /// The judge model.
    pub judge_model: String,
    /// The judge prompt of each metric, with its version (`checklist.v1`).
    pub judge_prompts: BTreeMap<String, String>,
    /// The metrics computed.
    pub metrics: Vec<Metric>,
    /// For WISE prompts: the edition, its weights, and whether the overall is defined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wise: Option<WiseSummary>,
    /// What the WiScores are (judge model, judge prompt, why they are not WISE's official
    /// numbers), when WiScore was computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wiscore_source: Option<ScoreSource>,
    /// Per arm.
    pub arms: Vec<ArmSummary>,
    /// Per pair of arms.
    pub pairs: Vec<PairSummary>,
    /// Per prompt.
    pub prompts: Vec<PromptRow>,
    /// How each arm's generation ended in this run (done, failed, pending).
    pub generation: BTreeMap<String, GenerationRun>,
    /// Why the evaluation stopped early (a budget, a deadline), when it did.
    pub halted: Option<String>,
}

/// How an arm's generation went in this run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerationRun {
    /// Prompts generated in this run.
    pub done: usize,
    /// Prompts that failed in this run.
    pub failed: usize,
    /// Prompts left pending.
    pub pending: usize,
}

const TEMPLATE: &str = include_str!("eval.html.j2");

/// The colours of the arms in the page's charts, in the arms' order (a colour-blind-safe
/// palette, Tableau 10; repeated past ten arms).
pub const ARM_COLOURS: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

/// The report as an HTML page (images by relative path; every text escaped), with its
/// charts drawn as inline SVG: per-category means with their intervals for every arm, and
/// the pairwise outcomes per pair of arms.
pub fn render_html(report: &EvalReport) -> Result<String, minijinja::Error> {
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.add_template("eval.html", TEMPLATE)?;
    let colours: BTreeMap<&str, &str> = report
        .arms
        .iter()
        .zip(ARM_COLOURS.iter().cycle())
        .map(|(a, c)| (a.name.as_str(), *c))
        .collect();
    env.get_template("eval.html")?
        .render(minijinja::context! { r => report, colours => colours })
}
