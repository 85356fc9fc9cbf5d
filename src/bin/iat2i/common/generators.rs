//! The `--generator` flags the examples share: which image backend, its endpoint, key
//! and model, and the generation settings.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use iat2i::Secret;
use iat2i::generator::comfyui::{ComfyUi, Workflow};
use iat2i::generator::{
    ChatImages, GeminiImages, GenerationSettings, Generator, ImageSize, OpenAiImages,
};
use iat2i::lmm::model_http_client;

/// Image backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// OpenAI Images API (or a server speaking it): OPENAI_API_KEY.
    Openai,
    /// Gemini image models: GEMINI_API_KEY (or GOOGLE_API_KEY).
    Gemini,
    /// A self-hosted ComfyUI: --workflow and --workflow-nodes.
    Comfyui,
    /// Chat-completions image models (OpenRouter and gateways): OPENROUTER_API_KEY.
    ChatImages,
}

/// Which image backend draws, and how.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Image generator")]
pub struct GeneratorArgs {
    /// Image backend: openai (OPENAI_API_KEY; --image-base-url), gemini (GEMINI_API_KEY or
    /// GOOGLE_API_KEY; --gemini-base-url), comfyui (a ComfyUI server at --comfyui-url
    /// running --workflow mapped by --workflow-nodes), chat-images (OPENROUTER_API_KEY;
    /// --chat-images-base-url).
    #[arg(long, value_enum, env = "IAT2I_GENERATOR", default_value = "openai")]
    pub generator: Backend,
    /// Image model (default: gpt-image-1, gemini-2.5-flash-image,
    /// google/gemini-2.5-flash-image; unused by comfyui, whose model is in the workflow).
    #[arg(long)]
    pub image_model: Option<String>,
    /// OpenAI Images base URL (default: --base-url).
    #[arg(long)]
    pub image_base_url: Option<String>,
    /// Gemini API root.
    #[arg(long, env = "GEMINI_BASE_URL", default_value = iat2i::generator::GEMINI_DEFAULT_BASE)]
    pub gemini_base_url: String,
    /// Gemini API key (else GOOGLE_API_KEY); never printed.
    #[arg(long, env = "GEMINI_API_KEY", hide_env_values = true)]
    pub gemini_api_key: Option<String>,
    /// ComfyUI server.
    #[arg(long, env = "COMFYUI_URL", default_value = iat2i::generator::COMFYUI_DEFAULT_BASE)]
    pub comfyui_url: String,
    /// ComfyUI workflow in API format (see examples/workflows/).
    #[arg(long, value_name = "JSON")]
    pub workflow: Option<PathBuf>,
    /// Where the workflow takes the prompt, seed, size and images:
    /// {"prompt": {"node_id": "6", "input_field": "text"}, ...} (see examples/workflows/).
    #[arg(long, value_name = "JSON")]
    pub workflow_nodes: Option<PathBuf>,
    /// A text-only workflow for rounds without any image (with --text-workflow-nodes).
    #[arg(long, value_name = "JSON")]
    pub text_workflow: Option<PathBuf>,
    /// The text-only workflow's node map.
    #[arg(long, value_name = "JSON")]
    pub text_workflow_nodes: Option<PathBuf>,
    /// Seconds one ComfyUI job may run before it is interrupted.
    #[arg(long, default_value_t = 600)]
    pub comfyui_timeout: u64,
    /// Chat-completions image endpoint.
    #[arg(long, env = "CHAT_IMAGES_BASE_URL", default_value = iat2i::generator::OPENROUTER_DEFAULT_BASE)]
    pub chat_images_base_url: String,
    /// Chat-completions image API key; never printed.
    #[arg(long, env = "OPENROUTER_API_KEY", hide_env_values = true)]
    pub chat_images_api_key: Option<String>,

    /// Size: WIDTHxHEIGHT (1024x1536) or an aspect ratio (16:9, 16:9@2K); each backend
    /// maps it to what it offers.
    #[arg(long, value_parser = image_size)]
    pub size: Option<String>,
    /// Image quality (openai only: low, medium, high, auto; standard and hd for dall-e-3).
    #[arg(long, value_parser = ["low", "medium", "high", "auto", "standard", "hd"])]
    pub quality: Option<String>,
    /// Seed (gemini, comfyui, chat-images).
    #[arg(long)]
    pub seed: Option<u64>,
    /// What the image must not show.
    #[arg(long)]
    pub negative_prompt: Option<String>,
    /// Images per round, 1 to 10; the judge keeps the best.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10))]
    pub images_per_round: u32,
}

