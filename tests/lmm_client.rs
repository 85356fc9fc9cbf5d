//! The chat client against a wiremock server speaking the chat-completions protocol.

mod common;

use std::sync::Arc;

use common::*;
use iat2i::OpenAiChat;
use iat2i::gate::{Gate, KnowledgeGap, LmmGate};
use iat2i::lmm::{ChatRequest, Lmm, LmmError, Message};
use iat2i::retrievers::{HttpClient, HttpError};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn gate(server: &MockServer, http: HttpClient) -> LmmGate {
    LmmGate::new(Arc::new(chat_client(server, http)))
}

/// The gate's error for prompt "x".
async fn assess_err(server: &MockServer) -> LmmError {
    let reply = gate(server, test_http()).assess("x", false).await;
    reply.unwrap_err()
}

/// A server whose gate answers `fixture`, and the gate's error for prompt "x".
async fn gate_error(fixture: &str) -> (MockServer, LmmError) {
    let server = MockServer::start().await;
    mount_chat(&server, "assessment", &[fixture]).await;
    let err = assess_err(&server).await;
    (server, err)
}

#[tokio::test]
async fn gate_sends_a_strict_json_schema_and_parses_the_answer() {
    let server = MockServer::start().await;
    mount_chat(&server, "assessment", &["gate_needs_reference.json"]).await;
    let reply = gate(&server, test_http())
        .with_languages(vec!["en".into(), "zh".into(), "ja".into()])
        .assess("A Graphorn at dusk", false)
        .await
        .unwrap();
    assert!(reply.value.needs_reference);
    assert_eq!(reply.value.gap, KnowledgeGap::KnownButRare);
    assert_eq!(reply.value.entities, vec!["Graphorn"]);
    assert_eq!(reply.value.queries.len(), 3);
    assert_eq!(reply.usage.total_tokens, 1163);
    assert_eq!(reply.usage.calls, 1);

    let reqs = requests_to(&server, "/v1/chat/completions").await;
    assert_eq!(reqs.len(), 1);
    assert_sent_key(&reqs[0]);
    let body = json_body(&reqs[0]);
    assert_eq!(body["model"], "gpt-4o-mini");
    let rf = &body["response_format"];
    assert_eq!(rf["type"], "json_schema");
    assert_eq!(rf["json_schema"]["strict"], true);
    let schema = &rf["json_schema"]["schema"];
    assert_eq!(schema["additionalProperties"], false);
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for f in ["needs_reference", "gap", "queries", "entities", "rationale"] {
        assert!(required.contains(&f), "{f} not required in {schema}");
    }
    assert_eq!(body["messages"][0]["role"], "system");
    let user = body["messages"][1]["content"].as_str().unwrap();
    assert!(user.contains("A Graphorn at dusk") && user.contains("en, zh, ja"));
}

#[tokio::test]
async fn prose_and_fences_around_json_are_tolerated() {
    let server = MockServer::start().await;
    mount_chat(&server, "assessment", &["gate_fenced_prose.json"]).await;
    let reply = gate(&server, test_http()).assess("x", false).await.unwrap();
    assert_eq!(reply.value.gap, KnowledgeGap::Unknown);
    assert_eq!(reply.value.queries, vec!["Hogwarts Legacy protagonist"]);
    assert_eq!(requests_to(&server, "/v1/chat/completions").await.len(), 1);
}

