//! Budgets (images, tokens, estimated cost), deadlines and the stop switch, checked
//! before every paid call of every running job through a [`RunGuard`].

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use super::BatchError;
use super::ledger::{Ledger, Reservation, SpendTotals, Tally};
use super::prices::PriceTable;
use crate::guard::{CallUsage, Halt, HaltKind, PaidCall, PlannedCall, RunGuard};

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

/// The batch's budget: limits, what is spent, what is reserved by calls in flight, and
/// the stop switch.
///
/// With a [`Ledger`] (as the batch runner sets up), spend is read from the journals of the
/// output folder before every paid call, so the caps are totals over every process and
/// every shard that writes there, restarts included; each call is written to the journal
/// before it is made and settled when it returns. Without one, the caps hold within this
/// process.
///
/// What a cap promises:
/// - `max_images`: never exceeded. An image call reserves every image it may return
///   (`n`) before it is made.
/// - `max_cost`: an image call reserves its estimated price (`n` x `per_image`); a chat
///   call cannot be priced before it returns, so the cost may pass the cap by at most one
///   chat call per running job (plus the difference between an image call's estimate and
///   its bill).
/// - `max_tokens`: likewise, by at most one call per running job.
#[derive(Debug)]
pub struct Budget {
    limits: Limits,
    prices: PriceTable,
    chat_model: String,
    image_model: String,
    /// Spent by this process's jobs (the ledger has every process's).
    pub spent: Spend,
    /// Images and dollars reserved by this process's calls in flight that have no ledger
    /// (with a ledger, its in-flight rows are the reservations).
    reserved: Mutex<(i64, f64)>,
    ledgers: Mutex<Vec<Arc<Ledger>>>,
    stop_now: AtomicBool,
    first_halt: Mutex<Option<Halt>>,
}

/// A paid call admitted by the budget, until it is settled.
#[derive(Debug, Clone, Copy)]
struct Admitted {
    kind: PaidCall,
    images: i64,
    usd: f64,
    ledger_id: Option<i64>,
}

impl Budget {
    /// A budget for pipelines whose chat and image models are named as given (as in
    /// `Report::models`: `model at url`). With `max_cost` set, both models must have a
    /// price: an unpriced model would make the cap meaningless.
    pub fn new(
        limits: Limits,
        prices: PriceTable,
        chat_model: &str,
        image_model: &str,
    ) -> Result<Self, BatchError> {
        if limits.max_cost.is_some() {
            for model in [chat_model, image_model] {
                if prices.get(model).is_none() {
                    return Err(BatchError::Unpriced {
                        model: PriceTable::name_of(model).to_string(),
                    });
                }
            }
        }
        Ok(Budget {
            limits,
            prices,
            chat_model: chat_model.to_string(),
            image_model: image_model.to_string(),
            spent: Spend::default(),
            reserved: Mutex::new((0, 0.0)),
            ledgers: Mutex::new(Vec::new()),
            stop_now: AtomicBool::new(false),
            first_halt: Mutex::new(None),
        })
    }

    /// Count the spend of every journal in `ledger`'s folder against the caps (see
    /// [`Budget::count_in`]).
    pub fn with_ledger(self, ledger: Arc<Ledger>) -> Self {
        self.count_in(ledger);
        self
    }

    /// Count the spend of every journal in `ledger`'s folder against the caps, from now
    /// on (once per folder). A [`super::Runner`] does this with its journal's ledger, so a
    /// library user's batch is held to its caps across processes too.
    pub fn count_in(&self, ledger: Arc<Ledger>) {
        let mut ledgers = match self.ledgers.lock() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        if !ledgers.iter().any(|l| l.folder() == ledger.folder()) {
            ledgers.push(ledger);
        }
    }

