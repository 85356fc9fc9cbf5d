//! Where models and stores live by default: the user's cache directory, never the working
//! directory. A leaf module.

use std::path::PathBuf;

/// The environment variable that overrides the cache directory.
pub const CACHE_DIR_ENV: &str = "IAT2I_CACHE_DIR";

/// The cache directory used when none is configured: `$IAT2I_CACHE_DIR` when set, else
/// `iat2i` under the user's cache directory (`$XDG_CACHE_HOME` or `~/.cache` on Linux,
/// `~/Library/Caches` on macOS, `%LOCALAPPDATA%` on Windows), else under the temporary
/// directory. Models go to `<cache>/models`, the embedded vector store to
/// `<cache>/qdrant-edge`. Always absolute, so a job started in `/` or in a fresh folder
/// finds the same models.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(CACHE_DIR_ENV).filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        if dir.is_absolute() {
            return dir;
        }
        if let Ok(cwd) = std::env::current_dir() {
            return cwd.join(dir);
        }
    }
    dirs::cache_dir()
        .filter(|d| d.is_absolute())
        .unwrap_or_else(std::env::temp_dir)
        .join("iat2i")
}
