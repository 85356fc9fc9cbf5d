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

/// A sidecar that is a symbolic link out of the folder is not read: its text must not
/// become a caption (and so reach the judge's prompt and the report).
#[cfg(unix)]
#[tokio::test]
async fn symlinked_sidecars_leading_out_of_the_folder_are_not_read() {
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.txt");
    std::fs::write(&secret, "logo SECRET-TOKEN-123").unwrap();
    std::fs::write(
        outside.path().join("secret.json"),
        r#"{"title": "logo SECRET-JSON", "license": "cc0"}"#,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let png = fixture_path("local/brand-logo-red.png");
    for name in ["logo-a", "logo-b"] {
        std::fs::copy(&png, dir.path().join(format!("{name}.png"))).unwrap();
    }
    std::os::unix::fs::symlink(&secret, dir.path().join("logo-a.txt")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.json"),
        dir.path().join("logo-b.json"),
    )
    .unwrap();
    // A symlink that stays inside the folder is still read.
    std::fs::copy(&png, dir.path().join("logo-c.png")).unwrap();
    std::fs::write(dir.path().join("captions.txt"), "logo inside caption").unwrap();
    std::os::unix::fs::symlink(
        dir.path().join("captions.txt"),
        dir.path().join("logo-c.txt"),
    )
    .unwrap();
    let found = found(&LocalFolder::new(dir.path()), "logo").await;
    let titles: Vec<&str> = found.iter().filter_map(|c| c.title.as_deref()).collect();
    assert_eq!(found.len(), 3, "{titles:?}");
    for c in &found {
        let t = c.title.as_deref().unwrap_or("");
        assert!(!t.contains("SECRET"), "{t}");
        assert!(c.license.is_none(), "{c:?}");
    }
    assert!(titles.contains(&"logo inside caption"), "{titles:?}");
    assert!(
        titles.contains(&"logo-a") && titles.contains(&"logo-b"),
        "{titles:?}"
    );
}
