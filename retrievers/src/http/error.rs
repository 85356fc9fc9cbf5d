//! [`HttpError`] and URL redaction.

use std::time::Duration;

use reqwest::StatusCode;
use url::Url;

/// What went wrong with one HTTP exchange.
///
/// URLs in it are redacted with [`redact`]: no query string, fragment or credentials,
/// so API keys passed as query parameters never reach logs or reports.
///
/// Deliberately exhaustive (no `#[non_exhaustive]`): the root crate's failure classes
/// match every variant, so a new variant fails to compile there instead of silently
/// falling into a catch-all class that a batch would never retry.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL points (or redirected, or resolved) to an address the SSRF policy refuses.
    #[error("refused {url}: {reason} (allow the host explicitly if it is yours)")]
    Refused {
        /// The URL, without query string.
        url: String,
        /// Which rule refused it.
        reason: String,
    },
    /// The server answered with a non-success status (after any retries).
    #[error("{url} answered HTTP {status}{}{}", retry_suffix(.retry_after), snippet_suffix(.body))]
    Status {
        /// The URL, without query string.
        url: String,
        /// The status.
        status: StatusCode,
        /// The start of the body, for diagnostics.
        body: String,
        /// The server's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// The request timed out.
    #[error("{url} timed out after {after:?}")]
    Timeout {
        /// The URL, without query string.
        url: String,
        /// How long we waited.
        after: Duration,
    },
    /// The body was larger than the cap (the client's, or a tighter one for the request).
    #[error(
        "{url} sent more than {limit} bytes, over the size cap (raise max_response_bytes, or the per-request cap such as max_image_bytes, if this is expected)"
    )]
    TooLarge {
        /// The URL, without query string.
        url: String,
        /// The cap.
        limit: usize,
    },
    /// Connection or protocol failure.
    #[error("{url}: {message}")]
    Transport {
        /// The URL, without query string.
        url: String,
        /// What failed.
        message: String,
    },
    /// The client could not be built, or a URL was malformed.
    #[error("http client: {0}")]
    Config(String),
    /// A paid request (one that bills, such as an image generation) failed in a way
    /// that does not prove the server did not process it (a 5xx, a timeout, a dropped
    /// connection after the request was sent), so it was deliberately not retried:
    /// a retry could be billed a second time. See [`crate::HttpClient::execute_paid`].
    #[error(
        "{source} (a paid request: not retried, because the server may already have processed and billed it; check the provider's usage before running it again)"
    )]
    NotRetried {
        /// The failure of the one attempt made.
        source: Box<HttpError>,
    },
}

fn snippet_suffix(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

fn retry_suffix(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!(" (retry after {}s)", d.as_secs()),
        None => String::new(),
    }
}

impl HttpError {
    /// The HTTP status, when the error is one (also inside [`HttpError::NotRetried`]).
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            HttpError::Status { status, .. } => Some(*status),
            HttpError::NotRetried { source } => source.status(),
            _ => None,
        }
    }

    /// How long the server asked us to wait: its `Retry-After` header, or the
    /// `retryDelay` of a `google.rpc.RetryInfo` in its error body (Google APIs send the
    /// delay there), when the error is a status that carried one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            HttpError::Status { retry_after, .. } => *retry_after,
            HttpError::NotRetried { source } => source.retry_after(),
            _ => None,
        }
    }

    /// Whether this is a paid request that failed and was deliberately not retried
    /// because the server may have processed (and billed) it.
    pub fn was_not_retried(&self) -> bool {
        matches!(self, HttpError::NotRetried { .. })
    }

    /// The error under any [`HttpError::NotRetried`] wrapper.
    pub fn innermost(&self) -> &HttpError {
        match self {
            HttpError::NotRetried { source } => source.innermost(),
            other => other,
        }
    }

    /// Replace `secret` (an API key the server may echo back, or one that was part of a
    /// URL) with `***` in every text this error holds, however deeply wrapped.
    pub fn scrub(&mut self, secret: &str) {
        let clean = |s: &mut String| scrub_secret(s, secret);
        match self {
            HttpError::Refused { url, reason } => {
                clean(url);
                clean(reason);
            }
            HttpError::Status { url, body, .. } => {
                clean(url);
                clean(body);
            }
            HttpError::Timeout { url, .. } | HttpError::TooLarge { url, .. } => clean(url),
            HttpError::Transport { url, message } => {
                clean(url);
                clean(message);
            }
            HttpError::Config(message) => clean(message),
            HttpError::NotRetried { source } => source.scrub(secret),
        }
    }
}

/// Removes query string, fragment and credentials so that keys and tokens never
/// reach errors or logs.
pub fn redact(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_password(None);
    let _ = u.set_username("");
    u.to_string()
}

/// The start of an error body, with any query-parameter value of `url` that the
/// server echoed back replaced, so a key in the query cannot leak through it.
pub(crate) fn body_snippet(body: &[u8], url: &Url) -> String {
    // Long enough for a structured validation error (ComfyUI's `node_errors` for one node
    // is ~700 bytes) to arrive whole and be parsed; short enough to print.
    const MAX_CHARS: usize = 2000;
    let text = String::from_utf8_lossy(body);
    let mut snippet: String = text
        .chars()
        .filter(|c| !c.is_control() || *c == ' ')
        .take(MAX_CHARS)
        .collect();
    if let Some(q) = url.query() {
        snippet = snippet.replace(q, "[redacted]");
    }
    for (_, value) in url.query_pairs() {
        if value.chars().count() >= 6 {
            snippet = snippet.replace(value.as_ref(), "[redacted]");
        }
    }
    snippet.trim().to_string()
}

/// A `reqwest` error as text, without the URL it carries, with its causes.
pub(crate) fn describe(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut parts = vec![err.to_string()];
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        let text = s.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// Replace every occurrence of `secret` (an API key) in `text` with `***`; an empty
/// secret changes nothing. The one rule every error's `scrub` applies to its texts.
pub fn scrub_secret(text: &mut String, secret: &str) {
    if !secret.is_empty() && text.contains(secret) {
        *text = text.replace(secret, "***");
    }
}
