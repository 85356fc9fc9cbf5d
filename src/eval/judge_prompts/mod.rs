//! The judges' instructions, the parsers of their replies, and the scores computed from
//! them (pure functions: nothing here calls a model).
//!
//! Each instruction text lives in its own file, `<name>.<version>.txt`, and is included at
//! build time. A changed instruction is a new version in a new file, so a report can
//! name exactly the text its scores came from ([`JudgePrompt::id`]). The texts have
//! `{{placeholder}}`s that [`JudgePrompt::render`] fills in.

mod file;
mod replies;
mod scoring;

pub use file::{JudgePromptFile, JudgePromptFileError, WiScoreJudgment, parse_wiscore_judgment};
pub use replies::{
    ChecklistReply, ItemVerdict, PairwiseReply, ReplyError, WiScoreReply, parse_checklist_reply,
    parse_checklist_writer_reply, parse_pairwise_reply, parse_wiscore_reply,
};
pub use scoring::{PairOutcome, Winner, checklist_score, overall_wiscore, resolve_pair, wiscore};

/// One judge instruction text, versioned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JudgePrompt {
    /// What it judges: `checklist`, `checklist_writer`, `wiscore` or `pairwise`.
    pub name: &'static str,
    /// Its version (`v1`); the file is `judge_prompts/<name>.<version>.txt`.
    pub version: &'static str,
    /// The text, with `{{placeholder}}`s.
    pub text: &'static str,
}

/// Knowledge Checklist judging: the image, the prompt (`{{prompt}}`) and the numbered
/// checklist (`{{checklist}}`, `{{count}}` items) in; strict JSON
/// `{"items":[{"index":1,"satisfied":true,"reason":"..."}]}` out.
pub const CHECKLIST_V1: JudgePrompt = JudgePrompt {
    name: "checklist",
    version: "v1",
    text: include_str!("checklist.v1.txt"),
};

/// Checklist writing for a prompt without one: the prompt (`{{prompt}}`) and what it
/// implies (`{{explanation}}`, may be empty) in; `{"checklist": ["..."]}` with 3–6
/// checkable items out.
pub const CHECKLIST_WRITER_V1: JudgePrompt = JudgePrompt {
    name: "checklist_writer",
    version: "v1",
    text: include_str!("checklist_writer.v1.txt"),
};

/// WISE's protocol: the image, the prompt (`{{prompt}}`) and its explanation
/// (`{{explanation}}`) in; consistency, realism and aesthetic quality, each an integer
/// 0–2, out: `{"consistency":2,"realism":1,"aesthetic_quality":1,"reason":"..."}`. The
/// rubric follows the original WISE evaluation (`WISE_legacy/gpt_eval.py`) in spirit.
pub const WISCORE_V1: JudgePrompt = JudgePrompt {
    name: "wiscore",
    version: "v1",
    text: include_str!("wiscore.v1.txt"),
};

/// IA-T2I's pairwise protocol: the prompt (`{{prompt}}`) and two images, A then B, in;
/// `{"winner":"A"|"B"|"tie","reason":"..."}` out. Ask twice with the images swapped
/// and combine with [`resolve_pair`].
pub const PAIRWISE_V1: JudgePrompt = JudgePrompt {
    name: "pairwise",
    version: "v1",
    text: include_str!("pairwise.v1.txt"),
};

/// Every judge prompt, each in its current version.
pub const ALL: [JudgePrompt; 4] = [CHECKLIST_V1, CHECKLIST_WRITER_V1, WISCORE_V1, PAIRWISE_V1];

impl JudgePrompt {
    /// `<name>.<version>`, e.g. `checklist.v1`: what a report records.
    pub fn id(&self) -> String {
        format!("{}.{}", self.name, self.version)
    }

    /// The names of the `{{placeholder}}`s in the text, in order of first appearance.
    pub fn placeholders(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        let mut rest = self.text;
        while let Some((name, after)) = next_placeholder(rest) {
            if let Some(name) = name
                && !out.contains(&name)
            {
                out.push(name);
            }
            rest = after;
        }
        out
    }

