//! Reading bodies within the cap, `Retry-After`, and sorting failures into
//! retryable and final.

use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use url::Url;

use super::error::{HttpError, describe, redact};
use super::ssrf::{Refusal, TooManyRedirects};

/// One failed attempt, and whether another may succeed.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) error: HttpError,
    /// Whether an ordinary (idempotent) request would be retried.
    pub(crate) retry: bool,
    /// Whether the request provably never reached the server: the connection (or its
    /// TLS handshake) failed before a byte of the request was written.
    pub(crate) unsent: bool,
}

impl Failure {
    pub(crate) fn fatal(error: HttpError) -> Self {
        Failure {
            error,
            retry: false,
            unsent: false,
        }
    }
}

impl From<HttpError> for Failure {
    fn from(error: HttpError) -> Self {
        Failure::fatal(error)
    }
}

/// Sort an error from sending a request: a refusal by the SSRF policy (in the resolver
/// or the redirect policy), a timeout, a connection failure (retried) or anything else.
pub(crate) fn classify_send_error(err: reqwest::Error, url: &Url, total: Duration) -> Failure {
    let at = redact(err.url().unwrap_or(url));
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<Refusal>() {
            return Failure::fatal(HttpError::Refused {
                url: at,
                reason: r.reason.clone(),
            });
        }
        if let Some(t) = s.downcast_ref::<TooManyRedirects>() {
            return Failure::fatal(HttpError::Transport {
                url: at,
                message: t.to_string(),
            });
        }
        source = s.source();
    }
    let connect = err.is_connect();
    if err.is_timeout() && !connect {
        return Failure::fatal(HttpError::Timeout {
            url: at,
            after: total,
        });
    }
    // A connect error comes from the connector (TCP connect, TLS handshake, proxy
    // tunnel): the request itself was never written.
    Failure {
        error: HttpError::Transport {
            url: at,
            message: describe(err),
        },
        retry: connect,
        unsent: connect,
    }
}

fn body_error(err: reqwest::Error, url: &Url, total: Duration) -> HttpError {
    if err.is_timeout() {
        HttpError::Timeout {
            url: redact(url),
            after: total,
        }
    } else {
        HttpError::Transport {
            url: redact(url),
            message: describe(err),
        }
    }
}

/// Read the body, failing with [`HttpError::TooLarge`] as soon as it exceeds `cap`
/// (up front when `Content-Length` says so), so a huge body is never buffered.
pub(crate) async fn read_capped(
    resp: &mut reqwest::Response,
    cap: usize,
    total: Duration,
) -> Result<Bytes, HttpError> {
    let url = resp.url().clone();
    let too_large = || HttpError::TooLarge {
        url: redact(&url),
        limit: cap,
    };
    let declared = resp.content_length();
    if declared.is_some_and(|n| n > cap as u64) {
        return Err(too_large());
    }
    let initial = declared.map_or(8192, |n| n as usize).min(cap).min(1 << 20);
    let mut buf = BytesMut::with_capacity(initial);
    while let Some(chunk) = resp.chunk().await.map_err(|e| body_error(e, &url, total))? {
        if buf.len().saturating_add(chunk.len()) > cap {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Up to `max` bytes of an error body, for diagnostics; read errors end it early.
pub(crate) async fn snippet(resp: &mut reqwest::Response, max: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    while buf.len() < max {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(max - buf.len());
                buf.extend_from_slice(chunk.get(..take).unwrap_or(&[]));
            }
            _ => break,
        }
    }
    buf
}

/// The `Retry-After` header as a duration: delay-seconds or an HTTP-date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    parse_retry_after(value, SystemTime::now())
}

/// The `retryDelay` of a `google.rpc.RetryInfo` in a Google API error body
/// (`{"error": {"details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
/// "retryDelay": "37s"}]}}`): a protobuf `Duration` in JSON, decimal seconds ending in `s`.
/// Read from the text rather than parsed as JSON, so a body cut at the snippet cap still
/// yields it.
pub(crate) fn rpc_retry_delay(body: &str) -> Option<Duration> {
    if !body.contains("google.rpc.RetryInfo") {
        return None;
    }
    let after = body.split_once("\"retryDelay\"")?.1;
    let value = after.trim_start().strip_prefix(':')?.trim_start();
    let value = value.strip_prefix('"')?.split('"').next()?;
    let secs: f64 = value.trim().strip_suffix('s')?.parse().ok()?;
    // At most a day: anything longer is not a wait but a broken value.
    Duration::try_from_secs_f64(secs.min(86_400.0)).ok()
}

/// Parse a `Retry-After` value relative to `now`; a date in the past means no wait.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}
