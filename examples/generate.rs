//! Generate one image for a prompt, searching the web for a reference image when the
//! prompt names something an image model is unlikely to know.
//!
//! ```text
//! export OPENAI_API_KEY=sk-...
//! cargo run --example generate -- "A Graphorn at dusk" --out graphorn.png
//! cargo run --example generate -- --help
//! ```
//!
//! Writes the image (PNG) and a JSON report of every decision, query, candidate, prompt
//! sent, verdict and token count. `make demo PROMPT="..."` installs ONNX Runtime first.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;

#[path = "common/engines.rs"]
mod engines;
#[path = "common/generators.rs"]
mod generators;
use engines::EngineArgs;
use generators::GeneratorArgs;
use iat2i::lmm::{OPENAI_DEFAULT_BASE, model_http_client};
use iat2i::prelude::*;
use iat2i::{Lmm, PipelineBuilder};
use indicatif::{ProgressBar, ProgressStyle};

/// Internet-augmented text-to-image: decide whether the prompt needs a reference
/// image, search the web for one, pick the best, generate with it, and let a vision
/// model judge the result, retrying until it matches the prompt.
///
/// Needs an OpenAI-compatible chat endpoint (for deciding and judging) and an image
/// generator: OpenAI Images (default), Gemini, a self-hosted ComfyUI or a
/// chat-completions image model (--generator). With OpenAI, set OPENAI_API_KEY and
/// nothing else. For a local keyless server, give --base-url (and --image-base-url).
///
/// Writes the image to --out and a JSON report (every decision, query, candidate with
/// its licence, prompt sent, verdict, timing and token count) to --report, then prints
/// why it stopped and the tokens used. The API key is never printed or written.
#[derive(Parser, Debug)]
#[command(name = "generate", version, about, long_about, after_help = EXAMPLES)]
struct Args {
    /// What to draw, e.g. "A photo of a Graphorn at dusk".
    prompt: String,

    /// Chat model for the knowledge gate and the judges (must accept images).
    #[arg(long, default_value = "gpt-4o-mini")]
    model: String,
    /// Chat model for the knowledge gate only (default: --model).
    #[arg(long)]
    gate_model: Option<String>,
    /// Chat model for the judges only (default: --model).
    #[arg(long)]
    judge_model: Option<String>,

    /// Base URL of the chat endpoint, ending in /v1 (OpenAI, Ollama, vLLM, OpenRouter,
    /// Gemini's https://generativelanguage.googleapis.com/v1beta/openai/ ...).
    #[arg(long, env = "OPENAI_BASE_URL", hide_env_values = true, default_value = OPENAI_DEFAULT_BASE)]
    base_url: String,

    /// At most this many generate-and-judge rounds (the best image of all is kept).
    #[arg(long, default_value_t = 3)]
    max_rounds: u32,
    /// When to search for a reference: from-prompt (ask the chat model first),
    /// generate-first (only if the first image shows a knowledge gap), always, never.
    #[arg(long, default_value = "from-prompt")]
    gate_mode: GateMode,
    /// Languages to write search queries in, comma-separated (e.g. en,zh,ja).
    #[arg(long, value_delimiter = ',', default_value = "en")]
    languages: Vec<String>,
    /// Directory with a local CLIP model (ONNX, vision/ and text/ inside) for ranking
    /// references (default: CLIP ViT-B/32, downloaded from Hugging Face on first use).
    #[arg(long)]
    model_dir: Option<PathBuf>,

    /// Edit this image (PNG, JPEG or WebP) instead of generating from scratch.
    #[arg(long, value_name = "IMAGE")]
    edit: Option<PathBuf>,
    /// Seconds allowed for one chat call (image calls get 2.5 times as long).
    #[arg(long, default_value_t = 120)]
    timeout: u64,

