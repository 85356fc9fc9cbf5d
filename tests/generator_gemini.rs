//! `GeminiImages` against a local server speaking `generateContent`: the request shape
//! (header, parts and their order, base64 bytes, generationConfig) and every outcome.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use iat2i::generator::{GenerationRequest, Generator, ImageError, ImageSize, RefusalKind};
use iat2i::prelude::*;
use wiremock::matchers::{header as has_header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const GENERATE: &str = "/v1beta/models/gemini-2.5-flash-image:generateContent";

async fn answer(server: &MockServer, status: u16, fixture: &str) {
    Mock::given(method("POST"))
        .and(path(GENERATE))
        .respond_with(ResponseTemplate::new(status).set_body_json(gen_json(fixture)))
        .mount(server)
        .await;
}

async fn sent(server: &MockServer) -> Vec<serde_json::Value> {
    requests_to(server, GENERATE)
        .await
        .iter()
        .map(json_body)
        .collect()
}

#[tokio::test]
async fn references_go_first_as_inline_data_then_the_text_with_the_key_header() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(GENERATE))
        .and(has_header("x-goog-api-key", KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(gen_json("gemini_image.json")))
        .mount(&server)
        .await;
    let edit = iat2i::InputImage::sniff(gen_bytes("teal.png"));
    let mut request = GenerationRequest::new("The Graphorn grazing at dusk")
        .with_references(vec![png_ref("orange.png", "a Graphorn")])
        .with_edit_image(edit.clone());
    request.size = Some(ImageSize::parse("16:9@2K").unwrap());
    request.seed = Some(1234);
    request.options.insert(
        "safetySettings".into(),
        serde_json::json!([{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}]),
    );
    request
        .options
        .insert("temperature".into(), serde_json::json!(0.4));
    let out = gemini_client(&server).generate(&request).await.unwrap();

    assert_eq!(out.images.len(), 1);
    assert_eq!(out.images[0].bytes, gen_bytes("orange.png"));
    assert_eq!(out.images[0].mime, "image/png");
    assert_eq!(
        out.text.as_deref(),
        Some("Here is the Graphorn grazing at dusk.")
    );
    assert_eq!(out.usage.input_tokens, 1301);
    assert_eq!(out.usage.output_tokens, 1290);
    assert_eq!(out.usage.total_tokens, 2591);
    assert_eq!(out.usage.input_tokens_details.unwrap().image_tokens, 1290);
    assert_eq!((out.usage.images, out.usage.calls), (1, 1));

    let body = &sent(&server).await[0];
    let parts = body["contents"][0]["parts"].as_array().unwrap();
    assert_eq!(body["contents"][0]["role"], "user");
    assert_eq!(parts.len(), 3, "edit image, reference, text");
    assert_eq!(parts[0]["inlineData"]["mimeType"], "image/png");
    assert_eq!(
        unbase64(parts[0]["inlineData"]["data"].as_str().unwrap()),
        edit.bytes.to_vec()
    );
    assert_eq!(
        unbase64(parts[1]["inlineData"]["data"].as_str().unwrap()),
        gen_bytes("orange.png").to_vec()
    );
    let text = parts[2]["text"].as_str().unwrap();
    assert!(text.starts_with("The Graphorn grazing at dusk"), "{text}");
    assert!(text.contains("Image 1 is the image to edit"), "{text}");
    assert!(
        text.contains("Reference image 2 shows a Graphorn"),
        "{text}"
    );
    let config = &body["generationConfig"];
    assert_eq!(
        config["responseModalities"],
        serde_json::json!(["TEXT", "IMAGE"])
    );
    assert_eq!(config["imageConfig"]["aspectRatio"], "16:9");
    assert_eq!(config["imageConfig"]["imageSize"], "2K");
    assert_eq!(config["seed"], 1234);
    assert_eq!(config["temperature"], 0.4);
    assert_eq!(body["safetySettings"][0]["threshold"], "BLOCK_ONLY_HIGH");
}

#[tokio::test]
async fn the_snake_case_spelling_is_read_too() {
    let server = MockServer::start().await;
    answer(&server, 200, "gemini_image_snake.json").await;
    let out = gemini_client(&server)
        .generate(&GenerationRequest::new("a teal square"))
        .await
        .unwrap();
    assert_eq!(out.images[0].bytes, gen_bytes("teal.png"));
    assert_eq!(out.text, None);
}

