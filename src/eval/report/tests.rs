//! The report built from known judgments: WISE's overall (edition weights, partial runs),
//! subcategories, what the WiScores are, and the page drawn from it.

use std::collections::BTreeMap;

use super::*;
use crate::eval::prompts::{EvalPrompt, PromptSet};

fn prompt(id: &str, category: &str, subcategory: &str) -> EvalPrompt {
    EvalPrompt {
        id: id.into(),
        prompt: format!("prompt {id}"),
        category: Some(category.into()),
        subcategory: Some(subcategory.into()),
        checklist: Vec::new(),
        explanation: Some("what a correct image shows".into()),
    }
}

/// One arm's WiScores on `prompts`, by prompt id.
fn cells(arm: &str, scores: &[(&str, f64)]) -> BTreeMap<(String, String), Cell> {
    scores
        .iter()
        .map(|(id, s)| {
            let cell = Cell {
                wiscore: Some(*s),
                ..Cell::default()
            };
            ((arm.to_string(), id.to_string()), cell)
        })
        .collect()
}

fn report(set: &PromptSet, arms: &[&str], cells: &BTreeMap<(String, String), Cell>) -> EvalReport {
    let arms: Vec<String> = arms.iter().map(|a| a.to_string()).collect();
    let config = ReportSettings {
        metrics: &[Metric::WiScore],
        resamples: 500,
        seed: 7,
        wiscore_prompt: None,
    };
    let inputs = Inputs {
        prompts: set,
        arms: &arms,
        judge_model: "gpt-4o-mini",
        config,
        produced: &BTreeMap::new(),
        checklists: &BTreeMap::new(),
        cells,
        pairs: &[],
    };
    build_report(&inputs, BTreeMap::new(), None)
}

/// All six WISE_Verified categories (ids from its ranges), two cultural prompts.
fn verified_set() -> PromptSet {
    PromptSet {
        name: "merge".into(),
        prompts: vec![
            prompt("wise-12", "cultural", "Festival"),
            prompt("wise-13", "cultural", "Festival"),
            prompt("wise-430", "time", "Longitudinal time"),
            prompt("wise-530", "space", "Viewpoint and Scale"),
            prompt("wise-641", "biology", "State"),
            prompt("wise-761", "physics", "Thermodynamics"),
            prompt("wise-881", "chemistry", "Combustion"),
        ],
        wise_edition: Some(WiseEdition::Verified),
    }
}

#[test]
fn a_wise_verified_run_is_weighed_with_wise_verified_weights() {
    let set = verified_set();
    // Category means 0.6, 0.65, 0.6, 0.5, 0.5, 0.5: 0.57 with WISE_Verified's weights
    // (calculate_verified.py), 0.57835 with the original's.
    let scores = [
        ("wise-12", 0.5),
        ("wise-13", 0.7),
        ("wise-430", 0.65),
        ("wise-530", 0.6),
        ("wise-641", 0.5),
        ("wise-761", 0.5),
        ("wise-881", 0.5),
    ];
    let r = report(&set, &["augmented"], &cells("augmented", &scores));
    let overall = r.arms[0].wiscore_overall.unwrap();
    assert!((overall - 0.57).abs() < 1e-9, "{overall}");
    assert_eq!(r.arms[0].wiscore_overall_note, None);
    let wise = r.wise.as_ref().unwrap();
    assert_eq!(wise.edition, WiseEdition::Verified);
    assert_eq!(wise.weights["time"], 0.12);
    assert!(wise.overall_defined && wise.categories_missing.is_empty());
    assert_eq!((wise.prompt_ids, wise.prompt_ids_missing), (7, 993));
    // eval.json records the edition.
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["wise"]["edition"], "verified");
    assert_eq!(
        json["arms"][0]["wiscore_overall"],
        r.arms[0].wiscore_overall.unwrap()
    );
}

