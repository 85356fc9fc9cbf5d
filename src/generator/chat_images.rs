//! Image models served through chat completions (OpenRouter, and gateways that copy its
//! `message.images` shape).

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use iat2i_retrievers::HttpClient;
use iat2i_retrievers::http::redact;
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::Instrument;
use url::Url;

use super::calls::{CallReply, ReplyImage, fitted, gather};
use super::{
    Generation, GenerationRequest, Generator, ImageError, ImageSize, ImageUsage, ReferenceLimits,
    RefusalKind, sniff_mime,
};
use crate::lmm::openai_support::{api_error, endpoint, parse_base};
use crate::secret::Secret;

/// OpenRouter's API root.
pub const OPENROUTER_DEFAULT_BASE: &str = "https://openrouter.ai/api/v1";

/// A chat-completions image model: `POST {base}/chat/completions` with
/// `modalities: ["image", "text"]` (`["image"]` for image-only models, see
/// [`ChatImages::with_modalities`]).
///
/// One user message carries the text (with a line per reference saying what to take
/// from it), then the image to edit and each reference as `image_url` parts holding
/// data URLs. The request's size becomes `image_config.aspect_ratio`/`image_size`,
/// `seed` is sent as `seed`, and `options` are merged into the body (a gateway's
/// `provider` routing, for instance). `n > 1` makes `n` calls.
///
/// Images are read from `choices[0].message.images[].image_url.url` data URLs. A
/// `content_filter` finish, a `refusal`, or text without an image is an
/// [`ImageError::Refused`] carrying the reason, the text and the usage the server
/// reported (a refused call still bills its input); an `error` object in a 200 answer is
/// an [`ImageError::Api`]. The key is scrubbed from every error, however deeply wrapped.
#[derive(Clone)]
pub struct ChatImages {
    http: HttpClient,
    base: Url,
    model: String,
    api_key: Option<Secret>,
    modalities: Vec<String>,
    limits: ReferenceLimits,
}

impl std::fmt::Debug for ChatImages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatImages")
            .field("base", &redact(&self.base))
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("modalities", &self.modalities)
            .finish()
    }
}

impl ChatImages {
    /// A client for `model` at `base` (such as `https://openrouter.ai/api/v1`), without a key.
    pub fn new(http: HttpClient, base: &str, model: impl Into<String>) -> Result<Self, ImageError> {
        Ok(ChatImages {
            http,
            base: parse_base(base).map_err(ImageError::Config)?,
            model: model.into(),
            api_key: None,
            modalities: vec!["image".into(), "text".into()],
            limits: ReferenceLimits::new(4, 5 * 1024 * 1024, 2048 * 2048),
        })
    }

    /// A client from `CHAT_IMAGES_BASE_URL` (default OpenRouter's) and
    /// `CHAT_IMAGES_API_KEY`, else `OPENROUTER_API_KEY` (required for openrouter.ai).
    pub fn from_env(http: HttpClient, model: impl Into<String>) -> Result<Self, ImageError> {
        let base = std::env::var("CHAT_IMAGES_BASE_URL")
            .ok()
            .filter(|b| !b.trim().is_empty())
            .unwrap_or_else(|| OPENROUTER_DEFAULT_BASE.to_string());
        let client = ChatImages::new(http, &base, model)?;
        let key = Secret::from_env("CHAT_IMAGES_API_KEY")
            .or_else(|| Secret::from_env("OPENROUTER_API_KEY"));
        match key {
            Some(k) => Ok(client.with_api_key(k)),
            None if client.base.host_str() == Some("openrouter.ai") => Err(ImageError::Config(
                "no API key: set OPENROUTER_API_KEY (or CHAT_IMAGES_API_KEY)".into(),
            )),
            None => Ok(client),
        }
    }

    /// Send `key` as a bearer token.
    pub fn with_api_key(mut self, key: Secret) -> Self {
        self.api_key = Some(key);
        self
    }

    /// The `modalities` to ask for (`["image"]` for models that only draw).
    pub fn with_modalities(mut self, modalities: Vec<String>) -> Self {
        self.modalities = modalities;
        self
    }

