//! `GeminiImages` against a local server speaking `generateContent`: the request shape
//! (header, parts and their order, base64 bytes, generationConfig) and every outcome.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use iat2i::ErrorClass;
use iat2i::generator::{
    GenerationRequest, Generator, ImageError, ImageSize, RefusalKind, SignedPart, ThoughtSignature,
};
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

const GEMINI3: &str = "/v1beta/models/gemini-3-pro-image-preview:generateContent";

/// `test_http`, but a server's wait over one second fails at once (so a 37 s
/// `retryDelay` is handed to the caller instead of being waited for in a test).
fn quick_http() -> iat2i_retrievers::HttpClient {
    iat2i_retrievers::HttpClient::builder()
        .total_timeout(Duration::from_secs(5))
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
        .max_retries(2)
        .max_retry_after(Duration::from_secs(1))
        .per_host_per_second(0)
        .build()
        .unwrap()
}

async fn failure(status: u16, fixture: &str) -> (MockServer, ImageError) {
    let server = MockServer::start().await;
    answer(&server, status, fixture).await;
    let g = iat2i::GeminiImages::new(quick_http(), &server.uri(), "gemini-2.5-flash-image")
        .unwrap()
        .with_api_key(Secret::new(KEY));
    let err = g.generate(&GenerationRequest::new("p")).await.unwrap_err();
    (server, err)
}

#[tokio::test]
async fn thought_images_are_never_the_result_and_signatures_stay_with_the_image() {
    let server = MockServer::start().await;
    let fixture = gen_json("gemini3_pro_thinking.json");
    Mock::given(method("POST"))
        .and(path(GEMINI3))
        .respond_with(ResponseTemplate::new(200).set_body_json(&fixture))
        .mount(&server)
        .await;
    let g = iat2i::GeminiImages::new(test_http(), &server.uri(), "gemini-3-pro-image-preview")
        .unwrap()
        .with_api_key(Secret::new(KEY));
    let out = g.generate(&GenerationRequest::new("p")).await.unwrap();

    // Two interim (thought) images of teal come first; the final image is orange.
    assert_eq!(out.images.len(), 1, "thought images were returned");
    assert_eq!(out.images[0].bytes, gen_bytes("orange.png"));
    assert_eq!(out.text.as_deref(), Some("Here is the Graphorn at dusk."));
    let parts = &fixture["candidates"][0]["content"]["parts"];
    let signature = |i: usize| parts[i]["thoughtSignature"].as_str().unwrap().to_string();
    assert_eq!(
        out.images[0].thought_signatures,
        vec![
            ThoughtSignature {
                part: SignedPart::Text,
                signature: signature(3)
            },
            ThoughtSignature {
                part: SignedPart::Image,
                signature: signature(4)
            },
        ]
    );
    let u = out.usage;
    assert_eq!((u.input_tokens, u.output_tokens), (14, 1127));
    assert_eq!(u.thinking_tokens, 278, "thinking is reported apart");
    assert_eq!(u.total_tokens, 1419);
    let details = u.output_tokens_details.unwrap();
    assert_eq!((details.image_tokens, details.text_tokens), (1120, 7));
    assert_eq!(u.billed_output_tokens(), 1127 + 278);
}

#[tokio::test]
async fn a_refusal_keeps_what_it_cost_and_a_safety_block_names_its_categories() {
    let server = MockServer::start().await;
    answer(&server, 200, "gemini_prompt_blocked_safety.json").await;
    let err = gemini_client(&server)
        .generate(&GenerationRequest::new("p"))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Safety);
    let shown = err.to_string();
    assert!(shown.contains("HARM_CATEGORY_DANGEROUS_CONTENT"), "{shown}");
    assert!(!shown.contains("HARM_CATEGORY_HATE_SPEECH"), "{shown}");
    assert!(
        !shown.contains("HARM_CATEGORY_HARASSMENT"),
        "LOW is not a cause: {shown}"
    );
    let spent = err.usage().expect("a blocked prompt still bills its input");
    assert_eq!(
        (spent.input_tokens, spent.total_tokens, spent.calls),
        (18, 18, 1)
    );

    let server = MockServer::start().await;
    answer(&server, 200, "gemini_image_safety.json").await;
    let err = gemini_client(&server)
        .generate(&GenerationRequest::new("p"))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Safety);
    assert_eq!(err.usage().map(|u| u.input_tokens), Some(1301));
}

/// Adds up the image input tokens the guard is told about.
#[derive(Default)]
struct InputTally(std::sync::Mutex<u64>);

#[async_trait::async_trait]
impl iat2i::RunGuard for InputTally {
    async fn before_call(&self, _: iat2i::PlannedCall) -> Result<(), iat2i::Halt> {
        Ok(())
    }
    async fn after_call(&self, _: iat2i::PaidCall, usage: &iat2i::guard::CallUsage) {
        *self.0.lock().unwrap() += usage.image.input_tokens;
    }
}

