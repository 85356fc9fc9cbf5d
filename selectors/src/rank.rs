//! Stage 4c: CLIP ranking through the vector store.
//!
//! Each candidate's image embedding is stored with a payload (run id, query, URL, engine,
//! licence); the prompt's and each query's text embedding then search the store, filtered to
//! the current run. A candidate's score combines its similarity to the prompt, its best
//! similarity to any query, its title relevance and a preferred-domain bonus.

use std::collections::HashMap;

use iat2i_retrievers::Candidate;

use crate::config::RankWeights;
use crate::embed::cosine;
use crate::error::SelectError;
use crate::stage::StageScores;
use crate::store::{PointPayload, StorePoint, VectorStore};

/// One embedded candidate to rank.
pub(crate) struct RankItem<'a> {
    pub candidate: &'a Candidate,
    pub vector: &'a [f32],
    pub lexical: f32,
    pub preferred: bool,
}

/// The texts to embed for a request: the prompt first (when given), then each distinct query.
pub(crate) fn text_inputs(prompt: &str, queries: &[String]) -> Vec<String> {
    let mut texts: Vec<String> = Vec::new();
    let prompt = prompt.trim();
    if !prompt.is_empty() {
        texts.push(prompt.to_string());
    }
    for q in queries {
        let q = q.trim();
        if !q.is_empty() && !texts.iter().any(|t| t == q) {
            texts.push(q.to_string());
        }
    }
    texts
}

/// Store the items under `run_id`, search with the prompt and query vectors, and score.
/// `prompt` is the prompt's vector (when there is a prompt), `queries` the queries' vectors.
pub(crate) async fn rank(
    store: &dyn VectorStore,
    run_id: &str,
    items: &[RankItem<'_>],
    prompt: Option<&[f32]>,
    queries: &[Vec<f32>],
    weights: &RankWeights,
) -> Result<Vec<StageScores>, SelectError> {
    let points = items
        .iter()
        .enumerate()
        .map(|(i, it)| {
            let payload = PointPayload {
                run_id: run_id.to_string(),
                query: it.candidate.query.clone(),
                url: it.candidate.image_url.to_string(),
                engine: it.candidate.engine.clone(),
                license: it.candidate.license.as_ref().map(|l| l.code.clone()),
                index: i as u64,
            };
            StorePoint::new(it.vector.to_vec(), payload)
        })
        .collect();
    store.upsert(points).await?;
    let prompt_scores = match prompt {
        Some(v) => Some(similarities(store, run_id, items, v).await?),
        None => None,
    };
    let mut query_best: Option<Vec<f32>> = None;
    for q in queries {
        let s = similarities(store, run_id, items, q).await?;
        query_best = Some(match query_best {
            None => s,
            Some(best) => best.iter().zip(&s).map(|(a, b)| a.max(*b)).collect(),
        });
    }
    Ok(items
        .iter()
        .enumerate()
        .map(|(i, it)| {
            let p = prompt_scores.as_ref().and_then(|s| s.get(i).copied());
            let q = query_best.as_ref().and_then(|s| s.get(i).copied());
            combine(p, q, it, weights)
        })
        .collect())
}

fn combine(p: Option<f32>, q: Option<f32>, it: &RankItem<'_>, w: &RankWeights) -> StageScores {
    // Without a prompt (or without queries) the other similarity takes both weights.
    let clip = match (p, q) {
        (Some(p), Some(q)) => w.prompt * p + w.query * q,
        (Some(s), None) | (None, Some(s)) => (w.prompt + w.query) * s,
        (None, None) => 0.0,
    };
    let bonus = if it.preferred {
        w.preferred_domain
    } else {
        0.0
    };
    StageScores {
        lexical: Some(it.lexical),
        clip_prompt: p,
        clip_query: q,
        combined: Some(clip + w.lexical * it.lexical + bonus),
        mmr: None,
    }
}

/// Similarity of every item to `vector`, read from the store's run-filtered search (an item
/// the store did not return is scored exactly, so a lossy index never loses a candidate).
async fn similarities(
    store: &dyn VectorStore,
    run_id: &str,
    items: &[RankItem<'_>],
    vector: &[f32],
) -> Result<Vec<f32>, SelectError> {
    let hits = store.search(run_id, vector, items.len()).await?;
    let by_index: HashMap<u64, f32> = hits
        .into_iter()
        .map(|h| (h.payload.index, h.score))
        .collect();
    Ok(items
        .iter()
        .enumerate()
        .map(|(i, it)| {
            by_index
                .get(&(i as u64))
                .copied()
                .unwrap_or_else(|| cosine(it.vector, vector))
        })
        .collect())
}
