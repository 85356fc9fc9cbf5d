//! Reciprocal rank fusion and de-duplication of several ranked lists.

use std::collections::HashMap;

use crate::Candidate;

use super::normalize::{dedup_keys, is_rendition};

/// Fuse ranked lists: candidates naming the same image (see
/// [`super::normalize_url`]) become one, scored `Σ 1/(k + rank + 1)` over the lists it
/// appears in (its best rank in each), best first.
pub(crate) fn fuse(lists: Vec<Vec<Candidate>>, k: f64) -> Vec<Candidate> {
    let flat: Vec<(usize, usize, Candidate)> = lists
        .into_iter()
        .enumerate()
        .flat_map(|(l, list)| list.into_iter().enumerate().map(move |(r, c)| (l, r, c)))
        .collect();
    let groups = group(&flat);
    let mut fused: Vec<(f64, usize, Candidate)> = Vec::with_capacity(groups.len());
    for members in groups.into_values() {
        let mut best_in_list: HashMap<usize, usize> = HashMap::new();
        for &i in &members {
            if let Some((l, r, _)) = flat.get(i) {
                let e = best_in_list.entry(*l).or_insert(*r);
                *e = (*e).min(*r);
            }
        }
        let score: f64 = best_in_list
            .values()
            .map(|r| 1.0 / (k + *r as f64 + 1.0))
            .sum();
        let best_rank = best_in_list.values().copied().min().unwrap_or(usize::MAX);
        let group: Vec<&Candidate> = members
            .iter()
            .filter_map(|&i| flat.get(i).map(|f| &f.2))
            .collect();
        if let Some(mut c) = merge(&group) {
            c.fused_score = score;
            fused.push((score, best_rank, c));
        }
    }
    fused.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then(a.1.cmp(&b.1))
            .then_with(|| a.2.engine.cmp(&b.2.engine))
            .then_with(|| a.2.image_url.as_str().cmp(b.2.image_url.as_str()))
    });
    fused.into_iter().map(|(_, _, c)| c).collect()
}

/// Group indices of `flat` whose dedup keys overlap (union-find over shared keys).
fn group(flat: &[(usize, usize, Candidate)]) -> HashMap<usize, Vec<usize>> {
    let mut parent: Vec<usize> = (0..flat.len()).collect();
    fn find(parent: &mut [usize], mut i: usize) -> usize {
        while let Some(&p) = parent.get(i) {
            if p == i {
                break;
            }
            let gp = parent.get(p).copied().unwrap_or(p);
            if let Some(slot) = parent.get_mut(i) {
                *slot = gp;
            }
            i = p;
        }
        i
    }
    let mut owner: HashMap<String, usize> = HashMap::new();
    for (i, (_, _, c)) in flat.iter().enumerate() {
        for key in dedup_keys(&c.image_url, c.thumbnail_url.as_ref()) {
            match owner.get(&key) {
                Some(&j) => {
                    let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                    if a != b
                        && let Some(slot) = parent.get_mut(a.max(b))
                    {
                        *slot = a.min(b);
                    }
                }
                None => {
                    owner.insert(key, i);
                }
            }
        }
    }
    let mut groups: HashMap<usize, Vec<usize>> = HashMap::new();
    for i in 0..flat.len() {
        let root = find(&mut parent, i);
        groups.entry(root).or_default().push(i);
    }
    groups
}

/// One candidate for a group: the best-ranked member, its gaps filled from the others,
/// and an original image URL preferred over a thumbnail or proxy form of it.
fn merge(group: &[&Candidate]) -> Option<Candidate> {
    let first = group.first()?;
    let mut c = (*first).clone();
    for other in group.iter().skip(1) {
        if c.thumbnail_url.is_none() {
            c.thumbnail_url.clone_from(&other.thumbnail_url);
        }
        if c.source_page.is_none() {
            c.source_page.clone_from(&other.source_page);
        }
        if c.title.is_none() {
            c.title.clone_from(&other.title);
        }
        if c.width.is_none() || c.height.is_none() {
            c.width = other.width;
            c.height = other.height;
        }
        if c.mime.is_none() {
            c.mime.clone_from(&other.mime);
        }
        if c.license.is_none() {
            c.license.clone_from(&other.license);
        }
        if c.creator.is_none() {
            c.creator.clone_from(&other.creator);
        }
    }
    if is_rendition(&c.image_url)
        && let Some(orig) = group.iter().find(|o| !is_rendition(&o.image_url))
    {
        if c.thumbnail_url.is_none() {
            c.thumbnail_url = Some(c.image_url.clone());
        }
        c.image_url = orig.image_url.clone();
    }
    Some(c)
}
