//! Budgets (images, tokens, estimated cost), deadlines and the stop switch, checked
//! before every paid call of every running job through a [`RunGuard`].

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::BatchError;
use crate::guard::{CallUsage, Halt, HaltKind, PaidCall, RunGuard};

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
/// time of writing; override them with a TOML file (`[models."name"]` tables with
/// `input_per_mtok`, `output_per_mtok`, `per_image`).
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

    /// Prices of a model given as `name` or `name at https://...` (free when unknown).
    pub fn of(&self, model: &str) -> Prices {
        let name = model.split(" at ").next().unwrap_or(model).trim();
        self.models.get(name).copied().unwrap_or(Prices {
            input_per_mtok: 0.0,
            output_per_mtok: 0.0,
            per_image: 0.0,
            estimate: true,
        })
    }
}

/// The batch's limits.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// At most this many images.
    pub max_images: Option<u64>,
    /// At most this many tokens (chat and image).
    pub max_tokens: Option<u64>,
    /// At most this estimated cost in US dollars.
    pub max_cost: Option<f64>,
    /// Start no paid call after this instant.
    pub deadline: Option<Instant>,
}

/// Usage counters (shared by the jobs, or one job's own).
#[derive(Debug, Default)]
pub struct Spend {
    /// Images generated.
    pub images: AtomicU64,
    /// Tokens (chat and image).
    pub tokens: AtomicU64,
    /// Chat tokens.
    pub chat_tokens: AtomicU64,
    /// Image tokens.
    pub image_tokens: AtomicU64,
    /// Estimated cost in micro-dollars.
    pub micro_usd: AtomicU64,
}

impl Spend {
    /// Estimated cost in US dollars.
    pub fn cost(&self) -> f64 {
        self.micro_usd.load(Ordering::Relaxed) as f64 / 1e6
    }

    fn add(&self, chat: u64, image_tokens: u64, images: u64, usd: f64) {
        self.chat_tokens.fetch_add(chat, Ordering::Relaxed);
        self.image_tokens.fetch_add(image_tokens, Ordering::Relaxed);
        self.tokens
            .fetch_add(chat + image_tokens, Ordering::Relaxed);
        self.images.fetch_add(images, Ordering::Relaxed);
        self.micro_usd
            .fetch_add((usd * 1e6).round() as u64, Ordering::Relaxed);
    }
}

/// The batch's budget: limits, what is spent, what is reserved by image calls in flight,
/// and the stop switch.
#[derive(Debug)]
pub struct Budget {
    limits: Limits,
    prices: PriceTable,
    chat_model: String,
    image_model: String,
    /// Spent by all jobs.
    pub spent: Spend,
    reserved_images: AtomicU64,
    stop_now: AtomicBool,
    first_halt: Mutex<Option<Halt>>,
}

