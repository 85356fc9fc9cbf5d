//! Stages 5 and 6: diversity, the judge hook, and the assembled [`Selection`].

use std::time::Instant;

use crate::collect::Survivor;
use crate::config::SelectorConfig;
use crate::diversity::mmr;
use crate::error::SelectError;
use crate::run::{Run, ms};
use crate::stage::{RankedCandidate, Stage, StageScores};
use crate::types::{
    CandidateJudge, JudgeCandidate, Reference, ReferenceSource, Selection, SelectionRequest,
};

/// Order by combined score, keep distinct options, let the judge pick, and build the result.
pub(crate) async fn finish(
    cfg: &SelectorConfig,
    judge_hook: Option<&dyn CandidateJudge>,
    request: &SelectionRequest,
    survivors: Vec<Survivor>,
    mut scores: Vec<StageScores>,
    mut run: Run,
) -> Result<Selection, SelectError> {
    let started = Instant::now();
    let (order, picks) = diversify(&survivors, &mut scores, cfg.top_k, cfg.mmr_lambda);
    run.stage(Stage::Diversity, survivors.len(), picks.len(), ms(started));

    let started = Instant::now();
    let (chosen, judge_reason) = judge(cfg, judge_hook, request, &survivors, &picks).await;
    if let Some(reason) = &judge_reason {
        tracing::info!(%reason, "candidate judge");
    }
    let shown = picks.len().min(cfg.judge_top_k);
    if judge_hook.is_some() {
        run.stage(Stage::Judge, shown, 1, ms(started));
    }

    let reference = |i: usize| reference(&survivors, &scores, i);
    let Some(best) = picks.get(chosen).and_then(|&i| reference(i)) else {
        return Err(run.fail());
    };
    let alternates = picks
        .iter()
        .enumerate()
        .filter(|(k, _)| *k != chosen)
        .filter_map(|(_, &i)| reference(i))
        .collect();
    let ranked = order
        .iter()
        .filter_map(|&i| {
            let s = survivors.get(i)?;
            Some(RankedCandidate {
                candidate: s.item.candidate.clone(),
                scores: scores.get(i).cloned().unwrap_or_default(),
                width: s.width,
                height: s.height,
            })
        })
        .collect();
    Ok(Selection {
        best,
        alternates,
        ranked,
        dropped: run.dropped,
        stages: run.stages,
        judge_reason,
        memory: Default::default(),
    })
}

fn reference(survivors: &[Survivor], scores: &[StageScores], i: usize) -> Option<Reference> {
    let s = survivors.get(i)?;
    Some(Reference {
        bytes: s.bytes.clone(),
        source: if s.original {
            ReferenceSource::Original
        } else {
            ReferenceSource::Thumbnail
        },
        source_note: None,
        mime: s.mime.clone(),
        width: s.width,
        height: s.height,
        candidate: s.item.candidate.clone(),
        scores: scores.get(i).cloned().unwrap_or_default(),
    })
}

/// All survivors best first, and the MMR picks (indices into `survivors`), recording MMR scores.
fn diversify(
    survivors: &[Survivor],
    scores: &mut [StageScores],
    top_k: usize,
    lambda: f32,
) -> (Vec<usize>, Vec<usize>) {
    let combined = |i: usize| scores.get(i).and_then(|s| s.combined).unwrap_or(f32::MIN);
    let mut order: Vec<usize> = (0..survivors.len()).collect();
    order.sort_by(|&a, &b| combined(b).total_cmp(&combined(a)));
    let relevance: Vec<f32> = order.iter().map(|&i| combined(i)).collect();
    let vectors: Vec<&[f32]> = order
        .iter()
        .filter_map(|&i| survivors.get(i).map(|s| s.vector.as_slice()))
        .collect();
    let picks = mmr(&relevance, &vectors, top_k, lambda)
        .into_iter()
        .filter_map(|(pos, score)| {
            let i = *order.get(pos)?;
            if let Some(s) = scores.get_mut(i) {
                s.mmr = Some(score);
            }
            Some(i)
        })
        .collect();
    (order, picks)
}

/// Position (within `picks`) of the chosen candidate, and the judge's reason when a judge ran.
/// A failing or confused judge falls back to CLIP's top-1, and the reason says so.
async fn judge(
    cfg: &SelectorConfig,
    judge: Option<&dyn CandidateJudge>,
    request: &SelectionRequest,
    survivors: &[Survivor],
    picks: &[usize],
) -> (usize, Option<String>) {
    let Some(judge) = judge else {
        return (0, None);
    };
    let options: Vec<JudgeCandidate> = picks
        .iter()
        .take(cfg.judge_top_k)
        .filter_map(|&i| survivors.get(i))
        .map(|s| JudgeCandidate {
            candidate: s.item.candidate.clone(),
            image: s.bytes.clone(),
            mime: s.mime.clone(),
        })
        .collect();
    if options.len() < 2 {
        return (
            0,
            Some("only one candidate left; the judge was not asked".into()),
        );
    }
    match judge.pick(request, &options).await {
        Ok(pick) if pick.index < options.len() => (pick.index, Some(pick.reason)),
        Ok(pick) => (
            0,
            Some(format!(
                "the judge picked option {} of {}; fell back to CLIP's top-1",
                pick.index,
                options.len()
            )),
        ),
        Err(e) => (
            0,
            Some(format!("the judge failed ({e}); fell back to CLIP's top-1")),
        ),
    }
}
