//! The reference-memory flags shared by the examples that select references.

use iat2i::selectors::SearchPolicy;
use iat2i::settings::MemorySettings;

/// How the reference memory is used.
#[derive(clap::Args, Debug, Clone)]
pub struct MemoryArgs {
    /// Turn the reference memory off: download and embed every candidate, remember nothing.
    #[arg(long)]
    pub no_memory: bool,
    /// Fail the selection when the reference memory cannot be used (locked by another
    /// process, server unreachable) instead of selecting without it.
    #[arg(long, conflicts_with = "no_memory")]
    pub require_memory: bool,
    /// Whether the web is searched when the memory can answer: always, memory-only, or
    /// fewer-than:K (search only when the memory recalls fewer than K good images).
    #[arg(long, default_value = "always", value_name = "POLICY")]
    pub search_policy: SearchPolicy,
}

impl MemoryArgs {
    /// The library's memory settings these flags say (the model and cache directories,
    /// and `QDRANT_URL`, are the command's to add).
    pub fn settings(&self) -> MemorySettings {
        let mut s = MemorySettings::default();
        s.no_memory = self.no_memory;
        s.require_memory = self.require_memory;
        s.search_policy = self.search_policy;
        s
    }
}
