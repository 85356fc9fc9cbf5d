//! Does retrieval help on your prompts? Run the same prompts through several arms (the
//! generator alone, the full pipeline, ...) and have a vision model judge the images with
//! the metrics the field uses.
//!
//! ```text
//! iat2i evaluate --arms baseline,augmented --out eval/
//! iat2i evaluate --prompts WISE/data/cultural_common_sense.json \
//!     --arms baseline,augmented --metrics wiscore,pairwise --max-cost 20 --out wise-eval/
//! ```

use crate::common::{engines, exit, generators, logging};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;

use engines::EngineArgs;
use generators::GeneratorArgs;
use iat2i::batch::{Limits, PriceTable};
use iat2i::eval::{
    Arm, EvalConfig, EvalReport, Evaluation, Format, JudgePromptFile, Metric, PromptSet,
};
use iat2i::lmm::{OPENAI_DEFAULT_BASE, model_http_client};
use iat2i::selectors::{ClipEmbedder, ClipModelSource};
use iat2i::{GateMode, OpenAiChat, Pipeline, Settings};

const AFTER_HELP: &str = "Arms (--arms, comma-separated):
  baseline            the generator alone (the gate never asks for a reference)
  augmented           the full pipeline: gate, search, reference, judge, up to --max-rounds
  augmented-1-round   the full pipeline with a single round (no self-reflection loop)
  generate-first      generate first, retrieve only when the judge finds a knowledge gap

Metrics (--metrics, comma-separated; default all):
  checklist            Knowledge Checklist Score (WorldGenBench): the fraction of a prompt's
                       checklist items the judge finds in the image; prompts without a
                       checklist get one written by the judge first (stored and reused)
  wiscore              WiScore (WISE): consistency, realism, aesthetic quality 0-2 each,
                       (0.7 c + 0.2 r + 0.1 a) / 2, with WISE's category weights overall
  pairwise             the judge picks the better of two arms' images, asked twice with the
                       order swapped; a disagreement counts as a tie
  reference-agreement  CLIP similarity of the image to the reference it used (needs
                       --model-dir or the default CLIP download)

Judge prompt (--judge-prompt FILE) replaces the WiScore judge's built-in prompt
(wiscore.v1) with the file's text: WISE's own, say (the prompt of WISE_legacy/gpt_eval.py,
answered with lines 'Consistency: N', 'Realism: N', 'Aesthetic Quality: N', or of
WISE_Verified's vllm_eval.py, answered 'Score: 0' or 'Score: 1'; JSON with the three
scores also works). {{prompt}} and {{explanation}}, or the scripts' own
{prompt_data['Prompt']} and {prompt_data['Explanation']}, are filled in, and the text is
sent as one user message with the image, without a JSON schema. The WiScore judge is the
one WISE's prompts are written for; the checklist and pairwise judges keep their built-in
prompts. eval.json records the file's path and SHA-256, and its judgments are stored apart
from wiscore.v1's. Either way the WiScore is this harness's judgment, not WISE's official
number: the report says so next to it.

Outputs: <out>/arms/<arm>/<prompt>/ (images, reports, batch journal),
<out>/judgments.sqlite, <out>/eval.json and <out>/eval.html. Run the same command again
to resume: nothing already generated or judged is paid for twice.

Exit codes:
  0  done
  1  an error while running (a model endpoint, the disk)
  2  bad arguments or settings, found before any paid call (a prompt file that does not
     load, an unknown arm, --judge-prompt without the wiscore metric, no model endpoint)
  3  stopped early by a budget (the report says which)";

