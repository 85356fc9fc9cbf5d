//! Finding the ONNX Runtime shared library where a user would have installed it.
//!
//! `ort` is built with `load-dynamic` (never `download-binaries`), so the library is
//! looked up at run time, in this order: `ORT_DYLIB_PATH`; the dynamic library path
//! (`LD_LIBRARY_PATH`, `DYLD_LIBRARY_PATH`); the `onnxruntime` Python wheel's `capi` folder in
//! the site-packages of `python3` (its active virtual environment, the user's and the
//! system's); a `.tools/` folder of this repository or of the working directory (where
//! `scripts/setup-ort.sh` installs it); and the standard library folders.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::SelectError;

/// The ONNX Runtime version ort 2.0.0-rc.15 is built for.
pub const ORT_VERSION: &str = "1.31.1";

/// The exact command that installs the runtime this crate expects.
pub const ORT_INSTALL: &str = "pip install onnxruntime==1.31.1";

/// File names of the library, most specific first.
const NAMES: &[&str] = &[
    "libonnxruntime.so.1.31.1",
    "libonnxruntime.so.1",
    "libonnxruntime.so",
    "libonnxruntime.1.31.1.dylib",
    "libonnxruntime.dylib",
    "onnxruntime.dll",
];

/// Where to look for ONNX Runtime. [`OrtSearch::from_environment`] gives the places a user
/// would have installed it; a test or an embedding application can give its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OrtSearch {
    /// An explicit library file (`ORT_DYLIB_PATH`).
    pub explicit: Option<PathBuf>,
    /// Folders searched in order for the library's usual file names.
    pub dirs: Vec<PathBuf>,
}

impl OrtSearch {
    /// Search only `dirs` (no `ORT_DYLIB_PATH`).
    pub fn in_dirs(dirs: impl IntoIterator<Item = impl Into<PathBuf>>) -> Self {
        OrtSearch {
            explicit: None,
            dirs: dirs.into_iter().map(Into::into).collect(),
        }
    }

    /// The places a user would have installed ONNX Runtime, in the order described in the
    /// module documentation.
    pub fn from_environment() -> Self {
        let explicit = std::env::var_os("ORT_DYLIB_PATH")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from);
        let mut dirs = Vec::new();
        for var in ["LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH"] {
            if let Some(v) = std::env::var_os(var) {
                dirs.extend(std::env::split_paths(&v).filter(|p| !p.as_os_str().is_empty()));
            }
        }
        dirs.extend(
            python_site_dirs()
                .into_iter()
                .map(|d| d.join("onnxruntime").join("capi")),
        );
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let cwd = std::env::current_dir().ok();
        for base in std::iter::once(repo).chain(cwd) {
            dirs.push(base.join(".tools/onnxruntime/onnxruntime/capi"));
        }
        dirs.extend(
            [
                "/usr/local/lib",
                "/usr/lib",
                "/usr/lib64",
                "/usr/lib/x86_64-linux-gnu",
                "/usr/lib/aarch64-linux-gnu",
                "/opt/homebrew/lib",
                "/opt/onnxruntime/lib",
            ]
            .map(PathBuf::from),
        );
        let mut seen = std::collections::HashSet::new();
        dirs.retain(|d| seen.insert(d.clone()));
        OrtSearch { explicit, dirs }
    }

    /// Every file this search would try, in order.
    pub fn candidates(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self.explicit.iter().cloned().collect();
        for dir in &self.dirs {
            out.extend(NAMES.iter().map(|n| dir.join(n)));
        }
        out
    }

    /// The first library file that exists, or an error listing every place looked at and the
    /// command that installs it.
    pub fn locate(&self) -> Result<PathBuf, SelectError> {
        if let Some(p) = &self.explicit
            && p.is_file()
        {
            return Ok(p.clone());
        }
        if let Some(found) = self
            .dirs
            .iter()
            .flat_map(|d| NAMES.iter().map(move |n| d.join(n)))
            .find(|p| p.is_file())
        {
            return Ok(found);
        }
        Err(SelectError::Embedding(not_found(self, &[])))
    }
}

fn not_found(search: &OrtSearch, failures: &[String]) -> String {
    let mut tried = Vec::new();
    match &search.explicit {
        Some(p) => tried.push(format!("ORT_DYLIB_PATH={} (not a file)", p.display())),
        None => tried.push("ORT_DYLIB_PATH (not set)".to_string()),
    }
    if !search.dirs.is_empty() {
        let dirs: Vec<String> = search
            .dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        tried.push(format!(
            "the folders {} (for {})",
            dirs.join(", "),
            NAMES.join(" / ")
        ));
    }
    tried.extend(failures.iter().cloned());
    format!(
        "ONNX Runtime {ORT_VERSION} was not found; tried {}. Install it with `{ORT_INSTALL}` \
         (the library is then site-packages/onnxruntime/capi/libonnxruntime.so.{ORT_VERSION}, \
         found automatically) or run `bash scripts/setup-ort.sh`, or set ORT_DYLIB_PATH to the \
         library file",
        tried.join("; ")
    )
}

