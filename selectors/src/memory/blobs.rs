//! A content-addressed cache of image bytes on disk, with a size cap and least-recently-used
//! eviction.
//!
//! A blob lives at `<dir>/<first two hex digits>/<sha256 hex>`; its modification time is
//! its last use. Reads check the content against the name, so a corrupt or truncated blob
//! is removed and reported as missing (the caller fetches the image again), never returned.
//! Writes go to a temporary file renamed into place, so a reader in another process never
//! sees half a blob.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use bytes::Bytes;
use sha2::{Digest, Sha256};

/// The SHA-256 of `data`, in lower-case hex.
pub fn content_hash(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[derive(Debug, Default)]
struct Index {
    total: u64,
    entries: HashMap<String, (u64, SystemTime)>,
}

/// The blob cache (see the module documentation).
#[derive(Debug)]
pub struct BlobCache {
    dir: PathBuf,
    cap: u64,
    index: Mutex<Option<Index>>,
}

/// What the cache holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobStats {
    /// Number of blobs.
    pub count: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// The size cap in bytes.
    pub cap: u64,
}

fn valid_name(hash: &str) -> bool {
    hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit())
}

impl BlobCache {
    /// A cache under `dir` holding at most `cap` bytes (created when first written).
    pub fn new(dir: impl Into<PathBuf>, cap: u64) -> Self {
        BlobCache {
            dir: dir.into(),
            cap,
            index: Mutex::new(None),
        }
    }

    /// The directory the blobs live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, hash: &str) -> PathBuf {
        self.dir.join(&hash[..2]).join(hash)
    }

    fn with_index<T>(&self, f: impl FnOnce(&mut Index) -> T) -> T {
        let mut guard = match self.index.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let index = guard.get_or_insert_with(|| scan(&self.dir));
        f(index)
    }

    /// The bytes stored under `hash`, when present and intact (a corrupt blob is removed).
    pub fn get(&self, hash: &str) -> Option<Bytes> {
        if !valid_name(hash) {
            return None;
        }
        let path = self.path(hash);
        let data = fs::read(&path).ok()?;
        if content_hash(&data) != hash {
            tracing::warn!(path = %path.display(), "corrupt blob removed; the image will be fetched again");
            let _ = fs::remove_file(&path);
            self.with_index(|ix| {
                if let Some((size, _)) = ix.entries.remove(hash) {
                    ix.total = ix.total.saturating_sub(size);
                }
            });
            return None;
        }
        let now = SystemTime::now();
        if let Ok(f) = File::options().write(true).open(&path) {
            let _ = f.set_modified(now);
        }
        let size = data.len() as u64;
        self.with_index(|ix| {
            if ix.entries.insert(hash.to_string(), (size, now)).is_none() {
                ix.total += size;
            }
        });
        Some(Bytes::from(data))
    }

    /// Store `data` and return its hash; evicts the least recently used blobs beyond the cap.
    pub fn put(&self, data: &[u8]) -> std::io::Result<String> {
        let hash = content_hash(data);
        let path = self.path(&hash);
        let size = data.len() as u64;
        let now = SystemTime::now();
        if path.is_file() {
            if let Ok(f) = File::options().write(true).open(&path) {
                let _ = f.set_modified(now);
            }
        } else {
            let parent = self.dir.join(&hash[..2]);
            fs::create_dir_all(&parent)?;
            let tmp = tempfile::NamedTempFile::new_in(&parent)?;
            tmp.as_file().write_all(data)?;
            tmp.persist(&path).map_err(|e| e.error)?;
        }
        let over = self.with_index(|ix| {
            if ix.entries.insert(hash.clone(), (size, now)).is_none() {
                ix.total += size;
            }
            ix.total > self.cap
        });
        if over {
            self.evict(&hash);
        }
        Ok(hash)
    }

    /// Remove `hash`'s blob (a no-op when absent).
    pub fn remove(&self, hash: &str) {
        if !valid_name(hash) {
            return;
        }
        let _ = fs::remove_file(self.path(hash));
        self.with_index(|ix| {
            if let Some((size, _)) = ix.entries.remove(hash) {
                ix.total = ix.total.saturating_sub(size);
            }
        });
    }

    /// Evict least recently used blobs (never `keep`, the one just written) until the
    /// total is at most 90% of the cap.
    fn evict(&self, keep: &str) {
        let target = self.cap / 10 * 9;
        self.with_index(|ix| {
            let mut by_age: Vec<(SystemTime, String, u64)> = ix
                .entries
                .iter()
                .filter(|(h, _)| h.as_str() != keep)
                .map(|(h, (size, t))| (*t, h.clone(), *size))
                .collect();
            by_age.sort();
            for (_, hash, size) in by_age {
                if ix.total <= target {
                    break;
                }
                let _ = fs::remove_file(self.dir.join(&hash[..2]).join(&hash));
                ix.entries.remove(&hash);
                ix.total = ix.total.saturating_sub(size);
            }
        });
    }

    /// How many blobs, how many bytes, and the cap.
    pub fn stats(&self) -> BlobStats {
        self.with_index(|ix| BlobStats {
            count: ix.entries.len() as u64,
            bytes: ix.total,
            cap: self.cap,
        })
    }
}

