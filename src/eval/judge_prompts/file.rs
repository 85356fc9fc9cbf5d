//! A WiScore judge prompt from a file: a user with WISE's own prompt text
//! (`WISE_legacy/gpt_eval.py`, or `vllm_eval.py` for WISE_Verified) can judge with it
//! instead of this crate's `wiscore.v1`, and the report records the file's SHA-256.
//!
//! The file is sent as the judge's user message, with the image, without a JSON schema:
//! WISE's prompts ask for plain lines. `{{prompt}}` and `{{explanation}}` are filled in, and
//! so are the fields of WISE's scripts as they appear in their f-strings
//! (`{prompt_data['Prompt']}`, `{prompt_data['Explanation']}`), so their text can be
//! pasted as it is. The reply may be any of the three shapes [`parse_wiscore_judgment`]
//! reads.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::replies::{ReplyError, WiScoreReply, parse_wiscore_reply};
use super::{next_placeholder, render_text};
use crate::lmm::extract_json;

/// Largest judge prompt file read (WISE's prompts are under 4 KiB).
const MAX_BYTES: u64 = 64 * 1024;

/// How WISE's scripts write the two fields, and the placeholder each stands for.
const SCRIPT_FIELDS: [(&str, &str); 4] = [
    ("{prompt_data['Prompt']}", "{{prompt}}"),
    ("{prompt_data[\"Prompt\"]}", "{{prompt}}"),
    ("{prompt_data['Explanation']}", "{{explanation}}"),
    ("{prompt_data[\"Explanation\"]}", "{{explanation}}"),
];

/// A WiScore judge prompt read from a file (see the module documentation).
#[derive(Clone, PartialEq, Eq)]
pub struct JudgePromptFile {
    path: PathBuf,
    /// The text with WISE's script fields written as placeholders.
    template: String,
    sha256: String,
}

impl std::fmt::Debug for JudgePromptFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JudgePromptFile")
            .field("path", &self.path)
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

/// A judge prompt file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("judge prompt file {}: {reason}", .path.display())]
pub struct JudgePromptFileError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong, and what to do.
    pub reason: String,
}