#[tokio::test]
async fn every_refusal_is_typed_carries_the_reason_and_is_not_retried() {
    let cases = [
        (
            "gemini_prompt_blocked.json",
            RefusalKind::PromptBlocked,
            "PROHIBITED_CONTENT",
        ),
        (
            "gemini_image_safety.json",
            RefusalKind::Safety,
            "IMAGE_SAFETY",
        ),
        (
            "gemini_image_prohibited.json",
            RefusalKind::Prohibited,
            "IMAGE_PROHIBITED_CONTENT",
        ),
        (
            "gemini_image_recitation.json",
            RefusalKind::Recitation,
            "IMAGE_RECITATION",
        ),
        ("gemini_no_image.json", RefusalKind::NoImage, "NO_IMAGE"),
        ("gemini_safety.json", RefusalKind::Safety, "SAFETY"),
        ("gemini_text_only.json", RefusalKind::TextOnly, "STOP"),
    ];
    for (fixture, want_kind, want_reason) in cases {
        let server = MockServer::start().await;
        answer(&server, 200, fixture).await;
        let err = gemini_client(&server)
            .generate(&GenerationRequest::new("p"))
            .await
            .unwrap_err();
        assert!(err.is_refusal(), "{fixture}: {err:?}");
        let ImageError::Refused {
            kind, reason, text, ..
        } = &err
        else {
            unreachable!()
        };
        assert_eq!(
            (*kind, reason.as_str()),
            (want_kind, want_reason),
            "{fixture}"
        );
        if fixture == "gemini_text_only.json" {
            assert!(text.as_deref().unwrap().contains("describe a Graphorn"));
        }
        if fixture == "gemini_image_safety.json" {
            assert!(text.as_deref().unwrap().contains("Prohibited Use policy"));
        }
        assert_eq!(sent(&server).await.len(), 1, "{fixture} was retried");
    }
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_http_errors_without_the_key() {
    for status in [429, 500, 503] {
        let server = MockServer::start().await;
        answer(&server, status, "gemini_error_429.json").await;
        let g = gemini_client(&server);
        assert!(!format!("{g:?}").contains(KEY));
        let err = g.generate(&GenerationRequest::new("p")).await.unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(matches!(err, ImageError::Http { .. }), "{shown}");
        assert!(
            shown.contains(&status.to_string()) && !shown.contains(KEY),
            "{shown}"
        );
    }
}

#[tokio::test]
async fn a_malformed_body_and_a_hanging_server_are_clear_errors() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(GENERATE))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>proxy error</html>"))
        .mount(&server)
        .await;
    let err = gemini_client(&server)
        .generate(&GenerationRequest::new("p"))
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::NoImage { .. }), "{err:?}");

    let slow = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(GENERATE))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(gen_json("gemini_image.json"))
                .set_delay(Duration::from_secs(30)),
        )
        .mount(&slow)
        .await;
    let g =
        iat2i::GeminiImages::new(impatient_http(), &slow.uri(), "gemini-2.5-flash-image").unwrap();
    let err = g.generate(&GenerationRequest::new("p")).await.unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[tokio::test]
async fn references_beyond_the_models_limit_are_dropped_with_a_note() {
    let server = MockServer::start().await;
    answer(&server, 200, "gemini_image.json").await;
    let refs = (0..5)
        .map(|i| png_ref("orange.png", &format!("r{i}")))
        .collect();
    let out = gemini_client(&server)
        .generate(&GenerationRequest::new("p").with_references(refs))
        .await
        .unwrap();
    let parts = sent(&server).await[0]["contents"][0]["parts"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        parts, 4,
        "3 images (gemini-2.5-flash-image's limit) and the text"
    );
    assert!(out.notes[0].contains("2 of 5"), "{:?}", out.notes);
}

#[tokio::test]
async fn n_images_make_n_calls_and_sum_their_usage() {
    let server = MockServer::start().await;
    answer(&server, 200, "gemini_image.json").await;
    let mut request = GenerationRequest::new("p");
    request.n = 2;
    let out = gemini_client(&server).generate(&request).await.unwrap();
    assert_eq!(out.images.len(), 2);
    assert_eq!(out.usage.total_tokens, 2 * 2591);
    assert_eq!((out.usage.images, out.usage.calls), (2, 2));
}

/// Gemini as the chat model (gate, judges) through its OpenAI-compatible endpoint.
#[tokio::test]
async fn gemini_serves_as_the_chat_model_through_its_openai_endpoint() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1beta/openai/chat/completions"))
        .and(has_header(
            "authorization",
            format!("Bearer {KEY}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(gen_json("gemini_chat_openai.json")))
        .mount(&server)
        .await;
    let chat = OpenAiChat::new(
        test_http(),
        &format!("{}/v1beta/openai/", server.uri()),
        "gemini-2.5-flash",
    )
    .unwrap()
    .with_api_key(Secret::new(KEY));
    let gate = LmmGate::new(Arc::new(chat));
    let reply = gate.assess("A red apple on a table", false).await.unwrap();
    assert!(!reply.value.needs_reference);
    assert_eq!(reply.usage.total_tokens, 440);
    let body = json_body(&requests_to(&server, "/v1beta/openai/chat/completions").await[0]);
    assert_eq!(body["model"], "gemini-2.5-flash");
}
