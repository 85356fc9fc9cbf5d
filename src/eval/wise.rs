//! WISE's vocabulary: its six categories, which prompt ids belong to each, and the
//! weights of the overall WiScore. A leaf module: the prompt loader and the scoring
//! functions both use it.
//!
//! Checked against the WISE repository (github.com/PKU-YuanGroup/WISE):
//!
//! * The original release (the paper's protocol, kept in `WISE_legacy/`): prompt ids
//!   1–400 cultural, 401–567 time, 568–700 space, 701–800 biology, 801–900 physics,
//!   901–1000 chemistry (`WISE_legacy/Calculate.py`), and
//!   Overall = 0.4·Cultural + 0.167·Time + 0.133·Space + 0.1·(Biology + Physics + Chemistry).
//! * WISE_Verified (the repository's default since 2026-04, `calculate_verified.py`): about
//!   200 prompts rewritten and the ranges moved to 1–400 cultural, 401–520 time, 521–640
//!   space, 641–760 biology, 761–880 physics, 881–1000 chemistry, with
//!   Overall = 0.40·Cultural + 0.12·(each of the other five). It also replaced the
//!   three-axis WiScore with one binary score per image; this crate's `wiscore.v1` judge
//!   follows the original three-axis protocol, whichever edition the prompts come from.
//!
//! The ranges differ between editions (ids 521–567 are time in one and space in the
//! other, and so on), so a prompt's category depends on the edition its file belongs to.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// One of WISE's six categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WiseCategory {
    /// Cultural common sense (festivals, sports, religion, crafts, ...).
    Cultural,
    /// Temporal reasoning.
    Time,
    /// Spatial reasoning.
    Space,
    /// Natural science: biology.
    Biology,
    /// Natural science: physics.
    Physics,
    /// Natural science: chemistry.
    Chemistry,
}

impl WiseCategory {
    /// All six, in WISE's reporting order.
    pub const ALL: [WiseCategory; 6] = [
        WiseCategory::Cultural,
        WiseCategory::Time,
        WiseCategory::Space,
        WiseCategory::Biology,
        WiseCategory::Physics,
        WiseCategory::Chemistry,
    ];

    /// The name used as [`crate::eval::EvalPrompt::category`]: `cultural`, `time`,
    /// `space`, `biology`, `physics` or `chemistry`.
    pub fn as_str(self) -> &'static str {
        match self {
            WiseCategory::Cultural => "cultural",
            WiseCategory::Time => "time",
            WiseCategory::Space => "space",
            WiseCategory::Biology => "biology",
            WiseCategory::Physics => "physics",
            WiseCategory::Chemistry => "chemistry",
        }
    }

    /// A category from its name, case-insensitively. Accepts this crate's names and the
    /// spellings of WISE's files and scripts (`Cultural knowledge`, `CULTURE`,
    /// `Physical Knowledge`, ...).
    pub fn from_name(name: &str) -> Option<WiseCategory> {
        let n = name.trim().to_ascii_lowercase();
        let category = match n.as_str() {
            "cultural" | "culture" | "cultural knowledge" | "cultural common sense" => {
                WiseCategory::Cultural
            }
            "time" | "temporal" => WiseCategory::Time,
            "space" | "spatial" => WiseCategory::Space,
            "biology" => WiseCategory::Biology,
            "physics" | "physical knowledge" | "physical" => WiseCategory::Physics,
            "chemistry" => WiseCategory::Chemistry,
            _ => return None,
        };
        Some(category)
    }
}

impl std::fmt::Display for WiseCategory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which release of WISE a prompt file belongs to (their id ranges and weights differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WiseEdition {
    /// The paper's release (`WISE_legacy/data/*.json`), scored with three axes by GPT-4o.
    #[default]
    Original,
    /// WISE_Verified (`data_verified/*_verified.json`, `merge.json`).
    Verified,
}

impl WiseEdition {
    /// The category of `prompt_id` in this edition, or `None` outside 1–1000.
    pub fn category_of(self, prompt_id: u64) -> Option<WiseCategory> {
        let bounds: [u64; 6] = match self {
            WiseEdition::Original => [400, 567, 700, 800, 900, 1000],
            WiseEdition::Verified => [400, 520, 640, 760, 880, 1000],
        };
        if prompt_id == 0 {
            return None;
        }
        bounds
            .iter()
            .position(|&upper| prompt_id <= upper)
            .map(|i| WiseCategory::ALL[i])
    }

    /// The weight of each category in the overall score (they sum to 1).
    pub fn weights(self) -> [(WiseCategory, f64); 6] {
        let w = match self {
            WiseEdition::Original => [0.4, 0.167, 0.133, 0.1, 0.1, 0.1],
            WiseEdition::Verified => [0.4, 0.12, 0.12, 0.12, 0.12, 0.12],
        };
        std::array::from_fn(|i| (WiseCategory::ALL[i], w[i]))
    }

    /// The weighted overall score of per-category mean scores, keyed by category name
    /// (see [`WiseCategory::from_name`]; unknown keys and non-finite values are ignored).
    ///
    /// WISE's overall is defined over all six categories, and its scripts compute none
    /// unless all six have scores: `None` unless every category has a finite score here
    /// too. (A mean reweighted over the categories present would look like WISE's overall
    /// and mean something else.) With all six, the result is exactly WISE's.
    pub fn overall(self, per_category: &HashMap<String, f64>) -> Option<f64> {
        let mut scores: HashMap<WiseCategory, f64> = HashMap::new();
        for (name, &score) in per_category {
            if let Some(category) = WiseCategory::from_name(name)
                && score.is_finite()
            {
                scores.insert(category, score);
            }
        }
        self.weights()
            .iter()
            .map(|(category, weight)| scores.get(category).map(|s| weight * s))
            .sum()
    }

    /// The edition's name as WISE writes it: `WISE` (the original release) or
    /// `WISE_Verified`.
    pub fn name(self) -> &'static str {
        match self {
            WiseEdition::Original => "WISE",
            WiseEdition::Verified => "WISE_Verified",
        }
    }
}