#[tokio::test]
async fn garbage_gets_exactly_one_retry_with_a_reminder_then_a_clear_error() {
    let (server, err) = gate_error("chat_garbage.json").await;
    assert!(matches!(err.inner(), LmmError::NotJson { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("did not answer with the JSON asked for"),
        "{msg}"
    );
    assert!(msg.contains("only answer in prose"), "{msg}");
    let reqs = chat_requests(&server, "assessment").await;
    assert_eq!(reqs.len(), 2, "one call and exactly one retry");
    let retry_msgs = reqs[1]["messages"].as_array().unwrap();
    assert_eq!(retry_msgs.len(), 4);
    assert_eq!(retry_msgs[2]["role"], "assistant");
    let reminder = retry_msgs[3]["content"].as_str().unwrap();
    assert!(reminder.contains("only one JSON object"), "{reminder}");
}

#[tokio::test]
async fn garbage_then_json_succeeds_on_the_retry_and_counts_both_calls() {
    let server = MockServer::start().await;
    mount_chat(
        &server,
        "assessment",
        &["chat_garbage.json", "gate_no_reference.json"],
    )
    .await;
    let reply = gate(&server, test_http()).assess("x", false).await.unwrap();
    assert!(!reply.value.needs_reference);
    assert_eq!(reply.usage.calls, 2);
    assert_eq!(reply.usage.total_tokens, 2 * 1163);
}

#[tokio::test]
async fn a_refusal_is_retried_once_then_reported() {
    let (server, err) = gate_error("chat_refusal.json").await;
    assert!(matches!(err.inner(), LmmError::Refused { .. }), "{err:?}");
    assert!(err.to_string().contains("can't help with that"));
    assert_eq!(chat_requests(&server, "assessment").await.len(), 2);
}

#[tokio::test]
async fn an_error_object_inside_a_200_is_recognised_and_not_retried() {
    let (server, err) = gate_error("chat_error_in_200.json").await;
    match &err {
        LmmError::Api { message, code, .. } => {
            assert!(message.contains("does not exist"));
            assert_eq!(code.as_deref(), Some("model_not_found"));
        }
        other => panic!("expected Api, got {other:?}"),
    }
    assert_eq!(chat_requests(&server, "assessment").await.len(), 1);
}

#[tokio::test]
async fn finish_reason_length_is_a_truncation_error() {
    let (_server, err) = gate_error("chat_length.json").await;
    assert!(matches!(err.inner(), LmmError::Truncated { .. }), "{err:?}");
    assert!(err.to_string().contains("max_tokens"));
}

#[tokio::test]
async fn empty_choices_are_an_error() {
    let server = MockServer::start().await;
    let mut body = fixture_json("gate_no_reference.json");
    body["choices"] = serde_json::json!([]);
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&server)
        .await;
    let lmm = chat_client(&server, test_http());
    let err = lmm.chat(&ChatRequest::default()).await.unwrap_err();
    assert!(matches!(err.inner(), LmmError::Empty { .. }), "{err:?}");
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(Sequence::new(vec![
            ResponseTemplate::new(429)
                .insert_header("retry-after", "0")
                .set_body_json(serde_json::json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}})),
            ResponseTemplate::new(200).set_body_json(fixture_json("gate_no_reference.json")),
        ]))
        .mount(&server)
        .await;
    let reply = gate(&server, test_http())
        .assess("a red apple", false)
        .await
        .unwrap();
    assert!(!reply.value.needs_reference);
    assert_eq!(requests_to(&server, "/v1/chat/completions").await.len(), 2);
}

#[tokio::test]
async fn a_500_fails_at_once_without_paying_twice_with_the_status_and_a_hint() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("upstream exploded"))
        .mount(&server)
        .await;
    let err = assess_err(&server).await;
    match &err {
        LmmError::Http { source, .. } => {
            assert_eq!(source.status().map(|s| s.as_u16()), Some(500));
            assert!(source.was_not_retried(), "{source:?}");
        }
        other => panic!("expected Http, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("500") && msg.contains("not retried") && msg.contains("try again later"),
        "{msg}"
    );
    // A completion bills: a 500 may have been processed, so it is sent once.
    assert_eq!(requests_to(&server, "/v1/chat/completions").await.len(), 1);
}

#[tokio::test]
async fn a_hanging_server_times_out_with_a_clear_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(hanging("gate_no_reference.json"))
        .mount(&server)
        .await;
    let err = gate(&server, impatient_http())
        .assess("x", false)
        .await
        .unwrap_err();
    match &err {
        LmmError::Http { source, .. } => {
            assert!(
                matches!(source.innermost(), HttpError::Timeout { .. }),
                "{source:?}"
            );
            // A completion that timed out may have been processed: not retried.
            assert!(source.was_not_retried(), "{source:?}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("timed out") && msg.contains("raise the timeout"),
        "{msg}"
    );
}

#[tokio::test]
async fn the_key_never_appears_in_debug_or_errors() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_string(format!(
            "{{\"error\":{{\"message\":\"Incorrect API key provided: {KEY}\"}}}}"
        )))
        .mount(&server)
        .await;
    let lmm = chat_client(&server, test_http());
    assert!(!format!("{lmm:?}").contains(KEY));
    let err = lmm
        .chat(&ChatRequest {
            messages: vec![Message::user("hi")],
            ..ChatRequest::default()
        })
        .await
        .unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(KEY), "{shown}");
    assert!(
        shown.contains("401") && shown.contains("OPENAI_API_KEY"),
        "{shown}"
    );
}

