//! The backend-neutral generation request and what a call gives back.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{GeneratedImage, ImageUsage, InputImage};

/// What a reference image is for.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceRole {
    /// The look of an entity (shape, colours, markings, clothing): the pipeline's default.
    #[default]
    Subject,
    /// A visual style to follow (palette, medium, rendering), not its content.
    Style,
    /// A composition or layout to follow, not its content.
    Layout,
}

/// A reference image, its role, and what it shows.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceImage {
    /// The image.
    pub image: InputImage,
    /// What it shows (the entity), used to tell the model what to take from it.
    pub label: String,
    /// What it is for.
    pub role: ReferenceRole,
}

impl ReferenceImage {
    /// A subject reference showing `label`.
    pub fn subject(image: InputImage, label: impl Into<String>) -> Self {
        ReferenceImage {
            image,
            label: label.into(),
            role: ReferenceRole::Subject,
        }
    }

    /// This reference with another role.
    pub fn with_role(mut self, role: ReferenceRole) -> Self {
        self.role = role;
        self
    }
}

/// The size of the image to generate. Each backend maps it to what it understands:
/// OpenAI picks the nearest of its sizes, Gemini an aspect ratio and `imageSize`,
/// ComfyUI sets width and height on the mapped nodes, chat-image gateways an
/// `image_config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageSize {
    /// Exact pixels.
    Pixels {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
    /// An aspect ratio such as `16:9`, with an optional resolution tier (`1K`, `2K`, `4K`).
    Aspect {
        /// Width:height, such as `3:2`.
        ratio: String,
        /// `1K`, `2K` or `4K`; the backend's default when `None`.
        resolution: Option<String>,
    },
}

impl ImageSize {
    /// Parse `1024x768`, `16:9`, or `16:9@2K`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if let Some((w, h)) = t.split_once(['x', 'X']) {
            let width = w
                .trim()
                .parse()
                .map_err(|_| format!("bad width in {t:?}"))?;
            let height = h
                .trim()
                .parse()
                .map_err(|_| format!("bad height in {t:?}"))?;
            if width == 0 || height == 0 {
                return Err(format!("{t:?}: width and height must be positive"));
            }
            return Ok(ImageSize::Pixels { width, height });
        }
        let (ratio, resolution) = match t.split_once('@') {
            Some((r, res)) => (r.trim(), Some(res.trim().to_ascii_uppercase())),
            None => (t, None),
        };
        if ratio_of(ratio).is_none() {
            return Err(format!(
                "{t:?} is neither WIDTHxHEIGHT (1024x768) nor an aspect ratio (16:9, 16:9@2K)"
            ));
        }
        Ok(ImageSize::Aspect {
            ratio: ratio.to_string(),
            resolution,
        })
    }

    /// Width divided by height.
    pub fn ratio(&self) -> Option<f64> {
        match self {
            ImageSize::Pixels { width, height } => Some(*width as f64 / *height as f64),
            ImageSize::Aspect { ratio, .. } => ratio_of(ratio),
        }
    }

    /// Pixels for backends that need them: exact sizes as given; aspect ratios with the
    /// long side 1024 (`1K`, default), 2048 (`2K`) or 4096 (`4K`), rounded to multiples
    /// of 64.
    pub fn pixels(&self) -> (u32, u32) {
        match self {
            ImageSize::Pixels { width, height } => (*width, *height),
            ImageSize::Aspect { resolution, .. } => {
                let long = match resolution.as_deref() {
                    Some("2K") => 2048.0,
                    Some("4K") => 4096.0,
                    _ => 1024.0,
                };
                let r = self.ratio().unwrap_or(1.0);
                let (w, h) = if r >= 1.0 {
                    (long, long / r)
                } else {
                    (long * r, long)
                };
                let round = |v: f64| ((v / 64.0).round().max(1.0) * 64.0) as u32;
                (round(w), round(h))
            }
        }
    }
}

fn ratio_of(ratio: &str) -> Option<f64> {
    let (w, h) = ratio.split_once(':')?;
    let w: f64 = w.trim().parse().ok()?;
    let h: f64 = h.trim().parse().ok()?;
    (w > 0.0 && h > 0.0 && w.is_finite() && h.is_finite()).then_some(w / h)
}

/// Where a backend reports progress (ComfyUI's websocket); the pipeline turns it into
/// [`crate::PipelineEvent::GeneratorProgress`].
#[derive(Clone)]
pub struct ProgressSink(Arc<dyn Fn(GeneratorProgress) + Send + Sync>);

impl ProgressSink {
    /// A sink calling `f` for each report.
    pub fn new(f: impl Fn(GeneratorProgress) + Send + Sync + 'static) -> Self {
        ProgressSink(Arc::new(f))
    }

    /// Report `p`.
    pub fn report(&self, p: GeneratorProgress) {
        (self.0)(p)
    }
}

impl std::fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressSink")
    }
}

