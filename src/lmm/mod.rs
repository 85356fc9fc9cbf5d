//! The large multimodal model (LMM) client: one chat call with text and images in,
//! text or JSON out.
//!
//! [`Lmm`] is the trait; [`OpenAiChat`] speaks the OpenAI chat-completions protocol that
//! OpenAI, Ollama, vLLM, OpenRouter and most gateways share. [`chat_json`] builds a JSON
//! schema from a Rust type, asks for it, parses the answer tolerantly and retries once
//! on a refusal or a non-JSON reply.

mod error;
mod json;
pub(crate) mod lenient;
mod openai;

/// Helpers the other OpenAI-protocol clients share.
pub(crate) mod openai_support {
    pub(crate) use super::openai::{OPENAI_DEFAULT_BASE, api_error, endpoint, parse_base};
}

pub use error::LmmError;
pub use json::{JsonReply, chat_json, extract_json, strict_schema};
pub use openai::{OPENAI_DEFAULT_BASE, OpenAiChat, model_http_client};

use async_trait::async_trait;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions that frame the conversation.
    System,
    /// The caller.
    User,
    /// The model (used for few-shot examples and retries).
    Assistant,
}

/// One piece of a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// Plain text.
    Text(String),
    /// An encoded image (PNG, JPEG, WebP or GIF), sent as a base64 data URL.
    Image {
        /// The encoded bytes.
        bytes: bytes::Bytes,
        /// Their MIME type.
        mime: String,
    },
}

impl Part {
    /// The image as a `data:` URL, or `None` for text.
    pub fn data_url(&self) -> Option<String> {
        match self {
            Part::Text(_) => None,
            Part::Image { bytes, mime } => Some(format!(
                "data:{mime};base64,{}",
                base64::engine::general_purpose::STANDARD.encode(bytes)
            )),
        }
    }
}

/// One chat message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Its author.
    pub role: Role,
    /// Its parts, in order.
    pub parts: Vec<Part>,
}

impl Message {
    /// A system message.
    pub fn system(text: impl Into<String>) -> Self {
        Message {
            role: Role::System,
            parts: vec![Part::Text(text.into())],
        }
    }
    /// A user message with text only.
    pub fn user(text: impl Into<String>) -> Self {
        Message {
            role: Role::User,
            parts: vec![Part::Text(text.into())],
        }
    }
    /// An assistant message.
    pub fn assistant(text: impl Into<String>) -> Self {
        Message {
            role: Role::Assistant,
            parts: vec![Part::Text(text.into())],
        }
    }
    /// Append an image part.
    pub fn with_image(mut self, bytes: bytes::Bytes, mime: impl Into<String>) -> Self {
        self.parts.push(Part::Image {
            bytes,
            mime: mime.into(),
        });
        self
    }
    /// Append a text part.
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.parts.push(Part::Text(text.into()));
        self
    }
}

/// A JSON schema the answer must follow (OpenAI structured outputs).
#[derive(Debug, Clone, PartialEq)]
pub struct JsonSchemaFormat {
    /// A short name (`[a-zA-Z0-9_-]`), such as `assessment`.
    pub name: String,
    /// The schema, already in the strict subset (see [`strict_schema`]).
    pub schema: serde_json::Value,
}

/// One chat call.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatRequest {
    /// The conversation.
    pub messages: Vec<Message>,
    /// Ask for JSON following this schema; `None` for free text.
    pub json_schema: Option<JsonSchemaFormat>,
    /// Sampling temperature; `None` leaves the server's default.
    pub temperature: Option<f32>,
    /// Cap on the answer's tokens; `None` leaves the server's default.
    pub max_tokens: Option<u32>,
}

/// Token counts of one or more chat calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt (images included).
    pub prompt_tokens: u64,
    /// Tokens in the answer.
    pub completion_tokens: u64,
    /// Their sum, as the server reports it.
    pub total_tokens: u64,
    /// How many calls these counts cover.
    pub calls: u32,
}

impl Usage {
    /// Add another call's counts.
    pub fn add(&mut self, other: &Usage) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.total_tokens += other.total_tokens;
        self.calls += other.calls;
    }
}

/// The answer to one chat call.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    /// The text of the first choice (JSON text when a schema was asked for).
    pub content: String,
    /// Token counts.
    pub usage: Usage,
    /// The model that answered, as the server names it.
    pub model: String,
    /// Why the model stopped (`stop`, `length`, ...), when the server says.
    pub finish_reason: Option<String>,
    /// What this call had to do without, in words (such as a server that rejected
    /// `response_format: json_schema`, so the schema went into the prompt). Empty when
    /// nothing was lost.
    pub degraded: Vec<String>,
}

/// A chat model: one call with text and images in, text or JSON out.
///
/// Implementations must keep API keys out of `Debug`, errors and [`Lmm::describe`].
#[async_trait]
pub trait Lmm: Send + Sync + std::fmt::Debug {
    /// Run one chat call.
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LmmError>;

    /// The model name, for reports.
    fn model(&self) -> &str;

    /// The model and endpoint, without secrets, for reports and errors.
    fn describe(&self) -> String {
        self.model().to_string()
    }
}
