//! Look after the reference memory: index a curated asset folder into it, show what it
//! holds, and prune it by age, source or licence.
//!
//! ```text
//! iat2i memory index ./brand-assets --model-dir fixtures/models/tiny-clip
//! iat2i memory stats
//! iat2i memory prune --older-than-days 90
//! iat2i memory prune --source bing --licence none
//! QDRANT_URL=http://qdrant:6334 iat2i memory stats    # the shared server
//! ```

use crate::common::exit;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use iat2i::retrievers::HttpClient;
use iat2i::selectors::memory::{MemoryStats, PruneRule, ReferenceMemory};
use iat2i::selectors::{HierarchicalSelector, SelectorConfig, StoreChoice};

const EXAMPLES: &str = "\
Examples:
  memory index ./brand-assets --model-dir fixtures/models/tiny-clip
  memory stats --json
  memory prune --older-than-days 90
  memory prune --source bing --licence none

The memory lives in qdrant-edge under the cache directory (one process at a time), or on
the Qdrant server named by QDRANT_URL (and QDRANT_API_KEY), shared by every worker.
Captions come from sidecars: logo.png takes logo.txt and/or logo.json
({\"caption\", \"entities\", \"creator\", \"license\"}).

Exit codes:
  0  done
  1  the memory could not be opened or used (locked by another process, a Qdrant server
     that is unreachable, the CLIP model missing for index)
  2  bad arguments (an unknown subcommand or flag, an index folder that is not a folder)";

/// Index, inspect and prune the reference memory.
#[derive(Parser, Debug)]
#[command(name = "memory", version, after_help = EXAMPLES)]
pub struct Args {
    #[command(subcommand)]
    command: Command,

    /// Cache directory (qdrant-edge in <cache>/qdrant-edge, image bytes in <cache>/blobs).
    #[arg(long, global = true, env = "IAT2I_CACHE_DIR")]
    cache_dir: Option<PathBuf>,

    /// Use qdrant-edge even when QDRANT_URL is set.
    #[arg(long, global = true)]
    edge: bool,

    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Index every image under a folder (with .txt/.json caption sidecars).
    Index {
        /// The asset folder.
        folder: PathBuf,
        /// Local CLIP model directory. Default: CLIP ViT-B/32 (Qdrant/clip-ViT-B-32-*, downloaded on first use).
        #[arg(long, env = "IAT2I_CLIP_DIR")]
        model_dir: Option<PathBuf>,
        /// Extra directory holding the CLIP tokenizer and preprocessor files.
        #[arg(long)]
        tokenizer_dir: Option<PathBuf>,
    },
    /// Show what the memory holds.
    Stats,
    /// Remove remembered images matching every rule given.
    Prune {
        /// Last seen more than this many days ago.
        #[arg(long)]
        older_than_days: Option<u64>,
        /// From this source (web, library) or engine (bing, wikimedia, ...).
        #[arg(long)]
        source: Option<String>,
        /// With this licence code (`none`: without a known licence).
        #[arg(long = "licence", alias = "license")]
        licence: Option<String>,
    },
}

/// Run `iat2i memory`.
pub async fn main(args: Args) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => exit::report("memory", &e),
    }
}

fn selector(args: &Args) -> Result<HierarchicalSelector> {
    let mut config = SelectorConfig::default().require_memory(true);
    if let Some(dir) = &args.cache_dir {
        config = config.cache_dir(dir);
    }
    if args.edge {
        config = config.store(StoreChoice::Edge);
    }
    if let Command::Index {
        model_dir: Some(dir),
        tokenizer_dir,
        ..
    } = &args.command
    {
        config = config.model_dir(dir);
        if let Some(t) = tokenizer_dir {
            config = config.tokenizer_dir(t);
        }
    }
    let http = HttpClient::builder()
        .build()
        .context("building the HTTP client")?;
    Ok(HierarchicalSelector::new(http, config))
}

async fn run(args: Args) -> Result<()> {
    if let Command::Index { folder, .. } = &args.command
        && !folder.is_dir()
    {
        return Err(exit::usage(anyhow::anyhow!(
            "index {}: not a folder",
            folder.display()
        )));
    }
    let selector = selector(&args)?;
    let Some(memory) = selector.memory().await? else {
        bail!("the reference memory is turned off");
    };
    match &args.command {
        Command::Index { folder, .. } => index(&selector, &memory, folder, args.json).await,
        Command::Stats => {
            let stats = memory.stats().await.context("reading the memory")?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&stats)?);
            } else {
                print_stats(&stats);
            }
            Ok(())
        }
        Command::Prune {
            older_than_days,
            source,
            licence,
        } => {
            let rule = PruneRule {
                older_than: older_than_days.map(|d| Duration::from_secs(d * 24 * 3600)),
                source: source.clone(),
                license: licence.clone(),
            };
            let removed = memory.prune(&rule).await.context("pruning the memory")?;
            if args.json {
                println!("{}", serde_json::json!({ "removed": removed }));
            } else {
                println!("removed {removed} remembered image(s)");
            }
            Ok(())
        }
    }
}

async fn index(
    selector: &HierarchicalSelector,
    memory: &ReferenceMemory,
    folder: &Path,
    json: bool,
) -> Result<()> {
    let embedder = selector.embedder().await;
    let report = memory
        .index_folder(folder, embedder, &selector.config().fetch)
        .await
        .with_context(|| format!("indexing {}", folder.display()))?;
    for (path, why) in &report.skipped {
        eprintln!("skipped {}: {why}", path.display());
    }
    if json {
        let skipped: Vec<_> = report
            .skipped
            .iter()
            .map(|(p, w)| serde_json::json!({ "path": p, "reason": w }))
            .collect();
        let out = serde_json::json!({
            "collection": report.collection,
            "indexed": report.indexed,
            "skipped": skipped,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if report.indexed == 0 {
        println!(
            "indexed no image ({} skipped; reasons above)",
            report.skipped.len()
        );
    } else {
        println!(
            "indexed {} image(s) into {} ({} skipped)",
            report.indexed,
            report.collection,
            report.skipped.len()
        );
    }
    Ok(())
}

fn print_stats(s: &MemoryStats) {
    println!("store: {}", s.store);
    if s.collections.is_empty() {
        println!("the memory is empty");
    }
    for (c, n) in &s.collections {
        println!("collection {c}: {n} image(s)");
    }
    let line = |name: &str, m: &std::collections::BTreeMap<String, u64>| {
        let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k} {v}")).collect();
        if !parts.is_empty() {
            println!("{name}: {}", parts.join(", "));
        }
    };
    line("by source", &s.by_source);
    line("by engine", &s.by_engine);
    line("by licence", &s.by_license);
    println!(
        "chosen {} times; judge accepted {}, rejected {}",
        s.chosen, s.accepted, s.rejected
    );
    println!(
        "blob cache: {} image(s), {:.1} MiB of {:.0} MiB",
        s.blobs,
        s.blob_bytes as f64 / 1048576.0,
        s.blob_cap as f64 / 1048576.0
    );
}
