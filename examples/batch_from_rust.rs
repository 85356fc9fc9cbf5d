//! A batch from Rust with `iat2i::batch`: a manifest, a SQLite journal that makes the
//! batch resumable (run it twice: the second run pays for nothing), limits on images,
//! cost and time, a runner doing two jobs at once, and the contact sheet. `iat2i batch
//! run` does the same with every option; this is the API underneath.
//!
//! ```text
//! OPENAI_API_KEY=sk-... cargo run --example batch_from_rust -- prompts.jsonl night/
//! cargo run --example batch_from_rust -- --offline    # stand-in models, no key
//! ```

use async_trait::async_trait;
use iat2i::batch::{
    Budget, Format, JobOutputs, Journal, Limits, Manifest, PriceTable, Runner, RunnerConfig,
    fingerprint, folder_journals, write_summary,
};
use iat2i::generator::{GenerationRequest, ImageError};
use iat2i::lmm::{JsonReply, LmmError};
use iat2i::prelude::*;
use iat2i::{Generation, ReviewInput, Scores, Settings};
use std::path::PathBuf;
use std::sync::{Arc, atomic::AtomicBool};
use std::time::{Duration, Instant};

const USAGE: &str = "usage: cargo run --example batch_from_rust -- [--offline] [MANIFEST [OUT]]
Runs MANIFEST (.jsonl, .csv or .txt; default: 3 built-in prompts) into OUT (batch-demo)
within 10 images, 1 USD and 30 minutes; run it again to resume. Needs OPENAI_API_KEY, or
--offline (a stand-in generator and judge). Writes OUT/index.html, a contact sheet.";

const BUILT_IN: &str = r#"{"id": "bowtruckle", "prompt": "A Bowtruckle on a wand"}
{"id": "graphorn", "prompt": "A Graphorn at dusk", "max_rounds": 1}
{"prompt": "A Niffler with a gold coin", "metadata": {"set": "demo"}}"#;

/// Stand-ins for `--offline`: a grey square, always accepted.
#[derive(Debug)]
struct StandIn;

#[async_trait]
impl Generator for StandIn {
    async fn generate(&self, request: &GenerationRequest) -> Result<Generation, ImageError> {
        let mut png = std::io::Cursor::new(Vec::new());
        image::RgbImage::from_pixel(64, 64, image::Rgb([128, 128, 128]))
            .write_to(&mut png, image::ImageFormat::Png)
            .map_err(|e| ImageError::Config(e.to_string()))?;
        let image = GeneratedImage::new(png.into_inner());
        Ok(Generation::new(vec![image], request.prompt.clone()))
    }
    fn describe(&self) -> String {
        "stand-in".into()
    }
}

#[async_trait]
impl Judge for StandIn {
    async fn review(&self, _: &ReviewInput<'_>) -> Result<JsonReply<Verdict>, LmmError> {
        let value = Verdict::accept(Scores::new(8.0, 8.0, 8.0), "a stand-in accepts all");
        Ok(JsonReply::new(value))
    }
}

fn pipeline(offline: bool) -> Result<Pipeline, Box<dyn std::error::Error>> {
    if offline {
        let builder = Pipeline::builder().generator(Arc::new(StandIn));
        let builder = builder.judge(Arc::new(StandIn)).gate_mode(GateMode::Never);
        return Ok(builder.build()?);
    }
    let mut settings = Settings::default().with_env(); // OPENAI_API_KEY, OPENAI_BASE_URL, ...
    if !settings.has_model_endpoint() {
        return Err("no model endpoint: set OPENAI_API_KEY, or use --offline".into());
    }
    settings.run.max_rounds = 2; // a job's "max_rounds" in the manifest overrides it
    Ok(settings.pipeline_builder()?.build()?)
}

async fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let mut paths = args.iter().filter(|a| !a.starts_with("--"));
    let manifest = match paths.next() {
        Some(path) => Manifest::load(path.as_ref())?, // the format from the extension
        None => Manifest::parse(BUILT_IN, Format::Jsonl),
    };
    let out = PathBuf::from(paths.next().map_or("batch-demo", |p| p.as_str()));
    let offline = args.iter().any(|a| a == "--offline");
    for bad in &manifest.errors {
        eprintln!("skipping a bad manifest line: {bad}"); // Manifest::strict() refuses instead
    }
    let pipeline = Arc::new(pipeline(offline)?);
    // A job runs again only when its fingerprint (prompt, options, models, settings) changed.
    let jobs = &manifest.jobs;
    let fps: Vec<_> = jobs.iter().map(|j| fingerprint(j, &pipeline)).collect();
    std::fs::create_dir_all(&out)?;
    let journal = Arc::new(Journal::open(&out.join("journal.sqlite"))?);
    let plan = journal.plan(jobs, &fps, false, |job, fp| {
        JobOutputs::complete(&out, job, fp).then(|| job.id.clone())
    })?;
    let (to_run, done) = (plan.to_run.len(), plan.already_done);
    println!("{to_run} job(s) to run, {done} already done");
    let limits = Limits {
        max_images: Some(10),
        max_cost: (!offline).then_some(1.0), // needs a price for both models
        deadline: Some(Instant::now() + Duration::from_secs(30 * 60)),
        ..Limits::default()
    };
    let models = pipeline.models();
    let (chat, image) = (models.judge.clone().unwrap_or_default(), &models.generator);
    let budget = Arc::new(Budget::new(limits, PriceTable::default(), &chat, image)?);
    let config = RunnerConfig {
        out: out.clone(),
        concurrency: 2,
        ..RunnerConfig::default()
    };
    // Setting `stopping` (from a signal handler, say) starts no new job; run again to resume.
    let stopping = Arc::new(AtomicBool::new(false));
    let runner = Runner::new(pipeline, journal, budget, config, stopping)
        .on_event(|e| println!("{}", serde_json::to_string(e).unwrap_or_default()));
    let outcome = runner.run(plan.to_run).await?;
    let (done, failed) = (outcome.done, outcome.failed);
    println!("done {done}, failed {failed}, pending {}", outcome.pending);
    if let Some(stop) = &outcome.stop {
        println!("stopped early: {stop:?}");
    }
    let summary = write_summary(&folder_journals(&out)?, &out)?;
    let sheet = out.join("index.html");
    println!("{:.3} USD; see {}", summary.cost_usd, sheet.display());
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
    } else if let Err(e) = run(&args).await {
        eprintln!("batch_from_rust: {e}");
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}
