use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use iat2i_retrievers::http::redact;
use iat2i_retrievers::{HttpClient, HttpError, Trust};
use reqwest::multipart::{Form, Part};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::Instrument;
use url::Url;

use super::{
    GeneratedImage, Generation, GenerationRequest, Generator, ImageError, ImageSize, ImageUsage,
    InputImage, ReferenceLimits, compose_prompt, fit_request, sniff_mime,
};
use crate::lmm::openai_support::{OPENAI_DEFAULT_BASE, api_error, endpoint, parse_base};
use crate::secret::Secret;

/// The most images one edits call takes.
pub const MAX_EDIT_IMAGES: usize = 16;
/// The largest input image the edits endpoint takes (50 MB for the gpt-image family).
pub const MAX_EDIT_IMAGE_BYTES: usize = 50 * 1024 * 1024;

/// The OpenAI Images API (`gpt-image-1` by default) or a server speaking it.
///
/// Without references or an image to edit: `POST {base}/images/generations` (JSON).
/// Otherwise: `POST {base}/images/edits` (multipart, repeated `image[]` parts, the
/// user's image first, at most 16). For the gpt-image family `response_format` is never
/// sent (the API rejects it) and `data[].b64_json` is read; for dall-e-style servers that
/// answer with `data[].url` the image is fetched as an untrusted URL.
///
/// References are expressed in words: the prompt gets one line per reference saying
/// what it shows and what to take from it (see [`compose_prompt`]); a negative prompt
/// becomes an "Avoid:" line. The request's size maps to the nearest size the model
/// offers; `n` is sent as is; `seed` is not supported by the API and is ignored with a
/// note; `options` are merged into the body (JSON) or added as form fields.
#[derive(Clone)]
pub struct OpenAiImages {
    http: HttpClient,
    base: Url,
    model: String,
    api_key: Option<Secret>,
    size: Option<String>,
    quality: Option<String>,
    limits: ReferenceLimits,
}

impl std::fmt::Debug for OpenAiImages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiImages")
            .field("base", &redact(&self.base))
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("size", &self.size)
            .field("quality", &self.quality)
            .finish()
    }
}

impl OpenAiImages {
    /// A client for `model` at `base` (such as `https://api.openai.com/v1`), without a key.
    /// Size and quality default to `auto` for the gpt-image family, `1024x1024` and unset
    /// otherwise.
    pub fn new(http: HttpClient, base: &str, model: impl Into<String>) -> Result<Self, ImageError> {
        let model = model.into();
        let gpt_image = is_gpt_image(&model);
        Ok(OpenAiImages {
            http,
            base: parse_base(base).map_err(ImageError::Config)?,
            size: Some(if gpt_image { "auto" } else { "1024x1024" }.to_string()),
            quality: gpt_image.then(|| "auto".to_string()),
            model,
            api_key: None,
            limits: ReferenceLimits::new(MAX_EDIT_IMAGES, MAX_EDIT_IMAGE_BYTES, 4096 * 4096),
        })
    }

    /// A client configured from `OPENAI_BASE_URL` (default `https://api.openai.com/v1`)
    /// and `OPENAI_API_KEY` (required for api.openai.com).
    pub fn from_env(http: HttpClient, model: impl Into<String>) -> Result<Self, ImageError> {
        let base = std::env::var("OPENAI_BASE_URL")
            .ok()
            .filter(|b| !b.trim().is_empty())
            .unwrap_or_else(|| OPENAI_DEFAULT_BASE.to_string());
        let client = OpenAiImages::new(http, &base, model)?;
        match Secret::from_env("OPENAI_API_KEY") {
            Some(k) => Ok(client.with_api_key(k)),
            None if client.base.host_str() == Some("api.openai.com") => Err(ImageError::Config(
                "no API key: set OPENAI_API_KEY, or point the image base URL at a keyless \
                 server that speaks the OpenAI Images API"
                    .into(),
            )),
            None => Ok(client),
        }
    }

    /// Send `key` as a bearer token.
    pub fn with_api_key(mut self, key: Secret) -> Self {
        self.api_key = Some(key);
        self
    }

