use std::time::Duration;

use async_trait::async_trait;
use iat2i_retrievers::http::redact;
use iat2i_retrievers::{HttpClient, HttpError, Trust};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::Instrument;
use url::Url;

use super::{ChatRequest, ChatResponse, Lmm, LmmError, Message, Part, Role, Usage};
use crate::secret::Secret;

/// The default OpenAI API base URL.
pub const OPENAI_DEFAULT_BASE: &str = "https://api.openai.com/v1";

/// A chat-completions client for any OpenAI-compatible server: OpenAI, Ollama
/// (`http://localhost:11434/v1`), vLLM, OpenRouter, LiteLLM and other gateways.
///
/// Built on the shared [`HttpClient`] (trusted: the endpoint is the user's choice), so it
/// gets its timeouts, its retries with backoff on 429/5xx honouring `Retry-After`, and its
/// response-size cap. The API key is a [`Secret`] and appears in no `Debug`, error or report.
#[derive(Clone)]
pub struct OpenAiChat {
    http: HttpClient,
    base: Url,
    model: String,
    api_key: Option<Secret>,
}

impl std::fmt::Debug for OpenAiChat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiChat")
            .field("base", &redact(&self.base))
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Parse a base URL given by a user, saying what is wrong with it (without its query or
/// credentials, which may hold a key).
pub(crate) fn parse_base(base: &str) -> Result<Url, String> {
    let u = Url::parse(base.trim()).map_err(|e| {
        let shown = redact_unparsed(base.trim());
        format!("base URL {shown:?} is not a URL ({e}); expected e.g. https://api.openai.com/v1")
    })?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!("base URL {} must be http or https", redact(&u)));
    }
    Ok(u)
}

/// A string that failed to parse as a URL, cut before any query or fragment and with no
/// user or password in its authority.
fn redact_unparsed(text: &str) -> String {
    let text = text.split(['?', '#']).next().unwrap_or_default();
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_string();
    };
    let authority = rest.split('/').next().unwrap_or_default();
    match authority.rfind('@') {
        Some(at) => format!("{scheme}://{}", rest.get(at + 1..).unwrap_or_default()),
        None => text.to_string(),
    }
}

/// `base` + `/` + `path`, keeping the base's own path (`.../v1`).
pub(crate) fn endpoint(base: &Url, path: &str) -> Result<Url, String> {
    let joined = format!("{}/{}", base.as_str().trim_end_matches('/'), path);
    Url::parse(&joined).map_err(|e| format!("cannot build {path} URL from the base URL: {e}"))
}

/// The HTTP client the model clients use when given none: 10 s to connect,
/// `total` for a whole exchange, 3 retries on 429/5xx.
pub fn model_http_client(total: Duration) -> Result<HttpClient, HttpError> {
    HttpClient::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(total)
        .total_timeout(total)
        .per_host_per_second(0)
        .build()
}

impl OpenAiChat {
    /// A client for `model` at `base` (such as `https://api.openai.com/v1`), without a key.
    pub fn new(http: HttpClient, base: &str, model: impl Into<String>) -> Result<Self, LmmError> {
        Ok(OpenAiChat {
            http,
            base: parse_base(base).map_err(LmmError::Config)?,
            model: model.into(),
            api_key: None,
        })
    }

    /// A client for `model` configured from the environment: `OPENAI_BASE_URL` (default
    /// `https://api.openai.com/v1`) and `OPENAI_API_KEY` (required for api.openai.com).
    pub fn from_env(http: HttpClient, model: impl Into<String>) -> Result<Self, LmmError> {
        let base = std::env::var("OPENAI_BASE_URL")
            .ok()
            .filter(|b| !b.trim().is_empty())
            .unwrap_or_else(|| OPENAI_DEFAULT_BASE.to_string());
        let key = Secret::from_env("OPENAI_API_KEY");
        let client = OpenAiChat::new(http, &base, model)?;
        if key.is_none() && client.base.host_str() == Some("api.openai.com") {
            return Err(LmmError::Config(
                "no API key: set OPENAI_API_KEY, or set OPENAI_BASE_URL to a keyless \
                 OpenAI-compatible server such as http://localhost:11434/v1 (Ollama)"
                    .into(),
            ));
        }
        Ok(match key {
            Some(k) => client.with_api_key(k),
            None => client,
        })
    }

    /// Send `key` as a bearer token.
    pub fn with_api_key(mut self, key: Secret) -> Self {
        self.api_key = Some(key);
        self
    }

    /// The base URL, without secrets.
    pub fn base_url(&self) -> String {
        redact(&self.base)
    }

    fn body(&self, req: &ChatRequest) -> Value {
        let messages: Vec<Value> = req.messages.iter().map(wire_message).collect();
        let mut body = json!({ "model": self.model, "messages": messages });
        if let Some(schema) = &req.json_schema {
            body["response_format"] = json!({
                "type": "json_schema",
                "json_schema": { "name": schema.name, "strict": true, "schema": schema.schema },
            });
        }
        if let Some(t) = req.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(m) = req.max_tokens {
            let field = if self.base.host_str() == Some("api.openai.com") {
                "max_completion_tokens"
            } else {
                "max_tokens"
            };
            body[field] = json!(m);
        }
        body
    }

