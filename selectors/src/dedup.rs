//! Stage 3: near-duplicate removal with a perceptual hash.
//!
//! The same photo served at other sizes (or lightly cropped or re-compressed) by other sites
//! hashes to nearly the same 64 bits. Each group of near-duplicates collapses to its largest
//! member (ties: the better-ranked one), and the others are dropped with the URL they
//! duplicate.

use image_hasher::ImageHash;

/// One item to deduplicate: its perceptual hash, pixel count and prefilter position.
#[derive(Debug, Clone)]
pub(crate) struct DedupItem<'a> {
    pub hash: &'a ImageHash,
    pub pixels: u64,
    pub order: usize,
}

/// Returns, for each item, `None` when it is kept or `Some((kept_index, distance))` naming
/// the kept item it duplicates.
pub(crate) fn dedup(items: &[DedupItem<'_>], threshold: u32) -> Vec<Option<(usize, u32)>> {
    let mut by_preference: Vec<usize> = (0..items.len()).collect();
    by_preference.sort_by(|&a, &b| {
        let (ia, ib) = (&items[a], &items[b]);
        ib.pixels.cmp(&ia.pixels).then(ia.order.cmp(&ib.order))
    });
    let mut kept: Vec<usize> = Vec::new();
    let mut verdict = vec![None; items.len()];
    for i in by_preference {
        let hash = items[i].hash;
        let twin = kept
            .iter()
            .map(|&k| (k, items[k].hash.dist(hash)))
            .filter(|&(_, d)| d <= threshold)
            .min_by_key(|&(_, d)| d);
        match twin {
            Some(t) => verdict[i] = Some(t),
            None => kept.push(i),
        }
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{DynamicImage, RgbImage};
    use image_hasher::{HashAlg, HasherConfig};

    fn scene(seed: u32, w: u32, h: u32) -> DynamicImage {
        DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            let v = ((fx * (3 + seed) as f32).sin() + (fy * (2 + seed * 2) as f32).cos()) * 60.0;
            image::Rgb([
                (128.0 + v) as u8,
                (100.0 + v * 0.5) as u8,
                (90 + seed * 20) as u8,
            ])
        }))
    }

    #[test]
    fn resized_and_cropped_copies_collapse_to_the_largest() {
        let hasher = HasherConfig::new()
            .hash_size(8, 8)
            .hash_alg(HashAlg::Gradient)
            .to_hasher();
        let big = scene(1, 800, 600);
        let small = big.resize_exact(200, 150, image::imageops::FilterType::Triangle);
        let cropped = big.crop_imm(10, 8, 780, 585);
        let other = scene(4, 800, 600);
        let hashes: Vec<_> = [&small, &big, &cropped, &other]
            .iter()
            .map(|i| hasher.hash_image(*i))
            .collect();
        let items: Vec<DedupItem> = hashes
            .iter()
            .zip([&small, &big, &cropped, &other])
            .enumerate()
            .map(|(order, (hash, img))| DedupItem {
                hash,
                pixels: u64::from(img.width()) * u64::from(img.height()),
                order,
            })
            .collect();
        let v = dedup(&items, 10);
        assert_eq!(v[1], None, "the largest copy is kept");
        assert_eq!(v[0].map(|t| t.0), Some(1));
        assert_eq!(v[2].map(|t| t.0), Some(1));
        assert_eq!(v[3], None, "a different picture is kept");
    }
}
