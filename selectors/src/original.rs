//! The generator is conditioned on the original image, not on the thumbnail the ranking
//! looked at: after the choice, the chosen references' originals are downloaded (bounded in
//! bytes, decoded within the selection's decode budget, downscaled to a pixel bound), and
//! the thumbnail stands in only when the original cannot be had. Each reference says which
//! it is and why.

use std::io::Cursor;

use bytes::Bytes;
use iat2i_retrievers::http::redact;
use iat2i_retrievers::{HttpClient, Trust};
use image::{DynamicImage, ImageFormat};

use crate::config::FetchConfig;
use crate::fetch::{DecodeBudget, decode, encode_png, has_jpeg_end, read_local_bounded, sniff};
use crate::types::{Reference, ReferenceSource};

/// Replace each thumbnail reference by its original, and bound every reference's pixels.
pub(crate) async fn use_originals(
    http: &HttpClient,
    cfg: &FetchConfig,
    budget: &DecodeBudget,
    refs: Vec<&mut Reference>,
) {
    let jobs = refs
        .into_iter()
        .map(|r| async move { upgrade(http, cfg, budget, r).await });
    futures::future::join_all(jobs).await;
}

/// What a reference's bytes become.
struct Bounded {
    bytes: Bytes,
    mime: String,
    width: u32,
    height: u32,
    note: Option<String>,
}

async fn upgrade(http: &HttpClient, cfg: &FetchConfig, budget: &DecodeBudget, r: &mut Reference) {
    let result = if r.source == ReferenceSource::Original {
        // Ranked on the original already (no thumbnail): only the pixel bound applies.
        bound(r.bytes.clone(), cfg, budget).await
    } else {
        match tokio::time::timeout(cfg.timeout, original(http, r, cfg, budget)).await {
            Ok(result) => result,
            Err(_) => Err(format!("timed out after {:?}", cfg.timeout)),
        }
    };
    match result {
        Ok(b) => {
            r.bytes = b.bytes;
            r.mime = b.mime;
            r.width = b.width;
            r.height = b.height;
            r.source = ReferenceSource::Original;
            r.source_note = b.note;
        }
        Err(e) if r.source == ReferenceSource::Original => {
            // The bytes were good enough to rank; keep them as they are, and say why.
            tracing::warn!(url = %redact(&r.candidate.image_url), "reference kept as downloaded: {e}");
            r.source_note = Some(format!("kept as downloaded: {e}"));
        }
        Err(e) => {
            tracing::warn!(
                url = %redact(&r.candidate.image_url),
                "the original could not be used; the thumbnail stands in: {e}"
            );
            r.source = ReferenceSource::Thumbnail;
            r.source_note = Some(format!(
                "the original could not be used ({e}); the engine's thumbnail stands in"
            ));
        }
    }
}

async fn original(
    http: &HttpClient,
    r: &Reference,
    cfg: &FetchConfig,
    budget: &DecodeBudget,
) -> Result<Bounded, String> {
    let url = &r.candidate.image_url;
    let body = if url.scheme() == "file" {
        read_local_bounded(url, cfg, cfg.max_reference_bytes).await?
    } else {
        http.get_limited(url, Trust::Untrusted, cfg.max_reference_bytes)
            .await
            .map_err(|e| e.to_string())?
            .body
    };
    bound(body, cfg, budget).await
}

/// Decode `body` (within the decode budget) and keep it when it is within the pixel bound
/// and in a format generators take; else downscale and re-encode it.
async fn bound(body: Bytes, cfg: &FetchConfig, budget: &DecodeBudget) -> Result<Bounded, String> {
    let _permit = budget.acquire(&body, cfg).await?;
    let cfg = cfg.clone();
    tokio::task::spawn_blocking(move || bound_blocking(body, &cfg))
        .await
        .map_err(|e| format!("decoding the original crashed: {e}"))?
}

fn bound_blocking(body: Bytes, cfg: &FetchConfig) -> Result<Bounded, String> {
    let format = sniff(&body, None)?;
    if format == ImageFormat::Jpeg && !has_jpeg_end(&body) {
        return Err("broken Jpeg: truncated (no end-of-image marker)".into());
    }
    let image = decode(&body, format, cfg)?;
    let (width, height) = (image.width(), image.height());
    let pixels = u64::from(width) * u64::from(height);
    let accepted = matches!(
        format,
        ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::WebP
    );
    if pixels <= cfg.max_reference_pixels && accepted {
        return Ok(Bounded {
            bytes: body,
            mime: format.to_mime_type().to_string(),
            width,
            height,
            note: None,
        });
    }
    let (image, note) = if pixels > cfg.max_reference_pixels {
        let scale = (cfg.max_reference_pixels as f64 / pixels as f64).sqrt();
        let nw = ((f64::from(width) * scale).floor() as u32).max(1);
        let nh = ((f64::from(height) * scale).floor() as u32).max(1);
        let small = image.resize_exact(nw, nh, image::imageops::FilterType::Lanczos3);
        let note = format!(
            "the original ({width}x{height}) was downscaled to {nw}x{nh} (at most {} pixels)",
            cfg.max_reference_pixels
        );
        (small, note)
    } else {
        (
            image,
            format!("the original ({format:?}) was re-encoded as PNG"),
        )
    };
    let (bytes, mime) = if format == ImageFormat::Jpeg {
        (encode_jpeg(&image)?, "image/jpeg")
    } else {
        (encode_png(&image)?, "image/png")
    };
    Ok(Bounded {
        bytes,
        mime: mime.to_string(),
        width: image.width(),
        height: image.height(),
        note: Some(note),
    })
}

/// A photograph stays a JPEG (quality 92) when it is downscaled.
fn encode_jpeg(image: &DynamicImage) -> Result<Bytes, String> {
    let mut out = Cursor::new(Vec::new());
    let rgb = DynamicImage::ImageRgb8(image.to_rgb8());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92)
        .encode_image(&rgb)
        .map_err(|e| format!("re-encoding to JPEG failed: {e}"))?;
    Ok(Bytes::from(out.into_inner()))
}
