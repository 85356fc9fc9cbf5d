//! The library in one call: generate an image for a prompt with OpenAI's models, letting
//! the pipeline decide whether to search the web for a reference image first.
//!
//! ```text
//! export OPENAI_API_KEY=sk-...
//! cargo run --example one_prompt -- "A Graphorn grazing on a misty hillside"
//! ```
//!
//! Writes `image.png` and `report.json`. The `iat2i generate` command does the same with
//! every option; this is what it looks like from Rust.

use iat2i::prelude::*;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let prompt = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "A Graphorn grazing on a misty hillside".into());
    // OPENAI_API_KEY (and OPENAI_BASE_URL for another server) come from the environment.
    let pipeline = iat2i::PipelineBuilder::openai_from_env("gpt-4o-mini", "gpt-image-1")?
        .max_rounds(3)
        .build()?;
    let outcome = pipeline.run(Request::new(prompt)).await?;
    std::fs::write("image.png", &outcome.image.bytes)?;
    std::fs::write("report.json", serde_json::to_vec_pretty(&outcome.report)?)?;
    println!("{} (round {})", outcome.report.stop_reason, outcome.round);
    for r in &outcome.references {
        println!("reference: {}", r.candidate.image_url);
    }
    for d in &outcome.report.degraded {
        println!("degraded: {d}");
    }
    Ok(())
}
