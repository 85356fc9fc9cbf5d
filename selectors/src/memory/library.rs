//! A curated asset library: a folder of images (brand assets, mascots, style references)
//! indexed into the memory once, then recalled like any remembered reference.
//!
//! Captions come from sidecars next to each image: `logo.png` takes `logo.txt` (the caption)
//! and/or `logo.json`:
//!
//! ```json
//! {"caption": "the Acme mascot, a blue fox", "entities": ["acme fox"],
//!  "creator": "Acme design team", "license": "cc-by", "license_version": "4.0"}
//! ```
//!
//! (`title` and `description` are read as the caption, `tags` as entities; `license` may
//! also be an object `{"code", "version", "url"}`.) Curated assets count as cleared for use
//! (an open licence) unless their sidecar names another licence.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use iat2i_retrievers::License;
use serde::Deserialize;
use url::Url;

use super::{
    MemoryRecord, ReferenceMemory, SOURCE_LIBRARY, Write, WriteKind, content_hash, now_secs,
};
use crate::SelectError;
use crate::config::FetchConfig;
use crate::embed::Embedder;
use crate::fetch::prepare_image;

const IMAGE_EXTENSIONS: [&str; 7] = ["png", "jpg", "jpeg", "webp", "gif", "bmp", "tiff"];
const BATCH: usize = 16;

/// What indexing a folder did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexReport {
    /// The collection written to.
    pub collection: String,
    /// Images indexed (new or updated).
    pub indexed: usize,
    /// Files that were not indexed, and why.
    pub skipped: Vec<(PathBuf, String)>,
}

/// One asset with what its sidecars say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LibraryItem {
    /// The image file.
    pub path: PathBuf,
    /// Caption (from `.txt`, or the `.json`'s caption/title/description).
    pub caption: Option<String>,
    /// Entities it shows.
    pub entities: Vec<String>,
    /// Creator.
    pub creator: Option<String>,
    /// Licence, when the sidecar names one.
    pub license: Option<License>,
}

#[derive(Deserialize, Default)]
struct Sidecar {
    caption: Option<String>,
    title: Option<String>,
    description: Option<String>,
    #[serde(default)]
    entities: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    creator: Option<String>,
    author: Option<String>,
    license: Option<serde_json::Value>,
    license_version: Option<String>,
    license_url: Option<String>,
}

fn read_license(s: &Sidecar) -> Option<License> {
    let (code, version, url) = match s.license.as_ref()? {
        serde_json::Value::String(code) => (
            code.clone(),
            s.license_version.clone(),
            s.license_url.clone(),
        ),
        serde_json::Value::Object(o) => (
            o.get("code")?.as_str()?.to_string(),
            o.get("version").and_then(|v| v.as_str()).map(String::from),
            o.get("url").and_then(|v| v.as_str()).map(String::from),
        ),
        _ => return None,
    };
    Some(License {
        code: code.to_lowercase(),
        version,
        url: url.and_then(|u| Url::parse(&u).ok()),
    })
}

impl LibraryItem {
    /// The item for `path`, reading its `.txt` and `.json` sidecars when present.
    pub fn read(path: &Path) -> Result<Self, String> {
        let mut item = LibraryItem {
            path: path.to_path_buf(),
            ..LibraryItem::default()
        };
        if let Ok(text) = std::fs::read_to_string(path.with_extension("txt")) {
            let text = text.trim();
            if !text.is_empty() {
                item.caption = Some(text.to_string());
            }
        }
        let json = path.with_extension("json");
        if json.is_file() {
            let raw = std::fs::read_to_string(&json)
                .map_err(|e| format!("reading {}: {e}", json.display()))?;
            let s: Sidecar = serde_json::from_str(&raw)
                .map_err(|e| format!("{} is not a valid sidecar: {e}", json.display()))?;
            if item.caption.is_none() {
                item.caption = s
                    .caption
                    .clone()
                    .or_else(|| s.title.clone())
                    .or_else(|| s.description.clone());
            }
            item.entities = s.entities.iter().chain(&s.tags).cloned().collect();
            item.creator = s.creator.clone().or_else(|| s.author.clone());
            item.license = read_license(&s);
        }
        Ok(item)
    }
}

/// Image files under `dir`, recursively, in a stable order.
fn images_under(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            images_under(&p, out)?;
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        {
            out.push(p);
        }
    }
    Ok(())
}

