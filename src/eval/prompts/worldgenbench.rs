//! WorldGenBench files ("WorldGenBench: A World-Knowledge-Integrated Benchmark for
//! Reasoning-Driven Text-to-Image Generation", arXiv 2505.01490).
//!
//! What is known of the format, and from where:
//!
//! * The data is the Hugging Face dataset `worldrl/WorldGenBench` (MIT): two JSON files,
//!   `humanities_en.json` (732 prompts, 3 for each of 244 countries and regions) and
//!   `nature_en.json` (340 prompts over Astronomy, Physics, Earth Sciences, Chemistry,
//!   Biology & Medicine and Cross-disciplinary). Its card says each prompt comes with a
//!   "Knowledge Checklist" of binary criteria, scored as (items satisfied) / (items).
//! * The field names were not readable here (the files are too large for the stored
//!   copies, and neither the dataset viewer nor the evaluation code was available). They
//!   come from a published third-party loader that reads both files as JSON arrays and
//!   takes `prompt_en` (the prompt), `checklist` (a list) and an optional `class` from
//!   each row, and the domain (humanities or nature) from the file name.
//!
//! So this loader reads that shape and tolerates the likely variants, in this order:
//!
//! * the file: a JSON array, or JSONL (one object a line);
//! * the prompt: `prompt_en`, else `prompt`, else `Prompt`;
//! * the checklist: `checklist`, `checklist_en`, `knowledge_checklist`, `check_list` or
//!   `Checklist`; a list of strings, or of objects whose text is under `item`, `text`,
//!   `content`, `description`, `requirement`, `check`, `criterion` or `question`;
//! * the domain (the category results are reported by): the entry's `category`, `area`,
//!   `domain` or `Category` field; else its class when that tells (one of the nature
//!   domain's disciplines means `nature`; a `country`, `region` or `continent` field means
//!   `humanities`); else `humanities` or `nature` from the file name; else `humanities`
//!   when the entry has a class at all (the humanities classes are countries and regions).
//!   So a merged file of both domains is reported by domain;
//! * the subcategory: `class`, `subcategory`, `discipline`, `field`, `country`, `region` or
//!   `continent`;
//! * the id: `id`, `prompt_id`, `idx` or `index` (a number becomes
//!   `wgb-<category>-<n>`, a string is kept), else `wgb-<category>-<position>` with the
//!   entry's 0-based position in the file.
//!
//! An entry without a prompt is an error, and so is a checklist that is empty, has a blank
//! item, or is one string rather than a list (`"a; b; c"` is not three items, nor one):
//! the benchmark's score is the fraction of its checklist satisfied.

use std::path::Path;

use serde_json::{Map, Value};

use super::{EvalPrompt, PromptSetError, check_id, line_json_error, slug, snippet};

const PROMPT_KEYS: [&str; 3] = ["prompt_en", "prompt", "Prompt"];
const CHECKLIST_KEYS: [&str; 5] = [
    "checklist",
    "checklist_en",
    "knowledge_checklist",
    "check_list",
    "Checklist",
];
const ITEM_TEXT_KEYS: [&str; 8] = [
    "item",
    "text",
    "content",
    "description",
    "requirement",
    "check",
    "criterion",
    "question",
];
const CATEGORY_KEYS: [&str; 4] = ["category", "area", "domain", "Category"];
const SUBCATEGORY_KEYS: [&str; 7] = [
    "class",
    "subcategory",
    "discipline",
    "field",
    "country",
    "region",
    "continent",
];
const ID_KEYS: [&str; 4] = ["id", "prompt_id", "idx", "index"];
const EXPLANATION_KEYS: [&str; 3] = ["explanation", "Explanation", "rationale"];

/// Where an entry is: its index in a JSON array or its line in JSONL.
#[derive(Clone, Copy)]
enum Loc {
    Index(usize),
    Line(usize),
}

impl Loc {
    /// An error about the entry `value` found here, naming its own id when it has one.
    fn error_in(self, path: &Path, value: Option<&Value>, reason: String) -> PromptSetError {
        match self {
            Loc::Index(index) => PromptSetError::Entry {
                path: path.to_path_buf(),
                index,
                record: value.and_then(own_id),
                reason,
            },
            Loc::Line(line) => PromptSetError::Line {
                path: path.to_path_buf(),
                line,
                reason,
            },
        }
    }

    fn describe(self) -> String {
        match self {
            Loc::Index(i) => format!("entry {i}"),
            Loc::Line(l) => format!("line {l}"),
        }
    }
}

