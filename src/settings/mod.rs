//! Typed settings that build a whole pipeline: the chat endpoint and models, the run's
//! limits, the image generator, the search engines and the reference memory.
//!
//! The `iat2i` command, its configuration file (`iat2i.toml`), the `serve` service and a
//! Rust caller all build a pipeline through these, so one set of names means the same
//! everywhere: every field is a key of the same name (kebab-case) in a TOML table and a
//! flag of the same name on the command line.
//!
//! ```no_run
//! use iat2i::settings::{Backend, Settings};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut settings = Settings::default().with_env(); // OPENAI_API_KEY, GEMINI_API_KEY, ...
//! settings.chat.model = "gpt-4o-mini".into();
//! settings.generator.generator = Backend::Gemini;
//! settings.run.max_rounds = 2;
//! let pipeline = settings.pipeline_builder()?.build()?;
//! # let _ = pipeline; Ok(()) }
//! ```

mod engines;
mod generator;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use iat2i_selectors::{
    HierarchicalSelector, QdrantStore, SearchPolicy, SelectorConfig, StoreChoice,
};
use serde::Deserialize;

pub use engines::{Engine, EngineSettings};
pub use generator::{Backend, GeneratorSettings, parse_size};

use crate::lmm::{OPENAI_DEFAULT_BASE, model_http_client};
use crate::{GateMode, Lmm, OpenAiChat, PipelineBuilder, PipelineError, Secret};

/// A value read through its `FromStr`, so a file takes the same words as the flag
/// (`gate-mode = "from-prompt"`, `search-policy = "fewer-than:3"`).
pub(crate) fn from_str<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let text = String::deserialize(d)?;
    text.parse().map_err(serde::de::Error::custom)
}

/// Why settings could not become a pipeline. Every variant names the setting (by its
/// flag, which is also its configuration key) and says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// A setting that the chosen backend or engine needs is not set.
    #[error("{what}")]
    Missing {
        /// What is missing and how to set it.
        what: &'static str,
    },
    /// A setting has a value that cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// A file a setting names cannot be read.
    #[error("reading {}: {reason}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    Http(String),
    /// The image generator rejected its settings (a base URL that is not a URL, ...).
    #[error(transparent)]
    Generator(#[from] crate::ImageError),
    /// The chat client rejected its settings.
    #[error(transparent)]
    Chat(#[from] crate::LmmError),
    /// The pipeline rejected the whole (a selector setting out of range, ...).
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// The chat endpoint and models for the knowledge gate and the judges.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
#[non_exhaustive]
pub struct ChatSettings {
    /// Base URL of the OpenAI-compatible chat endpoint, ending in /v1.
    pub base_url: String,
    /// API key for the chat endpoint and the openai generator.
    pub api_key: Option<Secret>,
    /// Chat model for the gate and the judges (must accept images). Default gpt-4o-mini.
    pub model: String,
    /// Chat model for the gate only (default: `model`).
    pub gate_model: Option<String>,
    /// Chat model for the judges only (default: `model`).
    pub judge_model: Option<String>,
    /// Seconds allowed for one chat call (image calls get 2.5 times as long). Default 120.
    pub timeout: u64,
}

impl Default for ChatSettings {
    fn default() -> Self {
        ChatSettings {
            base_url: OPENAI_DEFAULT_BASE.to_string(),
            api_key: None,
            model: "gpt-4o-mini".to_string(),
            gate_model: None,
            judge_model: None,
            timeout: 120,
        }
    }
}

impl ChatSettings {
    /// Fill an unset key from `OPENAI_API_KEY`, and the default base URL from
    /// `OPENAI_BASE_URL`.
    pub fn with_env(mut self) -> Self {
        if self.api_key.is_none() {
            self.api_key = Secret::from_env("OPENAI_API_KEY");
        }
        if self.base_url == OPENAI_DEFAULT_BASE
            && let Ok(v) = std::env::var("OPENAI_BASE_URL")
            && !v.trim().is_empty()
        {
            self.base_url = v.trim().to_string();
        }
        self
    }

    /// Whether the endpoint is OpenAI's own (which needs a key).
    pub fn is_openai(&self) -> bool {
        self.base_url.trim().trim_end_matches('/') == OPENAI_DEFAULT_BASE
    }

    /// A chat client for `model` on this endpoint.
    pub fn client(&self, model: &str) -> Result<Arc<dyn Lmm>, SettingsError> {
        let http = model_http_client(Duration::from_secs(self.timeout))
            .map_err(|e| SettingsError::Http(e.to_string()))?;
        let mut c = OpenAiChat::new(http, &self.base_url, model)?;
        if let Some(k) = &self.api_key {
            c = c.with_api_key(k.clone());
        }
        Ok(Arc::new(c))
    }
}

/// How one run goes: when to search, how many rounds, in which languages, and what a run
/// must not lose.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
#[non_exhaustive]
pub struct RunSettings {
    /// At most this many generate-and-judge rounds, 1 to 20. Default 3.
    pub max_rounds: u32,
    /// When to search for a reference. Default from-prompt.
    #[serde(deserialize_with = "from_str")]
    pub gate_mode: GateMode,
    /// Languages to write search queries in. Default en.
    pub languages: Vec<String>,
    /// Fail when the run needs a reference and cannot get one.
    pub require_reference: bool,
    /// Fail when the judge cannot review an image.
    pub require_review: bool,
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            max_rounds: 3,
            gate_mode: GateMode::FromPrompt,
            languages: vec!["en".to_string()],
            require_reference: false,
            require_review: false,
        }
    }
}

