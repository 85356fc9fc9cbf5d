//! Prompt sets: the prompts an evaluation runs, from a benchmark's files (WISE,
//! WorldGenBench), a plain manifest (JSONL or one prompt a line), or the built-in sample.
//!
//! Every loader refuses a bad file with a [`PromptSetError`] that names the file and the
//! bad entry: its 0-based index in a JSON array, or its 1-based line in a line-oriented
//! file. No input makes a loader panic.

mod detect;
mod manifest;
mod wise;
mod worldgenbench;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::eval::wise::WiseEdition;

/// The built-in sample set (see [`PromptSet::builtin_sample`]).
const SAMPLE_JSON: &str = include_str!("../sample_prompts.json");

/// How many bytes [`PromptSet::load`] shows [`Format::detect`].
const DETECT_BYTES: usize = 4096;

/// A named list of prompts to evaluate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptSet {
    /// The set's name: the file's stem for a loaded file, `builtin-sample` for the sample.
    pub name: String,
    /// The prompts, in file order. Their ids are unique.
    pub prompts: Vec<EvalPrompt>,
    /// The WISE edition the prompts come from, for a WISE file: its categories' id ranges
    /// and the weights of its overall WiScore ([`WiseEdition`]). `None` for other sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wise_edition: Option<WiseEdition>,
}

/// One prompt of a set, with what a judge needs to score an image made from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalPrompt {
    /// Stable, unique within its set: given by the file, or derived from the prompt
    /// (`p-` and 12 hex digits of its SHA-256) or from its benchmark id (`wise-17`).
    /// Letters, digits, `-`, `_` and `.`, so it can name a folder.
    pub id: String,
    /// The text given to the generator.
    pub prompt: String,
    /// The group results are reported by (WISE: `cultural`, `time`, ...; WorldGenBench:
    /// `humanities` or `nature`; the sample: `known_rare`, `unknown`, `ambiguous`).
    #[serde(default)]
    pub category: Option<String>,
    /// A finer group (WISE's `Subcategory`, WorldGenBench's `class`).
    #[serde(default)]
    pub subcategory: Option<String>,
    /// Things a judge can verify in the image; empty when the source has none (a
    /// checklist writer can make one).
    #[serde(default)]
    pub checklist: Vec<String>,
    /// What the prompt means or implies (WISE's `Explanation`), for the judge.
    #[serde(default)]
    pub explanation: Option<String>,
}

/// A prompt file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PromptSetError {
    /// The file could not be read (or is not UTF-8).
    #[error("{}: cannot read it: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not the JSON its format needs.
    #[error("{}: not a {format} file: {detail}", .path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The format it was read as (`WISE`, `WorldGenBench`, `prompt set`).
        format: &'static str,
        /// What is wrong, with the line and column when the JSON does not parse.
        detail: String,
    },
    /// An entry of a JSON array is unusable.
    #[error(
        "{}: entry {index} (0-based index in the JSON array{}): {reason}",
        .path.display(),
        .record.as_deref().map(|r| format!(", {r}")).unwrap_or_default()
    )]
    Entry {
        /// The file.
        path: PathBuf,
        /// The entry's 0-based index in the array.
        index: usize,
        /// How the entry names itself, when it does and that could be read
        /// (`prompt_id 950` in a WISE file, `id "fjord-1"` elsewhere).
        record: Option<String>,
        /// What is wrong with it.
        reason: String,
    },
    /// A line of a line-oriented file is unusable.
    #[error("{}: line {line}: {reason}", .path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The file holds no prompt.
    #[error("{}: no prompts in it", .path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The file was read in the format [`Format::detect_with_reason`] guessed (none was
    /// given), and it does not fit that format.
    #[error(
        "{error}. It was read as {format} because {why}; if it is another format, name it \
         (--format wise, worldgenbench or manifest; PromptSet::load_as in the library)"
    )]
    Detected {
        /// The format guessed.
        format: Format,
        /// Why that format was guessed.
        why: String,
        /// Why the file does not fit it.
        error: Box<PromptSetError>,
    },
}

impl PromptSetError {
    /// The error itself, without the note on a guessed format.
    pub fn inner(&self) -> &PromptSetError {
        match self {
            PromptSetError::Detected { error, .. } => error.inner(),
            other => other,
        }
    }
}

/// The prompt file formats [`PromptSet::load`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// A WISE data file: a JSON array of `{"prompt_id", "Prompt", "Explanation",
    /// "Category", "Subcategory"}` (either edition; see [`PromptSet::load_wise`]).
    Wise,
    /// A WorldGenBench file (`humanities_en.json`, `nature_en.json`): a JSON array (or
    /// JSONL) of `{"prompt_en", "checklist": [..], "class"?}`.
    WorldGenBench,
    /// JSONL lines `{"id"?, "prompt", "category"?, "subcategory"?, "checklist"?,
    /// "explanation"?}`, or plain text with one prompt a line (`#` comments and blank
    /// lines skipped).
    Manifest,
}

