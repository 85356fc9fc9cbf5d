//! An evaluation with `iat2i::eval`: the same prompts through two arms that differ only
//! by image generator (OpenAI's against Gemini's, or another backend), the images judged
//! by a vision model with the Knowledge Checklist Score and the swapped pairwise
//! preference. `iat2i evaluate` does the same with every option (its arms differ by gate
//! mode instead); this is the API underneath.
//!
//! ```text
//! export OPENAI_API_KEY=sk-... GEMINI_API_KEY=...
//! cargo run --example eval_two_generators                      # 3 built-in prompts
//! cargo run --example eval_two_generators -- chat-images prompts.jsonl
//! ```
//!
//! Writes `eval-two/eval.json` and `eval-two/eval.html`; run it again to resume.

use iat2i::batch::Limits;
use iat2i::eval::{Arm, EvalConfig, Evaluation, Metric, PromptSet, Score};
use iat2i::lmm::model_http_client;
use iat2i::settings::{Backend, Settings};
use iat2i::{OpenAiChat, Pipeline};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const USAGE: &str = "usage: cargo run --example eval_two_generators -- [BACKEND [PROMPTS]]
Generates every prompt with OpenAI's image model and with BACKEND (gemini by default,
or chat-images), then has gpt-4o-mini judge both. PROMPTS is a prompt
file (WISE, WorldGenBench, .jsonl or .txt); default: 3 prompts of the built-in sample.
Needs OPENAI_API_KEY and the other backend's key (GEMINI_API_KEY, OPENROUTER_API_KEY).
Stops at 2 USD (estimated) or 20 images; writes eval-two/eval.html.";

/// The full pipeline (gate, search, reference, judge) with `backend` as its generator.
fn pipeline(backend: Backend) -> Result<Arc<Pipeline>, Box<dyn std::error::Error>> {
    let mut settings = Settings::default().with_env(); // every key from the environment
    if !settings.has_model_endpoint() {
        return Err("no model endpoint: set OPENAI_API_KEY (or OPENAI_BASE_URL)".into());
    }
    settings.generator.generator = backend;
    settings.run.max_rounds = 2;
    Ok(Arc::new(settings.pipeline_builder()?.build()?))
}

async fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let name = args.first().map_or("gemini", String::as_str);
    let versus: Backend = name.parse()?;
    if versus == Backend::Openai {
        return Err("the second arm must not be openai: that is the first".into());
    }
    let prompts = match args.get(1) {
        Some(path) => PromptSet::load(path.as_ref())?, // the format is detected
        None => {
            let mut sample = PromptSet::builtin_sample(); // each prompt has a checklist
            sample.prompts.truncate(3);
            sample
        }
    };
    let openai = Arm::new("openai", pipeline(Backend::Openai)?);
    let other = Arm::new(name, pipeline(versus)?);
    let judge = OpenAiChat::from_env(model_http_client(Duration::from_secs(120))?, "gpt-4o-mini")?;
    let config = EvalConfig {
        out: PathBuf::from("eval-two"),
        metrics: vec![Metric::Checklist, Metric::Pairwise],
        // One budget for generating and judging; every arm's images are priced as the
        // first arm's generator's.
        limits: Limits {
            max_cost: Some(2.0),
            max_images: Some(20),
            ..Limits::default()
        },
        ..EvalConfig::default()
    };
    let eval = Evaluation::new(prompts, Arc::new(judge), config);
    let report = eval.arm(openai).arm(other).run().await?;
    let show = |s: &Score| match (s.mean, s.ci_low, s.ci_high) {
        (Some(m), Some(lo), Some(hi)) => format!("{m:.2} [{lo:.2}, {hi:.2}] (n={})", s.n),
        _ => format!("- (n={})", s.n),
    };
    for a in &report.arms {
        let failed = report.generation.get(&a.name).map_or(0, |g| g.failed);
        let (images, checklist) = (a.images, show(&a.checklist));
        println!(
            "{:<12} {images} image(s), {failed} failed, checklist {checklist}",
            a.name
        );
    }
    for p in &report.pairs {
        let (a, t, b, n) = (p.a_wins * 100.0, p.ties * 100.0, p.b_wins * 100.0, p.n);
        println!(
            "{} vs {}: {a:.0} % / {t:.0} % ties / {b:.0} % (n={n})",
            p.a, p.b
        );
    }
    if let Some(why) = &report.halted {
        println!("stopped early: {why}; run again with a larger budget to finish");
    }
    println!("report: eval-two/eval.html");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
    } else if let Err(e) = run(&args).await {
        eprintln!("eval_two_generators: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
