//! Run a manifest of prompts unattended: resumable, within budget, sharded, with a
//! contact sheet to review in the morning.
//!
//! ```text
//! iat2i batch run prompts.jsonl --out night/ --concurrency 8 \
//!     --max-cost 20 --deadline 6h
//! iat2i batch summary --out night/
//! ```

use crate::common::logging::LogFormat;
use crate::common::{engines, generators, logging, memory, parse_duration};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use engines::EngineArgs;
use generators::GeneratorArgs;
use iat2i::HaltKind;
use iat2i::Settings;
use iat2i::batch::{
    BatchEvent, BatchOutcome, Budget, ExitStatus, Format, Journal, Ledger, Limits,
    MAX_PROMPT_BYTES, Manifest, ManifestOptions, PriceTable, Runner, RunnerConfig, Shard,
    StopCause, fingerprint, folder_journals, write_summary,
};
use iat2i::lmm::OPENAI_DEFAULT_BASE;
use iat2i::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use memory::MemoryArgs;

/// Generate an image for every job of a manifest, unattended.
///
/// Jobs are recorded in a SQLite journal next to the outputs, so a batch that was killed
/// resumes where it stopped and a job already done is never paid for again. Outputs go to
/// <out>/<job-id>/{image.png, report.json, reference.*, reference.json}; `summary` writes
/// summary.json and index.html (a contact sheet) for all shards.
#[derive(Parser, Debug)]
#[command(name = "batch", version, after_help = HELP)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run (or resume) a manifest.
    Run(Box<RunArgs>),
    /// Merge the shards' journals in --out into summary.json and index.html.
    Summary {
        /// The output folder (its journal*.sqlite files are merged).
        #[arg(long, default_value = "batch-out")]
        out: PathBuf,
        /// Journals to merge instead (default: every journal*.sqlite in --out).
        #[arg(long = "journal")]
        journals: Vec<PathBuf>,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// The manifest: .jsonl (id, prompt, edit_image, gate_mode, max_rounds, metadata),
    /// .csv (a prompt column, optional id) or .txt (one prompt a line). Other extensions
    /// need --format.
    manifest: PathBuf,
    /// What the manifest holds when its extension does not say: jsonl, csv or text.
    #[arg(long)]
    format: Option<Format>,
    /// The longest prompt accepted, in bytes; longer lines are bad lines.
    #[arg(long, default_value_t = MAX_PROMPT_BYTES)]
    max_prompt_bytes: usize,
    /// The output folder (the journal lives there too).
    #[arg(long, default_value = "batch-out")]
    out: PathBuf,
    /// Jobs at once (they share one pipeline).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Refuse the whole manifest when any line is bad (default: report and skip them).
    #[arg(long)]
    strict: bool,
    /// Check the manifest, show what is done and what the budgets allow; call no model.
    #[arg(long)]
    dry_run: bool,

    /// Stop before an image call could pass this many images. Never exceeded: each call
    /// reserves every image it may return. Counted over the whole --out folder: every
    /// shard, every earlier run and restart (the journals record each paid call).
    #[arg(long)]
    max_images: Option<u64>,
    /// Stop once this many tokens (chat and image) are spent, over the whole --out folder.
    /// A call's tokens are known only when it returns, so the total may pass the cap by
    /// at most one call per running job.
    #[arg(long)]
    max_tokens: Option<u64>,
    /// Stop at this estimated cost in US dollars, over the whole --out folder. Image calls
    /// reserve their price first; a chat call is priced when it returns, so the total may
    /// pass the cap by at most one chat call per running job. Every model must have a
    /// price (built in, or from --prices).
    #[arg(long)]
    max_cost: Option<f64>,
    /// A TOML price table adding to or overriding the built-in estimates
    /// ([models."gpt-image-1"] input_per_mtok, output_per_mtok, per_image).
    #[arg(long)]
    prices: Option<PathBuf>,
    /// Start no paid call after this long (e.g. 6h, 90m, 300s).
    #[arg(long, value_parser = parse_duration)]
    deadline: Option<Duration>,
    /// A job's own time limit, checked before each of its paid calls: past it, the job
    /// keeps its best image so far, or fails (class timeout) when it has none.
    #[arg(long, value_parser = parse_duration)]
    job_timeout: Option<Duration>,
    /// How long past --job-timeout a call already in flight may run before the job is
    /// abandoned anyway (failed, class timeout; that call may still be billed).
    #[arg(long, value_parser = parse_duration, default_value = "120s")]
    job_grace: Duration,
    /// After SIGINT/SIGTERM, let running jobs finish for this long, then stop them
    /// before their next paid call.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    grace: Duration,
    /// Runs of a job whose failure is transient (rate limited, service unavailable).
    #[arg(long, default_value_t = 3)]
    max_attempts: u32,
    /// Wait before retrying a transient failure (doubled each time).
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    backoff: Duration,
    /// Stop the batch after this many consecutive authentication or quota failures.
    #[arg(long, default_value_t = 3)]
    breaker: u32,

    /// This machine's shard, K/N (1-based). Default: from JOB_COMPLETION_INDEX and
    /// --shard-count (a Kubernetes Indexed Job), else 1/1.
    #[arg(long)]
    shard: Option<String>,
    /// The shard count when K comes from JOB_COMPLETION_INDEX.
    #[arg(long, env = "IAT2I_SHARD_COUNT")]
    shard_count: Option<String>,

    /// Do not write summary.json and index.html at the end.
    #[arg(long)]
    no_summary: bool,

    /// Chat model for the gate and the judges.
    #[arg(long, default_value = "gpt-4o-mini")]
    model: String,
    /// Base URL of the chat endpoint, ending in /v1.
    #[arg(long, env = "OPENAI_BASE_URL", hide_env_values = true, default_value = OPENAI_DEFAULT_BASE)]
    base_url: String,
    /// Rounds per job (a job's own max_rounds wins).
    #[arg(long, default_value_t = 3)]
    max_rounds: u32,
    /// Gate mode (a job's own gate_mode wins): from-prompt, generate-first, always, never.
    #[arg(long, default_value = "from-prompt")]
    gate_mode: GateMode,
    /// A directory with a local CLIP model (default: downloaded on first use).
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// Seconds allowed for one chat call (image calls get 2.5 times as long).
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Also fetch images from this host even though it is private (a local mirror, an
    /// internal image host); repeatable.
    #[arg(long = "allow-host", value_name = "HOST")]
    allow_hosts: Vec<String>,

    #[command(flatten)]
    engines: EngineArgs,

    #[command(flatten)]
    generator: GeneratorArgs,

    #[command(flatten)]
    memory: MemoryArgs,
}

const HELP: &str = "Exit codes:
  0    every job of the shard is done
  1    an error outside the jobs (journal, disk, configuration, an unrecordable paid call)
  2    the manifest or the command line is unusable
  3    the batch ran to the end but some jobs failed (see summary.json)
  4    a budget (--max-images, --max-tokens, --max-cost) or --deadline stopped it
  5    the circuit breaker stopped it (authentication or quota failures: fix, re-run)
  130  interrupted by SIGINT/SIGTERM (a second signal stops at once)
Jobs not run stay pending; running the same command again resumes.

Budgets are batch-wide: every paid call is written to the shard's journal before it is
made and settled when it returns, and the caps count every journal in --out (all shards,
all earlier runs, calls cut off by a kill as possibly billed). Give every shard the same
caps: each stops when the folder's total reaches them.

Nightly, with cron (one line):
  0 1 * * * cd /srv/iat2i && batch run prompts.jsonl --out /data/nightly --max-cost 25 --deadline 6h --log-format json >> /var/log/iat2i.log 2>&1; batch summary --out /data/nightly

Environment:
  OPENAI_API_KEY      API key (never printed)
  OPENAI_BASE_URL     default for --base-url
  QDRANT_URL          a Qdrant server shared by every shard (QDRANT_API_KEY if it needs one)
  JOB_COMPLETION_INDEX, IAT2I_SHARD_COUNT   shard from a Kubernetes Indexed Job";

/// Run `iat2i batch`.
pub async fn main(cli: Args) -> ExitCode {
    logging::init("warn");
    let status = match cli.command {
        Command::Run(args) => run(*args).await,
        Command::Summary { out, journals } => summary(&out, journals),
    };
    match status {
        Ok(s) => ExitCode::from(s.code()),
        Err(e) => {
            eprintln!("batch: {e:#}");
            ExitCode::from(ExitStatus::Error.code())
        }
    }
}

fn summary(out: &Path, mut journals: Vec<PathBuf>) -> Result<ExitStatus> {
    if journals.is_empty() {
        journals = folder_journals(out)?;
    }
    if journals.is_empty() {
        eprintln!("batch: no journal*.sqlite in {}", out.display());
        return Ok(ExitStatus::Usage);
    }
    let s = write_summary(&journals, out)?;
    println!(
        "{} jobs {:?}; {} images, estimated {:.2} USD",
        s.jobs, s.by_state, s.images, s.cost_usd
    );
    if s.interrupted_paid_calls > 0 {
        eprintln!(
            "batch: {} paid call(s) were in flight when a process died: they may have been billed ({} image(s), {:.3} USD at their reservation, not in the figures above)",
            s.interrupted_paid_calls, s.possibly_billed.images, s.possibly_billed.cost_usd
        );
    }
    println!("summary: {}", out.join("summary.json").display());
    println!("contact sheet: {}", out.join("index.html").display());
    Ok(ExitStatus::AllDone)
}

fn shard_of(args: &RunArgs) -> Result<Shard, iat2i::batch::BatchError> {
    if let Some(s) = &args.shard {
        return Shard::parse(s);
    }
    let index = std::env::var("JOB_COMPLETION_INDEX").ok();
    Ok(
        Shard::from_completion_index(index.as_deref(), args.shard_count.as_deref())?
            .unwrap_or_default(),
    )
}

/// The library's settings these flags say; every shard of a cluster shares one Qdrant
/// server when QDRANT_URL is set (deploy/k8s/).
fn settings(args: &RunArgs) -> Settings {
    let mut s = Settings::default();
    s.chat.base_url = args.base_url.clone();
    s.chat.model = args.model.clone();
    s.chat.timeout = args.timeout;
    s.run.max_rounds = args.max_rounds;
    s.run.gate_mode = args.gate_mode;
    s.generator = args.generator.settings();
    s.engines = args.engines.settings();
    s.engines.allow_hosts = args.allow_hosts.clone();
    s.memory = args.memory.settings();
    s.memory.model_dir = args.model_dir.clone();
    s.with_env()
}

async fn run(args: RunArgs) -> Result<ExitStatus> {
    let shard = match shard_of(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("batch: {e}");
            return Ok(ExitStatus::Usage);
        }
    };
    let options = ManifestOptions {
        format: args.format,
        max_prompt_bytes: args.max_prompt_bytes,
    };
    let manifest = match Manifest::load_with(&args.manifest, &options) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("batch: {e}");
            return Ok(ExitStatus::Usage);
        }
    };
    for e in &manifest.errors {
        eprintln!("batch: {}: {e}", args.manifest.display());
    }
    let manifest = if args.strict {
        match manifest.strict() {
            Ok(m) => m,
            Err(e) => {
                eprintln!("batch: {e}");
                return Ok(ExitStatus::Usage);
            }
        }
    } else {
        manifest
    };
    let prices = match &args.prices {
        Some(p) => match PriceTable::load_overrides(p) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("batch: {e}");
                return Ok(ExitStatus::Usage);
            }
        },
        None => PriceTable::default(),
    };
    let jobs: Vec<_> = manifest
        .jobs
        .into_iter()
        .filter(|j| shard.owns(&j.id))
        .collect();
    let settings = settings(&args);
    if !args.dry_run && !settings.has_model_endpoint() {
        eprintln!(
            "batch: no model endpoint is configured: set OPENAI_API_KEY, or --base-url for a keyless server"
        );
        return Ok(ExitStatus::Usage);
    }
    let pipeline = Arc::new(settings.pipeline_builder()?.build()?);
    let fps: Vec<String> = jobs.iter().map(|j| fingerprint(j, &pipeline)).collect();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let journal_path = args.out.join(shard.journal_name());
    if args.dry_run {
        return dry_run(&args, &journal_path, &jobs, &fps, &pipeline, &prices, shard);
    }
    if let Err(e) = shard.check_folder(&args.out) {
        eprintln!("batch: {e}");
        return Ok(ExitStatus::Usage);
    }
    let journal = Arc::new(Journal::open(&journal_path)?);
    // Again with our journal in place: of two runs started at once with different
    // splits, at least one sees the other.
    if let Err(e) = shard.check_folder(&args.out) {
        eprintln!("batch: {e}");
        return Ok(ExitStatus::Usage);
    }
    let out = args.out.clone();
    let plan = journal.plan(&jobs, &fps, false, |job, fp| {
        iat2i::batch::JobOutputs::complete(&out, job, fp).then(|| job.id.clone())
    })?;
    eprintln!(
        "batch: shard {shard}: {} job(s) to run, {} already done, {} changed, {} resumed from a dead run",
        plan.to_run.len(),
        plan.already_done,
        plan.changed,
        plan.resumed
    );
    let models = pipeline.models();
    let limits = Limits {
        max_images: args.max_images,
        max_tokens: args.max_tokens,
        max_cost: args.max_cost,
        deadline: args.deadline.map(|d| Instant::now() + d),
    };
    let budget = match Budget::new(
        limits,
        prices,
        models.judge.as_deref().unwrap_or(&args.model),
        &models.generator,
    ) {
        Ok(b) => Arc::new(b.with_ledger(Arc::new(Ledger::new(journal.clone())))),
        Err(e) => {
            eprintln!("batch: {e}");
            return Ok(ExitStatus::Usage);
        }
    };
    report_spent(&budget);
    let stopping = Arc::new(AtomicBool::new(false));
    spawn_signal_handler(stopping.clone(), budget.clone(), args.grace);
    let config = RunnerConfig {
        out: args.out.clone(),
        concurrency: args.concurrency,
        job_timeout: args.job_timeout,
        job_grace: args.job_grace,
        max_attempts: args.max_attempts.max(1),
        backoff: args.backoff,
        breaker_threshold: args.breaker.max(1),
    };
    let progress = progress_bar(plan.to_run.len());
    let runner = Runner::new(pipeline, journal, budget, config, stopping)
        .on_event(reporter(logging::format(), progress.clone()));
    let outcome = runner.run(plan.to_run).await?;
    if let Some(pb) = &progress {
        pb.finish_and_clear();
    }
    if !args.no_summary {
        let journals = folder_journals(&args.out)?;
        write_summary(&journals, &args.out)?;
    }
    Ok(finish(&outcome))
}