    fn ledgers(&self) -> Vec<Arc<Ledger>> {
        match self.ledgers.lock() {
            Ok(l) => l.clone(),
            Err(p) => p.into_inner().clone(),
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

    /// What the batch has spent: from the ledger (every process and shard of the output
    /// folder) when there is one, else this process's spend and reservations.
    pub fn totals(&self) -> Result<SpendTotals, BatchError> {
        let ledgers = self.ledgers();
        if !ledgers.is_empty() {
            return sum_totals(&ledgers);
        }
        let (images, usd) = self.reserved.lock().map(|r| *r).unwrap_or((0, 0.0));
        Ok(SpendTotals {
            billed: Tally {
                calls: 0,
                chat_tokens: self.spent.chat_tokens.load(Ordering::SeqCst) as i64,
                image_tokens: self.spent.image_tokens.load(Ordering::SeqCst) as i64,
                images: self.spent.images.load(Ordering::SeqCst) as i64,
                cost_usd: self.spent.cost(),
            },
            in_flight: Tally {
                images,
                cost_usd: usd,
                ..Tally::default()
            },
            interrupted: Tally::default(),
        })
    }

    /// Whether a new job may start (no limit reached, deadline not passed). Reads the
    /// ledger off the async runtime.
    pub async fn may_start(&self) -> Result<(), Halt> {
        if let Some(h) = self.halted() {
            return Err(h);
        }
        self.quick_checks(None)?;
        if self.caps().is_empty() {
            return Ok(());
        }
        let ledgers = self.ledgers();
        let totals = if ledgers.is_empty() {
            self.totals()
        } else {
            match tokio::task::spawn_blocking(move || sum_totals(&ledgers)).await {
                Ok(t) => t,
                Err(e) => return Err(unrecorded(&e.to_string())),
            }
        };
        let totals = totals.map_err(|e| self.halt(unrecorded(&e.to_string())))?;
        self.caps()
            .check(&totals, PaidCall::Gate, 0, 0.0)
            .map_err(|h| self.halt(h))
    }

    fn caps(&self) -> Caps {
        Caps {
            max_images: self.limits.max_images,
            max_tokens: self.limits.max_tokens,
            max_cost: self.limits.max_cost,
        }
    }

    /// The halts that need no totals: the stop switch and the deadlines.
    fn quick_checks(&self, job_deadline: Option<Instant>) -> Result<(), Halt> {
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
        Ok(())
    }

    /// Admit a call for job `job` (reserve it, and write it to `ledger` first).
    async fn admit(
        &self,
        ledger: Option<Arc<Ledger>>,
        job: &str,
        deadline: Option<Instant>,
        call: PlannedCall,
    ) -> Result<Admitted, Halt> {
        self.quick_checks(deadline)?;
        let images = i64::from(if call.kind == PaidCall::Generate {
            call.images.max(1)
        } else {
            0
        });
        let usd = images as f64 * self.prices.of(&self.image_model).per_image;
        let mut admitted = Admitted {
            kind: call.kind,
            images,
            usd,
            ledger_id: None,
        };
        let Some(ledger) = ledger else {
            let totals = self.totals().map_err(|e| unrecorded(&e.to_string()))?;
            self.caps()
                .check(&totals, call.kind, images, usd)
                .map_err(|h| self.halt(h))?;
            if let Ok(mut r) = self.reserved.lock() {
                r.0 += images;
                r.1 += usd;
            }
            return Ok(admitted);
        };
        let reservation = Reservation {
            job_id: job.to_string(),
            kind: call.kind.as_str().to_string(),
            images,
            cost_usd: usd,
        };
        let caps = self.caps();
        let ledgers = self.ledgers();
        let result = tokio::task::spawn_blocking(move || {
            // Without a cap there is nothing to decide under the folder's lock: the call
            // is only recorded.
            if caps.is_empty() {
                return ledger.record(&reservation).map(Ok);
            }
            ledger.admit(&reservation, || {
                let totals = sum_totals(&ledgers)?;
                Ok(caps.check(&totals, call.kind, images, usd))
            })
        })
        .await;
        match result {
            Ok(Ok(Ok(id))) => {
                // The ledger row is the reservation.
                admitted.ledger_id = Some(id);
                Ok(admitted)
            }
            Ok(Ok(Err(halt))) => Err(self.halt(halt)),
            Ok(Err(e)) => Err(self.halt(unrecorded(&e.to_string()))),
            Err(e) => Err(self.halt(unrecorded(&e.to_string()))),
        }
    }

    /// Settle an admitted call with what it used.
    async fn settle(
        &self,
        ledger: Option<Arc<Ledger>>,
        a: Admitted,
        usage: &CallUsage,
        job: &Spend,
    ) {
        let (chat, image_tokens, images, usd) = self.cost_of(a.kind, usage);
        if a.ledger_id.is_none()
            && let Ok(mut r) = self.reserved.lock()
        {
            r.0 -= a.images;
            r.1 -= a.usd;
        }
        self.spent.add(chat, image_tokens, images, usd);
        job.add(chat, image_tokens, images, usd);
        let (Some(id), Some(ledger)) = (a.ledger_id, ledger) else {
            return;
        };
        let used = Tally {
            calls: 1,
            chat_tokens: chat as i64,
            image_tokens: image_tokens as i64,
            images: images as i64,
            cost_usd: usd,
        };
        let settled = tokio::task::spawn_blocking(move || ledger.settle(id, &used)).await;
        let error = match settled {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        // The row stays in flight: the next run counts it at its reservation.
        tracing::error!("cannot record a paid call's usage in the journal: {error}");
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

/// The caps, apart from the budget (so they can be checked under the ledger's lock).
#[derive(Debug, Clone, Copy)]
struct Caps {
    max_images: Option<u64>,
    max_tokens: Option<u64>,
    max_cost: Option<f64>,
}

impl Caps {
    /// No cap at all: nothing to read before a call.
    fn is_empty(&self) -> bool {
        self.max_images.is_none() && self.max_tokens.is_none() && self.max_cost.is_none()
    }

    /// Whether a call of `kind` reserving `images` and `usd` fits the caps, given what is
    /// spent and reserved already. The images cap stops image calls that could pass it and
    /// the gate and selection of a job that could draw nothing more; a judge of an image
    /// already paid for still runs.
    fn check(&self, t: &SpendTotals, kind: PaidCall, images: i64, usd: f64) -> Result<(), Halt> {
        let budget = |msg: String| Err(Halt::new(HaltKind::Budget, msg));
        if let Some(max) = self.max_tokens
            && t.tokens() >= max as i64
        {
            return budget(format!("--max-tokens {max} reached ({} used)", t.tokens()));
        }
        if let Some(max) = self.max_cost {
            let counted = t.cost_usd();
            if counted >= max || (usd > 0.0 && counted + usd > max) {
                return budget(format!(
                    "--max-cost {max:.2} USD (estimated) reached ({counted:.3} spent or reserved{})",
                    if usd > 0.0 {
                        format!(", this call about {usd:.3}")
                    } else {
                        String::new()
                    }
                ));
            }
        }
        if let Some(max) = self.max_images {
            let used = t.images();
            let over = match kind {
                PaidCall::Generate => used + images > max as i64,
                PaidCall::Judge => false,
                PaidCall::Gate | PaidCall::Select => used >= max as i64,
            };
            if over {
                return budget(format!(
                    "--max-images {max} reached ({used} generated or reserved{})",
                    if images > 0 {
                        format!(", this call may return {images}")
                    } else {
                        String::new()
                    }
                ));
            }
        }
        Ok(())
    }
}

/// Spend over the folders of `ledgers`.
fn sum_totals(ledgers: &[Arc<Ledger>]) -> Result<SpendTotals, BatchError> {
    let mut all = SpendTotals::default();
    for l in ledgers {
        all.add(&l.totals()?);
    }
    Ok(all)
}

fn unrecorded(why: &str) -> Halt {
    Halt::new(
        HaltKind::Unrecorded,
        format!(
            "the paid call could not be written to the journal first, so it was not made: {why}"
        ),
    )
}

/// The guard of one job: the batch's budget plus the job's own deadline and counters.
#[derive(Debug)]
pub struct BudgetGuard {
    budget: Arc<Budget>,
    ledger: Option<Arc<Ledger>>,
    job: String,
    deadline: Option<Instant>,
    /// Calls admitted and not yet settled, oldest first: a run may admit several before
    /// the first ends (one selection per entity runs at once).
    open: Mutex<Vec<Admitted>>,
    /// What this job spent.
    pub spent: Spend,
}

impl BudgetGuard {
    /// A guard for job `job` (its calls are recorded under that id).
    pub fn new(budget: Arc<Budget>, job: &str, deadline: Option<Instant>) -> Self {
        BudgetGuard {
            budget,
            ledger: None,
            job: job.to_string(),
            deadline,
            open: Mutex::new(Vec::new()),
            spent: Spend::default(),
        }
    }

    /// Write each call to `ledger` before it is made, and settle it there (the budget
    /// then counts `ledger`'s folder too).
    pub fn with_ledger(mut self, ledger: Arc<Ledger>) -> Self {
        self.budget.count_in(ledger.clone());
        self.ledger = Some(ledger);
        self
    }
}

#[async_trait::async_trait]
impl RunGuard for BudgetGuard {
    async fn before_call(&self, call: PlannedCall) -> Result<(), Halt> {
        let admitted = self
            .budget
            .admit(self.ledger.clone(), &self.job, self.deadline, call)
            .await?;
        if let Ok(mut open) = self.open.lock() {
            open.push(admitted);
        }
        Ok(())
    }

    async fn after_call(&self, call: PaidCall, usage: &CallUsage) {
        // The oldest open call of this kind ends (calls of one kind settle in the order
        // they were admitted).
        let open = self.open.lock().ok().and_then(|mut o| {
            let i = o.iter().position(|a| a.kind == call)?;
            Some(o.remove(i))
        });
        let admitted = open.unwrap_or(Admitted {
            kind: call,
            images: 0,
            usd: 0.0,
            ledger_id: None,
        });
        self.budget
            .settle(self.ledger.clone(), admitted, usage, &self.spent)
            .await;
    }
}

#[cfg(test)]
mod tests;