impl PartialEq for ProgressSink {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// A backend's progress report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratorProgress {
    /// What happened: `queued`, `executing`, `progress`, `executed`, `cached`, `done`,
    /// or `polling` (the live channel was lost and the backend polls instead).
    pub stage: String,
    /// The node or step it concerns, when any.
    pub node: Option<String>,
    /// Steps done, for `progress`.
    pub value: Option<u64>,
    /// Steps in all, for `progress`.
    pub max: Option<u64>,
}

/// One generation call, the same for every backend. Each backend decides how to express
/// the references (an instruction in the prompt, image parts, a workflow's image inputs).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct GenerationRequest {
    /// The prompt as the user (or a refinement) wrote it, with nothing about the
    /// references: the backend adds what it needs.
    pub prompt: String,
    /// Reference images, best first.
    pub references: Vec<ReferenceImage>,
    /// The user's image to edit.
    pub edit_image: Option<InputImage>,
    /// The size or aspect ratio; the backend's default when `None`.
    pub size: Option<ImageSize>,
    /// A seed, for backends that take one.
    pub seed: Option<u64>,
    /// What the image must not show, for backends that take it (ComfyUI's negative node);
    /// others add it to the prompt as an instruction.
    pub negative_prompt: Option<String>,
    /// Images wanted (at least 1). With more than one the pipeline's judge picks the best.
    pub n: u32,
    /// Backend-specific fields, merged into the backend's request body as they are
    /// (OpenAI's `background`, Gemini's `generationConfig` fields, a gateway's `provider`).
    pub options: Map<String, Value>,
    /// Where to report progress, when the backend has any to report.
    pub progress: Option<ProgressSink>,
}

impl GenerationRequest {
    /// A request for one image of `prompt` with nothing else.
    pub fn new(prompt: impl Into<String>) -> Self {
        GenerationRequest {
            prompt: prompt.into(),
            references: Vec::new(),
            edit_image: None,
            size: None,
            seed: None,
            negative_prompt: None,
            n: 1,
            options: Map::new(),
            progress: None,
        }
    }

    /// With these references.
    pub fn with_references(mut self, references: Vec<ReferenceImage>) -> Self {
        self.references = references;
        self
    }

    /// Editing this image.
    pub fn with_edit_image(mut self, image: InputImage) -> Self {
        self.edit_image = Some(image);
        self
    }

    /// With this size or aspect ratio.
    pub fn with_size(mut self, size: ImageSize) -> Self {
        self.size = Some(size);
        self
    }

    /// Asking for `n` images (at least 1).
    pub fn with_n(mut self, n: u32) -> Self {
        self.n = n.max(1);
        self
    }

    /// Images wanted, at least 1.
    pub fn n(&self) -> u32 {
        self.n.max(1)
    }

    pub(crate) fn report(&self, p: GeneratorProgress) {
        if let Some(sink) = &self.progress {
            sink.report(p);
        }
    }
}

/// What one call produced.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Generation {
    /// The images, at least one.
    pub images: Vec<GeneratedImage>,
    /// What the whole call cost.
    pub usage: ImageUsage,
    /// The prompt text actually sent, with the backend's reference instructions.
    pub prompt_sent: String,
    /// Text the model wrote beside the image, when any.
    pub text: Option<String>,
    /// What the backend had to leave out or change (references dropped or re-encoded to
    /// fit its limits); the pipeline records them as degradations.
    pub notes: Vec<String>,
}

impl Generation {
    /// What a call produced: `images`, sent with `prompt_sent`, with nothing else to say
    /// (no usage, no text, no notes; set them with the `with_` methods). For generators
    /// written outside this crate.
    pub fn new(images: Vec<GeneratedImage>, prompt_sent: impl Into<String>) -> Self {
        Generation {
            images,
            usage: ImageUsage::default(),
            prompt_sent: prompt_sent.into(),
            text: None,
            notes: Vec::new(),
        }
    }

    /// With what the whole call cost.
    pub fn with_usage(mut self, usage: ImageUsage) -> Self {
        self.usage = usage;
        self
    }

    /// With a note of what the backend left out or changed.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// With the text the model wrote beside the image.
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }
}

/// Generation settings the pipeline applies to every round's request.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct GenerationSettings {
    /// The size or aspect ratio.
    pub size: Option<ImageSize>,
    /// A seed.
    pub seed: Option<u64>,
    /// A negative prompt.
    pub negative_prompt: Option<String>,
    /// Images per round (best of n by the judge); 1 when 0.
    pub n: u32,
    /// Backend-specific fields passed through.
    pub options: Map<String, Value>,
}

impl GenerationSettings {
    /// With this size or aspect ratio (`None`: the backend's default).
    pub fn size(mut self, size: Option<ImageSize>) -> Self {
        self.size = size;
        self
    }

    /// With this seed.
    pub fn seed(mut self, seed: Option<u64>) -> Self {
        self.seed = seed;
        self
    }