/// Say what the folder has spent before this run (earlier runs, other shards).
fn report_spent(budget: &Budget) {
    let Ok(t) = budget.totals() else { return };
    if t.billed.calls + t.interrupted.calls + t.in_flight.calls == 0 {
        return;
    }
    eprintln!(
        "batch: already spent in this folder: {} image(s), {} token(s), {:.3} USD estimated{}",
        t.billed.images,
        t.billed.tokens(),
        t.billed.cost_usd,
        if t.interrupted.calls > 0 {
            format!(
                "; {} call(s) cut off by a dead process count as possibly billed ({} image(s), {:.3} USD reserved)",
                t.interrupted.calls, t.interrupted.images, t.interrupted.cost_usd
            )
        } else {
            String::new()
        }
    );
}

fn finish(o: &BatchOutcome) -> ExitStatus {
    eprintln!(
        "batch: {} done, {} failed, {} skipped, {} left pending",
        o.done, o.failed, o.skipped, o.pending
    );
    match &o.stop {
        Some(StopCause::CircuitBreaker { class, message }) => {
            eprintln!(
                "batch: stopped by the circuit breaker after repeated {class} failures: {message}\nbatch: {}",
                class.advice()
            );
            ExitStatus::CircuitBreaker
        }
        Some(StopCause::Interrupted) => {
            eprintln!("batch: interrupted; the rest stays pending for the next run");
            ExitStatus::Interrupted
        }
        Some(StopCause::Halted(h)) => {
            eprintln!("batch: {h}; the rest stays pending for the next run");
            match h.kind {
                HaltKind::Cancelled => ExitStatus::Interrupted,
                HaltKind::Unrecorded => ExitStatus::Error,
                _ => ExitStatus::Budget,
            }
        }
        None if o.failed > 0 => ExitStatus::SomeFailed,
        None => ExitStatus::AllDone,
    }
}

