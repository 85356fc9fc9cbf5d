//! The built-in search engines, one file each.
//!
//! Engine API calls are sent as [`crate::Trust::Trusted`] (their base URLs are
//! configured by the user); the image URLs they return are untrusted and are fetched
//! later, under the SSRF policy, by the selectors.

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