/// The CLIP model and the reference memory.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
#[non_exhaustive]
pub struct MemorySettings {
    /// A local CLIP model directory (vision/ and text/ inside); default: CLIP ViT-B/32
    /// from the Hugging Face hub on first use.
    pub model_dir: Option<PathBuf>,
    /// The cache directory: the reference memory and downloaded models.
    pub cache_dir: Option<PathBuf>,
    /// A Qdrant server shared by every process (else qdrant-edge in the cache directory).
    pub qdrant_url: Option<String>,
    /// Turn the reference memory off.
    pub no_memory: bool,
    /// Fail when the reference memory cannot be used.
    pub require_memory: bool,
    /// Whether the web is searched when the memory can answer. Default always.
    #[serde(deserialize_with = "from_str")]
    pub search_policy: SearchPolicy,
}

impl MemorySettings {
    /// Fill what is unset from `IAT2I_CACHE_DIR` and `QDRANT_URL`.
    pub fn with_env(mut self) -> Self {
        let env = |var: &str| std::env::var(var).ok().filter(|v| !v.trim().is_empty());
        if self.cache_dir.is_none() {
            self.cache_dir = env("IAT2I_CACHE_DIR").map(PathBuf::from);
        }
        if self.qdrant_url.is_none() {
            self.qdrant_url = env("QDRANT_URL");
        }
        self
    }

    /// The selector settings: model, cache, store and memory policy, with the engines'
    /// licence policy and local folder.
    pub fn selector_config(
        &self,
        engines: &EngineSettings,
    ) -> Result<SelectorConfig, SettingsError> {
        let mut c = SelectorConfig::default().license_policy(engines.licence);
        if let Some(dir) = &self.model_dir {
            c = c.model_dir(dir);
        }
        if let Some(dir) = &self.cache_dir {
            c = c.cache_dir(dir);
        }
        if let Some(folder) = &engines.folder {
            c = c.allow_local_dir(folder);
        }
        if let Some(url) = &self.qdrant_url {
            let key = std::env::var("QDRANT_API_KEY")
                .ok()
                .filter(|k| !k.is_empty());
            let store = QdrantStore::new(url, key)
                .map_err(|e| SettingsError::Invalid(format!("qdrant-url {url}: {e}")))?;
            c = c.store(StoreChoice::Instance(Arc::new(store)));
        }
        c = c
            .require_memory(self.require_memory)
            .search_policy(self.search_policy);
        if self.no_memory {
            c = c.no_memory();
        }
        Ok(c)
    }
}

/// A selector shared by several pipelines, with the candidate judge inside it (whose
/// tokens each pipeline counts for its own runs).
#[derive(Clone)]
pub struct SharedSelector {
    /// The selector: one CLIP model, one memory.
    pub selector: Arc<HierarchicalSelector>,
    /// Its candidate judge.
    pub judge: crate::LmmCandidateJudge,
}

impl std::fmt::Debug for SharedSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedSelector").finish_non_exhaustive()
    }
}