#[tokio::test]
async fn a_refused_generation_is_counted_against_the_budget() {
    let server = MockServer::start().await;
    answer(&server, 200, "gemini_image_safety.json").await;
    let pipeline = pipeline(
        &server,
        StubSearch::default(),
        StubSelector::default(),
        GateMode::Never,
        1,
    )
    .generator(Arc::new(gemini_client(&server)))
    .build()
    .unwrap();
    let tally = Arc::new(InputTally::default());
    let options = iat2i::pipeline::RunOptions::default().with_guard(tally.clone());
    let err = pipeline
        .run_with(Request::new("p"), options)
        .await
        .unwrap_err();
    assert_eq!(err.class(), Some(ErrorClass::Safety));
    assert_eq!(*tally.0.lock().unwrap(), 1301);
}

#[tokio::test]
async fn provider_error_bodies_decide_the_failure_class() {
    let cases = [
        (400, "gemini_error_api_key_invalid.json", ErrorClass::Auth),
        (
            429,
            "gemini_error_429_free_tier_zero.json",
            ErrorClass::Quota,
        ),
        (429, "gemini_error_429_credits.json", ErrorClass::Quota),
        (503, "gemini_error_503.json", ErrorClass::Unavailable),
        (500, "gemini_error_503.json", ErrorClass::Unavailable),
    ];
    for (status, fixture, want) in cases {
        let (server, err) = failure(status, fixture).await;
        assert_eq!(err.class(), want, "{status} {fixture}: {err}");
        if status >= 500 {
            // A paid call is not repeated by the client; the batch retries the job.
            assert_eq!(sent(&server).await.len(), 1, "{fixture}");
            assert!(err.class().is_transient(), "{fixture}");
        }
        if want == ErrorClass::Quota || want == ErrorClass::Auth {
            assert!(err.class().is_fatal(), "{fixture}");
        }
    }
}

#[tokio::test]
async fn a_rate_limit_says_how_long_to_wait() {
    let (server, err) = failure(429, "gemini_error_429_rate.json").await;
    assert_eq!(err.class(), ErrorClass::RateLimited, "{err}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(37)));
    assert_eq!(
        sent(&server).await.len(),
        1,
        "a wait over the cap is the caller's"
    );

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(GENERATE))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "12")
                .set_body_json(gen_json("gemini_error_429.json")),
        )
        .mount(&server)
        .await;
    let g =
        iat2i::GeminiImages::new(quick_http(), &server.uri(), "gemini-2.5-flash-image").unwrap();
    let err = g.generate(&GenerationRequest::new("p")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::RateLimited, "{err}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(12)));
}

#[tokio::test]
async fn the_key_never_shows_in_an_error_however_deeply_wrapped() {
    // A 500 that echoes the key: a paid call is not retried, so the status is wrapped.
    let server = MockServer::start().await;
    let echo = serde_json::json!({"error": {"code": 500,
        "message": format!("Internal error encountered (x-goog-api-key: {KEY})"),
        "status": "INTERNAL"}});
    Mock::given(method("POST"))
        .and(path(GENERATE))
        .respond_with(ResponseTemplate::new(500).set_body_json(echo))
        .mount(&server)
        .await;
    let err = gemini_client(&server)
        .generate(&GenerationRequest::new("p"))
        .await
        .unwrap_err();
    let ImageError::Http { source, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(source.was_not_retried(), "{source:?}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(KEY) && shown.contains("***"), "{shown}");

    // A key in the base URL (Gemini's `?key=`) is sent, and never shown.
    const URL_KEY: &str = "AIzaSyD-url-key-0042";
    let server = MockServer::start().await;
    let echo = serde_json::json!({"error": {"code": 400,
        "message": format!("Invalid value for key {URL_KEY}"), "status": "INVALID_ARGUMENT"}});
    Mock::given(method("POST"))
        .and(path(GENERATE))
        .and(wiremock::matchers::query_param("key", URL_KEY))
        .respond_with(ResponseTemplate::new(400).set_body_json(echo))
        .mount(&server)
        .await;
    let base = format!("{}/?key={URL_KEY}", server.uri());
    let g = iat2i::GeminiImages::new(quick_http(), &base, "gemini-2.5-flash-image").unwrap();
    let err = g.generate(&GenerationRequest::new("p")).await.unwrap_err();
    assert_eq!(sent(&server).await.len(), 1, "the key went in the query");
    assert_eq!(err.class(), ErrorClass::InvalidRequest, "{err}");
    let shown = format!("{err} {err:?} {g:?}");
    assert!(!shown.contains(URL_KEY), "{shown}");
}
