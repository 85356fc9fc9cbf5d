use crate::http::HttpError;

/// What went wrong while searching one engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SearchError {
    /// The HTTP exchange failed (timeout, refused address, status, size cap ...).
    #[error("{engine}: {source}")]
    Http {
        /// Engine name.
        engine: String,
        /// The underlying error.
        #[source]
        source: HttpError,
    },
    /// The engine answered, but not in the shape we know: the page or API changed,
    /// or a consent/CAPTCHA page was served instead of results.
    #[error("{engine}: unexpected response: {detail}")]
    Parse {
        /// Engine name.
        engine: String,
        /// What was wrong with it.
        detail: String,
    },
    /// The engine refused us in a way retrying will not fix (blocked, CAPTCHA, disabled API).
    #[error("{engine}: {detail}")]
    Blocked {
        /// Engine name.
        engine: String,
        /// What happened and what to do.
        detail: String,
    },
    /// The engine is misconfigured (missing key, bad base URL ...).
    #[error("{engine}: configuration: {detail}")]
    Config {
        /// Engine name.
        engine: String,
        /// What to set.
        detail: String,
    },
    /// Building the HTTP client failed.
    #[error("http client: {0}")]
    Client(#[from] HttpError),
}
