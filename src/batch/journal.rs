//! The durable journal: one SQLite database (WAL mode) per shard, one row per job, so a
//! batch that died picks up where it stopped and a job done is never paid for again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::BatchError;
use super::ledger;
use super::manifest::Job;
use crate::failure::ErrorClass;

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Not run yet (or left for the next run).
    Pending,
    /// Being run (a row left running by a dead process is taken up again).
    Running,
    /// Its outputs are in place.
    Done,
    /// It failed; see the error class.
    Failed,
    /// Not run: its input is unusable (a missing image to edit).
    Skipped,
}

impl JobState {
    /// The name stored in the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Skipped => "skipped",
        }
    }

    fn parse(s: &str) -> JobState {
        match s {
            "running" => JobState::Running,
            "done" => JobState::Done,
            "failed" => JobState::Failed,
            "skipped" => JobState::Skipped,
            _ => JobState::Pending,
        }
    }
}

/// One job's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRow {
    /// The job id.
    pub id: String,
    /// Its manifest line.
    pub line: i64,
    /// Its prompt.
    pub prompt: String,
    /// What determines its result.
    pub fingerprint: String,
    /// Its state.
    pub state: JobState,
    /// How many times it was started.
    pub attempts: i64,
    /// The class of its last failure.
    pub error_class: Option<String>,
    /// Its last failure.
    pub error_message: Option<String>,
    /// Why its run stopped (the report's typed stop reason, `kind` only).
    pub stop_kind: Option<String>,
    /// Wall time of its last run in milliseconds.
    pub duration_ms: Option<i64>,
    /// Chat tokens used.
    pub chat_tokens: i64,
    /// Image tokens used.
    pub image_tokens: i64,
    /// Images generated.
    pub images: i64,
    /// Estimated cost in US dollars.
    pub cost_usd: f64,
    /// Its output folder, relative to the journal's folder.
    pub output_dir: Option<String>,
    /// Per-engine search counts (`{"engine": [runs, failed]}`) as JSON.
    pub engines: Option<String>,
    /// Paid calls that were in flight when an earlier process running this job died: they
    /// may have been billed, and their cost is in no total.
    pub interrupted_calls: i64,
}

/// What a job's finished run records.
#[derive(Debug, Clone, Default)]
pub struct Finished {
    /// The final state (done, failed, skipped, or pending to run again).
    pub state: Option<JobState>,
    /// The failure's class.
    pub error_class: Option<ErrorClass>,
    /// The failure.
    pub error_message: Option<String>,
    /// The typed stop reason's kind.
    pub stop_kind: Option<String>,
    /// Wall time.
    pub duration_ms: u64,
    /// The output folder, relative to the journal's folder.
    pub output_dir: Option<String>,
    /// Per-engine search counts as JSON.
    pub engines: Option<String>,
}

/// What a run of the manifest will do, by job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Jobs to run, in manifest order.
    pub to_run: Vec<Job>,
    /// Jobs already done with the same fingerprint.
    pub already_done: usize,
    /// Jobs done before whose fingerprint changed (they run again).
    pub changed: usize,
    /// Jobs left running by a process that died (they run again).
    pub resumed: usize,
    /// Jobs skipped (kept failed: safety or invalid request with the same fingerprint).
    pub kept_failed: usize,
}

/// The journal.
pub struct Journal {
    path: PathBuf,
    conn: Mutex<Connection>,
    /// Written by a version without the `interrupted_calls` column (read-only opens).
    no_interrupted_column: bool,
    /// Written by a version without the ledger's `calls` table (read-only opens): its
    /// spend is in the jobs' own columns.
    legacy: bool,
    /// `<journal>.lock`, locked exclusively for as long as a writer has the journal open,
    /// so that a second process on the same journal cannot take up the first one's
    /// running jobs (and pay for them again). The OS releases it when the process dies.
    _lock: Option<std::fs::File>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("path", &self.path).finish()
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    line INTEGER NOT NULL,
    prompt TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending','running','done','failed','skipped')),
    attempts INTEGER NOT NULL DEFAULT 0,
    error_class TEXT,
    error_message TEXT,
    stop_kind TEXT,
    started_at REAL,
    finished_at REAL,
    duration_ms INTEGER,
    chat_tokens INTEGER NOT NULL DEFAULT 0,
    image_tokens INTEGER NOT NULL DEFAULT 0,
    images INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    output_dir TEXT,
    engines TEXT,
    metadata TEXT,
    in_flight INTEGER NOT NULL DEFAULT 0,
    interrupted_calls INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS completions (
    job_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    at REAL NOT NULL,
    pid INTEGER NOT NULL
);";

pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Add the columns a journal written by an earlier version lacks, and move its per-job
/// spend into the ledger (one settled call per job that spent, one interrupted call per
/// call it had in flight), once: a journal written since has no spend outside the ledger.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    add_columns(conn)?;
    conn.execute_batch(ledger::CALLS_SCHEMA)?;
    let calls: i64 = conn.query_row("SELECT COUNT(*) FROM calls", [], |r| r.get(0))?;
    if calls == 0 {
        conn.execute_batch(
            "INSERT INTO calls (job_id, kind, state, pid, started_at, ended_at, chat_tokens,
                                image_tokens, images, cost_usd)
               SELECT id, 'legacy', 'settled', 0, COALESCE(started_at, 0), finished_at,
                      chat_tokens, image_tokens, images, cost_usd FROM jobs
               WHERE chat_tokens + image_tokens + images > 0 OR cost_usd > 0;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
             INSERT INTO calls (job_id, kind, state, pid, started_at)
               SELECT jobs.id, 'legacy', 'interrupted', 0, COALESCE(started_at, 0)
               FROM jobs JOIN n ON n.i <= jobs.interrupted_calls + jobs.in_flight;
             UPDATE jobs SET interrupted_calls = 0, in_flight = 0;",
        )?;
    }
    Ok(())
}

