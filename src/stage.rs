//! The names of a run's stages: the vocabulary the report, the events and the errors
//! share. A leaf module (it depends on nothing else in the crate), so that `report` and
//! `error` both use it without depending on each other's contents in a cycle.

use serde::{Deserialize, Serialize};

/// The stages of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageName {
    /// The request itself.
    Request,
    /// The knowledge gate.
    Gate,
    /// Image search.
    Search,
    /// Reference selection.
    Select,
    /// Image generation.
    Generate,
    /// Self-reflection.
    Judge,
}

impl std::fmt::Display for StageName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StageName::Request => "request",
            StageName::Gate => "knowledge gate",
            StageName::Search => "image search",
            StageName::Select => "reference selection",
            StageName::Generate => "image generation",
            StageName::Judge => "judge",
        })
    }
}