/// Evaluate arms of the pipeline on a prompt set with LMM judges.
#[derive(Parser, Debug)]
#[command(version, after_help = AFTER_HELP)]
pub struct Args {
    /// The prompt set: a WISE JSON file, a WorldGenBench file, or a manifest (.jsonl with
    /// prompt, category, checklist; or text, one prompt a line). Default: the built-in
    /// sample of 30 rare, post-cutoff and ambiguous prompts.
    #[arg(long)]
    prompts: Option<PathBuf>,
    /// The prompt set's format (default: detected from the file).
    #[arg(long, value_parser = ["wise", "worldgenbench", "manifest"])]
    format: Option<String>,
    /// Evaluate only the first N prompts.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    limit: Option<u64>,
    /// The arms, comma-separated (see below).
    #[arg(long, value_delimiter = ',', default_value = "baseline,augmented")]
    arms: Vec<String>,
    /// The metrics, comma-separated (see below).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "checklist,wiscore,pairwise,reference-agreement"
    )]
    metrics: Vec<Metric>,
    /// The output folder.
    #[arg(long, default_value = "eval-out")]
    out: PathBuf,
    /// The WiScore judge's prompt from this file instead of the built-in wiscore.v1
    /// (WISE's own prompt text, say; see below).
    #[arg(long, value_name = "FILE")]
    judge_prompt: Option<PathBuf>,

    /// Chat model for the gate and the pipeline's judges.
    #[arg(long, default_value = "gpt-4o-mini")]
    model: String,
    /// Chat model for the evaluation's judges (default: --model).
    #[arg(long)]
    judge_model: Option<String>,
    /// Base URL of the chat endpoint, ending in /v1.
    #[arg(long, env = "OPENAI_BASE_URL", hide_env_values = true, default_value = OPENAI_DEFAULT_BASE)]
    base_url: String,
    /// Rounds per prompt for the arms that loop.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10))]
    max_rounds: u32,
    /// A directory with a local CLIP model (default: downloaded on first use).
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// Cache directory: the reference memory and downloaded models.
    #[arg(long, env = "IAT2I_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Let reference downloads reach this host even when it is private or local (a
    /// mirror, a test server); repeat for several.
    #[arg(long = "allow-host", value_name = "HOST")]
    allow_hosts: Vec<String>,
    /// Seconds allowed for one chat call (image calls get 2.5 times as long).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
    /// Prompts generated at once per arm.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    concurrency: u64,
    /// Judge calls at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    judge_concurrency: u64,
    /// Stop starting paid calls past this estimated cost in US dollars (generation and
    /// judging).
    #[arg(long)]
    max_cost: Option<f64>,
    /// Stop starting paid calls past this many tokens.
    #[arg(long)]
    max_tokens: Option<u64>,
    /// Stop generating past this many images.
    #[arg(long)]
    max_images: Option<u64>,
    /// A TOML price table overriding the built-in estimates.
    #[arg(long)]
    prices: Option<PathBuf>,

    #[command(flatten)]
    engines: EngineArgs,

    #[command(flatten)]
    generator: GeneratorArgs,
}

/// Run `iat2i evaluate`.
pub async fn main(args: Args) -> ExitCode {
    logging::init("warn");
    match run(args).await {
        Ok(code) => ExitCode::from(code),
        Err(e) => exit::report("evaluate", &e),
    }
}

fn load_prompts(args: &Args) -> Result<PromptSet> {
    let mut set = match &args.prompts {
        None => PromptSet::builtin_sample(),
        Some(path) => match &args.format {
            Some(f) => PromptSet::load_as(path, f.parse::<Format>().map_err(anyhow::Error::msg)?)?,
            None => PromptSet::load(path)?,
        },
    };
    if let Some(n) = args.limit {
        set.prompts.truncate(n as usize);
    }
    Ok(set)
}

/// The library's settings these flags say (the arms set the gate mode and rounds).
fn settings(args: &Args) -> Settings {
    let mut s = Settings::default();
    s.chat.base_url = args.base_url.clone();
    s.chat.model = args.model.clone();
    s.chat.timeout = args.timeout;
    s.run.max_rounds = args.max_rounds;
    s.generator = args.generator.settings();
    s.engines = args.engines.settings();
    s.engines.allow_hosts = args.allow_hosts.clone();
    s.memory.model_dir = args.model_dir.clone();
    s.memory.cache_dir = args.cache_dir.clone();
    s.with_env()
}

fn arm(name: &str, pipeline: Arc<Pipeline>) -> Result<Arm> {
    Ok(match name {
        "baseline" => Arm::baseline(pipeline),
        "augmented" => Arm::new(name, pipeline).gate_mode(GateMode::FromPrompt),
        "augmented-1-round" => Arm::new(name, pipeline)
            .gate_mode(GateMode::FromPrompt)
            .max_rounds(1),
        "generate-first" => Arm::new(name, pipeline).gate_mode(GateMode::GenerateFirst),
        other => bail!(
            "unknown arm {other:?}: use baseline, augmented, augmented-1-round or generate-first"
        ),
    })
}

