//! Manifests: the jobs of a batch, as JSONL (one object a line), CSV (a `prompt` column,
//! optional `id`, `edit_image`, `gate_mode`, `max_rounds`; other columns become metadata)
//! or plain text (one prompt a line). Bad lines are reported with their number and reason;
//! the valid jobs still run unless the caller is strict.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::BatchError;
use crate::gate::GateMode;

/// One job of a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Stable id: given, or derived from the job's content (`j-` and 12 hex digits).
    pub id: String,
    /// The manifest line it came from (1-based; the header of a CSV is line 1).
    pub line: usize,
    /// The prompt.
    pub prompt: String,
    /// An image to edit, relative to the manifest's folder unless absolute.
    pub edit_image: Option<PathBuf>,
    /// The gate mode for this job (default: the batch's).
    pub gate_mode: Option<GateMode>,
    /// The round budget for this job (default: the batch's).
    pub max_rounds: Option<u32>,
    /// Free-form data passed through to the job's report.
    pub metadata: serde_json::Value,
}

/// A manifest line that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineError {
    /// The line number (1-based).
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// A parsed manifest: the valid jobs and the bad lines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Manifest {
    /// The valid jobs, in manifest order.
    pub jobs: Vec<Job>,
    /// The bad lines.
    pub errors: Vec<LineError>,
}

/// The manifest formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object a line.
    Jsonl,
    /// Comma-separated values with a header.
    Csv,
    /// One prompt a line.
    Text,
}

impl Format {
    /// The format a file's extension says: `.jsonl`/`.ndjson`/`.json`, `.csv`, `.txt` or
    /// `.text` or no extension (text). Any other extension (`.toml`, `.yaml`, …) is `None`:
    /// read as text, its lines would become paid prompts, so the caller must say.
    pub fn of(path: &Path) -> Option<Format> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_lowercase)
            .as_deref()
        {
            Some("jsonl" | "ndjson" | "json") => Some(Format::Jsonl),
            Some("csv") => Some(Format::Csv),
            Some("txt" | "text") | None => Some(Format::Text),
            Some(_) => None,
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" | "json" => Ok(Format::Jsonl),
            "csv" => Ok(Format::Csv),
            "text" | "txt" => Ok(Format::Text),
            other => Err(format!(
                "{other:?} is not a manifest format: jsonl, csv or text"
            )),
        }
    }
}

/// The largest prompt a manifest may hold by default, in bytes (32 KiB): a prompt is sent
/// to the gate, the image model and the judge, and kept in the journal and contact sheet.
pub const MAX_PROMPT_BYTES: usize = 32 * 1024;

/// How a manifest is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManifestOptions {
    /// The format (default: from the file's extension; unknown extensions are refused).
    pub format: Option<Format>,
    /// The largest prompt accepted, in bytes; a longer one is a bad line.
    pub max_prompt_bytes: usize,
}