fn add_columns(conn: &Connection) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('jobs')")?;
    let columns: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for column in ["in_flight", "interrupted_calls"] {
        if !columns.iter().any(|c| c == column) {
            conn.execute_batch(&format!(
                "ALTER TABLE jobs ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0"
            ))?;
        }
    }
    Ok(())
}

/// Refuse jobs whose ids cannot name their output folder, and ids used twice (callers
/// that build jobs themselves skip the manifest's own checks).
pub(crate) fn check_jobs(jobs: &[Job]) -> Result<(), BatchError> {
    let mut seen = std::collections::HashSet::new();
    for job in jobs {
        super::check_id(&job.id).map_err(|reason| BatchError::InvalidJob {
            id: job.id.clone(),
            reason,
        })?;
        if !seen.insert(job.id.as_str()) {
            return Err(BatchError::InvalidJob {
                id: job.id.clone(),
                reason: "the id is used by two jobs: give each job its own id".into(),
            });
        }
    }
    Ok(())
}

/// Open the SQLite database at `path` in WAL mode with full syncs and a 10 s busy timeout,
/// creating `schema`'s tables when missing.
pub(crate) fn open_wal(path: &Path, schema: &str) -> Result<Connection, BatchError> {
    let err = |source| BatchError::Journal {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open(path).map_err(err)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(err)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(err)?;
    conn.execute_batch(schema).map_err(err)?;
    Ok(conn)
}

/// Take `<journal>.lock` exclusively, writing our pid into it for the message of the
/// next process that finds it taken.
pub(crate) fn lock_exclusively(journal: &Path) -> Result<std::fs::File, BatchError> {
    use std::io::{Read, Seek, Write};
    let mut name = journal.as_os_str().to_os_string();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    if let Some(dir) = lock_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| BatchError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let io = |source| BatchError::Io {
        path: lock_path.clone(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0).map_err(io)?;
            file.rewind().map_err(io)?;
            write!(file, "{}", std::process::id()).map_err(io)?;
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            Err(BatchError::Busy {
                path: journal.to_path_buf(),
                holder: holder.trim().parse().ok(),
            })
        }
        Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
    }
}

impl Journal {
    /// Open (or create) the journal at `path`, in WAL mode with full syncs, as its only
    /// writer: while it is open, a second `open` of the same journal (from any process)
    /// fails with [`BatchError::Busy`]. Paid calls an earlier process left in flight are
    /// marked interrupted (possibly billed; see [`super::Ledger`]).
    pub fn open(path: &Path) -> Result<Journal, BatchError> {
        let lock = lock_exclusively(path)?;
        let conn = open_wal(path, SCHEMA)?;
        let err = |source| BatchError::Journal {
            path: path.to_path_buf(),
            source,
        };
        migrate(&conn).map_err(err)?;
        let dead = ledger::interrupt_dead_calls(&conn).map_err(err)?;
        if dead > 0 {
            tracing::warn!(
                journal = %path.display(),
                "{dead} paid call(s) were in flight when an earlier process died: they count as possibly billed"
            );
        }
        Ok(Journal {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
            no_interrupted_column: false,
            legacy: false,
            _lock: Some(lock),
        })
    }