    /// The text with each `{{name}}` replaced by its value in `values`, in one pass (a
    /// value containing `{{...}}`, say a prompt, is not expanded again). Placeholders
    /// without a value are left as they are.
    pub fn render(&self, values: &[(&str, &str)]) -> String {
        render_text(self.text, values)
    }
}

/// `text` with each `{{name}}` replaced by its value in `values`, in one pass (see
/// [`JudgePrompt::render`]).
fn render_text(text: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(text.len() + 256);
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let (before, from) = rest.split_at(start);
        out.push_str(before);
        match next_placeholder(from) {
            Some((Some(name), after)) => {
                match values.iter().find(|(k, _)| *k == name) {
                    Some((_, v)) => out.push_str(v),
                    None => out.push_str(&from[..from.len() - after.len()]),
                }
                rest = after;
            }
            _ => {
                out.push_str("{{");
                rest = &from[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The next `{{name}}` in `text`: its name (`None` if what follows `{{` is not a name
/// closed by `}}`) and the text after it. `None` when there is no `{{` left.
fn next_placeholder(text: &str) -> Option<(Option<&str>, &str)> {
    let start = text.find("{{")?;
    let after_open = &text[start + 2..];
    let name_len = after_open
        .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
        .unwrap_or(after_open.len());
    let name = &after_open[..name_len];
    match after_open[name_len..].strip_prefix("}}") {
        Some(after) if !name.is_empty() => Some((Some(name), after)),
        _ => Some((None, after_open)),
    }
}

/// A checklist as the judge sees it: `1. first item`, one item a line.
pub fn numbered_checklist(items: &[String]) -> String {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| format!("{}. {}", i + 1, item.trim()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_named_after_name_and_version() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/eval/judge_prompts");
        for p in ALL {
            let file = dir.join(format!("{}.txt", p.id()));
            let on_disk = std::fs::read_to_string(&file).unwrap();
            assert_eq!(on_disk, p.text, "{}", file.display());
            assert!(p.version.starts_with('v'), "{}", p.id());
        }
    }

    #[test]
    fn each_prompt_has_exactly_its_placeholders() {
        assert_eq!(
            CHECKLIST_V1.placeholders(),
            ["prompt", "count", "checklist"]
        );
        assert_eq!(
            CHECKLIST_WRITER_V1.placeholders(),
            ["prompt", "explanation"]
        );
        assert_eq!(WISCORE_V1.placeholders(), ["prompt", "explanation"]);
        assert_eq!(PAIRWISE_V1.placeholders(), ["prompt"]);
    }

    #[test]
    fn each_prompt_shows_the_json_it_asks_for() {
        assert!(CHECKLIST_V1.text.contains(r#""satisfied": true"#));
        assert!(CHECKLIST_WRITER_V1.text.contains(r#"{"checklist": ["#));
        assert!(WISCORE_V1.text.contains(r#""aesthetic_quality": 0"#));
        assert!(PAIRWISE_V1.text.contains(r#""winner": "A""#));
    }

    #[test]
    fn render_fills_every_placeholder_once() {
        let items = vec!["A red roof".to_string(), " Snow ".to_string()];
        let checklist = numbered_checklist(&items);
        assert_eq!(checklist, "1. A red roof\n2. Snow");
        let text = CHECKLIST_V1.render(&[
            ("prompt", "A {{checklist}} house"),
            ("count", "2"),
            ("checklist", &checklist),
        ]);
        assert!(text.contains("Prompt:\nA {{checklist}} house\n"), "{text}");
        assert!(text.contains("Checklist (2 items):\n1. A red roof\n2. Snow\n"));
        assert!(text.contains("(1 to 2)"));
        assert!(!text.contains("{{count}}") && !text.contains("{{prompt}}"));
        // The JSON example's braces are not placeholders.
        assert!(text.contains(r#"{"items": [{"index": 1"#));
    }

    #[test]
    fn render_leaves_unknown_and_broken_placeholders() {
        let p = JudgePrompt {
            name: "t",
            version: "v0",
            text: "a {{x}} b {{y}} c {{ d {{",
        };
        assert_eq!(p.render(&[("x", "1")]), "a 1 b {{y}} c {{ d {{");
        assert_eq!(p.placeholders(), ["x", "y"]);
    }
}
