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
    GeneratedImage, GenerationRequest, Generator, ImageError, ImageUsage, InputImage, sniff_mime,
};
use crate::lmm::openai_support::{OPENAI_DEFAULT_BASE, api_error, endpoint, parse_base};
use crate::secret::Secret;

/// The most images one edits call takes.
pub const MAX_EDIT_IMAGES: usize = 16;

/// The OpenAI Images API (`gpt-image-1` by default) or a server speaking it.
///
/// Without references or an image to edit: `POST {base}/images/generations` (JSON).
/// Otherwise: `POST {base}/images/edits` (multipart, repeated `image[]` parts, the
/// user's image first, at most 16). For the gpt-image family `response_format` is never
/// sent (the API rejects it) and `data[].b64_json` is read; for dall-e-style servers that
/// answer with `data[].url` the image is fetched as an untrusted URL.
#[derive(Clone)]
pub struct OpenAiImages {
    http: HttpClient,
    base: Url,
    model: String,
    api_key: Option<Secret>,
    size: Option<String>,
    quality: Option<String>,
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

    fn gpt_image(&self) -> bool {
        is_gpt_image(&self.model)
    }

    fn generations_body(&self, prompt: &str) -> Value {
        let mut body = json!({ "model": self.model, "prompt": prompt, "n": 1 });
        if let Some(s) = &self.size {
            body["size"] = json!(s);
        }
        if let Some(q) = &self.quality {
            body["quality"] = json!(q);
        }
        if !self.gpt_image() {
            body["response_format"] = json!("b64_json");
        }
        body
    }

    fn edits_form(&self, prompt: &str, images: &[InputImage]) -> Form {
        let field = if self.gpt_image() || images.len() > 1 {
            "image[]"
        } else {
            "image"
        };
        let mut form = Form::new()
            .text("model", self.model.clone())
            .text("prompt", prompt.to_string())
            .text("n", "1");
        for (i, img) in images.iter().enumerate() {
            form = form.part(field, image_part(i, img));
        }
        if let Some(s) = &self.size {
            form = form.text("size", s.clone());
        }
        if let Some(q) = &self.quality {
            form = form.text("quality", q.clone());
        }
        if !self.gpt_image() {
            form = form.text("response_format", "b64_json");
        }
        form
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
    async fn read(&self, body: &[u8]) -> Result<GeneratedImage, ImageError> {
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
        let first = wire
            .data
            .and_then(|d| d.into_iter().next())
            .ok_or_else(|| no_image("empty data".into()))?;
        let bytes = match (&first.b64_json, &first.url) {
            (Some(b64), _) => base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map(Bytes::from)
                .map_err(|e| no_image(format!("b64_json is not base64: {e}")))?,
            (None, Some(url)) => self.fetch(url).await?,
            (None, None) => return Err(no_image("neither b64_json nor url in data[0]".into())),
        };
        let mime = sniff_mime(&bytes)
            .ok_or_else(|| no_image("the bytes are not a known image format".into()))?;
        let mut usage = wire.usage.unwrap_or_default();
        usage.images = 1;
        Ok(GeneratedImage {
            bytes,
            mime: mime.to_string(),
            usage,
            revised_prompt: first.revised_prompt,
        })
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
    async fn generate(&self, request: &GenerationRequest) -> Result<GeneratedImage, ImageError> {
        let mut images: Vec<InputImage> = request.edit_image.iter().cloned().collect();
        images.extend(request.references.iter().map(|r| r.image.clone()));
        if images.len() > MAX_EDIT_IMAGES {
            tracing::warn!(
                count = images.len(),
                "more than 16 images; sending the first 16"
            );
            images.truncate(MAX_EDIT_IMAGES);
        }
        let key = self.api_key.clone();
        let auth = |rb: reqwest::RequestBuilder| match &key {
            Some(k) => rb.bearer_auth(k.expose()),
            None => rb,
        };
        let span =
            tracing::info_span!("images.generate", model = %self.model, images = images.len());
        let result = if images.is_empty() {
            let url = endpoint(&self.base, "images/generations").map_err(ImageError::Config)?;
            let body = self.generations_body(&request.prompt);
            self.http
                .execute(Trust::Trusted, |c| auth(c.post(url.clone()).json(&body)))
                .instrument(span)
                .await
        } else {
            let url = endpoint(&self.base, "images/edits").map_err(ImageError::Config)?;
            self.http
                .execute(Trust::Trusted, |c| {
                    auth(
                        c.post(url.clone())
                            .multipart(self.edits_form(&request.prompt, &images)),
                    )
                })
                .instrument(span)
                .await
        };
        let resp = result.map_err(|e| self.http_error(e))?;
        self.read(&resp.body).await
    }

    fn describe(&self) -> String {
        format!("{} at {}", self.model, redact(&self.base))
    }
}