impl Budget {
    /// A budget for pipelines whose chat and image models are named as given (as in
    /// `Report::models`: `model at url`).
    pub fn new(limits: Limits, prices: PriceTable, chat_model: &str, image_model: &str) -> Self {
        Budget {
            limits,
            prices,
            chat_model: chat_model.to_string(),
            image_model: image_model.to_string(),
            spent: Spend::default(),
            reserved_images: AtomicU64::new(0),
            stop_now: AtomicBool::new(false),
            first_halt: Mutex::new(None),
        }
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The price table.
    pub fn prices(&self) -> &PriceTable {
        &self.prices
    }

    /// Stop every running job before its next paid call (the second signal).
    pub fn stop_now(&self) {
        self.stop_now.store(true, Ordering::SeqCst);
    }

    /// The first halt any job met (budget or deadline), which also stops new jobs.
    pub fn halted(&self) -> Option<Halt> {
        self.first_halt.lock().ok().and_then(|h| h.clone())
    }

    fn halt(&self, h: Halt) -> Halt {
        if let Ok(mut first) = self.first_halt.lock()
            && first.is_none()
        {
            *first = Some(h.clone());
        }
        h
    }

    /// Whether a new job may start (no limit reached, deadline not passed).
    pub fn may_start(&self) -> Result<(), Halt> {
        if let Some(h) = self.halted() {
            return Err(h);
        }
        self.check(None, PaidCall::Gate)
    }

    fn check(&self, job_deadline: Option<Instant>, call: PaidCall) -> Result<(), Halt> {
        if self.stop_now.load(Ordering::SeqCst) {
            return Err(Halt::new(HaltKind::Cancelled, "stopped by a second signal"));
        }
        let now = Instant::now();
        if self.limits.deadline.is_some_and(|d| now >= d) {
            return Err(self.halt(Halt::new(HaltKind::Deadline, "the batch --deadline passed")));
        }
        if job_deadline.is_some_and(|d| now >= d) {
            return Err(Halt::new(HaltKind::JobTimeout, "the --job-timeout passed"));
        }
        if let Some(max) = self.limits.max_tokens
            && self.spent.tokens.load(Ordering::SeqCst) >= max
        {
            return Err(self.halt(Halt::new(
                HaltKind::Budget,
                format!("--max-tokens {max} reached"),
            )));
        }
        if let Some(max) = self.limits.max_cost
            && self.spent.cost() >= max
        {
            return Err(self.halt(Halt::new(
                HaltKind::Budget,
                format!("--max-cost {max:.2} USD (estimated) reached"),
            )));
        }
        if let Some(max) = self.limits.max_images {
            let used = self.spent.images.load(Ordering::SeqCst)
                + self.reserved_images.load(Ordering::SeqCst);
            if used >= max && call != PaidCall::Generate {
                // Nothing more can be drawn; only a call for an image in flight matters.
                return Err(self.halt(Halt::new(
                    HaltKind::Budget,
                    format!("--max-images {max} reached"),
                )));
            }
        }
        Ok(())
    }

    /// Reserve one image against `--max-images` (so concurrent jobs cannot overshoot).
    fn reserve_image(&self) -> Result<(), Halt> {
        let Some(max) = self.limits.max_images else {
            self.reserved_images.fetch_add(1, Ordering::SeqCst);
            return Ok(());
        };
        let spent = &self.spent.images;
        self.reserved_images
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| {
                (r + spent.load(Ordering::SeqCst) < max).then_some(r + 1)
            })
            .map(|_| ())
            .map_err(|_| {
                self.halt(Halt::new(
                    HaltKind::Budget,
                    format!("--max-images {max} reached"),
                ))
            })
    }

    /// Count a chat call made outside any job (an evaluation's judge) against the limits,
    /// priced as the chat model's.
    pub fn record_chat(&self, usage: &crate::lmm::Usage) {
        let call = CallUsage {
            chat: *usage,
            image: Default::default(),
        };
        let (chat, image_tokens, images, usd) = self.cost_of(PaidCall::Judge, &call);
        self.spent.add(chat, image_tokens, images, usd);
    }

    fn cost_of(&self, call: PaidCall, usage: &CallUsage) -> (u64, u64, u64, f64) {
        if call == PaidCall::Generate {
            let p = self.prices.of(&self.image_model);
            let u = &usage.image;
            let by_tokens = u.input_tokens as f64 * p.input_per_mtok / 1e6
                + u.billed_output_tokens() as f64 * p.output_per_mtok / 1e6;
            let usd = if u.total_tokens == 0 {
                u.images as f64 * p.per_image
            } else {
                by_tokens
            };
            (0, u.total_tokens, u64::from(u.images), usd)
        } else {
            let p = self.prices.of(&self.chat_model);
            let u = &usage.chat;
            let usd = u.prompt_tokens as f64 * p.input_per_mtok / 1e6
                + u.completion_tokens as f64 * p.output_per_mtok / 1e6;
            (u.total_tokens, 0, 0, usd)
        }
    }
}

/// The guard of one job: the batch's budget plus the job's own deadline and counters.
#[derive(Debug)]
pub struct BudgetGuard {
    budget: Arc<Budget>,
    deadline: Option<Instant>,
    /// What this job spent.
    pub spent: Spend,
}

