//! Fixtures and clients for the Gemini, chat-images and ComfyUI generator tests.

use bytes::Bytes;
use iat2i::generator::{ChatImages, GeminiImages, InputImage, ReferenceImage};
use iat2i::prelude::*;
use serde_json::Value;
use wiremock::MockServer;

use super::{KEY, test_http};

pub fn gen_fixture_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/generators")
        .join(name)
}

pub fn gen_bytes(name: &str) -> Bytes {
    Bytes::from(std::fs::read(gen_fixture_path(name)).unwrap())
}

pub fn gen_json(name: &str) -> Value {
    serde_json::from_slice(&gen_bytes(name)).unwrap()
}

/// A fixture's JSON text with `__KEY__` placeholders replaced.
pub fn gen_json_with(name: &str, replace: &[(&str, &str)]) -> Value {
    let mut text = String::from_utf8(gen_bytes(name).to_vec()).unwrap();
    for (from, to) in replace {
        text = text.replace(from, to);
    }
    serde_json::from_str(&text).unwrap()
}

pub fn gemini_client(server: &MockServer) -> GeminiImages {
    GeminiImages::new(test_http(), &server.uri(), "gemini-2.5-flash-image")
        .unwrap()
        .with_api_key(Secret::new(KEY))
}

pub fn chat_images_client(server: &MockServer) -> ChatImages {
    ChatImages::new(
        test_http(),
        &format!("{}/api/v1", server.uri()),
        "google/gemini-2.5-flash-image",
    )
    .unwrap()
    .with_api_key(Secret::new(KEY))
}

pub fn png_ref(name: &str, label: &str) -> ReferenceImage {
    ReferenceImage::subject(InputImage::sniff(gen_bytes(name)), label)
}

/// Decoded base64.
pub fn unbase64(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}
