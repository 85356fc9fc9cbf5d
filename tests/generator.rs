//! The OpenAI Images client against wiremock: request shapes and response handling.

mod common;

use bytes::Bytes;
use common::*;
use iat2i::generator::{
    GenerationRequest, Generator, ImageError, ImageSize, InputImage, OpenAiImages, ReferenceImage,
};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A request with a prompt and nothing else.
fn text_only(prompt: &str) -> GenerationRequest {
    GenerationRequest::new(prompt)
}

fn reference(name: &str, label: &str) -> ReferenceImage {
    ReferenceImage::subject(
        InputImage {
            bytes: fixture_bytes(name),
            mime: "image/png".into(),
        },
        label,
    )
}

#[tokio::test]
async fn without_references_it_posts_json_to_generations_without_response_format() {
    let server = MockServer::start().await;
    mount_images(&server, "generations", &["images_red.json"]).await;
    let out = images_client(&server)
        .generate(&text_only("a red apple"))
        .await
        .unwrap();
    assert_eq!(out.usage, out.images[0].usage);
    assert_eq!(out.prompt_sent, "a red apple");
    let img = &out.images[0];
    assert_eq!(img.mime, "image/png");
    assert_image_is(img, "images_red.json");
    assert_eq!(img.usage.input_tokens, 50);
    assert_eq!(img.usage.output_tokens, 4160);
    assert_eq!(img.usage.total_tokens, 4210);
    assert_eq!(img.usage.input_tokens_details.unwrap().image_tokens, 10);
    assert_eq!(img.usage.images, 1);

    let reqs = requests_to(&server, "/v1/images/generations").await;
    assert_eq!(reqs.len(), 1);
    assert_sent_key(&reqs[0]);
    let body = json_body(&reqs[0]);
    assert_eq!(body["model"], "gpt-image-1");
    assert_eq!(body["prompt"], "a red apple");
    assert_eq!(body["n"], 1);
    assert!(
        body.get("response_format").is_none(),
        "gpt-image-1 rejects response_format"
    );
}

#[tokio::test]
async fn with_references_it_posts_multipart_to_edits_user_image_first() {
    let server = MockServer::start().await;
    mount_images(&server, "edits", &["images_green.json"]).await;
    let input = fixture_bytes("input.png");
    let out = images_client(&server)
        .with_quality(Some("high".into()))
        .generate(
            &GenerationRequest::new("Add a Graphorn")
                .with_references(vec![
                    reference("reference_a.png", "a Graphorn"),
                    reference("reference_b.png", "a Graphorn"),
                ])
                .with_edit_image(InputImage::sniff(input.clone())),
        )
        .await
        .unwrap();
    assert_image_is(&out.images[0], "images_green.json");
    assert_eq!(out.usage.input_tokens, 180);
    assert!(out.prompt_sent.contains("Image 1 is the image to edit"));

    let reqs = requests_to(&server, "/v1/images/edits").await;
    assert_eq!(reqs.len(), 1);
    let ct = header(&reqs[0], "content-type");
    assert!(ct.starts_with("multipart/form-data"), "{ct}");
    let form = Form::parse(&reqs[0]);
    let names = form.names();
    for n in ["model", "prompt", "n", "size", "quality"] {
        assert!(form.has(n), "{n} missing from {names:?}");
    }
    assert!(!form.has("response_format"));
    assert_eq!(form.text("model"), "gpt-image-1");
    assert_eq!(form.text("quality"), "high");
    let prompt = form.text("prompt");
    assert!(prompt.contains("Reference image 2 shows a Graphorn"));
    assert!(prompt.contains("Reference image 3 shows a Graphorn"));
    // The user's image first, then the references in order, each sent as a PNG.
    let (a, b) = (
        fixture_bytes("reference_a.png"),
        fixture_bytes("reference_b.png"),
    );
    assert_eq!(
        form.image_bytes(),
        [&input[..], &a[..], &b[..]],
        "{names:?}"
    );
    for part in form.images() {
        assert_eq!(part.content_type.as_deref(), Some("image/png"));
    }
}

#[tokio::test]
async fn at_most_sixteen_images_are_sent() {
    let server = MockServer::start().await;
    mount_images(&server, "edits", &["images_green.json"]).await;
    let refs: Vec<ReferenceImage> = (0..20).map(|_| reference("reference_a.png", "x")).collect();
    let out = images_client(&server)
        .generate(&GenerationRequest::new("p").with_references(refs))
        .await
        .unwrap();
    let form = Form::parse(&requests_to(&server, "/v1/images/edits").await[0]);
    assert_eq!(form.images().len(), 16);
    assert!(
        out.notes[0].contains("4 of 20 reference images not sent"),
        "{:?}",
        out.notes
    );
}

