//! Stage 2: download and decode, through the shared HTTP client and its SSRF policy.
//!
//! Every image is sniffed from its bytes (never trusted from the URL or headers), decoded
//! with [`image::Limits`] so that a header claiming a huge canvas is refused before any
//! allocation, turned upright by its EXIF orientation, and shrunk to what CLIP needs.

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use iat2i_retrievers::http::redact;
use iat2i_retrievers::{HttpClient, Trust};
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use image_hasher::{HashAlg, HasherConfig, ImageHash};
use url::Url;

use crate::config::FetchConfig;
use crate::prefilter::Prefiltered;

/// Shortest side of the image kept for embedding (CLIP looks at 224x224).
const EMBED_SIDE: u32 = 224;

/// A downloaded and decoded candidate.
pub(crate) struct Fetched {
    /// Position in the prefilter's order.
    pub index: usize,
    pub item: Prefiltered,
    pub image: PreparedImage,
    /// True when the bytes are the original image (no thumbnail, or the thumbnail failed).
    pub original: bool,
}

/// What every download of one selection shares: the limits, the largest aspect ratio kept,
/// and the selection's total decode budget.
#[derive(Clone)]
pub(crate) struct FetchContext {
    pub cfg: FetchConfig,
    pub max_aspect: f32,
    pub budget: Arc<DecodeBudget>,
    /// Where large bodies are spilled to (see [`crate::spill`]); `None` keeps them in memory.
    pub spill: Option<Arc<Path>>,
}

/// Memory all decoders of one selection may hold at once (`FetchConfig::max_total_decode`):
/// each decode reserves its estimated need before it starts and waits while the budget is
/// spent, so 16 downloads in flight cannot hold 16 x 128 MiB.
pub(crate) struct DecodeBudget {
    permits: tokio::sync::Semaphore,
    total_kib: u32,
    in_use: AtomicU64,
    peak: AtomicU64,
}

/// A reservation of decode memory, returned when dropped.
pub(crate) struct DecodePermit<'a> {
    _permit: tokio::sync::SemaphorePermit<'a>,
    budget: &'a DecodeBudget,
    kib: u64,
}

impl Drop for DecodePermit<'_> {
    fn drop(&mut self) {
        self.budget.in_use.fetch_sub(self.kib, Ordering::Relaxed);
    }
}

impl DecodeBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: u64) -> Self {
        let kib = (bytes / 1024).clamp(1, u64::from(u32::MAX));
        let kib = kib.min(tokio::sync::Semaphore::MAX_PERMITS as u64) as u32;
        DecodeBudget {
            permits: tokio::sync::Semaphore::new(kib as usize),
            total_kib: kib,
            in_use: AtomicU64::new(0),
            peak: AtomicU64::new(0),
        }
    }

    /// Reserve what decoding `body` needs (read from its header: the decoded buffer and one
    /// converted copy), waiting while other decodes hold the budget. An image that needs more
    /// than the whole budget is refused.
    pub async fn acquire(
        &self,
        body: &[u8],
        cfg: &FetchConfig,
    ) -> Result<DecodePermit<'_>, String> {
        let need = decode_need(body, cfg)?;
        let kib = need.div_ceil(1024).max(1);
        if kib > u64::from(self.total_kib) {
            return Err(format!(
                "decoding needs about {} MiB, more than the selection's decode budget of {} MiB \
                 (FetchConfig::max_total_decode)",
                need.div_ceil(1 << 20),
                u64::from(self.total_kib) / 1024
            ));
        }
        let permit = self
            .permits
            .acquire_many(kib as u32)
            .await
            .map_err(|_| "the decode budget was closed".to_string())?;
        let now = self.in_use.fetch_add(kib, Ordering::Relaxed) + kib;
        self.peak.fetch_max(now, Ordering::Relaxed);
        Ok(DecodePermit {
            _permit: permit,
            budget: self,
            kib,
        })
    }

    /// The most memory reserved at once so far, in bytes.
    pub fn peak_bytes(&self) -> u64 {
        self.peak.load(Ordering::Relaxed) * 1024
    }
}

