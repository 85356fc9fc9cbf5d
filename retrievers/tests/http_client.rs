//! The shared HTTP client against local servers: SSRF policy, retries, timeouts, caps.

use std::time::{Duration, Instant};

use iat2i_retrievers::{HttpClient, HttpError, Trust};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn quick() -> iat2i_retrievers::HttpClientBuilder {
    HttpClient::builder()
        .backoff(Duration::from_millis(1), Duration::from_millis(5))
        .per_host_per_second(0)
}

fn url(server: &MockServer, p: &str) -> Url {
    Url::parse(&format!("{}{p}", server.uri())).unwrap()
}

#[tokio::test]
async fn untrusted_loopback_is_refused_without_a_request() {
    let server = MockServer::start().await;
    Mock::given(path("/a.jpg"))
        .respond_with(ResponseTemplate::new(200).set_body_string("x"))
        .expect(0)
        .mount(&server)
        .await;
    let http = quick().build().unwrap();
    let err = http
        .get(&url(&server, "/a.jpg"), Trust::Untrusted)
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::Refused { .. }), "{err}");
    assert!(err.to_string().contains("loopback"), "{err}");
}

#[tokio::test]
async fn untrusted_name_resolving_to_loopback_is_refused_by_the_resolver() {
    let server = MockServer::start().await;
    Mock::given(path("/a.jpg"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let port = server.address().port();
    let http = quick().build().unwrap();
    let u = Url::parse(&format!("http://localhost:{port}/a.jpg")).unwrap();
    let err = http.get(&u, Trust::Untrusted).await.unwrap_err();
    assert!(matches!(err, HttpError::Refused { .. }), "{err}");
    assert!(err.to_string().contains("localhost resolves to"), "{err}");
}

#[tokio::test]
async fn allowed_host_and_trusted_requests_reach_loopback() {
    let server = MockServer::start().await;
    Mock::given(path("/a.jpg"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .expect(3)
        .mount(&server)
        .await;
    let port = server.address().port();
    let allowed = quick()
        .allow_host("127.0.0.1")
        .allow_host("localhost")
        .build()
        .unwrap();
    let r = allowed
        .get(&url(&server, "/a.jpg"), Trust::Untrusted)
        .await
        .unwrap();
    assert_eq!(&r.body[..], b"ok");
    let by_name = Url::parse(&format!("http://localhost:{port}/a.jpg")).unwrap();
    allowed.get(&by_name, Trust::Untrusted).await.unwrap();
    let plain = quick().build().unwrap();
    plain
        .get(&url(&server, "/a.jpg"), Trust::Trusted)
        .await
        .unwrap();
}

#[tokio::test]
async fn redirect_from_allowed_host_to_refused_host_is_refused() {
    let server = MockServer::start().await;
    let port = server.address().port();
    for (from, to) in [
        (
            "/to-metadata",
            "http://169.254.169.254/latest/meta-data/".to_string(),
        ),
        ("/to-private", "http://10.0.0.7/x.jpg".to_string()),
        (
            "/to-v6-loopback",
            format!("http://[::ffff:127.0.0.1]:{port}/final"),
        ),
        ("/to-name", format!("http://localhost:{port}/final")),
    ] {
        Mock::given(path(from))
            .respond_with(ResponseTemplate::new(302).insert_header("location", to.as_str()))
            .mount(&server)
            .await;
    }
    Mock::given(path("/final"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let http = quick().allow_host("127.0.0.1").build().unwrap();
    for from in ["/to-metadata", "/to-private", "/to-v6-loopback", "/to-name"] {
        let err = http
            .get(&url(&server, from), Trust::Untrusted)
            .await
            .unwrap_err();
        assert!(matches!(err, HttpError::Refused { .. }), "{from}: {err}");
    }
}

#[tokio::test]
async fn redirect_loops_stop_after_the_hop_limit() {
    let server = MockServer::start().await;
    Mock::given(path("/loop"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "/loop"))
        .expect(4)
        .mount(&server)
        .await;
    let http = quick()
        .allow_host("127.0.0.1")
        .max_redirects(3)
        .build()
        .unwrap();
    let err = http
        .get(&url(&server, "/loop"), Trust::Untrusted)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("more than 3 redirects"), "{err}");
}

#[tokio::test]
async fn too_many_requests_then_success_waits_retry_after() {
    let server = MockServer::start().await;
    Mock::given(path("/api"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/api"))
        .respond_with(ResponseTemplate::new(200).set_body_string("done"))
        .expect(1)
        .mount(&server)
        .await;
    let http = quick().build().unwrap();
    let start = Instant::now();
    let r = http
        .get(&url(&server, "/api"), Trust::Trusted)
        .await
        .unwrap();
    assert_eq!(&r.body[..], b"done");
    // The backoff is at most 5 ms, so only Retry-After explains a wait of ~1 s.
    assert!(start.elapsed() >= Duration::from_millis(950));
}

#[tokio::test]
async fn retry_after_beyond_the_maximum_fails_at_once() {
    let server = MockServer::start().await;
    Mock::given(path("/api"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "3600"))
        .expect(1)
        .mount(&server)
        .await;
    let http = quick()
        .max_retry_after(Duration::from_secs(10))
        .build()
        .unwrap();
    let err = http
        .get(&url(&server, "/api"), Trust::Trusted)
        .await
        .unwrap_err();
    match err {
        HttpError::Status {
            status,
            retry_after,
            ..
        } => {
            assert_eq!(status.as_u16(), 429);
            assert_eq!(retry_after, Some(Duration::from_secs(3600)));
        }
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn server_errors_are_retried_then_reported() {
    let server = MockServer::start().await;
    Mock::given(path("/api"))
        .respond_with(ResponseTemplate::new(503).set_body_string("overloaded"))
        .expect(3)
        .mount(&server)
        .await;
    let http = quick().max_retries(2).build().unwrap();
    let u = Url::parse(&format!("{}/api?key=TOPSECRET&q=x", server.uri())).unwrap();
    let err = http.get(&u, Trust::Trusted).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(503));
    let text = err.to_string();
    assert!(text.contains("overloaded"), "{text}");
    assert!(!text.contains("TOPSECRET") && !text.contains('?'), "{text}");
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let server = MockServer::start().await;
    Mock::given(path("/api"))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&server)
        .await;
    let http = quick().build().unwrap();
    let err = http
        .get(&url(&server, "/api"), Trust::Trusted)
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404));
}

#[tokio::test]
async fn a_hanging_server_times_out() {
    let server = MockServer::start().await;
    Mock::given(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30)))
        .mount(&server)
        .await;
    let http = quick()
        .total_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let err = http
        .get(&url(&server, "/slow"), Trust::Trusted)
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::Timeout { .. }), "{err}");
}

#[tokio::test]
async fn a_declared_oversized_body_is_refused() {
    let server = MockServer::start().await;
    Mock::given(path("/big"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![7u8; 100_000]))
        .mount(&server)
        .await;
    let http = quick().max_response_bytes(10_000).build().unwrap();
    let err = http
        .get(&url(&server, "/big"), Trust::Trusted)
        .await
        .unwrap_err();
    assert!(
        matches!(err, HttpError::TooLarge { limit: 10_000, .. }),
        "{err}"
    );
}

/// A server that streams a chunked body forever (no Content-Length to check up front)
/// to its first client; the task ends with the bytes written once the client hangs up.
async fn endless_body() -> (Url, tokio::task::JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 2048];
        let _ = sock.read(&mut buf).await;
        let head =
            "HTTP/1.1 200 OK\r\ncontent-type: image/jpeg\r\ntransfer-encoding: chunked\r\n\r\n";
        sock.write_all(head.as_bytes()).await.unwrap();
        let chunk = format!("{:x}\r\n{}\r\n", 4096, "a".repeat(4096));
        let mut written = 0usize;
        while sock.write_all(chunk.as_bytes()).await.is_ok() {
            written += 4096;
        }
        written
    });
    (Url::parse(&format!("http://{addr}/endless")).unwrap(), task)
}

