//! The judging of an evaluation: checklists written where missing, each arm's images
//! judged (checklist, WiScore, reference agreement), and every pair of arms in both
//! orders; each judgment stored before it is used, and never asked twice.

use std::collections::BTreeMap;

use futures::StreamExt;
use iat2i_selectors::Embedder;

use super::{EvalError, Evaluation};
use crate::batch::Budget;
use crate::eval::judge::Shown;
use crate::eval::judge_prompts::{
    CHECKLIST_V1, CHECKLIST_WRITER_V1, ChecklistReply, JudgePrompt, PAIRWISE_V1, WiScoreJudgment,
    numbered_checklist,
};
use crate::eval::judgments::{JudgmentKey, Judgments, Stored};
use crate::eval::produced::Produced;
use crate::eval::prompts::EvalPrompt;
use crate::eval::report::{Cell, Metric, PairJudgment};

impl Evaluation {
    fn key(
        &self,
        prompt: &JudgePrompt,
        prompt_id: &str,
        arm: &str,
        other: &str,
        ord: u8,
    ) -> JudgmentKey {
        self.key_for(prompt.name, prompt.id(), prompt_id, arm, other, ord)
    }

    /// The key of a WiScore judgment, under the judge prompt in use (built-in or a file).
    fn wiscore_key(&self, prompt_id: &str, arm: &str) -> JudgmentKey {
        let judge_prompt = self.judge.wiscore_prompt_id();
        self.key_for("wiscore", judge_prompt, prompt_id, arm, "", 0)
    }

    fn key_for(
        &self,
        metric: &'static str,
        judge_prompt: String,
        prompt_id: &str,
        arm: &str,
        other: &str,
        ord: u8,
    ) -> JudgmentKey {
        JudgmentKey {
            metric,
            prompt_id: prompt_id.to_string(),
            arm: arm.to_string(),
            other_arm: other.to_string(),
            ord,
            judge: self.judge.name(),
            judge_prompt,
            images: String::new(),
            input: String::new(),
        }
    }

