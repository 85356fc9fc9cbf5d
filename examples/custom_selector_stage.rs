//! A selection stage of your own, in front of the built-in selector: a `Selector` that
//! drops candidates from hosts you do not want (watermarked stock photos), puts those
//! from hosts you trust first, and hands the rest to `HierarchicalSelector` (fetch,
//! dedup, CLIP rank, diversity). Its drops join the selection's `dropped` list, so the
//! report shows them beside the built-in stages' drops.
//!
//! ```text
//! OPENAI_API_KEY=sk-... cargo run --example custom_selector_stage -- "A Graphorn at dusk"
//! cargo run --example custom_selector_stage -- --select-only "Graphorn"   # no key
//! ```
//!
//! `--select-only` searches the keyless engines and calls the selector itself, without a
//! pipeline. Both need the network and CLIP (downloaded on first use; see the README).

use async_trait::async_trait;
use iat2i::prelude::*;
use iat2i::retrievers::engines::default_keyless;
use iat2i::selectors::{Dropped, SelectError, Stage};
use std::process::ExitCode;
use std::sync::Arc;

const USAGE: &str = "usage: cargo run --example custom_selector_stage -- [--select-only] [PROMPT]
Generates an image with a selector that skips stock-photo hosts and prefers Wikimedia.
  (default)      the whole pipeline: needs OPENAI_API_KEY; writes curated.png
  --select-only  only search and select a reference: no model key needed
Both need the network and the CLIP model (and ONNX Runtime installed).";

const BLOCKED: &[&str] = &[".pinterest.com", ".pinimg.com", ".shutterstock.com"];
const PREFERRED: &[&str] = &[".wikimedia.org", ".wikipedia.org"];

/// Whether the image, or the page it is on, is in one of `domains` (".example.org").
fn on(c: &Candidate, domains: &[&str]) -> bool {
    let urls = [Some(&c.image_url), c.source_page.as_ref()];
    let hosts = urls.into_iter().flatten().filter_map(|u| u.host_str());
    let mut dotted = hosts.map(|h| format!(".{h}"));
    dotted.any(|h| domains.iter().any(|d| h.ends_with(d)))
}

/// Drops candidates on `BLOCKED` hosts, puts those on `PREFERRED` hosts first.
struct Curated {
    inner: Arc<dyn Selector>,
}

#[async_trait]
impl Selector for Curated {
    async fn select(
        &self,
        request: &SelectionRequest,
        candidates: Vec<Candidate>,
    ) -> Result<Selection, SelectError> {
        let (blocked, mut kept): (Vec<_>, Vec<_>) =
            candidates.into_iter().partition(|c| on(c, BLOCKED));
        let ours = blocked.into_iter().map(|candidate| Dropped {
            candidate,
            stage: Stage::Prefilter,
            reason: "a blocked host (custom_selector_stage)".into(),
        });
        // A stable sort: trusted hosts first, the search's order otherwise.
        kept.sort_by_key(|c| !on(c, PREFERRED));
        match self.inner.select(request, kept).await {
            Ok(mut selection) => {
                selection.dropped.extend(ours);
                Ok(selection)
            }
            Err(SelectError::NoCandidates { mut dropped }) => {
                dropped.extend(ours);
                Err(SelectError::NoCandidates { dropped })
            }
            Err(e) => Err(e),
        }
    }

    // The rest of the trait goes to the inner selector: its memory and its setup.
    async fn needs_web_search(&self, request: &SelectionRequest) -> bool {
        self.inner.needs_web_search(request).await
    }
    async fn record_verdict(&self, reference: &Reference, accepted: bool) {
        self.inner.record_verdict(reference, accepted).await
    }
    async fn prepare(&self) -> Result<(), SelectError> {
        self.inner.prepare().await
    }
}

async fn run(select_only: bool, prompt: String) -> Result<(), Box<dyn std::error::Error>> {
    let http = HttpClient::builder().build()?;
    // `.with_judge(..)` would let a vision model make the final pick (then give the
    // pipeline `.selector_judge(judge)` too, so its paid calls are counted).
    let config = SelectorConfig::default();
    let inner = Arc::new(HierarchicalSelector::new(http.clone(), config));
    let selector = Arc::new(Curated { inner });
    if select_only {
        let queries = vec![prompt.clone()];
        let search = MultiSearch::new(default_keyless(&http));
        let found = search.search(&queries, &SearchQuery::default()).await;
        if found.candidates.is_empty() {
            return Err("the search found no candidates (offline?)".into());
        }
        let request = SelectionRequest::new(prompt).with_queries(queries);
        let selection = selector.select(&request, found.candidates).await?;
        println!("best: {}", selection.best.candidate.image_url);
        for d in &selection.dropped {
            println!("dropped: {} ({})", d.candidate.image_url, d.reason);
        }
        return Ok(());
    }
    let pipeline = iat2i::PipelineBuilder::openai_from_env("gpt-4o-mini", "gpt-image-1")?
        .http(http)
        .selector(selector)
        .build()?;
    let outcome = pipeline.run(Request::new(prompt)).await?;
    for r in &outcome.report.retrievals {
        // The drops are in the selection when it worked, else in `r.dropped`.
        let dropped = r.selection.as_ref().map_or(&r.dropped, |s| &s.dropped);
        let (found, dropped) = (r.candidates.len(), dropped.len());
        println!("{:?}: {found} found, {dropped} dropped", r.queries);
    }
    for r in &outcome.references {
        println!("reference: {}", r.candidate.image_url);
    }
    std::fs::write("curated.png", &outcome.image.bytes)?;
    println!("{}; wrote curated.png", outcome.report.stop_reason);
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let select_only = args.iter().any(|a| a == "--select-only");
    let prompt = args.iter().find(|a| !a.starts_with("--")).cloned();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
    } else if let Err(e) = run(select_only, prompt.unwrap_or("A Graphorn at dusk".into())).await {
        eprintln!("custom_selector_stage: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
