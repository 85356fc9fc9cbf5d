//! Hierarchical selection of the reference image that best shows an image generator
//! what a prompt needs.
//!
//! Tens of web candidates go in; one [`Reference`] (with its bytes) comes out, together
//! with the ranked survivors, the alternates the pipeline may try next, and every dropped
//! candidate with the stage and reason that dropped it.

mod error;
mod hierarchical;
mod types;

pub use error::SelectError;
pub use hierarchical::{HierarchicalSelector, SelectorConfig};
pub use types::{
    CandidateJudge, Dropped, JudgeCandidate, JudgePick, RankedCandidate, Reference, Selection,
    SelectionRequest, Selector, Stage, StageReport, StageScores,
};
