//! Which search engines to ask, and how to reach them.

use std::path::PathBuf;
use std::sync::Arc;

use iat2i_retrievers::engines::{
    Bing, Brave, DuckDuckGo, LocalFolder, Openverse, Searxng, WikimediaCommons,
};
use iat2i_retrievers::{HttpClient, HttpClientBuilder, ImageSearch, LicensePolicy};
use serde::Deserialize;
use url::Url;

use super::SettingsError;
use crate::Secret;

/// A search engine, by the name the command line and the configuration file use.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Engine {
    /// Bing images (keyless; the engine the IA-T2I paper used).
    Bing,
    /// DuckDuckGo images (keyless).
    Duckduckgo,
    /// Wikimedia Commons (keyless; licensed).
    Wikimedia,
    /// Openverse (keyless; Creative Commons).
    Openverse,
    /// Your SearXNG instance (needs `searxng-url`).
    Searxng,
    /// Brave Image Search API (needs `brave-key`).
    Brave,
    /// A local folder of images (needs `folder`).
    Local,
}

impl std::str::FromStr for Engine {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "bing" => Engine::Bing,
            "duckduckgo" | "ddg" => Engine::Duckduckgo,
            "wikimedia" | "wikimedia-commons" => Engine::Wikimedia,
            "openverse" => Engine::Openverse,
            "searxng" => Engine::Searxng,
            "brave" => Engine::Brave,
            "local" => Engine::Local,
            other => {
                return Err(format!(
                    "unknown engine {other:?}: use bing, duckduckgo, wikimedia, openverse, \
                     searxng, brave or local"
                ));
            }
        })
    }
}

/// Which engines to search, their endpoints, keys, User-Agents and politeness.
///
/// Every field has the key of the same name (kebab-case) in a configuration file, and
/// the flag of the same name on the command line.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
#[non_exhaustive]
pub struct EngineSettings {
    /// The engines; empty means the default set ([`EngineSettings::chosen`]).
    #[serde(alias = "engine")]
    pub engines: Vec<Engine>,
    /// Your SearXNG instance (it must allow JSON output).
    pub searxng_url: Option<Url>,
    /// Brave Image Search API key.
    pub brave_key: Option<Secret>,
    /// Openverse access token (optional; raises the rate limit).
    pub openverse_token: Option<Secret>,
    /// A folder of images to search offline.
    pub folder: Option<PathBuf>,
    /// Base URL for Bing (a proxy or a test server).
    pub bing_url: Option<Url>,
    /// Base URL for DuckDuckGo.
    pub duckduckgo_url: Option<Url>,
    /// Site root for Wikimedia Commons.
    pub wikimedia_url: Option<Url>,
    /// Base URL for the Openverse API.
    pub openverse_url: Option<Url>,
    /// Base URL for the Brave Search API.
    pub brave_url: Option<Url>,
    /// User-Agent for the engines and downloads.
    pub user_agent: Option<String>,
    /// User-Agent for the scraped engines only (Bing, DuckDuckGo).
    pub scrape_user_agent: Option<String>,
    /// Requests per second allowed to any one host (0: no limit). Default 10.
    pub per_host_rate: u32,
    /// Which licences a reference may have. Default: any.
    #[serde(alias = "license", deserialize_with = "super::from_str")]
    pub licence: LicensePolicy,
    /// Hosts that downloads may reach even when private or local (a mirror, a test server).
    #[serde(alias = "allow-host")]
    pub allow_hosts: Vec<String>,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            engines: Vec::new(),
            searxng_url: None,
            brave_key: None,
            openverse_token: None,
            folder: None,
            bing_url: None,
            duckduckgo_url: None,
            wikimedia_url: None,
            openverse_url: None,
            brave_url: None,
            user_agent: None,
            scrape_user_agent: None,
            per_host_rate: 10,
            licence: LicensePolicy::Any,
            allow_hosts: Vec::new(),
        }
    }
}

