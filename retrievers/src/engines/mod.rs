//! The built-in search engines, one file each.
//!
//! Engine API calls to the configured base URL's origin are sent as
//! [`crate::Trust::Trusted`]; a page URL taken from a response and pointing elsewhere
//! (DuckDuckGo's `next`) is fetched as [`crate::Trust::Untrusted`]. The image URLs the
//! engines return are untrusted and are fetched later, under the SSRF policy, by the
//! selectors.

mod bing;
mod brave;
mod duckduckgo;
mod endpoint;
mod local;
mod openverse;
mod paging;
mod searxng;
mod util;
mod wikimedia;

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
