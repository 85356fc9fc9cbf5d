//! The search-engine options every example shares: which engines, their base URLs,
//! keys and User-Agents: flags for [`iat2i::settings::EngineSettings`], which builds them.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use iat2i::Secret;
use iat2i::retrievers::{HttpClient, HttpClientBuilder, ImageSearch, LicensePolicy};
pub use iat2i::settings::Engine;
use iat2i::settings::EngineSettings;
use url::Url;

/// Which engines to search and how to reach them.
#[derive(clap::Args, Debug, Clone, Default)]
#[command(next_help_heading = "Search engines")]
pub struct EngineArgs {
    /// An engine to search; repeat or separate with commas. Default: bing, duckduckgo,
    /// wikimedia and openverse (no key needed), plus searxng, brave and local when
    /// their URL, key or folder is given.
    #[arg(long = "engine", alias = "engines", value_enum, value_delimiter = ',')]
    pub engines: Vec<Engine>,
    /// Your SearXNG instance, e.g. http://localhost:8888 (it must allow JSON output).
    #[arg(long, env = "SEARXNG_URL")]
    pub searxng_url: Option<Url>,
    /// Brave Image Search API key.
    #[arg(long, env = "BRAVE_API_KEY", hide_env_values = true)]
    pub brave_key: Option<String>,
    /// Openverse access token (optional; raises the rate limit).
    #[arg(long, env = "OPENVERSE_TOKEN", hide_env_values = true)]
    pub openverse_token: Option<String>,
    /// A folder of images (with optional .txt/.json captions) to search offline.
    #[arg(long)]
    pub folder: Option<PathBuf>,
    /// Base URL for Bing (a proxy or a test server).
    #[arg(long, value_name = "URL")]
    pub bing_url: Option<Url>,
    /// Base URL for DuckDuckGo.
    #[arg(long, value_name = "URL")]
    pub duckduckgo_url: Option<Url>,
    /// Site root for Wikimedia Commons (the API is at w/api.php below it).
    #[arg(long, value_name = "URL")]
    pub wikimedia_url: Option<Url>,
    /// Base URL for the Openverse API.
    #[arg(long, value_name = "URL")]
    pub openverse_url: Option<Url>,
    /// Base URL for the Brave Search API.
    #[arg(long, value_name = "URL")]
    pub brave_url: Option<Url>,
    /// User-Agent for the engines (Wikimedia asks for one with a way to contact you).
    #[arg(long)]
    pub user_agent: Option<String>,
    /// User-Agent for the scraped engines only (Bing, DuckDuckGo), such as a browser's;
    /// defaults to --user-agent, else the client's.
    #[arg(long, value_name = "UA")]
    pub scrape_user_agent: Option<String>,
    /// Requests per second allowed to any one host, so that many images from one site do
    /// not hammer it (0: no limit, for a local mirror or a test server that stands in for
    /// many hosts).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub per_host_rate: u32,
    /// Which licences an image may have: any; commercial-use (no NC);
    /// commercial-and-derivatives (no NC, no ND: for images you publish commercially);
    /// public-domain-only (CC0, public-domain marks). A missing or unknown licence
    /// passes only `any`.
    #[arg(
        long = "licence",
        alias = "license",
        value_name = "POLICY",
        default_value = "any"
    )]
    pub licence: LicensePolicy,
}

impl EngineArgs {
    /// The library's engine settings these flags say.
    pub fn settings(&self) -> EngineSettings {
        let mut s = EngineSettings::default();
        s.engines = self.engines.clone();
        s.searxng_url = self.searxng_url.clone();
        s.brave_key = self.brave_key.clone().map(Secret::new);
        s.openverse_token = self.openverse_token.clone().map(Secret::new);
        s.folder = self.folder.clone();
        s.bing_url = self.bing_url.clone();
        s.duckduckgo_url = self.duckduckgo_url.clone();
        s.wikimedia_url = self.wikimedia_url.clone();
        s.openverse_url = self.openverse_url.clone();
        s.brave_url = self.brave_url.clone();
        s.user_agent = self.user_agent.clone();
        s.scrape_user_agent = self.scrape_user_agent.clone();
        s.per_host_rate = self.per_host_rate;
        s.licence = self.licence;
        s
    }

    /// An HTTP client builder for the engines and the candidates they find, sending
    /// --user-agent when given and limited to --per-host-rate requests a second per host.
    pub fn http_builder(&self) -> HttpClientBuilder {
        self.settings().http_builder()
    }

    /// Build every chosen engine on `http`.
    pub fn build_all(&self, http: &HttpClient) -> Result<Vec<Arc<dyn ImageSearch>>> {
        Ok(self.settings().build_all(http)?)
    }
}
