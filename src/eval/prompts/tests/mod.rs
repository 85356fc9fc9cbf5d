use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::*;

mod wise;
mod worldgenbench;

pub(super) fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/eval")
        .join(rel)
}

pub(super) fn ids(set: &PromptSet) -> Vec<&str> {
    set.prompts.iter().map(|p| p.id.as_str()).collect()
}

#[test]
fn jsonl_manifest_keeps_given_ids_and_derives_the_others() {
    let set = PromptSet::load(&fixture("manifest.jsonl")).unwrap();
    assert_eq!(set.prompts.len(), 3);
    assert_eq!(set.prompts[0].id, "graphorn");
    assert_eq!(set.prompts[0].checklist.len(), 2);
    let kr200 = &set.prompts[1];
    assert_eq!(kr200.id, derived_id(&kr200.prompt));
    assert!(
        kr200.id.starts_with("p-") && kr200.id.len() == 14,
        "{}",
        kr200.id
    );
    assert!(kr200.checklist.is_empty());
    assert_eq!(set.prompts[2].subcategory.as_deref(), Some("animal"));
    assert_eq!(set.categories(), ["unknown", "known_rare", "ambiguous"]);
}

#[test]
fn text_manifest_skips_comments_and_blanks() {
    let set = PromptSet::load(&fixture("prompts.txt")).unwrap();
    assert_eq!(set.prompts.len(), 2);
    assert_eq!(
        set.prompts[1].prompt,
        "A red Messerschmitt KR200 on a cobbled street"
    );
    // The same prompt gets the same id from either manifest kind.
    let jsonl = PromptSet::load(&fixture("manifest.jsonl")).unwrap();
    assert_eq!(set.prompts[1].id, jsonl.prompts[1].id);
    assert_eq!(set.prompts[0].category, None);
}

#[test]
fn derived_ids_are_stable() {
    // SHA-256("abc") starts ba7816bf8f01.
    assert_eq!(derived_id("abc"), "p-ba7816bf8f01");
    assert_ne!(derived_id("abc"), derived_id("abd"));
}

fn manifest(text: &str, name: &str) -> Result<Vec<EvalPrompt>, PromptSetError> {
    manifest::parse(text, Path::new(name))
}

#[test]
fn manifest_refuses_bad_lines_with_their_number() {
    let cases = [
        (
            "{\"prompt\": \"a\"}\n{\"prompt\": \"b\", \"checklst\": [\"x\"]}",
            "line 2",
            "unknown field `checklst`",
        ),
        (
            "# c\n{\"id\": \"a b\", \"prompt\": \"x\"}",
            "line 2",
            "id \"a b\"",
        ),
        ("{\"prompt\": \"  \"}", "line 1", "prompt is empty"),
        (
            "{\"prompt\": \"a\", \"checklist\": [\"ok\", \" \"]}",
            "line 1",
            "checklist item 2 is empty",
        ),
        (
            "{\"prompt\": \"a\", \"checklist\": \"one\"}",
            "line 1",
            "invalid type",
        ),
        (
            "{\"id\": \"x\", \"prompt\": \"a\"}\n\n{\"id\": \"x\", \"prompt\": \"b\"}",
            "line 3",
            "also line 1",
        ),
        (
            "{\"prompt\": \"a\"}\nplain text",
            "line 2",
            "expected value",
        ),
    ];
    for (text, location, expected) in cases {
        let msg = manifest(text, "m.jsonl").unwrap_err().to_string();
        assert!(
            msg.starts_with(&format!("m.jsonl: {location}:")) && msg.contains(expected),
            "{text}: {msg}"
        );
    }
    let dup = manifest("a cat\n# x\na cat", "m.txt")
        .unwrap_err()
        .to_string();
    assert_eq!(dup, "m.txt: line 3: the same prompt as line 1");
    // `.txt` is text even when a line looks like JSON.
    let text = manifest("{\"prompt\": \"a\"}", "m.txt").unwrap();
    assert_eq!(text[0].prompt, "{\"prompt\": \"a\"}");
}

#[test]
fn detect_uses_content_then_name() {
    let d = |name: &str, head: &str| Format::detect(Path::new(name), head.as_bytes());
    assert_eq!(d("x.json", "\u{feff} [\n {\"Prompt\": \"a\""), Format::Wise);
    assert_eq!(
        d("x.json", "[{\"prompt_en\": \"a\", \"prompt_id\": 1"),
        Format::WorldGenBench
    );
    assert_eq!(d("x.json", "[{\"checklist\": []"), Format::WorldGenBench);
    assert_eq!(d("natural_science.json", "[\n"), Format::Wise);
    assert_eq!(d("nature_en.json", "[\n"), Format::WorldGenBench);
    assert_eq!(
        d("x.jsonl", "{\"prompt_en\": \"a\"}"),
        Format::WorldGenBench
    );
    assert_eq!(
        d("x.jsonl", "{\"prompt\": \"a\", \"checklist\": []}"),
        Format::Manifest
    );
    assert_eq!(d("x.txt", "A cat\n"), Format::Manifest);
    assert_eq!(d("x", ""), Format::Manifest);
    assert_eq!("WorldGenBench".parse::<Format>(), Ok(Format::WorldGenBench));
    assert!("csv".parse::<Format>().is_err());
}

