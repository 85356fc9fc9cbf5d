//! Models and stores default to the user's cache directory, overridable with
//! IAT2I_CACHE_DIR (its own test binary, because it sets environment variables).

use std::path::PathBuf;

use iat2i_selectors::{ClipModelSource, SelectorConfig, default_cache_dir};

#[test]
fn models_and_stores_live_in_the_user_cache_never_the_working_directory() {
    let home = tempfile::tempdir().unwrap();
    // SAFETY: the only test in this binary; no other thread reads the environment.
    unsafe {
        std::env::remove_var("IAT2I_CACHE_DIR");
        std::env::set_var("XDG_CACHE_HOME", home.path());
    }
    let user = home.path().join("iat2i");
    assert_eq!(default_cache_dir(), user);
    let config = SelectorConfig::default();
    assert_eq!(config.resolved_cache_dir(), user);
    assert_eq!(
        ClipModelSource::default().model_cache_dir(),
        Some(user.join("models")),
        "the default CLIP model is not downloaded into ./.fastembed_cache"
    );
    assert_eq!(
        config.resolved_model(),
        ClipModelSource::Default {
            cache_dir: Some(user.join("models"))
        }
    );

    let mine = tempfile::tempdir().unwrap();
    unsafe { std::env::set_var("IAT2I_CACHE_DIR", mine.path()) };
    assert_eq!(default_cache_dir(), mine.path());
    assert_eq!(
        ClipModelSource::default().model_cache_dir(),
        Some(mine.path().join("models"))
    );
    // An explicit setting wins over the environment, for the store and the model alike.
    let explicit = PathBuf::from("/srv/iat2i-cache");
    let config = SelectorConfig::default().cache_dir(&explicit);
    assert_eq!(config.resolved_cache_dir(), explicit);
    assert_eq!(
        config.resolved_model().model_cache_dir(),
        Some(explicit.join("models"))
    );
    // A relative override is made absolute once, so a job's later `cd` does not move it.
    unsafe { std::env::set_var("IAT2I_CACHE_DIR", "rel-cache") };
    assert!(default_cache_dir().is_absolute());
}