async fn run(args: Args) -> Result<u8> {
    // Everything checked before the first paid call is a usage error (exit 2).
    let prompts = load_prompts(&args).map_err(exit::usage)?;
    let wiscore_prompt = args
        .judge_prompt
        .as_deref()
        .map(JudgePromptFile::load)
        .transpose()
        .map_err(exit::usage)?;
    if wiscore_prompt.is_some() && !args.metrics.contains(&Metric::WiScore) {
        eprintln!(
            "evaluate: --judge-prompt replaces the WiScore judge's prompt, but --metrics has no \
             wiscore: add it, or leave --judge-prompt out"
        );
        return Ok(2);
    }
    let settings = settings(&args);
    let key = settings.chat.api_key.clone();
    if !settings.has_model_endpoint() {
        eprintln!(
            "evaluate: no model endpoint is configured: set OPENAI_API_KEY, or --base-url for a keyless server"
        );
        return Ok(2);
    }
    let shared = settings
        .pipeline_builder()
        .map_err(anyhow::Error::from)
        .and_then(|b| Ok(Arc::new(b.build()?)))
        .map_err(exit::usage)?;
    let arms = args
        .arms
        .iter()
        .map(|name| arm(name.trim(), shared.clone()))
        .collect::<Result<Vec<_>>>()
        .map_err(exit::usage)?;
    let judge_http = model_http_client(Duration::from_secs(args.timeout))?;
    let judge_model = args
        .judge_model
        .clone()
        .unwrap_or_else(|| args.model.clone());
    let mut judge = OpenAiChat::new(judge_http, &args.base_url, &judge_model)?;
    if let Some(k) = &key {
        judge = judge.with_api_key(k.clone());
    }
    let prices = match &args.prices {
        Some(p) => PriceTable::load_overrides(p).map_err(exit::usage)?,
        None => PriceTable::default(),
    };
    let config = EvalConfig {
        out: args.out.clone(),
        metrics: args.metrics.clone(),
        concurrency: args.concurrency as usize,
        judge_concurrency: args.judge_concurrency as usize,
        limits: Limits {
            max_images: args.max_images,
            max_tokens: args.max_tokens,
            max_cost: args.max_cost,
            deadline: None,
        },
        prices,
        wiscore_prompt,
        ..EvalConfig::default()
    };
    eprintln!(
        "evaluate: {} prompts ({}), arms {}, judge {judge_model}",
        prompts.prompts.len(),
        prompts.name,
        args.arms.join(", ")
    );
    let mut eval = Evaluation::new(prompts, Arc::new(judge), config);
    for a in arms {
        eval = eval.arm(a);
    }
    if args.metrics.contains(&Metric::ReferenceAgreement) {
        let source = match &args.model_dir {
            Some(dir) => ClipModelSource::LocalDir {
                dir: dir.clone(),
                tokenizer_dir: None,
            },
            None => ClipModelSource::default(),
        };
        eval = eval.embedder(Arc::new(ClipEmbedder::new(source)));
    }
    let stopping = eval.stopping();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("evaluate: stopping after the calls in flight (run again to resume)");
            stopping.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let report = eval.run().await.context("the evaluation failed")?;
    summarise(&report);
    println!(
        "report: {} and {}",
        args.out.join("eval.json").display(),
        args.out.join("eval.html").display()
    );
    if let Some(h) = &report.halted {
        eprintln!("evaluate: stopped early: {h}; run again with a larger budget to finish");
        return Ok(3);
    }
    Ok(0)
}

/// The terminal summary: per arm, per pair, and what the WiScores are.
fn summarise(report: &EvalReport) {
    for a in &report.arms {
        let show = |s: &iat2i::eval::Score| match (s.mean, s.ci_low, s.ci_high) {
            (Some(m), Some(l), Some(h)) => format!("{m:.3} [{l:.3}, {h:.3}] n={}", s.n),
            _ => "-".into(),
        };
        let overall = match a.wiscore_overall {
            Some(o) => format!("  WiScore overall {o:.3}"),
            None => String::new(),
        };
        println!(
            "{:<20} images {:>3}/{:<3} checklist {}  WiScore {}{overall}  reference used {:.0} % (lost {:.0} %)",
            a.name,
            a.images,
            report.prompts_total,
            show(&a.checklist),
            show(&a.wiscore),
            a.reference_used * 100.0,
            a.reference_lost * 100.0
        );
    }
    for p in &report.pairs {
        println!(
            "{} vs {}: {:.0} % / {:.0} % ties / {:.0} % (n={}, {} missing)",
            p.a,
            p.b,
            p.a_wins * 100.0,
            p.ties * 100.0,
            p.b_wins * 100.0,
            p.n,
            p.missing
        );
    }
    if let Some(w) = &report.wise {
        println!("{}: {}", w.edition.name(), w.note);
    }
    if let Some(s) = &report.wiscore_source {
        println!("WiScore: {}", s.note);
    }
}