    /// How many input images (and how large) the model takes.
    pub fn with_reference_limits(mut self, limits: ReferenceLimits) -> Self {
        self.limits = limits;
        self
    }

    fn body(&self, request: &GenerationRequest, prompt: &str) -> Value {
        let mut content = vec![json!({"type": "text", "text": prompt})];
        let images = request
            .edit_image
            .iter()
            .chain(request.references.iter().map(|r| &r.image));
        for img in images {
            let data = base64::engine::general_purpose::STANDARD.encode(&img.bytes);
            content.push(json!({
                "type": "image_url",
                "image_url": {"url": format!("data:{};base64,{data}", img.mime)}
            }));
        }
        let mut body = json!({
            "model": self.model,
            "messages": [{"role": "user", "content": content}],
            "modalities": self.modalities,
            "stream": false,
        });
        if let Some(size) = &request.size {
            let mut cfg = serde_json::Map::new();
            match size {
                ImageSize::Aspect { ratio, resolution } => {
                    cfg.insert("aspect_ratio".into(), json!(ratio));
                    if let Some(r) = resolution {
                        cfg.insert("image_size".into(), json!(r));
                    }
                }
                ImageSize::Pixels { width, height } => {
                    let g = gcd(*width, *height).max(1);
                    cfg.insert(
                        "aspect_ratio".into(),
                        json!(format!("{}:{}", width / g, height / g)),
                    );
                }
            }
            body["image_config"] = Value::Object(cfg);
        }
        if let Some(seed) = request.seed {
            body["seed"] = json!(seed);
        }
        for (k, v) in &request.options {
            body[k] = v.clone();
        }
        body
    }

    /// `e` with the key replaced by `***`.
    fn scrubbed(&self, mut e: ImageError) -> ImageError {
        if let Some(k) = &self.api_key {
            e.scrub(k.expose());
        }
        e
    }

