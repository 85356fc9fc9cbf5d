//! The ledger: every paid call of a batch, written to the shard's journal *before* it is
//! made (with what it may cost: the images it may return, an estimate of its price) and
//! settled with what it used as soon as it returns. A process that dies leaves its calls
//! in flight; the next writer of that journal marks them interrupted, and they keep
//! counting, at their reservation, as possibly billed.
//!
//! Spend is therefore durable: a budget reads it back from the journals of the output
//! folder (every shard's, every earlier process's), and a cap holds across restarts, pod
//! retries and shards. Admission (read the totals, check the caps, write the call) runs
//! under an exclusive lock on `<out>/.spend.lock`, so two processes cannot both take the
//! last image of a cap.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags, params};
use serde::Serialize;

use super::BatchError;
use super::journal::{Journal, now};

/// The `calls` table (created with the journal's own tables).
pub(crate) const CALLS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('in_flight','settled','interrupted')),
    pid INTEGER NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    reserved_images INTEGER NOT NULL DEFAULT 0,
    reserved_usd REAL NOT NULL DEFAULT 0,
    chat_tokens INTEGER NOT NULL DEFAULT 0,
    image_tokens INTEGER NOT NULL DEFAULT 0,
    images INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS calls_by_job ON calls (job_id);
CREATE INDEX IF NOT EXISTS calls_by_state ON calls (state);";

/// Usage of some paid calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Tally {
    /// Paid calls.
    pub calls: i64,
    /// Chat tokens.
    pub chat_tokens: i64,
    /// Image tokens.
    pub image_tokens: i64,
    /// Images.
    pub images: i64,
    /// Estimated cost in US dollars.
    pub cost_usd: f64,
}

impl Tally {
    /// Tokens of both kinds.
    pub fn tokens(&self) -> i64 {
        self.chat_tokens + self.image_tokens
    }

    fn add(&mut self, o: &Tally) {
        self.calls += o.calls;
        self.chat_tokens += o.chat_tokens;
        self.image_tokens += o.image_tokens;
        self.images += o.images;
        self.cost_usd += o.cost_usd;
    }
}

/// What a batch has spent, from its journals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SpendTotals {
    /// Calls that returned, with what they used.
    pub billed: Tally,
    /// Calls being made now (by any live process), at their reservation: the images they
    /// may return and their estimated cost.
    pub in_flight: Tally,
    /// Calls that were in flight when their process died, at their reservation: they may
    /// have been billed (a provider bills a request it processed, answered or not).
    pub interrupted: Tally,
}

impl SpendTotals {
    /// Images counted against a cap: billed, plus every reservation.
    pub fn images(&self) -> i64 {
        self.billed.images + self.in_flight.images + self.interrupted.images
    }

    /// Tokens counted against a cap (reservations carry none).
    pub fn tokens(&self) -> i64 {
        self.billed.tokens()
    }

    /// Cost counted against a cap: billed, plus every reservation's estimate.
    pub fn cost_usd(&self) -> f64 {
        self.billed.cost_usd + self.in_flight.cost_usd + self.interrupted.cost_usd
    }

    pub(crate) fn add(&mut self, o: &SpendTotals) {
        self.billed.add(&o.billed);
        self.in_flight.add(&o.in_flight);
        self.interrupted.add(&o.interrupted);
    }
}

/// A call about to be made: whose, which, and what it may cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Reservation {
    /// The job.
    pub job_id: String,
    /// The call (`gate`, `select`, `generate`, `judge`, …).
    pub kind: String,
    /// Images it may return.
    pub images: i64,
    /// Its estimated cost (0 when nothing can be estimated before the call).
    pub cost_usd: f64,
}

/// Sum `calls` of one connection by state. A journal without the table (written before
/// the ledger, or not yet set up) falls back to its jobs' columns as billed.
pub(crate) fn totals_of(conn: &Connection) -> rusqlite::Result<SpendTotals> {
    let has_calls: i64 = conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'calls'",
        [],
        |r| r.get(0),
    )?;
    let mut t = SpendTotals::default();
    if has_calls == 0 {
        let has_jobs: i64 = conn.query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'jobs'",
            [],
            |r| r.get(0),
        )?;
        if has_jobs > 0 {
            t.billed = conn.query_row(
                "SELECT COUNT(*), COALESCE(SUM(chat_tokens),0), COALESCE(SUM(image_tokens),0),
                        COALESCE(SUM(images),0), COALESCE(SUM(cost_usd),0) FROM jobs",
                [],
                |r| {
                    Ok(Tally {
                        calls: 0,
                        chat_tokens: r.get(1)?,
                        image_tokens: r.get(2)?,
                        images: r.get(3)?,
                        cost_usd: r.get(4)?,
                    })
                },
            )?;
        }
        return Ok(t);
    }
    let mut stmt = conn.prepare(
        "SELECT state, COUNT(*), COALESCE(SUM(chat_tokens),0), COALESCE(SUM(image_tokens),0),
                COALESCE(SUM(CASE WHEN state = 'settled' THEN images ELSE reserved_images END),0),
                COALESCE(SUM(CASE WHEN state = 'settled' THEN cost_usd ELSE reserved_usd END),0)
         FROM calls GROUP BY state",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            Tally {
                calls: r.get(1)?,
                chat_tokens: r.get(2)?,
                image_tokens: r.get(3)?,
                images: r.get(4)?,
                cost_usd: r.get(5)?,
            },
        ))
    })?;
    for row in rows {
        let (state, tally) = row?;
        match state.as_str() {
            "settled" => t.billed.add(&tally),
            "in_flight" => t.in_flight.add(&tally),
            _ => t.interrupted.add(&tally),
        }
    }
    Ok(t)
}

