//! Image generators: a prompt, reference images and an optional image to edit in; an
//! image out.

mod calls;
mod chat_images;
pub mod comfyui;
mod fit;
mod gemini;
mod openai;
mod request;

pub use chat_images::{ChatImages, OPENROUTER_DEFAULT_BASE};
pub use comfyui::{COMFYUI_DEFAULT_BASE, ComfyUi, Workflow, WorkflowNodes};
pub use fit::{ReferenceLimits, fit_image, fit_request};
pub use gemini::{GEMINI_ASPECT_RATIOS, GEMINI_DEFAULT_BASE, GeminiImages};
pub use openai::OpenAiImages;
pub use request::{
    Generation, GenerationRequest, GenerationSettings, GeneratorProgress, ImageSize, ProgressSink,
    ReferenceImage, ReferenceRole, compose_prompt, reference_line,
};

use async_trait::async_trait;
use bytes::Bytes;
use iat2i_retrievers::{HttpClient, HttpError, HttpResponse, Trust};
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

/// Token details of an image call's input, as OpenAI reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputTokensDetails {
    /// Text tokens.
    #[serde(default, deserialize_with = "crate::lmm::lenient::count")]
    pub text_tokens: u64,
    /// Image tokens.
    #[serde(default, deserialize_with = "crate::lmm::lenient::count")]
    pub image_tokens: u64,
}

/// Token details of an image call's output: Gemini's `candidatesTokensDetails` by
/// modality.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputTokensDetails {
    /// Text tokens (a caption).
    #[serde(default, deserialize_with = "crate::lmm::lenient::count")]
    pub text_tokens: u64,
    /// Image tokens.
    #[serde(default, deserialize_with = "crate::lmm::lenient::count")]
    pub image_tokens: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What one or more image calls cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageUsage {
    /// Input tokens (text and images).
    #[serde(default, deserialize_with = "crate::lmm::lenient::count")]
    pub input_tokens: u64,
    /// Output tokens (the image, and any caption), without thinking tokens.
    #[serde(default, deserialize_with = "crate::lmm::lenient::count")]
    pub output_tokens: u64,
    /// Thinking tokens (Gemini's `thoughtsTokenCount`: interim images and thought text),
    /// reported apart from the output but billed at the output price.
    #[serde(
        default,
        skip_serializing_if = "is_zero",
        deserialize_with = "crate::lmm::lenient::count"
    )]
    pub thinking_tokens: u64,
    /// All tokens billed, as the service reports them.
    #[serde(default, deserialize_with = "crate::lmm::lenient::count")]
    pub total_tokens: u64,
    /// Input token breakdown, when reported.
    #[serde(default, deserialize_with = "crate::lmm::lenient::optional")]
    pub input_tokens_details: Option<InputTokensDetails>,
    /// Output token breakdown (image and text tokens), when reported.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::lmm::lenient::optional"
    )]
    pub output_tokens_details: Option<OutputTokensDetails>,
    /// Images generated.
    #[serde(default, deserialize_with = "crate::lmm::lenient::count_u32")]
    pub images: u32,
    /// Calls made.
    #[serde(default)]
    pub calls: u32,
}

impl ImageUsage {
    /// Add another call's usage. The counts are the services', so the sums saturate
    /// instead of overflowing.
    pub fn add(&mut self, o: &ImageUsage) {
        self.input_tokens = self.input_tokens.saturating_add(o.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(o.output_tokens);
        self.thinking_tokens = self.thinking_tokens.saturating_add(o.thinking_tokens);
        self.total_tokens = self.total_tokens.saturating_add(o.total_tokens);
        self.images = self.images.saturating_add(o.images);
        self.calls = self.calls.saturating_add(o.calls);
        if let Some(d) = o.input_tokens_details {
            let mine = self
                .input_tokens_details
                .get_or_insert_with(Default::default);
            mine.text_tokens = mine.text_tokens.saturating_add(d.text_tokens);
            mine.image_tokens = mine.image_tokens.saturating_add(d.image_tokens);
        }
        if let Some(d) = o.output_tokens_details {
            let mine = self
                .output_tokens_details
                .get_or_insert_with(Default::default);
            mine.text_tokens = mine.text_tokens.saturating_add(d.text_tokens);
            mine.image_tokens = mine.image_tokens.saturating_add(d.image_tokens);
        }
    }

    /// The tokens billed at the output price: output and thinking tokens (saturating).
    pub fn billed_output_tokens(&self) -> u64 {
        self.output_tokens.saturating_add(self.thinking_tokens)
    }
}

/// Which part of a Gemini answer a [`ThoughtSignature`] came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignedPart {
    /// The caption (the first text part after the thoughts).
    Text,
    /// The image.
    Image,
}