impl Default for ManifestOptions {
    fn default() -> Self {
        ManifestOptions {
            format: None,
            max_prompt_bytes: MAX_PROMPT_BYTES,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonJob {
    #[serde(default)]
    id: Option<String>,
    prompt: String,
    #[serde(default)]
    edit_image: Option<PathBuf>,
    #[serde(default)]
    gate_mode: Option<GateMode>,
    #[serde(default)]
    max_rounds: Option<u32>,
    #[serde(default)]
    metadata: Option<serde_json::Value>,
}

impl Manifest {
    /// Read and parse the manifest at `path` (format from its extension, prompts up to
    /// [`MAX_PROMPT_BYTES`]). Relative `edit_image` paths are resolved against the
    /// manifest's folder.
    pub fn load(path: &Path) -> Result<Manifest, BatchError> {
        Manifest::load_with(path, &ManifestOptions::default())
    }

    /// [`Manifest::load`] with options: a format for a file whose extension does not say
    /// it, a prompt size limit. A line that is not valid UTF-8 is a bad line (named by its
    /// number), not the end of the file.
    pub fn load_with(path: &Path, options: &ManifestOptions) -> Result<Manifest, BatchError> {
        let format = match options.format.or_else(|| Format::of(path)) {
            Some(f) => f,
            None => {
                return Err(BatchError::Manifest {
                    path: path.to_path_buf(),
                    reason: "its extension is not one of .jsonl, .ndjson, .json, .csv, .txt: \
                             say what it holds with --format jsonl|csv|text"
                        .into(),
                });
            }
        };
        let bytes = std::fs::read(path).map_err(|e| BatchError::Manifest {
            path: path.to_path_buf(),
            reason: format!("cannot read it: {e}"),
        })?;
        let mut m = Manifest::parse_bytes(&bytes, format, options.max_prompt_bytes);
        let dir = path.parent().unwrap_or(Path::new("."));
        for job in &mut m.jobs {
            if let Some(p) = &job.edit_image
                && p.is_relative()
            {
                job.edit_image = Some(dir.join(p));
            }
        }
        Ok(m)
    }

    /// Parse manifest text (prompts up to [`MAX_PROMPT_BYTES`]).
    pub fn parse(text: &str, format: Format) -> Manifest {
        Manifest::parse_bytes(text.as_bytes(), format, MAX_PROMPT_BYTES)
    }

    /// Parse manifest bytes: lines that are not UTF-8 and prompts over `max_prompt_bytes`
    /// are bad lines.
    pub fn parse_bytes(bytes: &[u8], format: Format, max_prompt_bytes: usize) -> Manifest {
        let mut m = match format {
            Format::Jsonl => parse_lines(bytes, parse_json_line),
            Format::Text => parse_lines(bytes, |line, n| {
                new_job(None, n, line.to_string(), None, None, None, None)
            }),
            Format::Csv => parse_csv(bytes),
        };
        m.refuse_long_prompts(max_prompt_bytes);
        m.reject_duplicates();
        m
    }

    fn refuse_long_prompts(&mut self, max: usize) {
        let (kept, long): (Vec<Job>, Vec<Job>) = std::mem::take(&mut self.jobs)
            .into_iter()
            .partition(|j| j.prompt.len() <= max);
        self.jobs = kept;
        for job in long {
            self.errors.push(LineError {
                line: job.line,
                reason: format!(
                    "the prompt is {} bytes, over the limit of {max} (--max-prompt-bytes)",
                    job.prompt.len()
                ),
            });
        }
    }

    /// Refuse the whole manifest when any line is bad.
    pub fn strict(self) -> Result<Manifest, BatchError> {
        if self.errors.is_empty() {
            Ok(self)
        } else {
            Err(BatchError::Strict {
                errors: self.errors,
            })
        }
    }

    fn reject_duplicates(&mut self) {
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut kept = Vec::with_capacity(self.jobs.len());
        for job in std::mem::take(&mut self.jobs) {
            if let Some(first) = seen.get(&job.id) {
                self.errors.push(LineError {
                    line: job.line,
                    reason: format!(
                        "duplicate job id {:?} (first on line {first}); give each job its own id",
                        job.id
                    ),
                });
                continue;
            }
            seen.insert(job.id.clone(), job.line);
            kept.push(job);
        }
        self.jobs = kept;
        self.errors.sort_by_key(|e| e.line);
    }
}

fn parse_lines(bytes: &[u8], parse: impl Fn(&str, usize) -> Result<Job, String>) -> Manifest {
    let mut m = Manifest::default();
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let n = i + 1;
        let raw = match std::str::from_utf8(raw) {
            Ok(r) => r,
            Err(e) => {
                m.errors.push(not_utf8(n, &e));
                continue;
            }
        };
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse(line, n) {
            Ok(job) => m.jobs.push(job),
            Err(reason) => m.errors.push(LineError { line: n, reason }),
        }
    }
    m
}

fn parse_json_line(line: &str, n: usize) -> Result<Job, String> {
    let j: JsonJob = serde_json::from_str(line).map_err(|e| format!("not a job object: {e}"))?;
    new_job(
        j.id,
        n,
        j.prompt,
        j.edit_image,
        j.gate_mode,
        j.max_rounds,
        j.metadata,
    )
}

fn not_utf8(line: usize, e: &std::str::Utf8Error) -> LineError {
    LineError {
        line,
        reason: format!(
            "not valid UTF-8 (byte {} of the line): save the manifest as UTF-8",
            e.valid_up_to() + 1
        ),
    }
}

fn parse_csv(bytes: &[u8]) -> Manifest {
    let mut m = Manifest::default();
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers = match reader
        .byte_headers()
        .map(|h| csv::StringRecord::from_byte_record(h.clone()))
    {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => {
            m.errors.push(LineError {
                line: 1,
                reason: format!("the CSV header is not valid UTF-8: {e}"),
            });
            return m;
        }
        Err(e) => {
            m.errors.push(LineError {
                line: 1,
                reason: format!("unreadable CSV header: {e}"),
            });
            return m;
        }
    };
    if !headers.iter().any(|h| h == "prompt") {
        m.errors.push(LineError {
            line: 1,
            reason: "the CSV header has no `prompt` column".into(),
        });
        return m;
    }
    for record in reader.byte_records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                m.errors.push(LineError {
                    line,
                    reason: format!("bad CSV row: {e}"),
                });
                continue;
            }
        };
        let line = record.position().map(|p| p.line() as usize).unwrap_or(0);
        let record = match csv::StringRecord::from_byte_record(record) {
            Ok(r) => r,
            Err(e) => {
                m.errors.push(LineError {
                    line,
                    reason: format!("not valid UTF-8 ({e}): save the manifest as UTF-8"),
                });
                continue;
            }
        };
        let line = record.position().map(|p| p.line() as usize).unwrap_or(0);
        if record.iter().all(str::is_empty) {
            continue;
        }
        match csv_job(&headers, &record, line) {
            Ok(job) => m.jobs.push(job),
            Err(reason) => m.errors.push(LineError { line, reason }),
        }
    }
    m
}

