//! Helpers shared by the integration tests: test images in many formats, broken bodies,
//! the tiny CLIP model, skips.
#![allow(dead_code)]

use std::io::Cursor;
use std::path::PathBuf;

use iat2i_retrievers::{Candidate, HttpClient};
use image::codecs::gif::{GifEncoder, Repeat};
use image::{DynamicImage, Frame, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use url::Url;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

pub fn tiny_model() -> PathBuf {
    fixtures().join("models/tiny-clip")
}

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

/// The real CLIP tokenizer files, when ../shared is present.
pub fn shared_tokenizer() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/models/clip-vit-b32-tokenizer");
    if dir.join("tokenizer.json").is_file() {
        Some(dir)
    } else {
        skip_or_fail(&format!(
            "the real CLIP tokenizer is not at {} (../shared is absent)",
            dir.display()
        ));
        None
    }
}

/// True when ONNX Runtime is found (as the embedder looks for it); prints why the test is
/// skipped otherwise, and fails under `CI=true`.
pub fn ort_available() -> bool {
    match iat2i_selectors::find_onnx_runtime() {
        Ok(_) => true,
        Err(e) => {
            skip_or_fail(&format!("{e} (run `make test`)"));
            false
        }
    }
}

pub fn http() -> HttpClient {
    HttpClient::builder()
        .allow_host("127.0.0.1")
        .max_retries(0)
        .build()
        .unwrap()
}

pub fn candidate(url: &str, query: &str) -> Candidate {
    Candidate::new(Url::parse(url).unwrap(), "test", query)
}

/// A smooth, seeded pattern: different seeds give clearly different pictures and hashes.
pub fn scene(seed: u32, w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
        let s = seed as f32;
        let a = ((fx * (2.0 + s)).sin() * (fy * (1.0 + 0.7 * s)).cos()) * 110.0;
        let b = ((fx + fy) * (1.5 + 0.9 * s)).cos() * 90.0;
        Rgb([
            (128.0 + a).clamp(0.0, 255.0) as u8,
            (128.0 + b).clamp(0.0, 255.0) as u8,
            (128.0 - a * 0.5 + (seed * 37 % 60) as f32).clamp(0.0, 255.0) as u8,
        ])
    })
}

pub fn solid(w: u32, h: u32, rgb: [u8; 3]) -> RgbImage {
    RgbImage::from_pixel(w, h, Rgb(rgb))
}

pub fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

pub fn png(img: RgbImage) -> Vec<u8> {
    encode(&DynamicImage::ImageRgb8(img), ImageFormat::Png)
}

pub fn jpeg(img: RgbImage) -> Vec<u8> {
    encode(&DynamicImage::ImageRgb8(img), ImageFormat::Jpeg)
}

pub fn webp(img: RgbImage) -> Vec<u8> {
    encode(&DynamicImage::ImageRgb8(img), ImageFormat::WebP)
}

pub fn bmp(img: RgbImage) -> Vec<u8> {
    encode(&DynamicImage::ImageRgb8(img), ImageFormat::Bmp)
}

pub fn grey_png(seed: u32, w: u32, h: u32) -> Vec<u8> {
    let grey = DynamicImage::ImageRgb8(scene(seed, w, h)).to_luma8();
    encode(&DynamicImage::ImageLuma8(grey), ImageFormat::Png)
}

/// RGBA PNG: the `seed` scene in the middle, fully transparent around it.
pub fn alpha_png(seed: u32, w: u32, h: u32) -> Vec<u8> {
    let base = scene(seed, w, h);
    let img = RgbaImage::from_fn(w, h, |x, y| {
        let inside = x > w / 4 && x < 3 * w / 4 && y > h / 4 && y < 3 * h / 4;
        let p = base.get_pixel(x, y).0;
        Rgba([p[0], p[1], p[2], if inside { 255 } else { 0 }])
    });
    encode(&DynamicImage::ImageRgba8(img), ImageFormat::Png)
}

/// An animated GIF: the first frame is `first`, the second a solid colour.
pub fn animated_gif(first: RgbImage) -> Vec<u8> {
    let (w, h) = first.dimensions();
    let frames = vec![
        Frame::new(DynamicImage::ImageRgb8(first).to_rgba8()),
        Frame::new(DynamicImage::ImageRgb8(solid(w, h, [0, 0, 0])).to_rgba8()),
    ];
    let mut out = Vec::new();
    {
        let mut enc = GifEncoder::new(&mut out);
        enc.set_repeat(Repeat::Infinite).unwrap();
        enc.encode_frames(frames).unwrap();
    }
    out
}

/// A few-hundred-byte PNG whose header claims 50000x50000 pixels.
pub fn png_bomb() -> Vec<u8> {
    let mut bytes = png(solid(1, 1, [255, 0, 0]));
    // IHDR data starts after the 8-byte signature, 4-byte length and 4-byte type.
    bytes[16..20].copy_from_slice(&50_000u32.to_be_bytes());
    bytes[20..24].copy_from_slice(&50_000u32.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join("selectors").join(name)).unwrap()
}
pub mod qdrant;