#[tokio::test]
async fn images_go_out_as_base64_data_urls() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture_json("chat_garbage.json")))
        .mount(&server)
        .await;
    let lmm = chat_client(&server, test_http());
    let png = fixture_bytes("reference_a.png");
    let resp = lmm
        .chat(&ChatRequest {
            messages: vec![Message::user("what is this?").with_image(png.clone(), "image/png")],
            ..ChatRequest::default()
        })
        .await
        .unwrap();
    assert!(resp.content.contains("prose"));
    let body = json_body(&requests_to(&server, "/v1/chat/completions").await[0]);
    assert!(body.get("response_format").is_none());
    let parts = body["messages"][0]["content"].as_array().unwrap();
    assert_eq!(parts[0]["type"], "text");
    assert_eq!(parts[1]["type"], "image_url");
    use base64::Engine as _;
    let expected = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&png)
    );
    assert_eq!(parts[1]["image_url"]["url"], expected);
}

fn judge_options() -> Vec<iat2i::selectors::JudgeCandidate> {
    ["reference_a.png", "reference_b.png"]
        .iter()
        .enumerate()
        .map(|(i, name)| iat2i::selectors::JudgeCandidate {
            candidate: iat2i::retrievers::Candidate::new(
                url::Url::parse(&format!("https://upload.example.org/{i}.png")).unwrap(),
                "stub",
                "Graphorn",
            ),
            image: fixture_bytes(name),
            mime: "image/png".into(),
        })
        .collect()
}

#[tokio::test]
async fn the_candidate_judge_sees_the_thumbnails_and_returns_its_pick() {
    use iat2i::selectors::{CandidateJudge, SelectionRequest};
    let server = MockServer::start().await;
    mount_chat(&server, "pick", &["chat_pick.json"]).await;
    let judge = iat2i::LmmCandidateJudge::new(Arc::new(chat_client(&server, test_http())));
    let request = SelectionRequest::new("A Graphorn at dusk")
        .with_queries(vec!["Graphorn".into()])
        .with_entities(vec!["Graphorn".into()]);
    let pick = judge.pick(&request, &judge_options()).await.unwrap();
    assert_eq!(pick.index, 1);
    assert!(pick.reason.contains("whole creature"));
    assert_eq!(judge.usage(&request.run_id).total_tokens, 1163);
    let body = &chat_requests(&server, "pick").await[0];
    assert_eq!(image_urls(body, 1).len(), 2);
}

#[tokio::test]
async fn the_candidate_judge_rejects_an_index_out_of_range() {
    use iat2i::selectors::{CandidateJudge, SelectError, SelectionRequest};
    let server = MockServer::start().await;
    let mut body = fixture_json("chat_pick.json");
    body["choices"][0]["message"]["content"] =
        serde_json::json!("{\"index\": 7, \"reason\": \"x\"}");
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&server)
        .await;
    let judge = iat2i::LmmCandidateJudge::new(Arc::new(chat_client(&server, test_http())));
    let request = SelectionRequest::new("").with_run_id("run-out-of-range");
    let err = judge.pick(&request, &judge_options()).await.unwrap_err();
    assert!(
        matches!(&err, SelectError::Judge(m) if m.contains("only 2 were shown")),
        "{err:?}"
    );
    // The answer was billed even though it was unusable.
    assert_eq!(judge.take_usage("run-out-of-range").total_tokens, 1163);
    assert_eq!(judge.usage("run-out-of-range").total_tokens, 0, "taken");
}

#[test]
fn a_base_url_that_is_not_a_url_is_named_without_its_key() {
    for base in [
        format!("http://[::1/v1?key={KEY}"),
        format!("http://user:{KEY}@[::1/v1"),
    ] {
        let err = OpenAiChat::new(test_http(), &base, "m").unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(shown.contains("is not a URL"), "{shown}");
        assert!(shown.contains("http://[::1/v1"), "{shown}");
        assert!(!shown.contains(KEY), "{shown}");
    }
}

