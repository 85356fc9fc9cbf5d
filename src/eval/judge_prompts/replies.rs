//! Parsers of the judges' replies into typed values.
//!
//! The JSON object is found with the crate's tolerant extraction ([`extract_json`]: the
//! whole reply, a fenced block, or the first balanced object in prose), then checked
//! strictly: a reply that is not the JSON asked for is a [`ReplyError`], never a panic
//! and never a zero score.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::scoring::{Winner, checklist_score, wiscore};
use crate::lmm::extract_json;

/// Most checklist items a written checklist may have (the writer is asked for 3–6).
const MAX_WRITTEN_ITEMS: usize = 12;

/// A judge reply that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// No JSON object in the reply.
    #[error("the {judge} judge's reply has no JSON object: {snippet:?}")]
    NotJson {
        /// Which judge (`checklist`, `wiscore`, ...).
        judge: &'static str,
        /// The start of the reply.
        snippet: String,
    },
    /// The JSON is not what was asked for (a field missing, of the wrong type, or out of
    /// range).
    #[error("the {judge} judge's reply is not the JSON asked for: {detail} (reply: {snippet:?})")]
    Invalid {
        /// Which judge.
        judge: &'static str,
        /// What is wrong.
        detail: String,
        /// The start of the reply.
        snippet: String,
    },
}

/// One checklist item's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemVerdict {
    /// The item's 1-based number in the checklist.
    pub index: usize,
    /// Whether the image shows it.
    pub satisfied: bool,
    /// Why, in the judge's words (empty if it gave none).
    pub reason: String,
}

/// A parsed checklist judgment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecklistReply {
    /// How many items the checklist had.
    pub n_items: usize,
    /// The verdicts given, sorted by index, at most one per item. Items the judge skipped
    /// have none.
    pub items: Vec<ItemVerdict>,
}

impl ChecklistReply {
    /// One entry per checklist item: its verdict, or `None` when the judge gave none.
    pub fn satisfied(&self) -> Vec<Option<bool>> {
        let mut out = vec![None; self.n_items];
        for item in &self.items {
            if let Some(slot) = item.index.checked_sub(1).and_then(|i| out.get_mut(i)) {
                *slot = Some(item.satisfied);
            }
        }
        out
    }

    /// The Knowledge Checklist Score of this judgment (see
    /// [`super::checklist_score`]): items the judge skipped count as not satisfied.
    pub fn score(&self) -> Option<f64> {
        checklist_score(&self.satisfied())
    }
}

/// A parsed WISE three-axis judgment, each score in 0–2.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WiScoreReply {
    /// How completely and accurately the image shows the prompt and its knowledge.
    pub consistency: u8,
    /// How physically and visually plausible it is.
    pub realism: u8,
    /// Its visual and artistic merit.
    pub aesthetic_quality: u8,
    /// Why, in the judge's words (empty if it gave none).
    pub reason: String,
}

impl WiScoreReply {
    /// The WiScore of this judgment, in `0..=1` (see [`super::wiscore`]).
    pub fn score(&self) -> f64 {
        wiscore(self.consistency, self.realism, self.aesthetic_quality)
    }
}

/// A parsed pairwise judgment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairwiseReply {
    /// Which position won.
    pub winner: Winner,
    /// Why, in the judge's words (empty if it gave none).
    pub reason: String,
}