/// Parse a WorldGenBench file (see the module documentation for the accepted shapes).
pub(super) fn parse(text: &str, path: &Path) -> Result<Vec<EvalPrompt>, PromptSetError> {
    let rows = rows(text, path)?;
    let file_domain = domain_from_name(path);
    let stem_slug = path
        .file_stem()
        .map(|s| slug(&s.to_string_lossy()))
        .unwrap_or_default();
    let mut prompts: Vec<EvalPrompt> = Vec::with_capacity(rows.len());
    let mut locs: Vec<Loc> = Vec::with_capacity(rows.len());
    for (position, (loc, value)) in rows.into_iter().enumerate() {
        let p = entry(&value, position, file_domain, &stem_slug)
            .map_err(|r| loc.error_in(path, Some(&value), r))?;
        if let Some(first) = prompts.iter().position(|q| q.id == p.id) {
            let first = locs.get(first).map_or_else(String::new, |l| l.describe());
            return Err(loc.error_in(path, Some(&value), format!("id {:?} is also {first}", p.id)));
        }
        prompts.push(p);
        locs.push(loc);
    }
    Ok(prompts)
}

/// The file's entries with their locations: a JSON array, or JSONL.
fn rows(text: &str, path: &Path) -> Result<Vec<(Loc, Value)>, PromptSetError> {
    if text.trim_start().starts_with('[') {
        let value: Value = serde_json::from_str(text).map_err(|e| PromptSetError::Json {
            path: path.to_path_buf(),
            format: "WorldGenBench",
            detail: e.to_string(),
        })?;
        let Value::Array(items) = value else {
            return Err(PromptSetError::Json {
                path: path.to_path_buf(),
                format: "WorldGenBench",
                detail: "expected one JSON array of prompts".into(),
            });
        };
        return Ok(items
            .into_iter()
            .enumerate()
            .map(|(i, v)| (Loc::Index(i), v))
            .collect());
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(trimmed).map_err(|e| PromptSetError::Line {
            path: path.to_path_buf(),
            line: line_no,
            reason: format!(
                "not a JSON object ({}); a WorldGenBench file is a JSON array or JSONL",
                line_json_error(&e)
            ),
        })?;
        out.push((Loc::Line(line_no), value));
    }
    Ok(out)
}

fn entry(
    value: &Value,
    position: usize,
    file_domain: Option<&str>,
    stem_slug: &str,
) -> Result<EvalPrompt, String> {
    let Value::Object(obj) = value else {
        return Err(format!("expected a JSON object, found {}", snippet(value)));
    };
    let prompt = match first(obj, &PROMPT_KEYS) {
        Some((_, Value::String(s))) if !s.trim().is_empty() => s.trim().to_string(),
        Some((key, other)) => {
            return Err(format!(
                "\"{key}\" must be a non-empty string, not {}",
                snippet(other)
            ));
        }
        None => return Err(format!("no prompt (looked for {})", PROMPT_KEYS.join(", "))),
    };
    let checklist = match first(obj, &CHECKLIST_KEYS) {
        Some((key, v)) => checklist(key, v)?,
        None => {
            return Err(format!(
                "no checklist (looked for {})",
                CHECKLIST_KEYS.join(", ")
            ));
        }
    };
    let class = first(obj, &SUBCATEGORY_KEYS)
        .map(|(key, v)| label(key, v).map(|l| (key, l)))
        .transpose()?;
    let category = match first(obj, &CATEGORY_KEYS) {
        Some((key, v)) => Some(normalise_domain(label(key, v)?)),
        None => domain_from_record(class.as_ref())
            .or(file_domain)
            // WorldGenBench's other classes are its 244 countries and regions.
            .or(class.as_ref().map(|_| "humanities"))
            .map(str::to_string),
    };
    let subcategory = class.map(|(_, l)| l);
    let explanation = match first(obj, &EXPLANATION_KEYS) {
        Some((_, Value::String(s))) => Some(s.clone()),
        Some((key, other)) => {
            return Err(format!(
                "\"{key}\" must be a string, not {}",
                snippet(other)
            ));
        }
        None => None,
    };
    let id = entry_id(obj, category.as_deref(), stem_slug, position)?;
    Ok(EvalPrompt {
        id,
        prompt,
        category,
        subcategory,
        checklist,
        explanation,
    })
}

/// The entry's id: its own (a number as `wgb-<category>-<n>`, a string kept), else
/// `wgb-<category>-<position>`; the file's stem stands in for a missing category.
fn entry_id(
    obj: &Map<String, Value>,
    category: Option<&str>,
    stem_slug: &str,
    position: usize,
) -> Result<String, String> {
    let prefix = category
        .map(slug)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| stem_slug.to_string());
    let prefix = if prefix.is_empty() {
        "x".into()
    } else {
        prefix
    };
    match first(obj, &ID_KEYS) {
        Some((_, Value::Number(n))) if n.as_u64().is_some() => Ok(format!("wgb-{prefix}-{n}")),
        Some((_, Value::String(s))) => {
            check_id(s.trim())?;
            Ok(s.trim().to_string())
        }
        Some((key, other)) => Err(format!(
            "\"{key}\" must be a non-negative integer or a string, not {}",
            snippet(other)
        )),
        None => Ok(format!("wgb-{prefix}-{position}")),
    }
}