/// Everything a pipeline is built from. Deserialises from a TOML or JSON table with the
/// sub-tables `chat`, `run`, `generator`, `engines` and `memory`; every key is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
#[non_exhaustive]
pub struct Settings {
    /// The chat endpoint and models.
    pub chat: ChatSettings,
    /// The run's limits.
    pub run: RunSettings,
    /// The image generator.
    pub generator: GeneratorSettings,
    /// The search engines.
    pub engines: EngineSettings,
    /// The CLIP model and the reference memory.
    pub memory: MemorySettings,
}

impl Settings {
    /// Fill every unset key, endpoint and directory from the environment variables the
    /// command documents (`OPENAI_API_KEY`, `OPENAI_BASE_URL`, `GEMINI_API_KEY`,
    /// `OPENROUTER_API_KEY`, `BRAVE_API_KEY`, `SEARXNG_URL`, `IAT2I_CACHE_DIR`,
    /// `QDRANT_URL`, ...). What is already set wins.
    pub fn with_env(mut self) -> Self {
        self.chat = self.chat.with_env();
        self.generator = self.generator.with_env();
        self.engines = self.engines.with_env();
        self.memory = self.memory.with_env();
        self
    }

    /// Whether a model endpoint is usable: a key, or an endpoint other than OpenAI's.
    pub fn has_model_endpoint(&self) -> bool {
        self.chat.api_key.is_some()
            || (!self.chat.is_openai() && !self.generator.uses_openai_at(&self.chat.base_url))
    }