/// Parse a checklist judge's reply for a checklist of `n_items` items:
/// `{"items":[{"index":1,"satisfied":true,"reason":"..."}, ...]}`.
///
/// Indices must be integers in `1..=n_items`, each at most once, and `satisfied` a
/// boolean. Items the judge left out stay unjudged (and score as not satisfied); a reply
/// that judges none is an error.
pub fn parse_checklist_reply(text: &str, n_items: usize) -> Result<ChecklistReply, ReplyError> {
    let judge = "checklist";
    let obj = object(judge, text)?;
    let invalid = |detail: String| invalid(judge, text, detail);
    let items = match obj.get("items") {
        Some(Value::Array(items)) => items,
        Some(other) => return Err(invalid(format!("\"items\" must be a list, not {other}"))),
        None => return Err(invalid("no \"items\" list".into())),
    };
    let mut verdicts: Vec<ItemVerdict> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(item) = item else {
            return Err(invalid(format!("items[{i}] is not an object")));
        };
        let index = item
            .get("index")
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| (1..=n_items).contains(n))
            .ok_or_else(|| {
                invalid(format!(
                    "items[{i}].index must be an integer from 1 to {n_items}, not {}",
                    shown(item.get("index"))
                ))
            })?;
        let satisfied = item
            .get("satisfied")
            .and_then(Value::as_bool)
            .ok_or_else(|| {
                invalid(format!(
                    "items[{i}].satisfied must be true or false, not {}",
                    shown(item.get("satisfied"))
                ))
            })?;
        if verdicts.iter().any(|v| v.index == index) {
            return Err(invalid(format!("item {index} is judged twice")));
        }
        verdicts.push(ItemVerdict {
            index,
            satisfied,
            reason: reason(item),
        });
    }
    if verdicts.is_empty() {
        return Err(invalid(format!(
            "no item judged (the checklist has {n_items})"
        )));
    }
    verdicts.sort_by_key(|v| v.index);
    Ok(ChecklistReply {
        n_items,
        items: verdicts,
    })
}

/// Parse a WISE judge's reply:
/// `{"consistency":0-2,"realism":0-2,"aesthetic_quality":0-2,"reason":"..."}`. Each score
/// must be an integer from 0 to 2 (`2.0` counts as 2; `1.5`, `3` or `"2"` are errors).
pub fn parse_wiscore_reply(text: &str) -> Result<WiScoreReply, ReplyError> {
    let judge = "wiscore";
    let obj = object(judge, text)?;
    let score = |key: &str| -> Result<u8, ReplyError> {
        let v = obj.get(key);
        let n = v.and_then(|v| {
            v.as_u64().or_else(|| {
                v.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                    .map(|f| f as u64)
            })
        });
        match n {
            Some(n @ 0..=2) => Ok(n as u8),
            _ => Err(invalid(
                judge,
                text,
                format!("\"{key}\" must be an integer from 0 to 2, not {}", shown(v)),
            )),
        }
    };
    Ok(WiScoreReply {
        consistency: score("consistency")?,
        realism: score("realism")?,
        aesthetic_quality: score("aesthetic_quality")?,
        reason: reason(&obj),
    })
}

/// Parse a pairwise judge's reply: `{"winner":"A"|"B"|"tie","reason":"..."}` (the
/// winner's case does not matter).
pub fn parse_pairwise_reply(text: &str) -> Result<PairwiseReply, ReplyError> {
    let judge = "pairwise";
    let obj = object(judge, text)?;
    let v = obj.get("winner");
    let winner = match v
        .and_then(Value::as_str)
        .map(|s| s.trim().to_ascii_lowercase())
    {
        Some(s) if s == "a" => Winner::A,
        Some(s) if s == "b" => Winner::B,
        Some(s) if s == "tie" => Winner::Tie,
        _ => {
            return Err(invalid(
                judge,
                text,
                format!(
                    "\"winner\" must be \"A\", \"B\" or \"tie\", not {}",
                    shown(v)
                ),
            ));
        }
    };
    Ok(PairwiseReply {
        winner,
        reason: reason(&obj),
    })
}

