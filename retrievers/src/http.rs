//! The HTTP client every iat2i crate shares.
//!
//! Two kinds of request go through it:
//! * [`Trust::Trusted`]: endpoints the user configured (a model API, a search engine's
//!   base URL, a local Ollama or SearXNG). No address policy is applied.
//! * [`Trust::Untrusted`]: URLs that came from the internet (search results and their
//!   redirects). The [`SsrfPolicy`] is applied to the address actually connected to.
//!
//! Both get timeouts, retries with jittered exponential backoff on 429, 5xx and
//! connection errors (honouring `Retry-After`), a per-host rate limit and a cap on the
//! response size.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};
use url::Url;

/// Whether a request goes to an endpoint the user configured or to a URL from the internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// An endpoint the user configured: no address policy.
    Trusted,
    /// A URL from outside (search results, redirects): the SSRF policy applies.
    Untrusted,
}

/// Which hosts untrusted URLs may reach.
///
/// By default a URL whose host resolves to a loopback, private, link-local, CGNAT,
/// multicast, unspecified or cloud-metadata address (IPv4 and IPv6, v4-mapped included)
/// is refused. Hosts named in `allow_hosts` are let through whatever they resolve to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SsrfPolicy {
    /// Host names or IP literals (lower-case, no port) that untrusted URLs may reach
    /// even when they resolve to a private address.
    pub allow_hosts: HashSet<String>,
    /// Turn the policy off entirely (only for closed networks and tests).
    pub disabled: bool,
}

impl SsrfPolicy {
    /// Allow one more host.
    pub fn allow_host(mut self, host: impl Into<String>) -> Self {
        self.allow_hosts.insert(host.into().to_ascii_lowercase());
        self
    }
}

/// A response whose body has been read (within the size cap).
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Final status (always a success status: failures are [`HttpError::Status`]).
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The final URL after redirects.
    pub url: Url,
    /// The body.
    pub body: Bytes,
}

impl HttpResponse {
    /// The `Content-Type` header's MIME essence, lower-cased, when present.
    pub fn content_type(&self) -> Option<String> {
        self.headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What went wrong with one HTTP exchange.
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
    #[error("{url} answered HTTP {status}{}", snippet_suffix(.body))]
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
    /// The body was larger than the configured cap.
    #[error("{url} sent more than {limit} bytes")]
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

impl HttpError {
    /// The HTTP status, when the error is one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            HttpError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Removes query string and fragment so that keys and tokens never reach errors or logs.
pub fn redact(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_password(None);
    let _ = u.set_username("");
    u.to_string()
}

#[derive(Debug, Clone)]
struct Config {
    connect_timeout: Duration,
    read_timeout: Duration,
    total_timeout: Duration,
    max_retries: u32,
    min_backoff: Duration,
    max_backoff: Duration,
    max_retry_after: Duration,
    user_agent: String,
    max_response_bytes: usize,
    per_host_per_second: u32,
    ssrf: SsrfPolicy,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            total_timeout: Duration::from_secs(60),
            max_retries: 3,
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(20),
            max_retry_after: Duration::from_secs(60),
            user_agent: format!(
                "iat2i/{} (+https://crates.io/crates/iat2i)",
                env!("CARGO_PKG_VERSION")
            ),
            max_response_bytes: 32 * 1024 * 1024,
            per_host_per_second: 10,
            ssrf: SsrfPolicy::default(),
        }
    }
}

/// Builds an [`HttpClient`].
#[derive(Debug, Clone, Default)]
pub struct HttpClientBuilder {
    config: Config,
}

impl HttpClientBuilder {
    /// Time allowed to establish a connection (default 10 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.config.connect_timeout = d;
        self
    }
    /// Time allowed between two reads of the body (default 30 s).
    pub fn read_timeout(mut self, d: Duration) -> Self {
        self.config.read_timeout = d;
        self
    }
    /// Time allowed for one attempt, from sending to the end of the body (default 60 s).
    pub fn total_timeout(mut self, d: Duration) -> Self {
        self.config.total_timeout = d;
        self
    }
    /// Retries after the first attempt on 429, 5xx and connection errors (default 3).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.config.max_retries = n;
        self
    }
    /// Backoff bounds for retries (default 500 ms to 20 s, jittered, doubling).
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.config.min_backoff = min;
        self.config.max_backoff = max;
        self
    }
    /// The longest `Retry-After` honoured; a longer one fails at once (default 60 s).
    pub fn max_retry_after(mut self, d: Duration) -> Self {
        self.config.max_retry_after = d;
        self
    }
    /// The `User-Agent` sent with every request.
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.config.user_agent = ua.into();
        self
    }
    /// Cap on a response body in bytes (default 32 MiB).
    pub fn max_response_bytes(mut self, n: usize) -> Self {
        self.config.max_response_bytes = n;
        self
    }
    /// Requests per second allowed to one host (default 10; 0 means unlimited).
    pub fn per_host_per_second(mut self, n: u32) -> Self {
        self.config.per_host_per_second = n;
        self
    }
    /// The SSRF policy for untrusted URLs.
    pub fn ssrf_policy(mut self, policy: SsrfPolicy) -> Self {
        self.config.ssrf = policy;
        self
    }
    /// Allow untrusted URLs to reach one more host (a local mirror, a test server).
    pub fn allow_host(mut self, host: impl Into<String>) -> Self {
        self.config.ssrf = self.config.ssrf.allow_host(host);
        self
    }

    /// Build the client.
    pub fn build(self) -> Result<HttpClient, HttpError> {
        let cfg = self.config;
        let trusted = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .read_timeout(cfg.read_timeout)
            .user_agent(cfg.user_agent.clone())
            .build()
            .map_err(|e| HttpError::Config(e.to_string()))?;
        // TODO(retrievers): guarded client with an address-checking resolver and redirect policy.
        let untrusted = trusted.clone();
        Ok(HttpClient {
            inner: Arc::new(Inner {
                cfg,
                trusted,
                untrusted,
            }),
        })
    }
}