    /// What these settings leave unusable, each naming its setting; empty when the
    /// settings can build a pipeline.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !(1..=20).contains(&self.run.max_rounds) {
            p.push(format!(
                "max-rounds {} is not from 1 to 20",
                self.run.max_rounds
            ));
        }
        if self.chat.timeout == 0 || self.chat.timeout > 3600 {
            p.push(format!(
                "timeout {} is not from 1 to 3600 seconds",
                self.chat.timeout
            ));
        }
        if self.chat.model.trim().is_empty() {
            p.push("model is empty".to_string());
        }
        if let Err(e) = self.generator.generation() {
            p.push(e.to_string());
        }
        p
    }

    /// A pipeline builder with everything these settings say: the chat clients, the
    /// generator and its per-round settings, the gate mode and limits, the engines on one
    /// HTTP client, and the selector. Add event callbacks or custom stages, then `build`.
    pub fn pipeline_builder(&self) -> Result<PipelineBuilder, SettingsError> {
        let (b, http) = self.stages()?;
        Ok(
            b.selector_config(self.memory.selector_config(&self.engines)?)
                .engines(self.engines.build_all(&http)?)
                .http(http),
        )
    }

    /// The selector these settings describe (the CLIP model, the reference memory, and
    /// the candidate judge on the judge model), to share among several pipelines of one
    /// process with [`Settings::pipeline_builder_sharing`]: one model load, one memory.
    pub fn selector(&self) -> Result<SharedSelector, SettingsError> {
        let http = self.engines.http_client()?;
        let judge_model = self
            .chat
            .judge_model
            .as_deref()
            .unwrap_or(self.chat.model.as_str());
        let judge = crate::LmmCandidateJudge::new(self.chat.client(judge_model)?);
        let selector = HierarchicalSelector::new(http, self.memory.selector_config(&self.engines)?)
            .with_judge(Arc::new(judge.clone()));
        Ok(SharedSelector {
            selector: Arc::new(selector),
            judge,
        })
    }

    /// Like [`Settings::pipeline_builder`], with `shared` (from [`Settings::selector`])
    /// instead of a selector of its own; its candidate judge's tokens are counted per run
    /// (in the report, and by the run's guard).
    pub fn pipeline_builder_sharing(
        &self,
        shared: &SharedSelector,
    ) -> Result<PipelineBuilder, SettingsError> {
        let (b, http) = self.stages()?;
        Ok(b.selector(shared.selector.clone())
            .selector_judge(shared.judge.clone())
            .engines(self.engines.build_all(&http)?)
            .http(http))
    }

    /// Everything but the selector and the engines, and the engines' HTTP client.
    fn stages(&self) -> Result<(PipelineBuilder, iat2i_retrievers::HttpClient), SettingsError> {
        if let Some(problem) = self.problems().into_iter().next() {
            return Err(SettingsError::Invalid(problem));
        }
        let image_timeout = Duration::from_secs(self.chat.timeout.saturating_mul(5) / 2);
        let images = self.generator.build(
            image_timeout,
            &self.chat.base_url,
            self.chat.api_key.as_ref(),
        )?;
        let mut b = crate::Pipeline::builder()
            .lmm(self.chat.client(&self.chat.model)?)
            .generator(images)
            .generation(self.generator.generation()?)
            .gate_mode(self.run.gate_mode)
            .max_rounds(self.run.max_rounds)
            .query_languages(self.run.languages.clone())
            .require_reference(self.run.require_reference)
            .require_review(self.run.require_review);
        if let Some(m) = &self.chat.gate_model {
            b = b.gate_lmm(self.chat.client(m)?);
        }
        if let Some(m) = &self.chat.judge_model {
            let judge = self.chat.client(m)?;
            b = b.judge_lmm(judge.clone()).candidate_judge_lmm(judge);
        }
        let http = self.engines.http_client()?;
        Ok((b, http))
    }

    /// Parse settings from TOML text (the `iat2i serve --config` file's `[pipeline]`
    /// table, or a file of its own). Unknown keys are errors naming them.
    #[cfg(feature = "batch")]
    pub fn from_toml(text: &str) -> Result<Self, SettingsError> {
        toml::from_str(text).map_err(|e| SettingsError::Invalid(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_and_backend_names_parse_and_reject() {
        assert_eq!("duckduckgo".parse::<Engine>(), Ok(Engine::Duckduckgo));
        assert!(
            "altavista"
                .parse::<Engine>()
                .unwrap_err()
                .contains("unknown engine")
        );
        assert_eq!("chat-images".parse::<Backend>(), Ok(Backend::ChatImages));
        assert!("dalle".parse::<Backend>().is_err());
    }

    #[test]
    fn defaults_pick_the_keyless_engines_and_openai() {
        let s = Settings::default();
        assert_eq!(s.engines.chosen().len(), 4);
        assert_eq!(s.generator.model(), "gpt-image-1");
        assert_eq!(s.run.max_rounds, 3);
        assert!(s.problems().is_empty());
    }

    #[cfg(feature = "batch")]
    #[test]
    fn toml_tables_fill_the_sections_and_unknown_keys_fail() {
        let s = Settings::from_toml(
            r#"
            [chat]
            model = "gpt-4.1-mini"
            api-key = "sk-test"
            [run]
            max-rounds = 2
            gate-mode = "always"
            [generator]
            generator = "gemini"
            images-per-round = 2
            [engines]
            engines = ["wikimedia", "openverse"]
            per-host-rate = 0
            "#,
        )
        .unwrap();
        assert_eq!(s.chat.model, "gpt-4.1-mini");
        assert_eq!(s.chat.api_key.as_ref().map(Secret::expose), Some("sk-test"));
        assert_eq!(s.run.max_rounds, 2);
        assert_eq!(s.run.gate_mode, GateMode::Always);
        assert_eq!(s.generator.generator, Backend::Gemini);
        assert_eq!(s.generator.model(), "gemini-2.5-flash-image");
        assert_eq!(
            s.engines.chosen(),
            vec![Engine::Wikimedia, Engine::Openverse]
        );
        let err = Settings::from_toml("[run]\nmax-round = 2\n").unwrap_err();
        assert!(err.to_string().contains("max-round"), "{err}");
    }

    #[test]
    fn out_of_range_settings_are_named_before_anything_is_built() {
        let mut s = Settings::default();
        s.run.max_rounds = 0;
        s.generator.images_per_round = 11;
        let p = s.problems();
        assert!(p.iter().any(|m| m.contains("max-rounds")), "{p:?}");
        assert!(p.iter().any(|m| m.contains("images-per-round")), "{p:?}");
        assert!(matches!(
            s.pipeline_builder(),
            Err(SettingsError::Invalid(_))
        ));
    }

    #[test]
    fn a_missing_engine_key_names_the_setting() {
        let mut s = Settings::default();
        s.engines.engines = vec![Engine::Brave];
        let http = s.engines.http_client().unwrap();
        let err = s
            .engines
            .build_all(&http)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("--brave-key"), "{err}");
    }
}
