//! Evaluation: does retrieval help on your prompts?
//!
//! The building blocks of an evaluation that runs the same prompts through several arms
//! (say, the pipeline with and without retrieval) and has a vision model judge the
//! images.
//!
//! * [`prompts`]: prompt sets from WISE, WorldGenBench, a plain manifest, or the built-in
//!   sample of rare, post-cutoff and ambiguous subjects ([`PromptSet::builtin_sample`]).
//! * [`stats`]: means and seeded percentile-bootstrap confidence intervals.
//! * [`wise`]: WISE's categories, prompt-id ranges and overall weights.

pub mod prompts;
pub mod stats;
pub mod wise;

pub use prompts::{EvalPrompt, Format, PromptSet, PromptSetError, derived_id};
pub use stats::{Interval, bootstrap_ci, mean};
pub use wise::{WiseCategory, WiseEdition};
