//! An LMM that picks the most instructive reference among the selector's top candidates.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use iat2i_selectors::{CandidateJudge, JudgeCandidate, JudgePick, SelectError, SelectionRequest};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::lmm::{Lmm, Message, Usage, chat_json};

/// A [`CandidateJudge`] that shows a vision LMM the top-k thumbnails with the prompt
/// and asks which one best shows what the prompt needs.
///
/// One judge serves every run of a pipeline, concurrently; the tokens it spends are
/// counted per run (by [`SelectionRequest::run_id`]) and taken by the run's report.
#[derive(Debug, Clone)]
pub struct LmmCandidateJudge {
    lmm: Arc<dyn Lmm>,
    usage: Arc<Mutex<HashMap<String, Usage>>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct WirePick {
    /// Zero-based index of the chosen image.
    index: u32,
    /// Why this one, in a sentence.
    reason: String,
}

const PICK_SYSTEM: &str = "You choose a reference image for an image generator. You see \
numbered candidate images found on the web for a prompt. Pick the one that shows the named \
entities most clearly and correctly (the right thing, whole, unobstructed, not a collage, \
not text-heavy, not a different thing with the same name). Answer with its zero-based index \
and a one-sentence reason.";

impl LmmCandidateJudge {
    /// A judge asking `lmm` (it must accept images).
    pub fn new(lmm: Arc<dyn Lmm>) -> Self {
        LmmCandidateJudge {
            lmm,
            usage: Arc::default(),
        }
    }

    /// Tokens spent so far for run `run_id` (failed calls that were billed included).
    pub fn usage(&self, run_id: &str) -> Usage {
        self.usage
            .lock()
            .map(|u| u.get(run_id).copied().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Tokens spent for run `run_id`, forgetting them (the pipeline calls this when the
    /// run ends, so the counts never outlive the run).
    pub fn take_usage(&self, run_id: &str) -> Usage {
        let mut map = match self.usage.lock() {
            Ok(m) => m,
            // A panic while holding the lock cannot leave the counts half-written.
            Err(poisoned) => poisoned.into_inner(),
        };
        map.remove(run_id).unwrap_or_default()
    }

    fn count(&self, run_id: &str, usage: &Usage) {
        let mut map = match self.usage.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.entry(run_id.to_string()).or_default().add(usage);
    }
}

#[async_trait]
impl CandidateJudge for LmmCandidateJudge {
    async fn pick(
        &self,
        request: &SelectionRequest,
        options: &[JudgeCandidate],
    ) -> Result<JudgePick, SelectError> {
        let mut m = Message::user(format!(
            "Prompt: {:?}\nEntities: {}\nSearch queries: {}",
            request.prompt,
            request.entities.join(", "),
            request.queries.join(" | ")
        ));
        for (i, o) in options.iter().enumerate() {
            let title = o.candidate.title.as_deref().unwrap_or("untitled");
            m = m
                .with_text(format!("Image {i}: {title}"))
                .with_image(o.image.clone(), o.mime.clone());
        }
        let messages = vec![Message::system(PICK_SYSTEM), m];
        let reply = match chat_json::<WirePick>(self.lmm.as_ref(), "pick", messages).await {
            Ok(reply) => reply,
            Err(e) => {
                // An answer that was billed and then unusable still counts.
                self.count(&request.run_id, &e.billed());
                return Err(SelectError::Judge(e.to_string()));
            }
        };
        self.count(&request.run_id, &reply.usage);
        let index = reply.value.index as usize;
        if index >= options.len() {
            return Err(SelectError::Judge(format!(
                "the judge picked image {index} but only {} were shown",
                options.len()
            )));
        }
        Ok(JudgePick {
            index,
            reason: reply.value.reason,
        })
    }
}