impl Format {
    /// The format's display name.
    pub fn name(self) -> &'static str {
        match self {
            Format::Wise => "WISE",
            Format::WorldGenBench => "WorldGenBench",
            Format::Manifest => "manifest",
        }
    }

    /// Best-effort guess from the file's name and its first bytes: a JSON array whose
    /// objects have `prompt_id` or `Prompt` is WISE, one with `prompt_en` or a checklist
    /// is WorldGenBench, and the benchmarks' file names (`cultural_common_sense*.json`,
    /// `humanities_en.json`, ...) decide when the bytes do not. Anything else is a
    /// manifest. Pass [`Format`] explicitly to [`PromptSet::load_as`] when the guess is
    /// wrong.
    pub fn detect(path: &Path, head: &[u8]) -> Format {
        Format::detect_with_reason(path, head).0
    }

    /// [`Format::detect`], with why it chose that format, as the end of a sentence
    /// ("it is a JSON array whose entries have WISE's \"prompt_id\"").
    pub fn detect_with_reason(path: &Path, head: &[u8]) -> (Format, String) {
        let text = String::from_utf8_lossy(head);
        let text = text.trim_start_matches('\u{feff}').trim_start();
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let has = |key: &str| text.contains(&format!("\"{key}\""));
        let wise_name = [
            "cultural_common_sense",
            "spatio-temporal",
            "natural_science",
        ]
        .iter()
        .any(|n| stem.starts_with(n));
        let wgb_name = stem.starts_with("humanities") || stem.starts_with("nature");
        let wgb_key = ["prompt_en", "knowledge_checklist", "check_list"]
            .into_iter()
            .find(|k| has(k));
        let wise_key = ["prompt_id", "Prompt"].into_iter().find(|k| has(k));
        let (format, why) = if text.starts_with('[') {
            if let Some(key) = wgb_key {
                (
                    Format::WorldGenBench,
                    format!("it is a JSON array whose entries have WorldGenBench's \"{key}\""),
                )
            } else if let Some(key) = wise_key {
                (
                    Format::Wise,
                    format!("it is a JSON array whose entries have WISE's \"{key}\""),
                )
            } else if has("checklist") {
                (
                    Format::WorldGenBench,
                    "it is a JSON array whose entries have a \"checklist\"".to_string(),
                )
            } else if wgb_name {
                (
                    Format::WorldGenBench,
                    "it is a JSON array named like WorldGenBench's files".to_string(),
                )
            } else if wise_name {
                (
                    Format::Wise,
                    "it is a JSON array named like WISE's files".to_string(),
                )
            } else {
                // A JSON array is no manifest; WorldGenBench's loader is the tolerant one,
                // and its error names what it looked for.
                (
                    Format::WorldGenBench,
                    "it is a JSON array whose entries have none of WISE's fields (prompt_id, \
                     Prompt) nor WorldGenBench's (prompt_en, checklist), and WorldGenBench's \
                     reader is the one that takes other field names"
                        .to_string(),
                )
            }
        } else if let (true, Some(key)) = (text.starts_with('{'), wgb_key) {
            (
                Format::WorldGenBench,
                format!("it is JSON lines with WorldGenBench's \"{key}\""),
            )
        } else if text.starts_with('{') {
            (
                Format::Manifest,
                "it starts with '{' and is not a JSON array (a manifest's JSONL has one JSON \
                 object a line)"
                    .to_string(),
            )
        } else {
            (
                Format::Manifest,
                "it is not JSON (a text manifest has one prompt a line)".to_string(),
            )
        };
        (format, why)
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "wise" => Ok(Format::Wise),
            "worldgenbench" | "wgb" => Ok(Format::WorldGenBench),
            "manifest" | "jsonl" | "text" | "txt" => Ok(Format::Manifest),
            other => Err(format!(
                "unknown prompt set format {other:?}: use wise, worldgenbench or manifest"
            )),
        }
    }
}

impl PromptSet {
    /// Read the prompt file at `path`, in the format [`Format::detect`] guesses. A file
    /// that does not fit the guess is a [`PromptSetError::Detected`]: the format guessed,
    /// why, and why the file does not fit it.
    pub fn load(path: &Path) -> Result<PromptSet, PromptSetError> {
        let text = read(path)?;
        let head = text.get(..DETECT_BYTES.min(text.len())).unwrap_or(&text);
        let (format, why) = Format::detect_with_reason(path, head.as_bytes());
        PromptSet::parse(&text, path, format)
            .map_err(|error| detect::explain(error, &text, path, format, why))
    }

    /// Read the prompt file at `path` as `format`.
    pub fn load_as(path: &Path, format: Format) -> Result<PromptSet, PromptSetError> {
        let text = read(path)?;
        PromptSet::parse(&text, path, format)
    }

