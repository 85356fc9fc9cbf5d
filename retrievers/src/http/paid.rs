//! Paid, non-idempotent requests: retried only when provably not processed.
//!
//! An image generation or a chat completion bills when the server processes it, and a
//! gateway can answer 502 or time out *after* the model has run. Retrying such a
//! request like a GET pays for it again. [`HttpClient::execute_paid`] retries only
//! when the request provably was not processed:
//!
//! * the connection (or its TLS handshake) failed, so no byte of the request was sent;
//! * the server answered 429 (rate limited: the request was turned away, not run);
//! * or the caller sends an idempotency key the API honours ([`Paid::idempotency_key`]),
//!   so the server itself deduplicates a repeated request.
//!
//! Any other failure that may have been processed (5xx, a timeout, a connection dropped
//! after sending, a body over the cap) fails at once as [`HttpError::NotRetried`].

use reqwest::header::HeaderName;
use reqwest::{RequestBuilder, StatusCode};

use super::body::Failure;
use super::{HttpClient, HttpError, HttpResponse, Trust};

/// How a paid request (one that bills) may be retried; see [`HttpClient::execute_paid`].
#[derive(Clone, Default)]
pub struct Paid {
    idempotency: Option<(HeaderName, String)>,
}

impl std::fmt::Debug for Paid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Paid")
            .field(
                "idempotency_header",
                &self.idempotency.as_ref().map(|i| &i.0),
            )
            .finish()
    }
}

impl Paid {
    /// A paid request without an idempotency key: retried only on a connection that
    /// failed before sending and on 429.
    pub fn new() -> Self {
        Paid::default()
    }

    /// A paid request to an API that deduplicates requests carrying the same key in
    /// `header` (such as `Idempotency-Key`): the same fresh random key is sent with every
    /// attempt, so the ordinary retries (429, 5xx, connection errors) are safe.
    ///
    /// Use it only for an API that documents the header: an API that ignores it would
    /// bill every retry.
    pub fn idempotency_key(header: HeaderName) -> Self {
        let key = format!("iat2i-{:032x}", fastrand::u128(..));
        Paid::with_key(header, key)
    }

    /// [`Paid::idempotency_key`] with a key chosen by the caller (unique per logical request).
    pub fn with_key(header: HeaderName, key: impl Into<String>) -> Self {
        Paid {
            idempotency: Some((header, key.into())),
        }
    }

    /// Whether an idempotency key is sent.
    pub fn has_idempotency_key(&self) -> bool {
        self.idempotency.is_some()
    }

    pub(super) fn decorate(&self, rb: RequestBuilder) -> RequestBuilder {
        match &self.idempotency {
            Some((name, value)) => rb.header(name.clone(), value.as_str()),
            None => rb,
        }
    }
}

/// Whether the failed attempt may have been processed (and billed) by the server.
fn may_have_been_processed(f: &Failure) -> bool {
    if f.unsent {
        return false;
    }
    match &f.error {
        HttpError::Status { status, .. } => {
            status.is_server_error() || *status == StatusCode::REQUEST_TIMEOUT
        }
        HttpError::Timeout { .. } | HttpError::Transport { .. } | HttpError::TooLarge { .. } => {
            true
        }
        HttpError::NotRetried { .. } => true,
        HttpError::Refused { .. } | HttpError::Config(_) => false,
    }
}

/// Whether a paid request may be sent again after failure `f`.
pub(super) fn may_retry(paid: &Paid, f: &Failure) -> bool {
    if paid.has_idempotency_key() {
        return f.retry;
    }
    let rate_limited = f.error.status() == Some(StatusCode::TOO_MANY_REQUESTS);
    f.retry && (f.unsent || rate_limited)
}

/// The error a paid request ends with: a failure that may have been processed and was
/// not retried is wrapped in [`HttpError::NotRetried`].
pub(super) fn final_error(paid: &Paid, f: Failure) -> HttpError {
    if paid.has_idempotency_key() || may_retry(paid, &f) || !may_have_been_processed(&f) {
        return f.error;
    }
    HttpError::NotRetried {
        source: Box::new(f.error),
    }
}

impl HttpClient {
    /// Send a paid, non-idempotent request (an image generation, a chat completion:
    /// anything that bills) that `make` builds, and read the body within the size cap.
    ///
    /// Unlike [`HttpClient::execute`] it retries only when the request provably was not
    /// processed: a connection that failed before the request was sent, or HTTP 429
    /// (honouring `Retry-After`); with [`Paid::idempotency_key`], the ordinary retries.
    /// A failure that may have been processed (5xx, timeout, a connection lost after
    /// sending) fails at once with [`HttpError::NotRetried`], which says so.
    pub async fn execute_paid<F>(
        &self,
        trust: Trust,
        paid: &Paid,
        make: F,
    ) -> Result<HttpResponse, HttpError>
    where
        F: Fn(&reqwest::Client) -> RequestBuilder + Send + Sync,
    {
        self.run(trust, usize::MAX, Some(paid), make).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> Failure {
        let status = StatusCode::from_u16(code).unwrap();
        Failure {
            error: HttpError::Status {
                url: "http://x/".into(),
                status,
                body: String::new(),
                retry_after: None,
            },
            retry: code == 429 || code >= 500,
            unsent: false,
        }
    }

    fn transport(unsent: bool) -> Failure {
        Failure {
            error: HttpError::Transport {
                url: "http://x/".into(),
                message: "connection refused".into(),
            },
            retry: unsent,
            unsent,
        }
    }

    #[test]
    fn only_unsent_and_rate_limited_attempts_are_retried_without_a_key() {
        let p = Paid::new();
        assert!(may_retry(&p, &status(429)));
        assert!(may_retry(&p, &transport(true)));
        for code in [500, 502, 503, 504] {
            assert!(!may_retry(&p, &status(code)), "{code}");
            assert!(final_error(&p, status(code)).was_not_retried(), "{code}");
        }
        assert!(!may_retry(&p, &transport(false)));
        assert!(final_error(&p, transport(false)).was_not_retried());
        // A rejection (4xx) was not processed: plain error, no "not retried" claim.
        assert!(!final_error(&p, status(400)).was_not_retried());
        assert!(!final_error(&p, status(429)).was_not_retried());
        assert!(!final_error(&p, transport(true)).was_not_retried());
    }

    #[test]
    fn an_idempotency_key_allows_the_ordinary_retries() {
        let p = Paid::idempotency_key(HeaderName::from_static("idempotency-key"));
        assert!(may_retry(&p, &status(502)));
        assert!(!final_error(&p, status(502)).was_not_retried());
        assert!(!format!("{p:?}").contains("iat2i-"), "the key is not shown");
    }
}