/// Read what is on disk (blobs left by earlier runs count towards the cap).
fn scan(dir: &Path) -> Index {
    let mut index = Index::default();
    let Ok(shards) = fs::read_dir(dir) else {
        return index;
    };
    for shard in shards.filter_map(Result::ok) {
        let Ok(files) = fs::read_dir(shard.path()) else {
            continue;
        };
        for file in files.filter_map(Result::ok) {
            let name = file.file_name().to_string_lossy().into_owned();
            if !valid_name(&name) {
                continue;
            }
            let Ok(meta) = file.metadata() else { continue };
            let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            index.total += meta.len();
            index.entries.insert(name, (meta.len(), used));
        }
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(i: u8) -> Vec<u8> {
        vec![i; 1000]
    }

    #[test]
    fn stays_under_its_cap_and_evicts_the_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path(), 5_000);
        let first = cache.put(&blob(0)).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let mut hashes = vec![first.clone()];
        for i in 1..5u8 {
            hashes.push(cache.put(&blob(i)).unwrap());
            std::thread::sleep(Duration::from_millis(20));
        }
        // Reading the oldest makes it the most recently used.
        assert_eq!(cache.get(&first).as_deref(), Some(&blob(0)[..]));
        std::thread::sleep(Duration::from_millis(20));
        for i in 5..12u8 {
            cache.put(&blob(i)).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            assert!(cache.stats().bytes <= 5_000, "{:?}", cache.stats());
        }
        assert!(
            cache.get(&hashes[1]).is_none(),
            "the least recently used went first"
        );
        let on_disk: u64 = walk(dir.path())
            .iter()
            .map(|p| p.metadata().unwrap().len())
            .sum();
        assert!(on_disk <= 5_000, "{on_disk} bytes on disk");
        // A new cache over the same directory counts what is there.
        let again = BlobCache::new(dir.path(), 5_000);
        assert_eq!(again.stats().bytes, on_disk);
    }

    #[test]
    fn corrupt_blobs_are_removed_not_returned() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path(), 1 << 20);
        let h = cache.put(b"image bytes").unwrap();
        assert_eq!(h, content_hash(b"image bytes"));
        fs::write(cache.path(&h), b"image byteZ").unwrap();
        assert!(cache.get(&h).is_none());
        assert!(!cache.path(&h).exists(), "removed so it is fetched again");
        assert!(
            cache.get("../../etc/passwd").is_none(),
            "only hash names are read"
        );
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                out.extend(walk(&e.path()));
            } else {
                out.push(e.path());
            }
        }
        out
    }

    use std::time::Duration;
}
