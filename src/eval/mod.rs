//! Evaluation: does retrieval help on your prompts?
//!
//! The building blocks of an evaluation that runs the same prompts through several arms
//! (say, the pipeline with and without retrieval) and has a vision model judge the
//! images.
//!
//! * [`stats`]: means and seeded percentile-bootstrap confidence intervals.
//! * [`wise`]: WISE's categories, prompt-id ranges and overall weights.

pub mod stats;
pub mod wise;

pub use stats::{Interval, bootstrap_ci, mean};
pub use wise::{WiseCategory, WiseEdition};