    /// The `size` to ask for (`1024x1024`, `1536x1024`, `1024x1536`, `auto`); `None` sends none.
    pub fn with_size(mut self, size: Option<String>) -> Self {
        self.size = size;
        self
    }

    /// The `quality` to ask for (`low`, `medium`, `high`, `auto`); `None` sends none.
    pub fn with_quality(mut self, quality: Option<String>) -> Self {
        self.quality = quality;
        self
    }

    /// The input images the edits endpoint takes (count, bytes, pixels); larger ones are
    /// downscaled, extra ones dropped with a note.
    pub fn with_reference_limits(mut self, limits: ReferenceLimits) -> Self {
        self.limits = limits;
        self
    }

    fn gpt_image(&self) -> bool {
        is_gpt_image(&self.model)
    }

    /// The `size` field: the request's, mapped to what the model offers, else the
    /// configured default.
    fn size_for(&self, request: &GenerationRequest) -> Option<String> {
        match &request.size {
            None => self.size.clone(),
            Some(ImageSize::Pixels { width, height }) if !self.gpt_image() => {
                Some(format!("{width}x{height}"))
            }
            Some(size) => {
                let r = size.ratio().unwrap_or(1.0);
                Some(
                    if r > 1.2 {
                        "1536x1024"
                    } else if r < 1.0 / 1.2 {
                        "1024x1536"
                    } else {
                        "1024x1024"
                    }
                    .to_string(),
                )
            }
        }
    }

    fn generations_body(&self, request: &GenerationRequest, prompt: &str) -> Value {
        let mut body = json!({ "model": self.model, "prompt": prompt, "n": request.n() });
        if let Some(s) = self.size_for(request) {
            body["size"] = json!(s);
        }
        if let Some(q) = &self.quality {
            body["quality"] = json!(q);
        }
        if !self.gpt_image() {
            body["response_format"] = json!("b64_json");
        }
        for (k, v) in &request.options {
            body[k] = v.clone();
        }
        body
    }

    fn edits_form(&self, request: &GenerationRequest, prompt: &str, images: &[InputImage]) -> Form {
        let field = if self.gpt_image() || images.len() > 1 {
            "image[]"
        } else {
            "image"
        };
        let mut form = Form::new()
            .text("model", self.model.clone())
            .text("prompt", prompt.to_string())
            .text("n", request.n().to_string());
        for (i, img) in images.iter().enumerate() {
            form = form.part(field, image_part(i, img));
        }
        if let Some(s) = self.size_for(request) {
            form = form.text("size", s);
        }
        if let Some(q) = &self.quality {
            form = form.text("quality", q.clone());
        }
        if !self.gpt_image() {
            form = form.text("response_format", "b64_json");
        }
        for (k, v) in &request.options {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            form = form.text(k.clone(), text);
        }
        form
    }

    fn http_error(&self, mut source: HttpError) -> ImageError {
        // However deeply wrapped (a paid call not retried wraps the status).
        if let Some(k) = &self.api_key {
            source.scrub(k.expose());
        }
        ImageError::Http {
            endpoint: self.describe(),
            source,
        }
    }
}

fn is_gpt_image(model: &str) -> bool {
    let m = model.to_ascii_lowercase();
    m.starts_with("gpt-image") || m.contains("/gpt-image")
}

fn image_part(i: usize, img: &InputImage) -> Part {
    let ext = match img.mime.as_str() {
        "image/jpeg" => "jpg",
        "image/webp" => "webp",
        "image/gif" => "gif",
        _ => "png",
    };
    let name = format!("image-{}.{ext}", i + 1);
    let make = || {
        Part::stream_with_length(
            reqwest::Body::from(img.bytes.clone()),
            img.bytes.len() as u64,
        )
        .file_name(name.clone())
    };
    make().mime_str(&img.mime).unwrap_or_else(|_| make())
}

