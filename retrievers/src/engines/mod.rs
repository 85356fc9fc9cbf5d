//! The built-in search engines, one file each.
//!
//! Engine API calls to the configured base URL's origin are sent as
//! [`crate::Trust::Trusted`]; a page URL taken from a response and pointing elsewhere
//! (DuckDuckGo's `next`) is fetched as [`crate::Trust::Untrusted`]. The image URLs the
//! engines return are untrusted and are fetched later, under the SSRF policy, by the
//! selectors.

pub(crate) mod bing;
pub(crate) mod brave;
pub(crate) mod duckduckgo;
mod endpoint;
pub(crate) mod local;
pub(crate) mod openverse;
mod paging;
pub(crate) mod searxng;
mod util;
pub(crate) mod wikimedia;

#[cfg(test)]
mod proptests;

pub use bing::Bing;
pub use brave::Brave;
pub use duckduckgo::DuckDuckGo;
pub use local::LocalFolder;
pub use openverse::Openverse;
pub use searxng::Searxng;
pub use wikimedia::WikimediaCommons;

use std::sync::Arc;

use crate::{HttpClient, ImageSearch};

/// The keyless engines used when the caller names none, sharing `http`:
/// Bing, DuckDuckGo, Wikimedia Commons and Openverse.
pub fn default_keyless(http: &HttpClient) -> Vec<Arc<dyn ImageSearch>> {
    vec![
        Arc::new(Bing::new(http.clone())),
        Arc::new(DuckDuckGo::new(http.clone())),
        Arc::new(WikimediaCommons::new(http.clone())),
        Arc::new(Openverse::new(http.clone())),
    ]
}