#[test]
fn a_guessed_format_that_does_not_fit_says_what_was_tried() {
    // One JSON object is no prompt file: not "line 1: EOF while parsing".
    let err = PromptSet::load(&fixture("prompts_object.json")).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            &err,
            PromptSetError::Detected {
                format: Format::Manifest,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        msg.contains("prompts_object.json: not a prompt file: the file is one JSON object (keys \"name\", \"prompts\")")
            && msg.contains("It was read as manifest because it starts with '{'")
            && msg.contains("--format wise, worldgenbench or manifest")
            && !msg.contains("EOF"),
        "{msg}"
    );
    // A JSON array of another benchmark: the WorldGenBench reader's complaint, with why
    // it was tried and what the entries have.
    let err = PromptSet::load(&fixture("knowgen_like.json")).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err.inner(), PromptSetError::Entry { index: 0, .. }),
        "{err:?}"
    );
    assert!(
        msg.contains("knowgen_like.json: entry 0 (0-based index in the JSON array, id \"0001\"): no checklist")
            && msg.contains("It was read as WorldGenBench because it is a JSON array whose entries have none of WISE's fields")
            && msg.contains("(entry 0 has \"id\", \"prompt\", \"gt_image\", \"meta\")")
            && msg.contains("JSONL manifest")
            && msg.contains("--format"),
        "{msg}"
    );
    // A format that was named is not second-guessed.
    let err = PromptSet::load_as(&fixture("knowgen_like.json"), Format::WorldGenBench).unwrap_err();
    assert!(matches!(err, PromptSetError::Entry { .. }), "{err:?}");
    assert!(!err.to_string().contains("--format"));
    // A detected format that fits says nothing.
    assert!(PromptSet::load(&fixture("wise_sample.json")).is_ok());
    assert_eq!(
        Format::detect_with_reason(Path::new("x.json"), b"[{\"prompt_id\": 1").1,
        "it is a JSON array whose entries have WISE's \"prompt_id\""
    );
}

#[test]
fn empty_and_unreadable_files_are_errors() {
    let err =
        PromptSet::parse("# only a comment\n\n", Path::new("e.txt"), Format::Manifest).unwrap_err();
    assert_eq!(err.to_string(), "e.txt: no prompts in it");
    let err = PromptSet::parse("[]", Path::new("w.json"), Format::Wise).unwrap_err();
    assert!(matches!(err, PromptSetError::Empty { .. }));
    let err = PromptSet::load(&fixture("does-not-exist.json")).unwrap_err();
    assert!(matches!(err, PromptSetError::Io { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("does-not-exist.json: cannot read it")
    );
}

#[test]
fn no_input_makes_a_loader_panic() {
    // A deterministic stream of JSON-ish fragments, glued at random.
    let pieces = [
        "[",
        "]",
        "{",
        "}",
        ",",
        ":",
        "\"",
        "\"prompt_id\"",
        "\"Prompt\"",
        "\"prompt_en\"",
        "\"checklist\"",
        "\"prompt\"",
        "\"id\"",
        "1",
        "-3",
        "1e400",
        "0.5",
        "null",
        "true",
        "\"x\"",
        "\n",
        "#",
        " ",
        "\u{feff}",
        "é",
        "\\",
        "\"1. a\\n2) b\"",
    ];
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    for _ in 0..3000 {
        let mut text = String::new();
        for _ in 0..(state % 24) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            text.push_str(pieces[(state % pieces.len() as u64) as usize]);
        }
        for format in [Format::Wise, Format::WorldGenBench, Format::Manifest] {
            for name in ["a.json", "humanities_en.json", "m.jsonl", "t.txt"] {
                let _ = PromptSet::parse(&text, Path::new(name), format);
            }
        }
        let _ = Format::detect(Path::new("x.json"), text.as_bytes());
    }
}

#[test]
fn builtin_sample_is_complete() {
    let set = PromptSet::builtin_sample();
    assert_eq!(set.name, "builtin-sample");
    assert!(
        (28..=32).contains(&set.prompts.len()),
        "{}",
        set.prompts.len()
    );
    assert_eq!(set.categories(), ["known_rare", "unknown", "ambiguous"]);
    for category in ["known_rare", "unknown", "ambiguous"] {
        let n = set
            .prompts
            .iter()
            .filter(|p| p.category.as_deref() == Some(category))
            .count();
        assert!(n >= 8, "{category}: {n}");
    }
    let unique: HashSet<&str> = set.prompts.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(unique.len(), set.prompts.len());
    for p in &set.prompts {
        assert!((3..=5).contains(&p.checklist.len()), "{}", p.id);
        assert!(p.checklist.iter().all(|c| !c.trim().is_empty()), "{}", p.id);
        assert!(
            p.subcategory.is_some() && p.explanation.is_some(),
            "{}",
            p.id
        );
        check_id(&p.id).unwrap();
        if p.category.as_deref() == Some("unknown") {
            let e = p.explanation.as_deref().unwrap();
            assert!(
                e.starts_with("Fictional") && e.contains("training cutoff"),
                "{}",
                p.id
            );
        }
    }
    // It parses the same way the loader's own check does.
    assert_eq!(parse_sample(SAMPLE_JSON).unwrap(), set);
}

#[test]
fn sample_check_refuses_duplicate_ids() {
    let text =
        r#"{"name": "s", "prompts": [{"id": "a", "prompt": "x"}, {"id": "a", "prompt": "y"}]}"#;
    let msg = parse_sample(text).unwrap_err().to_string();
    assert!(
        msg.contains("entry 1") && msg.contains("also entry 0"),
        "{msg}"
    );
}
