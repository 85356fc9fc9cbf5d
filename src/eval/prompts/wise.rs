//! WISE data files (github.com/PKU-YuanGroup/WISE: `WISE_legacy/data/*.json` and
//! `data_verified/*.json`): one JSON array of
//! `{"Prompt", "Explanation", "Category", "Subcategory", "prompt_id"}`.
//!
//! A prompt's category comes from its `prompt_id` range, as WISE's scoring scripts do
//! (the `Category` field is not used for it: WISE's own rewrite file labels one biology
//! prompt `Ecology`). The ranges depend on the edition; see [`detect`].
//!
//! Every record of both editions has all five fields, and WISE's evaluators read
//! `Explanation` and `Subcategory` from each: a record without them (or with `null`, or
//! blank text) is refused, naming its index and `prompt_id`, rather than judged without
//! what a correct image shows.

use std::path::Path;

use serde_json::Value;

use super::{EvalPrompt, PromptSetError, optional_string, snippet};
use crate::eval::wise::{WiseCategory, WiseEdition};

/// One entry, checked.
struct Entry {
    index: usize,
    prompt_id: u64,
    prompt: String,
    explanation: String,
    category_field: Option<String>,
    subcategory: String,
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
        let error = |prompt_id: Option<u64>, reason: String| PromptSetError::Entry {
            path: path.to_path_buf(),
            index,
            record: prompt_id.map(|id| format!("prompt_id {id}")),
            reason,
        };
        let entry = check_entry(index, item).map_err(|(id, reason)| error(id, reason))?;
        if let Some(first) = entries.iter().find(|e| e.prompt_id == entry.prompt_id) {
            return Err(error(
                Some(entry.prompt_id),
                format!(
                    "prompt_id {} is also entry {}",
                    entry.prompt_id, first.index
                ),
            ));
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
            subcategory: Some(e.subcategory),
            checklist: Vec::new(),
            explanation: Some(e.explanation),
        });
    }
    Ok((prompts, edition))
}

/// One record checked against the shape every WISE file has (both editions): an integer
/// `prompt_id` from 1 to 1000 and the strings `Prompt`, `Explanation` (what the judge is
/// told a correct image shows) and `Subcategory` (WISE's scripts report by it); `Category`
/// may be absent (the id range decides it). The error carries the `prompt_id` once known.
fn check_entry(index: usize, item: &Value) -> Result<Entry, (Option<u64>, String)> {
    let Value::Object(obj) = item else {
        return Err((
            None,
            format!("expected a JSON object, found {}", snippet(item)),
        ));
    };
    let prompt_id = match obj.get("prompt_id") {
        None | Some(Value::Null) => return Err((None, "no \"prompt_id\"".into())),
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                (
                    None,
                    format!(
                        "\"prompt_id\" must be an integer from 1 to 1000 (WISE's ids), not {}",
                        snippet(v)
                    ),
                )
            })?,
    };
    let with_id = |reason: String| (Some(prompt_id), reason);
    let required = |key: &str, why: &str| -> Result<String, (Option<u64>, String)> {
        match optional_string(obj, key).map_err(with_id)? {
            Some(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
            Some(_) => Err(with_id(format!("\"{key}\" is blank ({why})"))),
            None if obj.contains_key(key) => Err(with_id(format!("\"{key}\" is null ({why})"))),
            None => Err(with_id(format!("no \"{key}\" ({why})"))),
        }
    };
    let prompt = required("Prompt", "the text given to the generator")?;
    let explanation = required(
        "Explanation",
        "every WISE record has one: it tells the judge what a correct image shows",
    )?;
    let subcategory = required(
        "Subcategory",
        "every WISE record has one: WISE reports scores by it",
    )?;
    Ok(Entry {
        index,
        prompt_id,
        prompt,
        explanation,
        category_field: optional_string(obj, "Category").map_err(with_id)?,
        subcategory,
    })
}

/// The edition a file belongs to. The ranges of the two editions differ for ids 521–567,
/// 641–700, 761–800 and 881–900; where the file has such ids, the edition whose ranges
/// agree with more of the entries' `Category` fields wins. When they cannot tell (no such
/// ids, or no `Category` fields), the file's name and folder decide: WISE_Verified's files
/// are `data_verified/*_verified.json` and `data_verified/merge.json`, so a name containing
/// `verified`, the name `merge.json` or a `data_verified` folder means
/// [`WiseEdition::Verified`]; anything else (`WISE_legacy/data/*.json`) is
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
    let in_verified_folder = path.parent().is_some_and(|dir| {
        dir.components()
            .any(|c| c.as_os_str().eq_ignore_ascii_case("data_verified"))
    });
    if name.contains("verified") || name == "merge.json" || in_verified_folder {
        WiseEdition::Verified
    } else {
        WiseEdition::Original
    }
}
