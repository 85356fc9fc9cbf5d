//! The `--generator` flags: which image backend, its endpoint, key and model, and the
//! generation settings; flags for [`iat2i::settings::GeneratorSettings`], which builds it.

use std::path::PathBuf;

use clap::Args;
use iat2i::Secret;
pub use iat2i::settings::Backend;
use iat2i::settings::GeneratorSettings;

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
    iat2i::settings::parse_size(s).map(|_| s.trim().to_string())
}

impl GeneratorArgs {
    /// The library's generator settings these flags say.
    pub fn settings(&self) -> GeneratorSettings {
        let mut s = GeneratorSettings::default();
        s.generator = self.generator;
        s.image_model = self.image_model.clone();
        s.image_base_url = self.image_base_url.clone();
        s.gemini_base_url = self.gemini_base_url.clone();
        s.gemini_api_key = self.gemini_api_key.clone().map(Secret::new);
        s.comfyui_url = self.comfyui_url.clone();
        s.workflow = self.workflow.clone();
        s.workflow_nodes = self.workflow_nodes.clone();
        s.text_workflow = self.text_workflow.clone();
        s.text_workflow_nodes = self.text_workflow_nodes.clone();
        s.comfyui_timeout = self.comfyui_timeout;
        s.chat_images_base_url = self.chat_images_base_url.clone();
        s.chat_images_api_key = self.chat_images_api_key.clone().map(Secret::new);
        s.size = self.size.clone();
        s.quality = self.quality.clone();
        s.seed = self.seed;
        s.negative_prompt = self.negative_prompt.clone();
        s.images_per_round = self.images_per_round;
        // GOOGLE_API_KEY stands in for GEMINI_API_KEY, as the Gemini SDKs do.
        s.with_env()
    }
}
