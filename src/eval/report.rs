//! The evaluation report: per arm and per category means with bootstrap 95 % intervals,
//! pairwise win/tie/loss rates, cost and time per prompt (generation and judging apart),
//! how often the gate asked for a reference and how often one was used; as JSON
//! (`eval.json`) and as an HTML page (`eval.html`) with the images side by side.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::judge_prompts::{
    CHECKLIST_V1, CHECKLIST_WRITER_V1, PAIRWISE_V1, PairOutcome, PairwiseReply, WISCORE_V1,
    resolve_pair,
};
use super::judgments::Stored;
use super::produced::Produced;
use super::prompts::PromptSet;
use super::run::EvalConfig;
use super::stats::bootstrap_ci;
use super::wise::WiseEdition;
use crate::batch::output::reference_ext;
use crate::batch::{BatchOutcome, JobState};

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

fn score(values: &[Option<f64>], config: &EvalConfig) -> Score {
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    let ci = bootstrap_ci(&present, 0.95, config.resamples, config.seed);
    Score {
        n: present.len(),
        missing: values.len() - present.len(),
        mean: ci.as_ref().map(|i| i.mean),
        ci_low: ci.as_ref().map(|i| i.low),
        ci_high: ci.as_ref().map(|i| i.high),
    }
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
    /// WISE's overall WiScore: the category means weighted as WISE weights them
    /// (renormalised over the categories present), when the prompts are WISE's.
    pub wiscore_overall: Option<f64>,
    /// Reference agreement.
    pub reference_agreement: Score,
    /// Per category: checklist and WiScore.
    pub categories: BTreeMap<String, CategoryScores>,
    /// Fraction of prompts whose gate asked for a reference.
    pub gate_asked_reference: f64,
    /// Fraction of prompts whose image was generated with a reference.
    pub reference_used: f64,
    /// Fraction of prompts whose run wanted a reference and generated without one (the
    /// search found nothing, every candidate was refused, the model was missing ...): the
    /// runs' reports say why, in their `degraded` lists.
    pub reference_lost: f64,
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

#[allow(clippy::too_many_arguments)]
pub(crate) fn build_report(
    prompts: &PromptSet,
    arms: &[String],
    judge_model: &str,
    config: &EvalConfig,
    produced: &BTreeMap<String, BTreeMap<String, Produced>>,
    checklists: &BTreeMap<String, Vec<String>>,
    cells: &BTreeMap<(String, String), Cell>,
    pairs: &[PairJudgment],
    outcomes: BTreeMap<String, BatchOutcome>,
    halted: Option<String>,
) -> EvalReport {
    let n = prompts.prompts.len().max(1) as f64;
    let cell = |arm: &str, id: &str| cells.get(&(arm.to_string(), id.to_string()));
    let mut summaries = Vec::new();
    for arm in arms {
        let get = |f: fn(&Cell) -> Option<f64>| -> Vec<Option<f64>> {
            prompts
                .prompts
                .iter()
                .map(|p| cell(arm, &p.id).and_then(f))
                .collect()
        };
        let per = produced.get(arm);
        let item = |id: &str| per.and_then(|m| m.get(id));
        let images = prompts
            .prompts
            .iter()
            .filter(|p| item(&p.id).is_some_and(|i| i.image.is_some()))
            .count();
        let mut categories: BTreeMap<String, CategoryScores> = BTreeMap::new();
        for cat in prompts.categories() {
            let of = |f: fn(&Cell) -> Option<f64>| -> Vec<Option<f64>> {
                prompts
                    .prompts
                    .iter()
                    .filter(|p| p.category.as_deref() == Some(cat))
                    .map(|p| cell(arm, &p.id).and_then(f))
                    .collect()
            };
            categories.insert(
                cat.to_string(),
                CategoryScores {
                    checklist: score(&of(|c| c.checklist), config),
                    wiscore: score(&of(|c| c.wiscore), config),
                },
            );
        }
        let wise: std::collections::HashMap<String, f64> = categories
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.wiscore.mean?)))
            .collect();
        let wiscore_overall = WiseEdition::Original.overall(&wise);
        let reports = || {
            prompts
                .prompts
                .iter()
                .filter_map(|p| item(&p.id)?.report.as_ref())
        };
        let asked = reports()
            .filter(|r| r.assessment.as_ref().is_some_and(|a| a.needs_reference))
            .count();
        let used = reports()
            .filter(|r| r.rounds.iter().any(|round| !round.references.is_empty()))
            .count();
        let lost = reports().filter(|r| r.lost_reference()).count();
        let rows = || {
            prompts
                .prompts
                .iter()
                .filter_map(|p| item(&p.id)?.row.as_ref())
        };
        let done_rows = || rows().filter(|r| r.state == JobState::Done);
        let judge_tokens: u64 = prompts
            .prompts
            .iter()
            .filter_map(|p| cell(arm, &p.id))
            .map(|c| c.judge_tokens)
            .sum();
        let judge_ms: u64 = prompts
            .prompts
            .iter()
            .filter_map(|p| cell(arm, &p.id))
            .map(|c| c.judge_ms)
            .sum();
        summaries.push(ArmSummary {
            name: arm.clone(),
            images,
            without_image: prompts.prompts.len() - images,
            checklist: score(&get(|c| c.checklist), config),
            wiscore: score(&get(|c| c.wiscore), config),
            wiscore_overall,
            reference_agreement: score(
                &get(|c| c.reference_agreement)
                    .into_iter()
                    .filter(Option::is_some)
                    .collect::<Vec<_>>(),
                config,
            ),
            categories,
            gate_asked_reference: asked as f64 / n,
            reference_used: used as f64 / n,
            reference_lost: lost as f64 / n,
            costs: Costs {
                generation_usd_per_prompt: rows().map(|r| r.cost_usd).sum::<f64>() / n,
                generation_s_per_prompt: done_rows().filter_map(|r| r.duration_ms).sum::<i64>()
                    as f64
                    / 1000.0
                    / n,
                judge_tokens_per_prompt: judge_tokens as f64 / n,
                judge_s_per_prompt: judge_ms as f64 / 1000.0 / n,
            },
        });
    }
    let mut pair_summaries = Vec::new();
    for (i, a) in arms.iter().enumerate() {
        for b in &arms[i + 1..] {
            let these: Vec<&PairJudgment> =
                pairs.iter().filter(|p| &p.a == a && &p.b == b).collect();
            let judged: Vec<PairOutcome> = these.iter().filter_map(|p| p.outcome).collect();
            let k = judged.len().max(1) as f64;
            let count = |o: PairOutcome| judged.iter().filter(|x| **x == o).count() as f64 / k;
            pair_summaries.push(PairSummary {
                a: a.clone(),
                b: b.clone(),
                n: judged.len(),
                missing: these.len() - judged.len(),
                a_wins: count(PairOutcome::First),
                ties: count(PairOutcome::Tie),
                b_wins: count(PairOutcome::Second),
                judge_tokens: these.iter().map(|p| p.judge_tokens).sum(),
            });
        }
    }
    let rows = prompts
        .prompts
        .iter()
        .map(|p| PromptRow {
            id: p.id.clone(),
            prompt: p.prompt.clone(),
            category: p.category.clone(),
            checklist: checklists.get(&p.id).cloned().unwrap_or_default(),
            arms: arms
                .iter()
                .map(|arm| {
                    let it = produced.get(arm).and_then(|m| m.get(&p.id));
                    let rel = |file: &str| format!("arms/{arm}/{}/{file}", p.id);
                    (
                        arm.clone(),
                        ArmCell {
                            image: it.and_then(|i| i.image.as_ref()).map(|_| rel("image.png")),
                            reference: it
                                .and_then(|i| i.reference.as_ref())
                                .map(|r| rel(&format!("reference.{}", reference_ext(&r.mime)))),
                            scores: cell(arm, &p.id).cloned().unwrap_or_default(),
                        },
                    )
                })
                .collect(),
            pairs: pairs
                .iter()
                .filter(|j| j.prompt_id == p.id)
                .cloned()
                .collect(),
        })
        .collect();
    let judge_prompts = [
        ("checklist", CHECKLIST_V1.id()),
        ("checklist_writer", CHECKLIST_WRITER_V1.id()),
        ("wiscore", WISCORE_V1.id()),
        ("pairwise", PAIRWISE_V1.id()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    EvalReport {
        prompt_set: prompts.name.clone(),
        prompts_total: prompts.prompts.len(),
        judge_model: judge_model.to_string(),
        judge_prompts,
        metrics: config.metrics.clone(),
        arms: summaries,
        pairs: pair_summaries,
        prompts: rows,
        generation: outcomes
            .into_iter()
            .map(|(k, o)| {
                (
                    k,
                    GenerationRun {
                        done: o.done,
                        failed: o.failed,
                        pending: o.pending,
                    },
                )
            })
            .collect(),
        halted,
    }
}

const TEMPLATE: &str = include_str!("report.html.j2");

/// The report as an HTML page (images by relative path; every text escaped).
pub fn render_html(report: &EvalReport) -> Result<String, minijinja::Error> {
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.add_template("eval.html", TEMPLATE)?;
    env.get_template("eval.html")?
        .render(minijinja::context! { r => report })
}
