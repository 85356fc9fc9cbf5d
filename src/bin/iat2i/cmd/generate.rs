//! Generate one image for a prompt, searching the web for a reference image when the
//! prompt names something an image model is unlikely to know.
//!
//! ```text
//! export OPENAI_API_KEY=sk-...
//! iat2i generate "A Graphorn at dusk" --out graphorn.png
//! iat2i generate --help
//! ```
//!
//! Writes the image (PNG) and a JSON report of every decision, query, candidate, prompt
//! sent, verdict and token count. `make demo PROMPT="..."` installs ONNX Runtime first.

use crate::common::pipeline::PipelineArgs;
use crate::common::{exit, logging, preview, progress};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

use iat2i::Settings;
use iat2i::prelude::*;
use progress::Progress;

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
#[command(name = "generate", version, after_help = EXAMPLES)]
pub struct Args {
    /// What to draw, e.g. "A photo of a Graphorn at dusk".
    prompt: String,

    /// Edit this image (PNG, JPEG or WebP) instead of generating from scratch.
    #[arg(long, value_name = "IMAGE")]
    edit: Option<PathBuf>,
    /// Where to write the image.
    #[arg(long, default_value = "image.png")]
    out: PathBuf,
    /// Where to write the JSON report.
    #[arg(long, default_value = "report.json")]
    report: PathBuf,
    /// No progress display (on a terminal a spinner; otherwise plain lines on stderr).
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    pipeline: PipelineArgs,
}

const EXAMPLES: &str =
    "Examples (`cargo install --path .` installs iat2i; `make demo PROMPT=\"...\"` also installs ONNX Runtime):
  # With OpenAI:
  export OPENAI_API_KEY=sk-...
  iat2i generate \"A Graphorn at dusk\" --out graphorn.png
  # Edit an image:
  iat2i generate \"Put a Shoebill next to the dog\" --edit dog.png --out edited.png
  # A keyless local OpenAI-compatible server, never searching:
  iat2i generate \"A red apple\" --gate-mode never \\
      --base-url http://localhost:8000/v1 --model qwen2.5-vl
  # Gemini draws and judges (its OpenAI-compatible endpoint for the chat model):
  export GEMINI_API_KEY=...
  iat2i generate \"A Graphorn at dusk\" --generator gemini \\
      --base-url https://generativelanguage.googleapis.com/v1beta/openai/ --model gemini-2.5-flash
  # A self-hosted ComfyUI with FLUX.1 Kontext (and SDXL when there is no reference):
  iat2i generate \"A Graphorn at dusk\" --generator comfyui \\
      --comfyui-url http://127.0.0.1:8188 \\
      --workflow examples/workflows/flux_kontext.json \\
      --workflow-nodes examples/workflows/flux_kontext.nodes.json \\
      --text-workflow examples/workflows/sdxl_text.json \\
      --text-workflow-nodes examples/workflows/sdxl_text.nodes.json
  # An image model through OpenRouter's chat completions:
  export OPENROUTER_API_KEY=...
  iat2i generate \"A Graphorn at dusk\" --generator chat-images \\
      --image-model google/gemini-2.5-flash-image

Without a model endpoint (no OPENAI_API_KEY and no --base-url), nothing is generated:
the prompt is searched on the keyless engines, the references are ranked with the local
CLIP model, the reference the generator would be given is written next to --out
(<out>-reference.<ext>, with its source and licence in <out>-reference.json), the ranked
table is printed, and the run exits with code 4 after saying what to set.

