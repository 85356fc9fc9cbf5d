//! Search the web for images of one query on the engines you choose, and print what
//! each engine found, fused and de-duplicated, as a table or as JSON.
//!
//! ```text
//! iat2i search "Xenopus laevis"
//! iat2i search "Xenopus laevis" --engine wikimedia --engine openverse --limit 10
//! iat2i search "red panda" --engine searxng --searxng-url http://localhost:8888
//! iat2i search "company logo" --engine local --folder ./brand-assets --json
//! ```

use crate::common::{engines, exit, logging};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;

use engines::EngineArgs;
use iat2i::retrievers::{MultiSearch, MultiSearchResult, SearchQuery};

/// Search for reference images of one query and list them, best first.
///
/// Without --engine, the keyless engines are used (Bing, DuckDuckGo, Wikimedia
/// Commons, Openverse), plus SearXNG when --searxng-url is given, Brave when a key is
/// given, and the local folder when --folder is given. Results found by several
/// engines are merged (reciprocal rank fusion) and shown once.
#[derive(Parser, Debug)]
#[command(name = "search", version, after_help = EXAMPLES)]
pub struct Args {
    /// What to search for, e.g. "Xenopus laevis".
    query: String,

    /// Most results per engine.
    #[arg(long, default_value_t = 20, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=500))]
    limit: usize,

    /// Turn the engines' safe-search filter off.
    #[arg(long)]
    no_safe_search: bool,

    /// Seconds each engine may take before it is reported as timed out.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=3600))]
    deadline: u64,

    /// Print JSON (candidates and per-engine status) instead of a table.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    engines: EngineArgs,
}

const EXAMPLES: &str = "Examples:
  search \"Xenopus laevis\"
  search \"Xenopus laevis\" --engine wikimedia --engine openverse --limit 10
  search \"red panda\" --engine searxng --searxng-url http://localhost:8888
  BRAVE_API_KEY=... search \"red panda\" --engine brave --json
  search \"logo\" --engine local --folder ./brand-assets
  search \"red fox\" --engine openverse --licence commercial-and-derivatives

Exit codes:
  0  the search ran (the table may be empty when the engines found nothing)
  1  an error outside the engines (the HTTP client, printing the results)
  2  bad arguments or settings (--engine searxng without --searxng-url, --engine brave
     without a key, --folder that is not a folder, ...)
  3  every engine failed (see the engine status lines)";

fn shorten(s: &str, max: usize) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() <= max {
        s
    } else {
        let cut: String = s.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

fn print_table(result: &MultiSearchResult) {
    println!(
        "{:>4}  {:<11} {:>11}  {:<40} {:<14} URL",
        "rank", "engine", "size", "title", "licence"
    );
    for (i, c) in result.candidates.iter().enumerate() {
        let size = match (c.width, c.height) {
            (Some(w), Some(h)) => format!("{w}x{h}"),
            _ => "?".to_string(),
        };
        let licence = c
            .license
            .as_ref()
            .map(|l| match &l.version {
                Some(v) => format!("{} {v}", l.code),
                None => l.code.clone(),
            })
            .unwrap_or_else(|| "-".to_string());
        println!(
            "{:>4}  {:<11} {:>11}  {:<40} {:<14} {}",
            i + 1,
            c.engine,
            size,
            shorten(c.title.as_deref().unwrap_or("-"), 40),
            shorten(&licence, 14),
            c.image_url
        );
    }
    println!();
    println!("engine status:");
    for run in &result.runs {
        match &run.error {
            None => println!(
                "  {:<11} ok      {:>3} results in {} ms",
                run.engine, run.count, run.elapsed_ms
            ),
            Some(e) => println!(
                "  {:<11} FAILED  after {} ms: {e}",
                run.engine, run.elapsed_ms
            ),
        }
    }
}

async fn run(args: Args) -> Result<bool> {
    let http = args.engines.http_builder().build()?;
    let engines = args.engines.build_all(&http).map_err(exit::usage)?;
    let multi = MultiSearch::new(engines).with_deadline(Duration::from_secs(args.deadline.max(1)));
    let opts = SearchQuery::default()
        .with_limit(args.limit)
        .with_safe_search(!args.no_safe_search);
    let mut result = multi.search(std::slice::from_ref(&args.query), &opts).await;
    let policy = args.engines.licence;
    let before = result.candidates.len();
    result
        .candidates
        .retain(|c| policy.permits(c.license.as_ref()));
    let hidden = before - result.candidates.len();
    if hidden > 0 {
        eprintln!("{hidden} results hidden: their licence does not pass --licence {policy}");
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        print_table(&result);
    }
    Ok(!result.all_failed())
}

/// The exit code when every engine failed.
const EXIT_ALL_FAILED: u8 = 3;

/// Run `iat2i search`.
pub async fn main(args: Args) -> ExitCode {
    logging::init("error");
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("every engine failed; see the status lines above");
            ExitCode::from(EXIT_ALL_FAILED)
        }
        Err(e) => exit::report("search", &e),
    }
}
