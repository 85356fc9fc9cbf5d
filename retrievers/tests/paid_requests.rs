//! Paid requests (`HttpClient::execute_paid`) against local servers: retried only when
//! the request provably was not processed.

use std::time::Duration;

use iat2i_retrievers::{HttpClient, HttpError, Paid, Trust};
use reqwest::header::HeaderName;
use url::Url;
use wiremock::matchers::{header_exists, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn client() -> HttpClient {
    HttpClient::builder()
        .backoff(Duration::from_millis(1), Duration::from_millis(5))
        .max_retries(3)
        .per_host_per_second(0)
        .build()
        .unwrap()
}

fn image_made() -> serde_json::Value {
    serde_json::json!({"created": 1, "data": [{"b64_json": "iVBORw0KGgo="}]})
}

async fn post(http: &HttpClient, url: &Url) -> Result<iat2i_retrievers::HttpResponse, HttpError> {
    http.execute_paid(Trust::Trusted, &Paid::new(), |c| {
        c.post(url.clone())
            .json(&serde_json::json!({"prompt": "a red apple"}))
    })
    .await
}

fn gen_url(server: &MockServer) -> Url {
    Url::parse(&format!("{}/v1/images/generations", server.uri())).unwrap()
}

#[tokio::test]
async fn a_502_after_the_image_was_made_is_requested_exactly_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .respond_with(ResponseTemplate::new(502).set_body_string("Bad Gateway"))
        .expect(1)
        .mount(&server)
        .await;
    let err = post(&client(), &gen_url(&server)).await.unwrap_err();
    assert!(err.was_not_retried(), "{err:?}");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(502));
    let msg = err.to_string();
    assert!(msg.contains("502") && msg.contains("not retried"), "{msg}");
}

#[tokio::test]
async fn a_429_then_200_is_retried_and_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0"))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(image_made()))
        .expect(1)
        .mount(&server)
        .await;
    let resp = post(&client(), &gen_url(&server)).await.unwrap();
    assert!(resp.text().contains("b64_json"));
}

#[tokio::test]
async fn a_429_forever_gives_up_as_a_plain_rate_limit_not_a_billing_warning() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0"))
        .expect(4)
        .mount(&server)
        .await;
    let err = post(&client(), &gen_url(&server)).await.unwrap_err();
    assert!(!err.was_not_retried(), "{err:?}");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(429));
}

#[tokio::test]
async fn a_refused_connection_is_retried_once_the_server_is_up() {
    // A port nobody listens on yet: the first attempt is refused before sending.
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_listener.local_addr().unwrap();
    drop(std_listener);
    let http = HttpClient::builder()
        .backoff(Duration::from_millis(1500), Duration::from_millis(1500))
        .max_retries(2)
        .per_host_per_second(0)
        .build()
        .unwrap();
    let url = Url::parse(&format!("http://{addr}/v1/images/generations")).unwrap();
    let start_server = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let listener = std::net::TcpListener::bind(addr).unwrap();
        let server = MockServer::builder().listener(listener).start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(image_made()))
            .expect(1)
            .mount(&server)
            .await;
        server
    };
    let (resp, server) = tokio::join!(post(&http, &url), start_server);
    assert!(resp.unwrap().text().contains("b64_json"));
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_timeout_is_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(image_made())
                .set_delay(Duration::from_secs(10)),
        )
        .expect(1)
        .mount(&server)
        .await;
    let http = HttpClient::builder()
        .total_timeout(Duration::from_millis(300))
        .backoff(Duration::from_millis(1), Duration::from_millis(5))
        .per_host_per_second(0)
        .build()
        .unwrap();
    let err = post(&http, &gen_url(&server)).await.unwrap_err();
    assert!(err.was_not_retried(), "{err:?}");
    assert!(
        matches!(err.innermost(), HttpError::Timeout { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_idempotency_key_is_sent_with_every_attempt_and_allows_retrying_a_502() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header_exists("idempotency-key"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(header_exists("idempotency-key"))
        .respond_with(ResponseTemplate::new(200).set_body_json(image_made()))
        .mount(&server)
        .await;
    let paid = Paid::idempotency_key(HeaderName::from_static("idempotency-key"));
    let url = gen_url(&server);
    client()
        .execute_paid(Trust::Trusted, &paid, |c| c.post(url.clone()).body("{}"))
        .await
        .unwrap();
    let reqs = server.received_requests().await.unwrap();
    assert_eq!(reqs.len(), 2);
    let keys: Vec<_> = reqs
        .iter()
        .map(|r| r.headers.get("idempotency-key").unwrap().clone())
        .collect();
    assert_eq!(keys[0], keys[1], "the same key on the retry");
}

#[tokio::test]
async fn an_ordinary_request_still_retries_a_502() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(502))
        .expect(4)
        .mount(&server)
        .await;
    let err = client()
        .get(&gen_url(&server), Trust::Trusted)
        .await
        .unwrap_err();
    assert!(!err.was_not_retried());
}