/// `auto`, WIDTHxHEIGHT with both sides from 64 to 8192, or an aspect ratio.
fn image_size(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("auto") {
        return Ok("auto".into());
    }
    match ImageSize::parse(t)? {
        ImageSize::Pixels { width, height }
            if !(64..=8192).contains(&width) || !(64..=8192).contains(&height) =>
        {
            Err(format!(
                "{t:?}: each side must be from 64 to 8192 pixels (e.g. 1024x1024, 1536x1024)"
            ))
        }
        _ => Ok(t.to_string()),
    }
}

fn read(path: &PathBuf) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

impl GeneratorArgs {
    /// The generation settings every round uses.
    pub fn settings(&self) -> Result<GenerationSettings> {
        let size = match self.size.as_deref() {
            None | Some("auto") => None,
            Some(s) => Some(ImageSize::parse(s).map_err(anyhow::Error::msg)?),
        };
        Ok(GenerationSettings {
            size,
            seed: self.seed,
            negative_prompt: self.negative_prompt.clone(),
            n: self.images_per_round.max(1),
            options: Default::default(),
        })
    }

    /// The generator. `openai_base` and `openai_key` are the chat endpoint's, which the
    /// OpenAI backend shares unless --image-base-url says otherwise.
    pub fn build(
        &self,
        timeout: Duration,
        openai_base: &str,
        openai_key: &Option<Secret>,
    ) -> Result<Arc<dyn Generator>> {
        let http = model_http_client(timeout)?;
        Ok(match self.generator {
            Backend::Openai => {
                let base = self.image_base_url.as_deref().unwrap_or(openai_base);
                let model = self.image_model.as_deref().unwrap_or("gpt-image-1");
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
                let model = self
                    .image_model
                    .as_deref()
                    .unwrap_or("gemini-2.5-flash-image");
                let mut g = GeminiImages::new(http, &self.gemini_base_url, model)?;
                let key = self
                    .gemini_api_key
                    .clone()
                    .map(Secret::new)
                    .or_else(|| Secret::from_env("GOOGLE_API_KEY"));
                match key {
                    Some(k) => g = g.with_api_key(k),
                    None if self.gemini_base_url.contains("googleapis.com") => bail!(
                        "--generator gemini needs GEMINI_API_KEY (or GOOGLE_API_KEY, or \
                         --gemini-api-key); get one at https://aistudio.google.com/apikey"
                    ),
                    None => {}
                }
                Arc::new(g)
            }
            Backend::ChatImages => {
                let model = self
                    .image_model
                    .as_deref()
                    .unwrap_or("google/gemini-2.5-flash-image");
                let mut g = ChatImages::new(http, &self.chat_images_base_url, model)?;
                match self.chat_images_api_key.clone() {
                    Some(k) => g = g.with_api_key(Secret::new(k)),
                    None if self.chat_images_base_url.contains("openrouter.ai") => bail!(
                        "--generator chat-images needs OPENROUTER_API_KEY (or \
                         --chat-images-api-key), or a keyless --chat-images-base-url"
                    ),
                    None => {}
                }
                Arc::new(g)
            }
            Backend::Comfyui => Arc::new(self.comfyui(http)?),
        })
    }

    fn comfyui(&self, http: iat2i::retrievers::HttpClient) -> Result<ComfyUi> {
        let (Some(wf), Some(nodes)) = (&self.workflow, &self.workflow_nodes) else {
            bail!(
                "--generator comfyui needs --workflow (an API-format export) and \
                 --workflow-nodes (its node map); see examples/workflows/"
            );
        };
        let workflow = Workflow::from_json(&read(wf)?, &read(nodes)?)
            .with_context(|| format!("loading {}", wf.display()))?;
        let mut c = ComfyUi::new(http, &self.comfyui_url, workflow)?
            .with_timeout(Duration::from_secs(self.comfyui_timeout));
        match (&self.text_workflow, &self.text_workflow_nodes) {
            (Some(t), Some(n)) => {
                c = c.with_text_workflow(Workflow::from_json(&read(t)?, &read(n)?)?);
            }
            (None, None) => {}
            _ => bail!("--text-workflow and --text-workflow-nodes go together"),
        }
        Ok(c)
    }

    /// Whether the chosen backend talks to the OpenAI endpoint at `base`.
    pub fn uses_openai_at(&self, base: &str) -> bool {
        let image_base = self.image_base_url.as_deref().unwrap_or(base);
        self.generator == Backend::Openai
            && image_base.trim().trim_end_matches('/') == iat2i::lmm::OPENAI_DEFAULT_BASE
    }
}
