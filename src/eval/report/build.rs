//! Building the [`EvalReport`] from the arms' outputs and the judgments.

use std::collections::{BTreeMap, HashMap};

use super::{
    ArmCell, ArmSummary, CategoryScores, Cell, Costs, EntityShown, EvalReport, GenerationRun,
    PairJudgment, PairSummary, PromptFileRecord, PromptRow, Score, ScoreSource, SubcategoryScores,
    WiseSummary,
};
use crate::batch::output::reference_ext;
use crate::batch::{BatchOutcome, JobState};
use crate::eval::judge_prompts::JudgePromptFile;
use crate::eval::judge_prompts::{
    CHECKLIST_V1, CHECKLIST_WRITER_V1, PAIRWISE_V1, PairOutcome, WISCORE_V1,
};
use crate::eval::produced::Produced;
use crate::eval::prompts::{EvalPrompt, PromptSet};
use crate::eval::report::Metric;
use crate::eval::stats::bootstrap_ci;
use crate::eval::wise::{PROMPT_IDS, WiseCategory, WiseEdition};

/// The evaluation's settings a report needs, handed over by the run as plain data (the
/// report module imports nothing of the run's).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReportSettings<'a> {
    /// The metrics computed.
    pub metrics: &'a [Metric],
    /// Bootstrap resamples for the intervals.
    pub resamples: usize,
    /// The bootstrap's seed.
    pub seed: u64,
    /// The WiScore judge's prompt file, when one replaced the built-in prompt.
    pub wiscore_prompt: Option<&'a JudgePromptFile>,
}

/// Everything a report is built from.
pub(crate) struct Inputs<'a> {
    pub prompts: &'a PromptSet,
    pub arms: &'a [String],
    pub judge_model: &'a str,
    pub config: ReportSettings<'a>,
    pub produced: &'a BTreeMap<String, BTreeMap<String, Produced>>,
    pub checklists: &'a BTreeMap<String, Vec<String>>,
    pub cells: &'a BTreeMap<(String, String), Cell>,
    pub pairs: &'a [PairJudgment],
}

impl Inputs<'_> {
    fn cell(&self, arm: &str, id: &str) -> Option<&Cell> {
        self.cells.get(&(arm.to_string(), id.to_string()))
    }

    fn produced(&self, arm: &str, id: &str) -> Option<&Produced> {
        self.produced.get(arm).and_then(|m| m.get(id))
    }

    /// `f` of `arm`'s cell on each prompt that `keep` keeps.
    fn values(
        &self,
        arm: &str,
        keep: impl Fn(&EvalPrompt) -> bool,
        f: fn(&Cell) -> Option<f64>,
    ) -> Vec<Option<f64>> {
        self.prompts
            .prompts
            .iter()
            .filter(|p| keep(p))
            .map(|p| self.cell(arm, &p.id).and_then(f))
            .collect()
    }

    fn score(&self, values: &[Option<f64>]) -> Score {
        let present: Vec<f64> = values.iter().flatten().copied().collect();
        let ci = bootstrap_ci(&present, 0.95, self.config.resamples, self.config.seed);
        Score {
            n: present.len(),
            missing: values.len() - present.len(),
            mean: ci.as_ref().map(|i| i.mean),
            ci_low: ci.as_ref().map(|i| i.low),
            ci_high: ci.as_ref().map(|i| i.high),
        }
    }
}

