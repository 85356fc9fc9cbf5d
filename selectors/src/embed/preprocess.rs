//! CLIP's image preprocessing, read from the model's `preprocessor_config.json` (the Hugging
//! Face `CLIPImageProcessor` fields): resize the shortest edge, centre-crop, rescale to 0..1,
//! normalise per channel, and lay the result out channel-first for the vision tower.
//!
//! Written here rather than taken from fastembed because fastembed's preprocessor can only be
//! had from a session it loaded itself, from bytes, which costs three copies of the weights at
//! load time (see [`super::clip`]).

use image::imageops::FilterType;
use image::{DynamicImage, RgbImage};
use serde::Deserialize;

/// A `size` or `crop_size` field: a number, or a map with `shortest_edge` or
/// `height`/`width`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Size {
    Edge(u32),
    Map {
        shortest_edge: Option<u32>,
        height: Option<u32>,
        width: Option<u32>,
    },
}

#[derive(Debug, Deserialize)]
struct Config {
    do_resize: Option<bool>,
    size: Option<Size>,
    do_center_crop: Option<bool>,
    crop_size: Option<Size>,
    do_rescale: Option<bool>,
    rescale_factor: Option<f32>,
    do_normalize: Option<bool>,
    image_mean: Option<Vec<f32>>,
    image_std: Option<Vec<f32>>,
    resample: Option<u8>,
}

/// How an image is resized before the crop.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Resize {
    /// Scale so the shortest edge is this long, keeping the aspect ratio.
    ShortestEdge(u32),
    /// Scale to exactly this width and height.
    Exact(u32, u32),
}

/// CLIP image preprocessing as one model's configuration asks for it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClipPreprocessor {
    resize: Option<Resize>,
    width: u32,
    height: u32,
    filter: FilterType,
    scale: f32,
    mean: [f32; 3],
    std: [f32; 3],
}

/// OpenAI CLIP's channel means and deviations (the `CLIPImageProcessor` defaults).
const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

impl ClipPreprocessor {
    /// Read a `preprocessor_config.json`. The output must have one fixed size (a centre crop,
    /// or a resize to exact height and width), since images are embedded in batches.
    pub(crate) fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let c: Config = serde_json::from_slice(bytes)
            .map_err(|e| format!("preprocessor_config.json is not a CLIP image processor: {e}"))?;
        let resize = match (c.do_resize.unwrap_or(true), &c.size) {
            (false, _) => None,
            (true, None) => Some(Resize::ShortestEdge(224)),
            (true, Some(Size::Edge(n))) => Some(Resize::ShortestEdge(*n)),
            (
                true,
                Some(Size::Map {
                    shortest_edge: Some(n),
                    ..
                }),
            ) => Some(Resize::ShortestEdge(*n)),
            (
                true,
                Some(Size::Map {
                    height: Some(h),
                    width: Some(w),
                    ..
                }),
            ) => Some(Resize::Exact(*w, *h)),
            (true, Some(other)) => {
                return Err(format!(
                    "preprocessor_config.json: `size` {other:?} names neither a shortest edge nor \
                     a height and width"
                ));
            }
        };
        let crop = match (c.do_center_crop.unwrap_or(true), &c.crop_size) {
            (false, _) => None,
            (true, None) => Some((224, 224)),
            (true, Some(Size::Edge(n))) => Some((*n, *n)),
            (
                true,
                Some(Size::Map {
                    height: Some(h),
                    width: Some(w),
                    ..
                }),
            ) => Some((*w, *h)),
            (true, Some(other)) => {
                return Err(format!(
                    "preprocessor_config.json: `crop_size` {other:?} has no height and width"
                ));
            }
        };
        let (width, height) = match (crop, resize) {
            (Some(size), _) => size,
            (None, Some(Resize::Exact(w, h))) => (w, h),
            _ => {
                return Err(
                    "preprocessor_config.json gives no fixed input size (neither a centre crop \
                     nor a resize to height and width), so images cannot be batched"
                        .into(),
                );
            }
        };
        if width == 0 || height == 0 || width > 4096 || height > 4096 {
            return Err(format!(
                "preprocessor_config.json: input size {width}x{height} is out of range"
            ));
        }
        let scale = if c.do_rescale.unwrap_or(true) {
            c.rescale_factor.unwrap_or(1.0 / 255.0)
        } else {
            1.0
        };
        let (mean, std) = if c.do_normalize.unwrap_or(true) {
            (
                three("image_mean", c.image_mean, CLIP_MEAN)?,
                three("image_std", c.image_std, CLIP_STD)?,
            )
        } else {
            ([0.0; 3], [1.0; 3])
        };
        if std.iter().any(|s| *s == 0.0 || !s.is_finite()) {
            return Err("preprocessor_config.json: `image_std` has a zero".into());
        }
        let filter = match c.resample.unwrap_or(3) {
            0 => FilterType::Nearest,
            1 => FilterType::Lanczos3,
            2 => FilterType::Triangle,
            _ => FilterType::CatmullRom,
        };
        Ok(ClipPreprocessor {
            resize,
            width,
            height,
            filter,
            scale,
            mean,
            std,
        })
    }

    /// The input's height and width.
    pub(crate) fn input_size(&self) -> (u32, u32) {
        (self.height, self.width)
    }

    /// Floats per prepared image (3 × height × width).
    pub(crate) fn len(&self) -> usize {
        3 * self.width as usize * self.height as usize
    }

    /// Prepare one image: append its `[3, height, width]` floats to `out`.
    pub(crate) fn prepare_into(&self, image: &DynamicImage, out: &mut Vec<f32>) {
        let owned;
        let rgb: &RgbImage = match image.as_rgb8() {
            Some(rgb) => rgb,
            None => {
                owned = image.to_rgb8();
                &owned
            }
        };
        let resized = match self.resize {
            Some(Resize::ShortestEdge(edge)) => {
                let (nw, nh) = shortest_edge(rgb.dimensions(), edge);
                ((nw, nh) != rgb.dimensions())
                    .then(|| image::imageops::resize(rgb, nw, nh, self.filter))
            }
            Some(Resize::Exact(w, h)) => (rgb.dimensions() != (w, h))
                .then(|| image::imageops::resize(rgb, w, h, self.filter)),
            None => None,
        };
        let img = resized.as_ref().unwrap_or(rgb);
        let (w, h) = img.dimensions();
        // Centre crop; where the image is smaller than the crop, the input stays 0.
        let left = i64::from(w) / 2 - i64::from(self.width) / 2;
        let top = i64::from(h) / 2 - i64::from(self.height) / 2;
        let start = out.len();
        out.resize(start + self.len(), 0.0);
        let plane = self.width as usize * self.height as usize;
        let pixels = img.as_raw();
        for y in 0..self.height as usize {
            let sy = top + y as i64;
            if sy < 0 || sy >= i64::from(h) {
                continue;
            }
            for x in 0..self.width as usize {
                let sx = left + x as i64;
                if sx < 0 || sx >= i64::from(w) {
                    continue;
                }
                let p = (sy as usize * w as usize + sx as usize) * 3;
                let o = start + y * self.width as usize + x;
                for c in 0..3 {
                    out[o + c * plane] =
                        (f32::from(pixels[p + c]) * self.scale - self.mean[c]) / self.std[c];
                }
            }
        }
    }
}

