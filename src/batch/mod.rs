//! Scheduled batch runs: hundreds of prompts a night, unattended, resumable, within
//! budget, spread over several machines.
//!
//! ```text
//! Manifest (JSONL / CSV / text)  ->  shard K/N  ->  Journal (SQLite, WAL, one per shard)
//!   -> Runner: N jobs at once on one shared Pipeline, each run guarded by the budgets,
//!      the deadlines and the shutdown signal; retries for transient failures, a circuit
//!      breaker for fatal ones
//!   -> <out>/<job-id>/{image.png, report.json, reference.*, reference.json}
//!      written to temporary names, synced and renamed; the journal marks the job done
//!      after, in one transaction
//!   -> summary.json + index.html (a contact sheet), merged over the shards' journals
//! ```
//!
//! The `batch` example is the command-line tool; this module is everything it does, for
//! callers that schedule batches themselves.

mod budget;
pub(crate) mod journal;
mod ledger;
mod manifest;
pub(crate) mod output;
mod prices;
mod runner;
mod shard;
mod summary;

pub use budget::{Budget, BudgetGuard, Limits, Spend};
pub use journal::{JobRow, JobState, Journal, Plan};
pub use ledger::{Ledger, Reservation, SpendTotals, Tally, folder_journals};
pub use manifest::{
    Format, Job, LineError, MAX_PROMPT_BYTES, Manifest, ManifestOptions, check_id, derived_id,
};
pub use output::{JobOutputs, write_atomic};
pub use prices::{PriceTable, Prices};
pub use runner::{BatchEvent, BatchOutcome, Runner, RunnerConfig, StopCause, fingerprint};
pub use shard::Shard;
pub use summary::{Summary, render_contact_sheet, summarize, write_summary};

use std::path::PathBuf;

/// What went wrong in a batch (not in one of its jobs: those are recorded in the journal).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// The manifest could not be read.
    #[error("manifest {path}: {reason}")]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `--strict` and some lines are bad.
    #[error("the manifest has {} bad line(s) and --strict refuses it: {}", .errors.len(), join_lines(.errors))]
    Strict {
        /// The bad lines.
        errors: Vec<LineError>,
    },
    /// The journal could not be opened, read or written.
    #[error(
        "journal {path}: {source} (is the disk full, or another batch using the same journal?)"
    )]
    Journal {
        /// The journal file.
        path: PathBuf,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// Another batch (another process, or another runner in this one) has the journal
    /// open for writing: two writers would run the same jobs and pay for them twice.
    #[error(
        "journal {path} is in use by another batch{}: wait for it, give this run another --out, or split the work with --shard",
        .holder.map(|p| format!(" (process {p})")).unwrap_or_default()
    )]
    Busy {
        /// The journal.
        path: PathBuf,
        /// The process holding it, when it said.
        holder: Option<u32>,
    },
    /// A file could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The price table could not be read.
    #[error("price table {path}: {reason}")]
    Prices {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A job built by a caller (not read from a manifest) is unusable: its id would write
    /// outside the output folder or over the batch's files, or is used twice.
    #[error("job {id:?}: {reason}")]
    InvalidJob {
        /// The id.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// `--out` holds the journals of a run split into another number of shards: this run
    /// would run and count their jobs a second time.
    #[error(
        "{out} already holds the journals of a run split into {found} shard(s) ({journal}); \
         this run is split into {wanted}: it would pay for their jobs again. Use the same \
         shard count, or another --out"
    )]
    ShardMix {
        /// The output folder.
        out: PathBuf,
        /// A journal of the other split.
        journal: String,
        /// Its shard count.
        found: u32,
        /// This run's.
        wanted: u32,
    },
    /// A bad `--shard`.
    #[error("shard: {0}")]
    Shard(String),
    /// A cost cap was asked for, and a model has no price: the cap could not hold.
    #[error(
        "--max-cost is set, but the price table has no price for model {model:?}: give one \
         with --prices FILE, a TOML file with a table per model, e.g.\n\n\
         [models.\"{model}\"]\ninput_per_mtok = 0.3    # USD per million input tokens\n\
         output_per_mtok = 30.0  # USD per million output tokens\n\
         per_image = 0.039       # USD per image (also what an image call reserves)"
    )]
    Unpriced {
        /// The model.
        model: String,
    },
    /// The contact sheet could not be rendered.
    #[error("contact sheet template: {0}")]
    Template(String),
}

fn join_lines(errors: &[LineError]) -> String {
    let mut out: Vec<String> = errors.iter().take(5).map(|e| e.to_string()).collect();
    if errors.len() > 5 {
        out.push(format!("and {} more", errors.len() - 5));
    }
    out.join("; ")
}

/// The batch tool's exit codes (documented in `batch --help` and the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: every job of the shard is done (or skipped).
    AllDone,
    /// 1: an error outside the jobs (journal, disk, configuration).
    Error,
    /// 2: the manifest or the command line is unusable.
    Usage,
    /// 3: the batch ran to the end but some jobs failed.
    SomeFailed,
    /// 4: a budget or the deadline stopped the batch; the rest stays pending.
    Budget,
    /// 5: the circuit breaker stopped the batch (authentication, quota).
    CircuitBreaker,
    /// 130: interrupted by SIGINT or SIGTERM; the rest stays pending.
    Interrupted,
}

impl ExitStatus {
    /// Every exit status, in code order: for whatever must cover each one (the
    /// Kubernetes pod failure policy in deploy/k8s/ is tested against this list).
    pub const ALL: [ExitStatus; 7] = [
        ExitStatus::AllDone,
        ExitStatus::Error,
        ExitStatus::Usage,
        ExitStatus::SomeFailed,
        ExitStatus::Budget,
        ExitStatus::CircuitBreaker,
        ExitStatus::Interrupted,
    ];

    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::AllDone => 0,
            ExitStatus::Error => 1,
            ExitStatus::Usage => 2,
            ExitStatus::SomeFailed => 3,
            ExitStatus::Budget => 4,
            ExitStatus::CircuitBreaker => 5,
            ExitStatus::Interrupted => 130,
        }
    }
}