#[tokio::test]
async fn an_endless_chunked_body_is_cut_at_the_cap() {
    let (u, _server) = endless_body().await;
    let http = quick().max_response_bytes(64 * 1024).build().unwrap();
    let err = http.get(&u, Trust::Trusted).await.unwrap_err();
    assert!(matches!(err, HttpError::TooLarge { .. }), "{err}");
}

#[tokio::test]
async fn sends_the_configured_user_agent() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(header("user-agent", "iat2i-test/1.0 (ops@example.org)"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let http = quick()
        .user_agent("iat2i-test/1.0 (ops@example.org)")
        .build()
        .unwrap();
    http.get(&url(&server, "/"), Trust::Trusted).await.unwrap();
}

#[tokio::test]
async fn connection_refused_is_retried_then_reported() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let http = quick().max_retries(1).build().unwrap();
    let u = Url::parse(&format!("http://{addr}/x?token=ABCDEFGH")).unwrap();
    let err = http.get(&u, Trust::Trusted).await.unwrap_err();
    assert!(matches!(err, HttpError::Transport { .. }), "{err}");
    assert!(!err.to_string().contains("ABCDEFGH"), "{err}");
}

/// A server with a 100,000-byte body at /big and a 5,000-byte one at /small.
async fn sized_bodies() -> MockServer {
    let server = MockServer::start().await;
    for (at, n) in [("/big", 100_000), ("/small", 5_000)] {
        Mock::given(path(at))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![7u8; n]))
            .mount(&server)
            .await;
    }
    server
}

