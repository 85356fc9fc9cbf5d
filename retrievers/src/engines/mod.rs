//! The built-in search engines, one file each.

mod wikimedia;

pub use wikimedia::WikimediaCommons;

use std::sync::Arc;

use crate::{HttpClient, ImageSearch};

/// The keyless engines used when the caller names none, sharing `http`.
pub fn default_keyless(http: &HttpClient) -> Vec<Arc<dyn ImageSearch>> {
    vec![Arc::new(WikimediaCommons::new(http.clone()))]
}
