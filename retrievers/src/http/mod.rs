//! The HTTP client every iat2i crate shares.
//!
//! Two kinds of request go through it:
//! * [`Trust::Trusted`]: endpoints the user configured (a model API, a search engine's
//!   base URL, a local Ollama or SearXNG). No address policy is applied, and redirects
//!   are followed only within the same host (keys in headers never go elsewhere).
//! * [`Trust::Untrusted`]: URLs that came from the internet (search results and their
//!   redirects). The [`SsrfPolicy`] is applied to the address actually connected to:
//!   the untrusted client resolves names through a resolver that only hands out allowed
//!   addresses, checks IP-literal hosts before sending, checks every redirect, and
//!   ignores system proxies (a proxy would resolve the name where we cannot check it).
//!
//! Paid requests (image generation, chat completions: anything that bills) go through
//! [`HttpClient::execute_paid`], which retries only when the request provably was not
//! processed (see [`Paid`]).
//!
//! Both get a per-attempt timeout plus connect and read timeouts, retries with jittered
//! exponential backoff on 429, 5xx and connection errors (honouring `Retry-After`), a
//! per-host rate limit and a cap on the response size enforced while streaming
//! (client-wide, and tighter for one request with [`HttpClient::get_limited`] or
//! [`HttpClient::execute_limited`]).

mod body;
mod error;
mod paid;
mod ssrf;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};
use url::Url;

pub use error::{HttpError, redact, scrub_secret};
pub use paid::Paid;
pub use ssrf::{SsrfPolicy, blocked_reason};

use body::{Failure, classify_send_error, read_capped, retry_after};

/// Whether a request goes to an endpoint the user configured or to a URL from the internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// An endpoint the user configured: no address policy.
    Trusted,
    /// A URL from outside (search results, redirects): the SSRF policy applies.
    Untrusted,
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

#[derive(Debug, Clone)]
struct Config {
    connect_timeout: Duration,
    read_timeout: Duration,
    total_timeout: Duration,
    max_retries: u32,
    min_backoff: Duration,
    max_backoff: Duration,
    max_retry_after: Duration,
    max_redirects: usize,
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
            max_redirects: 5,
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
    /// Redirects followed at most (default 5).
    pub fn max_redirects(mut self, n: usize) -> Self {
        self.config.max_redirects = n;
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
        let base = || {
            reqwest::Client::builder()
                .connect_timeout(cfg.connect_timeout)
                .read_timeout(cfg.read_timeout)
                .user_agent(cfg.user_agent.clone())
        };
        let trusted = base()
            .redirect(ssrf::same_host_redirects(cfg.max_redirects))
            .build()
            .map_err(|e| HttpError::Config(error::describe(e)))?;
        let policy = Arc::new(cfg.ssrf.clone());
        let untrusted = base()
            .no_proxy()
            .dns_resolver(Arc::new(ssrf::GuardedResolver {
                policy: Arc::clone(&policy),
            }))
            .redirect(ssrf::guarded_redirects(policy, cfg.max_redirects))
            .build()
            .map_err(|e| HttpError::Config(error::describe(e)))?;
        let limiter = NonZeroU32::new(cfg.per_host_per_second)
            .map(|n| RateLimiter::keyed(Quota::per_second(n)));
        Ok(HttpClient {
            inner: Arc::new(Inner {
                cfg,
                trusted,
                untrusted,
                limiter,
                requests: AtomicU64::new(0),
            }),
        })
    }
}

