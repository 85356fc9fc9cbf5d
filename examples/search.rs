//! Search the web for images of one query on the engines you choose, and print what
//! each engine found, fused and de-duplicated, as a table or as JSON.
//!
//! ```text
//! cargo run --example search -- "Xenopus laevis"
//! cargo run --example search -- "Xenopus laevis" --engine wikimedia --engine openverse --limit 10
//! cargo run --example search -- "red panda" --engine searxng --searxng-url http://localhost:8888
//! cargo run --example search -- "company logo" --engine local --folder ./brand-assets --json
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use iat2i::retrievers::engines::{
    Bing, Brave, DuckDuckGo, LocalFolder, Openverse, Searxng, WikimediaCommons,
};
use iat2i::retrievers::{HttpClient, ImageSearch, MultiSearch, MultiSearchResult, SearchQuery};
use url::Url;

/// Search for reference images of one query and list them, best first.
///
/// Without --engine, the keyless engines are used (Bing, DuckDuckGo, Wikimedia
/// Commons, Openverse), plus SearXNG when --searxng-url is given, Brave when a key is
/// given, and the local folder when --folder is given. Results found by several
/// engines are merged (reciprocal rank fusion) and shown once.
#[derive(Parser, Debug)]
#[command(name = "search", version, about, long_about, after_help = EXAMPLES)]
struct Args {
    /// What to search for, e.g. "Xenopus laevis".
    query: String,

    /// An engine to search; repeat for several.
    #[arg(long = "engine", value_enum)]
    engines: Vec<Engine>,

    /// Most results per engine.
    #[arg(long, default_value_t = 20)]
    limit: usize,

    /// Turn the engines' safe-search filter off.
    #[arg(long)]
    no_safe_search: bool,

    /// Seconds each engine may take before it is reported as timed out.
    #[arg(long, default_value_t = 20)]
    deadline: u64,

    /// Print JSON (candidates and per-engine status) instead of a table.
    #[arg(long)]
    json: bool,

    /// Your SearXNG instance, e.g. http://localhost:8888 (it must allow JSON output).
    #[arg(long, env = "SEARXNG_URL")]
    searxng_url: Option<Url>,

    /// Brave Image Search API key.
    #[arg(long, env = "BRAVE_API_KEY", hide_env_values = true)]
    brave_key: Option<String>,

    /// Openverse access token (optional; raises the rate limit).
    #[arg(long, env = "OPENVERSE_TOKEN", hide_env_values = true)]
    openverse_token: Option<String>,

    /// A folder of images (with optional .txt/.json captions) to search offline.
    #[arg(long)]
    folder: Option<PathBuf>,

    /// Base URL for Bing (a proxy or a test server).
    #[arg(long, value_name = "URL")]
    bing_url: Option<Url>,
    /// Base URL for DuckDuckGo.
    #[arg(long, value_name = "URL")]
    duckduckgo_url: Option<Url>,
    /// Site root for Wikimedia Commons (the API is at w/api.php below it).
    #[arg(long, value_name = "URL")]
    wikimedia_url: Option<Url>,
    /// Base URL for the Openverse API.
    #[arg(long, value_name = "URL")]
    openverse_url: Option<Url>,
    /// Base URL for the Brave Search API.
    #[arg(long, value_name = "URL")]
    brave_url: Option<Url>,

    /// User-Agent to send (Wikimedia asks for one with a way to contact you).
    #[arg(long)]
    user_agent: Option<String>,

    /// User-Agent for the scraped engines only (Bing, DuckDuckGo), such as a browser's;
    /// defaults to --user-agent, else the client's.
    #[arg(long, value_name = "UA")]
    scrape_user_agent: Option<String>,
}

const EXAMPLES: &str = "Examples:
  search \"Xenopus laevis\"
  search \"Xenopus laevis\" --engine wikimedia --engine openverse --limit 10
  search \"red panda\" --engine searxng --searxng-url http://localhost:8888
  BRAVE_API_KEY=... search \"red panda\" --engine brave --json
  search \"logo\" --engine local --folder ./brand-assets";

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Engine {
    Bing,
    Duckduckgo,
    Wikimedia,
    Openverse,
    Searxng,
    Brave,
    Local,
}