    /// With this negative prompt.
    pub fn negative_prompt(mut self, text: Option<String>) -> Self {
        self.negative_prompt = text;
        self
    }

    /// `n` images per round (best of n by the judge; at least 1).
    pub fn images(mut self, n: u32) -> Self {
        self.n = n.max(1);
        self
    }

    /// With a backend-specific field passed through into the request body.
    pub fn option(mut self, key: impl Into<String>, value: Value) -> Self {
        self.options.insert(key.into(), value);
        self
    }

    /// A request for `prompt` with these settings.
    pub fn request(&self, prompt: impl Into<String>) -> GenerationRequest {
        GenerationRequest {
            size: self.size.clone(),
            seed: self.seed,
            negative_prompt: self.negative_prompt.clone(),
            n: self.n.max(1),
            options: self.options.clone(),
            ..GenerationRequest::new(prompt)
        }
    }
}

/// The prompt for backends that can only be told about references in words: the user's
/// prompt, then one line per reference saying what it shows and what to take from it.
/// `first` is the number the first reference has among the images sent (2 when the
/// image to edit goes first). A negative prompt becomes an "Avoid:" line.
pub fn compose_prompt(request: &GenerationRequest, first: usize) -> String {
    let mut out = String::from(request.prompt.trim());
    let edit = request.edit_image.is_some();
    if edit || !request.references.is_empty() {
        out.push_str("\n\n");
    }
    if edit {
        out.push_str(
            "Image 1 is the image to edit; keep everything the prompt does not ask to change.\n",
        );
    }
    for (i, r) in request.references.iter().enumerate() {
        out.push_str(&reference_line(first + i, r));
        out.push('\n');
    }
    if let Some(neg) = request.negative_prompt.as_deref().map(str::trim)
        && !neg.is_empty()
    {
        out.push_str(&format!("\nAvoid: {neg}\n"));
    }
    out.trim_end().to_string()
}

/// One reference's instruction line.
pub fn reference_line(n: usize, r: &ReferenceImage) -> String {
    let label = &r.label;
    match r.role {
        ReferenceRole::Subject => format!(
            "Reference image {n} shows {label}; use it only for the appearance of {label} \
             (shape, colours, markings, clothing), not for its background, framing, pose, \
             lighting or style."
        ),
        ReferenceRole::Style => format!(
            "Reference image {n} ({label}) is a style reference; follow its visual style \
             (palette, medium, rendering) but not its content."
        ),
        ReferenceRole::Layout => format!(
            "Reference image {n} ({label}) is a layout reference; follow its composition \
             and placement but not its content or style."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn img() -> InputImage {
        InputImage {
            bytes: Bytes::from_static(b"x"),
            mime: "image/png".into(),
        }
    }

    #[test]
    fn compose_names_each_reference_and_its_use() {
        let r = GenerationRequest::new("A Graphorn at dusk")
            .with_references(vec![ReferenceImage::subject(img(), "a Graphorn")]);
        let p = compose_prompt(&r, 1);
        assert!(p.starts_with("A Graphorn at dusk"));
        assert!(p.contains(
            "Reference image 1 shows a Graphorn; use it only for the appearance of a Graphorn"
        ));
        let e = r.clone().with_edit_image(img());
        let e = compose_prompt(&e, 2);
        assert!(e.contains("Image 1 is the image to edit"));
        assert!(e.contains("Reference image 2 shows a Graphorn"));
        assert_eq!(compose_prompt(&GenerationRequest::new("plain"), 1), "plain");
    }

    #[test]
    fn roles_and_negative_prompt_have_their_own_wording() {
        let mut r = GenerationRequest::new("A poster").with_references(vec![
            ReferenceImage::subject(img(), "a cat").with_role(ReferenceRole::Style),
            ReferenceImage::subject(img(), "a grid").with_role(ReferenceRole::Layout),
        ]);
        r.negative_prompt = Some("text, watermarks".into());
        let p = compose_prompt(&r, 1);
        assert!(p.contains("Reference image 1 (a cat) is a style reference"));
        assert!(p.contains("Reference image 2 (a grid) is a layout reference"));
        assert!(p.ends_with("Avoid: text, watermarks"));
    }

    #[test]
    fn sizes_parse_and_map_to_pixels() {
        assert_eq!(
            ImageSize::parse("1024x768").unwrap(),
            ImageSize::Pixels {
                width: 1024,
                height: 768
            }
        );
        let a = ImageSize::parse("16:9@2k").unwrap();
        assert_eq!(
            a,
            ImageSize::Aspect {
                ratio: "16:9".into(),
                resolution: Some("2K".into())
            }
        );
        assert_eq!(a.pixels(), (2048, 1152));
        assert_eq!(ImageSize::parse("2:3").unwrap().pixels(), (704, 1024));
        assert!(ImageSize::parse("wide").is_err());
        assert!(ImageSize::parse("0x10").is_err());
        assert!(ImageSize::parse("1:0").is_err());
    }
}
