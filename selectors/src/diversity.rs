//! Stage 5: diversity by maximal marginal relevance (MMR).
//!
//! Picks, one at a time, the candidate maximising
//! `lambda * relevance - (1 - lambda) * max cosine to those already picked`, so the judge
//! and the pipeline see distinct options rather than five copies of one picture.

use crate::embed::cosine;

/// Choose up to `k` items; returns (item index, MMR score) in pick order.
pub(crate) fn mmr(
    relevance: &[f32],
    vectors: &[&[f32]],
    k: usize,
    lambda: f32,
) -> Vec<(usize, f32)> {
    let n = relevance.len().min(vectors.len());
    let mut picked: Vec<(usize, f32)> = Vec::with_capacity(k.min(n));
    let mut left: Vec<usize> = (0..n).collect();
    while picked.len() < k && !left.is_empty() {
        let mut best: Option<(usize, usize, f32)> = None; // (position in left, item, score)
        for (pos, &i) in left.iter().enumerate() {
            let (Some(rel), Some(v)) = (relevance.get(i), vectors.get(i)) else {
                continue;
            };
            let redundancy = picked
                .iter()
                .filter_map(|(j, _)| vectors.get(*j))
                .map(|w| cosine(v, w))
                .fold(f32::NEG_INFINITY, f32::max);
            let redundancy = if picked.is_empty() { 0.0 } else { redundancy };
            let score = lambda * rel - (1.0 - lambda) * redundancy;
            if best.is_none_or(|(_, _, s)| score > s) {
                best = Some((pos, i, score));
            }
        }
        let Some((pos, i, score)) = best else { break };
        left.swap_remove(pos);
        picked.push((i, score));
    }
    picked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_copies_give_way_to_a_distinct_option() {
        let a = [1.0, 0.0, 0.0];
        let a2 = [0.99, 0.05, 0.0];
        let b = [0.0, 1.0, 0.0];
        let vectors: Vec<&[f32]> = vec![&a, &a2, &b];
        let relevance = [0.9, 0.89, 0.7];
        let picks: Vec<usize> = mmr(&relevance, &vectors, 2, 0.7)
            .iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(
            picks,
            vec![0, 2],
            "the near-copy of the best is passed over"
        );
        let greedy: Vec<usize> = mmr(&relevance, &vectors, 2, 1.0)
            .iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(greedy, vec![0, 1], "lambda 1 is plain relevance order");
    }
}