/// The site-packages folders of `python3`: its active virtual environment, the user's and
/// the system's, as the interpreter reports them (none when there is no `python3`).
fn python_site_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV") {
        dirs.extend(glob_python(&PathBuf::from(venv).join("lib")));
    }
    let script = "import site, sysconfig\n\
                  paths = list(site.getsitepackages()) + [site.getusersitepackages(), \
                  sysconfig.get_paths()['purelib'], sysconfig.get_paths()['platlib']]\n\
                  print('\\n'.join(paths))";
    if let Ok(out) = std::process::Command::new("python3")
        .args(["-c", script])
        .stderr(std::process::Stdio::null())
        .output()
        && out.status.success()
    {
        dirs.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| PathBuf::from(l.trim())),
        );
    }
    dirs
}

/// `<lib>/python3*/site-packages` folders.
fn glob_python(lib: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(lib) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| e.path().join("site-packages"))
        .collect()
}

/// The library loaded in this process, once one was.
static LOADED: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Find ONNX Runtime with `search` and load it for this process (once: later calls return the
/// library already loaded). The error lists every place tried and how to install it.
pub fn load_onnx_runtime(search: &OrtSearch) -> Result<PathBuf, SelectError> {
    let mut loaded = LOADED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(path) = loaded.as_ref() {
        return Ok(path.clone());
    }
    let mut failures = Vec::new();
    let mut exists = false;
    for path in search.candidates() {
        if !path.is_file() {
            continue;
        }
        exists = true;
        match ort::init_from(&path) {
            Ok(_environment) => {
                tracing::debug!(path = %path.display(), "loaded ONNX Runtime");
                *loaded = Some(path.clone());
                return Ok(path);
            }
            Err(e) => failures.push(format!("{} did not load ({e})", path.display())),
        }
    }
    if !exists {
        return Err(SelectError::Embedding(not_found(search, &[])));
    }
    Err(SelectError::Embedding(not_found(search, &failures)))
}

/// The process's one ONNX Runtime environment (built on first use, after
/// [`load_onnx_runtime`]; every session shares it and its logger).
pub(crate) fn environment() -> Result<ort::environment::Environment, SelectError> {
    static ENVIRONMENT: Mutex<Option<ort::environment::Environment>> = Mutex::new(None);
    let mut env = ENVIRONMENT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(e) = env.as_ref() {
        return Ok(e.clone());
    }
    let built = ort::init()
        .with_name("iat2i")
        .build()
        .map_err(|e| SelectError::Embedding(format!("starting ONNX Runtime: {e}")))?;
    *env = Some(built.clone());
    Ok(built)
}

/// Where ONNX Runtime is found from the environment (without loading it), for tools and tests
/// that want to know before they start.
pub fn find_onnx_runtime() -> Result<PathBuf, SelectError> {
    OrtSearch::from_environment().locate()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_python_wheel_layout_is_found_and_the_error_lists_every_place() {
        let site = tempfile::tempdir().unwrap();
        let capi = site.path().join("onnxruntime/capi");
        let empty = tempfile::tempdir().unwrap();
        let search = OrtSearch::in_dirs([empty.path().to_path_buf(), capi.clone()]);
        let err = search.locate().unwrap_err().to_string();
        assert!(err.contains("ORT_DYLIB_PATH (not set)"), "{err}");
        assert!(err.contains(&empty.path().display().to_string()), "{err}");
        assert!(err.contains(&capi.display().to_string()), "{err}");
        assert!(err.contains("pip install onnxruntime==1.31.1"), "{err}");

        std::fs::create_dir_all(&capi).unwrap();
        std::fs::write(capi.join("libonnxruntime.so.1.31.1"), b"\x7fELF").unwrap();
        assert_eq!(
            search.locate().unwrap(),
            capi.join("libonnxruntime.so.1.31.1")
        );

        let explicit = OrtSearch {
            explicit: Some(site.path().join("missing.so")),
            dirs: Vec::new(),
        };
        let err = explicit.locate().unwrap_err().to_string();
        assert!(err.contains("missing.so (not a file)"), "{err}");
    }

    #[test]
    fn the_environment_search_covers_library_path_python_and_the_repo_tools() {
        let search = OrtSearch::from_environment();
        let dirs: Vec<String> = search
            .dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        assert!(
            dirs.iter()
                .any(|d| d.ends_with(".tools/onnxruntime/onnxruntime/capi")),
            "{dirs:?}"
        );
        assert!(dirs.iter().any(|d| d == "/usr/lib"), "{dirs:?}");
        if std::process::Command::new("python3")
            .arg("--version")
            .output()
            .is_ok()
        {
            assert!(
                dirs.iter()
                    .any(|d| d.contains("-packages/onnxruntime/capi")),
                "python3 is installed, so its site-packages are searched: {dirs:?}"
            );
        }
    }
}
