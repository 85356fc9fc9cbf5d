//! Evaluation: does retrieval help on your prompts?
//!
//! The building blocks of an evaluation that runs the same prompts through several arms
//! (say, the pipeline with and without retrieval) and has a vision model judge the
//! images:
//!
//! * [`prompts`]: prompt sets from WISE, WorldGenBench, a plain manifest, or the built-in
//!   sample of rare, post-cutoff and ambiguous subjects ([`PromptSet::builtin_sample`]).
//! * [`judge_prompts`]: the judges' versioned instructions, the parsers of their replies
//!   and the scores computed from them, without calling any model.
//! * [`stats`]: means and seeded percentile-bootstrap confidence intervals.
//! * [`wise`]: WISE's categories, prompt-id ranges and overall weights.
//!
//! # Metrics
//!
//! * **Knowledge Checklist Score** (WorldGenBench): each prompt has a checklist of things
//!   the image must show, including the knowledge the prompt implies (the beetle's
//!   markings, which "Jaguar" is meant). A judge marks each item satisfied or not; the
//!   score is the fraction of the checklist satisfied, an item the judge left out
//!   counting as not satisfied ([`checklist_score`]).
//!   Prompts without a checklist get one from the checklist writer
//!   ([`judge_prompts::CHECKLIST_WRITER_V1`]) before any image is judged.
//! * **WiScore** (WISE): a judge scores consistency, realism and aesthetic quality from
//!   0 to 2; WiScore = (0.7·consistency + 0.2·realism + 0.1·aesthetic) / 2, in 0–1
//!   ([`wiscore`]). The overall score weights the per-category means as the prompt
//!   file's edition does: 0.4 cultural, 0.167 time, 0.133 space and 0.1 each for biology,
//!   physics and chemistry in the original release ([`overall_wiscore`]); 0.40 cultural
//!   and 0.12 each other in WISE_Verified ([`WiseEdition::overall`]). It is defined over
//!   all six categories only: a run on part of WISE reports per-category scores and says
//!   why there is no overall. These WiScores come from this crate's own judge prompt and
//!   the judge model you choose, not from WISE's evaluator: the report says so, and
//!   [`EvalConfig::wiscore_prompt`] takes WISE's own prompt text.
//! * **Pairwise preference with swap** (IA-T2I): a judge sees two arms' images for the
//!   same prompt and picks the one that follows the prompt and its implied knowledge
//!   better. Each pair is judged twice with the images in both orders; an arm wins only
//!   when both judgments pick it, and any disagreement is a tie, which removes the
//!   judge's preference for a position ([`resolve_pair`]).
//! * **Reference agreement**: the CLIP image-image cosine similarity between the generated
//!   image and the reference it was generated with (cheap, no judge; absent for images
//!   made without a reference).
//!
//! A judgment that failed (no image, a reply that is not the JSON asked for) is missing,
//! never a zero: scores are `Option`s, and means and intervals are taken over the
//! judgments that exist ([`stats`]).

mod judge;
pub mod judge_prompts;
mod judgments;
mod produced;
pub mod prompts;
mod report;
mod run;
pub mod stats;
pub mod wise;

pub use judge_prompts::{
    ChecklistReply, ItemVerdict, JudgePrompt, JudgePromptFile, JudgePromptFileError, PairOutcome,
    PairwiseReply, ReplyError, WiScoreJudgment, WiScoreReply, Winner, checklist_score,
    numbered_checklist, overall_wiscore, parse_checklist_reply, parse_checklist_writer_reply,
    parse_pairwise_reply, parse_wiscore_judgment, parse_wiscore_reply, resolve_pair, wiscore,
};
pub use prompts::{EvalPrompt, Format, PromptSet, PromptSetError, derived_id};
pub use report::{
    ARM_COLOURS, ArmCell, ArmSummary, CategoryScores, Cell, Costs, EntityShown, EvalReport,
    GenerationRun, Metric, PairJudgment, PairSummary, PromptFileRecord, PromptRow, Score,
    ScoreSource, SubcategoryScores, WiseSummary, render_html,
};
pub use run::{Arm, EvalConfig, EvalError, Evaluation};
pub use stats::{Interval, bootstrap_ci, mean};
pub use wise::{WiseCategory, WiseEdition};