#[derive(Deserialize)]
struct WireImages {
    #[serde(default)]
    data: Option<Vec<WireImage>>,
    #[serde(default)]
    usage: Option<ImageUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct WireImage {
    #[serde(default)]
    b64_json: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    revised_prompt: Option<String>,
}

impl OpenAiImages {
    async fn read(&self, body: &[u8]) -> Result<(Vec<GeneratedImage>, ImageUsage), ImageError> {
        let endpoint = self.describe();
        let no_image = |detail: String| ImageError::NoImage {
            endpoint: endpoint.clone(),
            detail,
        };
        let wire: WireImages = serde_json::from_slice(body)
            .map_err(|e| no_image(format!("not an images response: {e}")))?;
        if let Some(err) = wire.error.as_ref().filter(|e| !e.is_null()) {
            let (message, _) = api_error(err);
            return Err(ImageError::Api { endpoint, message });
        }
        let data = wire.data.unwrap_or_default();
        if data.is_empty() {
            return Err(no_image("empty data".into()));
        }
        let mut usage = wire.usage.unwrap_or_default();
        usage.images = data.len() as u32;
        usage.calls = 1;
        let mut images = Vec::with_capacity(data.len());
        for (i, item) in data.into_iter().enumerate() {
            let bytes = match (&item.b64_json, &item.url) {
                (Some(b64), _) => base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map(Bytes::from)
                    .map_err(|e| no_image(format!("data[{i}].b64_json is not base64: {e}")))?,
                (None, Some(url)) => self.fetch(url).await?,
                (None, None) => {
                    return Err(no_image(format!("neither b64_json nor url in data[{i}]")));
                }
            };
            let mime = sniff_mime(&bytes)
                .ok_or_else(|| no_image(format!("data[{i}] is not a known image format")))?;
            images.push(GeneratedImage {
                bytes,
                mime: mime.to_string(),
                usage,
                revised_prompt: item.revised_prompt,
                thought_signatures: Vec::new(),
            });
        }
        Ok((images, usage))
    }

    async fn fetch(&self, url: &str) -> Result<Bytes, ImageError> {
        let url = Url::parse(url).map_err(|e| ImageError::NoImage {
            endpoint: self.describe(),
            detail: format!("data[0].url is not a URL: {e}"),
        })?;
        let resp = self
            .http
            .get(&url, Trust::Untrusted)
            .await
            .map_err(|e| self.http_error(e))?;
        Ok(resp.body)
    }
}

#[async_trait]
impl Generator for OpenAiImages {
    async fn generate(&self, request: &GenerationRequest) -> Result<Generation, ImageError> {
        let (edit, references, mut notes) = fit_request(request, &self.limits);
        let fitted = GenerationRequest {
            references,
            edit_image: edit,
            ..request.clone()
        };
        if request.seed.is_some() {
            notes.push("the OpenAI Images API takes no seed; it was not sent".into());
        }
        let first = if fitted.edit_image.is_some() { 2 } else { 1 };
        let prompt = compose_prompt(&fitted, first);
        let mut images: Vec<InputImage> = fitted.edit_image.iter().cloned().collect();
        images.extend(fitted.references.iter().map(|r| r.image.clone()));
        let key = self.api_key.clone();
        let auth = |rb: reqwest::RequestBuilder| match &key {
            Some(k) => rb.bearer_auth(k.expose()),
            None => rb,
        };
        let span =
            tracing::info_span!("images.generate", model = %self.model, images = images.len());
        let result = if images.is_empty() {
            let url = endpoint(&self.base, "images/generations").map_err(ImageError::Config)?;
            let body = self.generations_body(&fitted, &prompt);
            super::send_paid(&self.http, |c| auth(c.post(url.clone()).json(&body)))
                .instrument(span)
                .await
        } else {
            let url = endpoint(&self.base, "images/edits").map_err(ImageError::Config)?;
            super::send_paid(&self.http, |c| {
                auth(
                    c.post(url.clone())
                        .multipart(self.edits_form(&fitted, &prompt, &images)),
                )
            })
            .instrument(span)
            .await
        };
        let resp = result.map_err(|e| self.http_error(e))?;
        let (images, usage) = self.read(&resp.body).await?;
        Ok(Generation {
            images,
            usage,
            prompt_sent: prompt,
            text: None,
            notes,
        })
    }

    fn identity(&self) -> String {
        format!(
            "{} size={:?} quality={:?}",
            self.describe(),
            self.size,
            self.quality
        )
    }

    fn max_input_images(&self) -> Option<usize> {
        Some(self.limits.max_images)
    }

    fn describe(&self) -> String {
        format!("{} at {}", self.model, redact(&self.base))
    }
}
