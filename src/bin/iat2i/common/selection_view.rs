//! Printing a selection (the ranked table, the stages, the drops, the best reference
//! with its source and licence) and writing the chosen image. Included by the examples
//! with `#[path]`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use iat2i::selectors::{Dropped, Selection};

fn fmt(v: Option<f32>) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.3}"))
}

/// The ranked table, the stage timings, the drops and the best reference, on stdout.
pub fn print_selection(sel: &Selection) {
    println!("\n# ranked (best first)");
    println!("| # | combined | clip prompt | clip query | lexical | mmr | size | engine | url |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (i, r) in sel.ranked.iter().enumerate() {
        let s = &r.scores;
        println!(
            "| {} | {} | {} | {} | {} | {} | {}x{} | {} | {} |",
            i + 1,
            fmt(s.combined),
            fmt(s.clip_prompt),
            fmt(s.clip_query),
            fmt(s.lexical),
            fmt(s.mmr),
            r.width,
            r.height,
            r.candidate.engine,
            r.candidate.image_url
        );
    }
    println!("\n# stages");
    for s in &sel.stages {
        println!(
            "{:?}: {} -> {} in {} ms",
            s.stage, s.input, s.output, s.elapsed_ms
        );
    }
    print_drops(&sel.dropped);
    println!("\nbest: {}", sel.best.candidate.image_url);
    if let Some(page) = &sel.best.candidate.source_page {
        println!("page: {page}");
    }
    match &sel.best.candidate.license {
        Some(l) => match &l.version {
            Some(v) => println!("licence: {} {v}", l.code),
            None => println!("licence: {}", l.code),
        },
        None => println!("licence: unknown (check the page before publishing)"),
    }
    if let Some(reason) = &sel.judge_reason {
        println!("judge: {reason}");
    }
}

/// Every dropped candidate with its stage and reason, on stdout.
pub fn print_drops(dropped: &[Dropped]) {
    if dropped.is_empty() {
        return;
    }
    println!("\n# dropped ({})", dropped.len());
    for d in dropped {
        println!("- [{:?}] {}: {}", d.stage, d.candidate.image_url, d.reason);
    }
}

/// Write the best image to `out` with the extension of its type; returns the path.
pub fn write_reference(sel: &Selection, out: &Path) -> Result<PathBuf> {
    let ext = match sel.best.mime.as_str() {
        "image/jpeg" => "jpg",
        "image/webp" => "webp",
        "image/gif" => "gif",
        _ => "png",
    };
    let path = out.with_extension(ext);
    std::fs::write(&path, &sel.best.bytes)
        .with_context(|| format!("writing the reference to {}", path.display()))?;
    Ok(path)
}
