use serde::{Deserialize, Serialize};
use url::Url;

/// The licence an engine reports for an image; [`License::permissions`] reads what it
/// allows and [`crate::LicensePolicy`] decides whether a selection may use it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct License {
    /// Short licence code as the engine gives it, lower-cased: `cc-by-sa`, `cc0`, `pdm`, `by-nc` ...
    pub code: String,
    /// Licence version when known, such as `4.0`.
    pub version: Option<String>,
    /// Link to the licence deed, when known.
    pub url: Option<Url>,
}

/// One image found by a search engine, before anything has been downloaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Candidate {
    /// The full-size image.
    pub image_url: Url,
    /// A smaller rendition served by the engine or the host, when there is one.
    pub thumbnail_url: Option<Url>,
    /// The page the image appears on.
    pub source_page: Option<Url>,
    /// Title or caption text.
    pub title: Option<String>,
    /// Width in pixels of the full-size image, when the engine says.
    pub width: Option<u32>,
    /// Height in pixels of the full-size image, when the engine says.
    pub height: Option<u32>,
    /// MIME type, when the engine says (it is re-checked by sniffing after download).
    pub mime: Option<String>,
    /// Name of the engine that found it (`bing`, `duckduckgo`, `wikimedia`, ...).
    pub engine: String,
    /// Zero-based rank within that engine's answer to `query`.
    pub rank: u32,
    /// The query that found it.
    pub query: String,
    /// Licence, where the engine gives one.
    pub license: Option<License>,
    /// Author or creator, where the engine gives one.
    pub creator: Option<String>,
    /// Fused relevance score set by [`crate::MultiSearch`] (higher is better); 0 until fused.
    pub fused_score: f64,
}

impl Candidate {
    /// A candidate with only the required fields set.
    pub fn new(image_url: Url, engine: impl Into<String>, query: impl Into<String>) -> Self {
        Candidate {
            image_url,
            thumbnail_url: None,
            source_page: None,
            title: None,
            width: None,
            height: None,
            mime: None,
            engine: engine.into(),
            rank: 0,
            query: query.into(),
            license: None,
            creator: None,
            fused_score: 0.0,
        }
    }

    /// The URL to download for ranking: the thumbnail when there is one, else the original.
    pub fn preview_url(&self) -> &Url {
        self.thumbnail_url.as_ref().unwrap_or(&self.image_url)
    }
}