/// The report of an evaluation.
pub(crate) fn build_report(
    inputs: &Inputs<'_>,
    outcomes: BTreeMap<String, BatchOutcome>,
    halted: Option<String>,
) -> EvalReport {
    let wise = inputs
        .prompts
        .wise_edition
        .map(|e| wise_summary(inputs.prompts, e));
    let arms = inputs
        .arms
        .iter()
        .map(|arm| arm_summary(inputs, arm, wise.as_ref()))
        .collect();
    let wiscore_prompt = match inputs.config.wiscore_prompt {
        Some(file) => file.id(),
        None => WISCORE_V1.id(),
    };
    let judge_prompts = [
        ("checklist", CHECKLIST_V1.id()),
        ("checklist_writer", CHECKLIST_WRITER_V1.id()),
        ("wiscore", wiscore_prompt),
        ("pairwise", PAIRWISE_V1.id()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let wiscore_source = inputs
        .config
        .metrics
        .contains(&Metric::WiScore)
        .then(|| wiscore_source(inputs, wise.as_ref()));
    EvalReport {
        prompt_set: inputs.prompts.name.clone(),
        prompts_total: inputs.prompts.prompts.len(),
        judge_model: inputs.judge_model.to_string(),
        judge_prompts,
        metrics: inputs.config.metrics.to_vec(),
        wise,
        wiscore_source,
        arms,
        pairs: pair_summaries(inputs),
        prompts: prompt_rows(inputs),
        generation: outcomes
            .into_iter()
            .map(|(k, o)| {
                let run = GenerationRun {
                    done: o.done,
                    failed: o.failed,
                    pending: o.pending,
                };
                (k, run)
            })
            .collect(),
        halted,
    }
}

fn arm_summary(inputs: &Inputs<'_>, arm: &str, wise: Option<&WiseSummary>) -> ArmSummary {
    let prompts = &inputs.prompts.prompts;
    let n = prompts.len().max(1) as f64;
    let item = |id: &str| inputs.produced(arm, id);
    let images = prompts
        .iter()
        .filter(|p| item(&p.id).is_some_and(|i| i.image.is_some()))
        .count();
    let categories = category_scores(inputs, arm);
    let (wiscore_overall, wiscore_overall_note) = match (inputs.prompts.wise_edition, wise) {
        (Some(edition), Some(w)) => overall(edition, w, &categories),
        _ => (None, None),
    };
    let reports = || prompts.iter().filter_map(|p| item(&p.id)?.report.as_ref());
    let asked = reports()
        .filter(|r| r.assessment.as_ref().is_some_and(|a| a.needs_reference))
        .count();
    let used = reports()
        .filter(|r| r.rounds.iter().any(|round| !round.references.is_empty()))
        .count();
    let lost = reports().filter(|r| r.lost_reference()).count();
    let mut entities_shown: BTreeMap<String, EntityShown> = BTreeMap::new();
    for r in reports() {
        let kept = r
            .best_round
            .and_then(|b| r.rounds.iter().find(|round| round.round == b));
        let Some((round, verdict)) = kept.and_then(|k| Some((k, k.verdict.as_ref()?))) else {
            continue;
        };
        // Only the entities that had a reference of their own in that round.
        let planned = |name: &str| {
            round.references.iter().any(|r| {
                r.entity
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(name))
            })
        };
        for e in verdict.entities.iter().filter(|e| planned(&e.name)) {
            let tally = entities_shown.entry(e.name.clone()).or_default();
            match e.shown {
                crate::judge::Shown::Yes => tally.yes += 1,
                crate::judge::Shown::Partly => tally.partly += 1,
                crate::judge::Shown::No => tally.no += 1,
            }
        }
    }
    let rows = || prompts.iter().filter_map(|p| item(&p.id)?.row.as_ref());
    let cells = || prompts.iter().filter_map(|p| inputs.cell(arm, &p.id));
    let judge_tokens: u64 = cells().map(|c| c.judge_tokens).sum();
    let judge_ms: u64 = cells().map(|c| c.judge_ms).sum();
    let generation_ms: i64 = rows()
        .filter(|r| r.state == JobState::Done)
        .filter_map(|r| r.duration_ms)
        .sum();
    let all = |_: &EvalPrompt| true;
    let agreement: Vec<Option<f64>> = inputs
        .values(arm, all, |c| c.reference_agreement)
        .into_iter()
        .filter(Option::is_some)
        .collect();
    ArmSummary {
        name: arm.to_string(),
        images,
        without_image: prompts.len() - images,
        checklist: inputs.score(&inputs.values(arm, all, |c| c.checklist)),
        wiscore: inputs.score(&inputs.values(arm, all, |c| c.wiscore)),
        wiscore_overall,
        wiscore_overall_note,
        reference_agreement: inputs.score(&agreement),
        categories,
        subcategories: subcategory_scores(inputs, arm),
        gate_asked_reference: asked as f64 / n,
        reference_used: used as f64 / n,
        reference_lost: lost as f64 / n,
        entities_shown,
        costs: Costs {
            // (A fold from +0.0: an empty f64 sum is -0.0, shown as "-0.0000".)
            generation_usd_per_prompt: rows().fold(0.0, |s, r| s + r.cost_usd) / n,
            generation_s_per_prompt: generation_ms as f64 / 1000.0 / n,
            judge_tokens_per_prompt: judge_tokens as f64 / n,
            judge_s_per_prompt: judge_ms as f64 / 1000.0 / n,
        },
    }
}

fn category_scores(inputs: &Inputs<'_>, arm: &str) -> BTreeMap<String, CategoryScores> {
    let mut out = BTreeMap::new();
    for cat in inputs.prompts.categories() {
        let keep = |p: &EvalPrompt| p.category.as_deref() == Some(cat);
        let scores = CategoryScores {
            checklist: inputs.score(&inputs.values(arm, keep, |c| c.checklist)),
            wiscore: inputs.score(&inputs.values(arm, keep, |c| c.wiscore)),
        };
        out.insert(cat.to_string(), scores);
    }
    out
}

/// Each (category, subcategory) of the set, in order of first appearance.
fn subcategory_scores(inputs: &Inputs<'_>, arm: &str) -> Vec<SubcategoryScores> {
    let mut groups: Vec<(Option<&str>, &str)> = Vec::new();
    for p in &inputs.prompts.prompts {
        if let Some(sub) = p.subcategory.as_deref() {
            let key = (p.category.as_deref(), sub);
            if !groups.contains(&key) {
                groups.push(key);
            }
        }
    }
    groups
        .into_iter()
        .map(|(category, sub)| {
            let keep = |p: &EvalPrompt| {
                p.category.as_deref() == category && p.subcategory.as_deref() == Some(sub)
            };
            SubcategoryScores {
                category: category.map(str::to_string),
                subcategory: sub.to_string(),
                prompts: inputs.prompts.prompts.iter().filter(|p| keep(p)).count(),
                checklist: inputs.score(&inputs.values(arm, keep, |c| c.checklist)),
                wiscore: inputs.score(&inputs.values(arm, keep, |c| c.wiscore)),
            }
        })
        .collect()
}

/// What WISE's overall means for this set of WISE prompts.
fn wise_summary(prompts: &PromptSet, edition: WiseEdition) -> WiseSummary {
    let present = prompts.categories();
    let categories_missing: Vec<String> = WiseCategory::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|c| !present.contains(c))
        .map(str::to_string)
        .collect();
    let prompt_ids = prompts.prompts.len().min(PROMPT_IDS);
    let prompt_ids_missing = PROMPT_IDS - prompt_ids;
    let overall_defined = categories_missing.is_empty();
    let name = edition.name();
    let note = if overall_defined && prompt_ids_missing == 0 {
        format!(
            "the overall WiScore weighs the six category means with {name}'s weights (all \
             {PROMPT_IDS} prompts)"
        )
    } else if overall_defined {
        format!(
            "the overall WiScore weighs the six category means of the prompts run with \
             {name}'s weights, but {prompt_ids_missing} of {name}'s {PROMPT_IDS} prompt ids are \
             missing (WISE's own script reports no overall without all {PROMPT_IDS})"
        )
    } else {
        format!(
            "the overall WiScore is not defined for a partial run: WISE defines it over all \
             six categories, and this run has no prompt in {} ({prompt_ids_missing} of \
             {name}'s {PROMPT_IDS} prompt ids are missing); compare the per-category scores",
            categories_missing.join(", ")
        )
    };
    WiseSummary {
        edition,
        weights: edition
            .weights()
            .iter()
            .map(|(c, w)| (c.as_str().to_string(), *w))
            .collect(),
        prompt_ids,
        prompt_ids_missing,
        categories_missing,
        overall_defined,
        note,
    }
}

