//! `ChatImages` against a local server speaking OpenRouter's chat completions with
//! image output: the request shape and every outcome.

mod common;

use std::time::Duration;

use common::*;
use iat2i::generator::{GenerationRequest, Generator, ImageError, ImageSize, RefusalKind};
use wiremock::matchers::{header as has_header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CHAT: &str = "/api/v1/chat/completions";

async fn answer(server: &MockServer, status: u16, fixture: &str) {
    Mock::given(method("POST"))
        .and(path(CHAT))
        .respond_with(ResponseTemplate::new(status).set_body_json(gen_json(fixture)))
        .mount(server)
        .await;
}

#[tokio::test]
async fn modalities_text_then_image_parts_as_data_urls_and_the_image_read_back() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(CHAT))
        .and(has_header(
            "authorization",
            format!("Bearer {KEY}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(gen_json("chat_images_image.json")))
        .mount(&server)
        .await;
    let mut request = GenerationRequest::new("A Graphorn at dusk").with_references(vec![
        png_ref("orange.png", "a Graphorn"),
        png_ref("teal.png", "a Graphorn"),
    ]);
    request.size = Some(ImageSize::Pixels {
        width: 1920,
        height: 1080,
    });
    request.seed = Some(9);
    request
        .options
        .insert("provider".into(), serde_json::json!({"order": ["Google"]}));
    let out = chat_images_client(&server)
        .generate(&request)
        .await
        .unwrap();
    assert_eq!(out.images[0].bytes, gen_bytes("orange.png"));
    assert_eq!(out.text.as_deref(), Some("Here is your image."));
    assert_eq!(
        (
            out.usage.input_tokens,
            out.usage.output_tokens,
            out.usage.total_tokens
        ),
        (1310, 1299, 2609)
    );

    let body = json_body(&requests_to(&server, CHAT).await[0]);
    assert_eq!(body["model"], "google/gemini-2.5-flash-image");
    assert_eq!(body["modalities"], serde_json::json!(["image", "text"]));
    assert_eq!(body["image_config"]["aspect_ratio"], "16:9");
    assert_eq!(body["seed"], 9);
    assert_eq!(body["provider"]["order"][0], "Google");
    let content = body["messages"][0]["content"].as_array().unwrap();
    assert_eq!(content[0]["type"], "text");
    let text = content[0]["text"].as_str().unwrap();
    assert!(
        text.contains("Reference image 2 shows a Graphorn"),
        "{text}"
    );
    let urls = image_urls(&body, 0);
    assert_eq!(urls.len(), 2);
    for (url, name) in urls.iter().zip(["orange.png", "teal.png"]) {
        let data = url.strip_prefix("data:image/png;base64,").unwrap();
        assert_eq!(unbase64(data), gen_bytes(name).to_vec());
    }
}

#[tokio::test]
async fn filtered_and_text_only_answers_are_typed_refusals_not_retried() {
    for (fixture, kind, reason) in [
        (
            "chat_images_filtered.json",
            RefusalKind::Safety,
            "IMAGE_SAFETY",
        ),
        ("chat_images_text_only.json", RefusalKind::TextOnly, "STOP"),
    ] {
        let server = MockServer::start().await;
        answer(&server, 200, fixture).await;
        let err = chat_images_client(&server)
            .generate(&GenerationRequest::new("p"))
            .await
            .unwrap_err();
        let ImageError::Refused {
            kind: k,
            reason: r,
            text,
            ..
        } = &err
        else {
            panic!("{fixture}: {err:?}")
        };
        assert_eq!((*k, r.as_str()), (kind, reason), "{fixture}");
        // A refused call still billed its input: the server's usage stays on the error.
        let spent = err
            .usage()
            .unwrap_or_else(|| panic!("{fixture}: usage dropped"));
        assert_eq!(spent.input_tokens, 1310, "{fixture}");
        assert_eq!(spent.calls, 1, "{fixture}");
        assert_eq!(err.class(), iat2i::ErrorClass::Safety, "{fixture}");
        if fixture == "chat_images_text_only.json" {
            assert_eq!(
                text.as_deref(),
                Some("I'm not able to create images of that.")
            );
        }
        assert_eq!(requests_to(&server, CHAT).await.len(), 1);
    }
}

#[tokio::test]
async fn an_error_object_in_a_200_is_an_api_error() {
    let server = MockServer::start().await;
    answer(&server, 200, "chat_images_error_in_200.json").await;
    let err = chat_images_client(&server)
        .generate(&GenerationRequest::new("p"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ImageError::Api { message, .. } if message.contains("Provider returned error")),
        "{err:?}"
    );
}

#[tokio::test]
async fn rate_limits_server_errors_malformed_bodies_and_timeouts_are_clear() {
    for status in [429, 502] {
        let server = MockServer::start().await;
        answer(&server, status, "chat_images_error_in_200.json").await;
        let err = chat_images_client(&server)
            .generate(&GenerationRequest::new("p"))
            .await
            .unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(matches!(err, ImageError::Http { .. }), "{shown}");
        assert!(shown.contains(&status.to_string()) && !shown.contains(KEY));
    }
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(CHAT))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"choices\": [{\"message\""))
        .mount(&server)
        .await;
    let err = chat_images_client(&server)
        .generate(&GenerationRequest::new("p"))
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::NoImage { .. }), "{err:?}");

    let slow = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(CHAT))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(gen_json("chat_images_image.json"))
                .set_delay(Duration::from_secs(30)),
        )
        .mount(&slow)
        .await;
    let c =
        iat2i::ChatImages::new(impatient_http(), &format!("{}/api/v1", slow.uri()), "m").unwrap();
    let err = c.generate(&GenerationRequest::new("p")).await.unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[tokio::test]
async fn an_image_that_is_not_a_data_url_is_refused_as_no_image() {
    let server = MockServer::start().await;
    let mut v = gen_json("chat_images_image.json");
    v["choices"][0]["message"]["images"][0]["image_url"]["url"] =
        serde_json::json!("http://169.254.169.254/latest/meta-data");
    Mock::given(method("POST"))
        .and(path(CHAT))
        .respond_with(ResponseTemplate::new(200).set_body_json(v))
        .mount(&server)
        .await;
    let err = chat_images_client(&server)
        .generate(&GenerationRequest::new("p"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a data URL"), "{err}");
}

#[tokio::test]
async fn a_second_call_failing_keeps_the_first_paid_image_with_a_note() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(CHAT))
        .respond_with(Sequence::new(vec![
            ResponseTemplate::new(200).set_body_json(gen_json("chat_images_image.json")),
            ResponseTemplate::new(400).set_body_json(serde_json::json!({
                "error": {"message": "Provider returned error", "code": 400}
            })),
        ]))
        .mount(&server)
        .await;
    let mut request = GenerationRequest::new("A Graphorn at dusk");
    request.n = 3;
    let out = chat_images_client(&server)
        .generate(&request)
        .await
        .expect("the first image was paid for and is kept");
    assert_eq!(out.images.len(), 1);
    assert_eq!(out.images[0].bytes, gen_bytes("orange.png"));
    assert_eq!(out.usage.images, 1);
    assert!(
        out.notes
            .iter()
            .any(|n| n.contains("image call 2 of 3 failed")),
        "{:?}",
        out.notes
    );
    assert_eq!(
        requests_to(&server, CHAT).await.len(),
        2,
        "no call after the failure"
    );
}
