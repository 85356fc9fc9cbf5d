//! Wikimedia Commons: the MediaWiki API answer, licences and `continue` paging.

mod common;

use common::{base, failure, found, http, serve, serving};
use iat2i_retrievers::engines::WikimediaCommons;
use iat2i_retrievers::{LicensePolicy, SearchError};
use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn api(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/w/api.php"))
        .and(query_param("action", "query"))
        .and(query_param("format", "json"))
        .and(query_param("formatversion", "2"))
        .and(query_param("generator", "search"))
        .and(query_param("gsrsearch", "xenopus laevis filetype:bitmap"))
        .and(query_param("gsrnamespace", "6"))
        .and(query_param("prop", "imageinfo"))
        .and(query_param("iiprop", "url|size|mime|extmetadata"))
        .and(query_param("iiurlwidth", "640"))
        .and(header("user-agent", "frog-lab/1.0 (ops@frog-lab.example)"))
        .and(query_param_is_missing("gsroffset"))
        .respond_with(serve("wikimedia/search_page1.json"))
        .expect(1)
        .mount(server)
        .await;
    Mock::given(path("/w/api.php"))
        .and(query_param("gsroffset", "3"))
        .and(query_param("continue", "gsroffset||"))
        .respond_with(serve("wikimedia/search_page2.json"))
        .expect(1)
        .mount(server)
        .await;
}

fn commons(server: &MockServer) -> WikimediaCommons {
    WikimediaCommons::new(http()).with_base_url(base(server))
}

#[tokio::test]
async fn parses_files_licences_and_continues() {
    let server = MockServer::start().await;
    api(&server).await;
    let commons = commons(&server).with_user_agent("frog-lab/1.0 (ops@frog-lab.example)");
    let found = found(&commons, "xenopus laevis").await;
    let titles: Vec<&str> = found.iter().filter_map(|c| c.title.as_deref()).collect();
    // Ordered by the search `index`, not by the order of `pages`; the missing file is skipped.
    assert_eq!(
        titles,
        [
            "Xenopus laevis (cropped)",
            "Xenopus laevis 02",
            "Kröte und Krallenfrosch – 非洲爪蟾",
            "Xenopus tadpole"
        ]
    );
    let c = &found[0];
    assert_eq!(
        c.image_url.as_str(),
        "https://upload.wikimedia.org/wikipedia/commons/4/4f/Xenopus_laevis_%28cropped%29.jpg"
    );
    assert!(
        c.thumbnail_url
            .as_ref()
            .unwrap()
            .as_str()
            .contains("/thumb/4/4f/")
    );
    assert_eq!(
        c.source_page.as_ref().unwrap().as_str(),
        "https://commons.wikimedia.org/wiki/File:Xenopus_laevis_(cropped).jpg"
    );
    assert_eq!(
        (c.width, c.height, c.mime.as_deref()),
        (Some(1600), Some(1067), Some("image/jpeg"))
    );
    assert_eq!(c.creator.as_deref(), Some("Brian Gratwicke"));
    let lic = c.license.as_ref().unwrap();
    assert_eq!(
        (lic.code.as_str(), lic.version.as_deref()),
        ("cc-by", Some("2.0"))
    );
    assert_eq!(
        lic.url.as_ref().unwrap().as_str(),
        "https://creativecommons.org/licenses/by/2.0"
    );
    assert!(LicensePolicy::CommercialAndDerivatives.permits(Some(lic)));
    // The artist is HTML in extmetadata: only its text is kept.
    assert_eq!(found[1].creator.as_deref(), Some("Jörg Brückner"));
    let l1 = found[1].license.as_ref().unwrap();
    assert_eq!(
        (l1.code.as_str(), l1.version.as_deref()),
        ("cc-by-sa", Some("3.0"))
    );
    // Protocol-relative URLs become https (though the API was reached over http);
    // relative ones are resolved against the API URL.
    let host = server.address().ip().to_string();
    assert_eq!(found[2].image_url.scheme(), "https");
    assert_eq!(found[2].image_url.host_str(), Some("upload.wikimedia.org"));
    assert_eq!(
        found[2].source_page.as_ref().unwrap().host_str(),
        Some(host.as_str())
    );
    assert_eq!(found[2].license.as_ref().unwrap().code, "pd");
    assert_eq!(found[2].thumbnail_url, None);
    assert_eq!(found[3].license.as_ref().unwrap().code, "cc0");
    assert_eq!(
        found.iter().map(|c| c.rank).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
}

/// PHP encodes an empty map as `[]`: a file without metadata sends `extmetadata: []`.
#[tokio::test]
async fn a_file_whose_extmetadata_is_an_empty_array_is_kept() {
    let server = serving("/w/api.php", serve("wikimedia/licences.json")).await;
    let found = found(&commons(&server), "frog").await;
    assert_eq!(found.len(), 12);
    let bare = found
        .iter()
        .find(|c| c.title.as_deref() == Some("Frog no metadata"))
        .expect("the file without metadata is kept");
    assert_eq!(bare.license, None);
    assert_eq!(bare.creator, None);
    assert_eq!(
        bare.image_url.as_str(),
        "https://upload.wikimedia.org/wikipedia/commons/a/ab/Frog_no_metadata.jpg"
    );
    assert_eq!((bare.width, bare.height), (Some(1200), Some(900)));
}

#[tokio::test]
async fn no_query_part_means_no_results() {
    let server = MockServer::start().await;
    Mock::given(path("/w/api.php"))
        .respond_with(serve("wikimedia/empty.json"))
        .expect(1)
        .mount(&server)
        .await;
    assert!(found(&commons(&server), "qwxzzy").await.is_empty());
}

#[tokio::test]
async fn api_errors_and_broken_bodies_are_explained() {
    let cases: [(ResponseTemplate, &str); 3] = [
        (serve("wikimedia/api_error.json"), "API error badvalue"),
        (serve("common/garbage.bin"), "binary data"),
        (serve("bing/captcha.html"), "CAPTCHA"),
    ];
    for (resp, expected) in cases {
        let server = serving("/w/api.php", resp).await;
        let err = failure(&commons(&server), "x").await;
        assert!(err.to_string().contains(expected), "{expected}: {err}");
        assert!(matches!(
            err,
            SearchError::Parse { .. } | SearchError::Blocked { .. }
        ));
    }
}