    async fn call(
        &self,
        request: &GenerationRequest,
        prompt: &str,
    ) -> Result<CallReply, ImageError> {
        let url = endpoint(&self.base, "chat/completions").map_err(ImageError::Config)?;
        let body = self.body(request, prompt);
        let key = self.api_key.clone();
        let span = tracing::info_span!("chat_images.generate", model = %self.model);
        let resp = super::send_paid(&self.http, |c| {
            let rb = c.post(url.clone()).json(&body);
            match &key {
                Some(k) => rb.bearer_auth(k.expose()),
                None => rb,
            }
        })
        .instrument(span)
        .await
        .map_err(|source| ImageError::Http {
            endpoint: self.describe(),
            source,
        })?;
        read_reply(&self.describe(), &resp.body)
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct WireChoice {
    #[serde(default)]
    message: Option<WireMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    native_finish_reason: Option<String>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    images: Vec<WireImage>,
}

#[derive(Deserialize)]
struct WireImage {
    #[serde(default)]
    image_url: Option<WireUrl>,
}

#[derive(Deserialize)]
struct WireUrl {
    #[serde(default)]
    url: String,
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

/// The text of a message's `content`: a string, or the text parts of an array.
fn content_text(content: Option<Value>) -> Option<String> {
    let text = match content? {
        Value::String(s) => s,
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => return None,
    };
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// Decode a `data:image/...;base64,...` URL.
fn decode_data_url(url: &str) -> Result<Bytes, String> {
    let rest = url
        .strip_prefix("data:")
        .ok_or_else(|| "not a data URL (only data URLs are read)".to_string())?;
    let (meta, data) = rest
        .split_once(',')
        .ok_or_else(|| "a data URL without a comma".to_string())?;
    if !meta.ends_with(";base64") {
        return Err(format!("a data URL that is not base64 ({meta})"));
    }
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map(Bytes::from)
        .map_err(|e| format!("bad base64 in a data URL: {e}"))
}

impl ChatImages {
    /// Read one chat completion as [`Generator::generate`] does: how many images its
    /// `message.images[]` hold and whether text came with them, or the error it is. For
    /// the fuzz harness (`fuzz/`, `make fuzz`); not part of the API.
    #[doc(hidden)]
    pub fn fuzz_read_reply(body: &[u8]) -> Result<(usize, bool), ImageError> {
        read_reply("fuzz", body).map(|r| (r.images.len(), r.text.is_some()))
    }
}

/// Read one chat completion: its `message.images[]`, or the refusal or error it is.
fn read_reply(endpoint: &str, body: &[u8]) -> Result<CallReply, ImageError> {
    let no_image = |detail: String| ImageError::NoImage {
        endpoint: endpoint.to_string(),
        detail,
    };
    let wire: WireResponse = serde_json::from_slice(body)
        .map_err(|e| no_image(format!("not a chat completion: {e}")))?;
    let api = |err: &Value| ImageError::Api {
        endpoint: endpoint.to_string(),
        message: api_error(err).0,
    };
    if let Some(err) = wire.error.as_ref().filter(|e| !e.is_null()) {
        return Err(api(err));
    }
    let u = wire.usage.unwrap_or_default();
    let usage = ImageUsage {
        input_tokens: u.prompt_tokens,
        output_tokens: u.completion_tokens,
        total_tokens: u.total_tokens,
        calls: 1,
        ..ImageUsage::default()
    };
    let choice = wire
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| no_image("no choices".into()))?;
    if let Some(err) = choice.error.as_ref().filter(|e| !e.is_null()) {
        return Err(api(err));
    }
    let message = choice
        .message
        .ok_or_else(|| no_image("choices[0] has no message".into()))?;
    let mut images = Vec::new();
    for (i, img) in message.images.iter().enumerate() {
        let url = img.image_url.as_ref().map(|u| u.url.as_str()).unwrap_or("");
        let bytes = decode_data_url(url).map_err(|e| no_image(format!("images[{i}]: {e}")))?;
        let mime = sniff_mime(&bytes)
            .ok_or_else(|| no_image(format!("images[{i}] is not a known image format")))?;
        images.push(ReplyImage::plain(bytes, mime.to_string()));
    }
    let text = content_text(message.content);
    if !images.is_empty() {
        return Ok(CallReply {
            images,
            text,
            usage,
        });
    }
    let native = choice.native_finish_reason.filter(|r| !r.is_empty());
    let finish = choice.finish_reason.unwrap_or_default();
    let (kind, reason) = if let Some(r) = message.refusal.as_ref().filter(|r| !r.is_empty()) {
        let _ = r;
        (
            RefusalKind::Other,
            native.unwrap_or_else(|| "refusal".into()),
        )
    } else if finish == "content_filter" {
        let reason = native.unwrap_or_else(|| finish.clone());
        (gemini_like_kind(&reason), reason)
    } else if text.is_some() {
        (RefusalKind::TextOnly, native.unwrap_or(finish))
    } else {
        return Err(no_image(format!(
            "choices[0].message has neither images nor text (finish_reason {finish:?})"
        )));
    };
    Err(ImageError::Refused {
        endpoint: endpoint.to_string(),
        kind,
        reason,
        text: message.refusal.or(text),
        usage: Some(Box::new(usage)),
    })
}

/// Gateways pass the upstream reason in `native_finish_reason` (Gemini's `IMAGE_SAFETY`...).
fn gemini_like_kind(reason: &str) -> RefusalKind {
    let r = reason.to_ascii_uppercase();
    if r.contains("PROHIBITED") || r.contains("BLOCKLIST") {
        RefusalKind::Prohibited
    } else if r.contains("RECITATION") {
        RefusalKind::Recitation
    } else if r.contains("NO_IMAGE") {
        RefusalKind::NoImage
    } else {
        RefusalKind::Safety
    }
}

#[async_trait]
impl Generator for ChatImages {
    async fn generate(&self, request: &GenerationRequest) -> Result<Generation, ImageError> {
        let (fitted, prompt, notes) = fitted(request, &self.limits);
        let (fitted, sent) = (&fitted, &prompt);
        gather(request.n(), prompt.clone(), notes, || async {
            self.call(fitted, sent).await.map_err(|e| self.scrubbed(e))
        })
        .await
    }

    fn max_input_images(&self) -> Option<usize> {
        Some(self.limits.max_images)
    }

    fn describe(&self) -> String {
        format!("{} at {}", self.model, redact(&self.base))
    }
}
