//! Who may ask, how many at once, and how much a day: bearer keys compared in constant
//! time, a bounded queue in front of a fixed number of running requests, per-key
//! concurrency, and per-key daily budgets kept in a durable ledger (the batch layer's
//! journal and budget), so that a restart does not reset them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::api::ApiError;
use crate::Secret;
use crate::batch::{Budget, BudgetGuard, Journal, Ledger, Limits, PriceTable};

/// An API key with the name its spend and logs are kept under (the key itself is never
/// logged).
#[derive(Debug, Clone)]
pub struct ApiKey {
    /// A name for people and folders: letters, digits, `-` and `_`.
    pub name: String,
    /// The key.
    pub key: Secret,
}

impl ApiKey {
    /// Parse `name:key` lines (blank lines and `#` comments skipped); a line without a
    /// name gets `key-N`.
    pub fn parse_lines(text: &str) -> Result<Vec<ApiKey>, String> {
        let mut keys = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, key) = match line.split_once(':') {
                Some((n, k)) if !n.trim().is_empty() => (n.trim().to_string(), k.trim()),
                _ => (format!("key-{}", i + 1), line),
            };
            if key.len() < 16 {
                return Err(format!(
                    "line {}: the key of `{name}` is shorter than 16 characters",
                    i + 1
                ));
            }
            if !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(format!(
                    "line {}: the name `{name}` may hold only letters, digits, - and _",
                    i + 1
                ));
            }
            keys.push(ApiKey {
                name,
                key: Secret::new(key),
            });
        }
        Ok(keys)
    }
}

/// Who may call: the keys, or nobody but this machine when there are none.
#[derive(Debug)]
pub struct Keys {
    keys: Vec<ApiKey>,
    insecure_no_auth: bool,
}

/// The name requests without keys are accounted under.
pub const LOCAL: &str = "local";

impl Keys {
    /// `keys`; with none, only loopback callers unless `insecure_no_auth`.
    pub fn new(keys: Vec<ApiKey>, insecure_no_auth: bool) -> Self {
        Keys {
            keys,
            insecure_no_auth,
        }
    }

    /// Whether any key is configured.
    pub fn configured(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The caller's key name, from `Authorization: Bearer KEY` (or the form's key).
    pub fn check(
        &self,
        bearer: Option<&str>,
        peer: Option<SocketAddr>,
    ) -> Result<String, ApiError> {
        if self.keys.is_empty() {
            let local = peer.is_none_or(|p| p.ip().is_loopback());
            return if local || self.insecure_no_auth {
                Ok(LOCAL.to_string())
            } else {
                Err(ApiError::unauthorized(
                    "this server has no API keys configured, so it answers only on loopback \
                     (give it --keys-file, or --insecure-no-auth)",
                ))
            };
        }
        let Some(given) = bearer.map(str::trim).filter(|k| !k.is_empty()) else {
            return Err(ApiError::unauthorized(
                "You didn't provide an API key. Send it as `Authorization: Bearer KEY`.",
            ));
        };
        // Every key is compared, each in constant time, so the time taken says nothing
        // about which key (or how much of one) matched.
        let mut found = None;
        for k in &self.keys {
            if bool::from(k.key.expose().as_bytes().ct_eq(given.as_bytes())) {
                found = Some(k.name.clone());
            }
        }
        found.ok_or_else(|| ApiError::unauthorized("Incorrect API key provided."))
    }
}

/// The bearer token of an `Authorization` header value.
pub fn bearer(value: Option<&str>) -> Option<&str> {
    let v = value?.trim();
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// A bounded queue in front of `running` slots, and per-key concurrency.
#[derive(Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    queue: usize,
    per_key: Mutex<HashMap<String, usize>>,
    per_key_max: usize,
}

/// A request's place: its run slot and its key's count, given back on drop.
#[derive(Debug)]
pub struct Admitted {
    _slot: OwnedSemaphorePermit,
    _key: KeySlot,
}

#[derive(Debug)]
struct KeySlot {
    admission: Arc<Admission>,
    key: String,
}

impl Drop for KeySlot {
    fn drop(&mut self) {
        let mut per_key = lock(&self.admission.per_key);
        if let Some(n) = per_key.get_mut(&self.key) {
            *n = n.saturating_sub(1);
        }
    }
}

struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Admission {
    /// `running` requests at once, `queue` more waiting, `per_key_max` of one key at once.
    pub fn new(running: usize, queue: usize, per_key_max: usize) -> Arc<Self> {
        Arc::new(Admission {
            slots: Arc::new(Semaphore::new(running.max(1))),
            waiting: AtomicUsize::new(0),
            queue,
            per_key: Mutex::new(HashMap::new()),
            per_key_max: per_key_max.max(1),
        })
    }

    /// Requests waiting for a slot.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Wait for a slot: 429 at once when the key has its most requests running or the
    /// queue is full (never an unbounded backlog).
    pub async fn admit(self: &Arc<Self>, key: &str) -> Result<Admitted, ApiError> {
        {
            let mut per_key = lock(&self.per_key);
            let n = per_key.entry(key.to_string()).or_insert(0);
            if *n >= self.per_key_max {
                return Err(ApiError::rate_limited(
                    format!(
                        "this key already has {} requests running (the most it may have at once)",
                        self.per_key_max
                    ),
                    2,
                ));
            }
            *n += 1;
        }
        let key_slot = KeySlot {
            admission: self.clone(),
            key: key.to_string(),
        };
        let slot = match self.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.queue {
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                    return Err(ApiError::rate_limited(
                        format!("the queue is full ({} requests waiting)", self.queue),
                        5,
                    ));
                }
                let _waiting = Waiting(&self.waiting);
                self.slots
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| ApiError::unavailable("the server is shutting down"))?
            }
        };
        Ok(Admitted {
            _slot: slot,
            _key: key_slot,
        })
    }
}

/// Per-key daily budgets: each key's spend of each UTC day is a folder with a journal,
/// every paid call written there before it is made (see [`crate::batch::Budget`]).
#[derive(Debug)]
pub struct Budgets {
    dir: PathBuf,
    daily_images: Option<u64>,
    daily_cost: Option<f64>,
    prices: PriceTable,
    ledgers: Mutex<HashMap<(String, String), Arc<Ledger>>>,
    budgets: Mutex<HashMap<(String, String, String), Arc<Budget>>>,
}

impl Budgets {
    /// Budgets kept under `dir`.
    pub fn new(
        dir: &Path,
        daily_images: Option<u64>,
        daily_cost: Option<f64>,
        prices: PriceTable,
    ) -> Self {
        Budgets {
            dir: dir.to_path_buf(),
            daily_images,
            daily_cost,
            prices,
            ledgers: Mutex::new(HashMap::new()),
            budgets: Mutex::new(HashMap::new()),
        }
    }

    /// The price table.
    pub fn prices(&self) -> &PriceTable {
        &self.prices
    }

    fn ledger(&self, key: &str, day: &str) -> Result<Arc<Ledger>, ApiError> {
        let mut ledgers = lock(&self.ledgers);
        if let Some(l) = ledgers.get(&(key.to_string(), day.to_string())) {
            return Ok(l.clone());
        }
        let folder = self.dir.join(key).join(day);
        std::fs::create_dir_all(&folder).map_err(|e| {
            ApiError::internal(format!("the spend ledger {}: {e}", folder.display()))
        })?;
        // One journal per process (a replica, a restart): the budget counts them all.
        let host: String = std::env::var("HOSTNAME")
            .unwrap_or_else(|_| "host".into())
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        // Another server of this process (a restart in place) may hold the first name.
        let mut opened = Err(None);
        for k in 0..16 {
            let name = match k {
                0 => format!("journal-serve-{host}-{}.sqlite", std::process::id()),
                k => format!("journal-serve-{host}-{}-{k}.sqlite", std::process::id()),
            };
            match Journal::open(&folder.join(name)).and_then(|j| {
                j.commit_without_flush()?;
                Ok(j)
            }) {
                Ok(j) => {
                    opened = Ok(j);
                    break;
                }
                Err(e) => opened = Err(Some(e)),
            }
        }
        let journal = opened.map_err(|e| {
            ApiError::internal(format!(
                "the spend ledger: {}",
                e.map(|e| e.to_string()).unwrap_or_default()
            ))
        })?;
        let ledger = Arc::new(Ledger::new(Arc::new(journal)));
        ledgers.insert((key.to_string(), day.to_string()), ledger.clone());
        Ok(ledger)
    }