#[test]
fn a_partial_wise_run_has_no_overall_and_says_why() {
    let mut set = verified_set();
    set.prompts.truncate(2);
    set.wise_edition = Some(WiseEdition::Original);
    let r = report(
        &set,
        &["baseline"],
        &cells("baseline", &[("wise-12", 0.5), ("wise-13", 1.0)]),
    );
    let arm = &r.arms[0];
    assert_eq!(
        arm.wiscore_overall, None,
        "one category is not WISE's overall"
    );
    assert!((arm.categories["cultural"].wiscore.mean.unwrap() - 0.75).abs() < 1e-12);
    let wise = r.wise.as_ref().unwrap();
    assert!(!wise.overall_defined);
    assert_eq!(wise.prompt_ids_missing, 998);
    assert_eq!(
        wise.categories_missing,
        ["time", "space", "biology", "physics", "chemistry"]
    );
    for text in [&wise.note, arm.wiscore_overall_note.as_ref().unwrap()] {
        assert!(
            text.contains("not defined for a partial run")
                && text.contains("998 of WISE's 1000 prompt ids are missing"),
            "{text}"
        );
    }
    // A complete set whose arm has no WiScore in one category: no overall, and why.
    let set = verified_set();
    let mut scores = cells(
        "a",
        &[("wise-12", 0.5), ("wise-430", 0.5), ("wise-530", 0.5)],
    );
    scores.extend(cells("a", &[("wise-641", 0.5), ("wise-761", 0.5)]));
    let r = report(&set, &["a"], &scores);
    assert_eq!(r.arms[0].wiscore_overall, None);
    assert_eq!(
        r.arms[0].wiscore_overall_note.as_deref(),
        Some("no overall WiScore: no WiScore was judged in chemistry")
    );
    // Not WISE: no WISE block at all.
    let mut other = verified_set();
    other.wise_edition = None;
    let r = report(&other, &["a"], &BTreeMap::new());
    assert!(r.wise.is_none() && r.arms[0].wiscore_overall_note.is_none());
    let html = render_html(&r).unwrap();
    assert!(!html.contains("id=\"wise\"") && !html.contains("not defined"));
}

#[test]
fn the_page_says_when_the_overall_is_not_defined() {
    let mut set = verified_set();
    set.prompts.truncate(2);
    let r = report(&set, &["baseline"], &cells("baseline", &[("wise-12", 0.5)]));
    let html = render_html(&r).unwrap();
    assert!(
        html.contains("Prompts from WISE_Verified (2 of its 1000 prompt ids; 998 missing)"),
        "{html}"
    );
    assert!(html.contains(
        "<b>No overall WiScore:</b> The overall WiScore is not defined for a partial run"
    ));
    assert!(html.contains(">not defined</span>"));
    assert!(html.contains("<th>WiScore overall (WISE_Verified weights)</th>"));
    // Subcategories have their own table.
    assert!(html.contains("<td>Festival</td>"), "{html}");
}

#[test]
fn subcategories_have_their_own_means_and_intervals_per_arm() {
    let set = verified_set();
    let mut all = cells("baseline", &[("wise-12", 0.2), ("wise-13", 0.6)]);
    all.extend(cells("augmented", &[("wise-12", 1.0), ("wise-13", 0.8)]));
    let r = report(&set, &["baseline", "augmented"], &all);
    for (arm, mean) in [(0, 0.4), (1, 0.9)] {
        let subs = &r.arms[arm].subcategories;
        assert_eq!(subs.len(), 6, "{subs:?}");
        let festival = &subs[0];
        assert_eq!(
            (festival.category.as_deref(), festival.subcategory.as_str()),
            (Some("cultural"), "Festival")
        );
        assert_eq!((festival.prompts, festival.wiscore.n), (2, 2));
        assert!((festival.wiscore.mean.unwrap() - mean).abs() < 1e-12);
        let (low, high) = (
            festival.wiscore.ci_low.unwrap(),
            festival.wiscore.ci_high.unwrap(),
        );
        assert!(low < mean && mean < high, "{low} {mean} {high}");
        // A subcategory without judgments is counted as missing, never as zero.
        assert_eq!((subs[1].wiscore.n, subs[1].wiscore.missing), (0, 1));
        assert_eq!(subs[1].wiscore.mean, None);
    }
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(
        json["arms"][1]["subcategories"][0]["subcategory"],
        "Festival"
    );
    assert!(json["arms"][1]["subcategories"][0]["wiscore"]["ci_low"].is_number());
}

