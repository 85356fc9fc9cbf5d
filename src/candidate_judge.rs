//! An LMM that picks the most instructive reference among the selector's top candidates.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use iat2i_selectors::{CandidateJudge, JudgeCandidate, JudgePick, SelectError, SelectionRequest};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::lmm::{Lmm, Message, Usage, chat_json};

/// A [`CandidateJudge`] that shows a vision LMM the top-k thumbnails with the prompt
/// and asks which one best shows what the prompt needs.
#[derive(Debug, Clone)]
pub struct LmmCandidateJudge {
    lmm: Arc<dyn Lmm>,
    usage: Arc<Mutex<Usage>>,
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
            usage: Arc::new(Mutex::new(Usage::default())),
        }
    }

    /// Tokens spent by this judge so far.
    pub fn usage(&self) -> Usage {
        self.usage.lock().map(|u| *u).unwrap_or_default()
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
        let reply = chat_json::<WirePick>(self.lmm.as_ref(), "pick", messages)
            .await
            .map_err(|e| SelectError::Judge(e.to_string()))?;
        if let Ok(mut u) = self.usage.lock() {
            u.add(&reply.usage);
        }
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
