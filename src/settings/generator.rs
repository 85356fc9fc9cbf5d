//! Which image backend draws, its endpoint, key and model, and what every round asks of it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::SettingsError;
use crate::Secret;
use crate::generator::comfyui::{ComfyUi, Workflow};
use crate::generator::{
    COMFYUI_DEFAULT_BASE, ChatImages, GEMINI_DEFAULT_BASE, GeminiImages, GenerationSettings,
    Generator, ImageSize, OPENROUTER_DEFAULT_BASE, OpenAiImages,
};
use crate::lmm::model_http_client;

/// An image backend, by the name the command line and the configuration file use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Backend {
    /// OpenAI Images API (or a server speaking it): OPENAI_API_KEY.
    #[default]
    Openai,
    /// Gemini image models: GEMINI_API_KEY (or GOOGLE_API_KEY).
    Gemini,
    /// A self-hosted ComfyUI running a workflow.
    Comfyui,
    /// Chat-completions image models (OpenRouter and gateways): OPENROUTER_API_KEY.
    ChatImages,
}

impl Backend {
    /// The model a backend uses when none is named (ComfyUI's is in its workflow).
    pub fn default_model(self) -> &'static str {
        match self {
            Backend::Openai => "gpt-image-1",
            Backend::Gemini => "gemini-2.5-flash-image",
            Backend::ChatImages => "google/gemini-2.5-flash-image",
            Backend::Comfyui => "workflow",
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "openai" => Backend::Openai,
            "gemini" => Backend::Gemini,
            "comfyui" => Backend::Comfyui,
            "chat-images" | "chat_images" => Backend::ChatImages,
            other => {
                return Err(format!(
                    "unknown generator {other:?}: use openai, gemini, comfyui or chat-images"
                ));
            }
        })
    }
}

/// The image generator: backend, endpoints, keys, workflows, and the settings every
/// round sends (size, quality, seed, negative prompt, images per round).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
#[non_exhaustive]
pub struct GeneratorSettings {
    /// The backend (default openai).
    pub generator: Backend,
    /// The image model (default: [`Backend::default_model`]).
    pub image_model: Option<String>,
    /// OpenAI Images base URL (default: the chat endpoint's).
    pub image_base_url: Option<String>,
    /// Gemini API root.
    pub gemini_base_url: String,
    /// Gemini API key (else GOOGLE_API_KEY).
    pub gemini_api_key: Option<Secret>,
    /// ComfyUI server.
    pub comfyui_url: String,
    /// ComfyUI workflow in API format.
    pub workflow: Option<PathBuf>,
    /// The workflow's node map.
    pub workflow_nodes: Option<PathBuf>,
    /// A text-only workflow for rounds without any image.
    pub text_workflow: Option<PathBuf>,
    /// The text-only workflow's node map.
    pub text_workflow_nodes: Option<PathBuf>,
    /// Seconds one ComfyUI job may run before it is interrupted (default 600).
    pub comfyui_timeout: u64,
    /// Chat-completions image endpoint.
    pub chat_images_base_url: String,
    /// Chat-completions image API key.
    pub chat_images_api_key: Option<Secret>,
    /// Size: WIDTHxHEIGHT or an aspect ratio (16:9, 16:9@2K); `auto` or unset: the
    /// backend's default.
    pub size: Option<String>,
    /// Image quality (openai only).
    pub quality: Option<String>,
    /// Seed (gemini, comfyui, chat-images).
    pub seed: Option<u64>,
    /// What the image must not show.
    pub negative_prompt: Option<String>,
    /// Images per round, 1 to 10 (default 1); the judge keeps the best.
    pub images_per_round: u32,
}

impl Default for GeneratorSettings {
    fn default() -> Self {
        GeneratorSettings {
            generator: Backend::Openai,
            image_model: None,
            image_base_url: None,
            gemini_base_url: GEMINI_DEFAULT_BASE.to_string(),
            gemini_api_key: None,
            comfyui_url: COMFYUI_DEFAULT_BASE.to_string(),
            workflow: None,
            workflow_nodes: None,
            text_workflow: None,
            text_workflow_nodes: None,
            comfyui_timeout: 600,
            chat_images_base_url: OPENROUTER_DEFAULT_BASE.to_string(),
            chat_images_api_key: None,
            size: None,
            quality: None,
            seed: None,
            negative_prompt: None,
            images_per_round: 1,
        }
    }
}

/// `auto`, WIDTHxHEIGHT with both sides from 64 to 8192, or an aspect ratio; `Ok(None)`
/// for `auto`.
pub fn parse_size(s: &str) -> Result<Option<ImageSize>, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("auto") {
        return Ok(None);
    }
    match ImageSize::parse(t)? {
        ImageSize::Pixels { width, height }
            if !(64..=8192).contains(&width) || !(64..=8192).contains(&height) =>
        {
            Err(format!(
                "{t:?}: each side must be from 64 to 8192 pixels (e.g. 1024x1024, 1536x1024)"
            ))
        }
        size => Ok(Some(size)),
    }
}

