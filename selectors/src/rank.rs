//! Stage 4c: CLIP ranking.
//!
//! A candidate's score combines its CLIP similarity to the prompt, its best similarity to
//! any query, its title relevance, a preferred-domain bonus, and (for remembered images)
//! the judge's earlier verdicts on it. Similarities are exact cosines computed in memory.

use crate::config::RankWeights;
use crate::embed::cosine;
use crate::stage::StageScores;

/// One embedded candidate to rank.
pub(crate) struct RankItem<'a> {
    pub vector: &'a [f32],
    pub lexical: f32,
    pub preferred: bool,
    /// The judge's record on this image from the memory (-1..=1), when remembered.
    pub feedback: Option<f32>,
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

/// Score every item exactly: cosine similarity of its vector to the prompt's and the
/// queries' vectors, computed in memory (the vector store is the memory of references, not
/// needed to rank one run). `prompt` is the prompt's vector (when there is a prompt),
/// `queries` the queries' vectors; `feedback_weight` scales each item's judge feedback.
pub(crate) fn rank(
    items: &[RankItem<'_>],
    prompt: Option<&[f32]>,
    queries: &[Vec<f32>],
    weights: &RankWeights,
    feedback_weight: f32,
) -> Vec<StageScores> {
    items
        .iter()
        .map(|it| {
            let p = prompt.map(|v| cosine(it.vector, v));
            let q = queries
                .iter()
                .map(|v| cosine(it.vector, v))
                .reduce(f32::max);
            let mut s = combine(p, q, it, weights);
            if let (Some(f), Some(c)) = (it.feedback, s.combined.as_mut()) {
                *c += feedback_weight * f;
                s.feedback = Some(f);
            }
            s
        })
        .collect()
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
        feedback: None,
    }
}
