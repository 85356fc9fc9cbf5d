use async_trait::async_trait;

use crate::{Candidate, HttpClient, ImageSearch, SearchError, SearchQuery};

/// Wikimedia Commons through the MediaWiki API (keyless, licensed images).
#[derive(Debug, Clone)]
pub struct WikimediaCommons {
    #[allow(dead_code)]
    http: HttpClient,
}

impl WikimediaCommons {
    /// Search `https://commons.wikimedia.org/w/api.php` with `http`.
    pub fn new(http: HttpClient) -> Self {
        WikimediaCommons { http }
    }
}

#[async_trait]
impl ImageSearch for WikimediaCommons {
    fn name(&self) -> &str {
        "wikimedia"
    }

    async fn search(
        &self,
        _query: &str,
        _opts: &SearchQuery,
    ) -> Result<Vec<Candidate>, SearchError> {
        // TODO(retrievers): real implementation.
        Ok(Vec::new())
    }
}