fn chosen(args: &Args) -> Vec<Engine> {
    if !args.engines.is_empty() {
        let mut e = args.engines.clone();
        e.dedup();
        return e;
    }
    let mut e = vec![
        Engine::Bing,
        Engine::Duckduckgo,
        Engine::Wikimedia,
        Engine::Openverse,
    ];
    if args.searxng_url.is_some() {
        e.push(Engine::Searxng);
    }
    if args.brave_key.is_some() {
        e.push(Engine::Brave);
    }
    if args.folder.is_some() {
        e.push(Engine::Local);
    }
    e
}

fn build(args: &Args, http: &HttpClient, engine: Engine) -> Result<Arc<dyn ImageSearch>> {
    let h = http.clone();
    Ok(match engine {
        Engine::Bing => {
            let mut e = Bing::new(h);
            if let Some(u) = &args.bing_url {
                e = e.with_base_url(u.clone());
            }
            if let Some(ua) = scrape_user_agent(args) {
                e = e.with_user_agent(ua);
            }
            Arc::new(e)
        }
        Engine::Duckduckgo => {
            let mut e = DuckDuckGo::new(h);
            if let Some(u) = &args.duckduckgo_url {
                e = e.with_base_url(u.clone());
            }
            if let Some(ua) = scrape_user_agent(args) {
                e = e.with_user_agent(ua);
            }
            Arc::new(e)
        }
        Engine::Wikimedia => {
            let mut e = WikimediaCommons::new(h);
            if let Some(u) = &args.wikimedia_url {
                e = e.with_base_url(u.clone());
            }
            if let Some(ua) = &args.user_agent {
                e = e.with_user_agent(ua.clone());
            }
            Arc::new(e)
        }
        Engine::Openverse => {
            let mut e = Openverse::new(h);
            if let Some(u) = &args.openverse_url {
                e = e.with_base_url(u.clone());
            }
            if let Some(t) = &args.openverse_token {
                e = e.with_token(t.clone());
            }
            Arc::new(e)
        }
        other => build_configured(args, h, other)?,
    })
}

/// The User-Agent for the scraped engines: --scrape-user-agent, else --user-agent.
fn scrape_user_agent(args: &Args) -> Option<String> {
    args.scrape_user_agent
        .clone()
        .or_else(|| args.user_agent.clone())
}

/// The engines that need something from the user: an instance, a key or a folder.
fn build_configured(args: &Args, h: HttpClient, engine: Engine) -> Result<Arc<dyn ImageSearch>> {
    Ok(match engine {
        Engine::Searxng => {
            let url = args.searxng_url.clone().context(
                "--engine searxng needs --searxng-url (or SEARXNG_URL), e.g. http://localhost:8888",
            )?;
            Arc::new(Searxng::new(h, url))
        }
        Engine::Brave => {
            let key = args
                .brave_key
                .clone()
                .context("--engine brave needs --brave-key (or BRAVE_API_KEY); get one at https://brave.com/search/api/")?;
            let e = Brave::new(h, key);
            Arc::new(match &args.brave_url {
                Some(u) => e.with_base_url(u.clone()),
                None => e,
            })
        }
        Engine::Local => {
            let dir = args
                .folder
                .clone()
                .context("--engine local needs --folder DIR")?;
            if !dir.is_dir() {
                bail!("--folder {} is not a folder", dir.display());
            }
            Arc::new(LocalFolder::new(dir))
        }
        _ => bail!("{engine:?} needs no configuration"),
    })
}

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
    let mut builder = HttpClient::builder();
    if let Some(ua) = &args.user_agent {
        builder = builder.user_agent(ua.clone());
    }
    let http = builder.build().context("building the HTTP client")?;
    let engines = chosen(&args)
        .into_iter()
        .map(|e| build(&args, &http, e))
        .collect::<Result<Vec<_>>>()?;
    let multi = MultiSearch::new(engines).with_deadline(Duration::from_secs(args.deadline.max(1)));
    let opts = SearchQuery::default()
        .with_limit(args.limit)
        .with_safe_search(!args.no_safe_search);
    let result = multi.search(std::slice::from_ref(&args.query), &opts).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        print_table(&result);
    }
    Ok(!result.all_failed())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Args::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("every engine failed; see the status lines above");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