/// A reader of `body` as `format` that refuses, from the header alone, sizes and
/// allocations over the configured limits.
fn limited_reader<'a>(
    body: &'a [u8],
    format: ImageFormat,
    cfg: &FetchConfig,
) -> ImageReader<Cursor<&'a [u8]>> {
    let mut limits = Limits::default();
    limits.max_image_width = Some(cfg.max_dimension);
    limits.max_image_height = Some(cfg.max_dimension);
    limits.max_alloc = Some(cfg.max_alloc);
    let mut reader = ImageReader::with_format(Cursor::new(body), format);
    reader.limits(limits);
    reader
}

/// Bytes decoding `body` allocates: the decoder's output buffer (from the header alone), and
/// as much again for the conversions that follow. Headers the decoder refuses are refused here.
fn decode_need(body: &[u8], cfg: &FetchConfig) -> Result<u64, String> {
    let format = sniff(body, None)?;
    let decoder = limited_reader(body, format, cfg)
        .into_decoder()
        .map_err(|e| format!("refused {format:?}: {e}"))?;
    Ok(decoder.total_bytes().saturating_mul(2))
}

/// What decoding one image body yields.
pub struct PreparedImage {
    /// The bytes to hand on: the original when it is PNG, JPEG or WebP, else a PNG re-encoding.
    pub bytes: Bytes,
    /// MIME type of `bytes`.
    pub mime: String,
    /// Upright width of the image.
    pub width: u32,
    /// Upright height of the image.
    pub height: u32,
    /// The upright image on a white background, shrunk so its shortest side is at most 224.
    pub embed_image: DynamicImage,
    /// Perceptual hash of the upright image.
    pub hash: ImageHash,
}

impl std::fmt::Debug for PreparedImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedImage")
            .field("bytes", &self.bytes.len())
            .field("mime", &self.mime)
            .field("width", &self.width)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

/// Download and decode every item, `cfg.concurrency` at a time, yielding results as they
/// complete (not in input order). Errors are the reason to drop the candidate.
pub(crate) fn fetch_all(
    http: HttpClient,
    items: Vec<Prefiltered>,
    ctx: FetchContext,
) -> impl Stream<Item = Result<Fetched, (Prefiltered, String)>> {
    let concurrency = ctx.cfg.concurrency.max(1);
    futures::stream::iter(items.into_iter().enumerate())
        .map(move |(index, item)| {
            let http = http.clone();
            let ctx = ctx.clone();
            async move {
                match fetch_one(&http, &item, &ctx).await {
                    Ok((image, original)) => Ok(Fetched {
                        index,
                        item,
                        image,
                        original,
                    }),
                    Err(reason) => Err((item, reason)),
                }
            }
        })
        .buffer_unordered(concurrency)
}

/// The preview (thumbnail, else original) decoded, falling back to the original; and whether
/// the result is the original.
async fn fetch_one(
    http: &HttpClient,
    item: &Prefiltered,
    ctx: &FetchContext,
) -> Result<(PreparedImage, bool), String> {
    let (image, original) = fetch_preview(http, item, ctx).await?;
    check_aspect(image.width, image.height, ctx.max_aspect)?;
    Ok((image, original))
}

/// Engines may not report sizes, so the prefilter's aspect-ratio limit is checked again on
/// the decoded image.
fn check_aspect(width: u32, height: u32, max: f32) -> Result<(), String> {
    let (long, short) = (width.max(height), width.min(height).max(1));
    let ratio = long as f32 / short as f32;
    if max > 0.0 && ratio > max {
        return Err(format!(
            "aspect ratio {ratio:.1}:1 after decoding ({width}x{height}) is over the limit of \
             {max}:1"
        ));
    }
    Ok(())
}

