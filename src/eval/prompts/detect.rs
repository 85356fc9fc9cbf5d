//! What an error says when the format was guessed: which format, why, and, for the two
//! files that fit no format, what the file is instead of a one-line parse error.

use std::path::Path;

use serde_json::Value;

use super::{Format, PromptSetError, snippet};

/// Wrap `error` from reading `text` as the guessed `format` into a
/// [`PromptSetError::Detected`], replacing the parse error when the file is one JSON
/// object (read as JSONL, its line 1 "ends early"). An unreadable file keeps its error.
pub(super) fn explain(
    error: PromptSetError,
    text: &str,
    path: &Path,
    format: Format,
    mut why: String,
) -> PromptSetError {
    if matches!(error, PromptSetError::Io { .. }) {
        return error;
    }
    let error = match (format, whole_object_keys(text)) {
        (Format::Manifest, Some(keys)) => PromptSetError::Json {
            path: path.to_path_buf(),
            format: "prompt",
            detail: format!(
                "the file is one JSON object ({}), not a list of prompts: WISE and \
                 WorldGenBench files are JSON arrays of prompts, and a JSONL manifest has one \
                 object a line, each with a \"prompt\"",
                keys
            ),
        },
        _ => error,
    };
    if format == Format::WorldGenBench
        && let Some(keys) = first_entry_keys(text)
        && !keys
            .iter()
            .any(|k| k.to_ascii_lowercase().contains("checklist"))
    {
        why.push_str(&format!(
            " (entry 0 has {}); for prompts without a checklist, write a JSONL manifest, one \
             {{\"prompt\": ...}} a line, and the checklist writer makes one",
            keys.join(", ")
        ));
    }
    PromptSetError::Detected {
        format,
        why,
        error: Box::new(error),
    }
}

/// "keys: a, b" of a file that is one JSON object spread over several lines (a single
/// line is a JSONL manifest line, judged by the manifest reader).
fn whole_object_keys(text: &str) -> Option<String> {
    if text.trim().lines().filter(|l| !l.trim().is_empty()).count() < 2 {
        return None;
    }
    match serde_json::from_str::<Value>(text).ok()? {
        Value::Object(obj) if obj.is_empty() => Some("with no keys".into()),
        Value::Object(obj) => {
            let keys: Vec<String> = obj.keys().take(8).map(|k| format!("{k:?}")).collect();
            let more = if obj.len() > keys.len() { ", ..." } else { "" };
            Some(format!("keys {}{more}", keys.join(", ")))
        }
        _ => None,
    }
}

/// The keys of the first entry of a file that is a JSON array of objects.
fn first_entry_keys(text: &str) -> Option<Vec<String>> {
    match serde_json::from_str::<Value>(text).ok()? {
        Value::Array(items) => match items.first()? {
            Value::Object(obj) => Some(
                obj.keys()
                    .take(12)
                    .map(|k| snippet(&Value::String(k.clone())))
                    .collect(),
            ),
            _ => None,
        },
        _ => None,
    }
}
