//! Bing images against recorded-shape fixtures served by wiremock.

mod common;

use common::{base, failure, found, http, serve, serving};
use iat2i_retrievers::engines::Bing;
use iat2i_retrievers::{ImageSearch, SearchError, SearchQuery};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn page(server: &MockServer, first: &str, fixture: &str, times: u64) {
    Mock::given(method("GET"))
        .and(path("/images/search"))
        .and(query_param("q", "xenopus laevis"))
        .and(query_param("first", first))
        .and(query_param("count", "35"))
        .and(query_param("adlt", "strict"))
        .respond_with(serve(fixture))
        .expect(times)
        .mount(server)
        .await;
}

fn bing(server: &MockServer) -> Bing {
    Bing::new(http()).with_base_url(base(server))
}

#[tokio::test]
async fn parses_results_across_pages() {
    let server = MockServer::start().await;
    page(&server, "1", "bing/search_page1.html", 1).await;
    page(&server, "36", "bing/search_page2.html", 1).await;
    page(&server, "71", "bing/no_results.html", 1).await;
    let found = found(&bing(&server), "xenopus laevis").await;
    let urls: Vec<String> = found.iter().map(|c| c.image_url.to_string()).collect();
    let host = server.uri();
    assert_eq!(
        urls,
        [
            "https://upload.wikimedia.org/wikipedia/commons/4/4f/Xenopus_laevis_%28cropped%29.jpg"
                .to_string(),
            "https://cdn.amphibians.example/img.php?id=31&size=large".to_string(),
            // Protocol-relative: https, though the page came over http.
            "https://images.example.net/frog-in-lab.jpg?utm_source=bing".to_string(),
            format!("{host}/th/id/R.relative-image?rik=abc&pid=ImgRaw"),
            "https://live.staticflickr.com/65535/1234_abcd_b.jpg".to_string(),
        ]
    );
    assert_eq!(
        found.iter().map(|c| c.rank).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    let first = &found[0];
    assert_eq!(first.engine, "bing");
    assert_eq!(first.query, "xenopus laevis");
    assert_eq!(
        first.title.as_deref(),
        Some("African clawed frog - Wikipedia")
    );
    assert_eq!((first.width, first.height), (Some(1600), Some(1067)));
    assert_eq!(first.mime.as_deref(), Some("image/jpeg"));
    assert_eq!(
        first.thumbnail_url.as_ref().unwrap().as_str(),
        "https://tse1.mm.bing.net/th?id=OIP.Qx9ZkF1d0zWn8vX2oH3sAgHaE8&pid=15.1"
    );
    assert_eq!(
        first.source_page.as_ref().unwrap().as_str(),
        "https://en.wikipedia.org/wiki/African_clawed_frog"
    );
    assert_eq!(
        found[1].title.as_deref(),
        Some("Xénope lisse — 非洲爪蟾 (Xenopus laevis) 🐸")
    );
    assert_eq!(found[1].mime.as_deref(), Some("image/png"));
    assert_eq!((found[2].width, found[2].height), (None, None));
    assert!(found.iter().all(|c| c.license.is_none()));
}

#[tokio::test]
async fn stops_paging_at_the_limit() {
    let server = MockServer::start().await;
    page(&server, "1", "bing/search_page1.html", 1).await;
    page(&server, "36", "bing/search_page2.html", 0).await;
    let found = bing(&server)
        .search("xenopus laevis", &SearchQuery::default().with_limit(2))
        .await
        .unwrap();
    assert_eq!(found.len(), 2);
}

#[tokio::test]
async fn safe_search_off_is_sent() {
    let server = MockServer::start().await;
    Mock::given(path("/images/search"))
        .and(query_param("adlt", "off"))
        .respond_with(serve("bing/no_results.html"))
        .expect(1)
        .mount(&server)
        .await;
    let found = bing(&server)
        .search(
            "qwxzzy frgl",
            &SearchQuery::default().with_safe_search(false),
        )
        .await
        .unwrap();
    assert!(found.is_empty());
}

async fn first_page_error(fixture: ResponseTemplate) -> SearchError {
    let server = serving("/images/search", fixture).await;
    failure(&bing(&server), "xenopus laevis").await
}

#[tokio::test]
async fn captcha_and_consent_pages_are_blocked_errors() {
    for f in [
        "bing/captcha.html",
        "bing/consent.html",
        // Its inline script names the results list's class and id: still blocked.
        "bing/challenge_script.html",
    ] {
        let err = first_page_error(serve(f)).await;
        assert!(matches!(err, SearchError::Blocked { .. }), "{f}: {err}");
        assert!(err.to_string().contains("CAPTCHA"), "{err}");
    }
}

#[tokio::test]
async fn a_changed_page_or_garbage_is_a_parse_error() {
    for f in ["bing/changed_layout.html", "common/garbage.bin"] {
        let err = first_page_error(serve(f)).await;
        assert!(matches!(err, SearchError::Parse { .. }), "{f}: {err}");
        assert!(err.to_string().starts_with("bing:"), "{err}");
    }
}

#[tokio::test]
async fn server_errors_surface_with_the_status() {
    let err = first_page_error(ResponseTemplate::new(500)).await;
    match err {
        SearchError::Http { source, .. } => {
            assert_eq!(source.status().map(|s| s.as_u16()), Some(500))
        }
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn rate_limited_then_success_recovers() {
    let server = MockServer::start().await;
    Mock::given(path("/images/search"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    page(&server, "1", "bing/search_page1.html", 1).await;
    page(&server, "36", "bing/no_results.html", 1).await;
    let found = found(&bing(&server), "xenopus laevis").await;
    assert_eq!(found.len(), 4);
}

#[tokio::test]
async fn a_failing_second_page_keeps_the_first() {
    let server = MockServer::start().await;
    page(&server, "1", "bing/search_page1.html", 1).await;
    Mock::given(path("/images/search"))
        .and(query_param("first", "36"))
        .respond_with(serve("bing/captcha.html"))
        .mount(&server)
        .await;
    let found = found(&bing(&server), "xenopus laevis").await;
    assert_eq!(found.len(), 4);
}

#[tokio::test]
async fn sends_its_own_user_agent_or_the_clients() {
    let server = MockServer::start().await;
    Mock::given(path("/images/search"))
        .and(header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) frog-lab",
        ))
        .respond_with(serve("bing/no_results.html"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/images/search"))
        .and(header("user-agent", "client-ua/1.0"))
        .respond_with(serve("bing/no_results.html"))
        .expect(1)
        .mount(&server)
        .await;
    let client = common::quick().user_agent("client-ua/1.0").build().unwrap();
    let own = Bing::new(client.clone())
        .with_base_url(base(&server))
        .with_user_agent("Mozilla/5.0 (X11; Linux x86_64) frog-lab");
    assert!(found(&own, "xenopus").await.is_empty());
    let default = Bing::new(client).with_base_url(base(&server));
    assert!(found(&default, "xenopus").await.is_empty());
}

#[tokio::test]
async fn a_user_agent_no_header_can_carry_is_a_configuration_error() {
    let server = serving("/images/search", serve("bing/no_results.html")).await;
    let err = failure(&bing(&server).with_user_agent("bad\nagent"), "xenopus").await;
    assert!(matches!(err, SearchError::Config { .. }), "{err}");
    assert!(err.to_string().contains("user-agent"), "{err}");
}
