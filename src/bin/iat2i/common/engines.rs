//! The search-engine options every example shares: which engines, their base URLs,
//! keys and User-Agents. Included by the examples with `#[path]`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use iat2i::retrievers::engines::{
    Bing, Brave, DuckDuckGo, LocalFolder, Openverse, Searxng, WikimediaCommons,
};
use iat2i::retrievers::{HttpClient, HttpClientBuilder, ImageSearch, LicensePolicy};
use url::Url;

/// A search engine to use.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Engine {
    /// Bing images (keyless; the engine the IA-T2I paper used).
    Bing,
    /// DuckDuckGo images (keyless).
    Duckduckgo,
    /// Wikimedia Commons (keyless; licensed).
    Wikimedia,
    /// Openverse (keyless; Creative Commons).
    Openverse,
    /// Your SearXNG instance (needs --searxng-url).
    Searxng,
    /// Brave Image Search API (needs --brave-key).
    Brave,
    /// A local folder of images (needs --folder).
    Local,
}

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
    /// The engines asked for, or the default set.
    pub fn chosen(&self) -> Vec<Engine> {
        if !self.engines.is_empty() {
            let mut e = self.engines.clone();
            e.dedup();
            return e;
        }
        let mut e = vec![
            Engine::Bing,
            Engine::Duckduckgo,
            Engine::Wikimedia,
            Engine::Openverse,
        ];
        if self.searxng_url.is_some() {
            e.push(Engine::Searxng);
        }
        if self.brave_key.is_some() {
            e.push(Engine::Brave);
        }
        if self.folder.is_some() {
            e.push(Engine::Local);
        }
        e
    }

    /// An HTTP client builder for the engines and the candidates they find, sending
    /// --user-agent when given and limited to --per-host-rate requests a second per host.
    pub fn http_builder(&self) -> HttpClientBuilder {
        let builder = HttpClient::builder().per_host_per_second(self.per_host_rate);
        match &self.user_agent {
            Some(ua) => builder.user_agent(ua.clone()),
            None => builder,
        }
    }

    /// Build every chosen engine on `http`.
    pub fn build_all(&self, http: &HttpClient) -> Result<Vec<Arc<dyn ImageSearch>>> {
        self.chosen()
            .into_iter()
            .map(|e| self.build(http, e))
            .collect()
    }

    fn build(&self, http: &HttpClient, engine: Engine) -> Result<Arc<dyn ImageSearch>> {
        let h = http.clone();
        let scrape_ua = self
            .scrape_user_agent
            .clone()
            .or_else(|| self.user_agent.clone());
        Ok(match engine {
            Engine::Bing => {
                let mut e = Bing::new(h);
                if let Some(u) = &self.bing_url {
                    e = e.with_base_url(u.clone());
                }
                if let Some(ua) = scrape_ua {
                    e = e.with_user_agent(ua);
                }
                Arc::new(e)
            }
            Engine::Duckduckgo => {
                let mut e = DuckDuckGo::new(h);
                if let Some(u) = &self.duckduckgo_url {
                    e = e.with_base_url(u.clone());
                }
                if let Some(ua) = scrape_ua {
                    e = e.with_user_agent(ua);
                }
                Arc::new(e)
            }
            Engine::Wikimedia => {
                let mut e = WikimediaCommons::new(h);
                if let Some(u) = &self.wikimedia_url {
                    e = e.with_base_url(u.clone());
                }
                if let Some(ua) = &self.user_agent {
                    e = e.with_user_agent(ua.clone());
                }
                Arc::new(e)
            }
            other => self.build_configured(h, other)?,
        })
    }

    /// The engines that need something from the user, and Openverse's optional token.
    fn build_configured(&self, h: HttpClient, engine: Engine) -> Result<Arc<dyn ImageSearch>> {
        Ok(match engine {
            Engine::Openverse => {
                let mut e = Openverse::new(h);
                if let Some(u) = &self.openverse_url {
                    e = e.with_base_url(u.clone());
                }
                if let Some(t) = &self.openverse_token {
                    e = e.with_token(t.clone());
                }
                Arc::new(e)
            }
            Engine::Searxng => {
                let url = self.searxng_url.clone().context(
                    "--engine searxng needs --searxng-url (or SEARXNG_URL), e.g. http://localhost:8888",
                )?;
                Arc::new(Searxng::new(h, url))
            }
            Engine::Brave => {
                let key = self.brave_key.clone().context(
                    "--engine brave needs --brave-key (or BRAVE_API_KEY); get one at https://brave.com/search/api/",
                )?;
                let e = Brave::new(h, key);
                Arc::new(match &self.brave_url {
                    Some(u) => e.with_base_url(u.clone()),
                    None => e,
                })
            }
            Engine::Local => {
                let dir = self
                    .folder
                    .clone()
                    .context("--engine local needs --folder DIR")?;
                if !dir.is_dir() {
                    bail!("--folder {} is not a folder", dir.display());
                }
                Arc::new(LocalFolder::new(dir))
            }
            _ => bail!("{engine:?} is built elsewhere"),
        })
    }
}
