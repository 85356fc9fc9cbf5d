//! The judgments of an evaluation, kept in SQLite (`<out>/judgments.sqlite`) so that an
//! interrupted evaluation resumes without asking any judge twice.
//!
//! A judgment is keyed by what determines it: the metric, the prompt id, the arm (or the
//! two arms and their order, for a pairwise judgment), the judge model, the judge prompt's
//! version, the SHA-256 of every image shown (in the order shown) and of the text the
//! judge reads (the prompt, its explanation and checklist). A new image, a rewritten
//! prompt, a new judge or a new prompt version judges again; the same ones never do.
//! Databases written before the images and the text were part of the key are still
//! read: their keys simply never match, so their images are judged again once.
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
    at INTEGER NOT NULL DEFAULT 0,
    images TEXT NOT NULL DEFAULT '',
    input TEXT NOT NULL DEFAULT ''
);
";

/// Columns added since the first schema, with their definitions (added to older files).
const ADDED: [(&str, &str); 2] = [
    ("images", "TEXT NOT NULL DEFAULT ''"),
    ("input", "TEXT NOT NULL DEFAULT ''"),
];

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
    /// The SHA-256 (hex) of each image shown, in the order shown, comma-separated (empty
    /// for the checklist writer).
    pub images: String,
    /// The SHA-256 (hex) of the text the judge reads besides its instructions: the prompt,
    /// its explanation, the checklist.
    pub input: String,
}

impl JudgmentKey {
    /// The same key about these images (hashed) and these texts (hashed together).
    pub fn about(mut self, images: &[&[u8]], texts: &[&str]) -> Self {
        use sha2::{Digest, Sha256};
        let hex = |d: &[u8]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        self.images = images
            .iter()
            .map(|b| hex(&Sha256::digest(b)))
            .collect::<Vec<_>>()
            .join(",");
        let mut h = Sha256::new();
        for t in texts {
            // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
            h.update((t.len() as u64).to_le_bytes());
            h.update(t.as_bytes());
        }
        self.input = hex(&h.finalize());
        self
    }

    fn text(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}|{}|{}|{}",
            self.metric,
            self.prompt_id,
            self.arm,
            self.other_arm,
            self.ord,
            self.judge,
            self.judge_prompt,
            self.images,
            self.input
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
        let store = Judgments {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
            _lock: lock,
        };
        store.with(migrate)?;
        Ok(store)
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
                 elapsed_ms, at, images, input) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,
                 ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
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
                    now,
                    key.images,
                    key.input
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

/// Add the columns a file written by an older version lacks (its rows keep their old keys,
/// which new keys never match).
fn migrate(c: &Connection) -> rusqlite::Result<()> {
    let mut have = Vec::new();
    let mut stmt = c.prepare("PRAGMA table_info(judgments)")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        have.push(r.get::<_, String>(1)?);
    }
    for (name, def) in ADDED {
        if !have.iter().any(|h| h == name) {
            c.execute_batch(&format!("ALTER TABLE judgments ADD COLUMN {name} {def}"))?;
        }
    }
    Ok(())
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
            images: String::new(),
            input: String::new(),
        }
        .about(&[b"image a", b"image b"], &["a prompt"])
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
        assert_eq!(j.get(&key("pairwise", 0)).unwrap(), Some(stored.clone()));
        assert_eq!(j.count().unwrap(), 1);
        let other_image = key("pairwise", 0).about(&[b"image a", b"image c"], &["a prompt"]);
        assert_eq!(j.get(&other_image).unwrap(), None, "another image");
        let other_text = key("pairwise", 0).about(&[b"image a", b"image b"], &["rewritten"]);
        assert_eq!(j.get(&other_text).unwrap(), None, "another prompt text");
    }

    #[test]
    fn an_old_database_opens_and_its_keys_never_match() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("judgments.sqlite");
        {
            let c = Connection::open(&path).unwrap();
            let old = SCHEMA.replace(
                ",\n    images TEXT NOT NULL DEFAULT '',\n    input TEXT NOT NULL DEFAULT ''",
                "",
            );
            assert!(
                !old.contains("images"),
                "the old schema has no image column"
            );
            c.execute_batch(&old).unwrap();
            c.execute(
                "INSERT INTO judgments (key, metric, prompt_id, arm, judge, judge_prompt, result)
                 VALUES ('wiscore|p1|a||0|judge-model|wiscore.v1', 'wiscore', 'p1', 'a',
                 'judge-model', 'wiscore.v1', '{\"consistency\": 2}')",
                [],
            )
            .unwrap();
        }
        let j = Judgments::open(&path).unwrap();
        assert_eq!(j.count().unwrap(), 1, "old rows are kept");
        let mut k = key("wiscore", 0);
        (k.other_arm, k.judge_prompt) = (String::new(), "wiscore.v1".into());
        let k = k.about(&[b"image a"], &["a prompt"]);
        assert_eq!(j.get(&k).unwrap(), None, "an old key never matches");
        let stored = Stored {
            result: Some(serde_json::json!({"consistency": 1})),
            error: None,
            retryable: false,
            usage: Usage {
                calls: 1,
                ..Usage::default()
            },
            elapsed_ms: 1,
        };
        j.put(&k, &stored).unwrap();
        assert_eq!(j.get(&k).unwrap(), Some(stored));
    }
}
