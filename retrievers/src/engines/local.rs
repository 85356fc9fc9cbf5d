//! An offline asset library: image files in a folder, with optional sidecar captions.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::Deserialize;
use url::Url;

use super::util::{image_mime, plain_title};
use crate::{Candidate, ImageSearch, License, SearchError, SearchQuery};

const NAME: &str = "local";
/// Folder depth searched below the root.
const MAX_DEPTH: usize = 8;
/// Files looked at, at most, per search.
const MAX_FILES: usize = 200_000;
/// Sidecar files larger than this are ignored.
const MAX_SIDECAR_BYTES: u64 = 64 * 1024;
const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff"];

/// Images in a folder (a brand's approved images, say), matched by caption and file
/// name: `logo-red.png` with an optional `logo-red.txt` caption, or a
/// `logo-red.json` sidecar such as
/// `{"caption": "…", "title": "…", "tags": ["…"], "license": "cc-by-4.0", "creator": "…"}`.
///
/// Candidates carry `file://` URLs. Hidden files and folders are skipped, and
/// symbolic links leading out of the folder are not followed. The selector reads
/// `file://` candidates only under folders it is told about
/// (`iat2i_selectors::SelectorConfig::allow_local_dir`), so give it this folder too.
#[derive(Debug, Clone)]
pub struct LocalFolder {
    dir: PathBuf,
}

impl LocalFolder {
    /// Search the images under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LocalFolder { dir: dir.into() }
    }
}

#[async_trait]
impl ImageSearch for LocalFolder {
    fn name(&self) -> &str {
        NAME
    }

    async fn search(&self, query: &str, opts: &SearchQuery) -> Result<Vec<Candidate>, SearchError> {
        let dir = self.dir.clone();
        let query = query.to_string();
        let limit = opts.limit;
        tokio::task::spawn_blocking(move || search_folder(&dir, &query, limit))
            .await
            .map_err(|e| SearchError::Config {
                engine: NAME.to_string(),
                detail: format!("folder search task failed: {e}"),
            })?
    }
}

/// What a sidecar file says about an image.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Sidecar {
    #[serde(default, alias = "description", alias = "alt")]
    pub(crate) caption: Option<String>,
    #[serde(default)]
    pub(crate) title: Option<String>,
    #[serde(default)]
    pub(crate) tags: Tags,
    #[serde(default)]
    pub(crate) license: Option<String>,
    #[serde(default, alias = "author", alias = "artist")]
    pub(crate) creator: Option<String>,
}

/// Tags as a list or as one comma-separated string.
#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
pub(crate) enum Tags {
    /// No tags.
    #[default]
    None,
    /// A list.
    List(Vec<String>),
    /// One string.
    One(String),
}

impl Tags {
    fn joined(&self) -> String {
        match self {
            Tags::None => String::new(),
            Tags::List(v) => v.join(" "),
            Tags::One(s) => s.clone(),
        }
    }
}

fn search_folder(dir: &Path, query: &str, limit: usize) -> Result<Vec<Candidate>, SearchError> {
    let root = dir.canonicalize().map_err(|e| SearchError::Config {
        engine: NAME.to_string(),
        detail: format!("cannot open folder {}: {e}", dir.display()),
    })?;
    let terms = tokens(query);
    if terms.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    collect_images(&root, &root, 0, &mut files);
    let mut scored: Vec<(f64, PathBuf, Sidecar)> = files
        .into_iter()
        .filter_map(|path| {
            let side = read_sidecar(&root, &path);
            let s = score(&terms, &path, &side);
            (s > 0.0).then_some((s, path, side))
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    Ok(scored
        .into_iter()
        .filter_map(|(_, path, side)| candidate(&path, side, query))
        .take(limit)
        .enumerate()
        .map(|(i, mut c)| {
            c.rank = i as u32;
            c
        })
        .collect())
}

fn collect_images(root: &Path, dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        if out.len() >= MAX_FILES {
            return;
        }
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let Ok(path) = entry.path().canonicalize() else {
            continue;
        };
        if !path.starts_with(root) {
            continue;
        }
        if path.is_dir() {
            if depth < MAX_DEPTH {
                collect_images(root, &path, depth + 1, out);
            }
        } else if is_image(&path) {
            out.push(path);
        }
    }
}

fn extension(path: &Path) -> String {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

fn is_image(path: &Path) -> bool {
    IMAGE_EXTENSIONS.contains(&extension(path).as_str())
}

/// A small regular file under `root`: a sidecar that is a symbolic link (or sits under
/// one) leading out of the folder is not read.
fn read_small(root: &Path, path: &Path) -> Option<String> {
    let real = path.canonicalize().ok()?;
    if !real.starts_with(root) {
        tracing::warn!(sidecar = %path.display(), "sidecar leads out of the folder; ignored");
        return None;
    }
    let meta = std::fs::metadata(&real).ok()?;
    if !meta.is_file() || meta.len() > MAX_SIDECAR_BYTES {
        return None;
    }
    std::fs::read_to_string(&real).ok()
}

/// The `.json` sidecar if it parses, else the `.txt` one as the caption; only files
/// inside `root` (canonical) are read.
pub(crate) fn read_sidecar(root: &Path, image: &Path) -> Sidecar {
    if let Some(side) = read_small(root, &image.with_extension("json"))
        .and_then(|json| serde_json::from_str::<Sidecar>(&json).ok())
    {
        return side;
    }
    Sidecar {
        caption: read_small(root, &image.with_extension("txt")).map(|s| s.trim().to_string()),
        ..Sidecar::default()
    }
}

/// Lower-case words of letters and digits.
pub(crate) fn tokens(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The share of query words found in the caption, title, tags or file name, plus a
/// bonus when the caption holds the whole query as a phrase.
pub(crate) fn score(terms: &[String], path: &Path, side: &Sidecar) -> f64 {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let text = format!(
        "{} {} {} {}",
        side.caption.as_deref().unwrap_or(""),
        side.title.as_deref().unwrap_or(""),
        side.tags.joined(),
        stem
    );
    let words = tokens(&text);
    if terms.is_empty() {
        return 0.0;
    }
    let hits = terms.iter().filter(|t| words.contains(t)).count();
    let mut s = hits as f64 / terms.len() as f64;
    if hits > 0 && words.join(" ").contains(&terms.join(" ")) {
        s += 0.5;
    }
    s
}

fn candidate(path: &Path, side: Sidecar, query: &str) -> Option<Candidate> {
    let url = Url::from_file_path(path).ok()?;
    let mut c = Candidate::new(url, NAME, query);
    c.title = side
        .title
        .clone()
        .or(side.caption.clone())
        .or_else(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .and_then(|t| plain_title(&t));
    c.mime = image_mime(&extension(path));
    c.creator = side.creator;
    c.license = side.license.map(|l| License {
        code: l.trim().to_ascii_lowercase(),
        version: None,
        url: None,
    });
    Some(c)
}