/// Per job: what its settled calls used, and how many of its calls were interrupted.
pub(crate) fn per_job(conn: &Connection) -> rusqlite::Result<BTreeMap<String, (Tally, i64)>> {
    let mut stmt = conn.prepare(
        "SELECT job_id, COALESCE(SUM(chat_tokens),0), COALESCE(SUM(image_tokens),0),
                COALESCE(SUM(images),0), COALESCE(SUM(cost_usd),0),
                COALESCE(SUM(state = 'settled'),0), COALESCE(SUM(state != 'settled'),0)
         FROM calls GROUP BY job_id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            (
                Tally {
                    calls: r.get(5)?,
                    chat_tokens: r.get(1)?,
                    image_tokens: r.get(2)?,
                    images: r.get(3)?,
                    cost_usd: r.get(4)?,
                },
                r.get::<_, i64>(6)?,
            ),
        ))
    })?;
    rows.collect()
}

/// Calls left in flight by a dead process become interrupted (called by the journal's
/// only writer when it opens it: no live process can own them).
pub(crate) fn interrupt_dead_calls(conn: &Connection) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE calls SET state = 'interrupted' WHERE state = 'in_flight'",
        [],
    )
}

/// The journals of an output folder (`journal*.sqlite`), sorted.
pub fn folder_journals(folder: &Path) -> Result<Vec<PathBuf>, BatchError> {
    let entries = std::fs::read_dir(folder).map_err(|source| BatchError::Io {
        path: folder.to_path_buf(),
        source,
    })?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("journal") && n.ends_with(".sqlite"))
        })
        .collect();
    found.sort();
    Ok(found)
}

/// Spend over every journal of one output folder, and admission of new calls into this
/// process's journal. Shared by the jobs of a batch.
pub struct Ledger {
    folder: PathBuf,
    journal: Arc<Journal>,
    lock_path: PathBuf,
    readers: Mutex<BTreeMap<PathBuf, Connection>>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("journal", &self.journal.path())
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// The ledger of `journal`, counting every journal in its folder.
    pub fn new(journal: Arc<Journal>) -> Ledger {
        let folder = journal
            .path()
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        Ledger {
            lock_path: folder.join(".spend.lock"),
            folder,
            journal,
            readers: Mutex::new(BTreeMap::new()),
        }
    }

    /// This process's journal.
    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    /// What every journal of the folder records (blocking: call off the async runtime).
    pub fn totals(&self) -> Result<SpendTotals, BatchError> {
        let mut all = self.journal.with_conn(|c| totals_of(c))?;
        let own = std::fs::canonicalize(self.journal.path()).ok();
        let mut readers = match self.readers.lock() {
            Ok(r) => r,
            Err(p) => p.into_inner(),
        };
        for path in folder_journals(&self.folder)? {
            if std::fs::canonicalize(&path).ok() == own {
                continue;
            }
            let err = |source| BatchError::Journal {
                path: path.clone(),
                source,
            };
            if !readers.contains_key(&path) {
                let conn = Connection::open_with_flags(
                    &path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(err)?;
                conn.busy_timeout(std::time::Duration::from_secs(10))
                    .map_err(err)?;
                readers.insert(path.clone(), conn);
            }
            if let Some(conn) = readers.get(&path) {
                all.add(&totals_of(conn).map_err(err)?);
            }
        }
        Ok(all)
    }

    /// The output folder whose journals this ledger counts.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// Under the folder's spend lock: let `decide` read the totals and decide, and when it
    /// agrees write the call as in flight. `Ok(Err(reason))`: refused by `decide`.
    /// Blocking: call off the async runtime.
    pub fn admit<E>(
        &self,
        r: &Reservation,
        decide: impl FnOnce() -> Result<Result<(), E>, BatchError>,
    ) -> Result<Result<i64, E>, BatchError> {
        let _lock = self.lock()?;
        if let Err(e) = decide()? {
            return Ok(Err(e));
        }
        self.record(r).map(Ok)
    }

    /// Write the call as in flight without taking the folder's spend lock: for a budget
    /// without caps, which has nothing to decide (the record is what it needs). Blocking.
    pub fn record(&self, r: &Reservation) -> Result<i64, BatchError> {
        self.journal.with_conn(|c| {
            c.execute(
                "INSERT INTO calls (job_id, kind, state, pid, started_at, reserved_images, reserved_usd)
                 VALUES (?1, ?2, 'in_flight', ?3, ?4, ?5, ?6)",
                params![r.job_id, r.kind, std::process::id(), now(), r.images, r.cost_usd],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    /// Record what call `id` used (whatever its outcome). Blocking.
    pub fn settle(&self, id: i64, used: &Tally) -> Result<(), BatchError> {
        self.journal.with_conn(|c| {
            c.execute(
                "UPDATE calls SET state = 'settled', ended_at = ?2, chat_tokens = ?3,
                   image_tokens = ?4, images = ?5, cost_usd = ?6 WHERE id = ?1",
                params![
                    id,
                    now(),
                    used.chat_tokens,
                    used.image_tokens,
                    used.images,
                    used.cost_usd
                ],
            )
            .map(|_| ())
        })
    }

    fn lock(&self) -> Result<std::fs::File, BatchError> {
        let io = |source| BatchError::Io {
            path: self.lock_path.clone(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.lock_path)
            .map_err(io)?;
        file.lock().map_err(io)?;
        Ok(file)
    }
}
