//! The WorldGenBench reader.

use std::path::Path;

use super::super::*;
use super::{fixture, ids};

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
        matches!(err.inner(), PromptSetError::Entry { index: 1, .. }),
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
        matches!(err.inner(), PromptSetError::Entry { index: 1, .. }),
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