    /// Open an existing journal read-only (for summaries). A journal whose process died
    /// before it wrote its tables reads as empty.
    pub fn open_read_only(path: &Path) -> Result<Journal, BatchError> {
        let err = |source| BatchError::Journal {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        let tables: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('jobs', 'completions')",
                [],
                |r| r.get(0),
            )
            .map_err(err)?;
        let conn = if tables == 2 {
            conn
        } else {
            let empty = Connection::open_in_memory().map_err(err)?;
            empty.execute_batch(SCHEMA).map_err(err)?;
            empty.execute_batch(ledger::CALLS_SCHEMA).map_err(err)?;
            empty
        };
        let legacy = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'calls'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(err)?
            == 0;
        let no_interrupted_column = conn
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info('jobs') WHERE name = 'interrupted_calls'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(err)?
            == 0;
        Ok(Journal {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
            no_interrupted_column,
            legacy,
            _lock: None,
        })
    }

    /// The journal's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Commit without waiting for the disk (SQLite's `synchronous = NORMAL` in WAL mode):
    /// every record still survives a killed process (it is in the operating system's
    /// hands when the commit returns) but the last ones may be lost with the machine's
    /// power. For a service that records every request's calls and cannot wait for a
    /// disk flush on each; a batch journal keeps waiting (`FULL`).
    pub fn commit_without_flush(&self) -> Result<(), BatchError> {
        self.with_conn(|c| c.pragma_update(None, "synchronous", "NORMAL"))
    }