#[tokio::test]
async fn dalle_style_servers_get_response_format_and_url_answers_are_fetched() {
    let server = MockServer::start().await;
    let png = fixture_bytes("reference_b.png");
    Mock::given(method("GET"))
        .and(path("/files/out.png"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_bytes(png.to_vec())
                .insert_header("content-type", "image/png"),
        )
        .mount(&server)
        .await;
    let answer = serde_json::json!({
        "created": 1713833628,
        "data": [{"url": format!("{}/files/out.png", server.uri()), "revised_prompt": "a cat, photo"}]
    });
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .mount(&server)
        .await;
    let generator = OpenAiImages::new(test_http(), &base(&server), "dall-e-3").unwrap();
    let out = generator.generate(&text_only("a cat")).await.unwrap();
    let img = &out.images[0];
    assert_eq!(img.bytes, Bytes::from(png.to_vec()));
    assert_eq!(img.revised_prompt.as_deref(), Some("a cat, photo"));
    let sent = &requests_to(&server, "/v1/images/generations").await[0];
    assert_eq!(json_body(sent)["response_format"], "b64_json");
    assert!(sent.headers.get("authorization").is_none());
}

#[tokio::test]
async fn an_error_answer_is_reported_without_the_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(fixture_json("images_error_401.json")),
        )
        .mount(&server)
        .await;
    let generator = images_client(&server);
    assert!(!format!("{generator:?}").contains(KEY));
    let err = generator.generate(&text_only("p")).await.unwrap_err();
    assert!(matches!(err, ImageError::Http { .. }), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("401") && !shown.contains(KEY), "{shown}");
    // 401 is not retried.
    assert_eq!(
        requests_to(&server, "/v1/images/generations").await.len(),
        1
    );
}

#[tokio::test]
async fn an_answer_without_an_image_is_a_clear_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"created": 1, "data": []})),
        )
        .mount(&server)
        .await;
    let err = images_client(&server)
        .generate(&text_only("p"))
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::NoImage { .. }), "{err:?}");
}

#[tokio::test]
async fn n_size_negative_prompt_and_options_reach_the_request() {
    let server = MockServer::start().await;
    let two = serde_json::json!({
        "created": 1713833628,
        "data": [fixture_json("images_red.json")["data"][0], fixture_json("images_blue.json")["data"][0]],
        "usage": fixture_json("images_red.json")["usage"]
    });
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .respond_with(ResponseTemplate::new(200).set_body_json(two))
        .mount(&server)
        .await;
    let mut request = text_only("a red apple");
    request.n = 2;
    request.size = Some(ImageSize::parse("16:9").unwrap());
    request.seed = Some(7);
    request.negative_prompt = Some("text".into());
    request
        .options
        .insert("background".into(), serde_json::json!("transparent"));
    let out = images_client(&server).generate(&request).await.unwrap();
    assert_eq!(out.images.len(), 2);
    assert_eq!(out.usage.images, 2);
    assert_image_is(&out.images[1], "images_blue.json");
    assert!(
        out.notes.iter().any(|n| n.contains("seed")),
        "{:?}",
        out.notes
    );
    let body = json_body(&requests_to(&server, "/v1/images/generations").await[0]);
    assert_eq!(body["n"], 2);
    assert_eq!(body["size"], "1536x1024");
    assert_eq!(body["background"], "transparent");
    assert!(body["prompt"].as_str().unwrap().ends_with("Avoid: text"));
    assert!(body.get("seed").is_none());
}

#[tokio::test]
async fn a_502_after_the_image_was_made_is_not_paid_for_twice() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>502 Bad Gateway</html>"))
        .mount(&server)
        .await;
    let err = images_client(&server)
        .generate(&text_only("p"))
        .await
        .unwrap_err();
    match &err {
        ImageError::Http { source, .. } => assert!(source.was_not_retried(), "{source:?}"),
        other => panic!("expected Http, got {other:?}"),
    }
    assert!(err.to_string().contains("not retried"), "{err}");
    assert_eq!(
        requests_to(&server, "/v1/images/generations").await.len(),
        1,
        "a paid generation is sent once"
    );
}

#[tokio::test]
async fn a_rate_limited_edit_is_retried_because_it_was_not_processed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/images/edits"))
        .respond_with(Sequence::new(vec![
            ResponseTemplate::new(429)
                .insert_header("retry-after", "0")
                .set_body_json(
                    serde_json::json!({"error": {"message": "Rate limit reached",
                    "type": "requests", "code": "rate_limit_exceeded"}}),
                ),
            ResponseTemplate::new(200).set_body_json(fixture_json("images_green.json")),
        ]))
        .mount(&server)
        .await;
    let img = images_client(&server)
        .generate(
            &GenerationRequest::new("p")
                .with_references(vec![reference("reference_a.png", "a Graphorn")]),
        )
        .await
        .unwrap();
    assert_image_is(&img.images[0], "images_green.json");
    assert_eq!(requests_to(&server, "/v1/images/edits").await.len(), 2);
}

#[tokio::test]
async fn null_and_float_usage_fields_do_not_lose_the_paid_image() {
    let server = MockServer::start().await;
    let mut body = fixture_json("images_red.json");
    body["usage"] = serde_json::json!({
        "total_tokens": 4210.0,
        "input_tokens": null,
        "output_tokens": 4160,
        "input_tokens_details": {"text_tokens": null, "image_tokens": 10.0}
    });
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&server)
        .await;
    let img = images_client(&server)
        .generate(&text_only("a red apple"))
        .await
        .unwrap();
    assert_image_is(&img.images[0], "images_red.json");
    assert_eq!(img.usage.input_tokens, 0);
    assert_eq!(img.usage.output_tokens, 4160);
    assert_eq!(img.usage.total_tokens, 4210);
    assert_eq!(img.usage.input_tokens_details.unwrap().image_tokens, 10);
    assert_eq!(img.usage.images, 1);
}
