use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::*;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/eval")
        .join(rel)
}

fn ids(set: &PromptSet) -> Vec<&str> {
    set.prompts.iter().map(|p| p.id.as_str()).collect()
}

#[test]
fn wise_fixture_loads_one_prompt_per_category() {
    let path = fixture("wise_sample.json");
    let head = std::fs::read(&path).unwrap();
    assert_eq!(Format::detect(&path, &head), Format::Wise);
    let set = PromptSet::load(&path).unwrap();
    assert_eq!(set.name, "wise_sample");
    assert_eq!(
        ids(&set),
        [
            "wise-12", "wise-430", "wise-610", "wise-705", "wise-820", "wise-950"
        ]
    );
    assert_eq!(
        set.categories(),
        [
            "cultural",
            "time",
            "space",
            "biology",
            "physics",
            "chemistry"
        ]
    );
    let straw = set.get("wise-820").unwrap();
    assert_eq!(straw.subcategory.as_deref(), Some("Optics"));
    assert!(straw.explanation.as_deref().unwrap().contains("refraction"));
    assert!(straw.checklist.is_empty());
    let (again, edition) = PromptSet::load_wise(&path, None).unwrap();
    assert_eq!((again, edition), (set, WiseEdition::Original));
}

#[test]
fn malformed_wise_names_the_file_and_entry() {
    let path = fixture("wise_malformed.json");
    let err = PromptSet::load(&path).unwrap_err();
    assert!(
        matches!(err, PromptSetError::Entry { index: 2, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("wise_malformed.json"), "{msg}");
    assert!(msg.contains("entry 2 (0-based"), "{msg}");
    assert!(msg.contains("prompt_id"), "{msg}");
}

fn wise(text: &str, name: &str) -> Result<(PromptSet, WiseEdition), PromptSetError> {
    let (prompts, edition) = wise::parse(text, Path::new(name), None)?;
    Ok((
        PromptSet {
            name: name.into(),
            prompts,
        },
        edition,
    ))
}

#[test]
fn wise_records_without_explanation_or_subcategory_are_refused() {
    // Files in the real shape (WISE's five fields), one record short of a field each.
    let err = PromptSet::load(&fixture("wise_no_explanation.json")).unwrap_err();
    assert!(
        matches!(&err, PromptSetError::Entry { index: 1, record: Some(r), .. } if r == "prompt_id 820"),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("wise_no_explanation.json: entry 1 (0-based index in the JSON array, prompt_id 820): no \"Explanation\""),
        "{msg}"
    );
    let err = PromptSet::load(&fixture("wise_null_subcategory.json")).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("wise_null_subcategory.json: entry 2 (0-based index in the JSON array, prompt_id 950): \"Subcategory\" is null"),
        "{msg}"
    );
    // The same through load_wise, which the edition-aware callers use.
    assert!(PromptSet::load_wise(&fixture("wise_null_subcategory.json"), None).is_err());
}

#[test]
fn wise_edition_follows_the_category_fields_then_the_file_name() {
    // Id 530 is time in the original ranges and space in WISE_Verified's.
    let labelled_space = r#"[{"prompt_id": 530, "Prompt": "p", "Explanation": "e", "Category": "Space", "Subcategory": "s"}]"#;
    let (set, edition) = wise(labelled_space, "spatio.json").unwrap();
    assert_eq!(edition, WiseEdition::Verified);
    assert_eq!(set.prompts[0].category.as_deref(), Some("space"));

    let labelled_time = r#"[{"prompt_id": 530, "Prompt": "p", "Explanation": "e", "Category": "time", "Subcategory": "s"}]"#;
    let (set, edition) = wise(labelled_time, "x_verified.json").unwrap();
    assert_eq!(edition, WiseEdition::Original);
    assert_eq!(set.prompts[0].category.as_deref(), Some("time"));

    let unlabelled = r#"[{"prompt_id": 530, "Prompt": "p", "Explanation": "e", "Subcategory": "s"}]"#;
    assert_eq!(
        wise(unlabelled, "natural_science_verified.json").unwrap().1,
        WiseEdition::Verified
    );
    assert_eq!(
        wise(unlabelled, "natural_science.json").unwrap().1,
        WiseEdition::Original
    );
    // WISE_Verified's merged file and its folder.
    assert_eq!(
        wise(unlabelled, "merge.json").unwrap().1,
        WiseEdition::Verified
    );
    assert_eq!(
        wise(unlabelled, "WISE/data_verified/natural_science.json")
            .unwrap()
            .1,
        WiseEdition::Verified
    );
    assert_eq!(
        wise(unlabelled, "WISE/WISE_legacy/data/merge_x.json")
            .unwrap()
            .1,
        WiseEdition::Original
    );

    // A forced edition wins over the labels.
    let (prompts, _) = wise::parse(
        labelled_space,
        Path::new("a.json"),
        Some(WiseEdition::Original),
    )
    .unwrap();
    assert_eq!(prompts[0].category.as_deref(), Some("time"));
}

#[test]
fn wise_refuses_bad_entries_with_their_index() {
    let cases = [
        (r#"{"prompt_id": 1}"#, None, "expected one JSON array"),
        (
            r#"[{"prompt_id": 1, "Prompt": "a", "Explanation": "e", "Subcategory": "s"}, 7]"#,
            Some(1),
            "expected a JSON object",
        ),
        (r#"[{"Prompt": "a"}]"#, Some(0), "no \"prompt_id\""),
        (r#"[{"prompt_id": 0, "Prompt": "a"}]"#, Some(0), "1 to 1000"),
        (
            r#"[{"prompt_id": 1001, "Prompt": "a"}]"#,
            Some(0),
            "1 to 1000",
        ),
        (
            r#"[{"prompt_id": 1.5, "Prompt": "a"}]"#,
            Some(0),
            "1 to 1000",
        ),
        (
            r#"[{"prompt_id": 3, "Prompt": "  "}]"#,
            Some(0),
            "prompt_id 3): \"Prompt\" is blank",
        ),
        (
            r#"[{"prompt_id": 3, "Explanation": "e"}]"#,
            Some(0),
            "no \"Prompt\"",
        ),
        (
            r#"[{"prompt_id": 3, "Prompt": ["a"]}]"#,
            Some(0),
            "must be a string",
        ),
        (
            r#"[{"prompt_id": 3, "Prompt": "a", "Explanation": 4}]"#,
            Some(0),
            "\"Explanation\" must be a string",
        ),
        (
            r#"[{"prompt_id": 3, "Prompt": "a", "Explanation": "e", "Subcategory": "s"},
                {"prompt_id": 3, "Prompt": "b", "Explanation": "e", "Subcategory": "s"}]"#,
            Some(1),
            "also entry 0",
        ),
        (
            r#"[{"prompt_id": 3, "Prompt": "a", "Subcategory": "s"}]"#,
            Some(0),
            "prompt_id 3): no \"Explanation\"",
        ),
        (
            r#"[{"prompt_id": 3, "Prompt": "a", "Explanation": " ", "Subcategory": "s"}]"#,
            Some(0),
            "\"Explanation\" is blank",
        ),
        (
            r#"[{"prompt_id": 3, "Prompt": "a", "Explanation": "e"}]"#,
            Some(0),
            "prompt_id 3): no \"Subcategory\"",
        ),
        (
            r#"[{"prompt_id": 3, "Prompt": "a", "Explanation": "e", "Subcategory": null}]"#,
            Some(0),
            "prompt_id 3): \"Subcategory\" is null",
        ),
        ("[{\"prompt_id\": 3,\n \"Prompt\": }]", None, "line 2"),
    ];
    for (text, index, expected) in cases {
        let err = wise(text, "w.json").unwrap_err();
        if let Some(i) = index {
            assert!(
                matches!(err, PromptSetError::Entry { index, .. } if index == i),
                "{text}: {err:?}"
            );
        }
        let msg = err.to_string();
        assert!(
            msg.contains(expected) && msg.starts_with("w.json"),
            "{text}: {msg}"
        );
    }
}

#[test]
fn worldgenbench_fixtures_load_with_domain_and_class() {
    let path = fixture("worldgenbench/humanities_en.json");
    let head = std::fs::read(&path).unwrap();
    assert_eq!(Format::detect(&path, &head), Format::WorldGenBench);
    let set = PromptSet::load(&path).unwrap();
    assert_eq!(
        ids(&set),
        ["wgb-humanities-0", "wgb-humanities-1", "wgb-humanities-2"]
    );
    assert_eq!(set.categories(), ["humanities"]);
    let leipzig = &set.prompts[0];
    assert!(leipzig.prompt.starts_with("On an October evening in 1989"));
    assert_eq!(leipzig.subcategory.as_deref(), Some("Germany"));
    assert_eq!(leipzig.checklist.len(), 5);
    assert_eq!(leipzig.checklist[1], "Marchers carrying lit candles");

    let nature = PromptSet::load(&fixture("worldgenbench/nature_en.json")).unwrap();
    assert_eq!(nature.categories(), ["nature"]);
    assert_eq!(nature.prompts[1].subcategory.as_deref(), Some("Chemistry"));
    assert_eq!(nature.prompts[1].checklist.len(), 3);
}

#[test]
fn malformed_worldgenbench_names_the_file_and_entry() {
    let err = PromptSet::load(&fixture("worldgenbench/malformed.json")).unwrap_err();
    assert!(
        matches!(err, PromptSetError::Entry { index: 1, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("malformed.json: entry 1 (0-based"), "{msg}");
    assert!(msg.contains("\"checklist\" is empty"), "{msg}");
}

fn wgb(text: &str, name: &str) -> Result<Vec<EvalPrompt>, PromptSetError> {
    worldgenbench::parse(text, Path::new(name))
}

#[test]
fn worldgenbench_tolerates_likely_variants() {
    let jsonl = concat!(
        r#"{"prompt": "A comet", "knowledge_checklist": [{"text": "A tail pointing away from the Sun"}, {"item": "Stars"}], "area": "nature", "id": 7}"#,
        "\n\n",
        r#"{"Prompt": "A fjord", "check_list": ["Steep cliffs", " Deep water ", "A ferry"], "domain": "Humanities", "country": "Norway", "id": "fjord-1"}"#,
        "\n",
    );
    let prompts = wgb(jsonl, "anything.jsonl").unwrap();
    assert_eq!(prompts[0].id, "wgb-nature-7");
    assert_eq!(
        prompts[0].checklist,
        ["A tail pointing away from the Sun", "Stars"]
    );
    assert_eq!(prompts[1].id, "fjord-1");
    assert_eq!(
        prompts[1].checklist,
        ["Steep cliffs", "Deep water", "A ferry"]
    );
    assert_eq!(prompts[1].category.as_deref(), Some("humanities"));
    assert_eq!(prompts[1].subcategory.as_deref(), Some("Norway"));

    // No domain field and no telling file name: the id falls back to the file's stem.
    let array = r#"[{"prompt_en": "A comet", "checklist": ["A tail"]}]"#;
    let prompts = wgb(array, "My Set.json").unwrap();
    assert_eq!(prompts[0].id, "wgb-my-set-0");
    assert_eq!(prompts[0].category, None);
}

#[test]
fn worldgenbench_checklists_given_as_one_string_or_with_blank_items_are_refused() {
    let err = PromptSet::load(&fixture("worldgenbench/checklist_as_string.json")).unwrap_err();
    assert!(
        matches!(err, PromptSetError::Entry { index: 1, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("checklist_as_string.json: entry 1 (0-based")
            && msg.contains("\"checklist\" is one string")
            && msg.contains("not a list of items"),
        "{msg}"
    );
    let msg = PromptSet::load(&fixture("worldgenbench/checklist_blank_item.json"))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("checklist_blank_item.json: entry 1 (0-based")
            && msg.contains("\"checklist\" item 2 (0-based) is blank"),
        "{msg}"
    );
    // "a; b; c" is neither three items nor one, in JSONL too; an entry's own id is named.
    let jsonl = r#"{"prompt_en": "p", "checklist": "a; b; c", "id": "x-1"}"#;
    let msg = wgb(jsonl, "h.jsonl").unwrap_err().to_string();
    assert!(
        msg.contains("line 1") && msg.contains("is one string"),
        "{msg}"
    );
    let array = r#"[{"prompt_en": "p", "checklist": [{"text": " "}], "id": 4}]"#;
    let msg = wgb(array, "h.json").unwrap_err().to_string();
    assert!(
        msg.contains("entry 0 (0-based index in the JSON array, id 4)")
            && msg.contains("item 0 (0-based) is blank"),
        "{msg}"
    );
}

#[test]
fn worldgenbench_domain_comes_from_the_record_before_the_file_name() {
    // Both domains in one file with no telling name: each record's class decides.
    let set = PromptSet::load(&fixture("worldgenbench/worldgenbench_merged.json")).unwrap();
    let domains: Vec<_> = set
        .prompts
        .iter()
        .map(|p| (p.subcategory.as_deref(), p.category.as_deref()))
        .collect();
    assert_eq!(
        domains,
        [
            (Some("Germany"), Some("humanities")),
            (Some("Astronomy"), Some("nature")),
            (Some("Tuvalu"), Some("humanities")),
            (Some("Chemistry"), Some("nature")),
        ]
    );
    assert_eq!(set.categories(), ["humanities", "nature"]);
    assert_eq!(
        ids(&set),
        [
            "wgb-humanities-0",
            "wgb-nature-1",
            "wgb-humanities-2",
            "wgb-nature-3"
        ]
    );
    // A record's domain field wins over the file's name, and over its class.
    let text = r#"[{"prompt_en": "p", "checklist": ["a"], "class": "Earth Sciences"},
                   {"prompt_en": "q", "checklist": ["b"], "class": "Peru", "domain": "NATURE"},
                   {"prompt_en": "r", "checklist": ["c"], "discipline": "Biology & Medicine"}]"#;
    let prompts = wgb(text, "humanities_en.json").unwrap();
    let cats: Vec<_> = prompts.iter().map(|p| p.category.as_deref()).collect();
    assert_eq!(cats, [Some("nature"), Some("nature"), Some("nature")]);
    // A class that says nothing leaves the file name to decide.
    let text = r#"[{"prompt_en": "p", "checklist": ["a"], "class": "Peru"}]"#;
    assert_eq!(
        wgb(text, "nature_en.json").unwrap()[0].category.as_deref(),
        Some("nature")
    );
}

#[test]
fn worldgenbench_refuses_bad_entries_with_their_location() {
    let cases = [
        (r#"[{"checklist": ["a"]}]"#, "entry 0", "no prompt"),
        (r#"[{"prompt_en": "p"}]"#, "entry 0", "no checklist"),
        (
            r#"[{"prompt_en": "p", "checklist": [1]}]"#,
            "entry 0",
            "item 0",
        ),
        (
            r#"[{"prompt_en": "p", "checklist": 5}]"#,
            "entry 0",
            "must be a list",
        ),
        (
            r#"[{"prompt_en": 5, "checklist": ["a"]}]"#,
            "entry 0",
            "non-empty string",
        ),
        (
            r#"[{"prompt_en": "p", "checklist": ["a"], "id": "../x"}]"#,
            "entry 0",
            "id",
        ),
        (
            r#"[{"prompt_en": "p", "checklist": ["a"], "id": -1}]"#,
            "entry 0",
            "non-negative",
        ),
        (
            r#"[{"prompt_en": "p", "checklist": ["a"], "id": 1}, {"prompt_en": "q", "checklist": ["b"], "id": 1}]"#,
            "entry 1",
            "also entry 0",
        ),
        (
            "{\"prompt_en\": \"p\", \"checklist\": [\"a\"]}\nnot json",
            "line 2",
            "not a JSON object",
        ),
        (
            "{\"prompt_en\": \"p\", \"checklist\": [\"a\"], \"id\": \"x\"}\n{\"prompt_en\": \"q\", \"checklist\": [\"b\"], \"id\": \"x\"}",
            "line 2",
            "also line 1",
        ),
        ("[{\"prompt_en\": \"p\",", "", "EOF"),
    ];
    for (text, location, expected) in cases {
        let msg = wgb(text, "h.json").unwrap_err().to_string();
        assert!(
            msg.contains(location) && msg.contains(expected),
            "{text}: {msg}"
        );
    }
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
