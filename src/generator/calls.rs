//! What the backends that make one call per image (Gemini, chat-completions image models)
//! share: `n` calls in turn, their images and usage added up, and a failure after the
//! first image keeps the images already paid for.

use std::future::Future;

use bytes::Bytes;

use super::{
    GeneratedImage, Generation, GenerationRequest, ImageError, ImageUsage, ReferenceLimits,
    ThoughtSignature, compose_prompt, fit_request,
};

/// One image of a call's answer: bytes, MIME type, and the thought signatures that came
/// with it (Gemini 3), to send back unchanged in a follow-up turn.
pub(crate) struct ReplyImage {
    pub bytes: Bytes,
    pub mime: String,
    pub signatures: Vec<ThoughtSignature>,
}

impl ReplyImage {
    /// An image without signatures.
    pub fn plain(bytes: Bytes, mime: String) -> Self {
        ReplyImage {
            bytes,
            mime,
            signatures: Vec::new(),
        }
    }
}

/// One call's answer: its images, its text, its usage.
pub(crate) struct CallReply {
    pub images: Vec<ReplyImage>,
    pub text: Option<String>,
    pub usage: ImageUsage,
}

/// Make `n` calls with `call` and gather them into one [`Generation`]. A call that fails
/// after an earlier one made images ends the gathering with a note instead of an error:
/// those images were paid for, and the judge can still pick among them. What the failed
/// call cost (a refusal's usage) is added to the generation's usage.
pub(crate) async fn gather<F, Fut>(
    n: u32,
    prompt: String,
    mut notes: Vec<String>,
    mut call: F,
) -> Result<Generation, ImageError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<CallReply, ImageError>>,
{
    let mut images = Vec::new();
    let mut usage = ImageUsage::default();
    let mut texts = Vec::new();
    for k in 1..=n {
        let reply = match call().await {
            Ok(reply) => reply,
            Err(e) if !images.is_empty() => {
                if let Some(spent) = e.usage() {
                    usage.add(&spent);
                }
                tracing::warn!(
                    "image call {k} of {n} failed; keeping the images already made: {e}"
                );
                notes.push(format!(
                    "image call {k} of {n} failed ({e}); kept the {} image(s) already made",
                    images.len()
                ));
                break;
            }
            Err(e) => return Err(e),
        };
        let mut u = reply.usage;
        u.images = reply.images.len() as u32;
        usage.add(&u);
        texts.extend(reply.text);
        images.extend(reply.images.into_iter().map(|img| GeneratedImage {
            bytes: img.bytes,
            mime: img.mime,
            usage: u,
            revised_prompt: None,
            thought_signatures: img.signatures,
        }));
    }
    Ok(Generation {
        images,
        usage,
        prompt_sent: prompt,
        text: (!texts.is_empty()).then(|| texts.join("\n")),
        notes,
    })
}

/// The request as the one-call-per-image backends send it: references and the image to
/// edit fitted to `limits` (what was dropped or re-encoded goes into the notes), and the
/// prompt that tells the model which image is which.
pub(crate) fn fitted(
    request: &GenerationRequest,
    limits: &ReferenceLimits,
) -> (GenerationRequest, String, Vec<String>) {
    let (edit, references, notes) = fit_request(request, limits);
    let fitted = GenerationRequest {
        references,
        edit_image: edit,
        ..request.clone()
    };
    let first = if fitted.edit_image.is_some() { 2 } else { 1 };
    let prompt = compose_prompt(&fitted, first);
    (fitted, prompt, notes)
}