    /// Where to write the image.
    #[arg(long, default_value = "image.png")]
    out: PathBuf,
    /// Where to write the JSON report.
    #[arg(long, default_value = "report.json")]
    report: PathBuf,
    /// No progress display.
    #[arg(long, short)]
    quiet: bool,
    /// Fail (exit code 3, before any image is paid for when possible) when the run needs
    /// a reference image and cannot get one, instead of generating without it.
    #[arg(long)]
    require_reference: bool,

    #[command(flatten)]
    engines: EngineArgs,

    #[command(flatten)]
    generator: GeneratorArgs,
}

const EXAMPLES: &str =
    "Examples (from the repository; `make demo PROMPT=\"...\"` also installs ONNX Runtime):
  # With OpenAI:
  export OPENAI_API_KEY=sk-...
  cargo run --example generate -- \"A Graphorn at dusk\" --out graphorn.png
  # Edit an image:
  cargo run --example generate -- \"Put a Shoebill next to the dog\" --edit dog.png --out edited.png
  # A keyless local OpenAI-compatible server, never searching:
  cargo run --example generate -- \"A red apple\" --gate-mode never \\
      --base-url http://localhost:8000/v1 --model qwen2.5-vl
  # Gemini draws and judges (its OpenAI-compatible endpoint for the chat model):
  export GEMINI_API_KEY=...
  cargo run --example generate -- \"A Graphorn at dusk\" --generator gemini \\
      --base-url https://generativelanguage.googleapis.com/v1beta/openai/ --model gemini-2.5-flash
  # A self-hosted ComfyUI with FLUX.1 Kontext (and SDXL when there is no reference):
  cargo run --example generate -- \"A Graphorn at dusk\" --generator comfyui \\
      --comfyui-url http://127.0.0.1:8188 \\
      --workflow examples/workflows/flux_kontext.json \\
      --workflow-nodes examples/workflows/flux_kontext.nodes.json \\
      --text-workflow examples/workflows/sdxl_text.json \\
      --text-workflow-nodes examples/workflows/sdxl_text.nodes.json
  # An image model through OpenRouter's chat completions:
  export OPENROUTER_API_KEY=...
  cargo run --example generate -- \"A Graphorn at dusk\" --generator chat-images \\
      --image-model google/gemini-2.5-flash-image

