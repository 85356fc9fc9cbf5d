//! Reading a `generateContent` answer: the final image (never a thought), its caption and
//! thought signatures, the usage (thinking apart), and every kind of refusal with what it
//! cost.

use base64::Engine as _;
use bytes::Bytes;
use serde::Deserialize;

use super::super::calls::{CallReply, ReplyImage};
use super::super::{
    ImageError, ImageUsage, InputTokensDetails, OutputTokensDetails, RefusalKind, SignedPart,
    ThoughtSignature, sniff_mime,
};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireResponse {
    #[serde(default)]
    candidates: Vec<WireCandidate>,
    #[serde(default)]
    prompt_feedback: Option<WireFeedback>,
    #[serde(default)]
    usage_metadata: Option<WireUsage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireFeedback {
    #[serde(default)]
    block_reason: Option<String>,
    #[serde(default)]
    block_reason_message: Option<String>,
    #[serde(default)]
    safety_ratings: Vec<WireRating>,
}

/// One `SafetyRating`: `{category, probability, blocked?}`.
#[derive(Deserialize)]
struct WireRating {
    #[serde(default)]
    category: String,
    #[serde(default)]
    probability: String,
    #[serde(default)]
    blocked: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireCandidate {
    #[serde(default)]
    content: Option<WireContent>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    finish_message: Option<String>,
}

#[derive(Deserialize)]
struct WireContent {
    #[serde(default)]
    parts: Vec<WirePart>,
}

#[derive(Deserialize)]
struct WirePart {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thought: Option<bool>,
    #[serde(default, rename = "thoughtSignature", alias = "thought_signature")]
    thought_signature: Option<String>,
    #[serde(default, rename = "inlineData", alias = "inline_data")]
    inline_data: Option<WireBlob>,
}

#[derive(Deserialize)]
struct WireBlob {
    #[serde(default, rename = "mimeType", alias = "mime_type")]
    mime_type: Option<String>,
    #[serde(default)]
    data: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireUsage {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
    #[serde(default)]
    thoughts_token_count: u64,
    #[serde(default)]
    total_token_count: u64,
    #[serde(default)]
    prompt_tokens_details: Vec<WireModality>,
    #[serde(default)]
    candidates_tokens_details: Vec<WireModality>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireModality {
    #[serde(default)]
    modality: String,
    #[serde(default)]
    token_count: u64,
}

/// Text and image tokens of a `*TokensDetails` list. The counts are the server's, so
/// their sum saturates instead of overflowing.
fn by_modality(details: &[WireModality]) -> (u64, u64) {
    details
        .iter()
        .fold((0u64, 0u64), |(text, image), d| match d.modality.as_str() {
            "TEXT" => (text.saturating_add(d.token_count), image),
            "IMAGE" => (text, image.saturating_add(d.token_count)),
            _ => (text, image),
        })
}

impl WireUsage {
    /// The usage: thinking tokens apart from the output (`candidatesTokenCount` does not
    /// include them; `totalTokenCount` does).
    fn usage(&self) -> ImageUsage {
        let (text_in, image_in) = by_modality(&self.prompt_tokens_details);
        let (text_out, image_out) = by_modality(&self.candidates_tokens_details);
        ImageUsage {
            input_tokens: self.prompt_token_count,
            output_tokens: self.candidates_token_count,
            thinking_tokens: self.thoughts_token_count,
            total_tokens: self.total_token_count,
            input_tokens_details: (!self.prompt_tokens_details.is_empty()).then_some(
                InputTokensDetails {
                    text_tokens: text_in,
                    image_tokens: image_in,
                },
            ),
            output_tokens_details: (!self.candidates_tokens_details.is_empty()).then_some(
                OutputTokensDetails {
                    text_tokens: text_out,
                    image_tokens: image_out,
                },
            ),
            images: 0,
            calls: 1,
        }
    }
}

/// The kind of refusal a `finishReason` or `blockReason` stands for.
fn refusal_kind(reason: &str) -> RefusalKind {
    match reason {
        "SAFETY" | "IMAGE_SAFETY" => RefusalKind::Safety,
        "PROHIBITED_CONTENT" | "IMAGE_PROHIBITED_CONTENT" | "BLOCKLIST" | "SPII" => {
            RefusalKind::Prohibited
        }
        "RECITATION" | "IMAGE_RECITATION" => RefusalKind::Recitation,
        "NO_IMAGE" => RefusalKind::NoImage,
        _ => RefusalKind::Other,
    }
}

/// What a blocked prompt's feedback says: its message, and for a safety block the
/// categories that blocked it (rated `blocked`, or `HIGH`/`MEDIUM`).
fn block_detail(fb: &WireFeedback) -> Option<String> {
    let categories: Vec<&str> = fb
        .safety_ratings
        .iter()
        .filter(|r| r.blocked || matches!(r.probability.as_str(), "HIGH" | "MEDIUM"))
        .map(|r| r.category.as_str())
        .collect();
    let named = (!categories.is_empty()).then(|| {
        format!(
            "blocked for {} (rephrase the prompt to avoid it)",
            categories.join(", ")
        )
    });
    match (fb.block_reason_message.clone(), named) {
        (Some(m), Some(n)) => Some(format!("{m}; {n}")),
        (m, n) => m.or(n),
    }
}

/// The final image parts, the caption, every non-thought text, and the signatures.
struct Answer {
    images: Vec<ReplyImage>,
    caption: Option<String>,
    texts: Vec<String>,
}

/// Read the parts, skipping thoughts (interim images and thought text: Gemini 3 image
/// models return them before the final image, marked `"thought": true`).
fn read_parts(endpoint: &str, parts: Vec<WirePart>) -> Result<Answer, ImageError> {
    let mut answer = Answer {
        images: Vec::new(),
        caption: None,
        texts: Vec::new(),
    };
    let mut caption_signature = None;
    for (i, part) in parts.into_iter().enumerate() {
        if part.thought == Some(true) {
            continue;
        }
        if let Some(blob) = part.inline_data {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(blob.data.trim())
                .map_err(|e| ImageError::NoImage {
                    endpoint: endpoint.to_string(),
                    detail: format!("part {i}: inline data is not base64: {e}"),
                })?;
            let Some(mime) = sniff_mime(&bytes) else {
                tracing::warn!(part = i, mime = ?blob.mime_type, "skipping a non-image inline part");
                continue;
            };
            let mut signatures: Vec<ThoughtSignature> = caption_signature.iter().cloned().collect();
            signatures.extend(part.thought_signature.map(|signature| ThoughtSignature {
                part: SignedPart::Image,
                signature,
            }));
            answer.images.push(ReplyImage {
                bytes: Bytes::from(bytes),
                mime: mime.to_string(),
                signatures,
            });
        } else if let Some(t) = part.text {
            let t = t.trim().to_string();
            if answer.caption.is_none() && !t.is_empty() {
                answer.caption = Some(t.clone());
                caption_signature = part.thought_signature.map(|signature| ThoughtSignature {
                    part: SignedPart::Text,
                    signature,
                });
            }
            answer.texts.extend((!t.is_empty()).then_some(t));
        }
    }
    Ok(answer)
}

impl super::GeminiImages {
    /// Read one `generateContent` answer as [`crate::Generator::generate`] does: how many
    /// final images it holds and whether a caption came with them, or the error it is.
    /// For the fuzz harness (`fuzz/`, `make fuzz`); not part of the API.
    #[doc(hidden)]
    pub fn fuzz_read_reply(body: &[u8]) -> Result<(usize, bool), ImageError> {
        read_reply("fuzz", body).map(|r| (r.images.len(), r.text.is_some()))
    }
}

/// Read one `generateContent` answer. A refusal carries the usage the service reported.
pub(super) fn read_reply(endpoint: &str, body: &[u8]) -> Result<CallReply, ImageError> {
    let wire: WireResponse = serde_json::from_slice(body).map_err(|e| ImageError::NoImage {
        endpoint: endpoint.to_string(),
        detail: format!("not a generateContent response: {e}"),
    })?;
    let usage = wire.usage_metadata.unwrap_or_default().usage();
    let refused = |kind, reason: &str, text: Option<String>| ImageError::Refused {
        endpoint: endpoint.to_string(),
        kind,
        reason: reason.to_string(),
        text,
        usage: Some(Box::new(usage)),
    };
    if let Some(fb) = &wire.prompt_feedback
        && let Some(reason) = fb.block_reason.as_deref()
    {
        return Err(refused(
            RefusalKind::PromptBlocked,
            reason,
            block_detail(fb),
        ));
    }
    let Some(cand) = wire.candidates.into_iter().next() else {
        return Err(ImageError::NoImage {
            endpoint: endpoint.to_string(),
            detail: "no candidates and no block reason".into(),
        });
    };
    let parts = cand.content.map(|c| c.parts).unwrap_or_default();
    let answer = read_parts(endpoint, parts)?;
    if !answer.images.is_empty() {
        return Ok(CallReply {
            images: answer.images,
            text: answer.caption,
            usage,
        });
    }
    let finish = cand.finish_reason.unwrap_or_default();
    let said = (!answer.texts.is_empty())
        .then(|| answer.texts.join("\n"))
        .or(cand.finish_message);
    match finish.as_str() {
        "" | "STOP" | "FINISH_REASON_UNSPECIFIED" if said.is_some() => {
            Err(refused(RefusalKind::TextOnly, "STOP", said))
        }
        "" | "STOP" | "FINISH_REASON_UNSPECIFIED" => Err(ImageError::NoImage {
            endpoint: endpoint.to_string(),
            detail: "the candidate has neither an image nor text".into(),
        }),
        other => Err(refused(refusal_kind(other), other, said)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by `make fuzz` (target `gemini`): two details of one modality whose counts
    /// add past `u64::MAX` panicked ("attempt to add with overflow") in debug builds and
    /// wrapped to a small count in release ones.
    #[test]
    fn huge_token_counts_saturate_instead_of_overflowing() {
        let body = br#"{"candidates": [{"content": {"parts": [{"text": "no image"}]}}],
            "usageMetadata": {"promptTokenCount": 5,
              "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 9223372036854775808},
                                      {"modality": "TEXT", "tokenCount": 9223372036854775808}],
              "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": 5},
                                          {"modality": "IMAGE", "tokenCount": 18446744073709551615}]}}"#;
        let Err(ImageError::Refused {
            usage: Some(usage), ..
        }) = read_reply("test", body)
        else {
            panic!("expected a text-only refusal with its usage");
        };
        let input = usage.input_tokens_details.unwrap();
        let output = usage.output_tokens_details.unwrap();
        assert_eq!(input.text_tokens, u64::MAX);
        assert_eq!(output.image_tokens, u64::MAX);
        assert_eq!(usage.input_tokens, 5);
    }
}
