//! Gemini image models (`gemini-2.5-flash-image`, `gemini-3-pro-image-preview`) through
//! `generateContent`.

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use iat2i_retrievers::http::redact;
use iat2i_retrievers::{HttpClient, HttpError};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tracing::Instrument;
use url::Url;

use super::calls::{CallReply, fitted, gather};
use super::{
    Generation, GenerationRequest, Generator, ImageError, ImageSize, ImageUsage,
    InputTokensDetails, ReferenceLimits, RefusalKind, sniff_mime,
};
use crate::lmm::openai_support::parse_base;
use crate::secret::Secret;

/// Gemini's API root.
pub const GEMINI_DEFAULT_BASE: &str = "https://generativelanguage.googleapis.com";

/// Aspect ratios Gemini image models accept.
pub const GEMINI_ASPECT_RATIOS: [&str; 10] = [
    "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9",
];

/// Top-level `generateContent` fields an option may set; other options go into
/// `generationConfig`.
const TOP_LEVEL: [&str; 5] = [
    "safetySettings",
    "systemInstruction",
    "tools",
    "toolConfig",
    "cachedContent",
];

/// A Gemini image model: `POST {base}/v1beta/models/{model}:generateContent` with the
/// key in the `x-goog-api-key` header.
///
/// One user turn carries the image to edit, then each reference as an inline image part
/// with its MIME type (images before the text, as Google's guide advises; at most as
/// many as the model takes, see [`GeminiImages::with_reference_limits`]), then the text
/// naming each image's role. `generationConfig` asks for `["TEXT", "IMAGE"]` and sets
/// `imageConfig.aspectRatio`/`imageSize` from the request's size, and `seed`. `n > 1`
/// makes `n` calls (the image models return one candidate). Options merge into
/// `generationConfig` (or the top level for `safetySettings`, `systemInstruction`,
/// `tools`, `toolConfig`, `cachedContent`).
///
/// The image is read from `candidates[].content.parts[].inlineData` (or
/// `inline_data`). A blocked prompt (`promptFeedback.blockReason`), a candidate
/// finished for `IMAGE_SAFETY`, `IMAGE_PROHIBITED_CONTENT`, `IMAGE_RECITATION`,
/// `NO_IMAGE`, `SAFETY` and the like, or text without an image is an
/// [`ImageError::Refused`] with the reason and the model's text. `usageMetadata`
/// becomes [`ImageUsage`].
#[derive(Clone)]
pub struct GeminiImages {
    http: HttpClient,
    base: Url,
    model: String,
    api_key: Option<Secret>,
    limits: ReferenceLimits,
    image_size: Option<String>,
}

impl std::fmt::Debug for GeminiImages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeminiImages")
            .field("base", &redact(&self.base))
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("limits", &self.limits)
            .finish()
    }
}

impl GeminiImages {
    /// A client for `model` at `base` (such as `https://generativelanguage.googleapis.com`),
    /// without a key.
    pub fn new(http: HttpClient, base: &str, model: impl Into<String>) -> Result<Self, ImageError> {
        let model = model.into();
        // gemini-2.5-flash-image works best with up to 3 input images; Gemini 3 Pro
        // Image takes up to 14. Inline data must keep the request under 20 MB.
        let max_images = if model.contains("gemini-3") { 14 } else { 3 };
        let per_image = (18 * 1024 * 1024) / max_images;
        Ok(GeminiImages {
            http,
            base: parse_base(base).map_err(ImageError::Config)?,
            model,
            api_key: None,
            limits: ReferenceLimits::new(max_images, per_image, 3072 * 3072),
            image_size: None,
        })
    }

