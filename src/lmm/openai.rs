use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use iat2i_retrievers::http::redact;
use iat2i_retrievers::{HttpClient, HttpError, Paid, Trust};
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
/// gets its timeouts and its response-size cap. A completion bills, so it is sent with
/// [`HttpClient::execute_paid`]: retried (honouring `Retry-After`) only on 429 or a
/// connection that failed before sending; a 5xx or a timeout fails at once with
/// [`HttpError::NotRetried`] rather than paying twice. The API key is a [`Secret`] and
/// appears in no `Debug`, error or report.
#[derive(Clone)]
pub struct OpenAiChat {
    http: HttpClient,
    base: Url,
    model: String,
    api_key: Option<Secret>,
    /// Set once the server rejected `response_format: json_schema` (HTTP 400): later
    /// calls ask for the schema in the prompt instead.
    schema_rejected: Arc<AtomicBool>,
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
/// `total` for a whole exchange, 3 retries (for paid calls only those that provably were
/// not processed: 429 and connections that failed before sending).
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
            schema_rejected: Arc::new(AtomicBool::new(false)),
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

    /// The request body; without `with_schema`, a schema the request asks for goes into
    /// a final user message as an instruction instead of `response_format`.
    fn body(&self, req: &ChatRequest, with_schema: bool) -> Value {
        let mut messages: Vec<Value> = req.messages.iter().map(wire_message).collect();
        if let (false, Some(schema)) = (with_schema, &req.json_schema) {
            messages.push(json!({ "role": "user", "content": format!(
                "Answer with only one JSON object, no prose and no code fences, following \
                 this JSON schema: {}",
                schema.schema
            )}));
        }
        let mut body = json!({ "model": self.model, "messages": messages });
        if let (true, Some(schema)) = (with_schema, &req.json_schema) {
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

    fn scrub(&self, mut text: String) -> String {
        if let Some(k) = &self.api_key {
            iat2i_retrievers::http::scrub_secret(&mut text, k.expose());
        }
        text
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
    #[serde(default, deserialize_with = "super::lenient::optional")]
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

/// Token counts as servers send them: each may be missing, `null` or a float.
#[derive(Deserialize, Default)]
struct WireUsage {
    #[serde(default, deserialize_with = "super::lenient::count")]
    prompt_tokens: u64,
    #[serde(default, deserialize_with = "super::lenient::count")]
    completion_tokens: u64,
    #[serde(default, deserialize_with = "super::lenient::count")]
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
            degraded: Vec::new(),
        })
    }
}

/// Whether an error is a server refusing `response_format: json_schema` itself, as
/// local servers phrase it: llama.cpp ("response_format type must be one of \"text\" or
/// \"json_object\", but got: json_schema"), vLLM (`"param": "response_format"`), Ollama
/// and gateways ("invalid response format", "json_schema is not supported").
fn rejects_schema(e: &HttpError) -> bool {
    let HttpError::Status { status, body, .. } = e.innermost() else {
        return false;
    };
    let body = body.to_ascii_lowercase();
    matches!(status.as_u16(), 400 | 422)
        && [
            "response_format",
            "response format",
            "json_schema",
            "structured output",
        ]
        .iter()
        .any(|w| body.contains(w))
}

impl OpenAiChat {
    /// One paid chat call (retried only when provably not processed).
    async fn send(
        &self,
        request: &ChatRequest,
        with_schema: bool,
    ) -> Result<ChatResponse, LmmError> {
        let url = endpoint(&self.base, "chat/completions").map_err(LmmError::Config)?;
        let body = self.body(request, with_schema);
        let key = self.api_key.clone();
        let resp = self
            .http
            .execute_paid(Trust::Trusted, &Paid::new(), |c| {
                let rb = c.post(url.clone()).json(&body);
                match &key {
                    Some(k) => rb.bearer_auth(k.expose()),
                    None => rb,
                }
            })
            .instrument(tracing::debug_span!("lmm.chat", model = %self.model))
            .await
            .map_err(|mut source| {
                if let Some(k) = &self.api_key {
                    source.scrub(k.expose());
                }
                LmmError::Http {
                    endpoint: self.describe(),
                    source,
                }
            })?;
        self.parse(&resp.body)
    }

    fn schema_note(&self) -> String {
        format!(
            "LMM {}: the server rejects response_format json_schema (HTTP 400), so the \
             schema was asked for in the prompt and the answer parsed tolerantly",
            self.describe()
        )
    }
}

#[async_trait]
impl Lmm for OpenAiChat {
    /// One chat call. A server that rejects `response_format: json_schema` with HTTP 400
    /// (some local servers) is asked once more with the schema in the prompt instead, and
    /// every later call of this client does so directly; the answer's `degraded` says so.
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LmmError> {
        let wants_schema = request.json_schema.is_some();
        let with_schema = wants_schema && !self.schema_rejected.load(Ordering::Relaxed);
        let mut resp = match self.send(request, with_schema).await {
            Err(LmmError::Http { source, .. }) if with_schema && rejects_schema(&source) => {
                self.schema_rejected.store(true, Ordering::Relaxed);
                tracing::warn!(
                    endpoint = %self.describe(),
                    error = %source,
                    "the server rejects response_format json_schema; asking again without it"
                );
                self.send(request, false).await?
            }
            other => other?,
        };
        if wants_schema && (!with_schema || self.schema_rejected.load(Ordering::Relaxed)) {
            resp.degraded.push(self.schema_note());
        }
        Ok(resp)
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn describe(&self) -> String {
        format!("{} at {}", self.model, redact(&self.base))
    }
}
