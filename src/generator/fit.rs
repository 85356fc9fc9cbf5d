//! Fitting reference images to a backend's limits: how many, how many bytes, how many
//! pixels, which formats. Oversized images are downscaled and re-encoded with the
//! `image` crate; what could not be sent is said in the call's notes.

use std::io::Cursor;

use bytes::Bytes;
use image::{DynamicImage, ImageFormat, ImageReader, Limits};

use super::{GenerationRequest, InputImage, ReferenceImage};

/// What a backend accepts as input images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceLimits {
    /// Most images per call (the image to edit counts).
    pub max_images: usize,
    /// Most encoded bytes per image.
    pub max_bytes: usize,
    /// Most pixels (width x height) per image.
    pub max_pixels: u64,
    /// MIME types sent as they are; others are re-encoded.
    pub formats: Vec<&'static str>,
}

impl ReferenceLimits {
    /// Limits with PNG, JPEG and WebP accepted.
    pub fn new(max_images: usize, max_bytes: usize, max_pixels: u64) -> Self {
        ReferenceLimits {
            max_images,
            max_bytes,
            max_pixels,
            formats: vec!["image/png", "image/jpeg", "image/webp"],
        }
    }
}

/// The images of a request fitted to `limits`: the image to edit first (never dropped),
/// then the references in order, as many as fit. Returns the fitted references beside
/// the fitted edit image, and notes on everything dropped or re-encoded.
pub fn fit_request(
    request: &GenerationRequest,
    limits: &ReferenceLimits,
) -> (Option<InputImage>, Vec<ReferenceImage>, Vec<String>) {
    let mut notes = Vec::new();
    let edit = request.edit_image.as_ref().map(|img| {
        fit_image(img, limits).unwrap_or_else(|e| {
            notes.push(format!("the image to edit is sent unchanged: {e}"));
            img.clone()
        })
    });
    let room = limits
        .max_images
        .saturating_sub(usize::from(edit.is_some()));
    let mut refs = Vec::new();
    for (i, r) in request.references.iter().enumerate() {
        if refs.len() >= room {
            notes.push(format!(
                "{} of {} reference images not sent: the backend takes at most {} images",
                request.references.len() - i,
                request.references.len(),
                limits.max_images
            ));
            break;
        }
        match fit_image(&r.image, limits) {
            Ok(image) => {
                if image.bytes.len() != r.image.bytes.len() || image.mime != r.image.mime {
                    notes.push(format!(
                        "reference {} re-encoded to fit the backend ({} -> {} bytes, {})",
                        i + 1,
                        r.image.bytes.len(),
                        image.bytes.len(),
                        image.mime
                    ));
                }
                refs.push(ReferenceImage { image, ..r.clone() });
            }
            Err(e) => notes.push(format!("reference {} not sent: {e}", i + 1)),
        }
    }
    for n in &notes {
        tracing::warn!(note = %n, "fitting references");
    }
    (edit, refs, notes)
}

/// `img` within `limits`: unchanged when it already fits, else downscaled and
/// re-encoded (JPEG, or PNG when it has transparency) until it does.
pub fn fit_image(img: &InputImage, limits: &ReferenceLimits) -> Result<InputImage, String> {
    let dims = super::dimensions(&img.bytes);
    let pixels = dims.map(|(w, h)| u64::from(w) * u64::from(h));
    let format_ok = limits.formats.iter().any(|f| *f == img.mime);
    if format_ok
        && img.bytes.len() <= limits.max_bytes
        && pixels.is_some_and(|p| p <= limits.max_pixels)
    {
        return Ok(img.clone());
    }
    let decoded = decode(&img.bytes)?;
    let mut scale = match pixels {
        Some(p) if p > limits.max_pixels => (limits.max_pixels as f64 / p as f64).sqrt(),
        _ => 1.0,
    };
    for _ in 0..8 {
        let out = encode(&decoded, scale)?;
        if out.bytes.len() <= limits.max_bytes {
            return Ok(out);
        }
        scale *= 0.7;
    }
    Err(format!(
        "could not bring it under {} bytes by downscaling",
        limits.max_bytes
    ))
}