#[tokio::test]
async fn a_per_request_cap_refuses_a_declared_body_and_accepts_a_smaller_one() {
    let server = sized_bodies().await;
    let http = quick().build().unwrap();
    let err = http
        .get_limited(&url(&server, "/big"), Trust::Trusted, 10_000)
        .await
        .unwrap_err();
    assert!(
        matches!(err, HttpError::TooLarge { limit: 10_000, .. }),
        "{err}"
    );
    let ok = http
        .get_limited(&url(&server, "/small"), Trust::Trusted, 10_000)
        .await
        .unwrap();
    assert_eq!(ok.body.len(), 5_000);
    // The same client, without a per-request cap, still takes the large body.
    let whole = http
        .get(&url(&server, "/big"), Trust::Trusted)
        .await
        .unwrap();
    assert_eq!(whole.body.len(), 100_000);
}

#[tokio::test]
async fn the_client_cap_still_bounds_a_looser_per_request_cap() {
    let server = sized_bodies().await;
    let http = quick().max_response_bytes(10_000).build().unwrap();
    let err = http
        .get_limited(&url(&server, "/big"), Trust::Trusted, 1_000_000)
        .await
        .unwrap_err();
    assert!(
        matches!(err, HttpError::TooLarge { limit: 10_000, .. }),
        "{err}"
    );
}

/// An endless body under a 64 KiB per-request cap: the client stops at 64 KiB, not at
/// the client-wide 32 MiB, and hangs up, so the server gets to write little more than
/// what the socket buffers hold.
#[tokio::test]
async fn a_per_request_cap_stops_an_endless_body_while_streaming() {
    let (u, server) = endless_body().await;
    let http = quick().build().unwrap();
    assert_eq!(http.max_response_bytes(), 32 * 1024 * 1024);
    let err = http
        .execute_limited(Trust::Trusted, 64 * 1024, |c| c.get(u.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, HttpError::TooLarge { limit: 65_536, .. }),
        "{err}"
    );
    drop(http);
    let written = server.await.unwrap();
    assert!(written < 16 * 1024 * 1024, "server wrote {written} bytes");
}
