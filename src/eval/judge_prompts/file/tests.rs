use std::path::{Path, PathBuf};

use super::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/eval/judge_prompts")
        .join(name)
}

#[test]
fn a_file_in_wise_scripts_shape_is_filled_in_and_hashed() {
    let path = fixture("three_axis_lines.txt");
    let file = JudgePromptFile::load(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let hex: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(file.sha256(), hex);
    assert_eq!(file.id(), format!("wiscore.file-{}", &hex[..12]));
    assert_eq!(file.path(), path);
    let text = file.render("A {{explanation}} lantern", "Red paper lanterns");
    assert!(
        text.contains("PROMPT: \"A {{explanation}} lantern\"\nEXPLANATION: \"Red paper lanterns\""),
        "{text}"
    );
    assert!(
        text.contains("Consistency: 2\nRealism: 1"),
        "the rest is as written"
    );
    // Debug shows where the text came from, not the text.
    let debug = format!("{file:?}");
    assert!(
        debug.contains("sha256") && !debug.contains("Aesthetic"),
        "{debug}"
    );

    let binary = JudgePromptFile::load(&fixture("binary_score.txt")).unwrap();
    assert!(
        binary
            .render("p", "e")
            .contains("PROMPT: \"p\"\nEXPLANATION: \"e\"")
    );
    assert_ne!(binary.id(), file.id());
}

#[test]
fn a_file_the_judge_cannot_fill_is_refused() {
    let p = Path::new("judge.txt");
    let cases: [(&[u8], &str); 5] = [
        (b"", "empty"),
        (b"Score the image.", "no {{prompt}}"),
        (
            b"{{prompt}} {{checklist}}",
            "{{checklist}} is not filled in",
        ),
        (b"\xff\xfe{{prompt}}", "not UTF-8"),
        (b"  \n\t", "empty"),
    ];
    for (bytes, expected) in cases {
        let err = JudgePromptFile::from_bytes(p, bytes).unwrap_err();
        assert!(err.contains(expected), "{bytes:?}: {err}");
    }
    let missing = JudgePromptFile::load(Path::new("/nonexistent/judge.txt")).unwrap_err();
    assert!(
        missing
            .to_string()
            .starts_with("judge prompt file /nonexistent/judge.txt: cannot read it"),
        "{missing}"
    );
    // Only the prompt is required.
    assert!(JudgePromptFile::from_bytes(p, b"Judge {{prompt}}.").is_ok());
}

#[test]
fn replies_in_each_of_wise_evaluators_shapes_parse() {
    let three = |c, r, a| {
        WiScoreJudgment::ThreeAxis(WiScoreReply {
            consistency: c,
            realism: r,
            aesthetic_quality: a,
            reason: String::new(),
        })
    };
    let cases = [
        (
            "Consistency: 2\nRealism: 1\nAesthetic Quality: 0",
            three(2, 1, 0),
        ),
        (
            "**Consistency**: 1\n**Realism**: 2\n**Aesthetic Quality**: 1",
            three(1, 2, 1),
        ),
        // The last of each counts, as WISE's regular expression overwrites.
        (
            "Consistency: 0 at first\nConsistency：2\nrealism 1\naesthetic quality: 1",
            three(2, 1, 1),
        ),
        ("Score: 1", WiScoreJudgment::Binary { score: 1 }),
        (
            "**Score**: 0\nThe dragonfly is missing.",
            WiScoreJudgment::Binary { score: 0 },
        ),
        (
            "<think>Score: 0 maybe</think>\nScore: 1",
            WiScoreJudgment::Binary { score: 1 },
        ),
        (
            "The image is right.\n1\n",
            WiScoreJudgment::Binary { score: 1 },
        ),
        (r#"{"score": 0}"#, WiScoreJudgment::Binary { score: 0 }),
    ];
    for (reply, expected) in cases {
        assert_eq!(parse_wiscore_judgment(reply).unwrap(), expected, "{reply}");
    }
    let json = r#"{"consistency": 2, "realism": 2, "aesthetic_quality": 2, "reason": "ok"}"#;
    assert_eq!(parse_wiscore_judgment(json).unwrap().score(), 1.0);
    assert!((three(2, 1, 0).score() - 0.8).abs() < 1e-12);
    assert_eq!(WiScoreJudgment::Binary { score: 1 }.score(), 1.0);
}

#[test]
fn replies_in_no_known_shape_are_errors_never_zeros() {
    for reply in [
        "",
        "A lovely image.",
        "Consistency: 2\nRealism: 1",
        "Consistency: 3\nRealism: 1\nAesthetic Quality: 0",
        "Score: 2",
        "Scores: 1",
        "0\n1",
        r#"{"score": 5}"#,
        r#"{"consistency": 2, "realism": 1}"#,
        "<think>unclosed",
        "</think>",
    ] {
        assert!(parse_wiscore_judgment(reply).is_err(), "{reply:?}");
    }
}

#[test]
fn stored_judgments_of_either_judge_read_back() {
    // A wiscore.v1 judgment, as stored before prompt files existed.
    let v1 =
        serde_json::json!({"consistency": 1, "realism": 1, "aesthetic_quality": 0, "reason": "r"});
    let read: WiScoreJudgment = serde_json::from_value(v1).unwrap();
    assert!((read.score() - 0.45).abs() < 1e-12);
    let binary = serde_json::to_value(WiScoreJudgment::Binary { score: 1 }).unwrap();
    assert_eq!(binary, serde_json::json!({"score": 1}));
    let back: WiScoreJudgment = serde_json::from_value(binary).unwrap();
    assert_eq!(back, WiScoreJudgment::Binary { score: 1 });
}

#[test]
fn no_reply_makes_the_parser_panic() {
    let pieces = [
        "Consistency",
        "Realism",
        "Aesthetic Quality",
        "Score",
        "score",
        ":",
        "：",
        "*",
        "**",
        " ",
        "\n",
        "0",
        "1",
        "2",
        "9",
        "<think>",
        "</think>",
        "{",
        "}",
        "\"score\"",
        "é",
        "字",
        "consistency\"",
        "\u{0}",
    ];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..5000 {
        let mut text = String::new();
        for _ in 0..(state % 20) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            text.push_str(pieces[(state % pieces.len() as u64) as usize]);
        }
        if let Ok(j) = parse_wiscore_judgment(&text) {
            assert!((0.0..=1.0).contains(&j.score()), "{text:?}");
        }
    }
}