    /// A client from `GEMINI_BASE_URL` (default Google's) and `GEMINI_API_KEY`, else
    /// `GOOGLE_API_KEY` (one is required for Google's endpoint).
    pub fn from_env(http: HttpClient, model: impl Into<String>) -> Result<Self, ImageError> {
        let base = std::env::var("GEMINI_BASE_URL")
            .ok()
            .filter(|b| !b.trim().is_empty())
            .unwrap_or_else(|| GEMINI_DEFAULT_BASE.to_string());
        let client = GeminiImages::new(http, &base, model)?;
        match Secret::from_env("GEMINI_API_KEY").or_else(|| Secret::from_env("GOOGLE_API_KEY")) {
            Some(k) => Ok(client.with_api_key(k)),
            None if client.base.host_str() == Some("generativelanguage.googleapis.com") => {
                Err(ImageError::Config(
                    "no Gemini API key: set GEMINI_API_KEY (or GOOGLE_API_KEY), from \
                     https://aistudio.google.com/apikey"
                        .into(),
                ))
            }
            None => Ok(client),
        }
    }

    /// Send `key` in the `x-goog-api-key` header.
    pub fn with_api_key(mut self, key: Secret) -> Self {
        self.api_key = Some(key);
        self
    }

    /// How many input images (and how large) the model takes.
    pub fn with_reference_limits(mut self, limits: ReferenceLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The `imageSize` (`1K`, `2K`, `4K`) when the request does not say.
    pub fn with_image_size(mut self, size: Option<String>) -> Self {
        self.image_size = size;
        self
    }

    fn url(&self) -> Result<Url, ImageError> {
        let base = self.base.as_str().trim_end_matches('/');
        let model = self.model.trim_start_matches("models/");
        Url::parse(&format!("{base}/v1beta/models/{model}:generateContent"))
            .map_err(|e| ImageError::Config(format!("bad Gemini URL for {model:?}: {e}")))
    }

    fn body(&self, request: &GenerationRequest, prompt: &str) -> Value {
        let mut parts: Vec<Value> = Vec::new();
        let images = request
            .edit_image
            .iter()
            .chain(request.references.iter().map(|r| &r.image));
        for img in images {
            parts.push(json!({"inlineData": {
                "mimeType": img.mime,
                "data": base64::engine::general_purpose::STANDARD.encode(&img.bytes),
            }}));
        }
        parts.push(json!({ "text": prompt }));
        let mut config = Map::new();
        config.insert("responseModalities".into(), json!(["TEXT", "IMAGE"]));
        let image_config = self.image_config(request);
        if !image_config.is_empty() {
            config.insert("imageConfig".into(), Value::Object(image_config));
        }
        if let Some(seed) = request.seed {
            // Gemini's seed is an int32.
            config.insert("seed".into(), json!(seed as i64 as i32));
        }
        let mut body = Map::new();
        body.insert(
            "contents".into(),
            json!([{ "role": "user", "parts": parts }]),
        );
        for (k, v) in &request.options {
            match (k.as_str(), v) {
                ("generationConfig", Value::Object(fields)) => {
                    config.extend(fields.clone());
                }
                (top, _) if TOP_LEVEL.contains(&top) => {
                    body.insert(k.clone(), v.clone());
                }
                _ => {
                    config.insert(k.clone(), v.clone());
                }
            }
        }
        body.insert("generationConfig".into(), Value::Object(config));
        Value::Object(body)
    }

    fn image_config(&self, request: &GenerationRequest) -> Map<String, Value> {
        let mut c = Map::new();
        let (ratio, resolution) = match &request.size {
            None => (None, None),
            Some(ImageSize::Aspect { ratio, resolution }) => (
                Some(nearest_ratio(request.size.as_ref(), ratio)),
                resolution.clone(),
            ),
            Some(s @ ImageSize::Pixels { width, height }) => {
                let long = (*width).max(*height);
                let tier = if long > 2048 {
                    "4K"
                } else if long > 1024 {
                    "2K"
                } else {
                    "1K"
                };
                (Some(nearest_ratio(Some(s), "")), Some(tier.to_string()))
            }
        };
        if let Some(r) = ratio {
            c.insert("aspectRatio".into(), json!(r));
        }
        if let Some(size) = resolution.or_else(|| self.image_size.clone()) {
            c.insert("imageSize".into(), json!(size));
        }
        c
    }

    fn http_error(&self, mut source: HttpError) -> ImageError {
        if let (HttpError::Status { body, .. }, Some(k)) = (&mut source, &self.api_key) {
            *body = body.replace(k.expose(), "***");
        }
        ImageError::Http {
            endpoint: self.describe(),
            source,
        }
    }

    async fn call(
        &self,
        request: &GenerationRequest,
        prompt: &str,
    ) -> Result<CallReply, ImageError> {
        let url = self.url()?;
        let body = self.body(request, prompt);
        let key = self.api_key.clone();
        let span = tracing::info_span!("gemini.generate", model = %self.model);
        let resp = super::send_paid(&self.http, |c| {
            let rb = c.post(url.clone()).json(&body);
            match &key {
                Some(k) => rb.header("x-goog-api-key", k.expose()),
                None => rb,
            }
        })
        .instrument(span)
        .await
        .map_err(|e| self.http_error(e))?;
        read_reply(&self.describe(), &resp.body)
    }
}

/// The supported ratio nearest to `ratio` (or to the size's own ratio).
fn nearest_ratio(size: Option<&ImageSize>, ratio: &str) -> String {
    if GEMINI_ASPECT_RATIOS.contains(&ratio) {
        return ratio.to_string();
    }
    let want = size.and_then(ImageSize::ratio).unwrap_or(1.0).ln();
    GEMINI_ASPECT_RATIOS
        .iter()
        .min_by(|a, b| {
            let da = (ratio_value(a).ln() - want).abs();
            let db = (ratio_value(b).ln() - want).abs();
            da.total_cmp(&db)
        })
        .unwrap_or(&"1:1")
        .to_string()
}

fn ratio_value(r: &str) -> f64 {
    let (w, h) = r.split_once(':').unwrap_or(("1", "1"));
    w.parse::<f64>().unwrap_or(1.0) / h.parse::<f64>().unwrap_or(1.0)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireResponse {
    #[serde(default)]
    candidates: Vec<WireCandidate>,
    #[serde(default)]
    prompt_feedback: Option<WireFeedback>,
    #[serde(default)]
    usage_metadata: Option<WireUsage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireFeedback {
    #[serde(default)]
    block_reason: Option<String>,
    #[serde(default)]
    block_reason_message: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireCandidate {
    #[serde(default)]
    content: Option<WireContent>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    finish_message: Option<String>,
}

#[derive(Deserialize)]
struct WireContent {
    #[serde(default)]
    parts: Vec<WirePart>,
}

#[derive(Deserialize)]
struct WirePart {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thought: Option<bool>,
    #[serde(default, rename = "inlineData", alias = "inline_data")]
    inline_data: Option<WireBlob>,
}

#[derive(Deserialize)]
struct WireBlob {
    #[serde(default, rename = "mimeType", alias = "mime_type")]
    mime_type: Option<String>,
    #[serde(default)]
    data: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireUsage {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
    #[serde(default)]
    thoughts_token_count: u64,
    #[serde(default)]
    total_token_count: u64,
    #[serde(default)]
    prompt_tokens_details: Vec<WireModality>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireModality {
    #[serde(default)]
    modality: String,
    #[serde(default)]
    token_count: u64,
}

impl WireUsage {
    fn usage(&self) -> ImageUsage {
        let mut details = InputTokensDetails::default();
        for d in &self.prompt_tokens_details {
            match d.modality.as_str() {
                "TEXT" => details.text_tokens += d.token_count,
                "IMAGE" => details.image_tokens += d.token_count,
                _ => {}
            }
        }
        ImageUsage {
            input_tokens: self.prompt_token_count,
            output_tokens: self.candidates_token_count + self.thoughts_token_count,
            total_tokens: self.total_token_count,
            input_tokens_details: (!self.prompt_tokens_details.is_empty()).then_some(details),
            images: 0,
            calls: 1,
        }
    }
}

/// The kind of refusal a `finishReason` or `blockReason` stands for.
fn refusal_kind(reason: &str) -> RefusalKind {
    match reason {
        "SAFETY" | "IMAGE_SAFETY" => RefusalKind::Safety,
        "PROHIBITED_CONTENT" | "IMAGE_PROHIBITED_CONTENT" | "BLOCKLIST" | "SPII" => {
            RefusalKind::Prohibited
        }
        "RECITATION" | "IMAGE_RECITATION" => RefusalKind::Recitation,
        "NO_IMAGE" => RefusalKind::NoImage,
        _ => RefusalKind::Other,
    }
}

fn read_reply(endpoint: &str, body: &[u8]) -> Result<CallReply, ImageError> {
    let wire: WireResponse = serde_json::from_slice(body).map_err(|e| ImageError::NoImage {
        endpoint: endpoint.to_string(),
        detail: format!("not a generateContent response: {e}"),
    })?;
    let refused = |kind, reason: &str, text: Option<String>| ImageError::Refused {
        endpoint: endpoint.to_string(),
        kind,
        reason: reason.to_string(),
        text,
    };
    if let Some(fb) = &wire.prompt_feedback
        && let Some(reason) = fb.block_reason.as_deref()
    {
        return Err(refused(
            RefusalKind::PromptBlocked,
            reason,
            fb.block_reason_message.clone(),
        ));
    }
    let usage = wire.usage_metadata.unwrap_or_default().usage();
    let Some(cand) = wire.candidates.into_iter().next() else {
        return Err(ImageError::NoImage {
            endpoint: endpoint.to_string(),
            detail: "no candidates and no block reason".into(),
        });
    };
    let mut images = Vec::new();
    let mut texts = Vec::new();
    for (i, part) in cand
        .content
        .map(|c| c.parts)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        if let Some(blob) = part.inline_data {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(blob.data.trim())
                .map_err(|e| ImageError::NoImage {
                    endpoint: endpoint.to_string(),
                    detail: format!("part {i}: inline data is not base64: {e}"),
                })?;
            let Some(mime) = sniff_mime(&bytes) else {
                tracing::warn!(part = i, mime = ?blob.mime_type, "skipping a non-image inline part");
                continue;
            };
            images.push((Bytes::from(bytes), mime.to_string()));
        } else if let Some(t) = part.text.filter(|_| part.thought != Some(true)) {
            texts.push(t);
        }
    }
    let text = (!texts.is_empty()).then(|| texts.join("\n").trim().to_string());
    if !images.is_empty() {
        return Ok(CallReply {
            images,
            text,
            usage,
        });
    }
    let finish = cand.finish_reason.unwrap_or_default();
    let said = text.or(cand.finish_message);
    match finish.as_str() {
        "" | "STOP" | "FINISH_REASON_UNSPECIFIED" if said.is_some() => {
            Err(refused(RefusalKind::TextOnly, "STOP", said))
        }
        "" | "STOP" | "FINISH_REASON_UNSPECIFIED" => Err(ImageError::NoImage {
            endpoint: endpoint.to_string(),
            detail: "the candidate has neither an image nor text".into(),
        }),
        other => Err(refused(refusal_kind(other), other, said)),
    }
}

#[async_trait]
impl Generator for GeminiImages {
    async fn generate(&self, request: &GenerationRequest) -> Result<Generation, ImageError> {
        let (fitted, prompt, notes) = fitted(request, &self.limits);
        let (fitted, sent) = (&fitted, &prompt);
        gather(request.n(), prompt.clone(), notes, || {
            self.call(fitted, sent)
        })
        .await
    }

    fn describe(&self) -> String {
        format!("{} at {}", self.model, redact(&self.base))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_map_to_supported_ratios_and_tiers() {
        let g = GeminiImages::new(
            HttpClient::builder().build().unwrap(),
            GEMINI_DEFAULT_BASE,
            "gemini-2.5-flash-image",
        )
        .unwrap();
        let mut r = GenerationRequest::new("p");
        r.size = Some(ImageSize::Pixels {
            width: 1920,
            height: 1080,
        });
        let c = g.image_config(&r);
        assert_eq!(c["aspectRatio"], "16:9");
        assert_eq!(c["imageSize"], "2K");
        r.size = Some(ImageSize::parse("7:5").unwrap());
        assert_eq!(g.image_config(&r)["aspectRatio"], "4:3");
        assert_eq!(
            g.url().unwrap().as_str(),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash-image:generateContent"
        );
    }
}
