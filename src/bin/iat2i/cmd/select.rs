//! Select the best reference image for a prompt: search the web (or read candidate URLs from
//! a file), run the hierarchical selection (prefilter, fetch, dedup, CLIP ranking in
//! qdrant-edge, diversity), print the ranked table and the drops, and write the chosen image.
//!
//! ```text
//! ORT_DYLIB_PATH=$(bash scripts/setup-ort.sh) iat2i select \
//!     "a Xenopus laevis frog on a lily pad" --query "Xenopus laevis" --out frog.jpg
//! iat2i select "my prompt" --urls candidates.txt --model-dir ./clip
//! ```

use crate::common::{engines, exit, logging, memory, selection_view};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;

use engines::EngineArgs;
use iat2i::retrievers::{Candidate, ImageSearch, MultiSearch, SearchQuery};
use iat2i::selectors::{
    HierarchicalSelector, SelectError, SelectionRequest, Selector, SelectorConfig, StoreChoice,
};
use memory::MemoryArgs;
use selection_view::{print_drops, print_selection, write_reference};
use url::Url;

const EXAMPLES: &str = "\
Examples:
  select \"a Xenopus laevis frog on a lily pad\" --query \"Xenopus laevis\" --out frog.jpg
  select \"the Graphorn from Hogwarts Legacy\" --urls urls.txt --model-dir fixtures/models/tiny-clip
  select \"red fox in snow\" --licence commercial-and-derivatives --top-k 3 --json

ONNX Runtime: set ORT_DYLIB_PATH to libonnxruntime.so (`bash scripts/setup-ort.sh` installs
onnxruntime==1.31.1 and prints the path). Without --model-dir the CLIP ViT-B/32 model is
downloaded on first use, which needs the `download` feature of iat2i-selectors.

Exit codes:
  0  a reference was selected and written to --out
  1  the selection failed (no candidates, every candidate dropped, the model missing, the
     memory unavailable with --require-memory)
  2  bad arguments or settings (an empty prompt, an unreadable --urls file or a line in it
     that is not a URL, --engine searxng without --searxng-url, ...)";

/// Pick the reference image that best shows what a prompt needs.
///
/// Candidates come from the keyless web image engines (Bing, DuckDuckGo, Wikimedia
/// Commons, Openverse) searched with --query (default: the prompt), or from --urls, a file
/// with one image URL per line. They are filtered on metadata, downloaded and decoded under
/// strict limits, de-duplicated by perceptual hash, ranked by CLIP similarity to the prompt
/// and the queries in a vector store, and diversified; the best one is written to --out.
#[derive(Parser, Debug)]
#[command(name = "select", version, after_help = EXAMPLES)]
pub struct Args {
    /// The image prompt the reference is for.
    prompt: String,

    /// A search query; repeat for several (default: the prompt itself).
    #[arg(long = "query")]
    queries: Vec<String>,

    /// An entity the prompt names (a character, a species, a product); repeat for several.
    /// The reference memory also recalls the images it found for these entities before.
    #[arg(long = "entity")]
    entities: Vec<String>,

    /// Read candidate image URLs from this file (one per line, `#` comments) instead of searching.
    #[arg(long)]
    urls: Option<PathBuf>,

    /// Local CLIP model directory (vision/model.onnx, text/model.onnx, tokenizer and
    /// preprocessor files). Default: download CLIP ViT-B/32 (Qdrant/clip-ViT-B-32-*).
    #[arg(long, env = "IAT2I_CLIP_DIR")]
    model_dir: Option<PathBuf>,

    /// Extra directory holding the CLIP tokenizer and preprocessor files.
    #[arg(long)]
    tokenizer_dir: Option<PathBuf>,

    /// Hold about a third less memory for the CLIP model (no pre-packed copy of its
    /// weights), at a few percent of embedding speed.
    #[arg(long)]
    low_memory: bool,

    /// Load the CLIP model before the selection starts rather than alongside it. Slower
    /// overall, but the stage times then show the selection alone (for benchmarks).
    #[arg(long)]
    load_first: bool,

    /// Cache directory: the reference memory (<cache>/qdrant-edge, <cache>/blobs) and
    /// downloaded models.
    #[arg(long, env = "IAT2I_CACHE_DIR")]
    cache_dir: Option<PathBuf>,

    /// Use the Qdrant server named by QDRANT_URL (and QDRANT_API_KEY) for the reference
    /// memory (the default when QDRANT_URL is set; else qdrant-edge under the cache dir).
    #[arg(long)]
    qdrant_server: bool,

    /// How many distinct candidates to keep (the best and its alternates).
    #[arg(long, default_value_t = 5, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100))]
    top_k: usize,

    /// Most results per engine and query when searching.
    #[arg(long, default_value_t = 20, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=500))]
    limit: usize,

    /// Seconds allowed per image download.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,

    /// Write the chosen image here (the extension is replaced to match its type).
    #[arg(long, default_value = "reference")]
    out: PathBuf,

    /// Let downloads reach this host even when it is private or local (a mirror, a test
    /// server); repeat for several.
    #[arg(long = "allow-host")]
    allow_hosts: Vec<String>,

    /// Print the selection as JSON instead of tables.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    engines: EngineArgs,

    #[command(flatten)]
    memory: MemoryArgs,
}

/// Run `iat2i select`.
pub async fn main(args: Args) -> ExitCode {
    logging::init("error");
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => exit::report("select", &e),
    }
}

