//! A generator of your own, plugged into the pipeline: here one that "draws" by tinting
//! the first reference image (or a grey square), to show the trait and what the pipeline
//! hands a generator — the prompt, the references with their labels and roles, the image
//! to edit. A real one would call your model server.
//!
//! ```text
//! export OPENAI_API_KEY=sk-...          # the gate and the judge still use a chat model
//! cargo run --example custom_generator -- "A Graphorn at dusk"
//! ```

use async_trait::async_trait;
use iat2i::generator::{GeneratedImage, Generation, GenerationRequest, Generator, ImageError};
use iat2i::prelude::*;
use std::sync::Arc;

/// Tints the first reference (or a grey square) red: stands in for a model.
#[derive(Debug)]
struct Tint;

#[async_trait]
impl Generator for Tint {
    async fn generate(&self, request: &GenerationRequest) -> Result<Generation, ImageError> {
        let base = match request.references.first() {
            Some(r) => image::load_from_memory(&r.image.bytes)
                .map(|i| i.to_rgb8())
                .unwrap_or_else(|_| image::RgbImage::new(64, 64)),
            None => image::RgbImage::from_pixel(64, 64, image::Rgb([128, 128, 128])),
        };
        let tinted = image::RgbImage::from_fn(base.width(), base.height(), |x, y| {
            let [r, g, b] = base.get_pixel(x, y).0;
            image::Rgb([r.saturating_add(60), g / 2, b / 2])
        });
        let mut png = std::io::Cursor::new(Vec::new());
        tinted
            .write_to(&mut png, image::ImageFormat::Png)
            .map_err(|e| ImageError::Config(format!("encoding the PNG: {e}")))?;
        // What it was asked to take from each reference, as the prompt would say it.
        let labels: Vec<String> = request.references.iter().map(|r| r.label.clone()).collect();
        Ok(Generation::new(
            vec![GeneratedImage::new(png.into_inner())],
            request.prompt.clone(),
        )
        .with_note(format!("tinted; references: {labels:?}")))
    }

    fn describe(&self) -> String {
        "tint (an example generator)".into()
    }

    fn max_input_images(&self) -> Option<usize> {
        Some(4)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let prompt = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "A Graphorn at dusk".into());
    let pipeline = iat2i::PipelineBuilder::openai_from_env("gpt-4o-mini", "unused")?
        .generator(Arc::new(Tint))
        .max_rounds(1)
        .build()?;
    let outcome = pipeline.run(Request::new(prompt)).await?;
    std::fs::write("tinted.png", &outcome.image.bytes)?;
    println!(
        "{}; notes: {:?}",
        outcome.report.stop_reason, outcome.report.rounds[0].generator_notes
    );
    Ok(())
}
