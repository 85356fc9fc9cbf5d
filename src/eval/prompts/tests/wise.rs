//! The WISE reader.

use std::path::Path;

use super::super::*;
use super::{fixture, ids};

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
    assert_eq!(set.wise_edition, Some(WiseEdition::Original));
    let (again, edition) = PromptSet::load_wise(&path, None).unwrap();
    assert_eq!((again, edition), (set, WiseEdition::Original));
}

#[test]
fn a_wise_verified_file_loads_as_wise_verified() {
    let set = PromptSet::load(&fixture("wise_verified/natural_science_verified.json")).unwrap();
    assert_eq!(set.wise_edition, Some(WiseEdition::Verified));
    assert_eq!(set.categories(), ["biology", "physics", "chemistry"]);
    // Read with the original ranges, id 641 would be space.
    let (original, _) = PromptSet::load_wise(
        &fixture("wise_verified/natural_science_verified.json"),
        Some(WiseEdition::Original),
    )
    .unwrap();
    assert_eq!(original.wise_edition, Some(WiseEdition::Original));
    assert_eq!(original.prompts[0].category.as_deref(), Some("space"));
    // Other formats have no edition.
    assert_eq!(PromptSet::builtin_sample().wise_edition, None);
}

#[test]
fn malformed_wise_names_the_file_and_entry() {
    let path = fixture("wise_malformed.json");
    let err = PromptSet::load(&path).unwrap_err();
    assert!(
        matches!(err.inner(), PromptSetError::Entry { index: 2, .. }),
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
            wise_edition: Some(edition),
        },
        edition,
    ))
}

#[test]
fn wise_records_without_explanation_or_subcategory_are_refused() {
    // Files in the real shape (WISE's five fields), one record short of a field each.
    let err = PromptSet::load(&fixture("wise_no_explanation.json")).unwrap_err();
    assert!(
        matches!(err.inner(), PromptSetError::Entry { index: 1, record: Some(r), .. } if r == "prompt_id 820"),
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

    let unlabelled =
        r#"[{"prompt_id": 530, "Prompt": "p", "Explanation": "e", "Subcategory": "s"}]"#;
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
