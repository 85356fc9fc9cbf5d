//! Keeping large downloaded images out of the heap while a selection runs.
//!
//! Every candidate's bytes are kept until the ranking has chosen (the reference and its
//! alternates need them, and the memory stores them), so with originals of a few MB each a
//! selection's memory would grow with its number of candidates. A body over
//! [`SPILL_OVER`] is instead written to an unnamed file in the cache directory and mapped
//! back: the process holds its pages only while something reads them.

use std::io::Write;
use std::path::Path;

use bytes::Bytes;

/// Bodies larger than this are spilled (thumbnails, typically a few tens of KiB, are not).
pub(crate) const SPILL_OVER: usize = 256 * 1024;

/// `body` as a memory-mapped unnamed file in `dir` when it is larger than [`SPILL_OVER`];
/// otherwise, or when the file cannot be written, `body` itself (logged at debug level:
/// only memory is at stake, never the result).
pub(crate) fn spill(body: Bytes, dir: &Path) -> Bytes {
    if body.len() <= SPILL_OVER {
        return body;
    }
    match to_file(&body, dir) {
        Ok(mapped) => mapped,
        Err(e) => {
            tracing::debug!(dir = %dir.display(), error = %e, "could not spill an image body; kept in memory");
            body
        }
    }
}

fn to_file(body: &[u8], dir: &Path) -> std::io::Result<Bytes> {
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::tempfile_in(dir)?;
    file.write_all(body)?;
    file.flush()?;
    // SAFETY: the file has no name (no other process or code path can open it), only this
    // function wrote it, and it is never written or truncated again while mapped; the map
    // is read-only and owned by the returned `Bytes`.
    let map = unsafe { memmap2::Mmap::map(&file)? };
    if map.len() != body.len() {
        return Err(std::io::Error::other(
            "the spilled file is shorter than the body",
        ));
    }
    Ok(Bytes::from_owner(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_bodies_are_mapped_from_disk_and_small_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let big = Bytes::from(
            (0..SPILL_OVER + 4097)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<_>>(),
        );
        let spilled = spill(big.clone(), &dir.path().join("spill"));
        assert_eq!(spilled, big, "same content");
        assert_ne!(spilled.as_ptr(), big.as_ptr(), "no longer the heap buffer");
        // Unnamed: nothing is left behind in the folder.
        assert_eq!(
            std::fs::read_dir(dir.path().join("spill")).unwrap().count(),
            0
        );

        let small = Bytes::from(vec![7u8; 1000]);
        let kept = spill(small.clone(), dir.path());
        assert_eq!(kept.as_ptr(), small.as_ptr(), "small bodies are not copied");

        // A folder that cannot be created: the body stays in memory, unchanged.
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let kept = spill(big.clone(), &blocker.join("spill"));
        assert_eq!(kept.as_ptr(), big.as_ptr());
    }
}
