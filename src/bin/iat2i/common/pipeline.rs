//! The flags of one pipeline, shared by `generate` and `serve`: the chat endpoint and
//! models, the run's limits, the engines, the generator and the memory. They become the
//! library's [`iat2i::Settings`], which builds the pipeline.

use std::path::PathBuf;

use iat2i::lmm::OPENAI_DEFAULT_BASE;
use iat2i::{GateMode, Settings};

use super::engines::EngineArgs;
use super::generators::GeneratorArgs;
use super::memory::MemoryArgs;

/// One pipeline's flags.
#[derive(clap::Args, Debug, Clone)]
pub struct PipelineArgs {
    /// Chat model for the knowledge gate and the judges (must accept images).
    #[arg(long, default_value = "gpt-4o-mini")]
    pub model: String,
    /// Chat model for the knowledge gate only (default: --model).
    #[arg(long)]
    pub gate_model: Option<String>,
    /// Chat model for the judges only (default: --model).
    #[arg(long)]
    pub judge_model: Option<String>,

    /// Base URL of the chat endpoint, ending in /v1 (OpenAI, Ollama, vLLM, OpenRouter,
    /// Gemini's https://generativelanguage.googleapis.com/v1beta/openai/ ...).
    #[arg(long, env = "OPENAI_BASE_URL", hide_env_values = true, default_value = OPENAI_DEFAULT_BASE)]
    pub base_url: String,

    /// At most this many generate-and-judge rounds, 1 to 20 (the best image of all is kept).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub max_rounds: u32,
    /// When to search for a reference: from-prompt (ask the chat model first),
    /// generate-first (only if the first image shows a knowledge gap), always, never.
    #[arg(long, default_value = "from-prompt")]
    pub gate_mode: GateMode,
    /// Languages to write search queries in, comma-separated (e.g. en,zh,ja).
    #[arg(long, value_delimiter = ',', default_value = "en", value_parser = language_code)]
    pub languages: Vec<String>,
    /// Directory with a local CLIP model (ONNX, vision/ and text/ inside) for ranking
    /// references (default: CLIP ViT-B/32, downloaded from Hugging Face on first use).
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    /// Cache directory: the reference memory (<cache>/qdrant-edge, <cache>/blobs) and
    /// downloaded models.
    #[arg(long, env = "IAT2I_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Let reference downloads reach this host even when it is private or local (a
    /// mirror, a test server); repeat for several.
    #[arg(long = "allow-host", value_name = "HOST")]
    pub allow_hosts: Vec<String>,
    /// Seconds allowed for one chat call, 1 to 3600 (image calls get 2.5 times as long).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
    /// Fail the run (generate: exit code 3, before any image is paid for when possible)
    /// when it needs a reference image and cannot get one, instead of generating without it.
    #[arg(long)]
    pub require_reference: bool,
    /// Fail the run (generate: exit code 3) when the judge cannot review an image (a
    /// rate-limit storm, a reply that is not the JSON asked for) instead of keeping it
    /// unjudged. generate still writes the unjudged image to --out: it was paid for.
    #[arg(long)]
    pub require_review: bool,

    #[command(flatten)]
    pub engines: EngineArgs,

    #[command(flatten)]
    pub generator: GeneratorArgs,

    #[command(flatten)]
    pub memory: MemoryArgs,
}

impl PipelineArgs {
    /// The library's settings these flags say: one pipeline, built as a Rust caller, the
    /// configuration file and `iat2i serve` build it.
    pub fn settings(&self) -> Settings {
        let mut s = Settings::default();
        s.chat.base_url = self.base_url.clone();
        s.chat.model = self.model.clone();
        s.chat.gate_model = self.gate_model.clone();
        s.chat.judge_model = self.judge_model.clone();
        s.chat.timeout = self.timeout;
        s.run.max_rounds = self.max_rounds;
        s.run.gate_mode = self.gate_mode;
        s.run.languages = self.languages.clone();
        s.run.require_reference = self.require_reference;
        s.run.require_review = self.require_review;
        s.generator = self.generator.settings();
        s.engines = self.engines.settings();
        s.engines.allow_hosts = self.allow_hosts.clone();
        s.memory = self.memory.settings();
        s.memory.model_dir = self.model_dir.clone();
        s.memory.cache_dir = self.cache_dir.clone();
        s.with_env()
    }
}

/// A language code such as `en`, `zh` or `pt-BR`.
fn language_code(s: &str) -> Result<String, String> {
    let code = s.trim();
    let (lang, region) = code.split_once('-').unwrap_or((code, ""));
    let ok = (2..=3).contains(&lang.len())
        && lang.chars().all(|c| c.is_ascii_alphabetic())
        && region.chars().all(|c| c.is_ascii_alphanumeric())
        && region.len() <= 8;
    if ok {
        Ok(code.to_string())
    } else {
        Err(format!(
            "{s:?} is not a language code (use codes such as en, zh, ja, pt-BR)"
        ))
    }
}