struct Inner {
    cfg: Config,
    trusted: reqwest::Client,
    untrusted: reqwest::Client,
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    requests: AtomicU64,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("config", &self.cfg)
            .finish_non_exhaustive()
    }
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
    ///
    /// Sending through it directly bypasses retries, the rate limit, the size cap and
    /// the IP-literal check; prefer [`HttpClient::execute`].
    pub fn reqwest(&self, trust: Trust) -> &reqwest::Client {
        match trust {
            Trust::Trusted => &self.inner.trusted,
            Trust::Untrusted => &self.inner.untrusted,
        }
    }

    /// The SSRF policy applied to untrusted requests.
    pub fn ssrf_policy(&self) -> &SsrfPolicy {
        &self.inner.cfg.ssrf
    }

    /// The response-size cap in bytes.
    pub fn max_response_bytes(&self) -> usize {
        self.inner.cfg.max_response_bytes
    }

    /// GET `url` and read the body, with retries, the size cap and (for untrusted URLs)
    /// the SSRF policy.
    pub async fn get(&self, url: &Url, trust: Trust) -> Result<HttpResponse, HttpError> {
        let u = url.clone();
        self.execute(trust, move |c| c.get(u.clone())).await
    }

    /// [`HttpClient::get`] with a tighter body cap for this one request: a body over
    /// `max_bytes` fails with [`HttpError::TooLarge`] as soon as it is declared or
    /// streamed past the cap, so it is never read whole. The client-wide cap still
    /// applies: the smaller of the two wins.
    pub async fn get_limited(
        &self,
        url: &Url,
        trust: Trust,
        max_bytes: usize,
    ) -> Result<HttpResponse, HttpError> {
        let u = url.clone();
        self.execute_limited(trust, max_bytes, move |c| c.get(u.clone()))
            .await
    }

    /// Send the request `make` builds, rebuilding it for each retry (so multipart and
    /// streaming bodies work), and read the body within the size cap.
    ///
    /// A non-success final status is [`HttpError::Status`]. 429, 5xx and connection
    /// errors are retried with jittered exponential backoff, waiting `Retry-After` when
    /// the server sends one; a `Retry-After` longer than the configured maximum fails
    /// at once with that status.
    pub async fn execute<F>(&self, trust: Trust, make: F) -> Result<HttpResponse, HttpError>
    where
        F: Fn(&reqwest::Client) -> RequestBuilder + Send + Sync,
    {
        self.execute_limited(trust, usize::MAX, make).await
    }

    /// [`HttpClient::execute`] with a body cap of `max_bytes` for this one request
    /// (the smaller of it and the client-wide cap applies), enforced while streaming.
    pub async fn execute_limited<F>(
        &self,
        trust: Trust,
        max_bytes: usize,
        make: F,
    ) -> Result<HttpResponse, HttpError>
    where
        F: Fn(&reqwest::Client) -> RequestBuilder + Send + Sync,
    {
        self.run(trust, max_bytes, None, make).await
    }

    /// The retry loop: every failure the ordinary policy retries is retried, unless
    /// `paid` is given, in which case [`paid::may_retry`] decides and a failure that
    /// may have been processed comes back as [`HttpError::NotRetried`].
    async fn run<F>(
        &self,
        trust: Trust,
        max_bytes: usize,
        paid: Option<&Paid>,
        make: F,
    ) -> Result<HttpResponse, HttpError>
    where
        F: Fn(&reqwest::Client) -> RequestBuilder + Send + Sync,
    {
        let cfg = &self.inner.cfg;
        let cap = max_bytes.min(cfg.max_response_bytes);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(cfg.min_backoff)
            .with_max_delay(cfg.max_backoff)
            .with_max_times(cfg.max_retries as usize)
            .with_jitter();
        let make = |c: &reqwest::Client| match paid {
            Some(p) => p.decorate(make(c)),
            None => make(c),
        };
        (|| self.attempt(trust, cap, &make))
            .retry(backoff)
            .when(|f: &Failure| match paid {
                Some(p) => paid::may_retry(p, f),
                None => f.retry,
            })
            .adjust(|f: &Failure, next: Option<Duration>| {
                next.map(|d| f.error.retry_after().unwrap_or(d))
            })
            .notify(|f: &Failure, wait: Duration| match paid {
                Some(_) => tracing::warn!(
                    error = %f.error,
                    ?wait,
                    "paid request provably not processed; retrying"
                ),
                None => tracing::debug!(error = %f.error, ?wait, "retrying HTTP request"),
            })
            .await
            .map_err(|f| match paid {
                Some(p) => paid::final_error(p, f),
                None => f.error,
            })
    }

    async fn attempt<F>(&self, trust: Trust, cap: usize, make: &F) -> Result<HttpResponse, Failure>
    where
        F: Fn(&reqwest::Client) -> RequestBuilder + Send + Sync,
    {
        let cfg = &self.inner.cfg;
        let client = self.reqwest(trust);
        let req = make(client)
            .timeout(cfg.total_timeout)
            .build()
            .map_err(|e| Failure::fatal(HttpError::Config(error::describe(e))))?;
        let url = req.url().clone();
        if trust == Trust::Untrusted {
            cfg.ssrf.check_url(&url).map_err(|reason| {
                Failure::fatal(HttpError::Refused {
                    url: redact(&url),
                    reason,
                })
            })?;
        }
        self.wait_for_host(&url).await;
        let exchange = async {
            let mut resp = client
                .execute(req)
                .await
                .map_err(|e| classify_send_error(e, &url, cfg.total_timeout))?;
            if trust == Trust::Untrusted {
                self.check_connected(&resp)?;
            }
            let status = resp.status();
            if !status.is_success() {
                return Err(self.status_failure(&mut resp).await);
            }
            let body = read_capped(&mut resp, cap, cfg.total_timeout).await?;
            Ok(HttpResponse {
                status,
                headers: resp.headers().clone(),
                url: resp.url().clone(),
                body,
            })
        };
        match tokio::time::timeout(cfg.total_timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(Failure::fatal(HttpError::Timeout {
                url: redact(&url),
                after: cfg.total_timeout,
            })),
        }
    }

    /// Re-check the address the response actually came from.
    fn check_connected(&self, resp: &reqwest::Response) -> Result<(), Failure> {
        let (Some(addr), Some(host)) = (resp.remote_addr(), resp.url().host_str()) else {
            return Ok(());
        };
        self.inner
            .cfg
            .ssrf
            .check_addr(host, addr.ip())
            .map_err(|reason| {
                Failure::fatal(HttpError::Refused {
                    url: redact(resp.url()),
                    reason,
                })
            })
    }

    async fn status_failure(&self, resp: &mut reqwest::Response) -> Failure {
        let cfg = &self.inner.cfg;
        let status = resp.status();
        let header_wait = retry_after(resp.headers());
        // Enough for a Google error with its QuotaFailure and RetryInfo details, which
        // come last and run past 4 KiB when pretty-printed.
        let snippet = body::snippet(resp, 16 * 1024).await;
        let retry_after =
            header_wait.or_else(|| body::rpc_retry_delay(&String::from_utf8_lossy(&snippet)));
        let too_long = retry_after.is_some_and(|d| d > cfg.max_retry_after);
        let retry =
            (status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()) && !too_long;
        Failure {
            error: HttpError::Status {
                url: redact(resp.url()),
                status,
                body: error::body_snippet(&snippet, resp.url()),
                retry_after,
            },
            retry,
            unsent: false,
        }
    }

    async fn wait_for_host(&self, url: &Url) {
        let Some(limiter) = &self.inner.limiter else {
            return;
        };
        let key = format!(
            "{}:{}",
            url.host_str().unwrap_or(""),
            url.port_or_known_default().unwrap_or(0)
        );
        limiter.until_key_ready(&key).await;
        let n = self.inner.requests.fetch_add(1, Ordering::Relaxed);
        if n % 1024 == 1023 {
            limiter.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests;
