//! The words the pipeline, its errors, its report and a batch share about how a run went:
//! failure classes, paid calls, halts and stop reasons. A leaf module: it imports nothing
//! of theirs (only [`crate::stage`], itself a leaf), so `error`, `guard`, `failure` and
//! `report` can all use it without importing each other in a circle.

use serde::{Deserialize, Serialize};

use crate::stage::StageName;

/// The class of a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The service asked us to slow down (HTTP 429 without a quota message).
    RateLimited,
    /// The account is out of quota or credit, or billing is not set up.
    Quota,
    /// The API key is missing, wrong or lacks permission (HTTP 401/403).
    Auth,
    /// The model's safety system refused the prompt or the image.
    Safety,
    /// The request itself is wrong (HTTP 400/404/413/422, a bad prompt or image).
    InvalidRequest,
    /// The service is down or failing (HTTP 5xx, connection refused or reset).
    Unavailable,
    /// The service did not answer in time.
    Timeout,
    /// A local file could not be written or read (a full disk, a folder without write
    /// permission): not the service's fault, and not a bug.
    Io,
    /// Anything else: a bug, a misconfiguration, an answer we could not read.
    Internal,
}

impl ErrorClass {
    /// All classes, in declaration order.
    pub const ALL: [ErrorClass; 9] = [
        ErrorClass::RateLimited,
        ErrorClass::Quota,
        ErrorClass::Auth,
        ErrorClass::Safety,
        ErrorClass::InvalidRequest,
        ErrorClass::Unavailable,
        ErrorClass::Timeout,
        ErrorClass::Io,
        ErrorClass::Internal,
    ];

    /// The snake_case name used in JSON and journals.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::Quota => "quota",
            ErrorClass::Auth => "auth",
            ErrorClass::Safety => "safety",
            ErrorClass::InvalidRequest => "invalid_request",
            ErrorClass::Unavailable => "unavailable",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Io => "io",
            ErrorClass::Internal => "internal",
        }
    }

    /// Parse [`ErrorClass::as_str`] back.
    pub fn parse(s: &str) -> Option<ErrorClass> {
        ErrorClass::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Whether trying again later may succeed without anyone changing anything
    /// (rate limits, outages). A timeout is transient too, but the call may have been
    /// processed (and paid for), so a caller should not repeat it blindly.
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorClass::RateLimited | ErrorClass::Unavailable)
    }

    /// Whether every further call will fail the same way until a human acts (a wrong
    /// key, an empty account): a batch should stop instead of burning through its jobs.
    pub fn is_fatal(self) -> bool {
        matches!(self, ErrorClass::Auth | ErrorClass::Quota)
    }

    /// What a user should do about it.
    pub fn advice(self) -> &'static str {
        match self {
            ErrorClass::RateLimited => "lower --concurrency or wait; the job is retried",
            ErrorClass::Quota => {
                "the account is out of quota or credit: add credit or raise the limit, then re-run"
            }
            ErrorClass::Auth => {
                "check the API key (OPENAI_API_KEY) and its permissions, then re-run"
            }
            ErrorClass::Safety => "the model's safety system refused: rephrase the prompt",
            ErrorClass::InvalidRequest => "fix the job (prompt, image, model name or options)",
            ErrorClass::Unavailable => "the service is failing: try again later",
            ErrorClass::Timeout => "the service was too slow: raise the timeout or try later",
            ErrorClass::Io => "free disk space or fix the output folder's permissions, then re-run",
            ErrorClass::Internal => "see the message; report a bug if it persists",
        }
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Words in a service's message that say the account ran out of money or quota.
/// A paid call the pipeline is about to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaidCall {
    /// The knowledge gate (also writes the search queries).
    Gate,
    /// Search and selection (the candidate judge is a chat call).
    Select,
    /// One image generation.
    Generate,
    /// One verdict of the reflection judge.
    Judge,
}

impl PaidCall {
    /// The snake_case name used in JSON and in the journal's ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            PaidCall::Gate => "gate",
            PaidCall::Select => "select",
            PaidCall::Generate => "generate",
            PaidCall::Judge => "judge",
        }
    }
}

impl std::fmt::Display for PaidCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PaidCall::Gate => "gate",
            PaidCall::Select => "selection",
            PaidCall::Generate => "image generation",
            PaidCall::Judge => "judge",
        })
    }
}

/// Why a guard stopped a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HaltKind {
    /// A budget (images, tokens, cost) is spent.
    Budget,
    /// A deadline for the whole batch (or the caller's) has passed.
    Deadline,
    /// This run's own time limit (a batch's `--job-timeout`) has passed: unlike a batch
    /// deadline, the job itself took too long, so a batch records it as failed (timeout).
    JobTimeout,
    /// The caller asked to stop (a signal, a user).
    Cancelled,
    /// The call could not be recorded before it was made (the journal's disk is full or
    /// unwritable): a call nobody can account for is not made.
    Unrecorded,
}

/// A guard's decision to stop, with a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Halt {
    /// Why.
    pub kind: HaltKind,
    /// In words, e.g. `--max-images 3 reached`.
    pub message: String,
}

impl Halt {
    /// A halt of `kind` saying `message`.
    pub fn new(kind: HaltKind, message: impl Into<String>) -> Self {
        Halt {
            kind,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Halt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            HaltKind::Budget => "budget",
            HaltKind::Deadline => "deadline",
            HaltKind::JobTimeout => "job timeout",
            HaltKind::Cancelled => "cancelled",
            HaltKind::Unrecorded => "not recorded",
        };
        write!(f, "stopped ({kind}): {}", self.message)
    }
}

/// Why a run stopped, machine-readable (the report's `stop_reason` says it in words).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StopReason {
    /// Not recorded (reports written before stop reasons were typed).
    #[default]
    Unknown,
    /// The judge found the image aligned.
    Aligned {
        /// The round.
        round: u32,
    },
    /// The judge accepted the image without full alignment.
    Accepted {
        /// The round.
        round: u32,
    },
    /// Every round ran without alignment.
    MaxRounds,
    /// The judge failed; the image is unjudged.
    JudgeFailed {
        /// The round.
        round: u32,
    },
    /// A stage failed and ended the run.
    Failed {
        /// The stage.
        stage: StageName,
        /// The failure's class.
        class: ErrorClass,
        /// The round, when in one.
        round: Option<u32>,
    },
    /// A [`RunGuard`] stopped the run before a paid call.
    Halted {
        /// Why.
        halt: HaltKind,
        /// The call that was not made.
        before: PaidCall,
    },
}

impl StopReason {
    /// The class of the failure that stopped the run, when one did.
    pub fn class(&self) -> Option<ErrorClass> {
        match self {
            StopReason::Failed { class, .. } => Some(*class),
            _ => None,
        }
    }
}