/// One arm's overall WiScore, or why it has none.
fn overall(
    edition: WiseEdition,
    wise: &WiseSummary,
    categories: &BTreeMap<String, CategoryScores>,
) -> (Option<f64>, Option<String>) {
    if !wise.overall_defined {
        return (None, Some(wise.note.clone()));
    }
    let means: HashMap<String, f64> = categories
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.wiscore.mean?)))
        .collect();
    match edition.overall(&means) {
        Some(o) => (Some(o), None),
        None => {
            let without: Vec<&str> = WiseCategory::ALL
                .iter()
                .map(|c| c.as_str())
                .filter(|c| !means.contains_key(*c))
                .collect();
            let why = format!(
                "no overall WiScore: no WiScore was judged in {}",
                without.join(", ")
            );
            (None, Some(why))
        }
    }
}

/// What the WiScores are: this harness's judge calls, not WISE's evaluator.
fn wiscore_source(inputs: &Inputs<'_>, wise: Option<&WiseSummary>) -> ScoreSource {
    let model = inputs.judge_model;
    let official = match wise.map(|w| w.edition) {
        Some(WiseEdition::Verified) => {
            "WISE_Verified's published numbers come from its own evaluator (vllm_eval.py: \
             one binary score per image, judged by Qwen3.5-35B-A3B)"
        }
        _ => {
            "WISE's published numbers come from its own evaluator (gpt_eval.py: three 0-2 \
             scores, judged by GPT-4o-2024-05-13)"
        }
    };
    let (judge_prompt, judge_prompt_file, how) = match inputs.config.wiscore_prompt {
        None => (
            WISCORE_V1.id(),
            None,
            format!(
                "judged by {model} with this harness's own prompt {} (WISE's three-axis \
                 rubric in its own words, answered as JSON)",
                WISCORE_V1.id()
            ),
        ),
        Some(file) => (
            file.id(),
            Some(PromptFileRecord {
                path: file.path().display().to_string(),
                sha256: file.sha256().to_string(),
            }),
            format!(
                "judged by {model} with the prompt file {} (SHA-256 {}), sent by this harness \
                 as one user message with the image; a reply of three 0-2 scores counts as \
                 (0.7 c + 0.2 r + 0.1 a) / 2, a binary score as 0 or 1. They match WISE's \
                 only as far as the judge model, the prompt text and the call do",
                file.path().display(),
                file.sha256()
            ),
        ),
    };
    ScoreSource {
        judge_model: model.to_string(),
        judge_prompt,
        judge_prompt_file,
        official: false,
        note: format!(
            "not the official WISE number: these WiScores were {how}; {official}. Compare arms \
             within this report, not with WISE's leaderboard"
        ),
    }
}