/// A Gemini `thoughtSignature`: an opaque token of the model's reasoning that a follow-up
/// turn (an edit of this image) sends back unchanged, on the same part, so the model keeps
/// its context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThoughtSignature {
    /// The part it came with.
    pub part: SignedPart,
    /// The signature, exactly as received.
    pub signature: String,
}

/// A generated image.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct GeneratedImage {
    /// The encoded image.
    pub bytes: Bytes,
    /// Its MIME type, sniffed from the bytes.
    pub mime: String,
    /// What the call that made it cost (shared by all images of one call: add
    /// [`Generation::usage`] once, not this per image).
    pub usage: ImageUsage,
    /// The prompt the service says it actually used, when it rewrote it.
    pub revised_prompt: Option<String>,
    /// The thought signatures of the answer's parts this image came with (Gemini 3 image
    /// models), in their order, to send back unchanged in a follow-up edit turn; empty
    /// for other backends.
    pub thought_signatures: Vec<ThoughtSignature>,
}

impl GeneratedImage {
    /// An image from its encoded bytes, its MIME type sniffed (`image/png` when the bytes
    /// are not a known format), with no usage of its own. For generators written outside
    /// this crate.
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        let mime = sniff_mime(&bytes).unwrap_or("image/png").to_string();
        GeneratedImage {
            bytes,
            mime,
            usage: ImageUsage::default(),
            revised_prompt: None,
            thought_signatures: Vec::new(),
        }
    }
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
    /// The model declined: the prompt was blocked, the image withheld for safety,
    /// recitation or policy, or it answered in words only. Not retried: rephrase the
    /// prompt or change the reference.
    #[error("image generator {endpoint} refused ({kind:?}: {reason}){}", said(.text))]
    Refused {
        /// Model and endpoint, without secrets.
        endpoint: String,
        /// What kind of refusal.
        kind: RefusalKind,
        /// The service's own reason code (`IMAGE_SAFETY`, `PROHIBITED_CONTENT` ...).
        reason: String,
        /// The model's text, when it wrote any.
        text: Option<String>,
        /// What the refused call cost, when the service said: a blocked prompt still
        /// bills its input tokens, and budgets count them. Boxed to keep the error small.
        usage: Option<Box<ImageUsage>>,
    },
    /// A workflow node failed (ComfyUI's `node_errors` or `execution_error`).
    #[error("image generator {endpoint}: node {node} ({class_type}) failed: {message}")]
    Node {
        /// Server, without secrets.
        endpoint: String,
        /// The node id in the workflow.
        node: String,
        /// The node's class.
        class_type: String,
        /// What the server said (every failing node, when several failed).
        message: String,
        /// What kind of failure it was, which decides its [`crate::ErrorClass`].
        failure: NodeFailure,
    },
    /// The job did not finish in time (it was interrupted where the backend allows).
    #[error("image generator {endpoint} timed out after {after:?}: {detail}")]
    Timeout {
        /// Model and endpoint, without secrets.
        endpoint: String,
        /// How long it waited.
        after: std::time::Duration,
        /// What was done about it.
        detail: String,
    },
    /// Any other failure (for custom implementations).
    #[error("{0}")]
    Other(String),
}

fn said(text: &Option<String>) -> String {
    text.as_deref()
        .map(|t| format!(": {t}"))
        .unwrap_or_default()
}

/// What kind of node failure an [`ImageError::Node`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NodeFailure {
    /// The server refused the workflow before running it: a failed validation, a node
    /// class that is not installed, an input the node does not have. Fix the workflow,
    /// its node map or the server's custom nodes.
    Invalid,
    /// A node raised an exception while running (`execution_error`).
    Raised,
    /// A node ran out of (GPU) memory: try again when the server is less busy, or ask
    /// for a smaller image or batch.
    OutOfMemory,
    /// The server reported a failure without saying what it was.
    Unknown,
}