impl JudgePromptFile {
    /// Read and check the file at `path`: UTF-8, at most 64 KiB, with a prompt placeholder
    /// and no placeholder this judge cannot fill.
    pub fn load(path: &Path) -> Result<JudgePromptFile, JudgePromptFileError> {
        let error = |reason: String| JudgePromptFileError {
            path: path.to_path_buf(),
            reason,
        };
        let size = std::fs::metadata(path)
            .map_err(|e| error(format!("cannot read it: {e}")))?
            .len();
        if size > MAX_BYTES {
            return Err(error(format!(
                "{size} bytes; a judge prompt is at most {MAX_BYTES}"
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| error(format!("cannot read it: {e}")))?;
        JudgePromptFile::from_bytes(path, &bytes).map_err(error)
    }

    /// The judge prompt in `bytes`, as if read from `path`.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<JudgePromptFile, String> {
        let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8 text ({e})"))?;
        let mut template = text.strip_prefix('\u{feff}').unwrap_or(text).to_string();
        for (field, placeholder) in SCRIPT_FIELDS {
            template = template.replace(field, placeholder);
        }
        if template.trim().is_empty() {
            return Err("the file is empty".into());
        }
        let mut names = Vec::new();
        let mut rest = template.as_str();
        while let Some((name, after)) = next_placeholder(rest) {
            if let Some(name) = name {
                names.push(name);
            }
            rest = after;
        }
        if let Some(bad) = names
            .iter()
            .find(|n| !["prompt", "explanation"].contains(n))
        {
            return Err(format!(
                "{{{{{bad}}}}} is not filled in by the WiScore judge: use {{{{prompt}}}} and \
                 {{{{explanation}}}}"
            ));
        }
        if !names.contains(&"prompt") {
            return Err(
                "it has no {{prompt}} (nor WISE's {prompt_data['Prompt']}): the judge would \
                 not see the prompt the image was made from"
                    .into(),
            );
        }
        let digest = Sha256::digest(bytes);
        Ok(JudgePromptFile {
            path: path.to_path_buf(),
            template,
            sha256: digest.iter().map(|b| format!("{b:02x}")).collect(),
        })
    }

    /// The path it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The SHA-256 of the file's bytes, in hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// What the report and the judgment store call it: `wiscore.file-` and the first 12
    /// hex digits of its SHA-256 (another text is another judge prompt, judged afresh).
    pub fn id(&self) -> String {
        format!("wiscore.file-{}", &self.sha256[..12])
    }

    /// The text sent for one image.
    pub fn render(&self, prompt: &str, explanation: &str) -> String {
        render_text(
            &self.template,
            &[("prompt", prompt), ("explanation", explanation)],
        )
    }
}

/// A WiScore judgment in any of the shapes a judge prompt may ask for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WiScoreJudgment {
    /// WISE's three 0–2 scores (`wiscore.v1`'s JSON, or `gpt_eval.py`'s lines).
    ThreeAxis(WiScoreReply),
    /// WISE_Verified's single score: 1 when the image realises the prompt's knowledge and
    /// is usable, else 0 (`vllm_eval.py`).
    Binary {
        /// 0 or 1.
        score: u8,
    },
}

impl WiScoreJudgment {
    /// The WiScore, in `0..=1`: `(0.7 c + 0.2 r + 0.1 a) / 2` for three scores, the binary
    /// score itself for one.
    pub fn score(&self) -> f64 {
        match self {
            WiScoreJudgment::ThreeAxis(r) => r.score(),
            WiScoreJudgment::Binary { score } => f64::from(*score),
        }
    }
}

/// Parse a reply to a judge prompt from a file, in the first shape that fits:
///
/// 1. JSON with `consistency`, `realism`, `aesthetic_quality` (as [`parse_wiscore_reply`]),
///    or with `score` 0 or 1;
/// 2. WISE's `gpt_eval.py` lines, `Consistency: 2` / `Realism: 1` / `Aesthetic Quality: 0`
///    (optionally in `**bold**`; the last of each counts, as WISE's regular expression
///    does), every score 0–2;
/// 3. WISE_Verified's `vllm_eval.py` answer, `Score: 0` or `Score: 1` (else a reply whose
///    only bare line is `0` or `1`).
///
/// `<think>` blocks are dropped first. Anything else is a [`ReplyError`].
pub fn parse_wiscore_judgment(text: &str) -> Result<WiScoreJudgment, ReplyError> {
    let text = without_think(text);
    if let Some(serde_json::Value::Object(obj)) = extract_json(&text) {
        if obj.contains_key("consistency") {
            return parse_wiscore_reply(&text).map(WiScoreJudgment::ThreeAxis);
        }
        if let Some(score) = obj.get("score").and_then(serde_json::Value::as_u64)
            && score <= 1
        {
            return Ok(WiScoreJudgment::Binary { score: score as u8 });
        }
    }
    let invalid = |detail: String| ReplyError::Invalid {
        judge: "wiscore",
        detail,
        snippet: text.chars().take(160).collect(),
    };
    let axes = ["consistency", "realism", "aesthetic quality"].map(|l| last_labelled(&text, l));
    if let [Some(c), Some(r), Some(a)] = axes {
        if let Some(bad) = [c, r, a].iter().find(|s| **s > 2) {
            return Err(invalid(format!(
                "a score of {bad}: WISE's scores are 0 to 2"
            )));
        }
        return Ok(WiScoreJudgment::ThreeAxis(WiScoreReply {
            consistency: c,
            realism: r,
            aesthetic_quality: a,
            reason: String::new(),
        }));
    }
    if let Some(score) = binary_score(&text) {
        return Ok(WiScoreJudgment::Binary { score });
    }
    Err(invalid(
        "neither JSON with the three scores, nor WISE's \"Consistency: N\" / \"Realism: N\" / \
         \"Aesthetic Quality: N\" lines, nor WISE_Verified's \"Score: 0\" or \"Score: 1\""
            .into(),
    ))
}

fn without_think(text: &str) -> String {
    let mut out = text.to_string();
    while let (Some(start), Some(end)) = (out.find("<think>"), out.find("</think>")) {
        if end < start {
            break;
        }
        out.replace_range(start..end + "</think>".len(), "");
    }
    match out.find("</think>") {
        Some(end) => out[end + "</think>".len()..].to_string(),
        None => out,
    }
}

/// The digit after the last `label` (any case) that is followed by up to two `*`,
/// spaces, an optional `:` or `：`, spaces and a digit.
fn last_labelled(text: &str, label: &str) -> Option<u8> {
    let lower = text.to_ascii_lowercase();
    let mut found = None;
    let mut from = 0;
    while let Some(at) = lower.get(from..).and_then(|s| s.find(label)) {
        let start = from + at + label.len();
        if let Some(d) = digit_after(lower.get(start..).unwrap_or_default()) {
            found = Some(d);
        }
        from = start;
    }
    found
}

fn digit_after(rest: &str) -> Option<u8> {
    let rest = rest
        .strip_prefix("**")
        .or_else(|| rest.strip_prefix('*'))
        .unwrap_or(rest);
    let rest = rest.trim_start();
    let rest = rest
        .strip_prefix(':')
        .or_else(|| rest.strip_prefix('：'))
        .unwrap_or(rest)
        .trim_start();
    let c = rest.chars().next()?;
    c.to_digit(10).map(|d| d as u8)
}

/// WISE_Verified's score: the first `Score: 0|1` not followed by a word character, else
/// the only line that is a bare `0` or `1`.
fn binary_score(text: &str) -> Option<u8> {
    let lower = text.to_ascii_lowercase();
    let mut from = 0;
    while let Some(at) = lower.get(from..).and_then(|s| s.find("score")) {
        let start = from + at + "score".len();
        let rest = lower.get(start..).unwrap_or_default();
        if let Some(d @ 0..=1) = digit_after(rest) {
            let after_digit = rest
                .char_indices()
                .find(|(_, c)| c.is_ascii_digit())
                .and_then(|(i, _)| rest.get(i + 1..))
                .unwrap_or_default();
            if !after_digit
                .chars()
                .next()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
            {
                return Some(d);
            }
        }
        from = start;
    }
    let bare: Vec<u8> = text
        .lines()
        .filter_map(|l| match l.trim() {
            "0" => Some(0),
            "1" => Some(1),
            _ => None,
        })
        .collect();
    match bare.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