/// How many prompt ids WISE has (1 to 1000, in both editions).
pub const PROMPT_IDS: usize = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn original_ranges_follow_calculate_py() {
        let e = WiseEdition::Original;
        assert_eq!(e.category_of(0), None);
        assert_eq!(e.category_of(1), Some(WiseCategory::Cultural));
        assert_eq!(e.category_of(400), Some(WiseCategory::Cultural));
        assert_eq!(e.category_of(401), Some(WiseCategory::Time));
        assert_eq!(e.category_of(567), Some(WiseCategory::Time));
        assert_eq!(e.category_of(568), Some(WiseCategory::Space));
        assert_eq!(e.category_of(700), Some(WiseCategory::Space));
        assert_eq!(e.category_of(701), Some(WiseCategory::Biology));
        assert_eq!(e.category_of(801), Some(WiseCategory::Physics));
        assert_eq!(e.category_of(901), Some(WiseCategory::Chemistry));
        assert_eq!(e.category_of(1000), Some(WiseCategory::Chemistry));
        assert_eq!(e.category_of(1001), None);
    }

    #[test]
    fn verified_ranges_follow_calculate_verified_py() {
        let e = WiseEdition::Verified;
        assert_eq!(e.category_of(520), Some(WiseCategory::Time));
        assert_eq!(e.category_of(521), Some(WiseCategory::Space));
        assert_eq!(e.category_of(641), Some(WiseCategory::Biology));
        assert_eq!(e.category_of(761), Some(WiseCategory::Physics));
        assert_eq!(e.category_of(881), Some(WiseCategory::Chemistry));
    }

    #[test]
    fn weights_sum_to_one_and_match_the_paper() {
        for edition in [WiseEdition::Original, WiseEdition::Verified] {
            let sum: f64 = edition.weights().iter().map(|(_, w)| w).sum();
            assert!((sum - 1.0).abs() < 1e-12, "{edition:?}: {sum}");
        }
        let w = WiseEdition::Original.weights();
        assert_eq!(w[1], (WiseCategory::Time, 0.167));
        assert_eq!(w[2], (WiseCategory::Space, 0.133));
    }

    #[test]
    fn overall_needs_all_six_categories() {
        let all: HashMap<String, f64> = WiseCategory::ALL
            .iter()
            .map(|c| (c.as_str().to_string(), 0.5))
            .collect();
        let overall = WiseEdition::Original.overall(&all).unwrap();
        assert!((overall - 0.5).abs() < 1e-12);

        // Two categories are not WISE's overall (this was 0.4 / 0.567 = 0.705 before).
        let mut two = HashMap::new();
        two.insert("CULTURE".to_string(), 1.0);
        two.insert("time".to_string(), 0.0);
        two.insert("unknown".to_string(), 99.0);
        assert_eq!(WiseEdition::Original.overall(&two), None);
        let mut five = all.clone();
        five.remove("chemistry");
        assert_eq!(WiseEdition::Verified.overall(&five), None);
        let mut nan = all.clone();
        nan.insert("space".to_string(), f64::NAN);
        assert_eq!(WiseEdition::Original.overall(&nan), None);
        assert_eq!(WiseEdition::Original.overall(&HashMap::new()), None);
    }

    #[test]
    fn each_edition_weighs_with_its_own_weights() {
        // Category means that give 0.57 under WISE_Verified's weights
        // (calculate_verified.py) and 0.57835 under the original's.
        let means: HashMap<String, f64> = [
            ("CULTURE", 0.6),
            ("TIME", 0.65),
            ("SPACE", 0.6),
            ("BIOLOGY", 0.5),
            ("PHYSICS", 0.5),
            ("CHEMISTRY", 0.5),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let verified = WiseEdition::Verified.overall(&means).unwrap();
        let original = WiseEdition::Original.overall(&means).unwrap();
        assert!((verified - 0.57).abs() < 1e-12, "{verified}");
        assert!((original - 0.57835).abs() < 1e-12, "{original}");
    }
}