#[tokio::test]
async fn null_float_and_missing_usage_counts_do_not_lose_the_answer() {
    let server = MockServer::start().await;
    let mut body = fixture_json("gate_no_reference.json");
    // As some gateways and local servers send them: null, float, missing, or a string.
    body["usage"] = serde_json::json!({
        "prompt_tokens": null,
        "completion_tokens": 46.0,
        "prompt_tokens_details": null
    });
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body.clone()))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    body["usage"] = serde_json::json!("n/a");
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&server)
        .await;
    let lmm = chat_client(&server, test_http());
    let first = lmm.chat(&ChatRequest::default()).await.unwrap();
    assert!(first.content.contains("needs_reference"));
    assert_eq!(first.usage.prompt_tokens, 0);
    assert_eq!(first.usage.completion_tokens, 46);
    assert_eq!(first.usage.total_tokens, 0);
    assert_eq!(first.usage.calls, 1);
    let second = lmm.chat(&ChatRequest::default()).await.unwrap();
    assert!(second.content.contains("needs_reference"));
    assert_eq!(second.usage.calls, 1);
}

/// Whether a chat request asked for `response_format`.
fn asks_schema(r: &wiremock::Request) -> bool {
    serde_json::from_slice::<serde_json::Value>(&r.body)
        .map(|b| b.get("response_format").is_some())
        .unwrap_or(false)
}

/// A server that rejects `response_format` with `rejection` and answers prose-wrapped
/// JSON (`gate_fenced_prose.json`) without it.
async fn schema_rejecting_server(rejection: serde_json::Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(asks_schema)
        .respond_with(ResponseTemplate::new(400).set_body_json(rejection))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(|r: &wiremock::Request| !asks_schema(r))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture_json("gate_fenced_prose.json")),
        )
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn a_server_rejecting_json_schema_is_asked_once_without_it_and_it_is_recorded() {
    // As llama.cpp's server phrases it.
    let llama_cpp = serde_json::json!({"error": {"code": 400, "message":
        "response_format type must be one of \"text\" or \"json_object\", but got: json_schema",
        "type": "invalid_request_error"}});
    let server = schema_rejecting_server(llama_cpp).await;
    let gate = gate(&server, test_http());
    let reply = gate.assess("A Graphorn", false).await.unwrap();
    assert!(reply.value.needs_reference);
    assert_eq!(reply.degraded.len(), 1, "{:?}", reply.degraded);
    assert!(
        reply.degraded[0].contains("json_schema"),
        "{:?}",
        reply.degraded
    );
    let reqs = requests_to(&server, "/v1/chat/completions").await;
    assert_eq!(reqs.len(), 2, "one rejected call, one without the schema");
    let retry = json_body(&reqs[1]);
    assert!(retry.get("response_format").is_none());
    let last = retry["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert!(last["content"].as_str().unwrap().contains("JSON schema"));

    // The client remembers: the next call goes without the schema at once.
    let again = gate.assess("A Graphorn", false).await.unwrap();
    assert!(!again.degraded.is_empty());
    assert_eq!(requests_to(&server, "/v1/chat/completions").await.len(), 3);
}

#[tokio::test]
async fn vllm_and_ollama_phrasings_of_the_rejection_are_recognised() {
    let vllm = serde_json::json!({"object": "error", "message":
        "Invalid JSON schema in response_format: json_schema is not supported by this model",
        "type": "BadRequestError", "param": "response_format", "code": 400});
    let ollama = serde_json::json!({"error": {"message": "invalid response format: json_schema",
        "type": "invalid_request_error", "param": null, "code": null}});
    for rejection in [vllm, ollama] {
        let server = schema_rejecting_server(rejection).await;
        let reply = gate(&server, test_http()).assess("x", false).await.unwrap();
        assert!(!reply.degraded.is_empty());
        assert_eq!(requests_to(&server, "/v1/chat/completions").await.len(), 2);
    }
}

#[tokio::test]
async fn another_400_is_not_taken_for_a_schema_rejection() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(serde_json::json!({"error": {
            "message": "model 'llava:13b' not found, try pulling it first",
            "type": "api_error", "param": null, "code": null}})),
        )
        .mount(&server)
        .await;
    let err = assess_err(&server).await;
    assert!(err.to_string().contains("not found"), "{err}");
    assert_eq!(requests_to(&server, "/v1/chat/completions").await.len(), 1);
}

#[tokio::test]
async fn an_unusable_answer_and_its_failed_retry_carry_what_was_billed() {
    let (_server, err) = gate_error("chat_garbage.json").await;
    let billed = err.billed();
    assert_eq!(
        (billed.calls, billed.total_tokens),
        (2, 2 * 1163),
        "{err:?}"
    );
    assert!(matches!(err.inner(), LmmError::NotJson { .. }), "{err:?}");
    assert_eq!(err.class(), iat2i::ErrorClass::Internal);
}
