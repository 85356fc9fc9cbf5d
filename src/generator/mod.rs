//! Image generators: a prompt, reference images and an optional image to edit in; an
//! image out.

mod openai;

pub use openai::OpenAiImages;

use async_trait::async_trait;
use bytes::Bytes;
use iat2i_retrievers::HttpError;
use serde::{Deserialize, Serialize};

/// An encoded image with its MIME type.
#[derive(Debug, Clone, PartialEq)]
pub struct InputImage {
    /// The encoded bytes.
    pub bytes: Bytes,
    /// Their MIME type (`image/png`, `image/jpeg`, `image/webp` ...).
    pub mime: String,
}

impl InputImage {
    /// Wrap bytes, sniffing the MIME type from the content (PNG when unknown).
    pub fn sniff(bytes: Bytes) -> Self {
        let mime = sniff_mime(&bytes).unwrap_or("image/png").to_string();
        InputImage { bytes, mime }
    }
}

/// The MIME type of encoded image bytes, from their magic number.
pub fn sniff_mime(bytes: &[u8]) -> Option<&'static str> {
    image::guess_format(bytes).ok().map(|f| f.to_mime_type())
}

/// Width and height of encoded image bytes, read from the header without decoding.
pub fn dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .ok()?
        .into_dimensions()
        .ok()
}

/// A reference image and what it is for.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceImage {
    /// The image.
    pub image: InputImage,
    /// What it shows (the entity), used to tell the model what to take from it.
    pub label: String,
}

/// One generation call.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationRequest {
    /// The prompt to send, already saying what each reference is for
    /// (see [`compose_prompt`]).
    pub prompt: String,
    /// Reference images, best first.
    pub references: Vec<ReferenceImage>,
    /// The user's image to edit, sent before the references.
    pub edit_image: Option<InputImage>,
}

/// Token details of an image call's input, as OpenAI reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputTokensDetails {
    /// Text tokens.
    #[serde(default)]
    pub text_tokens: u64,
    /// Image tokens.
    #[serde(default)]
    pub image_tokens: u64,
}

/// What one or more image calls cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageUsage {
    /// Input tokens (text and images).
    #[serde(default)]
    pub input_tokens: u64,
    /// Output (image) tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Their sum.
    #[serde(default)]
    pub total_tokens: u64,
    /// Input token breakdown, when reported.
    #[serde(default)]
    pub input_tokens_details: Option<InputTokensDetails>,
    /// Images generated.
    #[serde(default)]
    pub images: u32,
}

impl ImageUsage {
    /// Add another call's usage.
    pub fn add(&mut self, o: &ImageUsage) {
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.total_tokens += o.total_tokens;
        self.images += o.images;
        if let Some(d) = o.input_tokens_details {
            let mine = self
                .input_tokens_details
                .get_or_insert_with(Default::default);
            mine.text_tokens += d.text_tokens;
            mine.image_tokens += d.image_tokens;
        }
    }
}

/// A generated image.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedImage {
    /// The encoded image.
    pub bytes: Bytes,
    /// Its MIME type, sniffed from the bytes.
    pub mime: String,
    /// What the call cost.
    pub usage: ImageUsage,
    /// The prompt the service says it actually used, when it rewrote it.
    pub revised_prompt: Option<String>,
}

/// What went wrong while generating.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The generator is misconfigured.
    #[error("image generator configuration: {0}")]
    Config(String),
    /// The HTTP exchange failed after retries.
    #[error("image generator {endpoint}: {source}")]
    Http {
        /// Model and endpoint, without secrets.
        endpoint: String,
        /// The underlying error.
        #[source]
        source: HttpError,
    },
    /// The service answered with an error object.
    #[error("image generator {endpoint} returned an error: {message}")]
    Api {
        /// Model and endpoint, without secrets.
        endpoint: String,
        /// The service's message (safety rejections arrive here: rephrase the prompt).
        message: String,
    },
    /// The answer held no image.
    #[error("image generator {endpoint} returned no image: {detail}")]
    NoImage {
        /// Model and endpoint, without secrets.
        endpoint: String,
        /// What was missing.
        detail: String,
    },
    /// Any other failure (for custom implementations).
    #[error("{0}")]
    Other(String),
}

/// Generates an image.
#[async_trait]
pub trait Generator: Send + Sync + std::fmt::Debug {
    /// Generate one image for `request`.
    async fn generate(&self, request: &GenerationRequest) -> Result<GeneratedImage, ImageError>;

    /// The model and endpoint, without secrets, for reports.
    fn describe(&self) -> String;
}

/// The prompt to send with `labels.len()` reference images: the user's prompt, then one
/// line per reference saying what it shows and that it is only for that entity's
/// appearance. In edit mode the user's image is image 1 and references are numbered from 2.
pub fn compose_prompt(prompt: &str, labels: &[String], edit: bool) -> String {
    if labels.is_empty() {
        return prompt.to_string();
    }
    let mut out = String::from(prompt.trim());
    out.push_str("\n\n");
    if edit {
        out.push_str(
            "Image 1 is the image to edit; keep everything the prompt does not ask to change.\n",
        );
    }
    let first = if edit { 2 } else { 1 };
    for (i, label) in labels.iter().enumerate() {
        let n = first + i;
        out.push_str(&format!(
            "Reference image {n} shows {label}; use it only for the appearance of {label} \
             (shape, colours, markings, clothing), not for its background, framing, pose, \
             lighting or style.\n"
        ));
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_names_each_reference_and_its_use() {
        let p = compose_prompt("A Graphorn at dusk", &["a Graphorn".into()], false);
        assert!(p.starts_with("A Graphorn at dusk"));
        assert!(p.contains(
            "Reference image 1 shows a Graphorn; use it only for the appearance of a Graphorn"
        ));
        let e = compose_prompt("Add a Graphorn", &["a Graphorn".into()], true);
        assert!(e.contains("Image 1 is the image to edit"));
        assert!(e.contains("Reference image 2 shows a Graphorn"));
        assert_eq!(compose_prompt("plain", &[], true), "plain");
    }
}
