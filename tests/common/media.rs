//! Test pictures and the ONNX Runtime check shared by the tests that need them.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

/// True when the tests run in CI (`CI=true`), where a test that cannot run fails.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// A test cannot run because `why`: print that it skipped, or fail under `CI=true` (a green
/// CI must mean the CLIP path ran).
pub fn skip_or_fail(why: &str) {
    if in_ci() {
        panic!("CI=true, so this test must run, but {why}");
    }
    eprintln!("skipped: {why}");
}

/// True when ONNX Runtime is found (as the selector looks for it); prints why the test is
/// skipped otherwise, and fails under `CI=true`.
pub fn ort_available() -> bool {
    match iat2i::selectors::find_onnx_runtime() {
        Ok(_) => true,
        Err(e) => {
            skip_or_fail(&format!("{e} (run `make test`)"));
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

/// Headless Chromium (Debian's `chromium` package), when installed.
pub fn chromium() -> Option<std::path::PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(name))
                    .find(|p| p.is_file())
            })
        })
}