    /// Parse prompt file text read from `path` (which names the set and the errors).
    pub fn parse(text: &str, path: &Path, format: Format) -> Result<PromptSet, PromptSetError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let (prompts, wise_edition) = match format {
            Format::Wise => {
                let (prompts, edition) = wise::parse(text, path, None)?;
                (prompts, Some(edition))
            }
            Format::WorldGenBench => (worldgenbench::parse(text, path)?, None),
            Format::Manifest => (manifest::parse(text, path)?, None),
        };
        if prompts.is_empty() {
            return Err(PromptSetError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(PromptSet {
            name: set_name(path),
            prompts,
            wise_edition,
        })
    }

    /// Read a WISE file, in the given edition or (`None`) the one its content and name
    /// suggest, and say which edition its categories were assigned by (the editions'
    /// prompt-id ranges and overall weights differ; see [`crate::eval::wise`]).
    pub fn load_wise(
        path: &Path,
        edition: Option<WiseEdition>,
    ) -> Result<(PromptSet, WiseEdition), PromptSetError> {
        let text = read(path)?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let (prompts, edition) = wise::parse(text, path, edition)?;
        if prompts.is_empty() {
            return Err(PromptSetError::Empty {
                path: path.to_path_buf(),
            });
        }
        let set = PromptSet {
            name: set_name(path),
            prompts,
            wise_edition: Some(edition),
        };
        Ok((set, edition))
    }

    /// About thirty prompts written for this project, in the three kinds of knowledge gap
    /// of the IA-T2I paper's dataset: `known_rare` (real things image models draw badly),
    /// `unknown` (fictional stand-ins for things released after a model's training; their
    /// look is defined in the explanation) and `ambiguous` (names with several meanings,
    /// in a context that selects one). Every prompt has a 3–5 item checklist.
    pub fn builtin_sample() -> PromptSet {
        match parse_sample(SAMPLE_JSON) {
            Ok(set) => set,
            Err(e) => {
                // Unreachable while the unit test that parses the sample passes.
                tracing::error!(error = %e, "the built-in sample prompt set does not parse");
                PromptSet {
                    name: "builtin-sample".into(),
                    prompts: Vec::new(),
                    wise_edition: None,
                }
            }
        }
    }

    /// The prompt with this id.
    pub fn get(&self, id: &str) -> Option<&EvalPrompt> {
        self.prompts.iter().find(|p| p.id == id)
    }

    /// The distinct categories, in order of first appearance (prompts without one are
    /// not counted).
    pub fn categories(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for c in self.prompts.iter().filter_map(|p| p.category.as_deref()) {
            if !out.contains(&c) {
                out.push(c);
            }
        }
        out
    }
}

/// The sample's JSON: a serialized [`PromptSet`], checked like any loaded set.
fn parse_sample(text: &str) -> Result<PromptSet, PromptSetError> {
    let path = Path::new("builtin sample_prompts.json");
    let set: PromptSet = serde_json::from_str(text).map_err(|e| PromptSetError::Json {
        path: path.to_path_buf(),
        format: "prompt set",
        detail: e.to_string(),
    })?;
    let mut seen = Vec::new();
    for (index, p) in set.prompts.iter().enumerate() {
        let entry = |reason: String| PromptSetError::Entry {
            path: path.to_path_buf(),
            index,
            record: Some(format!("id {:?}", p.id)),
            reason,
        };
        check_id(&p.id).map_err(entry)?;
        if p.prompt.trim().is_empty() {
            return Err(entry("the prompt is empty".into()));
        }
        if let Some(first) = seen.iter().position(|s: &&str| *s == p.id) {
            return Err(entry(format!("id {:?} is also entry {first}", p.id)));
        }
        seen.push(&p.id);
    }
    Ok(set)
}

fn read(path: &Path) -> Result<String, PromptSetError> {
    std::fs::read_to_string(path).map_err(|source| PromptSetError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn set_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "prompts".into())
}

/// The id of a prompt without one: `p-` and the first 12 hex digits of the SHA-256 of its
/// text, so the same prompt gets the same id in every run and every file.
pub fn derived_id(prompt: &str) -> String {
    let digest = Sha256::digest(prompt.as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("p-{hex}")
}

use crate::batch::check_id;

/// `s` reduced to an id fragment: lower-case letters and digits, other runs as one `-`.
fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out.truncate(40);
    out
}

/// A string field, absent or `null` as `None`; any other type is an error.
fn optional_string(
    obj: &serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Result<Option<String>, String> {
    match obj.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!(
            "\"{key}\" must be a string, not {}",
            snippet(other)
        )),
    }
}

/// A JSON error on one line of a line-oriented file, without serde's "line 1" (the
/// caller names the file's line).
fn line_json_error(e: &serde_json::Error) -> String {
    e.to_string().replace(
        &format!(" at line 1 column {}", e.column()),
        &format!(" at column {}", e.column()),
    )
}

/// A snippet of a bad value for an error message.
fn snippet(v: &serde_json::Value) -> String {
    let text = v.to_string();
    let short: String = text.chars().take(60).collect();
    if short.len() < text.len() {
        format!("{short}…")
    } else {
        short
    }
}

#[cfg(test)]
mod tests;