Exit codes:
  0  an image was written (anything the run lost on the way is listed under \"degraded\")
  1  the run failed
  2  bad arguments or settings, found before any paid call (an empty prompt, --edit on a
     file that is not an image, --engine searxng without --searxng-url, ...)
  3  the run lost what a --require-* flag asked for: its reference (--require-reference),
     its memory (--require-memory; checked before any paid call) or the judge's review
     (--require-review); an image made before the loss is still written
  4  no model endpoint: only the reference was searched and selected (see above)

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

const NO_ENDPOINT: &str = "generate: no model endpoint is configured, so no image was generated.

To generate, set one of:
  export OPENAI_API_KEY=sk-...                 to use OpenAI (https://api.openai.com/v1)
  --base-url http://localhost:11434/v1         to use a keyless OpenAI-compatible server
                                               (or set OPENAI_BASE_URL); add
  --image-base-url URL                         if images come from another server";

/// The exit code of a run that lost what a --require-* flag asked for.
const EXIT_REQUIRED_LOST: u8 = 3;
/// The exit code of a run without a model endpoint (the reference preview only).
const EXIT_PREVIEW_ONLY: u8 = 4;

/// Whether a stage failed because the reference memory (vector store) could not be used.
fn is_store_failure(e: &iat2i::StageError) -> bool {
    matches!(
        e,
        iat2i::StageError::Select(
            iat2i::selectors::SelectError::Store(_)
                | iat2i::selectors::SelectError::StoreLocked { .. }
        )
    )
}

/// Run `iat2i generate`.
pub async fn main(args: Args) -> ExitCode {
    logging::init("warn");
    let edit = match preflight(&args) {
        Ok(edit) => edit,
        Err(e) => return exit::report("generate", &exit::usage(e)),
    };
    let settings = args.pipeline.settings();
    if !settings.has_model_endpoint() {
        return preview_only(&args, &settings).await;
    }
    match run(args, settings, edit).await {
        Ok(code) => code,
        Err(e) => exit::report("generate", &e),
    }
}

/// Check what can be checked before the first paid call: the prompt, the image to edit
/// (returned, read), the model directory and where the image and the report will be
/// written.
fn preflight(args: &Args) -> Result<Option<Vec<u8>>> {
    anyhow::ensure!(
        !args.prompt.trim().is_empty(),
        "the prompt is empty: say what to draw"
    );
    let edit = match &args.edit {
        None => None,
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("--edit {}: cannot read it", path.display()))?;
            anyhow::ensure!(
                iat2i::generator::sniff_mime(&bytes).is_some(),
                "--edit {}: not a PNG, JPEG, WebP or GIF image",
                path.display()
            );
            Some(bytes)
        }
    };
    if let Some(dir) = &args.pipeline.model_dir {
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
    Ok(edit)
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

/// No model endpoint: show what the library does without one (search and selection
/// with the keyless engines and the local CLIP model), then say what to set.
async fn preview_only(args: &Args, settings: &Settings) -> ExitCode {
    let progress = Progress::new(args.quiet);
    progress.line(
        "generate: no model endpoint is configured; searching and selecting the reference \
         the generator would be given (keyless engines, local CLIP model) ...",
    );
    let ready = settings.engines.http_client().and_then(|http| {
        let selector = settings.memory.selector_config(&settings.engines)?;
        Ok((http, selector))
    });
    let (http, selector) = match ready {
        Ok(r) => r,
        Err(e) => {
            eprintln!("generate: {e:#}\n\n{NO_ENDPOINT}");
            return ExitCode::FAILURE;
        }
    };
    let shown = preview::run(
        &progress,
        &args.prompt,
        &args.pipeline.engines,
        http,
        selector,
        &args.out,
    )
    .await;
    progress.finish();
    match shown {
        Ok(()) => {
            eprintln!("\n{NO_ENDPOINT}");
            ExitCode::from(EXIT_PREVIEW_ONLY)
        }
        Err(e) => {
            eprintln!("generate: the reference preview failed: {e:#}\n\n{NO_ENDPOINT}");
            ExitCode::FAILURE
        }
    }
}

fn progress_callback(pb: Progress) -> impl Fn(&PipelineEvent) + Send + Sync + 'static {
    move |event| match event {
        PipelineEvent::GateStarted => pb.status("asking whether the prompt needs a reference"),
        PipelineEvent::Assessed { assessment } => pb.line(format!(
            "gate: needs reference = {} ({:?}); queries {:?}",
            assessment.needs_reference, assessment.gap, assessment.queries
        )),
        PipelineEvent::SearchStarted { queries } => pb.status(format!("searching {queries:?}")),
        PipelineEvent::SearchFinished { count, .. } => {
            pb.line(format!("search: {count} candidates"))
        }
        PipelineEvent::SelectionStarted { candidates } => {
            pb.status(format!("ranking {candidates} candidates"))
        }
        PipelineEvent::SelectionFinished { reference, .. } => {
            pb.line(format!("reference: {reference}"))
        }
        PipelineEvent::RoundStarted {
            round,
            max_rounds,
            references,
        } => pb.status(format!(
            "round {round}/{max_rounds}: generating with {references} reference(s)"
        )),
        PipelineEvent::GeneratorProgress { round, progress } => {
            match (progress.value, progress.max) {
                (Some(v), Some(m)) => pb.status(format!("round {round}: step {v}/{m}")),
                _ => pb.status(format!("round {round}: {}", progress.stage)),
            }
        }
        PipelineEvent::Generated { round, .. } => pb.status(format!("round {round}: judging")),
        PipelineEvent::Judged { round, verdict } => pb.line(format!(
            "round {round}: aligned = {}, score {:.1}/10: {}",
            verdict.aligned,
            verdict.score(),
            verdict.feedback
        )),
        PipelineEvent::StageFailed { stage, error, .. } => {
            pb.line(format!("{stage} failed: {error}"))
        }
        PipelineEvent::Degraded { degradation } => pb.line(format!("degraded: {degradation}")),
        _ => {}
    }
}

async fn run(args: Args, settings: Settings, edit: Option<Vec<u8>>) -> Result<ExitCode> {
    let progress = Progress::new(args.quiet);
    // Every setting is checked here, before the first paid call: a problem is a usage error.
    let pipeline = settings
        .pipeline_builder()
        .map_err(anyhow::Error::from)
        .and_then(|b| Ok(b.on_event(progress_callback(progress.clone())).build()?))
        .map_err(exit::usage)?;
    let mut request = Request::new(args.prompt.clone());
    if let Some(bytes) = edit {
        request = request.with_edit_image(bytes);
    }
    let result = pipeline.run(request).await;
    progress.finish();
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
            match &e {
                PipelineError::ReferenceRequired { image, .. }
                | PipelineError::Required { image, .. } => {
                    if let Some(image) = image {
                        write_png(&args.out, image)?;
                        eprintln!("image made before the loss: {}", args.out.display());
                    }
                    Ok(ExitCode::from(EXIT_REQUIRED_LOST))
                }
                // A required memory that could not be opened: checked before any paid call.
                PipelineError::Stage { source, .. }
                    if args.pipeline.memory.require_memory && is_store_failure(source) =>
                {
                    Ok(ExitCode::from(EXIT_REQUIRED_LOST))
                }
                _ => Ok(ExitCode::from(exit::FAILED)),
            }
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
