//! Machine-readable failure classes: what kind of thing went wrong, so that a caller (a
//! nightly batch, a retry loop) can decide without parsing messages whether to retry,
//! wait, or stop and tell a human what to fix.

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

/// Words that say the key is wrong.
fn says_auth(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "invalid_api_key",
        "incorrect api key",
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

/// Class of an HTTP failure.
pub fn classify_http(e: &HttpError) -> ErrorClass {
    match e {
        HttpError::Status { status, body, .. } => match status.as_u16() {
            401 | 403 => ErrorClass::Auth,
            402 => ErrorClass::Quota,
            429 if says_quota(body) => ErrorClass::Quota,
            429 => ErrorClass::RateLimited,
            408 | 504 => ErrorClass::Timeout,
            400 | 404 | 409 | 413 | 415 | 422 if says_safety(body) => ErrorClass::Safety,
            400 | 404 | 409 | 413 | 415 | 422 => ErrorClass::InvalidRequest,
            s if s >= 500 => ErrorClass::Unavailable,
            _ => ErrorClass::Internal,
        },
        HttpError::Timeout { .. } => ErrorClass::Timeout,
        HttpError::Transport { .. } => ErrorClass::Unavailable,
        HttpError::TooLarge { .. } | HttpError::Refused { .. } | HttpError::Config(_) => {
            ErrorClass::Internal
        }
        #[allow(unreachable_patterns)]
        _ => ErrorClass::Internal,
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
            LmmError::Config(_) => ErrorClass::Internal,
            LmmError::Billed { source, .. } => source.class(),
            _ => ErrorClass::Internal,
        }
    }
}

impl ImageError {
    /// The failure's class.
    pub fn class(&self) -> ErrorClass {
        match self {
            ImageError::Http { source, .. } => classify_http(source),
            ImageError::Api { message, .. } => classify_message(message),
            ImageError::Node { failure, .. } => match failure {
                NodeFailure::Invalid | NodeFailure::Raised => ErrorClass::InvalidRequest,
                NodeFailure::OutOfMemory => ErrorClass::Unavailable,
                _ => ErrorClass::Internal,
            },
            _ => ErrorClass::Internal,
        }
    }
}

impl StageError {
    /// The failure's class.
    pub fn class(&self) -> ErrorClass {
        match self {
            StageError::Lmm(e) => e.class(),
            StageError::Image(e) => e.class(),
            _ => ErrorClass::Internal,
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
            PipelineError::ReferenceRequired { .. } => Some(ErrorClass::Internal),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    fn status(code: u16, body: &str) -> HttpError {
        HttpError::Status {
            url: "http://x/v1/images/generations".into(),
            status: StatusCode::from_u16(code).unwrap(),
            body: body.into(),
            retry_after: None,
        }
    }

    #[test]
    fn http_statuses_map_to_classes() {
        assert_eq!(classify_http(&status(401, "")), ErrorClass::Auth);
        assert_eq!(classify_http(&status(403, "")), ErrorClass::Auth);
        assert_eq!(
            classify_http(&status(429, "slow down")),
            ErrorClass::RateLimited
        );
        let quota = r#"{"error":{"code":"insufficient_quota","type":"insufficient_quota"}}"#;
        assert_eq!(classify_http(&status(429, quota)), ErrorClass::Quota);
        let safety =
            r#"{"error":{"code":"moderation_blocked","message":"rejected by the safety system"}}"#;
        assert_eq!(classify_http(&status(400, safety)), ErrorClass::Safety);
        assert_eq!(
            classify_http(&status(400, "bad size")),
            ErrorClass::InvalidRequest
        );
        assert_eq!(classify_http(&status(503, "")), ErrorClass::Unavailable);
        let t = HttpError::Timeout {
            url: "u".into(),
            after: std::time::Duration::from_secs(1),
        };
        assert_eq!(classify_http(&t), ErrorClass::Timeout);
    }

    #[test]
    fn names_round_trip_and_policy_flags() {
        for c in ErrorClass::ALL {
            assert_eq!(ErrorClass::parse(c.as_str()), Some(c));
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
        }
        assert!(ErrorClass::Auth.is_fatal() && ErrorClass::Quota.is_fatal());
        assert!(!ErrorClass::RateLimited.is_fatal() && ErrorClass::RateLimited.is_transient());
        assert!(!ErrorClass::Timeout.is_transient());
    }
}