/// Why a model declined to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RefusalKind {
    /// The prompt itself was blocked before generation.
    PromptBlocked,
    /// The output was withheld for safety.
    Safety,
    /// The output was withheld as prohibited content.
    Prohibited,
    /// The output was withheld as a recitation of existing material.
    Recitation,
    /// The model made no image and said why not (or nothing).
    NoImage,
    /// The model answered in text only.
    TextOnly,
    /// Another reason the service gave.
    Other,
}

impl ImageError {
    /// Whether the model declined (a typed refusal, never retried).
    pub fn is_refusal(&self) -> bool {
        matches!(self, ImageError::Refused { .. })
    }

    /// What the failed call cost, when the service reported it (a refusal's input
    /// tokens): add it to the run's spending.
    pub fn usage(&self) -> Option<ImageUsage> {
        match self {
            ImageError::Refused { usage, .. } => usage.as_deref().copied(),
            _ => None,
        }
    }

    /// Replace every occurrence of `secret` (an API key) with `***` in every text this
    /// error holds, the wrapped HTTP error included, so it cannot reach `Display`, `Debug`
    /// or a report.
    pub fn scrub(&mut self, secret: &str) {
        let clean = |s: &mut String| iat2i_retrievers::http::scrub_secret(s, secret);
        match self {
            ImageError::Config(m) | ImageError::Other(m) => clean(m),
            ImageError::Http { endpoint, source } => {
                clean(endpoint);
                source.scrub(secret);
            }
            ImageError::Api { endpoint, message } => {
                clean(endpoint);
                clean(message);
            }
            ImageError::NoImage { endpoint, detail }
            | ImageError::Timeout {
                endpoint, detail, ..
            } => {
                clean(endpoint);
                clean(detail);
            }
            ImageError::Refused {
                endpoint,
                reason,
                text,
                ..
            } => {
                clean(endpoint);
                clean(reason);
                if let Some(t) = text {
                    clean(t);
                }
            }
            ImageError::Node {
                endpoint,
                node,
                class_type,
                message,
                ..
            } => {
                for s in [endpoint, node, class_type, message] {
                    clean(s);
                }
            }
        }
    }
}

/// Generates images.
#[async_trait]
pub trait Generator: Send + Sync + std::fmt::Debug {
    /// Generate `request.n` images (at least one) for `request`, expressing its
    /// references the backend's own way.
    async fn generate(&self, request: &GenerationRequest) -> Result<Generation, ImageError>;

    /// The model and endpoint, without secrets, for reports.
    fn describe(&self) -> String;

    /// Everything about this backend that changes the images it makes, without secrets:
    /// the model and endpoint, and settings held by the backend itself (a quality, a
    /// workflow). A batch re-runs a done job when this changes. Default: [`describe`].
    ///
    /// [`describe`]: Generator::describe
    fn identity(&self) -> String {
        self.describe()
    }

    /// The most images one call takes, the image to edit included, when the backend has
    /// a limit. The pipeline sends one reference per entity, most unfamiliar first, and
    /// records which entities' references did not fit. Default: no limit.
    fn max_input_images(&self) -> Option<usize> {
        None
    }
}

/// Send a paid request (one that costs money or GPU time when the server processes it)
/// to a configured endpoint.
pub(crate) async fn send_paid<F>(http: &HttpClient, make: F) -> Result<HttpResponse, HttpError>
where
    F: Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync,
{
    http.execute_paid(Trust::Trusted, &iat2i_retrievers::Paid::new(), make)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A service that reports absurd counts (a gateway's bug, a hostile endpoint) must
    /// not panic the run in debug builds or wrap to a small bill in release ones: the
    /// `gemini` fuzz target found the same overflow in Gemini's per-modality sums.
    #[test]
    fn usage_sums_saturate() {
        let huge = ImageUsage {
            output_tokens: u64::MAX,
            thinking_tokens: 1,
            input_tokens_details: Some(InputTokensDetails {
                text_tokens: u64::MAX,
                image_tokens: 0,
            }),
            images: u32::MAX,
            calls: 1,
            ..ImageUsage::default()
        };
        assert_eq!(huge.billed_output_tokens(), u64::MAX);
        let mut total = huge;
        total.add(&huge);
        assert_eq!(total.output_tokens, u64::MAX);
        assert_eq!(total.input_tokens_details.unwrap().text_tokens, u64::MAX);
        assert_eq!(total.images, u32::MAX);
        assert_eq!(total.calls, 2);
    }
}