fn dry_run(
    args: &RunArgs,
    journal_path: &Path,
    jobs: &[iat2i::batch::Job],
    fps: &[String],
    pipeline: &Pipeline,
    prices: &PriceTable,
    shard: Shard,
) -> Result<ExitStatus> {
    let plan = if journal_path.exists() {
        Journal::open_read_only(journal_path)?.plan(jobs, fps, true, |_, _| None)?
    } else {
        iat2i::batch::Plan {
            to_run: jobs.to_vec(),
            ..Default::default()
        }
    };
    let rounds: u64 = plan
        .to_run
        .iter()
        .map(|j| u64::from(j.max_rounds.unwrap_or(pipeline.max_rounds())))
        .sum();
    let images = args.max_images.map_or(rounds, |m| m.min(rounds));
    let p = prices.of(&pipeline.models().generator);
    println!("shard {shard}: {} job(s) in this shard", jobs.len());
    println!(
        "  {} to run, {} already done, {} changed since done, {} left running by a dead run",
        plan.to_run.len(),
        plan.already_done,
        plan.changed,
        plan.resumed
    );
    println!(
        "  at most {images} image(s) ({rounds} rounds over the jobs to run{})",
        args.max_images
            .map(|m| format!(", --max-images {m}"))
            .unwrap_or_default()
    );
    let image_cost = images as f64 * p.per_image;
    match args.max_cost {
        Some(c) => println!("  spend at most {c:.2} USD (--max-cost)"),
        None => println!(
            "  images alone about {image_cost:.2} USD at {:.3} USD each{} (chat calls extra; no --max-cost)",
            p.per_image,
            if p.estimate { " (estimate)" } else { "" }
        ),
    }
    if let Some(t) = args.max_tokens {
        println!("  at most {t} tokens (--max-tokens)");
    }
    println!("dry run: no model was called");
    Ok(ExitStatus::AllDone)
}

