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

/// What `reference.json` holds: the first reference's fields at the top (as before one
/// reference per entity), and every reference in `all`.
#[derive(Serialize)]
struct ReferenceFile<'a> {
    #[serde(flatten)]
    first: &'a ReferenceInfo<'a>,
    all: &'a [ReferenceInfo<'a>],
}

/// One reference written beside the image.
#[derive(Serialize)]
struct ReferenceInfo<'a> {
    file: String,
    /// The entity it is the reference of, when the gate planned one per entity.
    entity: Option<&'a str>,
    image_url: String,
    source_page: Option<String>,
    title: Option<&'a str>,
    license: Option<&'a iat2i_retrievers::License>,
    creator: Option<&'a str>,
    engine: &'a str,
    /// `original`, or `thumbnail` when the original could not be had.
    source: iat2i_selectors::ReferenceSource,
    /// Why the file is not the original as downloaded, when it is not.
    source_note: Option<&'a str>,
}

/// The file name of reference `i` (from 0) of type `mime`: `reference.png`, then
/// `reference-2.png`, ...
fn reference_file(i: usize, mime: &str) -> String {
    match i {
        0 => format!("reference.{}", reference_ext(mime)),
        i => format!("reference-{}.{}", i + 1, reference_ext(mime)),
    }
}

/// The file extension for a reference of type `mime` (`png` when unknown).
pub(crate) fn reference_ext(mime: &str) -> &'static str {
    match mime {
        "image/jpeg" => "jpg",
        "image/webp" => "webp",
        "image/gif" => "gif",
        _ => "png",
    }
}

/// Before a job's files are written again: remove temporaries that a killed process left
/// (`.<name>.tmp-<pid>` of another pid), and an earlier run's reference files that this
/// run will not replace (another format, or no reference at all now), so the folder never
/// shows a reference the report does not name.
fn sweep_stale(dir: &Path, keep: &[String]) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let ours = format!(".tmp-{}", std::process::id());
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale_tmp = name.starts_with('.') && name.contains(".tmp-") && !name.ends_with(&ours);
        let stale_ref = (name.starts_with("reference.") || name.starts_with("reference-"))
            && !keep.contains(&name)
            && (keep.is_empty() || name != "reference.json");
        if (stale_tmp || stale_ref)
            && let Err(e) = std::fs::remove_file(entry.path())
        {
            tracing::warn!(file = %entry.path().display(), "cannot remove a stale file: {e}");
        }
    }
}

/// `<out>/<id>`, once the id is known to name a folder inside `out` (never `../x`, never
/// one of the batch's own files).
fn job_dir(out: &Path, job: &Job) -> Result<PathBuf, BatchError> {
    super::check_id(&job.id).map_err(|reason| BatchError::InvalidJob {
        id: job.id.clone(),
        reason,
    })?;
    Ok(out.join(&job.id))
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
        let dir = job_dir(out, job)?;
        let references: Vec<&iat2i_selectors::Reference> = if outcome.references.is_empty() {
            outcome.reference.iter().collect()
        } else {
            outcome.references.iter().collect()
        };
        let files: Vec<String> = references
            .iter()
            .enumerate()
            .map(|(i, r)| reference_file(i, &r.mime))
            .collect();
        sweep_stale(&dir, &files);
        write_atomic(
            &dir.join("image.png"),
            &png_bytes(&outcome.image.bytes, &outcome.image.mime),
        )?;
        // The entity of each reference sent, from the best round's record.
        let entities: Vec<Option<&str>> = outcome
            .report
            .rounds
            .iter()
            .find(|r| r.round == outcome.round)
            .map(|r| r.references.iter().map(|x| x.entity.as_deref()).collect())
            .unwrap_or_default();
        let mut infos = Vec::new();
        for (i, (r, file)) in references.iter().zip(files).enumerate() {
            write_atomic(&dir.join(&file), &r.bytes)?;
            infos.push(ReferenceInfo {
                file,
                entity: entities.get(i).copied().flatten(),
                image_url: r.candidate.image_url.to_string(),
                source_page: r.candidate.source_page.as_ref().map(|u| u.to_string()),
                title: r.candidate.title.as_deref(),
                license: r.candidate.license.as_ref(),
                creator: r.candidate.creator.as_deref(),
                engine: &r.candidate.engine,
                source: r.source,
                source_note: r.source_note.as_deref(),
            });
        }
        if let Some(first) = infos.first() {
            let body = ReferenceFile { first, all: &infos };
            write_json(&dir.join("reference.json"), &body)?;
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
        let dir = job_dir(out, job)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rerun_sweeps_dead_temporaries_and_a_reference_it_will_not_replace() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ours = format!(".image.png.tmp-{}", std::process::id());
        for name in [
            ".image.png.tmp-999999999",
            ours.as_str(),
            "reference.jpg",
            "reference-2.png",
            "reference-3.webp",
            "reference.json",
            "report.json",
        ] {
            std::fs::write(d.join(name), b"x").unwrap();
        }
        // The new run has two references, PNGs: the old JPEG and the old third entity's
        // reference go, the second stays to be rewritten, and so does the sidecar.
        sweep_stale(
            d,
            &[
                reference_file(0, "image/png"),
                reference_file(1, "image/png"),
            ],
        );
        let mut left: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![
                ours.clone(),
                "reference-2.png".into(),
                "reference.json".into(),
                "report.json".into()
            ]
        );
        // No reference this time: no reference file may stay behind.
        sweep_stale(d, &[]);
        assert!(!d.join("reference-2.png").exists());
        assert!(!d.join("reference.json").exists());
        assert!(d.join("report.json").exists());
    }
}
