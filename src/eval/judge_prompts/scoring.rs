//! Scores from judgments: the Knowledge Checklist Score, WiScore and its weighted overall,
//! and the position-debiased pairwise outcome.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::eval::wise::WiseEdition;

/// The Knowledge Checklist Score (WorldGenBench): the fraction of the checklist's items
/// that the judge found satisfied. An item the judge left out (`None`) counts as not
/// satisfied: a reply that confirms 1 of 5 items and omits the rest scores 0.2, never
/// 1.0, so a judge cannot raise a score by answering only what it likes. `None` when no
/// item was judged at all (there is no judgment to score).
pub fn checklist_score(satisfied: &[Option<bool>]) -> Option<f64> {
    let judged = satisfied.iter().flatten().count();
    let yes = satisfied.iter().flatten().filter(|&&s| s).count();
    (judged > 0).then(|| yes as f64 / satisfied.len() as f64)
}

/// WISE's per-image WiScore, `(0.7·consistency + 0.2·realism + 0.1·aesthetic) / 2`, in
/// `0..=1` (`calculate_wiscore` in `WISE_legacy/Calculate.py`). Each input is a 0–2 score
/// ([`super::parse_wiscore_reply`] refuses others); a larger value counts as 2.
///
/// Computed as `(7·c + 2·r + a) / 20` in integers, so the possible scores are exact
/// (`(2, 2, 2)` is exactly 1.0, where the decimal weights in floating point give
/// 0.9999999999999999).
pub fn wiscore(consistency: u8, realism: u8, aesthetic: u8) -> f64 {
    let [c, r, a] = [consistency, realism, aesthetic].map(|s| u32::from(s.min(2)));
    f64::from(7 * c + 2 * r + a) / 20.0
}

/// The overall WiScore of per-category mean WiScores keyed by category name (`cultural`,
/// `time`, `space`, `biology`, `physics`, `chemistry`; WISE's spellings such as `CULTURE`
/// also work), with the original paper's weights 0.4, 0.167, 0.133, 0.1, 0.1, 0.1, the
/// ones that go with this crate's three-axis `wiscore.v1` judge.
///
/// `None` unless all six categories have a finite score: WISE's overall is defined over
/// all six, and its scripts compute none for part of the benchmark. Unknown names are
/// ignored. For the WISE_Verified weights use [`WiseEdition::overall`] with
/// [`WiseEdition::Verified`].
pub fn overall_wiscore(per_category: &HashMap<String, f64>) -> Option<f64> {
    WiseEdition::Original.overall(per_category)
}

/// One pairwise judgment, by position: the image shown first (A), second (B), or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Winner {
    /// The image shown first.
    A,
    /// The image shown second.
    B,
    /// Neither is clearly better.
    Tie,
}

/// The result of a pair of arms compared twice, once in each order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairOutcome {
    /// The first arm (shown as A in the first judgment) won both times.
    First,
    /// The second arm won both times.
    Second,
    /// The judgments did not agree, or both were ties.
    Tie,
}

/// Combine two pairwise judgments of the same pair of arms: `first` with the first arm's
/// image shown as A, `swapped` with the images in the other order (the first arm's image
/// shown as B). An arm wins only when both judgments pick it; any disagreement — one
/// judgment a tie, or the judge picking the same position twice, which is position bias —
/// is a tie.
pub fn resolve_pair(first: Winner, swapped: Winner) -> PairOutcome {
    match (first, swapped) {
        (Winner::A, Winner::B) => PairOutcome::First,
        (Winner::B, Winner::A) => PairOutcome::Second,
        _ => PairOutcome::Tie,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checklist_score_counts_omitted_items_as_unsatisfied() {
        let s = [Some(true), Some(true), Some(false), Some(true)];
        assert_eq!(checklist_score(&s), Some(0.75));
        let with_missing = [Some(true), None, Some(false), Some(true), Some(true)];
        assert_eq!(checklist_score(&with_missing), Some(0.6));
        let one_of_five = [Some(true), None, None, None, None];
        assert_eq!(checklist_score(&one_of_five), Some(0.2));
        assert_eq!(checklist_score(&[Some(false), None]), Some(0.0));
        assert_eq!(checklist_score(&[None, None]), None);
        assert_eq!(checklist_score(&[]), None);
    }

    #[test]
    fn wiscore_matches_wise_formula() {
        assert_eq!(wiscore(2, 2, 2), 1.0);
        assert_eq!(wiscore(0, 0, 0), 0.0);
        assert_eq!(wiscore(1, 0, 2), 0.45);
        assert!((wiscore(2, 1, 0) - 0.8).abs() < 1e-12);
        assert_eq!(wiscore(9, 9, 9), 1.0);
    }

    #[test]
    fn overall_wiscore_uses_the_paper_weights() {
        let scores = [
            ("cultural", 1.0),
            ("time", 0.0),
            ("space", 0.0),
            ("biology", 0.0),
            ("physics", 0.0),
            ("chemistry", 0.5),
        ];
        let map: HashMap<String, f64> = scores.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let overall = overall_wiscore(&map).unwrap();
        assert!((overall - (0.4 + 0.05)).abs() < 1e-12, "{overall}");
        assert_eq!(overall_wiscore(&HashMap::new()), None);
        let mut five = map.clone();
        five.remove("space");
        assert_eq!(
            overall_wiscore(&five),
            None,
            "five categories are not WISE's overall"
        );
    }

    #[test]
    fn swap_rule_removes_position_bias() {
        assert_eq!(resolve_pair(Winner::A, Winner::B), PairOutcome::First);
        assert_eq!(resolve_pair(Winner::B, Winner::A), PairOutcome::Second);
        // The same position twice is position bias, not a preference.
        assert_eq!(resolve_pair(Winner::A, Winner::A), PairOutcome::Tie);
        assert_eq!(resolve_pair(Winner::B, Winner::B), PairOutcome::Tie);
        assert_eq!(resolve_pair(Winner::Tie, Winner::B), PairOutcome::Tie);
        assert_eq!(resolve_pair(Winner::A, Winner::Tie), PairOutcome::Tie);
        assert_eq!(resolve_pair(Winner::Tie, Winner::Tie), PairOutcome::Tie);
    }

    #[test]
    fn outcomes_serialize_snake_case() {
        assert_eq!(
            serde_json::to_string(&PairOutcome::First).unwrap(),
            "\"first\""
        );
        assert_eq!(serde_json::to_string(&Winner::Tie).unwrap(), "\"tie\"");
        assert_eq!(serde_json::to_string(&Winner::A).unwrap(), "\"a\"");
    }
}
