//! Gemini image models (`gemini-2.5-flash-image`, `gemini-3-pro-image-preview`) through
//! `generateContent`.

mod reply;

use async_trait::async_trait;
use base64::Engine as _;
use iat2i_retrievers::HttpClient;
use iat2i_retrievers::http::redact;
use serde_json::{Map, Value, json};
use tracing::Instrument;
use url::Url;

use super::calls::{CallReply, fitted, gather};
use super::{Generation, GenerationRequest, Generator, ImageError, ImageSize, ReferenceLimits};
use crate::lmm::openai_support::parse_base;
use crate::secret::Secret;
use reply::read_reply;

/// The image parts go before the text part in the user turn.
///
/// Google's image-understanding guide advises it under "Tips and best practices":
/// "When using a single image with text, place the text prompt after the image part in
/// the contents array" (<https://ai.google.dev/gemini-api/docs/image-understanding>).
/// The text names each image by its number, so the order is also the numbering.
const IMAGES_BEFORE_TEXT: bool = true;

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
/// with its MIME type (images before the text: see `IMAGES_BEFORE_TEXT`; at most as
/// many as the model takes, see [`GeminiImages::with_reference_limits`]), then the text
/// naming each image's role. `generationConfig` asks for `["TEXT", "IMAGE"]` and sets
/// `imageConfig.aspectRatio`/`imageSize` from the request's size, and `seed`. `n > 1`
/// makes `n` calls (the image models return one candidate). Options merge into
/// `generationConfig` (or the top level for `safetySettings`, `systemInstruction`,
/// `tools`, `toolConfig`, `cachedContent`).
///
/// The image is read from `candidates[].content.parts[].inlineData` (or
/// `inline_data`), skipping thought parts (`"thought": true`: the interim images and
/// thought text Gemini 3 image models send before the final image); the caption is the
/// first text part that is not a thought, and the `thoughtSignature`s of the caption and
/// the image are kept on the image ([`super::GeneratedImage::thought_signatures`]) for a
/// follow-up turn. A blocked prompt (`promptFeedback.blockReason`, naming the blocking
/// `safetyRatings` categories), a candidate finished for `IMAGE_SAFETY`,
/// `IMAGE_PROHIBITED_CONTENT`, `IMAGE_RECITATION`, `NO_IMAGE`, `SAFETY` and the like, or
/// text without an image is an [`ImageError::Refused`] with the reason, the model's text
/// and what the call cost. `usageMetadata` becomes [`super::ImageUsage`], thinking tokens
/// (`thoughtsTokenCount`) apart from the output.
///
/// The key (and any query value of the base URL, such as Gemini's `?key=`) is scrubbed
/// from every error, however deeply wrapped.
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

    /// `{base}/v1beta/models/{model}:generateContent`, keeping the base's query (a
    /// gateway's `?key=`).
    fn url(&self) -> Result<Url, ImageError> {
        let mut base = self.base.clone();
        base.set_query(None);
        let base = base.as_str().trim_end_matches('/');
        let model = self.model.trim_start_matches("models/");
        let mut url = Url::parse(&format!("{base}/v1beta/models/{model}:generateContent"))
            .map_err(|e| ImageError::Config(format!("bad Gemini URL for {model:?}: {e}")))?;
        url.set_query(self.base.query());
        Ok(url)
    }

    /// `e` with the key and the base URL's query values replaced by `***`.
    fn scrubbed(&self, mut e: ImageError) -> ImageError {
        if let Some(k) = &self.api_key {
            e.scrub(k.expose());
        }
        for (_, value) in self.base.query_pairs() {
            if value.chars().count() >= 6 {
                e.scrub(&value);
            }
        }
        e
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
        let text = json!({ "text": prompt });
        if IMAGES_BEFORE_TEXT {
            parts.push(text);
        } else {
            parts.insert(0, text);
        }
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
        .map_err(|source| ImageError::Http {
            endpoint: self.describe(),
            source,
        })?;
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

#[async_trait]
impl Generator for GeminiImages {
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

    #[test]
    fn images_go_before_the_text_and_a_key_in_the_base_url_is_kept() {
        let g = GeminiImages::new(
            HttpClient::builder().build().unwrap(),
            "https://gateway.example/gemini?key=AIzaSyA-test-key-0001",
            "gemini-2.5-flash-image",
        )
        .unwrap();
        let img = super::super::InputImage::sniff(bytes::Bytes::from_static(b"\x89PNG\r\n\x1a\n"));
        let r = GenerationRequest::new("p").with_edit_image(img);
        let body = g.body(&r, "p");
        let parts = body["contents"][0]["parts"].as_array().unwrap();
        let text_at = parts.iter().position(|p| p.get("text").is_some()).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(
            text_at == 1,
            IMAGES_BEFORE_TEXT,
            "the order follows the constant"
        );
        assert_eq!(
            g.url().unwrap().as_str(),
            "https://gateway.example/gemini/v1beta/models/gemini-2.5-flash-image:generateContent?key=AIzaSyA-test-key-0001"
        );
        assert!(!format!("{g:?}").contains("AIzaSyA"));
        assert!(!g.describe().contains("AIzaSyA"));
    }
}
