//! WISE data files (github.com/PKU-YuanGroup/WISE: `WISE_legacy/data/*.json` and
//! `data_verified/*.json`): one JSON array of
//! `{"Prompt", "Explanation", "Category", "Subcategory", "prompt_id"}`.
//!
//! A prompt's category comes from its `prompt_id` range, as WISE's scoring scripts do
//! (the `Category` field is not used for it: WISE's own rewrite file labels one biology
//! prompt `Ecology`). The ranges depend on the edition; see [`detect`].

use std::path::Path;

use serde_json::Value;

use super::{EvalPrompt, PromptSetError, optional_string, snippet};
use crate::eval::wise::{WiseCategory, WiseEdition};

/// One entry, checked.
struct Entry {
    index: usize,
    prompt_id: u64,
    prompt: String,
    explanation: Option<String>,
    category_field: Option<String>,
    subcategory: Option<String>,
}

/// Parse a WISE file; `edition` `None` detects it (see [`detect`]).
pub(super) fn parse(
    text: &str,
    path: &Path,
    edition: Option<WiseEdition>,
) -> Result<(Vec<EvalPrompt>, WiseEdition), PromptSetError> {
    let json_error = |detail: String| PromptSetError::Json {
        path: path.to_path_buf(),
        format: "WISE",
        detail,
    };
    let value: Value = serde_json::from_str(text).map_err(|e| json_error(e.to_string()))?;
    let Value::Array(items) = value else {
        return Err(json_error(format!(
            "expected one JSON array of prompts, found {}",
            snippet(&value)
        )));
    };
    let mut entries: Vec<Entry> = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let entry = check_entry(index, item).map_err(|reason| PromptSetError::Entry {
            path: path.to_path_buf(),
            index,
            reason,
        })?;
        if let Some(first) = entries.iter().find(|e| e.prompt_id == entry.prompt_id) {
            return Err(PromptSetError::Entry {
                path: path.to_path_buf(),
                index,
                reason: format!(
                    "prompt_id {} is also entry {}",
                    entry.prompt_id, first.index
                ),
            });
        }
        entries.push(entry);
    }
    let edition = edition.unwrap_or_else(|| detect(&entries, path));
    let mut prompts = Vec::with_capacity(entries.len());
    for e in entries {
        // check_entry refused ids outside 1..=1000, where every edition has a category.
        let category = edition
            .category_of(e.prompt_id)
            .map(|c| c.as_str().to_string());
        prompts.push(EvalPrompt {
            id: format!("wise-{}", e.prompt_id),
            prompt: e.prompt,
            category,
            subcategory: e.subcategory,
            checklist: Vec::new(),
            explanation: e.explanation,
        });
    }
    Ok((prompts, edition))
}

fn check_entry(index: usize, item: &Value) -> Result<Entry, String> {
    let Value::Object(obj) = item else {
        return Err(format!("expected a JSON object, found {}", snippet(item)));
    };
    let prompt_id = match obj.get("prompt_id") {
        None | Some(Value::Null) => return Err("no \"prompt_id\"".into()),
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                format!(
                    "\"prompt_id\" must be an integer from 1 to 1000 (WISE's ids), not {}",
                    snippet(v)
                )
            })?,
    };
    let prompt = optional_string(obj, "Prompt")?
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| format!("prompt_id {prompt_id}: no \"Prompt\" text"))?;
    Ok(Entry {
        index,
        prompt_id,
        prompt: prompt.trim().to_string(),
        explanation: optional_string(obj, "Explanation")?,
        category_field: optional_string(obj, "Category")?,
        subcategory: optional_string(obj, "Subcategory")?,
    })
}

/// The edition a file belongs to. The ranges of the two editions differ for ids 521–567,
/// 641–700, 761–800 and 881–900; where the file has such ids, the edition whose ranges
/// agree with more of the entries' `Category` fields wins. When they cannot tell (no such
/// ids, or no `Category` fields), a file name containing `verified` (WISE names its
/// verified files `*_verified.json`) means [`WiseEdition::Verified`]; anything else is
/// [`WiseEdition::Original`].
fn detect(entries: &[Entry], path: &Path) -> WiseEdition {
    let disagreements = |edition: WiseEdition| {
        entries
            .iter()
            .filter(|e| {
                let labelled = e
                    .category_field
                    .as_deref()
                    .and_then(WiseCategory::from_name);
                labelled.is_some() && labelled != edition.category_of(e.prompt_id)
            })
            .count()
    };
    let original = disagreements(WiseEdition::Original);
    let verified = disagreements(WiseEdition::Verified);
    if verified < original {
        return WiseEdition::Verified;
    }
    if original < verified {
        return WiseEdition::Original;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if name.contains("verified") {
        WiseEdition::Verified
    } else {
        WiseEdition::Original
    }
}