    /// A stored judgment, or a new one from `ask` (stored before it is returned).
    async fn judged<F>(
        &self,
        store: &Judgments,
        budget: &Budget,
        key: JudgmentKey,
        ask: F,
    ) -> Result<Stored, EvalError>
    where
        F: std::future::Future<Output = Stored>,
    {
        if let Some(s) = store.get(&key)?
            && (s.result.is_some() || !s.retryable)
        {
            return Ok(s);
        }
        if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(missing("stopped before this judgment"));
        }
        if let Err(halt) = budget.may_start().await {
            return Ok(missing(&format!("not judged: {halt}")));
        }
        let s = ask.await;
        budget.record_chat(&s.usage);
        store.put(&key, &s)?;
        Ok(s)
    }

    /// Every prompt's checklist: its own, or one the judge writes (stored, so reused).
    pub(super) async fn checklists(
        &self,
        store: &Judgments,
        budget: &Budget,
    ) -> Result<BTreeMap<String, Vec<String>>, EvalError> {
        let mut out = BTreeMap::new();
        let wanted = self.config.metrics.contains(&Metric::Checklist);
        for p in &self.prompts.prompts {
            if !p.checklist.is_empty() || !wanted {
                out.insert(p.id.clone(), p.checklist.clone());
                continue;
            }
            let explanation = p.explanation.clone().unwrap_or_default();
            let key = self
                .key(&CHECKLIST_WRITER_V1, &p.id, "", "", 0)
                .about(&[], &[&p.prompt, &explanation]);
            let s = self
                .judged(
                    store,
                    budget,
                    key,
                    self.judge.write_checklist(&p.prompt, &explanation),
                )
                .await?;
            let items: Vec<String> = s
                .result
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default();
            out.insert(p.id.clone(), items);
        }
        Ok(out)
    }

    /// Checklist, WiScore and reference agreement of every arm's image of every prompt.
    pub(super) async fn judge_all(
        &self,
        store: &Judgments,
        budget: &Budget,
        produced: &BTreeMap<String, BTreeMap<String, Produced>>,
        checklists: &BTreeMap<String, Vec<String>>,
    ) -> Result<BTreeMap<(String, String), Cell>, EvalError> {
        let mut work = Vec::new();
        for arm in &self.arms {
            for p in &self.prompts.prompts {
                work.push((arm.name.clone(), p));
            }
        }
        let results = futures::stream::iter(work)
            .map(|(arm, p)| async move {
                let item = produced.get(&arm).and_then(|m| m.get(&p.id));
                let cell = self
                    .judge_cell(store, budget, &arm, p, item, checklists.get(&p.id))
                    .await;
                cell.map(|c| ((arm, p.id.clone()), c))
            })
            .buffer_unordered(self.config.judge_concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        results.into_iter().collect()
    }

    async fn judge_cell(
        &self,
        store: &Judgments,
        budget: &Budget,
        arm: &str,
        p: &EvalPrompt,
        item: Option<&Produced>,
        checklist: Option<&Vec<String>>,
    ) -> Result<Cell, EvalError> {
        let mut cell = Cell::default();
        let Some(image) = item.and_then(|i| i.image.clone()) else {
            cell.error = Some(
                item.and_then(|i| i.missing.clone())
                    .unwrap_or_else(|| "no image".into()),
            );
            return Ok(cell);
        };
        let explanation = p.explanation.clone().unwrap_or_default();
        if self.config.metrics.contains(&Metric::Checklist)
            && let Some(list) = checklist.filter(|l| !l.is_empty())
        {
            let numbered = numbered_checklist(list);
            let key = self
                .key(&CHECKLIST_V1, &p.id, arm, "", 0)
                .about(&[&image.bytes], &[&p.prompt, &numbered]);
            let s = self
                .judged(
                    store,
                    budget,
                    key,
                    self.judge.checklist(&p.prompt, list, &image),
                )
                .await?;
            cell.checklist = s
                .result
                .as_ref()
                .and_then(|v| serde_json::from_value::<ChecklistReply>(v.clone()).ok())
                .and_then(|r| r.score());
            cell.judged(&s);
        }
        if self.config.metrics.contains(&Metric::WiScore) {
            let key = self
                .wiscore_key(&p.id, arm)
                .about(&[&image.bytes], &[&p.prompt, &explanation]);
            let s = self
                .judged(
                    store,
                    budget,
                    key,
                    self.judge.wiscore(&p.prompt, &explanation, &image),
                )
                .await?;
            cell.wiscore = s
                .result
                .as_ref()
                .and_then(|v| serde_json::from_value::<WiScoreJudgment>(v.clone()).ok())
                .map(|r| r.score());
            cell.judged(&s);
        }
        if self.config.metrics.contains(&Metric::ReferenceAgreement)
            && let (Some(embedder), Some(reference)) =
                (&self.embedder, item.and_then(|i| i.reference.clone()))
        {
            cell.reference_agreement = agreement(embedder.as_ref(), &image, &reference).await;
        }
        Ok(cell)
    }

    /// Every pair of arms on every prompt, judged in both orders.
    pub(super) async fn judge_pairs(
        &self,
        store: &Judgments,
        budget: &Budget,
        produced: &BTreeMap<String, BTreeMap<String, Produced>>,
    ) -> Result<Vec<PairJudgment>, EvalError> {
        if !self.config.metrics.contains(&Metric::Pairwise) {
            return Ok(Vec::new());
        }
        let mut work = Vec::new();
        for (i, a) in self.arms.iter().enumerate() {
            for b in &self.arms[i + 1..] {
                for p in &self.prompts.prompts {
                    work.push((a.name.clone(), b.name.clone(), p));
                }
            }
        }
        let results = futures::stream::iter(work)
            .map(|(a, b, p)| async move {
                let image = |arm: &str| {
                    produced
                        .get(arm)
                        .and_then(|m| m.get(&p.id))
                        .and_then(|x| x.image.clone())
                };
                let mut j = PairJudgment {
                    prompt_id: p.id.clone(),
                    a: a.clone(),
                    b: b.clone(),
                    ..PairJudgment::default()
                };
                let (Some(ia), Some(ib)) = (image(&a), image(&b)) else {
                    j.error = Some("an arm has no image for this prompt".into());
                    return Ok(j);
                };
                let first = self
                    .judged(
                        store,
                        budget,
                        self.key(&PAIRWISE_V1, &p.id, &a, &b, 0)
                            .about(&[&ia.bytes, &ib.bytes], &[&p.prompt]),
                        self.judge.pairwise(&p.prompt, &ia, &ib),
                    )
                    .await?;
                let swapped = self
                    .judged(
                        store,
                        budget,
                        self.key(&PAIRWISE_V1, &p.id, &a, &b, 1)
                            .about(&[&ib.bytes, &ia.bytes], &[&p.prompt]),
                        self.judge.pairwise(&p.prompt, &ib, &ia),
                    )
                    .await?;
                j.set(first, swapped);
                Ok::<_, EvalError>(j)
            })
            .buffer_unordered(self.config.judge_concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        let mut out: Vec<PairJudgment> = results.into_iter().collect::<Result<_, _>>()?;
        out.sort_by(|x, y| (&x.a, &x.b, &x.prompt_id).cmp(&(&y.a, &y.b, &y.prompt_id)));
        Ok(out)
    }
}

fn missing(why: &str) -> Stored {
    Stored {
        result: None,
        error: Some(why.to_string()),
        retryable: true,
        usage: Default::default(),
        elapsed_ms: 0,
    }
}

/// CLIP image-image cosine similarity of the generated image and its reference.
async fn agreement(embedder: &dyn Embedder, image: &Shown, reference: &Shown) -> Option<f64> {
    let a = image::load_from_memory(&image.bytes).ok()?;
    let b = image::load_from_memory(&reference.bytes).ok()?;
    match embedder.embed_images(vec![a, b]).await {
        Ok(v) if v.len() == 2 => Some(f64::from(iat2i_selectors::embed::cosine(&v[0], &v[1]))),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, "reference agreement: embedding failed");
            None
        }
    }
}
