//! ComfyUI's HTTP endpoints: uploads, queueing, history, interrupts and `/view`.

use std::hash::{Hash, Hasher};

use bytes::Bytes;
use iat2i_retrievers::{HttpError, Trust};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use super::ComfyUi;
use super::wire::{self, HistoryEntry, NodeFault, PromptAnswer};
use crate::generator::{
    GeneratedImage, Generator, ImageError, ImageUsage, InputImage, NodeFailure, sniff_mime,
};

impl ComfyUi {
    /// Upload one image; the name to put on a `LoadImage` input.
    pub(super) async fn upload(&self, img: &InputImage) -> Result<String, ImageError> {
        let url = self.url("upload/image")?;
        let ext = match img.mime.as_str() {
            "image/jpeg" => "jpg",
            "image/webp" => "webp",
            _ => "png",
        };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        img.bytes.hash(&mut h);
        let name = format!("iat2i-{:016x}.{ext}", h.finish());
        let make_form = || {
            let part = Part::stream_with_length(
                reqwest::Body::from(img.bytes.clone()),
                img.bytes.len() as u64,
            )
            .file_name(name.clone());
            let part = part.mime_str(&img.mime).unwrap_or_else(|_| {
                Part::stream_with_length(
                    reqwest::Body::from(img.bytes.clone()),
                    img.bytes.len() as u64,
                )
                .file_name(name.clone())
            });
            Form::new()
                .part("image", part)
                .text("type", "input")
                .text("overwrite", "true")
        };
        // The same bytes under the same name with overwrite: safe to retry.
        let resp = self
            .http
            .execute(Trust::Trusted, |c| {
                self.auth(c.post(url.clone()).multipart(make_form()))
            })
            .await
            .map_err(|e| self.http_error(e))?;
        let v: Value = serde_json::from_slice(&resp.body).map_err(|e| ImageError::Api {
            endpoint: self.describe(),
            message: format!("/upload/image answered with something that is not JSON: {e}"),
        })?;
        let uploaded = v
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| ImageError::Api {
                endpoint: self.describe(),
                message: "/upload/image answered without a name".into(),
            })?;
        Ok(match v.get("subfolder").and_then(Value::as_str) {
            Some(sub) if !sub.is_empty() => format!("{sub}/{uploaded}"),
            _ => uploaded.to_string(),
        })
    }

    /// Queue `graph` as `prompt_id`.
    ///
    /// `client_id` is this job's own: ComfyUI keeps only the newest websocket of a
    /// client id, so jobs sharing one would not hear their messages.
    pub(super) async fn queue(
        &self,
        graph: Value,
        prompt_id: &str,
        client_id: &str,
    ) -> Result<(), ImageError> {
        let url = self.url("prompt")?;
        let body = json!({ "prompt": graph, "client_id": client_id, "prompt_id": prompt_id });
        let sent =
            crate::generator::send_paid(&self.http, |c| self.auth(c.post(url.clone()).json(&body)))
                .await;
        let resp = match sent {
            Ok(r) => r,
            Err(HttpError::Status { status, body, .. }) if status.as_u16() == 400 => {
                return Err(self.rejected(&body));
            }
            Err(e @ HttpError::Status { .. }) => return Err(self.http_error(e)),
            Err(e) => {
                // The answer was lost: the server may have queued it. Look the id up.
                if self.is_known(prompt_id).await {
                    tracing::warn!(prompt_id, error = %e, "the /prompt answer was lost, but the job is queued");
                    return Ok(());
                }
                return Err(self.http_error(e));
            }
        };
        self.accepted(&resp.body, prompt_id)
    }

    /// A 200 from `/prompt`: `Ok` when the job is queued under `prompt_id`.
    fn accepted(&self, body: &[u8], prompt_id: &str) -> Result<(), ImageError> {
        let answer: PromptAnswer = serde_json::from_slice(body).map_err(|e| ImageError::Api {
            endpoint: self.describe(),
            message: format!("/prompt answered with something that is not JSON: {e}"),
        })?;
        if let Some(err) = self.node_error(answer.node_errors.as_ref()) {
            return Err(err);
        }
        if let Some(e) = answer.error.filter(|e| !e.is_null()) {
            return Err(ImageError::Api {
                endpoint: self.describe(),
                message: wire::error_message(&e),
            });
        }
        if answer
            .prompt_id
            .as_deref()
            .is_some_and(|id| id != prompt_id)
        {
            return Err(ImageError::Api {
                endpoint: self.describe(),
                message: "the server ignored the client-chosen prompt_id; update ComfyUI".into(),
            });
        }
        Ok(())
    }

    fn node_error(&self, node_errors: Option<&Value>) -> Option<ImageError> {
        self.nodes_failed(wire::node_faults(node_errors?), NodeFailure::Invalid)
    }

    /// One error naming every failing node and each of its messages; `None` when
    /// there is none.
    pub(super) fn nodes_failed(
        &self,
        faults: Vec<NodeFault>,
        failure: NodeFailure,
    ) -> Option<ImageError> {
        let mut faults = faults.into_iter();
        let first = faults.next()?;
        let mut message = first.messages.join("; ");
        for f in faults {
            message.push_str(&format!(
                "; also node {} ({}) failed: {}",
                f.node,
                f.class_type,
                f.messages.join("; ")
            ));
        }
        Some(ImageError::Node {
            endpoint: self.describe(),
            node: first.node,
            class_type: first.class_type,
            message,
            failure,
        })
    }

    /// A 400 from `/prompt`: the workflow failed validation.
    fn rejected(&self, body: &str) -> ImageError {
        let Ok(answer) = serde_json::from_str::<PromptAnswer>(body) else {
            return ImageError::Api {
                endpoint: self.describe(),
                message: format!("/prompt refused the workflow: {body}"),
            };
        };
        if let Some(e) = self.node_error(answer.node_errors.as_ref()) {
            return e;
        }
        ImageError::Api {
            endpoint: self.describe(),
            message: answer
                .error
                .map(|e| wire::error_message(&e))
                .unwrap_or_else(|| "the workflow failed validation".into()),
        }
    }

    /// `/prompt`'s answer with HTTP status `status` (400: the workflow failed validation)
    /// read as queueing `prompt_id` does: `Ok` when the job is queued, else the error. For
    /// the fuzz harness (`fuzz/`, `make fuzz`); not part of the API.
    #[doc(hidden)]
    pub fn fuzz_prompt_answer(
        &self,
        status: u16,
        body: &[u8],
        prompt_id: &str,
    ) -> Result<(), ImageError> {
        if status == 400 {
            return Err(self.rejected(&String::from_utf8_lossy(body)));
        }
        self.accepted(body, prompt_id)
    }

    /// A `/history/{id}` answer read as waiting for `prompt_id` does: `None` while the
    /// job has not finished, else how many result images it lists, or the error it ended
    /// with. For the fuzz harness (`fuzz/`, `make fuzz`); not part of the API.
    #[doc(hidden)]
    pub fn fuzz_history(&self, body: &[u8], prompt_id: &str) -> Result<Option<usize>, ImageError> {
        match self.history_entry(body, prompt_id)? {
            Some(entry) if entry.finished() => {
                let entry = self.check(entry)?;
                Ok(Some(entry.results(self.workflow.output_node()).len()))
            }
            _ => Ok(None),
        }
    }

    /// Whether the server has `prompt_id` queued, running or in its history.
    async fn is_known(&self, prompt_id: &str) -> bool {
        if let Ok(Some(_)) = self.history(prompt_id).await {
            return true;
        }
        let Ok(url) = self.url("queue") else {
            return false;
        };
        let Ok(resp) = self
            .http
            .execute(Trust::Trusted, |c| self.auth(c.get(url.clone())))
            .await
        else {
            return false;
        };
        let Ok(q) = serde_json::from_slice::<Value>(&resp.body) else {
            return false;
        };
        ["queue_running", "queue_pending"].iter().any(|k| {
            q.get(k).and_then(Value::as_array).is_some_and(|items| {
                items
                    .iter()
                    .any(|i| i.get(1).and_then(Value::as_str) == Some(prompt_id))
            })
        })
    }

    /// `GET /history/{id}`: `None` while the job is not in the history yet.
    pub(super) async fn history(
        &self,
        prompt_id: &str,
    ) -> Result<Option<HistoryEntry>, ImageError> {
        let url = self.url(&format!("history/{prompt_id}"))?;
        let resp = self
            .http
            .execute(Trust::Trusted, |c| self.auth(c.get(url.clone())))
            .await
            .map_err(|e| self.http_error(e))?;
        self.history_entry(&resp.body, prompt_id)
    }

    /// `prompt_id`'s entry in a `/history/{id}` answer: `None` while it has none.
    fn history_entry(
        &self,
        body: &[u8],
        prompt_id: &str,
    ) -> Result<Option<HistoryEntry>, ImageError> {
        let v: Value = serde_json::from_slice(body).map_err(|e| ImageError::Api {
            endpoint: self.describe(),
            message: format!("/history answered with something that is not JSON: {e}"),
        })?;
        match v.get(prompt_id) {
            None => Ok(None),
            Some(entry) => serde_json::from_value(entry.clone())
                .map(Some)
                .map_err(|e| ImageError::Api {
                    endpoint: self.describe(),
                    message: format!("a /history entry of an unexpected shape: {e}"),
                }),
        }
    }

    /// Stop the job: interrupt it if running, delete it if pending.
    pub(super) async fn interrupt(&self, prompt_id: &str) {
        for (path, body) in [
            ("interrupt", json!({ "prompt_id": prompt_id })),
            ("queue", json!({ "delete": [prompt_id] })),
        ] {
            if let Ok(url) = self.url(path) {
                let sent = self
                    .http
                    .execute(Trust::Trusted, |c| {
                        self.auth(c.post(url.clone()).json(&body))
                    })
                    .await;
                if let Err(e) = sent {
                    tracing::warn!(error = %e, path, "could not stop the ComfyUI job");
                }
            }
        }
    }

    /// `GET /view` for one output image.
    pub(super) async fn view(&self, img: &wire::OutputImage) -> Result<GeneratedImage, ImageError> {
        let mut url = self.url("view")?;
        url.query_pairs_mut()
            .append_pair("filename", &img.filename)
            .append_pair("subfolder", &img.subfolder)
            .append_pair(
                "type",
                if img.kind.is_empty() {
                    "output"
                } else {
                    &img.kind
                },
            );
        let resp = self
            .http
            .execute(Trust::Trusted, |c| self.auth(c.get(url.clone())))
            .await
            .map_err(|e| self.http_error(e))?;
        let bytes: Bytes = resp.body;
        let mime = sniff_mime(&bytes).ok_or_else(|| ImageError::NoImage {
            endpoint: self.describe(),
            detail: format!("/view of {} is not a known image format", img.filename),
        })?;
        Ok(GeneratedImage {
            bytes,
            mime: mime.to_string(),
            usage: ImageUsage::default(),
            revised_prompt: None,
            thought_signatures: Vec::new(),
        })
    }
}