async fn fetch_preview(
    http: &HttpClient,
    item: &Prefiltered,
    ctx: &FetchContext,
) -> Result<(PreparedImage, bool), String> {
    let cfg = &ctx.cfg;
    let started = Instant::now();
    let c = &item.candidate;
    let first = c.preview_url().clone();
    let no_thumbnail = c.thumbnail_url.is_none();
    let attempt = tokio::time::timeout(cfg.timeout, download_and_decode(http, &first, ctx)).await;
    let err = match attempt {
        Ok(Ok(img)) => return Ok((img, no_thumbnail)),
        Ok(Err(e)) => e,
        Err(_) => format!("timed out after {:?} ({})", cfg.timeout, redact(&first)),
    };
    // The thumbnail failed: fall back to the original within the time left.
    let left = cfg.timeout.saturating_sub(started.elapsed());
    if no_thumbnail || left.is_zero() {
        return Err(err);
    }
    let original = c.image_url.clone();
    match tokio::time::timeout(left, download_and_decode(http, &original, ctx)).await {
        Ok(Ok(img)) => Ok((img, true)),
        Ok(Err(e)) => Err(format!("thumbnail: {err}; original: {e}")),
        Err(_) => Err(format!("thumbnail: {err}; original: timed out")),
    }
}

async fn download_and_decode(
    http: &HttpClient,
    url: &Url,
    ctx: &FetchContext,
) -> Result<PreparedImage, String> {
    let cfg = &ctx.cfg;
    let (body, content_type) = if url.scheme() == "file" {
        (read_local(url, cfg).await?, None)
    } else {
        // The cap is enforced while streaming: an oversized image is never read whole.
        let resp = http
            .get_limited(url, Trust::Untrusted, cfg.max_bytes)
            .await
            .map_err(|e| e.to_string())?;
        let content_type = resp.content_type();
        (resp.body, content_type)
    };
    let _permit = ctx.budget.acquire(&body, cfg).await?;
    let cfg = cfg.clone();
    let redacted = redact(url);
    let spill = ctx.spill.clone();
    tokio::task::spawn_blocking(move || {
        let mut prepared = prepare_image(body, content_type.as_deref(), &cfg)?;
        if let Some(dir) = spill {
            prepared.bytes = crate::spill::spill(prepared.bytes, &dir);
        }
        Ok(prepared)
    })
    .await
    .map_err(|e| format!("decoding {redacted} crashed: {e}"))?
}

/// Read a `file://` candidate, only when it lies under one of `cfg.local_roots` (after
/// resolving links and `..`), and only up to `cfg.max_bytes`.
async fn read_local(url: &Url, cfg: &FetchConfig) -> Result<Bytes, String> {
    read_local_bounded(url, cfg, cfg.max_bytes).await
}

