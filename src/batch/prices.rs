//! Prices by model: the built-in estimates and a user's TOML overrides. A budget with a
//! cost cap refuses a model the table does not price.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::BatchError;

/// Prices of one model, in US dollars.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Prices {
    /// Per million input tokens.
    #[serde(default)]
    pub input_per_mtok: f64,
    /// Per million output tokens.
    #[serde(default)]
    pub output_per_mtok: f64,
    /// Per image, for image models that report no tokens.
    #[serde(default)]
    pub per_image: f64,
    /// Whether the figures are the built-in estimates (not the user's own).
    #[serde(default)]
    pub estimate: bool,
}

/// Prices by model name. The built-in figures are estimates of public list prices at the
/// time of writing, for every built-in backend's default model; override them or add
/// models with a TOML file (`[models."name"]` tables with `input_per_mtok`,
/// `output_per_mtok`, `per_image`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceTable {
    /// Prices by model name.
    pub models: BTreeMap<String, Prices>,
}

impl Default for PriceTable {
    fn default() -> Self {
        let p = |i, o, img| Prices {
            input_per_mtok: i,
            output_per_mtok: o,
            per_image: img,
            estimate: true,
        };
        let models = [
            ("gpt-image-1", p(10.0, 40.0, 0.04)),
            ("gpt-image-1-mini", p(2.5, 8.0, 0.011)),
            ("dall-e-3", p(0.0, 0.0, 0.04)),
            ("gpt-4o-mini", p(0.15, 0.6, 0.0)),
            ("gpt-4o", p(2.5, 10.0, 0.0)),
            ("gpt-4.1-mini", p(0.4, 1.6, 0.0)),
            ("gpt-4.1", p(2.0, 8.0, 0.0)),
            // Gemini API list prices: image output is billed as tokens (1290 a 1K image).
            ("gemini-2.5-flash-image", p(0.3, 30.0, 0.039)),
            ("gemini-2.5-flash-image-preview", p(0.3, 30.0, 0.039)),
            ("gemini-3-pro-image-preview", p(2.0, 120.0, 0.134)),
            // The same models through OpenRouter's chat completions (the chat-image default).
            ("google/gemini-2.5-flash-image", p(0.3, 30.0, 0.039)),
            ("google/gemini-2.5-flash-image-preview", p(0.3, 30.0, 0.039)),
            ("google/gemini-3-pro-image-preview", p(2.0, 120.0, 0.134)),
            // A self-hosted ComfyUI bills nothing per call; price your GPU time with --prices.
            ("ComfyUI", p(0.0, 0.0, 0.0)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        PriceTable { models }
    }
}

impl PriceTable {
    /// The built-in table with the models of the TOML file at `path` added or replaced.
    pub fn load_overrides(path: &Path) -> Result<PriceTable, BatchError> {
        let text = std::fs::read_to_string(path).map_err(|e| BatchError::Prices {
            path: path.to_path_buf(),
            reason: format!("cannot read it: {e}"),
        })?;
        let user: PriceTable = toml::from_str(&text).map_err(|e| BatchError::Prices {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut table = PriceTable::default();
        for (name, mut prices) in user.models {
            prices.estimate = false;
            table.models.insert(name, prices);
        }
        Ok(table)
    }

    /// The model name of `name` or `name at https://...` (as `Report::models` has it).
    pub fn name_of(model: &str) -> &str {
        model.split(" at ").next().unwrap_or(model).trim()
    }

    /// Prices of a model given as `name` or `name at https://...`, if the table has it.
    pub fn get(&self, model: &str) -> Option<Prices> {
        self.models.get(Self::name_of(model)).copied()
    }

    /// Prices of a model given as `name` or `name at https://...`; zero when unknown
    /// (a [`Budget`] with a cost cap refuses unknown models up front).
    pub fn of(&self, model: &str) -> Prices {
        self.get(model).unwrap_or(Prices {
            input_per_mtok: 0.0,
            output_per_mtok: 0.0,
            per_image: 0.0,
            estimate: true,
        })
    }
}
