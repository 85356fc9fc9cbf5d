//! MultiSearch over real engines served by wiremock: fusion, dedup and failures.

mod common;

use std::sync::Arc;

use common::{answer, base, http, serve};
use iat2i_retrievers::engines::{Bing, DuckDuckGo, Openverse, WikimediaCommons};
use iat2i_retrievers::{ImageSearch, MultiSearch, SearchQuery};
use wiremock::matchers::{path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn fuses_four_engines_and_reports_the_failed_one() {
    let server = MockServer::start().await;
    Mock::given(path("/images/search"))
        .and(query_param("first", "1"))
        .respond_with(serve("bing/search_page1.html"))
        .mount(&server)
        .await;
    answer(&server, "/images/search", serve("bing/no_results.html")).await;
    answer(&server, "/", serve("duckduckgo/search_page.html")).await;
    answer(&server, "/i.js", serve("duckduckgo/i_page2.json")).await;
    answer(&server, "/w/api.php", serve("wikimedia/search_page2.json")).await;
    Mock::given(path("/w/api.php"))
        .and(query_param("gsrsearch", "xenopus laevis filetype:bitmap"))
        .respond_with(serve("wikimedia/search_page1.json"))
        .with_priority(1)
        .mount(&server)
        .await;
    let down = ResponseTemplate::new(500).set_body_string("upstream down");
    answer(&server, "/v1/images/", down).await;
    let h = http();
    let b = base(&server);
    let engines: Vec<Arc<dyn ImageSearch>> = vec![
        Arc::new(Bing::new(h.clone()).with_base_url(b.clone())),
        Arc::new(DuckDuckGo::new(h.clone()).with_base_url(b.clone())),
        Arc::new(WikimediaCommons::new(h.clone()).with_base_url(b.clone())),
        Arc::new(Openverse::new(h).with_base_url(b)),
    ];
    let multi = MultiSearch::new(engines);
    let r = multi
        .search(&["xenopus laevis".to_string()], &SearchQuery::default())
        .await;

    assert_eq!(r.runs.len(), 4);
    let ov = r.runs.iter().find(|x| x.engine == "openverse").unwrap();
    assert!(ov.error.as_deref().unwrap().contains("500"), "{ov:?}");
    assert!(
        r.runs
            .iter()
            .filter(|x| x.engine != "openverse")
            .all(|x| x.error.is_none() && x.count > 0)
    );

    // The cropped Xenopus photo is Bing's #1 and Wikimedia's #1: one candidate, on top,
    // with the licence only Wikimedia knew.
    let top = &r.candidates[0];
    assert!(
        top.image_url
            .as_str()
            .ends_with("Xenopus_laevis_%28cropped%29.jpg"),
        "{top:?}"
    );
    assert!((top.fused_score - 2.0 / 61.0).abs() < 1e-12);
    assert_eq!(top.license.as_ref().map(|l| l.code.as_str()), Some("cc-by"));
    let cropped = r
        .candidates
        .iter()
        .filter(|c| {
            c.image_url
                .as_str()
                .contains("Xenopus_laevis_%28cropped%29")
        })
        .count();
    assert_eq!(cropped, 1);
    // The flickr photo from DuckDuckGo's page is there once.
    let flickr = r
        .candidates
        .iter()
        .filter(|c| c.image_url.as_str().contains("staticflickr"))
        .count();
    assert_eq!(flickr, 1);
    // 4 Bing + 1 DuckDuckGo + 3 Wikimedia, minus the one shared image.
    assert_eq!(
        r.candidates.len(),
        7,
        "{:#?}",
        r.candidates
            .iter()
            .map(|c| c.image_url.as_str())
            .collect::<Vec<_>>()
    );
    assert!(
        r.candidates
            .windows(2)
            .all(|w| w[0].fused_score >= w[1].fused_score)
    );
}
