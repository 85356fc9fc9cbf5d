//! The judgments of an evaluation, kept in SQLite (`<out>/judgments.sqlite`) so that an
//! interrupted evaluation resumes without asking any judge twice.
//!
//! A judgment is keyed by what determines it: the metric, the prompt, the arm (or the two
//! arms and their order, for a pairwise judgment), the judge model and the judge prompt's
//! version. A new judge or a new prompt version judges again; the same ones never do.
//! A failed judgment is stored with its error and counts as missing, never as zero. It is
//! asked again on a later run only when the first call provably was not processed (the
//! connection failed before anything was sent, or HTTP 429); any other failure may have
//! been billed and stays missing.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use crate::batch::BatchError;
use crate::lmm::Usage;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS judgments (
    key TEXT PRIMARY KEY,
    metric TEXT NOT NULL,
    prompt_id TEXT NOT NULL,
    arm TEXT NOT NULL,
    other_arm TEXT NOT NULL DEFAULT '',
    ord INTEGER NOT NULL DEFAULT 0,
    judge TEXT NOT NULL,
    judge_prompt TEXT NOT NULL,
    result TEXT,
    error TEXT,
    retryable INTEGER NOT NULL DEFAULT 0,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    elapsed_ms INTEGER NOT NULL DEFAULT 0,
    at INTEGER NOT NULL DEFAULT 0
);
";

/// What a judgment is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct JudgmentKey {
    /// `checklist`, `checklist_writer`, `wiscore` or `pairwise`.
    pub metric: &'static str,
    pub prompt_id: String,
    /// The arm judged (the first arm shown, for pairwise; empty for the checklist writer).
    pub arm: String,
    /// The second arm shown (pairwise only).
    pub other_arm: String,
    /// 0 for the first order of a pair, 1 for the swapped one.
    pub ord: u8,
    /// The judge model.
    pub judge: String,
    /// The judge prompt's id (`checklist.v1`).
    pub judge_prompt: String,
}

impl JudgmentKey {
    fn text(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}|{}",
            self.metric,
            self.prompt_id,
            self.arm,
            self.other_arm,
            self.ord,
            self.judge,
            self.judge_prompt
        )
    }
}

/// A stored judgment: the judge's parsed answer, or why there is none.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stored {
    pub result: Option<Value>,
    pub error: Option<String>,
    /// The failure provably was not processed: a later run may ask again.
    pub retryable: bool,
    pub usage: Usage,
    pub elapsed_ms: u64,
}

/// The judgment store, one writer at a time (`judgments.sqlite.lock`).
pub(crate) struct Judgments {
    path: PathBuf,
    conn: Mutex<Connection>,
    _lock: std::fs::File,
}

impl std::fmt::Debug for Judgments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Judgments")
            .field("path", &self.path)
            .finish()
    }
}

impl Judgments {
    /// Open (or create) the store at `path`; a second writer gets [`BatchError::Busy`].
    pub fn open(path: &Path) -> Result<Judgments, BatchError> {
        let lock = crate::batch::journal::lock_exclusively(path)?;
        let conn = crate::batch::journal::open_wal(path, SCHEMA)?;
        Ok(Judgments {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
            _lock: lock,
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, BatchError> {
        let conn = match self.conn.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&conn).map_err(|source| BatchError::Journal {
            path: self.path.clone(),
            source,
        })
    }

    /// The stored judgment for `key`, if any.
    pub fn get(&self, key: &JudgmentKey) -> Result<Option<Stored>, BatchError> {
        self.with(|c| {
            c.query_row(
                "SELECT result, error, retryable, prompt_tokens, completion_tokens, elapsed_ms
                 FROM judgments WHERE key = ?1",
                [key.text()],
                |r| {
                    let result: Option<String> = r.get(0)?;
                    let prompt_tokens: i64 = r.get(3)?;
                    let completion_tokens: i64 = r.get(4)?;
                    Ok(Stored {
                        result: result.and_then(|t| serde_json::from_str(&t).ok()),
                        error: r.get(1)?,
                        retryable: r.get::<_, i64>(2)? != 0,
                        usage: Usage {
                            prompt_tokens: prompt_tokens.max(0) as u64,
                            completion_tokens: completion_tokens.max(0) as u64,
                            total_tokens: (prompt_tokens + completion_tokens).max(0) as u64,
                            calls: 1,
                        },
                        elapsed_ms: r.get::<_, i64>(5)?.max(0) as u64,
                    })
                },
            )
            .optional()
        })
    }

    /// Store (or replace) the judgment for `key`.
    pub fn put(&self, key: &JudgmentKey, s: &Stored) -> Result<(), BatchError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let result = s.result.as_ref().map(Value::to_string);
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO judgments (key, metric, prompt_id, arm, other_arm, ord,
                 judge, judge_prompt, result, error, retryable, prompt_tokens, completion_tokens,
                 elapsed_ms, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13,
                 ?14, ?15)",
                params![
                    key.text(),
                    key.metric,
                    key.prompt_id,
                    key.arm,
                    key.other_arm,
                    key.ord,
                    key.judge,
                    key.judge_prompt,
                    result,
                    s.error,
                    s.retryable as i64,
                    s.usage.prompt_tokens as i64,
                    s.usage.completion_tokens as i64,
                    s.elapsed_ms as i64,
                    now
                ],
            )
            .map(|_| ())
        })
    }

    /// How many judgments are stored.
    #[cfg(test)]
    pub fn count(&self) -> Result<usize, BatchError> {
        self.with(|c| {
            c.query_row("SELECT COUNT(*) FROM judgments", [], |r| r.get::<_, i64>(0))
                .map(|n| n.max(0) as usize)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(metric: &'static str, ord: u8) -> JudgmentKey {
        JudgmentKey {
            metric,
            prompt_id: "p1".into(),
            arm: "a".into(),
            other_arm: "b".into(),
            ord,
            judge: "judge-model".into(),
            judge_prompt: "pairwise.v1".into(),
        }
    }

    #[test]
    fn judgments_survive_a_reopen_and_a_second_writer_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("judgments.sqlite");
        let stored = Stored {
            result: Some(serde_json::json!({"winner": "A"})),
            error: None,
            retryable: false,
            usage: Usage {
                prompt_tokens: 10,
                completion_tokens: 2,
                total_tokens: 12,
                calls: 1,
            },
            elapsed_ms: 5,
        };
        {
            let j = Judgments::open(&path).unwrap();
            assert!(matches!(
                Judgments::open(&path),
                Err(BatchError::Busy { .. })
            ));
            j.put(&key("pairwise", 0), &stored).unwrap();
            assert_eq!(j.get(&key("pairwise", 1)).unwrap(), None);
        }
        let j = Judgments::open(&path).unwrap();
        assert_eq!(j.get(&key("pairwise", 0)).unwrap(), Some(stored));
        assert_eq!(j.count().unwrap(), 1);
    }
}