fn progress_bar(total: usize) -> Option<ProgressBar> {
    if logging::format() == LogFormat::Json || !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = ProgressBar::new(total as u64);
    let style =
        ProgressStyle::with_template("{bar:30} {pos}/{len} jobs [{elapsed} eta {eta}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style);
    Some(pb)
}

fn reporter(
    format: LogFormat,
    pb: Option<ProgressBar>,
) -> impl Fn(&BatchEvent) + Send + Sync + 'static {
    let counts = std::sync::Mutex::new([0usize; 3]);
    move |event| {
        let BatchEvent::JobFinished {
            id,
            state,
            class,
            message,
            ms,
            cost_usd,
            total_cost_usd,
        } = event
        else {
            return;
        };
        if let Some(pb) = &pb {
            if let Ok(mut c) = counts.lock() {
                match state.as_str() {
                    "done" => c[0] += 1,
                    "failed" => c[1] += 1,
                    _ => c[2] += 1,
                }
                pb.set_message(format!(
                    "{} done, {} failed, {} other; {total_cost_usd:.2} USD",
                    c[0], c[1], c[2]
                ));
            }
            pb.inc(1);
            return;
        }
        match format {
            LogFormat::Json => {
                if let Ok(line) = serde_json::to_string(event) {
                    println!("{line}");
                }
            }
            LogFormat::Text | LogFormat::Auto => {
                let class = class.map(|c| format!(" [{c}]")).unwrap_or_default();
                println!(
                    "job {id}: {}{class} in {ms} ms, {cost_usd:.3} USD (total {total_cost_usd:.2}): {message}",
                    state.as_str()
                );
            }
        }
    }
}

/// First SIGINT/SIGTERM: start no job; after the grace period stop running ones before
/// their next paid call. Second: exit at once (the journal is consistent at every
/// commit; rows left running are taken up again next time).
fn spawn_signal_handler(stopping: Arc<AtomicBool>, budget: Arc<Budget>, grace: Duration) {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            eprintln!("batch: cannot listen for signals; Ctrl-C stops at once");
            return;
        };
        tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
        eprintln!(
            "batch: stopping: no new jobs; running ones get {}s to finish (signal again to stop at once)",
            grace.as_secs()
        );
        stopping.store(true, Ordering::SeqCst);
        let b = budget.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            b.stop_now();
        });
        tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
        eprintln!("batch: stopping at once");
        std::process::exit(i32::from(ExitStatus::Interrupted.code()));
    });
}
