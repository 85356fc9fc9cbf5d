//! Spreading a manifest over N machines: job `id` belongs to shard
//! `1 + hash(id) mod N`, so adding or removing jobs never moves another job.

use sha2::{Digest, Sha256};

use super::BatchError;

/// Shard K of N (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, 1..=count.
    pub index: u32,
    /// How many shards.
    pub count: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Shard { index: 1, count: 1 }
    }
}

impl Shard {
    /// Parse `K/N` (1-based).
    pub fn parse(s: &str) -> Result<Shard, BatchError> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| BatchError::Shard(format!("{s:?} is not K/N, e.g. 2/4")))?;
        let k: u32 = k
            .trim()
            .parse()
            .map_err(|_| BatchError::Shard(format!("{k:?} is not a number")))?;
        let n: u32 = n
            .trim()
            .parse()
            .map_err(|_| BatchError::Shard(format!("{n:?} is not a number")))?;
        if n == 0 || k == 0 || k > n {
            return Err(BatchError::Shard(format!(
                "{k}/{n}: K must be between 1 and N (shards are numbered from 1)"
            )));
        }
        Ok(Shard { index: k, count: n })
    }

    /// From a Kubernetes Indexed Job: `JOB_COMPLETION_INDEX` (0-based) and the shard
    /// count the manifest passes in (`count`). `None` when the index is unset.
    pub fn from_completion_index(
        index: Option<&str>,
        count: Option<&str>,
    ) -> Result<Option<Shard>, BatchError> {
        let Some(index) = index else {
            return Ok(None);
        };
        let i: u32 = index.trim().parse().map_err(|_| {
            BatchError::Shard(format!("JOB_COMPLETION_INDEX {index:?} is not a number"))
        })?;
        let count = count.ok_or_else(|| {
            BatchError::Shard(
                "JOB_COMPLETION_INDEX is set but the shard count is not: pass --shard-count \
                 or set IAT2I_SHARD_COUNT to the Job's completions"
                    .into(),
            )
        })?;
        Shard::parse(&format!("{}/{}", i + 1, count.trim())).map(Some)
    }

    /// The shard job `id` belongs to (1-based).
    pub fn of(id: &str, count: u32) -> u32 {
        let digest = Sha256::digest(id.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        (u64::from_be_bytes(first) % u64::from(count.max(1))) as u32 + 1
    }

    /// Whether job `id` is this shard's.
    pub fn owns(&self, id: &str) -> bool {
        Shard::of(id, self.count) == self.index
    }

    /// The shard count a journal's file name says (`journal.sqlite`: 1,
    /// `journal-K-of-N.sqlite`: N); `None` for other names.
    pub fn count_of_journal(name: &str) -> Option<u32> {
        if name == "journal.sqlite" {
            return Some(1);
        }
        let rest = name.strip_prefix("journal-")?.strip_suffix(".sqlite")?;
        let (_, n) = rest.split_once("-of-")?;
        n.parse().ok()
    }

    /// Refuse to run in `out` when it holds journals of a run split into another number
    /// of shards: the two splits would run (and pay for) the same jobs and the summary
    /// would count them twice.
    pub fn check_folder(&self, out: &std::path::Path) -> Result<(), BatchError> {
        for path in super::folder_journals(out)? {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if let Some(found) = Shard::count_of_journal(name)
                && found != self.count
            {
                return Err(BatchError::ShardMix {
                    out: out.to_path_buf(),
                    journal: name.to_string(),
                    found,
                    wanted: self.count,
                });
            }
        }
        Ok(())
    }

    /// The journal's file name for this shard.
    pub fn journal_name(&self) -> String {
        if self.count == 1 {
            "journal.sqlite".into()
        } else {
            format!("journal-{}-of-{}.sqlite", self.index, self.count)
        }
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}