/// Parse a checklist writer's reply, `{"checklist": ["...", ...]}`, into its items:
/// trimmed, blanks and repeats dropped. The writer is asked for 3–6 items; 1 to 12 are
/// accepted, none or more are an error, as is an item that is not a string.
pub fn parse_checklist_writer_reply(text: &str) -> Result<Vec<String>, ReplyError> {
    let judge = "checklist_writer";
    let obj = object(judge, text)?;
    let invalid = |detail: String| invalid(judge, text, detail);
    let Some(Value::Array(raw)) = obj.get("checklist") else {
        return Err(invalid(format!(
            "\"checklist\" must be a list of strings, not {}",
            shown(obj.get("checklist"))
        )));
    };
    let mut items: Vec<String> = Vec::with_capacity(raw.len());
    for (i, v) in raw.iter().enumerate() {
        let Some(s) = v.as_str() else {
            return Err(invalid(format!("checklist[{i}] is not a string")));
        };
        let s = s.trim();
        if !s.is_empty() && !items.iter().any(|x| x.eq_ignore_ascii_case(s)) {
            items.push(s.to_string());
        }
    }
    if items.is_empty() || items.len() > MAX_WRITTEN_ITEMS {
        return Err(invalid(format!(
            "the checklist must have 1 to {MAX_WRITTEN_ITEMS} items, not {}",
            items.len()
        )));
    }
    Ok(items)
}

/// The reply's JSON object.
fn object(judge: &'static str, text: &str) -> Result<Map<String, Value>, ReplyError> {
    match extract_json(text) {
        Some(Value::Object(obj)) => Ok(obj),
        _ => Err(ReplyError::NotJson {
            judge,
            snippet: snippet(text),
        }),
    }
}

fn invalid(judge: &'static str, text: &str, detail: String) -> ReplyError {
    ReplyError::Invalid {
        judge,
        detail,
        snippet: snippet(text),
    }
}

