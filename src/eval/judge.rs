//! The judge calls of an evaluation: one chat call each, strict JSON asked with a schema,
//! the reply checked by the parsers in [`super::judge_prompts`]. A reply that is not the
//! JSON asked for is an error (the judgment is missing), never a zero, and it is not asked
//! again: the call was billed.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde_json::{Value, json};

use super::judge_prompts::{
    CHECKLIST_V1, CHECKLIST_WRITER_V1, JudgePrompt, JudgePromptFile, PAIRWISE_V1, WISCORE_V1,
    numbered_checklist, parse_checklist_reply, parse_checklist_writer_reply, parse_pairwise_reply,
    parse_wiscore_judgment, parse_wiscore_reply,
};
use super::judgments::Stored;
use crate::lmm::{ChatRequest, JsonSchemaFormat, Lmm, Message};

/// An image to show the judge.
#[derive(Debug, Clone)]
pub(crate) struct Shown {
    pub bytes: Bytes,
    pub mime: String,
}

fn object(props: Value, required: &[&str]) -> Value {
    json!({
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": false,
    })
}

fn schema(prompt: &JudgePrompt) -> Value {
    match prompt.name {
        "checklist" => object(
            json!({"items": {"type": "array", "items": object(
                json!({
                    "index": {"type": "integer"},
                    "satisfied": {"type": "boolean"},
                    "reason": {"type": "string"},
                }),
                &["index", "satisfied", "reason"],
            )}}),
            &["items"],
        ),
        "checklist_writer" => object(
            json!({"checklist": {"type": "array", "items": {"type": "string"}}}),
            &["checklist"],
        ),
        "wiscore" => object(
            json!({
                "consistency": {"type": "integer", "enum": [0, 1, 2]},
                "realism": {"type": "integer", "enum": [0, 1, 2]},
                "aesthetic_quality": {"type": "integer", "enum": [0, 1, 2]},
                "reason": {"type": "string"},
            }),
            &["consistency", "realism", "aesthetic_quality", "reason"],
        ),
        _ => object(
            json!({
                "winner": {"type": "string", "enum": ["A", "B", "tie"]},
                "reason": {"type": "string"},
            }),
            &["winner", "reason"],
        ),
    }
}

/// The judge model.
#[derive(Debug, Clone)]
pub(crate) struct JudgeModel {
    pub lmm: Arc<dyn Lmm>,
    /// The WiScore judge's prompt from a file, replacing `wiscore.v1`.
    pub wiscore_file: Option<JudgePromptFile>,
}

impl JudgeModel {
    /// The model name recorded with every judgment.
    pub fn name(&self) -> String {
        self.lmm.model().to_string()
    }

    /// The id of the WiScore judge's prompt: the file's, or `wiscore.v1`.
    pub fn wiscore_prompt_id(&self) -> String {
        match &self.wiscore_file {
            Some(file) => file.id(),
            None => WISCORE_V1.id(),
        }
    }

    /// Ask with the JSON schema of `prompt`'s judge (`None`: free text, as a judge prompt
    /// from a file asks for).
    async fn ask(
        &self,
        prompt: Option<&JudgePrompt>,
        text: String,
        images: &[Shown],
        parse: impl Fn(&str) -> Result<Value, String>,
    ) -> Stored {
        let mut message = Message::user(text);
        for image in images {
            message = message.with_image(image.bytes.clone(), image.mime.clone());
        }
        let request = ChatRequest {
            messages: vec![message],
            json_schema: prompt.map(|p| JsonSchemaFormat {
                name: p.name.to_string(),
                schema: schema(p),
            }),
            temperature: Some(0.0),
            max_tokens: None,
        };
        let started = Instant::now();
        let reply = self.lmm.chat(&request).await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match reply {
            Ok(r) => match parse(&r.content) {
                Ok(v) => Stored {
                    result: Some(v),
                    error: None,
                    retryable: false,
                    usage: r.usage,
                    elapsed_ms,
                },
                Err(e) => Stored {
                    result: None,
                    error: Some(e),
                    retryable: false,
                    usage: r.usage,
                    elapsed_ms,
                },
            },
            Err(e) => Stored {
                result: None,
                retryable: e.provably_not_processed(),
                error: Some(e.to_string()),
                usage: e.billed(),
                elapsed_ms,
            },
        }
    }

    /// Write a checklist for a prompt that has none.
    pub async fn write_checklist(&self, prompt: &str, explanation: &str) -> Stored {
        let text = CHECKLIST_WRITER_V1.render(&[("prompt", prompt), ("explanation", explanation)]);
        self.ask(Some(&CHECKLIST_WRITER_V1), text, &[], |t| {
            parse_checklist_writer_reply(t)
                .map(|items| json!(items))
                .map_err(|e| e.to_string())
        })
        .await
    }

    /// Mark each checklist item satisfied or not in `image`.
    pub async fn checklist(&self, prompt: &str, checklist: &[String], image: &Shown) -> Stored {
        let count = checklist.len().to_string();
        let text = CHECKLIST_V1.render(&[
            ("prompt", prompt),
            ("checklist", &numbered_checklist(checklist)),
            ("count", &count),
        ]);
        let n = checklist.len();
        self.ask(
            Some(&CHECKLIST_V1),
            text,
            std::slice::from_ref(image),
            |t| {
                parse_checklist_reply(t, n)
                    .map_err(|e| e.to_string())
                    .and_then(|r| serde_json::to_value(r).map_err(|e| e.to_string()))
            },
        )
        .await
    }

    /// WISE's three 0–2 scores for `image` (`wiscore.v1`, strict JSON), or whatever
    /// score the judge prompt file asks for (free text, see [`parse_wiscore_judgment`]).
    pub async fn wiscore(&self, prompt: &str, explanation: &str, image: &Shown) -> Stored {
        let image = std::slice::from_ref(image);
        if let Some(file) = &self.wiscore_file {
            let text = file.render(prompt, explanation);
            return self
                .ask(None, text, image, |t| {
                    parse_wiscore_judgment(t)
                        .map_err(|e| e.to_string())
                        .and_then(|r| serde_json::to_value(r).map_err(|e| e.to_string()))
                })
                .await;
        }
        let text = WISCORE_V1.render(&[("prompt", prompt), ("explanation", explanation)]);
        self.ask(Some(&WISCORE_V1), text, image, |t| {
            parse_wiscore_reply(t)
                .map_err(|e| e.to_string())
                .and_then(|r| serde_json::to_value(r).map_err(|e| e.to_string()))
        })
        .await
    }

    /// Which of `a` (shown first) and `b` follows `prompt` better.
    pub async fn pairwise(&self, prompt: &str, a: &Shown, b: &Shown) -> Stored {
        let text = PAIRWISE_V1.render(&[("prompt", prompt)]);
        self.ask(Some(&PAIRWISE_V1), text, &[a.clone(), b.clone()], |t| {
            parse_pairwise_reply(t)
                .map_err(|e| e.to_string())
                .and_then(|r| serde_json::to_value(r).map_err(|e| e.to_string()))
        })
        .await
    }
}
