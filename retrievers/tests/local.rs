//! The local-folder engine over fixtures/retrievers/local.

mod common;

use common::{failure, fixture_path, found};
use iat2i_retrievers::SearchError;
use iat2i_retrievers::engines::LocalFolder;

#[tokio::test]
async fn matches_captions_sidecars_and_file_names() {
    let local = LocalFolder::new(fixture_path("local"));
    let found = found(&local, "frog mascot").await;
    assert_eq!(found.len(), 1, "{found:?}");
    let c = &found[0];
    assert_eq!(c.image_url.scheme(), "file");
    assert!(c.image_url.path().ends_with("/mascot/frog-mascot.png"));
    assert_eq!(c.title.as_deref(), Some("Froggy the mascot"));
    assert_eq!(c.creator.as_deref(), Some("ACME design team"));
    assert_eq!(c.license.as_ref().unwrap().code, "proprietary");
    assert_eq!(c.mime.as_deref(), Some("image/png"));

    let found = common::found(&local, "ACME logo").await;
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
    let frogs = found(&local, "frog").await;
    assert!(
        frogs
            .iter()
            .all(|c| !c.image_url.path().contains(".hidden"))
    );
    let notes = found(&local, "image ignored").await;
    assert!(notes.is_empty(), "{notes:?}");
    // A broken JSON sidecar falls back to the file name.
    let broken = found(&local, "broken sidecar").await;
    assert_eq!(broken.len(), 1);
    assert_eq!(broken[0].title.as_deref(), Some("broken-sidecar"));
    assert!(found(&local, "zebra").await.is_empty());
}

#[tokio::test]
async fn a_missing_folder_is_a_configuration_error() {
    let local = LocalFolder::new("/nonexistent/iat2i/assets");
    let err = failure(&local, "x").await;
    assert!(matches!(err, SearchError::Config { .. }), "{err}");
    assert!(
        err.to_string().contains("/nonexistent/iat2i/assets"),
        "{err}"
    );
}