/// The `reason` string of a reply object (empty if absent or not a string).
fn reason(obj: &Map<String, Value>) -> String {
    obj.get("reason")
        .and_then(Value::as_str)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn shown(v: Option<&Value>) -> String {
    match v {
        None => "missing".into(),
        Some(v) => v.to_string().chars().take(40).collect(),
    }
}

fn snippet(text: &str) -> String {
    text.chars().take(160).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checklist_reply_parses_and_scores() {
        let text = r#"Here you go:
```json
{"items": [{"index": 2, "satisfied": false, "reason": "no fin"},
           {"index": 1, "satisfied": true, "reason": "three headlights"},
           {"index": 4, "satisfied": true}]}
```"#;
        let reply = parse_checklist_reply(text, 4).unwrap();
        assert_eq!(reply.items.len(), 3);
        assert_eq!(reply.items[0].index, 1);
        assert_eq!(reply.items[0].reason, "three headlights");
        assert_eq!(reply.items[2].reason, "");
        assert_eq!(
            reply.satisfied(),
            vec![Some(true), Some(false), None, Some(true)]
        );
        // Item 3 was skipped: it counts as unsatisfied, so 2 of 4, not 2 of the 3 judged.
        assert_eq!(reply.score(), Some(0.5));
    }

    #[test]
    fn checklist_reply_that_omits_items_scores_them_unsatisfied() {
        let text = r#"{"items": [{"index": 3, "satisfied": true, "reason": "the fin"}]}"#;
        let reply = parse_checklist_reply(text, 5).unwrap();
        assert_eq!(reply.score(), Some(0.2), "1 of 5, not 1 of 1");
    }

    #[test]
    fn checklist_reply_refuses_what_was_not_asked() {
        let cases = [
            ("no json here", "no JSON object"),
            (r#"{"verdict": "yes"}"#, "no \"items\""),
            (r#"{"items": "all good"}"#, "must be a list"),
            (r#"{"items": []}"#, "no item judged"),
            (r#"{"items": [1, 2]}"#, "not an object"),
            (
                r#"{"items": [{"index": 0, "satisfied": true}]}"#,
                "from 1 to 3",
            ),
            (
                r#"{"items": [{"index": 4, "satisfied": true}]}"#,
                "from 1 to 3",
            ),
            (
                r#"{"items": [{"index": "1", "satisfied": true}]}"#,
                "from 1 to 3",
            ),
            (
                r#"{"items": [{"index": 1, "satisfied": "yes"}]}"#,
                "true or false",
            ),
            (r#"{"items": [{"index": 1}]}"#, "true or false"),
            (
                r#"{"items": [{"index": 1, "satisfied": true}, {"index": 1, "satisfied": false}]}"#,
                "judged twice",
            ),
        ];
        for (text, expected) in cases {
            let err = parse_checklist_reply(text, 3).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn wiscore_reply_parses_and_refuses_out_of_range() {
        let r = parse_wiscore_reply(
            r#"{"consistency": 1, "realism": 0, "aesthetic_quality": 2.0, "reason": " ok "}"#,
        )
        .unwrap();
        assert_eq!((r.consistency, r.realism, r.aesthetic_quality), (1, 0, 2));
        assert_eq!(r.reason, "ok");
        assert!((r.score() - 0.45).abs() < 1e-12);
        for bad in [
            r#"{"consistency": 3, "realism": 0, "aesthetic_quality": 0}"#,
            r#"{"consistency": -1, "realism": 0, "aesthetic_quality": 0}"#,
            r#"{"consistency": 1.5, "realism": 0, "aesthetic_quality": 0}"#,
            r#"{"consistency": "2", "realism": 0, "aesthetic_quality": 0}"#,
            r#"{"consistency": 2, "realism": 0}"#,
            "Consistency: 2\nRealism: 1\nAesthetic Quality: 0",
        ] {
            assert!(parse_wiscore_reply(bad).is_err(), "{bad}");
        }
        let err =
            parse_wiscore_reply(r#"{"consistency": 2, "realism": 7, "aesthetic_quality": 0}"#)
                .unwrap_err();
        assert!(
            err.to_string()
                .contains("\"realism\" must be an integer from 0 to 2, not 7")
        );
    }

    #[test]
    fn pairwise_reply_parses_case_insensitively() {
        let r = parse_pairwise_reply(r#"{"winner": "B", "reason": "right badge"}"#).unwrap();
        assert_eq!((r.winner, r.reason.as_str()), (Winner::B, "right badge"));
        assert_eq!(
            parse_pairwise_reply(r#"{"winner":"Tie"}"#).unwrap().winner,
            Winner::Tie
        );
        assert_eq!(
            parse_pairwise_reply(r#"{"winner":" a "}"#).unwrap().winner,
            Winner::A
        );
        for bad in [
            r#"{"winner": "both"}"#,
            r#"{"winner": 1}"#,
            r#"{"reason": "A is better"}"#,
            "A",
        ] {
            assert!(parse_pairwise_reply(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn checklist_writer_reply_trims_and_bounds() {
        let items = parse_checklist_writer_reply(
            r#"{"checklist": [" A red roof ", "", "a red roof", "Snow on the ground", "A chimney"]}"#,
        )
        .unwrap();
        assert_eq!(items, ["A red roof", "Snow on the ground", "A chimney"]);
        let many: Vec<String> = (0..13).map(|i| format!("item {i}")).collect();
        let text = serde_json::json!({ "checklist": many }).to_string();
        assert!(parse_checklist_writer_reply(&text).is_err());
        for bad in [
            r#"{"checklist": []}"#,
            r#"{"checklist": ["", "  "]}"#,
            r#"{"checklist": "A red roof"}"#,
            r#"{"checklist": ["ok", 3]}"#,
            r#"{"items": ["A red roof"]}"#,
            "- A red roof\n- Snow",
        ] {
            assert!(parse_checklist_writer_reply(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn garbage_never_panics() {
        let junk = [
            "",
            "{",
            "}",
            "{{{{",
            "[1,2,3]",
            "null",
            "\u{0}",
            "{\"items\": [{\"index\": 1e400}]}",
            "{\"consistency\": 1e400}",
            "{\"winner\": null}",
            "{\"checklist\": [null]}",
        ];
        for text in junk {
            let _ = parse_checklist_reply(text, 0);
            let _ = parse_checklist_reply(text, usize::MAX);
            let _ = parse_wiscore_reply(text);
            let _ = parse_pairwise_reply(text);
            let _ = parse_checklist_writer_reply(text);
        }
        // A checklist of no items can never be judged.
        assert!(
            parse_checklist_reply(r#"{"items": [{"index": 1, "satisfied": true}]}"#, 0).is_err()
        );
    }
}
