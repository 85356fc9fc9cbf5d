//! Plain prompt manifests: JSONL (one object a line) or text (one prompt a line).
//!
//! `.jsonl` / `.ndjson` files are JSONL and `.txt` files are text; for any other name the
//! first line that is neither blank nor a `#` comment decides (`{` starts JSONL). In both,
//! blank lines and lines starting with `#` are skipped. A JSONL line is
//! `{"id"?, "prompt", "category"?, "subcategory"?, "checklist"?: [..], "explanation"?}`;
//! other fields are refused, so a misspelt `checklst` is an error rather than a prompt
//! silently judged without its checklist.

use std::path::Path;

use serde::Deserialize;

use super::{EvalPrompt, PromptSetError, check_id, derived_id, line_json_error};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonLine {
    #[serde(default)]
    id: Option<String>,
    prompt: String,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    subcategory: Option<String>,
    #[serde(default)]
    checklist: Option<Vec<String>>,
    #[serde(default)]
    explanation: Option<String>,
}

/// Parse a manifest; see the module documentation.
pub(super) fn parse(text: &str, path: &Path) -> Result<Vec<EvalPrompt>, PromptSetError> {
    let jsonl = is_jsonl(text, path);
    let mut prompts: Vec<EvalPrompt> = Vec::new();
    let mut lines_of: Vec<usize> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let error = |reason: String| PromptSetError::Line {
            path: path.to_path_buf(),
            line,
            reason,
        };
        let prompt = if jsonl {
            json_line(trimmed).map_err(error)?
        } else {
            EvalPrompt {
                id: derived_id(trimmed),
                prompt: trimmed.to_string(),
                category: None,
                subcategory: None,
                checklist: Vec::new(),
                explanation: None,
            }
        };
        if let Some(first) = prompts.iter().position(|p| p.id == prompt.id) {
            let first_line = lines_of.get(first).copied().unwrap_or_default();
            let reason = if prompt.id.starts_with("p-") && !jsonl {
                format!("the same prompt as line {first_line}")
            } else {
                format!("id {:?} is also line {first_line}", prompt.id)
            };
            return Err(error(reason));
        }
        prompts.push(prompt);
        lines_of.push(line);
    }
    Ok(prompts)
}

fn is_jsonl(text: &str, path: &Path) -> bool {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match ext.as_deref() {
        Some("jsonl" | "ndjson") => true,
        Some("txt") => false,
        _ => text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .is_some_and(|l| l.starts_with('{')),
    }
}

fn json_line(text: &str) -> Result<EvalPrompt, String> {
    let line: JsonLine = serde_json::from_str(text).map_err(|e| {
        format!(
            "{} (a JSONL manifest line is {{\"id\"?, \"prompt\", \"category\"?, \
             \"subcategory\"?, \"checklist\"?: [..], \"explanation\"?}})",
            line_json_error(&e)
        )
    })?;
    let prompt = line.prompt.trim().to_string();
    if prompt.is_empty() {
        return Err("the prompt is empty".into());
    }
    let id = match line.id {
        Some(id) => {
            check_id(id.trim())?;
            id.trim().to_string()
        }
        None => derived_id(&prompt),
    };
    let mut checklist = Vec::new();
    for (i, item) in line.checklist.unwrap_or_default().into_iter().enumerate() {
        let item = item.trim();
        if item.is_empty() {
            return Err(format!("checklist item {} is empty", i + 1));
        }
        checklist.push(item.to_string());
    }
    let non_empty = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    Ok(EvalPrompt {
        id,
        prompt,
        category: non_empty(line.category),
        subcategory: non_empty(line.subcategory),
        checklist,
        explanation: non_empty(line.explanation),
    })
}