/// The width and height after scaling `(w, h)` so its shortest edge is `edge`.
fn shortest_edge((w, h): (u32, u32), edge: u32) -> (u32, u32) {
    let short = w.min(h).max(1);
    if w <= h {
        (edge, scaled(h, edge, short))
    } else {
        (scaled(w, edge, short), edge)
    }
}

/// `long * edge / short`, rounded, at least 1.
fn scaled(long: u32, edge: u32, short: u32) -> u32 {
    ((u64::from(long) * u64::from(edge) + u64::from(short) / 2) / u64::from(short)).max(1) as u32
}

fn three(field: &str, v: Option<Vec<f32>>, default: [f32; 3]) -> Result<[f32; 3], String> {
    match v {
        None => Ok(default),
        Some(v) => <[f32; 3]>::try_from(v.as_slice()).map_err(|_| {
            format!(
                "preprocessor_config.json: `{field}` needs 3 values (one per channel), not {}",
                v.len()
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENAI: &str = r#"{"crop_size":{"height":224,"width":224},"do_center_crop":true,
        "do_normalize":true,"do_rescale":true,"do_resize":true,
        "image_mean":[0.48145466,0.4578275,0.40821073],"image_std":[0.26862954,0.26130258,0.27577711],
        "resample":3,"rescale_factor":0.00392156862745098,"size":{"shortest_edge":224}}"#;

    #[test]
    fn the_openai_config_resizes_crops_and_normalises() {
        let p = ClipPreprocessor::from_json(OPENAI.as_bytes()).unwrap();
        assert_eq!(p.input_size(), (224, 224));
        assert_eq!(p.resize, Some(Resize::ShortestEdge(224)));
        // A 448x300 image split left red / right blue: after the resize (335x224) and the
        // centre crop, the left column is red and the right column blue.
        let img = RgbImage::from_fn(448, 300, |x, _| {
            if x < 224 {
                image::Rgb([255, 0, 0])
            } else {
                image::Rgb([0, 0, 255])
            }
        });
        let mut out = Vec::new();
        p.prepare_into(&DynamicImage::ImageRgb8(img), &mut out);
        assert_eq!(out.len(), 3 * 224 * 224);
        let at = |c: usize, y: usize, x: usize| out[c * 224 * 224 + y * 224 + x];
        let red = (1.0 - CLIP_MEAN[0]) / CLIP_STD[0];
        let none_blue = (0.0 - CLIP_MEAN[2]) / CLIP_STD[2];
        assert!((at(0, 100, 0) - red).abs() < 1e-4, "{}", at(0, 100, 0));
        assert!((at(2, 100, 0) - none_blue).abs() < 1e-4);
        assert!((at(2, 100, 223) - (1.0 - CLIP_MEAN[2]) / CLIP_STD[2]).abs() < 1e-4);
        // Appending: a second image goes after the first.
        p.prepare_into(&DynamicImage::new_rgb8(10, 500), &mut out);
        assert_eq!(out.len(), 2 * 3 * 224 * 224);
        assert!(out[3 * 224 * 224..].iter().all(|v| v.is_finite()));
    }

    #[test]
    fn a_config_without_a_fixed_size_or_with_bad_fields_is_refused() {
        let no_size = r#"{"do_center_crop":false,"size":{"shortest_edge":224}}"#;
        let err = ClipPreprocessor::from_json(no_size.as_bytes()).unwrap_err();
        assert!(err.contains("no fixed input size"), "{err}");
        let bad_mean = r#"{"image_mean":[0.5,0.5]}"#;
        let err = ClipPreprocessor::from_json(bad_mean.as_bytes()).unwrap_err();
        assert!(err.contains("image_mean"), "{err}");
        let err = ClipPreprocessor::from_json(b"<html>").unwrap_err();
        assert!(err.contains("not a CLIP image processor"), "{err}");
        // Defaults: an empty object is OpenAI CLIP's 224 crop.
        let p = ClipPreprocessor::from_json(b"{}").unwrap();
        assert_eq!(p.input_size(), (224, 224));
        assert_eq!(p.std, CLIP_STD);
    }
}
