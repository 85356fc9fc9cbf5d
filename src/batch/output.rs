//! A job's files, each written to a temporary name, synced and renamed into place, so a
//! crash leaves either the old file, no file, or the complete new one.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::BatchError;
use super::manifest::Job;
use crate::pipeline::Outcome;
use crate::report::Report;

/// Write `bytes` to `path` atomically: a temporary file beside it, fsync, rename, and an
/// fsync of the folder so the rename itself is durable.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), BatchError> {
    let io = |source| BatchError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Ok(d) = std::fs::File::open(dir) {
        // Some file systems cannot sync a directory; the rename is still atomic there.
        let _ = d.sync_all();
    }
    Ok(())
}

/// The files of one finished job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutputs {
    /// The job's folder.
    pub dir: PathBuf,
}

/// What `report.json` holds: the job, its fingerprint and the pipeline's report.
#[derive(Serialize)]
struct JobReport<'a> {
    job: &'a Job,
    fingerprint: &'a str,
    report: &'a Report,
}

/// What `reference.json` holds.
#[derive(Serialize)]
struct ReferenceInfo<'a> {
    file: String,
    image_url: String,
    source_page: Option<String>,
    title: Option<&'a str>,
    license: Option<&'a iat2i_retrievers::License>,
    creator: Option<&'a str>,
    engine: &'a str,
}

impl JobOutputs {
    /// Write a job's image, its reference and report under `<out>/<id>/`; the report goes
    /// last, so its presence means the folder is complete.
    pub fn write(
        out: &Path,
        job: &Job,
        fingerprint: &str,
        outcome: &Outcome,
    ) -> Result<JobOutputs, BatchError> {
        let dir = out.join(&job.id);
        write_atomic(
            &dir.join("image.png"),
            &png_bytes(&outcome.image.bytes, &outcome.image.mime),
        )?;
        if let Some(r) = &outcome.reference {
            let ext = match r.mime.as_str() {
                "image/jpeg" => "jpg",
                "image/webp" => "webp",
                "image/gif" => "gif",
                _ => "png",
            };
            let file = format!("reference.{ext}");
            write_atomic(&dir.join(&file), &r.bytes)?;
            let info = ReferenceInfo {
                file,
                image_url: r.candidate.image_url.to_string(),
                source_page: r.candidate.source_page.as_ref().map(|u| u.to_string()),
                title: r.candidate.title.as_deref(),
                license: r.candidate.license.as_ref(),
                creator: r.candidate.creator.as_deref(),
                engine: &r.candidate.engine,
            };
            write_json(&dir.join("reference.json"), &info)?;
        }
        Self::write_report(&dir, job, fingerprint, &outcome.report)?;
        Ok(JobOutputs { dir })
    }

    /// Write only `report.json` (a failed job's partial report), named `report.failed.json`
    /// so that it never passes for a complete output.
    pub fn write_failed(
        out: &Path,
        job: &Job,
        fingerprint: &str,
        report: &Report,
    ) -> Result<(), BatchError> {
        let dir = out.join(&job.id);
        let body = JobReport {
            job,
            fingerprint,
            report,
        };
        write_json(&dir.join("report.failed.json"), &body)
    }

    fn write_report(
        dir: &Path,
        job: &Job,
        fingerprint: &str,
        report: &Report,
    ) -> Result<(), BatchError> {
        let body = JobReport {
            job,
            fingerprint,
            report,
        };
        write_json(&dir.join("report.json"), &body)
    }

    /// Whether `<out>/<id>/` already holds complete outputs for this fingerprint (a run
    /// killed after writing its files but before the journal said done).
    pub fn complete(out: &Path, job: &Job, fingerprint: &str) -> bool {
        let dir = out.join(&job.id);
        let Ok(text) = std::fs::read(dir.join("report.json")) else {
            return false;
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&text) else {
            return false;
        };
        if v["fingerprint"] != fingerprint {
            return false;
        }
        std::fs::read(dir.join("image.png"))
            .ok()
            .is_some_and(|b| image::load_from_memory(&b).is_ok())
    }
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), BatchError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| BatchError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    write_atomic(path, &bytes)
}

/// PNG bytes of an image (re-encoded when the generator sent another format; the original
/// bytes when it cannot be decoded, which the summary then reports).
fn png_bytes(bytes: &[u8], mime: &str) -> Vec<u8> {
    if mime == "image/png" {
        return bytes.to_vec();
    }
    match image::load_from_memory(bytes) {
        Ok(img) => {
            let mut out = std::io::Cursor::new(Vec::new());
            match img.write_to(&mut out, image::ImageFormat::Png) {
                Ok(()) => out.into_inner(),
                Err(_) => bytes.to_vec(),
            }
        }
        Err(_) => bytes.to_vec(),
    }
}