struct Prepared {
    item: LibraryItem,
    url: Url,
    bytes: Bytes,
    mime: String,
    width: u32,
    height: u32,
    phash: String,
    image: image::DynamicImage,
}

fn prepare(path: &Path, fetch: &FetchConfig) -> Result<Prepared, String> {
    let item = LibraryItem::read(path)?;
    let real = std::fs::canonicalize(path).map_err(|e| format!("{e}"))?;
    let url = Url::from_file_path(&real).map_err(|()| "not an absolute path".to_string())?;
    let len = std::fs::metadata(&real).map_err(|e| e.to_string())?.len();
    if len > fetch.max_bytes as u64 {
        return Err(format!("larger than {} bytes", fetch.max_bytes));
    }
    let body = Bytes::from(std::fs::read(&real).map_err(|e| e.to_string())?);
    let img = prepare_image(body, None, fetch)?;
    Ok(Prepared {
        item,
        url,
        bytes: img.bytes,
        mime: img.mime,
        width: img.width,
        height: img.height,
        phash: img.hash.to_base64(),
        image: img.embed_image,
    })
}

impl ReferenceMemory {
    /// Index every image under `dir` (recursively) with its sidecar captions: embed it with
    /// `embedder`, keep its bytes in the blob cache and its vector and provenance in the
    /// model's collection. Indexing again updates the records (verdicts and counts stay).
    pub async fn index_folder(
        &self,
        dir: &Path,
        embedder: Arc<dyn Embedder>,
        fetch: &FetchConfig,
    ) -> Result<IndexReport, SelectError> {
        let mut files = Vec::new();
        images_under(dir, &mut files).map_err(|e| {
            SelectError::Config(format!("cannot read the folder {}: {e}", dir.display()))
        })?;
        let model = embedder.model_id();
        let mut report = IndexReport::default();
        for chunk in files.chunks(BATCH) {
            let paths = chunk.to_vec();
            let cfg = fetch.clone();
            let prepared = tokio::task::spawn_blocking(move || {
                paths
                    .into_iter()
                    .map(|p| {
                        let r = prepare(&p, &cfg);
                        (p, r)
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(|e| SelectError::Config(format!("reading the folder crashed: {e}")))?;
            let mut ok = Vec::new();
            for (path, r) in prepared {
                match r {
                    Ok(p) => ok.push(p),
                    Err(why) => report.skipped.push((path, why)),
                }
            }
            if ok.is_empty() {
                continue;
            }
            let images = ok.iter().map(|p| p.image.clone()).collect();
            let vectors = embedder.embed_images(images).await?;
            let Some(dim) = vectors.first().map(Vec::len) else {
                continue;
            };
            let spec = self.spec(&model, dim);
            report.collection = spec.name.clone();
            let ids: Vec<_> = ok.iter().map(|p| super::point_id(&model, &p.url)).collect();
            let mut known = self.get(&spec.name, &ids).await?;
            let now = now_secs();
            let writes = ok
                .into_iter()
                .zip(vectors)
                .zip(ids)
                .map(|((p, vector), id)| {
                    let known = known.remove(&id);
                    let kind = WriteKind::of(known.as_ref(), &vector);
                    let mut record = known.map(|r| r.record).unwrap_or_else(|| MemoryRecord {
                        first_seen: now,
                        ..MemoryRecord::default()
                    });
                    fill(&mut record, &p, &model, now);
                    Write {
                        id,
                        record,
                        vector,
                        bytes: Some(p.bytes),
                        kind,
                    }
                })
                .collect::<Vec<_>>();
            report.indexed += self.write(&spec, writes, None).await?;
        }
        Ok(report)
    }
}

fn fill(r: &mut MemoryRecord, p: &Prepared, model: &str, now: i64) {
    let item = &p.item;
    let mut c = iat2i_retrievers::Candidate::new(p.url.clone(), SOURCE_LIBRARY, "");
    c.title = item.caption.clone();
    c.creator = item.creator.clone();
    c.license = item.license.clone();
    r.set_provenance(&c);
    r.source = SOURCE_LIBRARY.into();
    if let Some(caption) = &item.caption {
        r.tag(caption, &item.entities);
    } else {
        r.tag("", &item.entities);
    }
    r.width = p.width;
    r.height = p.height;
    r.mime = p.mime.clone();
    r.original = true;
    r.content_hash = content_hash(&p.bytes);
    r.phash = p.phash.clone();
    r.model = model.to_string();
    r.last_seen = now;
}
