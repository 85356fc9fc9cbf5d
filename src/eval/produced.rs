//! What an arm produced for a prompt, as the judges may see it: only the outputs the arm's
//! journal says are current.
//!
//! A job folder can hold files from an earlier run: a re-generation that failed leaves
//! the previous `image.png` and `report.json` in place, and a run with another image model
//! (or a prompt set rewritten under the same ids) leaves the old images until the job runs
//! again. Judging those would score the wrong image, so a folder counts only when its
//! journal row is `done` for the fingerprint this evaluation would run now and its report
//! names that fingerprint; anything else has no image and says why.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde_json::Value;

use super::judge::Shown;
use crate::batch::{JobRow, JobState};
use crate::generator::sniff_mime;
use crate::report::Report;

/// What one arm produced for one prompt.
#[derive(Debug, Clone, Default)]
pub(crate) struct Produced {
    pub image: Option<Shown>,
    pub reference: Option<Shown>,
    pub report: Option<Report>,
    pub row: Option<JobRow>,
    /// Why there is no image to judge, when there is none.
    pub missing: Option<String>,
}

/// Why `row` does not vouch for outputs made with `fingerprint` (`None`: it does).
fn not_current(row: Option<&JobRow>, fingerprint: &str) -> Option<String> {
    let Some(row) = row else {
        return Some("not generated: the arm's journal has no row for this prompt".into());
    };
    match row.state {
        JobState::Done if row.fingerprint == fingerprint => None,
        JobState::Done => Some(
            "not generated with the current settings (the journal's image was made with \
             another model, prompt or configuration); run the evaluation again to generate it"
                .into(),
        ),
        state => {
            Some(row.error_message.clone().unwrap_or_else(|| {
                format!("no current image: the journal says {}", state.as_str())
            }))
        }
    }
}

/// A job folder's image, reference and report, when the journal `row` says they are
/// current for `fingerprint` and the folder is complete (its report, written last, names
/// the same fingerprint); otherwise no image, and why.
pub(crate) fn read_outputs(dir: &Path, row: Option<&JobRow>, fingerprint: &str) -> Produced {
    let mut out = Produced {
        row: row.cloned(),
        ..Produced::default()
    };
    if let Some(why) = not_current(row, fingerprint) {
        out.missing = Some(why);
        return out;
    }
    let shown = |path: PathBuf| {
        std::fs::read(path).ok().map(|b| Shown {
            mime: sniff_mime(&b).unwrap_or("image/png").to_string(),
            bytes: Bytes::from(b),
        })
    };
    let body = std::fs::read(dir.join("report.json"))
        .ok()
        .and_then(|t| serde_json::from_slice::<Value>(&t).ok())
        .filter(|v| v.get("fingerprint").and_then(Value::as_str) == Some(fingerprint));
    let Some(report) =
        body.and_then(|v| serde_json::from_value::<Report>(v.get("report")?.clone()).ok())
    else {
        out.missing = Some(format!(
            "the journal says done, but {} has no readable report for the current settings",
            dir.display()
        ));
        return out;
    };
    out.report = Some(report);
    out.image = shown(dir.join("image.png"));
    if out.image.is_none() {
        out.missing = Some(format!("{} has no readable image.png", dir.display()));
    }
    out.reference = std::fs::read_dir(dir).ok().and_then(|entries| {
        entries
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_stem().is_some_and(|s| s == "reference")
                    && p.extension().is_some_and(|e| e != "json")
            })
            .and_then(shown)
    });
    out
}