/// How an entry names itself, for an error message: its id field, when it is a string or
/// a number.
fn own_id(value: &Value) -> Option<String> {
    let Value::Object(obj) = value else {
        return None;
    };
    match first(obj, &ID_KEYS)? {
        (key, Value::String(s)) => Some(format!(
            "{key} {:?}",
            s.chars().take(60).collect::<String>()
        )),
        (key, Value::Number(n)) => Some(format!("{key} {n}")),
        _ => None,
    }
}

/// The first of `keys` present with a non-null value.
fn first<'a>(
    obj: &'a Map<String, Value>,
    keys: &[&'static str],
) -> Option<(&'static str, &'a Value)> {
    keys.iter()
        .find_map(|&k| obj.get(k).filter(|v| !v.is_null()).map(|v| (k, v)))
}

/// A category-like label: a string, or a number written out.
fn label(key: &str, v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(format!(
            "\"{key}\" must be a non-empty string, not {}",
            snippet(other)
        )),
    }
}

/// The checklist: a list whose every item has text. One string is refused, whatever it
/// holds: `"a; b; c"` or lines of bullets would otherwise be guessed apart, or judged as
/// one item, and the score is the fraction of items satisfied.
fn checklist(key: &str, v: &Value) -> Result<Vec<String>, String> {
    let items = match v {
        Value::Array(items) => items,
        Value::String(s) => {
            return Err(format!(
                "\"{key}\" is one string ({}), not a list of items: WorldGenBench's checklist \
                 is a JSON list with one criterion a string; split it into one",
                snippet(&Value::String(s.clone()))
            ));
        }
        other => {
            return Err(format!(
                "\"{key}\" must be a list of items, not {}",
                snippet(other)
            ));
        }
    };
    if items.is_empty() {
        return Err(format!(
            "\"{key}\" is empty: WorldGenBench scores by its checklist"
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let text = item_text(item).ok_or_else(|| {
            format!(
                "\"{key}\" item {i} must be a string or an object with a text field ({}), not {}",
                ITEM_TEXT_KEYS.join(", "),
                snippet(item)
            )
        })?;
        let text = text.trim();
        if text.is_empty() {
            return Err(format!(
                "\"{key}\" item {i} (0-based) is blank: every item is a criterion the judge checks"
            ));
        }
        out.push(text.to_string());
    }
    Ok(out)
}

fn item_text(item: &Value) -> Option<String> {
    match item {
        Value::String(s) => Some(s.clone()),
        Value::Object(obj) => ITEM_TEXT_KEYS
            .iter()
            .find_map(|k| obj.get(*k).and_then(Value::as_str).map(str::to_string)),
        _ => None,
    }
}

/// The nature domain's disciplines (the dataset card: Astronomy, Physics, Earth Sciences,
/// Chemistry, Biology & Medicine, Cross-disciplinary), lower-case, `&` as `and`, `-` as a
/// space.
const NATURE_CLASSES: [&str; 10] = [
    "astronomy",
    "physics",
    "earth sciences",
    "earth science",
    "chemistry",
    "biology and medicine",
    "biology",
    "medicine",
    "cross disciplinary",
    "interdisciplinary",
];

/// The domain an entry's class implies: `nature` for one of the nature domain's
/// disciplines, `humanities` when the class is given as a country, region or continent.
fn domain_from_record(class: Option<&(&str, String)>) -> Option<&'static str> {
    let (key, value) = class?;
    let norm = value
        .to_ascii_lowercase()
        .replace('&', " and ")
        .replace('-', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if NATURE_CLASSES.contains(&norm.as_str()) {
        Some("nature")
    } else if ["country", "region", "continent"].contains(key) {
        Some("humanities")
    } else {
        None
    }
}

/// A domain field's value, `Humanities` and `NATURE` written as the file names do.
fn normalise_domain(label: String) -> String {
    match label.to_ascii_lowercase().as_str() {
        d @ ("humanities" | "nature") => d.to_string(),
        _ => label,
    }
}

/// `humanities` or `nature` from WorldGenBench's file names.
fn domain_from_name(path: &Path) -> Option<&'static str> {
    let stem = path.file_stem()?.to_string_lossy().to_ascii_lowercase();
    if stem.starts_with("humanities") {
        Some("humanities")
    } else if stem.starts_with("nature") {
        Some("nature")
    } else {
        None
    }
}
