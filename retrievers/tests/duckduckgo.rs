//! DuckDuckGo images: vqd token, i.js JSON, paging and failures.

mod common;

use common::{base, failure, found, http, serve, serving};
use iat2i_retrievers::SearchError;
use iat2i_retrievers::engines::DuckDuckGo;
use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

const VQD: &str = "4-211448291213463788920587734893421577813";

async fn token_page(server: &MockServer, fixture: &str) {
    Mock::given(method("GET"))
        .and(path("/"))
        .and(query_param("q", "xenopus laevis"))
        .and(query_param("iax", "images"))
        .and(query_param("ia", "images"))
        .respond_with(serve(fixture))
        .expect(1)
        .mount(server)
        .await;
}

fn ddg(server: &MockServer) -> DuckDuckGo {
    DuckDuckGo::new(http()).with_base_url(base(server))
}

#[tokio::test]
async fn reads_the_token_then_pages_through_results() {
    let server = MockServer::start().await;
    token_page(&server, "duckduckgo/search_page.html").await;
    let referer = format!("{}/", server.uri());
    Mock::given(path("/i.js"))
        .and(query_param("o", "json"))
        .and(query_param("q", "xenopus laevis"))
        .and(query_param("vqd", VQD))
        .and(query_param("p", "1"))
        .and(query_param_is_missing("s"))
        .and(header("referer", referer.as_str()))
        .respond_with(serve("duckduckgo/i_page1.json"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/i.js"))
        .and(query_param("s", "100"))
        .and(query_param("vqd", VQD))
        .and(header("referer", referer.as_str()))
        .respond_with(serve("duckduckgo/i_page2.json"))
        .expect(1)
        .mount(&server)
        .await;
    let found = found(&ddg(&server), "xenopus laevis").await;
    let urls: Vec<&str> = found.iter().map(|c| c.image_url.as_str()).collect();
    assert_eq!(
        urls,
        [
            "https://upload.wikimedia.org/wikipedia/commons/4/4f/Xenopus_laevis_%28cropped%29.jpg",
            "http://www.amphibians.example/img.php?id=31&size=large&fbclid=IwAR0",
            // Protocol-relative: https, though i.js came over http.
            "https://static.example.com/frog.png",
            "https://live.staticflickr.com/65535/1234_abcd_b.jpg",
        ]
    );
    assert_eq!((found[0].width, found[0].height), (Some(1600), Some(1067)));
    // Dimensions sent as strings still count.
    assert_eq!((found[1].width, found[1].height), (Some(1200), Some(900)));
    assert_eq!(found[1].title.as_deref(), Some("Xénope lisse — 非洲爪蟾"));
    assert_eq!(
        found[0].thumbnail_url.as_ref().unwrap().as_str(),
        "https://tse1.mm.bing.net/th?id=OIP.Qx9ZkF1d0zWn8vX2oH3sAgHaE8&pid=Api"
    );
    assert_eq!(found[3].rank, 3);
    assert!(found.iter().all(|c| c.engine == "duckduckgo"));
}

#[tokio::test]
async fn empty_results_are_empty() {
    let server = MockServer::start().await;
    token_page(&server, "duckduckgo/search_page.html").await;
    Mock::given(path("/i.js"))
        .respond_with(serve("duckduckgo/i_empty.json"))
        .expect(1)
        .mount(&server)
        .await;
    assert!(found(&ddg(&server), "xenopus laevis").await.is_empty());
}

#[tokio::test]
async fn a_bot_check_instead_of_the_page_is_blocked() {
    let server = MockServer::start().await;
    token_page(&server, "duckduckgo/bot_check.html").await;
    let err = failure(&ddg(&server), "xenopus laevis").await;
    assert!(matches!(err, SearchError::Blocked { .. }), "{err}");
}

#[tokio::test]
async fn a_page_without_token_is_a_parse_error() {
    let server = MockServer::start().await;
    token_page(&server, "bing/changed_layout.html").await;
    let err = failure(&ddg(&server), "xenopus laevis").await;
    assert!(err.to_string().contains("vqd"), "{err}");
}

#[tokio::test]
async fn a_rejected_token_is_blocked_and_bad_json_is_explained() {
    let cases: [(ResponseTemplate, &str); 3] = [
        (ResponseTemplate::new(403), "rejected the vqd token"),
        (serve("openverse/truncated.json"), "truncated JSON"),
        (serve("common/garbage.bin"), "binary data"),
    ];
    for (resp, expected) in cases {
        let server = MockServer::start().await;
        token_page(&server, "duckduckgo/search_page.html").await;
        Mock::given(path("/i.js"))
            .respond_with(resp)
            .mount(&server)
            .await;
        let err = failure(&ddg(&server), "xenopus laevis").await;
        assert!(err.to_string().contains(expected), "{expected}: {err}");
    }
}

#[tokio::test]
async fn a_refused_search_page_is_blocked() {
    let server = serving("/", ResponseTemplate::new(403)).await;
    let err = failure(&ddg(&server), "xenopus laevis").await;
    assert!(matches!(err, SearchError::Blocked { .. }), "{err}");
    assert!(err.to_string().contains("403"), "{err}");
}

#[tokio::test]
async fn sends_its_own_user_agent_on_both_requests() {
    let server = MockServer::start().await;
    let ua = "Mozilla/5.0 (X11; Linux x86_64) frog-lab";
    Mock::given(path("/"))
        .and(header("user-agent", ua))
        .respond_with(serve("duckduckgo/search_page.html"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/i.js"))
        .and(header("user-agent", ua))
        .respond_with(serve("duckduckgo/i_empty.json"))
        .expect(1)
        .mount(&server)
        .await;
    let found = found(&ddg(&server).with_user_agent(ua), "xenopus laevis").await;
    assert!(found.is_empty());
}

/// `next` comes from the response: when it points off the configured origin it is
/// fetched as untrusted, so the SSRF policy refuses a private or loopback address and
/// the first page's results are kept.
#[tokio::test]
async fn a_next_link_to_another_origin_is_fetched_as_untrusted() {
    let other = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(serve("duckduckgo/i_page2.json"))
        .mount(&other)
        .await;
    let server = MockServer::start().await;
    token_page(&server, "duckduckgo/search_page.html").await;
    let mut page1: serde_json::Value =
        serde_json::from_slice(&common::fixture("duckduckgo/i_page1.json")).unwrap();
    page1["next"] = format!(
        "http://localhost:{}/i.js?q=xenopus&s=100&vqd={VQD}",
        other.address().port()
    )
    .into();
    Mock::given(path("/i.js"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(page1.to_string(), "application/json; charset=utf-8"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let found = found(&ddg(&server), "xenopus laevis").await;
    assert_eq!(found.len(), 3, "the first page's three images are kept");
    let reached = other.received_requests().await.unwrap_or_default();
    assert!(
        reached.is_empty(),
        "the next link was fetched as trusted: {reached:?}"
    );
}

#[tokio::test]
async fn the_no_js_page_gives_its_token_in_the_hidden_form_field() {
    const FORM_VQD: &str = "4-20361418380427916519446457098858011536";
    let server = MockServer::start().await;
    token_page(&server, "duckduckgo/search_page_nojs.html").await;
    Mock::given(path("/i.js"))
        .and(query_param("vqd", FORM_VQD))
        .respond_with(serve("duckduckgo/i_page2.json"))
        .expect(1)
        .mount(&server)
        .await;
    let found = found(&ddg(&server), "xenopus laevis").await;
    assert!(!found.is_empty(), "the results asked with the form's token");
}
