//! Test pictures and the ONNX Runtime check shared by the tests that need them.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

/// True when ONNX Runtime is available; prints why the test is skipped otherwise.
pub fn ort_available() -> bool {
    match std::env::var_os("ORT_DYLIB_PATH") {
        Some(p) if Path::new(&p).is_file() => true,
        _ => {
            eprintln!(
                "skipped: ORT_DYLIB_PATH is unset or not a file (run `make test`, or set it to \
                 the path `bash scripts/setup-ort.sh` prints)"
            );
            false
        }
    }
}

/// A smooth seeded picture: different seeds give clearly different images and hashes.
pub fn scene(seed: u32, w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy, s) = (x as f32 / w as f32, y as f32 / h as f32, seed as f32);
        let a = ((fx * (2.0 + s)).sin() * (fy * (1.0 + 0.7 * s)).cos()) * 110.0;
        let b = ((fx + fy) * (1.5 + 0.9 * s)).cos() * 90.0;
        Rgb([
            (128.0 + a).clamp(0.0, 255.0) as u8,
            (128.0 + b).clamp(0.0, 255.0) as u8,
            (128.0 - a * 0.5).clamp(0.0, 255.0) as u8,
        ])
    })
}

pub fn encode(img: RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(img)
        .write_to(&mut out, format)
        .unwrap();
    out.into_inner()
}