fn read(path: &Path) -> Result<String, SettingsError> {
    std::fs::read_to_string(path).map_err(|e| SettingsError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

impl GeneratorSettings {
    /// Fill unset keys and endpoints from `GEMINI_API_KEY` / `GOOGLE_API_KEY`,
    /// `GEMINI_BASE_URL`, `COMFYUI_URL`, `OPENROUTER_API_KEY` and `CHAT_IMAGES_BASE_URL`.
    pub fn with_env(mut self) -> Self {
        if self.gemini_api_key.is_none() {
            self.gemini_api_key =
                Secret::from_env("GEMINI_API_KEY").or_else(|| Secret::from_env("GOOGLE_API_KEY"));
        }
        if self.chat_images_api_key.is_none() {
            self.chat_images_api_key = Secret::from_env("OPENROUTER_API_KEY");
        }
        let env = |var: &str| std::env::var(var).ok().filter(|v| !v.trim().is_empty());
        if self.gemini_base_url == GEMINI_DEFAULT_BASE
            && let Some(v) = env("GEMINI_BASE_URL")
        {
            self.gemini_base_url = v;
        }
        if self.comfyui_url == COMFYUI_DEFAULT_BASE
            && let Some(v) = env("COMFYUI_URL")
        {
            self.comfyui_url = v;
        }
        if self.chat_images_base_url == OPENROUTER_DEFAULT_BASE
            && let Some(v) = env("CHAT_IMAGES_BASE_URL")
        {
            self.chat_images_base_url = v;
        }
        self
    }

    /// The model this generator uses.
    pub fn model(&self) -> &str {
        self.image_model
            .as_deref()
            .unwrap_or(self.generator.default_model())
    }

    /// The generation settings every round sends.
    pub fn generation(&self) -> Result<GenerationSettings, SettingsError> {
        let size = match self.size.as_deref() {
            None => None,
            Some(s) => parse_size(s).map_err(SettingsError::Invalid)?,
        };
        if !(1..=10).contains(&self.images_per_round) {
            return Err(SettingsError::Invalid(format!(
                "images-per-round {} is not from 1 to 10",
                self.images_per_round
            )));
        }
        Ok(GenerationSettings::default()
            .images(self.images_per_round)
            .size(size)
            .seed(self.seed)
            .negative_prompt(self.negative_prompt.clone()))
    }

    /// The generator. `openai_base` and `openai_key` are the chat endpoint's, which the
    /// OpenAI backend shares unless `image_base_url` says otherwise; `timeout` bounds one
    /// image call.
    pub fn build(
        &self,
        timeout: Duration,
        openai_base: &str,
        openai_key: Option<&Secret>,
    ) -> Result<Arc<dyn Generator>, SettingsError> {
        let http = model_http_client(timeout).map_err(|e| SettingsError::Http(e.to_string()))?;
        let model = self.model().to_string();
        Ok(match self.generator {
            Backend::Openai => {
                let base = self.image_base_url.as_deref().unwrap_or(openai_base);
                let mut g = OpenAiImages::new(http, base, model)?;
                if let Some(k) = openai_key {
                    g = g.with_api_key(k.clone());
                }
                if let Some(q) = &self.quality {
                    g = g.with_quality(Some(q.clone()));
                }
                Arc::new(g)
            }
            Backend::Gemini => {
                let mut g = GeminiImages::new(http, &self.gemini_base_url, model)?;
                match &self.gemini_api_key {
                    Some(k) => g = g.with_api_key(k.clone()),
                    None if self.gemini_base_url.contains("googleapis.com") => {
                        return Err(SettingsError::Missing {
                            what: "--generator gemini needs GEMINI_API_KEY (or GOOGLE_API_KEY, or \
                                   --gemini-api-key); get one at https://aistudio.google.com/apikey",
                        });
                    }
                    None => {}
                }
                Arc::new(g)
            }
            Backend::ChatImages => {
                let mut g = ChatImages::new(http, &self.chat_images_base_url, model)?;
                match &self.chat_images_api_key {
                    Some(k) => g = g.with_api_key(k.clone()),
                    None if self.chat_images_base_url.contains("openrouter.ai") => {
                        return Err(SettingsError::Missing {
                            what: "--generator chat-images needs OPENROUTER_API_KEY (or \
                                   --chat-images-api-key), or a keyless --chat-images-base-url",
                        });
                    }
                    None => {}
                }
                Arc::new(g)
            }
            Backend::Comfyui => Arc::new(self.comfyui(http)?),
        })
    }

    fn comfyui(&self, http: iat2i_retrievers::HttpClient) -> Result<ComfyUi, SettingsError> {
        let (Some(wf), Some(nodes)) = (&self.workflow, &self.workflow_nodes) else {
            return Err(SettingsError::Missing {
                what: "--generator comfyui needs --workflow (an API-format export) and \
                       --workflow-nodes (its node map); see examples/workflows/",
            });
        };
        let workflow = Workflow::from_json(&read(wf)?, &read(nodes)?)
            .map_err(|e| SettingsError::Invalid(format!("loading {}: {e}", wf.display())))?;
        let mut c = ComfyUi::new(http, &self.comfyui_url, workflow)?
            .with_timeout(Duration::from_secs(self.comfyui_timeout));
        match (&self.text_workflow, &self.text_workflow_nodes) {
            (Some(t), Some(n)) => {
                let text = Workflow::from_json(&read(t)?, &read(n)?)
                    .map_err(|e| SettingsError::Invalid(format!("loading {}: {e}", t.display())))?;
                c = c.with_text_workflow(text);
            }
            (None, None) => {}
            _ => {
                return Err(SettingsError::Invalid(
                    "--text-workflow and --text-workflow-nodes go together".into(),
                ));
            }
        }
        Ok(c)
    }

    /// Whether this backend talks to OpenAI's own endpoint when the chat endpoint is
    /// `chat_base` (and so needs OPENAI_API_KEY).
    pub fn uses_openai_at(&self, chat_base: &str) -> bool {
        let image_base = self.image_base_url.as_deref().unwrap_or(chat_base);
        self.generator == Backend::Openai
            && image_base.trim().trim_end_matches('/') == crate::lmm::OPENAI_DEFAULT_BASE
    }
}