#[test]
fn the_wiscore_is_labelled_as_the_harness_own() {
    let r = report(&verified_set(), &["a"], &BTreeMap::new());
    let source = r.wiscore_source.as_ref().unwrap();
    assert_eq!(source.judge_model, "gpt-4o-mini");
    assert_eq!(source.judge_prompt, "wiscore.v1");
    assert!(!source.official);
    assert!(
        source.note.starts_with("not the official WISE number")
            && source.note.contains("gpt-4o-mini")
            && source.note.contains("wiscore.v1")
            && source.note.contains("vllm_eval.py"),
        "{}",
        source.note
    );
    let html = render_html(&r).unwrap();
    assert!(html.contains("(this harness's judge, not the official number)</a></th>"));
    assert!(
        html.contains("not the official WISE number"),
        "the page says so too"
    );
}

/// Two arms on all six WISE_Verified categories, and their pair.
fn two_arm_report() -> EvalReport {
    let set = verified_set();
    let ids: Vec<String> = set.prompts.iter().map(|p| p.id.clone()).collect();
    let score = |i: usize, base: f64| (ids[i].as_str(), base + 0.05 * i as f64);
    let mut all = cells(
        "baseline",
        &(0..7).map(|i| score(i, 0.2)).collect::<Vec<_>>(),
    );
    all.extend(cells(
        "augmented",
        &(0..7).map(|i| score(i, 0.5)).collect::<Vec<_>>(),
    ));
    let mut r = report(&set, &["baseline", "augmented"], &all);
    r.pairs = vec![PairSummary {
        a: "baseline".into(),
        b: "augmented".into(),
        n: 7,
        missing: 0,
        a_wins: 1.0 / 7.0,
        ties: 2.0 / 7.0,
        b_wins: 4.0 / 7.0,
        judge_tokens: 0,
    }];
    r
}

#[test]
fn the_page_draws_category_means_with_intervals_and_the_pairs_as_svg() {
    let r = two_arm_report();
    let html = render_html(&r).unwrap();
    // One WiScore chart (no checklist was judged), a bar per arm and category, each with
    // its interval, in the arm's colour.
    assert_eq!(
        html.matches("<svg class=\"category-chart\"").count(),
        1,
        "{html}"
    );
    assert!(html.contains("data-metric=\"wiscore\""));
    assert!(!html.contains("data-metric=\"checklist\""));
    assert_eq!(html.matches("<rect class=\"bar\"").count(), 12);
    assert_eq!(html.matches("<path class=\"interval\"").count(), 12);
    for (arm, colour) in [("baseline", ARM_COLOURS[0]), ("augmented", ARM_COLOURS[1])] {
        let bar = format!("<rect class=\"bar\" data-arm=\"{arm}\"");
        assert_eq!(html.matches(&bar).count(), 6, "{arm}");
        for at in html.match_indices(&bar).map(|(i, _)| i) {
            let tag = &html[at..at + html[at..].find('>').unwrap()];
            assert!(tag.contains(&format!("fill=\"{colour}\"")), "{tag}");
        }
    }
    // The pair: the first arm's wins, the ties, the second arm's wins, widths in proportion.
    assert_eq!(html.matches("<svg class=\"pair-chart\"").count(), 1);
    assert!(
        html.contains("<rect class=\"win\" data-arm=\"baseline\" x=\"200\" y=\"6\" width=\"60.0\""),
        "{html}"
    );
    assert!(html.contains("<rect class=\"tie\" x=\"260.0\" y=\"6\" width=\"120.0\""));
    assert!(html.contains(
        "<rect class=\"win\" data-arm=\"augmented\" x=\"380.0\" y=\"6\" width=\"240.0\""
    ));
    assert!(html.contains(">57 %</text>"));
    // Nothing is fetched to draw them.
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    if let Ok(path) = std::env::var("IAT2I_WRITE_EVAL_HTML") {
        std::fs::write(path, &html).unwrap();
    }
}

#[test]
fn chart_text_is_escaped_and_missing_means_are_marked() {
    let mut r = two_arm_report();
    // Category names come from prompt files.
    let evil = "<script>alert(1)</script>";
    for arm in &mut r.arms {
        let scores = arm.categories.remove("space").unwrap();
        arm.categories.insert(evil.into(), scores);
    }
    r.arms[1].categories.get_mut("time").unwrap().wiscore.mean = None;
    let html = render_html(&r).unwrap();
    assert!(
        !html.contains(evil),
        "category names are escaped in the charts too"
    );
    assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;</text>"));
    assert_eq!(html.matches("<rect class=\"bar\"").count(), 11);
    assert!(html.contains("augmented, time: not judged"));
}