fn csv_job(
    headers: &csv::StringRecord,
    record: &csv::StringRecord,
    n: usize,
) -> Result<Job, String> {
    let mut fields = (None, String::new(), None, None, None);
    let mut metadata = serde_json::Map::new();
    for (h, v) in headers.iter().zip(record.iter()) {
        let value = (!v.is_empty()).then(|| v.to_string());
        match h {
            "id" => fields.0 = value,
            "prompt" => fields.1 = v.to_string(),
            "edit_image" => fields.2 = value.map(PathBuf::from),
            "gate_mode" => {
                fields.3 = value
                    .map(|v| v.parse::<GateMode>().map_err(|e| format!("gate_mode: {e}")))
                    .transpose()?
            }
            "max_rounds" => {
                fields.4 = value
                    .map(|v| {
                        v.parse::<u32>()
                            .map_err(|_| format!("max_rounds {v:?} is not a whole number"))
                    })
                    .transpose()?
            }
            other => {
                metadata.insert(other.to_string(), serde_json::Value::String(v.to_string()));
            }
        }
    }
    let meta = (!metadata.is_empty()).then_some(serde_json::Value::Object(metadata));
    new_job(fields.0, n, fields.1, fields.2, fields.3, fields.4, meta)
}

fn new_job(
    id: Option<String>,
    line: usize,
    prompt: String,
    edit_image: Option<PathBuf>,
    gate_mode: Option<GateMode>,
    max_rounds: Option<u32>,
    metadata: Option<serde_json::Value>,
) -> Result<Job, String> {
    let prompt = prompt.trim().to_string();
    if prompt.is_empty() {
        return Err("the prompt is empty".into());
    }
    if max_rounds == Some(0) {
        return Err("max_rounds must be at least 1".into());
    }
    let id = match id {
        Some(id) => {
            check_id(&id)?;
            id
        }
        None => derived_id(&prompt, edit_image.as_deref()),
    };
    Ok(Job {
        id,
        line,
        prompt,
        edit_image,
        gate_mode,
        max_rounds,
        metadata: metadata.unwrap_or(serde_json::Value::Null),
    })
}

