//! The keyless preview of `generate`: with no model endpoint, search the prompt on the
//! engines and select a reference with the local CLIP model, print the ranked table and
//! write the reference the generator would be given, with its source and licence.
//! Included by the generate example with `#[path]`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use iat2i::retrievers::{HttpClient, MultiSearch, SearchQuery};
use iat2i::selectors::{
    HierarchicalSelector, SelectError, Selection, SelectionRequest, Selector, SelectorConfig,
};

use super::engines::EngineArgs;
use super::progress::Progress;
use super::selection_view::{print_drops, print_selection, write_reference};

/// Search `prompt`, select its reference and write it next to `out`
/// (`<out>-reference.<ext>` and `<out>-reference.json`).
pub async fn run(
    progress: &Progress,
    prompt: &str,
    engines: &EngineArgs,
    http: HttpClient,
    config: SelectorConfig,
    out: &Path,
) -> Result<()> {
    let multi = MultiSearch::new(engines.build_all(&http)?);
    progress.status(format!("searching {prompt:?}"));
    let queries = vec![prompt.to_string()];
    let found = multi.search(&queries, &SearchQuery::default()).await;
    for run in &found.runs {
        match &run.error {
            None => progress.line(format!(
                "search: {} {:?}: {} results in {} ms",
                run.engine, run.query, run.count, run.elapsed_ms
            )),
            Some(e) => progress.line(format!(
                "search: {} {:?}: FAILED after {} ms: {e}",
                run.engine, run.query, run.elapsed_ms
            )),
        }
    }
    if found.all_failed() {
        bail!("every search engine failed (see the search: lines above)");
    }
    if found.candidates.is_empty() {
        bail!("the search found no candidates for {prompt:?}");
    }
    progress.status(format!("ranking {} candidates", found.candidates.len()));
    let selector = HierarchicalSelector::new(http, config);
    let request = SelectionRequest::new(prompt.to_string())
        .with_queries(queries)
        .with_entities(Vec::new())
        .with_run_id(format!("preview-{}", std::process::id()));
    let selection = match selector.select(&request, found.candidates).await {
        Ok(s) => s,
        Err(SelectError::NoCandidates { dropped }) => {
            progress.finish();
            print_drops(&dropped);
            bail!("every candidate was dropped (reasons above)");
        }
        Err(e) => return Err(e).context("selection failed"),
    };
    progress.finish();
    print_selection(&selection);
    let (image, sidecar) = write(&selection, prompt, out)?;
    println!(
        "\nreference the generator would be given: {}",
        image.display()
    );
    println!("its source, licence and the ranking: {}", sidecar.display());
    Ok(())
}

/// `<stem>-reference` beside `out`.
fn stem(out: &Path) -> PathBuf {
    let name = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    out.with_file_name(format!("{name}-reference"))
}

fn write(selection: &Selection, prompt: &str, out: &Path) -> Result<(PathBuf, PathBuf)> {
    let stem = stem(out);
    let image = write_reference(selection, &stem)?;
    let sidecar = stem.with_extension("json");
    let best = &selection.best;
    let json = serde_json::json!({
        "prompt": prompt,
        "note": "no model endpoint: searched and selected only, nothing was generated",
        "reference": {
            "file": image.file_name().map(|n| n.to_string_lossy().into_owned()),
            "image_url": best.candidate.image_url,
            "source_page": best.candidate.source_page,
            "title": best.candidate.title,
            "license": best.candidate.license,
            "creator": best.candidate.creator,
            "engine": best.candidate.engine,
            "mime": best.mime,
            "width": best.width,
            "height": best.height,
            "scores": best.scores,
        },
        "selection": selection,
    });
    std::fs::write(&sidecar, serde_json::to_vec_pretty(&json)?)
        .with_context(|| format!("writing {}", sidecar.display()))?;
    Ok((image, sidecar))
}
