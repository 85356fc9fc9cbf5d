//! Web image search for iat2i, and the hardened HTTP client every iat2i crate shares.
//!
//! * [`ImageSearch`] is one engine: a query in, ranked [`Candidate`]s out.
//! * [`MultiSearch`] fans several queries out over several engines, fuses the ranked
//!   lists by reciprocal rank fusion and removes duplicates.
//! * [`HttpClient`] wraps `reqwest` with timeouts, retries, per-host rate limits, a
//!   response-size cap and an SSRF policy for URLs that come from the internet.
//!
//! ```no_run
//! use std::sync::Arc;
//! use iat2i_retrievers::{HttpClient, ImageSearch, MultiSearch, SearchQuery};
//! use iat2i_retrievers::engines::WikimediaCommons;
//!
//! # async fn run() -> Result<(), iat2i_retrievers::SearchError> {
//! let http = HttpClient::builder().build()?;
//! let commons: Arc<dyn ImageSearch> = Arc::new(WikimediaCommons::new(http.clone()));
//! let multi = MultiSearch::new(vec![commons]);
//! let found = multi.search(&["Xenopus laevis".to_string()], &SearchQuery::default()).await;
//! for c in &found.candidates {
//!     println!("{} {}", c.engine, c.image_url);
//! }
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod candidate;
pub mod engines;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
mod license;
mod multi;
mod search;

pub use candidate::{Candidate, License};
pub use error::SearchError;
pub use http::{HttpClient, HttpClientBuilder, HttpError, HttpResponse, Paid, SsrfPolicy, Trust};
pub use license::{LicensePolicy, Permissions, UnknownLicensePolicy};
pub use multi::{EngineRun, MultiSearch, MultiSearchResult, normalize_url};
pub use search::{ImageSearch, SearchQuery};