    /// Run `f` on the journal's connection, mapping SQLite errors to [`BatchError::Journal`].
    pub(crate) fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, BatchError> {
        let mut conn = match self.conn.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut conn).map_err(|source| BatchError::Journal {
            path: self.path.clone(),
            source,
        })
    }

    /// Record the manifest's jobs and decide which run: new and pending ones, rows left
    /// running, failed ones worth retrying, and done ones whose fingerprint changed.
    /// `fingerprints[i]` belongs to `jobs[i]`; `done_on_disk(job)` says whether a job's
    /// complete outputs are already in place with this fingerprint (then it is marked
    /// done without running).
    pub fn plan(
        &self,
        jobs: &[Job],
        fingerprints: &[String],
        dry_run: bool,
        done_on_disk: impl Fn(&Job, &str) -> Option<String>,
    ) -> Result<Plan, BatchError> {
        check_jobs(jobs)?;
        self.with_conn(|conn| {
            let tx = conn.transaction()?;
            let mut plan = Plan::default();
            for (job, fp) in jobs.iter().zip(fingerprints) {
                let row: Option<(String, String, Option<String>)> = tx
                    .query_row(
                        "SELECT state, fingerprint, error_class FROM jobs WHERE id = ?1",
                        [&job.id],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .optional()?;
                let run = match &row {
                    None => true,
                    Some((state, old_fp, class)) => {
                        let same = old_fp == fp;
                        match JobState::parse(state) {
                            JobState::Done if same => {
                                plan.already_done += 1;
                                false
                            }
                            JobState::Done => {
                                plan.changed += 1;
                                true
                            }
                            JobState::Running => {
                                plan.resumed += 1;
                                true
                            }
                            JobState::Failed | JobState::Skipped
                                if same
                                    && matches!(
                                        class.as_deref(),
                                        Some("safety") | Some("invalid_request")
                                    ) =>
                            {
                                plan.kept_failed += 1;
                                false
                            }
                            _ => true,
                        }
                    }
                };
                if !run || dry_run {
                    if run {
                        plan.to_run.push(job.clone());
                    }
                    continue;
                }
                let metadata = serde_json::to_string(&job.metadata).unwrap_or_default();
                if let Some(dir) = done_on_disk(job, fp) {
                    tx.execute(
                        "INSERT INTO jobs (id, line, prompt, fingerprint, state, output_dir, metadata, finished_at)
                         VALUES (?1, ?2, ?3, ?4, 'done', ?5, ?6, ?7)
                         ON CONFLICT(id) DO UPDATE SET line = ?2, prompt = ?3, fingerprint = ?4,
                           state = 'done', output_dir = ?5, metadata = ?6, finished_at = ?7",
                        params![job.id, job.line as i64, job.prompt, fp, dir, metadata, now()],
                    )?;
                    tx.execute(
                        "INSERT INTO completions (job_id, fingerprint, at, pid) VALUES (?1, ?2, ?3, ?4)",
                        params![job.id, fp, now(), std::process::id()],
                    )?;
                    plan.already_done += 1;
                    continue;
                }
                tx.execute(
                    "INSERT INTO jobs (id, line, prompt, fingerprint, state, metadata)
                     VALUES (?1, ?2, ?3, ?4, 'pending', ?5)
                     ON CONFLICT(id) DO UPDATE SET line = ?2, prompt = ?3, fingerprint = ?4,
                       state = 'pending', metadata = ?5",
                    params![job.id, job.line as i64, job.prompt, fp, metadata],
                )?;
                plan.to_run.push(job.clone());
            }
            tx.commit()?;
            Ok(plan)
        })
    }

    /// Mark a job running and count the attempt; returns how many of its paid calls were
    /// in flight when an earlier process died (see [`JobRow::interrupted_calls`]).
    pub fn start(&self, id: &str) -> Result<i64, BatchError> {
        self.with_conn(|c| {
            c.execute(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, started_at = ?2,
                   error_class = NULL, error_message = NULL WHERE id = ?1",
                params![id, now()],
            )?;
            c.query_row(
                "SELECT COUNT(*) FROM calls WHERE job_id = ?1 AND state = 'interrupted'",
                [id],
                |r| r.get(0),
            )
        })
    }

    /// Record a job's run, in one transaction (call after its files are in place).
    pub fn finish(&self, id: &str, f: &Finished) -> Result<(), BatchError> {
        let state = f.state.unwrap_or(JobState::Failed);
        self.with_conn(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "UPDATE jobs SET state = ?2, error_class = ?3, error_message = ?4, stop_kind = ?5,
                   finished_at = ?6, duration_ms = ?7, output_dir = COALESCE(?8, output_dir),
                   engines = COALESCE(?9, engines)
                 WHERE id = ?1",
                params![
                    id,
                    state.as_str(),
                    f.error_class.map(|c| c.as_str()),
                    f.error_message,
                    f.stop_kind,
                    now(),
                    f.duration_ms as i64,
                    f.output_dir,
                    f.engines,
                ],
            )?;
            if state == JobState::Done {
                let fp: String =
                    tx.query_row("SELECT fingerprint FROM jobs WHERE id = ?1", [id], |r| {
                        r.get(0)
                    })?;
                tx.execute(
                    "INSERT INTO completions (job_id, fingerprint, at, pid) VALUES (?1, ?2, ?3, ?4)",
                    params![id, fp, now(), std::process::id()],
                )?;
            }
            tx.commit()
        })
    }

    /// Put a job that was started but not finished back to pending (graceful shutdown).
    pub fn release(&self, id: &str) -> Result<(), BatchError> {
        self.with_conn(|c| {
            c.execute(
                "UPDATE jobs SET state = 'pending' WHERE id = ?1 AND state = 'running'",
                [id],
            )
            .map(|_| ())
        })
    }

    /// What this journal's paid calls spent (billed, in flight, interrupted).
    pub fn spend(&self) -> Result<ledger::SpendTotals, BatchError> {
        self.with_conn(|c| ledger::totals_of(c))
    }

    /// Every row, by manifest line.
    pub fn rows(&self) -> Result<Vec<JobRow>, BatchError> {
        let interrupted = if self.no_interrupted_column {
            "0"
        } else {
            "interrupted_calls"
        };
        self.with_conn(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT id, line, prompt, fingerprint, state, attempts, error_class, error_message,
                        stop_kind, duration_ms, chat_tokens, image_tokens, images, cost_usd,
                        output_dir, engines, {interrupted}
                 FROM jobs ORDER BY line, id"
            ))?;
            let spend = if self.legacy {
                BTreeMap::new()
            } else {
                ledger::per_job(c)?
            };
            let rows = stmt.query_map([], |r| {
                Ok(JobRow {
                    id: r.get(0)?,
                    line: r.get(1)?,
                    prompt: r.get(2)?,
                    fingerprint: r.get(3)?,
                    state: JobState::parse(&r.get::<_, String>(4)?),
                    attempts: r.get(5)?,
                    error_class: r.get(6)?,
                    error_message: r.get(7)?,
                    stop_kind: r.get(8)?,
                    duration_ms: r.get(9)?,
                    chat_tokens: r.get(10)?,
                    image_tokens: r.get(11)?,
                    images: r.get(12)?,
                    cost_usd: r.get(13)?,
                    output_dir: r.get(14)?,
                    engines: r.get(15)?,
                    interrupted_calls: r.get(16)?,
                })
            })?;
            rows.map(|row| {
                let mut row = row?;
                if let Some((t, interrupted)) = spend.get(&row.id) {
                    row.chat_tokens = t.chat_tokens;
                    row.image_tokens = t.image_tokens;
                    row.images = t.images;
                    row.cost_usd = t.cost_usd;
                    row.interrupted_calls = *interrupted;
                } else if !self.legacy {
                    row.chat_tokens = 0;
                    row.image_tokens = 0;
                    row.images = 0;
                    row.cost_usd = 0.0;
                    row.interrupted_calls = 0;
                }
                Ok(row)
            })
            .collect()
        })
    }

    /// How many completions each job has (a job done twice would be a bug).
    pub fn completions(&self) -> Result<Vec<(String, i64)>, BatchError> {
        self.with_conn(|c| {
            let mut stmt = c.prepare(
                "SELECT job_id, COUNT(*) FROM completions GROUP BY job_id ORDER BY job_id",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }
}