fn decode(bytes: &[u8]) -> Result<DynamicImage, String> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("unreadable image: {e}"))?;
    let mut lim = Limits::default();
    lim.max_alloc = Some(512 * 1024 * 1024);
    lim.max_image_width = Some(20_000);
    lim.max_image_height = Some(20_000);
    reader.limits(lim);
    reader
        .decode()
        .map_err(|e| format!("undecodable image: {e}"))
}

fn encode(img: &DynamicImage, scale: f64) -> Result<InputImage, String> {
    let scaled = if scale < 1.0 {
        let w = ((img.width() as f64 * scale).round() as u32).max(1);
        let h = ((img.height() as f64 * scale).round() as u32).max(1);
        img.resize(w, h, image::imageops::FilterType::Triangle)
    } else {
        img.clone()
    };
    let alpha = scaled.color().has_alpha();
    let mut out = Vec::new();
    let (format, mime) = if alpha {
        (ImageFormat::Png, "image/png")
    } else {
        (ImageFormat::Jpeg, "image/jpeg")
    };
    let to_write = if alpha {
        DynamicImage::ImageRgba8(scaled.to_rgba8())
    } else {
        DynamicImage::ImageRgb8(scaled.to_rgb8())
    };
    to_write
        .write_to(&mut Cursor::new(&mut out), format)
        .map_err(|e| format!("re-encoding failed: {e}"))?;
    Ok(InputImage {
        bytes: Bytes::from(out),
        mime: mime.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    fn png(w: u32, h: u32) -> InputImage {
        let img = RgbImage::from_fn(w, h, |x, y| Rgb([(x * 7) as u8, (y * 13) as u8, 90]));
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        InputImage::sniff(Bytes::from(out))
    }

    #[test]
    fn an_image_that_fits_is_sent_unchanged() {
        let img = png(64, 48);
        let fitted = fit_image(&img, &ReferenceLimits::new(4, 1 << 20, 1 << 20)).unwrap();
        assert_eq!(fitted, img);
    }

    #[test]
    fn too_many_pixels_are_downscaled_and_reencoded() {
        let img = png(400, 300);
        let fitted = fit_image(&img, &ReferenceLimits::new(4, 1 << 20, 100 * 100)).unwrap();
        let (w, h) = crate::generator::dimensions(&fitted.bytes).unwrap();
        assert!(u64::from(w) * u64::from(h) <= 100 * 100, "{w}x{h}");
        assert_eq!(fitted.mime, "image/jpeg");
    }

    #[test]
    fn too_many_bytes_shrink_until_they_fit_and_garbage_is_an_error() {
        let img = png(512, 512);
        let fitted = fit_image(&img, &ReferenceLimits::new(4, 8_000, 1 << 30)).unwrap();
        assert!(fitted.bytes.len() <= 8_000);
        let junk = InputImage {
            bytes: Bytes::from_static(b"not an image at all"),
            mime: "image/png".into(),
        };
        assert!(fit_image(&junk, &ReferenceLimits::new(4, 8, 1 << 30)).is_err());
    }

    #[test]
    fn extra_references_are_dropped_with_a_note_and_the_edit_image_kept() {
        let refs = (0..3)
            .map(|i| ReferenceImage::subject(png(8, 8), format!("r{i}")))
            .collect();
        let req = GenerationRequest::new("p")
            .with_references(refs)
            .with_edit_image(png(8, 8));
        let (edit, refs, notes) = fit_request(&req, &ReferenceLimits::new(2, 1 << 20, 1 << 20));
        assert!(edit.is_some());
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].label, "r0");
        assert!(
            notes[0].contains("2 of 3 reference images not sent"),
            "{notes:?}"
        );
    }
}
