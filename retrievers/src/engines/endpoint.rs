//! Where an engine sends its requests, with which headers, and what its error
//! statuses mean.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use url::Url;

use super::util::{endpoint, http_error};
use crate::{HttpClient, HttpError, HttpResponse, SearchError, Trust};

/// What an error status from one engine means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Means {
    /// The engine refuses us (bot check, rate limit, disabled output): [`SearchError::Blocked`].
    Blocked,
    /// Our key or token is wrong: [`SearchError::Config`].
    Config,
}

/// Statuses that mean more than "the request failed" for one engine, and what to do.
#[derive(Debug)]
pub(crate) struct StatusHint {
    /// The statuses.
    pub(crate) codes: &'static [u16],
    /// Which error they become.
    pub(crate) means: Means,
    /// What the user should do, appended to the HTTP error.
    pub(crate) hint: &'static str,
}

/// One engine's API or site: the shared client, the base URL (the user's, or the
/// engine's default), an optional User-Agent of its own, and its status hints.
///
/// Every request is a GET. A URL on the base URL's origin (scheme, host, port) is sent
/// as [`Trust::Trusted`]: the user configured it. Any other URL (one taken from a
/// response, such as DuckDuckGo's `next` link) is sent as [`Trust::Untrusted`], under
/// the SSRF policy, and without the headers marked sensitive (keys, tokens).
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    engine: &'static str,
    http: HttpClient,
    base: Option<Url>,
    default_base: Option<&'static str>,
    user_agent: Option<String>,
    hints: &'static [StatusHint],
}

impl Endpoint {
    /// `engine` at `default_base` unless the user sets another base URL.
    pub(crate) fn new(engine: &'static str, http: HttpClient, default_base: &'static str) -> Self {
        Endpoint {
            engine,
            http,
            base: None,
            default_base: Some(default_base),
            user_agent: None,
            hints: &[],
        }
    }

    /// `engine` at `base`, which has no default (a self-hosted instance).
    pub(crate) fn at(engine: &'static str, http: HttpClient, base: Url) -> Self {
        Endpoint {
            base: Some(base),
            default_base: None,
            ..Endpoint::new(engine, http, "")
        }
    }

    /// The engine's name.
    pub(crate) fn engine(&self) -> &'static str {
        self.engine
    }

    /// Map these statuses to the errors they mean for this engine.
    pub(crate) fn with_hints(mut self, hints: &'static [StatusHint]) -> Self {
        self.hints = hints;
        self
    }

    /// Send requests to `base` instead.
    pub(crate) fn set_base(&mut self, base: Url) {
        self.base = Some(base);
    }

    /// Send `ua` as the User-Agent instead of the client's.
    pub(crate) fn set_user_agent(&mut self, ua: String) {
        self.user_agent = Some(ua);
    }

    /// The base URL in use.
    pub(crate) fn base(&self) -> Result<Url, SearchError> {
        match (&self.base, self.default_base) {
            (Some(u), _) => Ok(u.clone()),
            (None, Some(d)) => Url::parse(d)
                .map_err(|e| self.config(format!("default base URL {d} is invalid: {e}"))),
            (None, None) => Err(self.config("no base URL is set".to_string())),
        }
    }

    /// `path` below the base URL (see [`endpoint`]).
    pub(crate) fn url(&self, path: &str) -> Result<Url, SearchError> {
        endpoint(self.engine, &self.base()?, path)
    }

    /// How far `url` is trusted: [`Trust::Trusted`] on the base URL's origin, else
    /// [`Trust::Untrusted`].
    pub(crate) fn trust(&self, url: &Url) -> Trust {
        match self.base() {
            Ok(base) if base.origin() == url.origin() => Trust::Trusted,
            _ => Trust::Untrusted,
        }
    }

    /// GET `url` with `headers` (plus this engine's User-Agent, when it has one), with
    /// the client's retries and caps, mapping failures to this engine's errors. A URL
    /// off the base URL's origin is fetched as untrusted, without sensitive headers.
    pub(crate) async fn get(
        &self,
        url: &Url,
        mut headers: HeaderMap,
    ) -> Result<HttpResponse, SearchError> {
        if let Some(ua) = &self.user_agent {
            headers.insert(USER_AGENT, self.header(&USER_AGENT, ua, false)?);
        }
        let trust = self.trust(url);
        if trust == Trust::Untrusted {
            headers = headers
                .iter()
                .filter(|(_, v)| !v.is_sensitive())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
        }
        let u = url.clone();
        self.http
            .execute(trust, move |c| c.get(u.clone()).headers(headers.clone()))
            .await
            .map_err(|e| self.map_error(e))
    }

    /// A header value, or a configuration error naming the header but never showing
    /// the value; `secret` values are also hidden from `Debug`.
    pub(crate) fn header(
        &self,
        name: &HeaderName,
        value: &str,
        secret: bool,
    ) -> Result<HeaderValue, SearchError> {
        let mut v = HeaderValue::from_str(value).map_err(|_| {
            self.config(format!(
                "the {name} value has characters an HTTP header cannot carry (a line break, a control character?)"
            ))
        })?;
        v.set_sensitive(secret);
        Ok(v)
    }

    fn map_error(&self, e: HttpError) -> SearchError {
        let code = e.status().map(|s| s.as_u16());
        let Some(h) = self
            .hints
            .iter()
            .find(|h| code.is_some_and(|c| h.codes.contains(&c)))
        else {
            return http_error(self.engine, e);
        };
        let detail = format!("{e}; {}", h.hint);
        let engine = self.engine.to_string();
        match h.means {
            Means::Blocked => SearchError::Blocked { engine, detail },
            Means::Config => SearchError::Config { engine, detail },
        }
    }

    fn config(&self, detail: String) -> SearchError {
        SearchError::Config {
            engine: self.engine.to_string(),
            detail,
        }
    }
}