/// Names in a batch's output folder that belong to the batch itself: a job named so would
/// write its folder over them (or they over it).
const BATCH_FILES: [&str; 4] = ["index.html", "summary.json", "eval.json", "eval.html"];

/// Ids name output folders: letters, digits, `-`, `_` and `.`, not starting with a dot,
/// and none of the batch's own files (`journal*.sqlite…`, `index.html`, `summary.json`).
pub fn check_id(id: &str) -> Result<(), String> {
    let lower = id.to_ascii_lowercase();
    if BATCH_FILES.contains(&lower.as_str())
        || (lower.starts_with("journal") && lower.contains(".sqlite"))
        || (lower.starts_with("judgments") && lower.contains(".sqlite"))
    {
        return Err(format!(
            "id {id:?} names one of the batch's own files in the output folder: choose another id"
        ));
    }
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "id {id:?} must be 1 to 128 letters, digits, '-', '_' or '.', not starting with '.'"
        ))
    }
}

/// The id of a job without one: a hash of what it asks for, so the same line gets the same
/// id in every run and on every shard.
pub fn derived_id(prompt: &str, edit_image: Option<&Path>) -> String {
    let mut h = Sha256::new();
    h.update(prompt.as_bytes());
    h.update([0]);
    if let Some(p) = edit_image {
        h.update(p.to_string_lossy().as_bytes());
    }
    format!("j-{}", &hex(&h.finalize())[..12])
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_reports_bad_lines_with_numbers_and_keeps_good_ones() {
        let text = "{\"id\":\"a\",\"prompt\":\"A red apple\",\"metadata\":{\"sku\":1}}\n\
                    \n\
                    # a comment\n\
                    {\"prompt\":\"\"}\n\
                    not json\n\
                    {\"prompt\":\"A pear\",\"gate_mode\":\"never\",\"max_rounds\":2}\n\
                    {\"id\":\"a\",\"prompt\":\"dup\"}\n\
                    {\"id\":\"../etc\",\"prompt\":\"x\"}\n\
                    {\"prompt\":\"x\",\"colour\":\"red\"}\n";
        let m = Manifest::parse(text, Format::Jsonl);
        assert_eq!(m.jobs.len(), 2);
        assert_eq!(m.jobs[0].metadata["sku"], 1);
        assert_eq!(m.jobs[1].gate_mode, Some(GateMode::Never));
        assert_eq!(m.jobs[1].line, 6);
        let lines: Vec<usize> = m.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![4, 5, 7, 8, 9]);
        assert!(m.errors[0].reason.contains("empty"));
        assert!(m.errors[2].reason.contains("duplicate"));
        assert!(m.errors[4].reason.contains("colour"));
        assert!(m.clone().strict().is_err());
    }

    #[test]
    fn ids_are_stable_and_derived_from_content() {
        let a = Manifest::parse("A red apple\nA pear\n", Format::Text);
        let b = Manifest::parse("A new first line\nA red apple\nA pear\n", Format::Text);
        assert_eq!(a.jobs[0].id, b.jobs[1].id);
        assert_ne!(a.jobs[0].id, a.jobs[1].id);
        assert!(a.jobs[0].id.starts_with("j-") && a.jobs[0].id.len() == 14);
    }

    #[test]
    fn csv_needs_a_prompt_column_and_keeps_other_columns_as_metadata() {
        let m = Manifest::parse(
            "id,prompt,sku\nx1,\"A red, shiny apple\",42\nx2,,7\n,A pear,8\n",
            Format::Csv,
        );
        assert_eq!(m.jobs.len(), 2, "{:?}", m.errors);
        assert_eq!(m.jobs[0].prompt, "A red, shiny apple");
        assert_eq!(m.jobs[0].metadata["sku"], "42");
        assert_eq!(m.errors[0].line, 3);
        assert!(m.jobs[1].id.starts_with("j-"));
        let bad = Manifest::parse("id,text\n1,hello\n", Format::Csv);
        assert_eq!(bad.errors[0].line, 1);
        assert!(bad.errors[0].reason.contains("prompt"));
    }
}
