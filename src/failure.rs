//! Machine-readable failure classes: what kind of thing went wrong, so that a caller (a
//! nightly batch, a retry loop) can decide without parsing messages whether to retry,
//! wait, or stop and tell a human what to fix.

use std::time::Duration;

use crate::error::{PipelineError, StageError};
use crate::generator::{ImageError, NodeFailure};
use crate::lmm::LmmError;
pub use crate::vocabulary::ErrorClass;
use iat2i_retrievers::HttpError;

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
