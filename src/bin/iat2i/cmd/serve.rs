//! `iat2i serve`: the OpenAI Images API, internet-augmented, for pipelines in any language.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use iat2i::batch::PriceTable;
use iat2i::serve::{ApiKey, ServeConfig, Server, model_name, models_from_toml};

use crate::common::pipeline::PipelineArgs;
use crate::common::{exit, logging, parse_duration};

/// Serve internet-augmented image generation behind the OpenAI Images API: point an
/// OpenAI client's base URL at http://HOST:PORT/v1 and its images become knowledge-aware.
///
/// POST /v1/images/generations and /v1/images/edits take OpenAI's request fields and
/// answer OpenAI's response (data[].b64_json, usage) plus an `iat2i` field: the report id,
/// the reference used with its source and licence, rounds and what the run lost.
/// GET /reports/{id} shows a run to a person; GET / is a form to try a prompt.
/// /healthz, /readyz (once the CLIP model is loaded) and /metrics (Prometheus) are for
/// operations. The CLIP model is loaded once and the reference memory is shared by every
/// request (with QDRANT_URL, by every replica).
///
/// The pipeline flags below configure the one pipeline served (model name: iat2i/<image
/// model>, e.g. iat2i/gpt-image-1); with --pipelines FILE, the file's pipelines are served
/// instead, each starting from these flags.
#[derive(Parser, Debug)]
#[command(version, after_help = AFTER_HELP)]
pub struct Args {
    /// Address to listen on (0.0.0.0:8080 to serve other machines: give keys then).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: SocketAddr,
    /// A TOML file of pipelines, each a `[[model]]` table with a name and what differs
    /// from the flags: `generator = { generator = "gemini" }`, `chat = {...}`, `run = {...}`.
    /// The first is the default; without the file, the flags make the one pipeline.
    #[arg(long, value_name = "FILE")]
    pipelines: Option<PathBuf>,
    /// The `model` name of the flags' pipeline (default: iat2i/<image model>).
    #[arg(long, value_name = "NAME")]
    model_name: Option<String>,
    /// API keys, one `name:key` a line (the name is what spend and logs are kept under;
    /// keys of 16 characters or more). IAT2I_SERVE_KEYS may hold the same lines, comma
    /// separated. Without keys only loopback callers are served.
    #[arg(long, value_name = "FILE")]
    keys_file: Option<PathBuf>,
    /// Serve callers from any address without keys (behind your own gateway).
    #[arg(long)]
    insecure_no_auth: bool,
    /// Requests generating at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1024))]
    concurrency: u64,
    /// Requests waiting beyond those; more are answered 429 with Retry-After.
    #[arg(long, default_value_t = 64)]
    queue: usize,
    /// Requests of one key at once, running or waiting.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1024))]
    per_key_concurrency: u64,
    /// Images one key may have generated per UTC day (kept across restarts).
    #[arg(long, value_name = "N")]
    daily_images: Option<u64>,
    /// Estimated US dollars one key may spend per UTC day (kept across restarts; every
    /// model needs a price, built in or from --prices).
    #[arg(long, value_name = "USD")]
    daily_cost: Option<f64>,
    /// A TOML price table adding to or overriding the built-in estimates.
    #[arg(long, value_name = "FILE")]
    prices: Option<PathBuf>,
    /// Where the spend ledger and the reports are kept (default: <cache>/serve).
    #[arg(long, env = "IAT2I_STATE_DIR", value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// The largest request body in MiB (413 beyond it, before any paid call).
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u64).range(1..=512))]
    max_body_mb: u64,
    /// The longest prompt in characters (400 beyond it).
    #[arg(long, default_value_t = 32_000)]
    max_prompt_chars: usize,
    /// A request's deadline (no paid call starts after it); keep it under your clients'
    /// read timeout (OpenAI's SDKs: 600s).
    #[arg(long, value_parser = parse_duration, default_value = "540s")]
    request_timeout: Duration,
    /// After SIGTERM/SIGINT, how long running requests may take to finish.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    shutdown_grace: Duration,

    #[command(flatten)]
    pipeline: PipelineArgs,
}