#[derive(Debug)]
struct Inner {
    cfg: Config,
    trusted: reqwest::Client,
    untrusted: reqwest::Client,
}

/// The shared HTTP client: cheap to clone, safe to share between tasks.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

impl HttpClient {
    /// A builder with the defaults described on each of its setters.
    pub fn builder() -> HttpClientBuilder {
        HttpClientBuilder::default()
    }

    /// The underlying `reqwest` client for `trust`, for building requests.
    pub fn reqwest(&self, trust: Trust) -> &reqwest::Client {
        match trust {
            Trust::Trusted => &self.inner.trusted,
            Trust::Untrusted => &self.inner.untrusted,
        }
    }

    /// GET `url` and read the body, with retries, the size cap and (for untrusted URLs)
    /// the SSRF policy.
    pub async fn get(&self, url: &Url, trust: Trust) -> Result<HttpResponse, HttpError> {
        let u = url.clone();
        self.execute(trust, move |c| c.get(u.clone())).await
    }

    /// Send the request `make` builds, rebuilding it for each retry (so multipart and
    /// streaming bodies work), and read the body within the size cap.
    ///
    /// A non-success final status is [`HttpError::Status`].
    pub async fn execute<F>(&self, trust: Trust, make: F) -> Result<HttpResponse, HttpError>
    where
        F: Fn(&reqwest::Client) -> RequestBuilder + Send + Sync,
    {
        let client = self.reqwest(trust);
        let cfg = &self.inner.cfg;
        let req = make(client)
            .timeout(cfg.total_timeout)
            .build()
            .map_err(|e| HttpError::Config(e.to_string()))?;
        let url = redact(req.url());
        let resp = client.execute(req).await.map_err(|e| {
            if e.is_timeout() {
                HttpError::Timeout {
                    url: url.clone(),
                    after: cfg.total_timeout,
                }
            } else {
                HttpError::Transport {
                    url: url.clone(),
                    message: e.to_string(),
                }
            }
        })?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let final_url = resp.url().clone();
        let body = resp.bytes().await.map_err(|e| HttpError::Transport {
            url: url.clone(),
            message: e.to_string(),
        })?;
        if body.len() > cfg.max_response_bytes {
            return Err(HttpError::TooLarge {
                url,
                limit: cfg.max_response_bytes,
            });
        }
        if !status.is_success() {
            return Err(HttpError::Status {
                url,
                status,
                body: String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
                retry_after: None,
            });
        }
        Ok(HttpResponse {
            status,
            headers,
            url: final_url,
            body,
        })
    }
}