async fn run(args: Args) -> Result<()> {
    let mut builder = args.engines.http_builder();
    for host in &args.allow_hosts {
        builder = builder.allow_host(host);
    }
    let http = builder
        .build()
        .context("building the HTTP client")
        .map_err(exit::usage)?;
    if args.prompt.trim().is_empty() {
        return Err(exit::usage(anyhow::anyhow!(
            "the prompt is empty: say what the reference should show"
        )));
    }
    // The candidates' sources are checked before anything is downloaded.
    let (listed, engines) = match &args.urls {
        Some(file) => (
            Some(
                read_urls(file, args.queries.first().unwrap_or(&args.prompt))
                    .map_err(exit::usage)?,
            ),
            Vec::new(),
        ),
        None => (None, args.engines.build_all(&http).map_err(exit::usage)?),
    };
    let queries = if args.queries.is_empty() {
        vec![args.prompt.clone()]
    } else {
        args.queries.clone()
    };
    let selector = HierarchicalSelector::new(http.clone(), config(&args).map_err(exit::usage)?);
    let request = SelectionRequest::new(args.prompt.clone())
        .with_queries(queries.clone())
        .with_entities(args.entities.clone())
        .with_run_id(format!("select-{}", std::process::id()));
    // The CLIP model loads while the candidates are gathered (a search takes seconds).
    let gather = async {
        Ok::<_, anyhow::Error>(match listed {
            Some(candidates) => candidates,
            // The memory may answer alone (--search-policy memory-only or fewer-than:K).
            None if !selector.needs_web_search(&request).await => {
                eprintln!(
                    "the reference memory answers (--search-policy {}): web search skipped",
                    args.memory.search_policy
                );
                Vec::new()
            }
            None => {
                let found = search(&engines, &queries, args.limit).await?;
                if found.is_empty() {
                    bail!(
                        "no candidates: the search found nothing (try other --query terms or --urls)"
                    );
                }
                found
            }
        })
    };
    let selecting = async {
        let candidates = gather.await?;
        eprintln!("{} candidates; selecting...", candidates.len());
        Ok::<_, anyhow::Error>(selector.select(&request, candidates).await)
    };
    // The model keeps loading while the selection starts: downloads and decoding need no
    // model, and the first embedding batch waits only for what is still loading.
    let (selected, warmed) = if args.load_first {
        let warmed = selector.warm_up().await;
        (selecting.await, warmed)
    } else {
        tokio::join!(selecting, selector.warm_up())
    };
    if let Err(e) = warmed {
        // The selection reports the same failure, with what to do about it.
        tracing::debug!(error = %e, "loading the CLIP model failed");
    }
    let selection = match selected? {
        Ok(s) => s,
        Err(SelectError::NoCandidates { dropped }) if dropped.is_empty() => bail!(
            "the reference memory recalled no image for this prompt (a hit needs a text-image \
             similarity of at least 0.25, or an image found earlier for an --entity); search \
             the web (--search-policy always) or index images for it (memory index)"
        ),
        Err(SelectError::NoCandidates { dropped }) => {
            print_drops(&dropped);
            bail!("every candidate was dropped (reasons above)");
        }
        Err(e) => return Err(e).context("selection failed"),
    };
    let m = &selection.memory;
    if let Some(why) = &m.degraded {
        eprintln!("warning: {why}");
    } else if let Some(store) = &m.store {
        eprintln!(
            "memory ({store}): {} reused without download, {} recalled, {} stored",
            m.reused, m.recalled, m.stored
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&selection)?);
    } else {
        print_selection(&selection);
    }
    let out = write_reference(&selection, &args.out)?;
    eprintln!("wrote {} ({})", out.display(), selection.best.mime);
    Ok(())
}

fn config(args: &Args) -> Result<SelectorConfig> {
    let mut memory = args.memory.settings();
    memory.model_dir = args.model_dir.clone();
    memory.cache_dir = args.cache_dir.clone();
    let mut config = memory
        .selector_config(&args.engines.settings())?
        .low_memory(args.low_memory)
        .top_k(args.top_k)
        .fetch_timeout(Duration::from_secs(args.timeout));
    if let (Some(_), Some(t)) = (&args.model_dir, &args.tokenizer_dir) {
        config = config.tokenizer_dir(t);
    }
    if args.qdrant_server {
        config = config.store(StoreChoice::QdrantFromEnv);
    }
    Ok(config)
}

/// Search every query on the engines, printing one status line per engine and query;
/// an error only when every engine failed (no results is not an error here).
async fn search(
    engines: &[Arc<dyn ImageSearch>],
    queries: &[String],
    limit: usize,
) -> Result<Vec<Candidate>> {
    let multi = MultiSearch::new(engines.to_vec());
    let found = multi
        .search(queries, &SearchQuery::default().with_limit(limit))
        .await;
    for run in &found.runs {
        match &run.error {
            None => eprintln!(
                "search: {} {:?}: {} results in {} ms",
                run.engine, run.query, run.count, run.elapsed_ms
            ),
            Some(e) => eprintln!(
                "search: {} {:?}: FAILED after {} ms: {e}",
                run.engine, run.query, run.elapsed_ms
            ),
        }
    }
    if found.all_failed() {
        bail!(
            "every search engine failed (see the search: lines above); try other --engine choices or --urls"
        );
    }
    Ok(found.candidates)
}

fn read_urls(file: &PathBuf, query: &str) -> Result<Vec<Candidate>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading candidate URLs from {}", file.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let url = Url::parse(line)
            .with_context(|| format!("{}:{}: not a URL: {line}", file.display(), n + 1))?;
        let mut c = Candidate::new(url, "file", query);
        c.rank = out.len() as u32;
        c.fused_score = 1.0 / (1.0 + out.len() as f64);
        out.push(c);
    }
    Ok(out)
}
