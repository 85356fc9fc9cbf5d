//! The runs' reports and images, kept in one SQLite file under the state directory
//! (`reports.sqlite`): one row per run, written once, read by `/v1/reports/{id}` and the
//! report page. One file instead of a folder per run: creating thousands of small files
//! a minute was the server's largest cost under load.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

/// A kept run.
pub struct Kept {
    /// The pipeline that ran.
    pub model: String,
    /// Its estimated cost.
    pub cost_usd: Option<f64>,
    /// The report, as JSON.
    pub report: Vec<u8>,
    /// The image and its MIME type, when the run made one.
    pub image: Option<(Vec<u8>, String)>,
}

/// The store.
#[derive(Clone)]
pub struct Reports {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for Reports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reports").finish_non_exhaustive()
    }
}

impl Reports {
    /// Open (or create) `dir/reports.sqlite`.
    pub fn open(dir: &Path) -> rusqlite::Result<Self> {
        let conn = Connection::open(dir.join("reports.sqlite"))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // A report lost with the machine's power is not money: no flush per run.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS reports (
                id TEXT PRIMARY KEY, created INTEGER NOT NULL, model TEXT NOT NULL,
                cost_usd REAL, report BLOB NOT NULL, image BLOB, mime TEXT)",
        )?;
        Ok(Reports {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> rusqlite::Result<T> {
        let conn = match self.conn.lock() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        f(&conn)
    }

    /// Keep run `id` (blocking).
    pub fn put(&self, id: &str, created: u64, kept: &Kept) -> rusqlite::Result<()> {
        let (image, mime) = match &kept.image {
            Some((b, m)) => (Some(b.as_slice()), Some(m.as_str())),
            None => (None, None),
        };
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO reports (id, created, model, cost_usd, report, image, mime)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    id,
                    created as i64,
                    kept.model,
                    kept.cost_usd,
                    kept.report,
                    image,
                    mime
                ],
            )
            .map(|_| ())
        })
    }

    /// Run `id`, when kept (blocking).
    pub fn get(&self, id: &str) -> rusqlite::Result<Option<Kept>> {
        self.with(|c| {
            c.query_row(
                "SELECT model, cost_usd, report, image, mime FROM reports WHERE id = ?1",
                [id],
                |r| {
                    let image: Option<Vec<u8>> = r.get(3)?;
                    let mime: Option<String> = r.get(4)?;
                    Ok(Kept {
                        model: r.get(0)?,
                        cost_usd: r.get(1)?,
                        report: r.get(2)?,
                        image: image.zip(mime),
                    })
                },
            )
            .optional()
        })
    }
}