/// [`read_local`] with a byte cap of its own (the original of a chosen reference).
pub(crate) async fn read_local_bounded(
    url: &Url,
    cfg: &FetchConfig,
    max: usize,
) -> Result<Bytes, String> {
    let path = url
        .to_file_path()
        .map_err(|()| format!("{url} is not a local file path"))?;
    let roots = cfg.local_roots.clone();
    tokio::task::spawn_blocking(move || {
        let real =
            std::fs::canonicalize(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let allowed = roots
            .iter()
            .any(|root| std::fs::canonicalize(root).is_ok_and(|root| real.starts_with(root)));
        if !allowed {
            return Err(format!(
                "refused {}: local files are read only under a folder allowed with \
                 SelectorConfig::allow_local_dir",
                path.display()
            ));
        }
        let len = std::fs::metadata(&real)
            .map_err(|e| format!("reading {}: {e}", real.display()))?
            .len();
        if len > max as u64 {
            return Err(format!("{} is larger than {max} bytes", real.display()));
        }
        std::fs::read(&real)
            .map(Bytes::from)
            .map_err(|e| format!("reading {}: {e}", real.display()))
    })
    .await
    .map_err(|e| format!("reading {} crashed: {e}", redact(url)))?
}

/// Sniff, decode (within `cfg`'s limits), orient, hash and shrink one image body.
pub fn prepare_image(
    body: Bytes,
    content_type: Option<&str>,
    cfg: &FetchConfig,
) -> Result<PreparedImage, String> {
    let format = sniff(&body, content_type)?;
    if format == ImageFormat::Jpeg && !has_jpeg_end(&body) {
        // Decoders grey-fill a cut-off JPEG rather than fail; a partial picture is no reference.
        return Err("broken Jpeg: truncated (no end-of-image marker)".into());
    }
    // A JPEG is decoded straight at the smallest DCT scale (1/8, 1/4, 1/2) that keeps its
    // shortest side at CLIP's 224 pixels: most of a 1600-pixel photo is never reconstructed.
    let scaled = if format == ImageFormat::Jpeg {
        decode_jpeg_scaled(&body, cfg)
    } else {
        None
    };
    let (mut image, width, height) = match scaled {
        Some(s) => s,
        None => {
            let image = decode(&body, format, cfg)?;
            let (w, h) = (image.width(), image.height());
            (image, w, h)
        }
    };
    if width < cfg.min_decoded_side || height < cfg.min_decoded_side {
        return Err(format!(
            "too small after decoding: {width}x{height} (minimum side {})",
            cfg.min_decoded_side
        ));
    }
    let (bytes, mime) = match format {
        ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::WebP => {
            (body, format.to_mime_type().to_string())
        }
        _ => (encode_png(&image)?, "image/png".to_string()),
    };
    image = shrink(image);
    let image = flatten_on_white(image);
    let hash = hasher().hash_image(&image);
    Ok(PreparedImage {
        bytes,
        mime,
        width,
        height,
        embed_image: image,
        hash,
    })
}

pub(crate) fn sniff(body: &[u8], content_type: Option<&str>) -> Result<ImageFormat, String> {
    if body.is_empty() {
        return Err("empty body".into());
    }
    match image::guess_format(body) {
        Ok(
            f @ (ImageFormat::Png
            | ImageFormat::Jpeg
            | ImageFormat::WebP
            | ImageFormat::Gif
            | ImageFormat::Bmp
            | ImageFormat::Tiff),
        ) => Ok(f),
        Ok(other) => Err(format!("unsupported image format {other:?}")),
        Err(_) => {
            let head = String::from_utf8_lossy(&body[..body.len().min(256)]).to_ascii_lowercase();
            let ct = content_type.unwrap_or("no content type");
            if head.trim_start().starts_with('<') || ct.contains("html") {
                Err(format!("not an image: the server sent an HTML page ({ct})"))
            } else {
                Err(format!("not a recognised image format ({ct})"))
            }
        }
    }
}

/// True when a JPEG end-of-image marker appears near the end (trailing padding is allowed).
pub(crate) fn has_jpeg_end(body: &[u8]) -> bool {
    let tail = &body[body.len().saturating_sub(4096)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

pub(crate) fn decode(
    body: &[u8],
    format: ImageFormat,
    cfg: &FetchConfig,
) -> Result<DynamicImage, String> {
    let mut decoder = limited_reader(body, format, cfg)
        .into_decoder()
        .map_err(|e| format!("refused {format:?}: {e}"))?;
    let orientation = decoder.orientation().ok();
    let mut image =
        DynamicImage::from_decoder(decoder).map_err(|e| format!("broken {format:?}: {e}"))?;
    if let Some(o) = orientation {
        image.apply_orientation(o);
    }
    Ok(image)
}

/// `body` (a JPEG) decoded at a reduced DCT scale whose shortest side is still at least
/// [`EMBED_SIDE`], upright, with the original's upright size; `None` when this decoder
/// cannot do it (CMYK, 16-bit, an error), so the caller decodes in full and reports the
/// full decoder's error.
fn decode_jpeg_scaled(body: &[u8], cfg: &FetchConfig) -> Option<(DynamicImage, u32, u32)> {
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(body));
    decoder.read_info().ok()?;
    let info = decoder.info()?;
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    if w == 0 || h == 0 || w > cfg.max_dimension || h > cfg.max_dimension {
        return None;
    }
    let short = w.min(h);
    if short <= EMBED_SIDE * 2 {
        // Not even a 1/2 scale would do: the full decoder is the faster one.
        return None;
    }
    let want = |side: u32| (u64::from(side) * u64::from(EMBED_SIDE)).div_ceil(u64::from(short));
    let (sw, sh) = decoder
        .scale(u16::try_from(want(w)).ok()?, u16::try_from(want(h)).ok()?)
        .ok()?;
    decoder.set_max_decoding_buffer_size(usize::try_from(cfg.max_alloc).unwrap_or(usize::MAX));
    let pixels = decoder.decode().ok()?;
    let (sw, sh) = (u32::from(sw), u32::from(sh));
    let mut image = match decoder.info()?.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => {
            DynamicImage::ImageRgb8(image::RgbImage::from_raw(sw, sh, pixels)?)
        }
        jpeg_decoder::PixelFormat::L8 => {
            DynamicImage::ImageLuma8(image::GrayImage::from_raw(sw, sh, pixels)?)
        }
        _ => return None,
    };
    let orientation = decoder
        .exif_data()
        .and_then(image::metadata::Orientation::from_exif_chunk);
    let (mut width, mut height) = (w, h);
    if let Some(o) = orientation {
        image.apply_orientation(o);
        if image.width() != sw {
            std::mem::swap(&mut width, &mut height);
        }
    }
    Some((image, width, height))
}

pub(crate) fn encode_png(image: &DynamicImage) -> Result<Bytes, String> {
    let mut out = Cursor::new(Vec::new());
    let to_encode = match image {
        DynamicImage::ImageRgba32F(_) | DynamicImage::ImageRgb32F(_) => {
            DynamicImage::ImageRgba16(image.to_rgba16())
        }
        other => other.clone(),
    };
    to_encode
        .write_to(&mut out, ImageFormat::Png)
        .map_err(|e| format!("re-encoding to PNG failed: {e}"))?;
    Ok(Bytes::from(out.into_inner()))
}

/// Shrink so that the shortest side is at most [`EMBED_SIDE`] (CLIP's input), cheaply: by
/// area averaging (each source pixel counts once), which costs the same whatever the
/// scale, where a filtered resize of a 1600-pixel PNG spends its kernel over many source
/// pixels per output pixel.
fn shrink(image: DynamicImage) -> DynamicImage {
    let (w, h) = (image.width(), image.height());
    let short = w.min(h);
    if short <= EMBED_SIDE {
        return image;
    }
    let scale = EMBED_SIDE as f64 / short as f64;
    let nw = ((w as f64 * scale).round() as u32).max(1);
    let nh = ((h as f64 * scale).round() as u32).max(1);
    image.thumbnail_exact(nw, nh)
}

/// Composite transparent pixels over white, so that CLIP and the hash see what a viewer sees.
fn flatten_on_white(image: DynamicImage) -> DynamicImage {
    if !image.color().has_alpha() {
        return DynamicImage::ImageRgb8(image.to_rgb8());
    }
    let rgba = image.to_rgba8();
    let (w, h) = rgba.dimensions();
    let mut rgb = image::RgbImage::new(w, h);
    for (dst, src) in rgb.pixels_mut().zip(rgba.pixels()) {
        let a = u16::from(src.0[3]);
        for ch in 0..3 {
            let v = (u16::from(src.0[ch]) * a + 255 * (255 - a)) / 255;
            dst.0[ch] = v.min(255) as u8;
        }
    }
    DynamicImage::ImageRgb8(rgb)
}

fn hasher() -> image_hasher::Hasher {
    HasherConfig::new()
        .hash_size(8, 8)
        .hash_alg(HashAlg::Gradient)
        .to_hasher()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 90]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    fn ctx(cfg: &FetchConfig) -> FetchContext {
        FetchContext {
            spill: None,
            cfg: cfg.clone(),
            max_aspect: 4.0,
            budget: Arc::new(DecodeBudget::new(cfg.max_total_decode)),
        }
    }

    #[test]
    fn sniffs_content_not_names() {
        let cfg = FetchConfig::default();
        let p = prepare_image(Bytes::from(png(600, 400)), Some("text/plain"), &cfg).unwrap();
        assert_eq!(
            (p.mime.as_str(), p.width, p.height),
            ("image/png", 600, 400)
        );
        assert_eq!(p.embed_image.height(), 224, "shortest side shrunk to 224");
        let html = Bytes::from_static(b"<!doctype html><html>nope</html>");
        let err = prepare_image(html, Some("text/html"), &cfg).unwrap_err();
        assert!(err.contains("HTML page"), "{err}");
    }

    #[tokio::test]
    async fn the_image_cap_applies_to_the_download() {
        use wiremock::matchers::path;
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        let body = png(600, 400);
        Mock::given(path("/frog.png"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(body.clone(), "image/png"))
            .mount(&server)
            .await;
        let http = HttpClient::builder()
            .allow_host("127.0.0.1")
            .per_host_per_second(0)
            .build()
            .unwrap();
        let url = Url::parse(&format!("{}/frog.png", server.uri())).unwrap();
        let mut cfg = FetchConfig {
            max_bytes: body.len() - 1,
            ..FetchConfig::default()
        };
        let err = download_and_decode(&http, &url, &ctx(&cfg))
            .await
            .unwrap_err();
        assert!(
            err.contains(&format!("more than {} bytes", body.len() - 1)),
            "{err}"
        );
        cfg.max_bytes = body.len();
        let ok = download_and_decode(&http, &url, &ctx(&cfg)).await.unwrap();
        assert_eq!((ok.width, ok.height), (600, 400));
    }

    #[tokio::test]
    async fn local_files_are_read_only_under_an_allowed_folder() {
        let http = HttpClient::builder().build().unwrap();
        let lib = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(lib.path().join("logo.png"), png(300, 200)).unwrap();
        std::fs::write(outside.path().join("secret.png"), png(300, 200)).unwrap();
        let url = |p: std::path::PathBuf| Url::from_file_path(p).unwrap();
        let mut cfg = FetchConfig::default();

        let inside = url(lib.path().join("logo.png"));
        let err = download_and_decode(&http, &inside, &ctx(&cfg))
            .await
            .unwrap_err();
        assert!(
            err.contains("allow_local_dir"),
            "no folder allowed yet: {err}"
        );

        cfg.local_roots.push(lib.path().to_path_buf());
        let ok = download_and_decode(&http, &inside, &ctx(&cfg))
            .await
            .unwrap();
        assert_eq!(
            (ok.mime.as_str(), ok.width, ok.height),
            ("image/png", 300, 200)
        );

        let escaped = lib
            .path()
            .join("..")
            .join(outside.path())
            .join("secret.png");
        for bad in [url(outside.path().join("secret.png")), url(escaped)] {
            let err = download_and_decode(&http, &bad, &ctx(&cfg))
                .await
                .unwrap_err();
            assert!(err.starts_with("refused"), "{err}");
        }
        cfg.max_bytes = 10;
        let err = download_and_decode(&http, &inside, &ctx(&cfg))
            .await
            .unwrap_err();
        assert!(err.contains("larger than 10 bytes"), "{err}");
    }

    #[test]
    fn small_images_are_refused_after_decoding() {
        let cfg = FetchConfig::default();
        let err = prepare_image(Bytes::from(png(20, 200)), None, &cfg).unwrap_err();
        assert!(err.contains("too small after decoding: 20x200"), "{err}");
    }

    #[tokio::test]
    async fn decoding_stays_within_the_selection_budget() {
        let cfg = FetchConfig::default();
        // Each 1000x1000 RGB image needs ~2.9 MiB decoded, reserved twice: room for one at a time.
        let budget = Arc::new(DecodeBudget::new(7 << 20));
        let body = Bytes::from(png(1000, 1000));
        let jobs = (0..8).map(|_| {
            let (budget, body, cfg) = (budget.clone(), body.clone(), cfg.clone());
            tokio::spawn(async move {
                let _permit = budget.acquire(&body, &cfg).await.unwrap();
                tokio::task::spawn_blocking(move || prepare_image(body, None, &cfg))
                    .await
                    .unwrap()
                    .map(|p| p.width)
            })
        });
        for job in futures::future::join_all(jobs).await {
            assert_eq!(job.unwrap().unwrap(), 1000);
        }
        let peak = budget.peak_bytes();
        assert!(peak > 0 && peak <= 7 << 20, "peak {peak}");

        let small = DecodeBudget::new(4 << 20);
        let err = small.acquire(&body, &cfg).await.err().unwrap();
        assert!(err.contains("decode budget of 4 MiB"), "{err}");
    }

    #[test]
    fn the_aspect_ratio_is_checked_on_the_decoded_size() {
        assert!(check_aspect(1000, 250, 4.0).is_ok());
        let err = check_aspect(1000, 100, 4.0).unwrap_err();
        assert!(err.contains("10.0:1") && err.contains("1000x100"), "{err}");
    }
}