impl BudgetGuard {
    /// A guard for one job.
    pub fn new(budget: Arc<Budget>, deadline: Option<Instant>) -> Self {
        BudgetGuard {
            budget,
            deadline,
            spent: Spend::default(),
        }
    }
}

impl RunGuard for BudgetGuard {
    fn before_call(&self, call: PaidCall) -> Result<(), Halt> {
        self.budget.check(self.deadline, call)?;
        if call == PaidCall::Generate {
            self.budget.reserve_image()?;
        }
        Ok(())
    }

    fn after_call(&self, call: PaidCall, usage: &CallUsage) {
        if call == PaidCall::Generate {
            let _ =
                self.budget
                    .reserved_images
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| {
                        Some(r.saturating_sub(1))
                    });
        }
        let (chat, image_tokens, images, usd) = self.budget.cost_of(call, usage);
        self.budget.spent.add(chat, image_tokens, images, usd);
        self.spent.add(chat, image_tokens, images, usd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::ImageUsage;

    #[test]
    fn thinking_tokens_are_priced_as_output() {
        let mut prices = PriceTable::default();
        let gemini = Prices {
            input_per_mtok: 2.0,
            output_per_mtok: 120.0,
            per_image: 0.0,
            estimate: false,
        };
        prices
            .models
            .insert("gemini-3-pro-image-preview".into(), gemini);
        let budget = Budget::new(
            Limits::default(),
            prices,
            "gpt-4o-mini",
            "gemini-3-pro-image-preview",
        );
        let call = CallUsage {
            image: ImageUsage {
                input_tokens: 1_000_000,
                output_tokens: 1_000_000,
                thinking_tokens: 500_000,
                total_tokens: 2_500_000,
                ..ImageUsage::default()
            },
            ..CallUsage::default()
        };
        let (_, tokens, _, usd) = budget.cost_of(PaidCall::Generate, &call);
        assert_eq!(tokens, 2_500_000);
        assert!((usd - (2.0 + 120.0 * 1.5)).abs() < 1e-9, "{usd}");
    }

    #[test]
    fn image_reservations_never_overshoot() {
        let limits = Limits {
            max_images: Some(2),
            ..Limits::default()
        };
        let budget = Arc::new(Budget::new(
            limits,
            PriceTable::default(),
            "gpt-4o-mini",
            "gpt-image-1",
        ));
        let a = BudgetGuard::new(budget.clone(), None);
        let b = BudgetGuard::new(budget.clone(), None);
        let c = BudgetGuard::new(budget.clone(), None);
        assert!(a.before_call(PaidCall::Generate).is_ok());
        assert!(b.before_call(PaidCall::Generate).is_ok());
        let h = c.before_call(PaidCall::Generate).unwrap_err();
        assert_eq!(h.kind, HaltKind::Budget);
        let one = CallUsage {
            image: ImageUsage {
                images: 1,
                total_tokens: 1000,
                input_tokens: 0,
                output_tokens: 1000,
                ..ImageUsage::default()
            },
            ..CallUsage::default()
        };
        a.after_call(PaidCall::Generate, &one);
        assert_eq!(budget.spent.images.load(Ordering::SeqCst), 1);
        assert!(
            (budget.spent.cost() - 0.04).abs() < 1e-9,
            "{}",
            budget.spent.cost()
        );
        assert!(budget.may_start().is_err());
    }

    #[test]
    fn price_overrides_replace_estimates() {
        let dir = std::env::temp_dir().join(format!("iat2i-prices-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("prices.toml");
        std::fs::write(&f, "[models.\"gpt-image-1\"]\nper_image = 0.5\n").unwrap();
        let t = PriceTable::load_overrides(&f).unwrap();
        let p = t.of("gpt-image-1 at https://api.openai.com/v1");
        assert_eq!(p.per_image, 0.5);
        assert!(!p.estimate);
        assert!(t.of("gpt-4o-mini").estimate);
        std::fs::write(&f, "models = 3").unwrap();
        assert!(PriceTable::load_overrides(&f).is_err());
    }
}