fn pair_summaries(inputs: &Inputs<'_>) -> Vec<PairSummary> {
    let mut out = Vec::new();
    for (i, a) in inputs.arms.iter().enumerate() {
        for b in &inputs.arms[i + 1..] {
            let these: Vec<&PairJudgment> = inputs
                .pairs
                .iter()
                .filter(|p| &p.a == a && &p.b == b)
                .collect();
            let judged: Vec<PairOutcome> = these.iter().filter_map(|p| p.outcome).collect();
            let k = judged.len().max(1) as f64;
            let count = |o: PairOutcome| judged.iter().filter(|x| **x == o).count() as f64 / k;
            out.push(PairSummary {
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
    out
}

fn prompt_rows(inputs: &Inputs<'_>) -> Vec<PromptRow> {
    inputs
        .prompts
        .prompts
        .iter()
        .map(|p| PromptRow {
            id: p.id.clone(),
            prompt: p.prompt.clone(),
            category: p.category.clone(),
            checklist: inputs.checklists.get(&p.id).cloned().unwrap_or_default(),
            arms: inputs
                .arms
                .iter()
                .map(|arm| {
                    let it = inputs.produced(arm, &p.id);
                    let rel = |file: &str| format!("arms/{arm}/{}/{file}", p.id);
                    let cell = ArmCell {
                        image: it.and_then(|i| i.image.as_ref()).map(|_| rel("image.png")),
                        reference: it
                            .and_then(|i| i.reference.as_ref())
                            .map(|r| rel(&format!("reference.{}", reference_ext(&r.mime)))),
                        scores: inputs.cell(arm, &p.id).cloned().unwrap_or_default(),
                    };
                    (arm.clone(), cell)
                })
                .collect(),
            pairs: inputs
                .pairs
                .iter()
                .filter(|j| j.prompt_id == p.id)
                .cloned()
                .collect(),
        })
        .collect()
}
