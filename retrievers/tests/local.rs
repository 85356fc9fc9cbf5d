//! The local-folder engine over fixtures/retrievers/local.

mod common;

use common::fixture_path;
use iat2i_retrievers::engines::LocalFolder;
use iat2i_retrievers::{ImageSearch, SearchError, SearchQuery};

#[tokio::test]
async fn matches_captions_sidecars_and_file_names() {
    let local = LocalFolder::new(fixture_path("local"));
    let found = local
        .search("frog mascot", &SearchQuery::default())
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    let c = &found[0];
    assert_eq!(c.image_url.scheme(), "file");
    assert!(c.image_url.path().ends_with("/mascot/frog-mascot.png"));
    assert_eq!(c.title.as_deref(), Some("Froggy the mascot"));
    assert_eq!(c.creator.as_deref(), Some("ACME design team"));
    assert_eq!(c.license.as_ref().unwrap().code, "proprietary");
    assert_eq!(c.mime.as_deref(), Some("image/png"));

    let found = local
        .search("ACME logo", &SearchQuery::default())
        .await
        .unwrap();
    let names: Vec<&str> = found
        .iter()
        .map(|c| c.image_url.path().rsplit('/').next().unwrap())
        .collect();
    // The .txt caption names the logo; the mascot's caption only says ACME.
    assert_eq!(names, ["brand-logo-red.png", "frog-mascot.png"]);
    assert_eq!(
        found[0].title.as_deref(),
        Some("The ACME brand logo, red on white, approved 2024")
    );
    assert!(found[0].fused_score == 0.0 && found[1].rank == 1);
}

#[tokio::test]
async fn skips_hidden_files_non_images_and_bad_sidecars() {
    let local = LocalFolder::new(fixture_path("local"));
    let frogs = local.search("frog", &SearchQuery::default()).await.unwrap();
    assert!(
        frogs
            .iter()
            .all(|c| !c.image_url.path().contains(".hidden"))
    );
    let notes = local
        .search("image ignored", &SearchQuery::default())
        .await
        .unwrap();
    assert!(notes.is_empty(), "{notes:?}");
    // A broken JSON sidecar falls back to the file name.
    let broken = local
        .search("broken sidecar", &SearchQuery::default())
        .await
        .unwrap();
    assert_eq!(broken.len(), 1);
    assert_eq!(broken[0].title.as_deref(), Some("broken-sidecar"));
    assert!(
        local
            .search("zebra", &SearchQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_missing_folder_is_a_configuration_error() {
    let local = LocalFolder::new("/nonexistent/iat2i/assets");
    let err = local
        .search("x", &SearchQuery::default())
        .await
        .unwrap_err();
    assert!(matches!(err, SearchError::Config { .. }), "{err}");
    assert!(
        err.to_string().contains("/nonexistent/iat2i/assets"),
        "{err}"
    );
}