    /// A guard for one run of `key` on a pipeline whose models are `chat` and `image`
    /// (as `Report::models` names them): 429 when the key's budget for today is spent.
    pub async fn guard(
        &self,
        key: &str,
        chat: &str,
        image: &str,
        run: &str,
        deadline: Instant,
    ) -> Result<Arc<BudgetGuard>, ApiError> {
        let day = utc_day(SystemTime::now());
        let ledger = self.ledger(key, &day)?;
        let budget = {
            let mut budgets = lock(&self.budgets);
            let id = (key.to_string(), day.clone(), format!("{chat}|{image}"));
            match budgets.get(&id) {
                Some(b) => b.clone(),
                None => {
                    let limits = Limits {
                        max_images: self.daily_images,
                        max_cost: self.daily_cost,
                        ..Limits::default()
                    };
                    let b = Budget::new(limits, self.prices.clone(), chat, image)
                        .map_err(|e| ApiError::internal(format!("the key's budget: {e}")))?;
                    let b = Arc::new(b.with_ledger(ledger.clone()));
                    budgets.insert(id, b.clone());
                    b
                }
            }
        };
        budget.may_start().await.map_err(|halt| {
            ApiError::quota(format!(
                "the daily budget of key `{key}` is spent ({}); it resets at 00:00 UTC",
                halt.message
                    .replace("--max-images", "--daily-images")
                    .replace("--max-cost", "--daily-cost")
            ))
        })?;
        Ok(Arc::new(
            BudgetGuard::new(budget, run, Some(deadline)).with_ledger(ledger),
        ))
    }
}

/// `YYYY-MM-DD` of `t` in UTC.
pub fn utc_day(t: SystemTime) -> String {
    let days = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0) as i64;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_calendar_dates() {
        assert_eq!(utc_day(UNIX_EPOCH), "1970-01-01");
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_796_601_600);
        assert_eq!(utc_day(t), "2026-12-07");
        let leap = UNIX_EPOCH + std::time::Duration::from_secs(951_782_400);
        assert_eq!(utc_day(leap), "2000-02-29");
    }

    #[test]
    fn keys_match_by_value_and_refuse_short_or_odd_names() {
        let keys = ApiKey::parse_lines(
            "# comment\nalice:sk-alice-0123456789\n\nbob: sk-bob-01234567890\n",
        )
        .unwrap();
        let k = Keys::new(keys, false);
        assert_eq!(k.check(Some("sk-bob-01234567890"), None).unwrap(), "bob");
        assert_eq!(
            k.check(Some("sk-bob-0123456789X"), None)
                .unwrap_err()
                .status,
            axum::http::StatusCode::UNAUTHORIZED
        );
        assert!(k.check(None, None).is_err());
        assert!(ApiKey::parse_lines("a:short").is_err());
        assert!(ApiKey::parse_lines("a/b:sk-0123456789abcdef").is_err());
        assert_eq!(bearer(Some("Bearer  sk-x ")), Some("sk-x"));
        assert_eq!(bearer(Some("Basic abc")), None);
    }

    #[test]
    fn without_keys_only_loopback_is_served_unless_asked() {
        let k = Keys::new(Vec::new(), false);
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "10.1.2.3:5000".parse().unwrap();
        assert_eq!(k.check(None, Some(local)).unwrap(), LOCAL);
        assert!(k.check(None, Some(remote)).is_err());
        assert!(
            Keys::new(Vec::new(), true)
                .check(None, Some(remote))
                .is_ok()
        );
    }

    #[tokio::test]
    async fn the_queue_is_bounded_and_per_key_limits_hold() {
        let a = Admission::new(1, 1, 2);
        let first = a.admit("k").await.unwrap();
        let a2 = a.clone();
        let waiter = tokio::spawn(async move { a2.admit("k").await.map(|_| ()) });
        while a.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        // The queue (1) is full: the next one is refused at once.
        let full = a.admit("other").await.unwrap_err();
        assert_eq!(full.status, axum::http::StatusCode::TOO_MANY_REQUESTS);
        assert!(full.message.contains("queue is full"), "{}", full.message);
        // Key `k` has two requests in (one running, one waiting): a third is refused.
        let busy = a.admit("k").await.unwrap_err();
        assert!(busy.message.contains("already has 2"), "{}", busy.message);
        drop(first);
        waiter.await.unwrap().unwrap();
        assert_eq!(a.waiting(), 0);
    }
}
