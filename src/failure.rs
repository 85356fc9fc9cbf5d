//! Machine-readable failure classes: what kind of thing went wrong, so that a caller (a
//! nightly batch, a retry loop) can decide without parsing messages whether to retry,
//! wait, or stop and tell a human what to fix.

use std::time::Duration;

use iat2i_retrievers::HttpError;
use serde::{Deserialize, Serialize};

use crate::error::{PipelineError, StageError};
use crate::generator::{ImageError, NodeFailure};
use crate::lmm::LmmError;

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
fn says_quota(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "insufficient_quota",
        "quota",
        "billing",
        "credit",
        "payment required",
    ]
    .iter()
    .any(|w| t.contains(w))
}

/// Words in a 429 body that say the account is empty or the limit will not come back
/// soon, whatever else it says: OpenAI's `insufficient_quota` code; Gemini's "Your
/// prepayment credits are depleted"; a Gemini `QuotaFailure` whose limit is 0 (the free
/// tier of a model that has none: billing must be enabled) or whose quota is per day.
fn says_depleted(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "insufficient_quota",
        "credits are depleted",
        "prepayment credits",
        "limit: 0,",
        "\"quotavalue\": \"0\"",
        "perday",
        "payment required",
    ]
    .iter()
    .any(|w| t.contains(w))
}

/// Codes of a rate limit proper. Gemini's per-minute `RESOURCE_EXHAUSTED` says "You
/// exceeded your current quota, please check your plan and billing details" too, so its
/// words must not make it `quota`.
fn says_rate_limit(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    ["resource_exhausted", "rate_limit_exceeded", "rate limit"]
        .iter()
        .any(|w| t.contains(w))
}

/// Words in a service's message that say its safety system refused.
fn says_safety(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "content_policy_violation",
        "moderation_blocked",
        "safety system",
        "safety_violation",
        "content policy",
        "responsible ai",
    ]
    .iter()
    .any(|w| t.contains(w))
}

/// Words that say the key is wrong (Google answers a wrong key with 400
/// `INVALID_ARGUMENT` and a `google.rpc.ErrorInfo` whose reason is `API_KEY_INVALID`).
fn says_auth(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "invalid_api_key",
        "incorrect api key",
        "api_key_invalid",
        "api key not valid",
        "unauthorized",
        "permission",
    ]
    .iter()
    .any(|w| t.contains(w))
}

/// Class of an error object a service sent in a 200 answer (or any message text).
pub fn classify_message(text: &str) -> ErrorClass {
    if says_safety(text) {
        ErrorClass::Safety
    } else if says_quota(text) {
        ErrorClass::Quota
    } else if says_auth(text) {
        ErrorClass::Auth
    } else {
        ErrorClass::InvalidRequest
    }
}

/// Class of a 429: `quota` when the body says the account is empty or the limit is out
/// for the day (waiting will not help), else `rate_limited`.
fn classify_429(body: &str) -> ErrorClass {
    if says_depleted(body) {
        ErrorClass::Quota
    } else if says_rate_limit(body) || !says_quota(body) {
        ErrorClass::RateLimited
    } else {
        ErrorClass::Quota
    }
}

/// Class of a non-success HTTP status with its body.
fn classify_status(status: u16, body: &str) -> ErrorClass {
    match status {
        401 | 403 => ErrorClass::Auth,
        402 => ErrorClass::Quota,
        429 => classify_429(body),
        408 | 504 => ErrorClass::Timeout,
        400..=499 if says_auth(body) => ErrorClass::Auth,
        400..=499 if says_safety(body) => ErrorClass::Safety,
        // "Gemini API free tier is not available in your country. Please enable billing".
        400..=499 if body.to_ascii_lowercase().contains("enable billing") => ErrorClass::Quota,
        // 400, 404, 409, 413, 415, 422 and the rest: the request must change.
        400..=499 => ErrorClass::InvalidRequest,
        500..=599 => ErrorClass::Unavailable,
        // 1xx and 3xx as a final answer (a redirect we did not follow): not an answer we
        // can use.
        _ => ErrorClass::Internal,
    }
}