const AFTER_HELP: &str = "Examples:
  # OpenAI behind it, on this machine only:
  export OPENAI_API_KEY=sk-...
  iat2i serve
  # For other machines, with keys and a daily budget per key:
  iat2i serve --listen 0.0.0.0:8080 --keys-file keys.txt --daily-cost 20 --log-format json
  # Then, from Python:
  from openai import OpenAI
  client = OpenAI(base_url=\"http://localhost:8080/v1\", api_key=\"sk-local-0123456789\")
  img = client.images.generate(model=\"iat2i/gpt-image-1\", prompt=\"A Graphorn at dusk\")

Errors are OpenAI's error object with OpenAI's status codes (400, 401, 404, 413, 429 with
Retry-After, 5xx); `x-should-retry: false` tells OpenAI's SDKs not to retry an error after
which a paid call may have been made.

Exit codes:
  0  stopped by SIGTERM/SIGINT after the running requests finished
  1  the server failed (the address is taken, the state directory is unwritable)
  2  bad arguments or settings (a pipelines file that does not load, a key file with a
     short key, --daily-cost with an unpriced model)

Environment:
  OPENAI_API_KEY, GEMINI_API_KEY, OPENROUTER_API_KEY, ...  the model keys (never printed)
  IAT2I_SERVE_KEYS  API keys for clients, `name:key` comma separated
  QDRANT_URL        a Qdrant server shared by every replica (else qdrant-edge in the cache)
  IAT2I_CACHE_DIR   the cache (reference memory, models); IAT2I_STATE_DIR the state";

fn keys(args: &Args) -> Result<Vec<ApiKey>> {
    let mut text = String::new();
    if let Some(path) = &args.keys_file {
        text = std::fs::read_to_string(path)
            .with_context(|| format!("--keys-file {}: cannot read it", path.display()))?;
    }
    if let Ok(env) = std::env::var("IAT2I_SERVE_KEYS") {
        text.push('\n');
        text.push_str(&env.replace(',', "\n"));
    }
    ApiKey::parse_lines(&text).map_err(|e| anyhow::anyhow!("the API keys: {e}"))
}

fn config(args: &Args) -> Result<ServeConfig> {
    let base = args.pipeline.settings();
    let models = match &args.pipelines {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--pipelines {}: cannot read it", path.display()))?;
            let models = models_from_toml(&text, &base)
                .with_context(|| format!("--pipelines {}", path.display()))?;
            anyhow::ensure!(
                !models.is_empty(),
                "--pipelines {}: no [[model]]",
                path.display()
            );
            models
        }
        None => {
            let name = args.model_name.clone().unwrap_or_else(|| model_name(&base));
            vec![(name, base)]
        }
    };
    for (name, s) in &models {
        anyhow::ensure!(
            s.has_model_endpoint(),
            "pipeline {name}: no model endpoint: set OPENAI_API_KEY, or --base-url for a keyless server"
        );
    }
    let mut c = ServeConfig::new(models);
    c.keys = keys(args)?;
    c.insecure_no_auth = args.insecure_no_auth;
    c.concurrency = usize::try_from(args.concurrency).unwrap_or(8);
    c.queue = args.queue;
    c.per_key_concurrency = usize::try_from(args.per_key_concurrency).unwrap_or(4);
    c.daily_images = args.daily_images;
    c.daily_cost = args.daily_cost;
    if let Some(p) = &args.prices {
        c.prices = PriceTable::load_overrides(p)?;
    }
    if let Some(dir) = &args.state_dir {
        c.state_dir = dir.clone();
    }
    c.max_body_bytes = usize::try_from(args.max_body_mb << 20).unwrap_or(usize::MAX);
    c.max_prompt_chars = args.max_prompt_chars;
    c.request_timeout = args.request_timeout;
    c.shutdown_grace = args.shutdown_grace;
    Ok(c)
}

/// Run `iat2i serve`.
pub async fn main(args: Args) -> ExitCode {
    logging::init_service("info,qdrant_edge=warn");
    let server = match config(&args).and_then(|c| Ok(Server::new(c)?)) {
        Ok(s) => s,
        Err(e) => return exit::report("serve", &exit::usage(e)),
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("serve: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().unwrap_or(args.listen);
    tracing::info!(%addr, models = ?server.models(), "serve: listening");
    eprintln!(
        "serve: listening on http://{addr} (OpenAI base URL http://{addr}/v1); pipelines: {}",
        server.models().join(", ")
    );
    match server.run(listener, shutdown_signal()).await {
        Ok(()) => {
            eprintln!("serve: stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("serve: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
