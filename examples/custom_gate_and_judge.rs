//! A gate and a judge of your own, with no model behind them: the gate asks for a
//! reference when the prompt names something (a capitalised word past the first); the
//! judge accepts an image at least 64 px a side that is not grey, else asks for a refined
//! prompt. A stand-in generator draws grey unless the prompt says "vivid", so the run
//! shows the loop: round 1 rejected, round 2 accepted. Writes `judged.png`.
//!
//! ```text
//! cargo run --example custom_gate_and_judge -- "A Graphorn meets a Bowtruckle"
//! ```
//!
//! Offline, no key: search is off (`.engines(vec![])`), so the reference the gate asks
//! for is missing and the report's `degraded` list says so.

use async_trait::async_trait;
use iat2i::generator::{GenerationRequest, ImageError};
use iat2i::lmm::{JsonReply, LmmError};
use iat2i::prelude::*;
use iat2i::{Action, EntityPlan, Generation, ReviewInput, Scores};
use std::sync::Arc;

const USAGE: &str = "usage: cargo run --example custom_gate_and_judge -- [PROMPT]
Runs the pipeline with a rule-based gate, a colour-checking judge and a stand-in
generator: no model, no key, no network. Prints each round and writes judged.png.";

/// A reply that cost nothing: no model was asked.
fn free<T>(value: T) -> JsonReply<T> {
    JsonReply::new(value)
}

/// Asks for a reference when a word past the first is capitalised: a name.
struct NameGate;

#[async_trait]
impl Gate for NameGate {
    async fn assess(&self, prompt: &str, _edit: bool) -> Result<JsonReply<Assessment>, LmmError> {
        let names: Vec<String> = (prompt.split_whitespace().skip(1))
            .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
            .filter(|w| w.starts_with(char::is_uppercase))
            .map(String::from)
            .collect();
        if names.is_empty() {
            return Ok(free(Assessment::no_reference("no name in the prompt")));
        }
        let queries = names.iter().map(|n| format!("{n} photo")).collect();
        // One plan per name: with two or more, the pipeline selects a reference for each.
        let plan = names
            .iter()
            .map(|n| EntityPlan::new(n, vec![n.clone()]))
            .collect();
        let why = format!("names {names:?}, which the model may not know");
        let a = Assessment::reference(KnowledgeGap::KnownButRare, queries, names, why);
        Ok(free(a.with_plan(plan)))
    }
}

/// Accepts images at least 64 px a side whose mean colour is not a grey.
struct ColourJudge;

#[async_trait]
impl Judge for ColourJudge {
    async fn review(&self, input: &ReviewInput<'_>) -> Result<JsonReply<Verdict>, LmmError> {
        let img = image::load_from_memory(&input.image.bytes)
            .map_err(|e| LmmError::Config(format!("the image does not decode: {e}")))?;
        // The mean colour (a 1x1 thumbnail), and how far apart its channels are.
        let mean = img.thumbnail_exact(1, 1).to_rgb8().into_raw();
        let spread = mean.iter().max().unwrap_or(&0) - mean.iter().min().unwrap_or(&0);
        let (big, colourful) = (img.width().min(img.height()) >= 64, spread >= 60);
        let score = |ok: bool| if ok { 8.0 } else { 4.0 };
        // Rounds with a reference (`input.references`) add `.with_reference_use(score)`.
        let scores = Scores::new(score(big), 8.0, score(colourful));
        let feedback = format!("{}x{}, mean colour {mean:?}", img.width(), img.height());
        Ok(free(if big && colourful {
            Verdict::accept(scores, feedback)
        } else {
            let prompt = format!("{}, in vivid colours", input.prompt);
            Verdict::reject(scores, feedback, Action::RefinePrompt { prompt })
        }))
    }
}

/// Stands in for an image model: a grey square, or a red one for a "vivid" prompt.
#[derive(Debug)]
struct Palette;

#[async_trait]
impl Generator for Palette {
    async fn generate(&self, request: &GenerationRequest) -> Result<Generation, ImageError> {
        let vivid = request.prompt.contains("vivid");
        let red = if vivid { 240 } else { 128 };
        let mut png = std::io::Cursor::new(Vec::new());
        image::RgbImage::from_pixel(96, 96, image::Rgb([red, 128, 128]))
            .write_to(&mut png, image::ImageFormat::Png)
            .map_err(|e| ImageError::Config(format!("encoding the PNG: {e}")))?;
        let image = GeneratedImage::new(png.into_inner());
        Ok(Generation::new(vec![image], request.prompt.clone()))
    }

    fn describe(&self) -> String {
        "palette (an example generator)".into()
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let prompt = std::env::args().nth(1);
    if matches!(prompt.as_deref(), Some("--help" | "-h")) {
        println!("{USAGE}");
        return Ok(());
    }
    let pipeline = Pipeline::builder()
        .gate(Arc::new(NameGate))
        .judge(Arc::new(ColourJudge))
        .generator(Arc::new(Palette))
        .engines(vec![]) // offline: no search engine, so no reference is found
        .build()?;
    let prompt = prompt.unwrap_or_else(|| "A Graphorn meets a Bowtruckle".into());
    let outcome = pipeline.run(Request::new(prompt)).await?;
    if let Some(a) = &outcome.report.assessment {
        println!("gate: reference {}: {}", a.needs_reference, a.rationale);
    }
    for r in &outcome.report.rounds {
        let action = r.verdict.as_ref().map(|v| &v.action);
        println!("round {}: {:?} -> {action:?}", r.round, r.prompt);
    }
    for d in &outcome.report.degraded {
        println!("degraded: {d}");
    }
    std::fs::write("judged.png", &outcome.image.bytes)?;
    println!("{}; wrote judged.png", outcome.report.stop_reason);
    Ok(())
}