/// Class of an HTTP failure. Every variant is named: a new one must be classified here.
/// A paid request that was not retried ([`HttpError::NotRetried`]) has its failure's
/// class: a 5xx or a dropped connection is still `unavailable`, a timeout `timeout`.
pub fn classify_http(e: &HttpError) -> ErrorClass {
    match e {
        HttpError::Status { status, body, .. } => classify_status(status.as_u16(), body),
        HttpError::Timeout { .. } => ErrorClass::Timeout,
        HttpError::Transport { .. } => ErrorClass::Unavailable,
        // The answer was over our size cap: the request (its size tier) or the cap must change.
        HttpError::TooLarge { .. } => ErrorClass::InvalidRequest,
        // The SSRF policy refused the URL: only a changed URL or policy helps.
        HttpError::Refused { .. } => ErrorClass::InvalidRequest,
        // The client could not be built or a URL was malformed: a misconfiguration.
        HttpError::Config(_) => ErrorClass::Internal,
        HttpError::NotRetried { source } => classify_http(source),
    }
}

impl LmmError {
    /// The failure's class.
    pub fn class(&self) -> ErrorClass {
        match self {
            LmmError::Http { source, .. } => classify_http(source),
            LmmError::Api { message, code, .. } => {
                classify_message(&format!("{message} {}", code.as_deref().unwrap_or("")))
            }
            LmmError::Refused { .. } => ErrorClass::Safety,
            LmmError::Billed { source, .. } => source.class(),
            LmmError::Config(_)
            | LmmError::Truncated { .. }
            | LmmError::Empty { .. }
            | LmmError::Protocol { .. }
            | LmmError::NotJson { .. }
            | LmmError::Other(_) => ErrorClass::Internal,
        }
    }

    /// How long the server asked us to wait before trying again, when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self.inner() {
            LmmError::Http { source, .. } => source.retry_after(),
            _ => None,
        }
    }
}

impl ImageError {
    /// The failure's class.
    pub fn class(&self) -> ErrorClass {
        match self {
            ImageError::Http { source, .. } => classify_http(source),
            ImageError::Api { message, .. } => classify_message(message),
            // Blocked prompts, withheld images, words instead of a picture: rephrase.
            ImageError::Refused { .. } => ErrorClass::Safety,
            ImageError::Node { failure, .. } => match failure {
                NodeFailure::Invalid | NodeFailure::Raised => ErrorClass::InvalidRequest,
                NodeFailure::OutOfMemory => ErrorClass::Unavailable,
                _ => ErrorClass::Internal,
            },
            ImageError::Timeout { .. } => ErrorClass::Timeout,
            ImageError::Config(_) | ImageError::NoImage { .. } | ImageError::Other(_) => {
                ErrorClass::Internal
            }
        }
    }

    /// How long the server asked us to wait before trying again (`Retry-After`, or
    /// Google's `RetryInfo.retryDelay`), when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ImageError::Http { source, .. } => source.retry_after(),
            _ => None,
        }
    }
}

impl StageError {
    /// The failure's class.
    pub fn class(&self) -> ErrorClass {
        match self {
            StageError::Lmm(e) => e.class(),
            StageError::Image(e) => e.class(),
            StageError::Select(_) | StageError::Other(_) => ErrorClass::Internal,
        }
    }

    /// How long the server asked us to wait before trying again, when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            StageError::Lmm(e) => e.retry_after(),
            StageError::Image(e) => e.retry_after(),
            StageError::Select(_) | StageError::Other(_) => None,
        }
    }
}

impl PipelineError {
    /// The failure's class (an invalid request is `invalid_request`, a stop asked for by
    /// a [`crate::guard::RunGuard`] has none).
    pub fn class(&self) -> Option<ErrorClass> {
        match self {
            PipelineError::Config(_) => Some(ErrorClass::Internal),
            PipelineError::InvalidRequest(_) => Some(ErrorClass::InvalidRequest),
            PipelineError::Stage { source, .. } => Some(source.class()),
            PipelineError::Halted { .. } => None,
            // The run lost the reference its caller required: not worth a blind retry.
            PipelineError::ReferenceRequired { .. } | PipelineError::Required { .. } => {
                Some(ErrorClass::Internal)
            }
        }
    }

    /// How long the server asked us to wait before the run is tried again (a 429's
    /// `Retry-After` or `RetryInfo`), when it said: a retry loop waits at least this long.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            PipelineError::Stage { source, .. } => source.retry_after(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