Exit codes:
  0  an image was written (anything the run lost on the way is listed under \"degraded\")
  1  the run failed      2  bad arguments or settings (checked before any paid call)
  3  --require-reference was given and the run has no reference

Environment:
  OPENAI_API_KEY   API key for the chat endpoint and the openai generator (never printed)
  OPENAI_BASE_URL  default for --base-url
  IAT2I_GENERATOR  default for --generator
  GEMINI_API_KEY   (or GOOGLE_API_KEY) key for --generator gemini; GEMINI_BASE_URL its root
  COMFYUI_URL      default for --comfyui-url (no key: ComfyUI is a trusted local server)
  OPENROUTER_API_KEY  key for --generator chat-images; CHAT_IMAGES_BASE_URL its endpoint
  ORT_DYLIB_PATH   ONNX Runtime library for the CLIP ranking (`bash scripts/setup-ort.sh`
                   installs it and prints the path)
  RUST_LOG         log filter, e.g. iat2i=debug";

const NO_ENDPOINT: &str = "generate: no model endpoint is configured.

Set one of:
  export OPENAI_API_KEY=sk-...                 to use OpenAI (https://api.openai.com/v1)
  --base-url http://localhost:11434/v1         to use a keyless OpenAI-compatible server
                                               (or set OPENAI_BASE_URL); add
  --image-base-url URL                         if images come from another server";

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_tracing();
    let key = Secret::from_env("OPENAI_API_KEY");
    let is_openai = |url: &str| url.trim().trim_end_matches('/') == OPENAI_DEFAULT_BASE;
    if key.is_none() && (is_openai(&args.base_url) || args.generator.uses_openai_at(&args.base_url))
    {
        eprintln!("{NO_ENDPOINT}");
        return ExitCode::from(2);
    }
    if let Err(e) = preflight(&args) {
        eprintln!("generate: {e:#}");
        return ExitCode::from(2);
    }
    match run(args, key).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("generate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Check what can be checked before the first paid call: the model directory and
/// where the image and the report will be written.
fn preflight(args: &Args) -> Result<()> {
    if let Some(dir) = &args.model_dir {
        for file in ["vision/model.onnx", "text/model.onnx"] {
            let path = dir.join(file);
            anyhow::ensure!(
                path.is_file(),
                "--model-dir {}: {} is missing (a CLIP model directory holds vision/model.onnx, \
                 text/model.onnx and their tokenizer and preprocessor files)",
                dir.display(),
                path.display()
            );
        }
    }
    writable(&args.out, "--out")?;
    writable(&args.report, "--report")?;
    Ok(())
}

/// `path` can be written: its folder exists and takes a new file, and it is not a folder.
fn writable(path: &Path, flag: &str) -> Result<()> {
    anyhow::ensure!(
        !path.is_dir(),
        "{flag} {} is a directory; give a file name",
        path.display()
    );
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    anyhow::ensure!(
        dir.is_dir(),
        "{flag} {}: the directory {} does not exist",
        path.display(),
        dir.display()
    );
    let probe = dir.join(format!(".iat2i-write-check-{}", std::process::id()));
    std::fs::write(&probe, b"").with_context(|| {
        format!(
            "{flag} {}: cannot write in {}",
            path.display(),
            dir.display()
        )
    })?;
    // The probe was just created; failing to remove it only leaves an empty file.
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // A second subscriber cannot be installed; that only means logs go to the first.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn chat(args: &Args, key: &Option<Secret>, model: &str) -> Result<Arc<dyn Lmm>> {
    let http = model_http_client(Duration::from_secs(args.timeout))?;
    let mut c = OpenAiChat::new(http, &args.base_url, model)?;
    if let Some(k) = key {
        c = c.with_api_key(k.clone());
    }
    Ok(Arc::new(c))
}

fn builder(args: &Args, key: &Option<Secret>, progress: &ProgressBar) -> Result<PipelineBuilder> {
    let images = args.generator.build(
        Duration::from_secs(args.timeout * 5 / 2),
        &args.base_url,
        key,
    )?;
    let mut b = Pipeline::builder()
        .lmm(chat(args, key, &args.model)?)
        .generator(images)
        .generation(args.generator.settings()?)
        .gate_mode(args.gate_mode)
        .max_rounds(args.max_rounds)
        .query_languages(args.languages.clone())
        .require_reference(args.require_reference)
        .on_event(progress_callback(progress.clone()));
    if let Some(m) = &args.gate_model {
        b = b.gate_lmm(chat(args, key, m)?);
    }
    if let Some(m) = &args.judge_model {
        let judge = chat(args, key, m)?;
        b = b.judge_lmm(judge.clone()).candidate_judge_lmm(judge);
    }
    let mut selector = SelectorConfig::default().license_policy(args.engines.licence);
    if let Some(dir) = &args.model_dir {
        selector = selector.model_dir(dir);
    }
    if let Some(folder) = &args.engines.folder {
        selector = selector.allow_local_dir(folder);
    }
    b = b.selector_config(selector);
    let http = args.engines.http_builder().build()?;
    b = b.engines(args.engines.build_all(&http)?).http(http);
    Ok(b)
}

fn progress_callback(pb: ProgressBar) -> impl Fn(&PipelineEvent) + Send + Sync + 'static {
    move |event| match event {
        PipelineEvent::GateStarted => pb.set_message("asking whether the prompt needs a reference"),
        PipelineEvent::Assessed { assessment } => pb.println(format!(
            "gate: needs reference = {} ({:?}); queries {:?}",
            assessment.needs_reference, assessment.gap, assessment.queries
        )),
        PipelineEvent::SearchStarted { queries } => {
            pb.set_message(format!("searching {queries:?}"))
        }
        PipelineEvent::SearchFinished { count, .. } => {
            pb.println(format!("search: {count} candidates"))
        }
        PipelineEvent::SelectionStarted { candidates } => {
            pb.set_message(format!("ranking {candidates} candidates"))
        }
        PipelineEvent::SelectionFinished { reference, .. } => {
            pb.println(format!("reference: {reference}"))
        }
        PipelineEvent::RoundStarted {
            round,
            max_rounds,
            references,
        } => pb.set_message(format!(
            "round {round}/{max_rounds}: generating with {references} reference(s)"
        )),
        PipelineEvent::GeneratorProgress { round, progress } => {
            match (progress.value, progress.max) {
                (Some(v), Some(m)) => pb.set_message(format!("round {round}: step {v}/{m}")),
                _ => pb.set_message(format!("round {round}: {}", progress.stage)),
            }
        }
        PipelineEvent::Generated { round, .. } => pb.set_message(format!("round {round}: judging")),
        PipelineEvent::Judged { round, verdict } => pb.println(format!(
            "round {round}: aligned = {}, score {:.1}/10: {}",
            verdict.aligned,
            verdict.score(),
            verdict.feedback
        )),
        PipelineEvent::StageFailed { stage, error, .. } => {
            pb.println(format!("{stage} failed: {error}"))
        }
        PipelineEvent::Degraded { degradation } => pb.println(format!("degraded: {degradation}")),
        _ => {}
    }
}

async fn run(args: Args, key: Option<Secret>) -> Result<ExitCode> {
    let progress = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new_spinner()
    };
    progress.set_style(ProgressStyle::with_template("{spinner} [{elapsed}] {msg}")?);
    progress.enable_steady_tick(Duration::from_millis(120));
    let pipeline = builder(&args, &key, &progress)?.build()?;
    let mut request = Request::new(args.prompt.clone());
    if let Some(path) = &args.edit {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        request = request.with_edit_image(bytes);
    }
    let result = pipeline.run(request).await;
    progress.finish_and_clear();
    match result {
        Ok(outcome) => {
            write_png(&args.out, &outcome.image)?;
            write_report(&args.report, &outcome.report)?;
            println!("image:  {}", args.out.display());
            println!("report: {}", args.report.display());
            println!("{}", outcome.report.stop_reason);
            print_degraded(&outcome.report);
            if outcome.report.lost_reference() {
                println!(
                    "warning: the image was generated WITHOUT the reference the prompt needed \
                     (--require-reference makes this fail)"
                );
            }
            let u = &outcome.report.usage;
            println!(
                "usage: {} chat tokens in {} calls; {} image tokens for {} image(s)",
                u.lmm_total.total_tokens, u.lmm_total.calls, u.images.total_tokens, u.images.images
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if let Some(report) = e.report() {
                write_report(&args.report, report)?;
                eprintln!("partial report: {}", args.report.display());
                print_degraded(report);
            }
            eprintln!("generate: {e}");
            if let PipelineError::ReferenceRequired { image, .. } = &e {
                if let Some(image) = image {
                    write_png(&args.out, image)?;
                    eprintln!(
                        "image made before the reference was lost: {}",
                        args.out.display()
                    );
                }
                return Ok(ExitCode::from(3));
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// What the run lost, on stdout where the result is printed (also in the report).
fn print_degraded(report: &Report) {
    if report.degraded.is_empty() {
        return;
    }
    println!("degraded ({}):", report.degraded.len());
    for d in &report.degraded {
        println!("  - {d}");
    }
}

fn write_png(path: &Path, image: &GeneratedImage) -> Result<()> {
    let bytes = if image.mime == "image/png" {
        image.bytes.to_vec()
    } else {
        let decoded =
            image::load_from_memory(&image.bytes).context("decoding the generated image")?;
        let mut out = std::io::Cursor::new(Vec::new());
        decoded.write_to(&mut out, image::ImageFormat::Png)?;
        out.into_inner()
    };
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn write_report(path: &Path, report: &Report) -> Result<()> {
    let json = serde_json::to_vec_pretty(report)?;
    std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))
}