impl EngineSettings {
    /// The engines asked for, or the default set: Bing, DuckDuckGo, Wikimedia and
    /// Openverse (no key needed), plus SearXNG, Brave and the local folder when their URL,
    /// key or folder is set.
    pub fn chosen(&self) -> Vec<Engine> {
        if !self.engines.is_empty() {
            let mut seen = Vec::new();
            for e in &self.engines {
                if !seen.contains(e) {
                    seen.push(*e);
                }
            }
            return seen;
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

    /// Fill what is unset from `SEARXNG_URL`, `BRAVE_API_KEY` and `OPENVERSE_TOKEN`.
    pub fn with_env(mut self) -> Self {
        if self.searxng_url.is_none() {
            self.searxng_url = std::env::var("SEARXNG_URL")
                .ok()
                .and_then(|u| Url::parse(u.trim()).ok());
        }
        if self.brave_key.is_none() {
            self.brave_key = Secret::from_env("BRAVE_API_KEY");
        }
        if self.openverse_token.is_none() {
            self.openverse_token = Secret::from_env("OPENVERSE_TOKEN");
        }
        self
    }

    /// An HTTP client builder for the engines and the candidates they find: the
    /// User-Agent, the per-host rate and every allowed private host.
    pub fn http_builder(&self) -> HttpClientBuilder {
        let mut builder = HttpClient::builder().per_host_per_second(self.per_host_rate);
        if let Some(ua) = &self.user_agent {
            builder = builder.user_agent(ua.clone());
        }
        for host in &self.allow_hosts {
            builder = builder.allow_host(host);
        }
        builder
    }

    /// The HTTP client [`EngineSettings::http_builder`] describes.
    pub fn http_client(&self) -> Result<HttpClient, SettingsError> {
        self.http_builder()
            .build()
            .map_err(|e| SettingsError::Http(e.to_string()))
    }

    /// Every chosen engine, built on `http`. An engine that needs a URL, key or folder
    /// that is not set is an error naming the setting.
    pub fn build_all(&self, http: &HttpClient) -> Result<Vec<Arc<dyn ImageSearch>>, SettingsError> {
        self.chosen()
            .into_iter()
            .map(|e| self.build(http, e))
            .collect()
    }

    /// One engine, built on `http`.
    pub fn build(
        &self,
        http: &HttpClient,
        engine: Engine,
    ) -> Result<Arc<dyn ImageSearch>, SettingsError> {
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
            Engine::Openverse => {
                let mut e = Openverse::new(h);
                if let Some(u) = &self.openverse_url {
                    e = e.with_base_url(u.clone());
                }
                if let Some(t) = &self.openverse_token {
                    e = e.with_token(t.expose().to_string());
                }
                Arc::new(e)
            }
            Engine::Searxng => {
                let url = self.searxng_url.clone().ok_or(SettingsError::Missing {
                    what: "--engine searxng needs --searxng-url (or SEARXNG_URL), e.g. http://localhost:8888",
                })?;
                Arc::new(Searxng::new(h, url))
            }
            Engine::Brave => {
                let key = self.brave_key.clone().ok_or(SettingsError::Missing {
                    what: "--engine brave needs --brave-key (or BRAVE_API_KEY); get one at https://brave.com/search/api/",
                })?;
                let e = Brave::new(h, key.expose().to_string());
                Arc::new(match &self.brave_url {
                    Some(u) => e.with_base_url(u.clone()),
                    None => e,
                })
            }
            Engine::Local => {
                let dir = self.folder.clone().ok_or(SettingsError::Missing {
                    what: "--engine local needs --folder DIR",
                })?;
                if !dir.is_dir() {
                    return Err(SettingsError::Invalid(format!(
                        "--folder {} is not a folder",
                        dir.display()
                    )));
                }
                Arc::new(LocalFolder::new(dir))
            }
        })
    }
}