    fn scrub(&self, text: String) -> String {
        match &self.api_key {
            Some(k) if !k.expose().is_empty() => text.replace(k.expose(), "***"),
            _ => text,
        }
    }
}

fn wire_message(m: &Message) -> Value {
    let role = match m.role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
    };
    let text_only = m.parts.iter().all(|p| matches!(p, Part::Text(_)));
    if text_only {
        let text: Vec<&str> = m
            .parts
            .iter()
            .filter_map(|p| match p {
                Part::Text(t) => Some(t.as_str()),
                Part::Image { .. } => None,
            })
            .collect();
        return json!({ "role": role, "content": text.join("\n\n") });
    }
    let parts: Vec<Value> = m
        .parts
        .iter()
        .map(|p| match p {
            Part::Text(t) => json!({ "type": "text", "text": t }),
            Part::Image { .. } => json!({
                "type": "image_url",
                "image_url": { "url": p.data_url().unwrap_or_default() },
            }),
        })
        .collect();
    json!({ "role": role, "content": parts })
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    choices: Option<Vec<WireChoice>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    model: Option<String>,
}

#[derive(Deserialize)]
struct WireChoice {
    #[serde(default)]
    message: Option<WireMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Deserialize, Default)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    total_tokens: u64,
}

/// The text of a message's content: a string, or the text parts of an array.
fn content_text(content: &Value) -> Option<String> {
    match content {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            (!texts.is_empty()).then(|| texts.join(""))
        }
        _ => None,
    }
}

/// Read an `{"error": ...}` object (OpenAI, OpenRouter and Ollama shapes).
pub(crate) fn api_error(error: &Value) -> (String, Option<String>) {
    let message = match error {
        Value::String(s) => s.clone(),
        other => other
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| other.to_string()),
    };
    let code = error
        .get("code")
        .or_else(|| error.get("type"))
        .and_then(|c| match c {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
    (message, code)
}

impl OpenAiChat {
    fn parse(&self, body: &[u8]) -> Result<ChatResponse, LmmError> {
        let endpoint = self.describe();
        let wire: WireResponse = serde_json::from_slice(body).map_err(|e| LmmError::Protocol {
            endpoint: endpoint.clone(),
            detail: format!("{e}"),
        })?;
        if let Some(err) = wire.error.as_ref().filter(|e| !e.is_null()) {
            let (message, code) = api_error(err);
            return Err(LmmError::Api {
                endpoint,
                message: self.scrub(message),
                code,
            });
        }
        let choice = wire
            .choices
            .and_then(|c| c.into_iter().next())
            .ok_or_else(|| LmmError::Empty {
                endpoint: endpoint.clone(),
                detail: "no choices in the response".into(),
            })?;
        let message = choice.message.ok_or_else(|| LmmError::Empty {
            endpoint: endpoint.clone(),
            detail: "the first choice has no message".into(),
        })?;
        if let Some(refusal) = message.refusal.filter(|r| !r.trim().is_empty()) {
            return Err(LmmError::Refused { endpoint, refusal });
        }
        if choice.finish_reason.as_deref() == Some("length") {
            return Err(LmmError::Truncated { endpoint });
        }
        let content = message
            .content
            .as_ref()
            .and_then(content_text)
            .filter(|c| !c.trim().is_empty())
            .ok_or_else(|| LmmError::Empty {
                endpoint: endpoint.clone(),
                detail: "the message has no content".into(),
            })?;
        let u = wire.usage.unwrap_or_default();
        Ok(ChatResponse {
            content,
            usage: Usage {
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
                total_tokens: u.total_tokens,
                calls: 1,
            },
            model: wire.model.unwrap_or_else(|| self.model.clone()),
            finish_reason: choice.finish_reason,
        })
    }
}

#[async_trait]
impl Lmm for OpenAiChat {
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LmmError> {
        let url = endpoint(&self.base, "chat/completions").map_err(LmmError::Config)?;
        let body = self.body(request);
        let key = self.api_key.clone();
        let resp = self
            .http
            .execute(Trust::Trusted, |c| {
                let rb = c.post(url.clone()).json(&body);
                match &key {
                    Some(k) => rb.bearer_auth(k.expose()),
                    None => rb,
                }
            })
            .instrument(tracing::debug_span!("lmm.chat", model = %self.model))
            .await
            .map_err(|mut source| {
                if let HttpError::Status { body, .. } = &mut source {
                    *body = self.scrub(std::mem::take(body));
                }
                LmmError::Http {
                    endpoint: self.describe(),
                    source,
                }
            })?;
        self.parse(&resp.body)
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn describe(&self) -> String {
        format!("{} at {}", self.model, redact(&self.base))
    }
}
