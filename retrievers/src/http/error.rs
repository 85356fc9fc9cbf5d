//! [`HttpError`] and URL redaction.

use std::time::Duration;

use reqwest::StatusCode;
use url::Url;

/// What went wrong with one HTTP exchange.
///
/// URLs in it are redacted with [`redact`]: no query string, fragment or credentials,
/// so API keys passed as query parameters never reach logs or reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// The HTTP status, when the error is one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            HttpError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's `Retry-After`, when the error is a status that carried one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            HttpError::Status { retry_after, .. } => *retry_after,
            _ => None,
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
    const MAX_CHARS: usize = 300;
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
