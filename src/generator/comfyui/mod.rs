//! A self-hosted ComfyUI server running a workflow the user exported in API format.

mod wire;
mod workflow;
mod ws;

pub use workflow::{NodeInput, NodeInputs, NodeOutput, Workflow, WorkflowNodes};

use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use iat2i_retrievers::http::redact;
use iat2i_retrievers::{HttpClient, HttpError, Trust};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use tracing::Instrument;
use url::Url;

use super::{
    GeneratedImage, Generation, GenerationRequest, Generator, GeneratorProgress, ImageError,
    ImageUsage, InputImage, ReferenceLimits, fit_request, sniff_mime,
};
use crate::lmm::openai_support::{endpoint, parse_base};
use crate::secret::Secret;
use wire::{HistoryEntry, PromptAnswer, WsEvent};
use workflow::JobInputs;

/// ComfyUI (`http://127.0.0.1:8188` by default), a trusted self-hosted endpoint.
///
/// For each call: the image to edit and the references are uploaded with
/// `POST /upload/image` (multipart `image`, `type=input`, `overwrite=true`) and their
/// returned names set on the mapped image inputs (`LoadImage` nodes); the prompt,
/// negative prompt, seed, width, height and batch size are set on their mapped nodes;
/// the job is queued with `POST /prompt` (`prompt`, `client_id`, and a `prompt_id`
/// chosen here, so a lost answer is recovered by looking the id up instead of queueing
/// twice). Progress comes from the `/ws?clientId=` websocket (`progress`, `executing`,
/// `executed`, `execution_error`, `execution_success`) as
/// [`crate::PipelineEvent::GeneratorProgress`], with polling of `GET /history/{id}` when
/// the socket cannot be opened or drops. Images are read from `outputs[node].images[]`
/// through `GET /view`. `node_errors` and `execution_error` are [`ImageError::Node`]
/// naming the node and the message; a job that outlives the timeout is interrupted
/// (`POST /interrupt`) and taken off the queue.
///
/// References are expressed by the workflow's image inputs, not in the prompt; a
/// negative prompt goes to its node (or is dropped with a note when none is mapped).
/// `n > 1` sets the mapped batch size, else queues `n` jobs with consecutive seeds.
/// `options` set further inputs: `{"<node_id>": {"<input>": value}}`.
#[derive(Clone)]
pub struct ComfyUi {
    http: HttpClient,
    base: Url,
    workflow: Workflow,
    text_workflow: Option<Workflow>,
    client_id: String,
    api_key: Option<Secret>,
    timeout: Duration,
    poll_interval: Duration,
    websocket: bool,
    limits: ReferenceLimits,
}

impl std::fmt::Debug for ComfyUi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComfyUi")
            .field("base", &redact(&self.base))
            .field("client_id", &self.client_id)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("timeout", &self.timeout)
            .field("websocket", &self.websocket)
            .finish_non_exhaustive()
    }
}

/// The default ComfyUI address.
pub const COMFYUI_DEFAULT_BASE: &str = "http://127.0.0.1:8188";

impl ComfyUi {
    /// A client for the server at `base` running `workflow`.
    pub fn new(http: HttpClient, base: &str, workflow: Workflow) -> Result<Self, ImageError> {
        Ok(ComfyUi {
            http,
            base: parse_base(base).map_err(ImageError::Config)?,
            workflow,
            text_workflow: None,
            client_id: uuid::Uuid::new_v4().to_string(),
            api_key: None,
            timeout: Duration::from_secs(600),
            poll_interval: Duration::from_secs(1),
            websocket: true,
            limits: ReferenceLimits::new(8, 20 * 1024 * 1024, 4096 * 4096),
        })
    }

    /// A second workflow for requests without any image (no reference, nothing to
    /// edit), when the main one needs image inputs.
    pub fn with_text_workflow(mut self, workflow: Workflow) -> Self {
        self.text_workflow = Some(workflow);
        self
    }

    /// Send `key` as a bearer token (for servers behind an authenticating proxy).
    pub fn with_api_key(mut self, key: Secret) -> Self {
        self.api_key = Some(key);
        self
    }

    /// How long one job may take before it is interrupted (default 10 minutes).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How often `/history` is polled without the websocket (default 1 s).
    pub fn with_poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every;
        self
    }

    /// Use the websocket for progress (default true; polling otherwise).
    pub fn with_websocket(mut self, on: bool) -> Self {
        self.websocket = on;
        self
    }

    /// How many input images (and how large) the server takes.
    pub fn with_reference_limits(mut self, limits: ReferenceLimits) -> Self {
        self.limits = limits;
        self
    }

    fn url(&self, path: &str) -> Result<Url, ImageError> {
        endpoint(&self.base, path).map_err(ImageError::Config)
    }

    fn auth(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.api_key {
            Some(k) => rb.bearer_auth(k.expose()),
            None => rb,
        }
    }

    fn http_error(&self, source: HttpError) -> ImageError {
        ImageError::Http {
            endpoint: self.describe(),
            source,
        }
    }

    /// Upload one image; the name to put on a `LoadImage` input.
    async fn upload(&self, img: &InputImage) -> Result<String, ImageError> {
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
    async fn queue(&self, graph: Value, prompt_id: &str) -> Result<(), ImageError> {
        let url = self.url("prompt")?;
        let body = json!({ "prompt": graph, "client_id": self.client_id, "prompt_id": prompt_id });
        let sent =
            super::send_paid(&self.http, |c| self.auth(c.post(url.clone()).json(&body))).await;
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
        let answer: PromptAnswer =
            serde_json::from_slice(&resp.body).map_err(|e| ImageError::Api {
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
        let (node, class_type, message) = wire::first_node_error(node_errors?)?;
        Some(ImageError::Node {
            endpoint: self.describe(),
            node,
            class_type,
            message,
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
    async fn history(&self, prompt_id: &str) -> Result<Option<HistoryEntry>, ImageError> {
        let url = self.url(&format!("history/{prompt_id}"))?;
        let resp = self
            .http
            .execute(Trust::Trusted, |c| self.auth(c.get(url.clone())))
            .await
            .map_err(|e| self.http_error(e))?;
        let v: Value = serde_json::from_slice(&resp.body).map_err(|e| ImageError::Api {
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

    /// Wait for the job through the websocket, then (or instead) by polling.
    async fn wait(
        &self,
        channel: Option<ws::Progress>,
        prompt_id: &str,
        request: &GenerationRequest,
    ) -> Result<HistoryEntry, ImageError> {
        if let Some(mut ch) = channel {
            if self.follow(&mut ch, prompt_id, request).await? {
                if let Some(entry) = self.history(prompt_id).await?
                    && (entry.finished() || !entry.outputs.is_empty())
                {
                    return self.check(entry);
                }
            } else {
                tracing::warn!(prompt_id, "the ComfyUI websocket dropped; polling /history");
                request.report(progress("polling", None));
            }
        }
        loop {
            if let Some(entry) = self.history(prompt_id).await?
                && entry.finished()
            {
                return self.check(entry);
            }
            tokio::time::sleep(self.poll_interval).await;
        }
    }

    fn check(&self, entry: HistoryEntry) -> Result<HistoryEntry, ImageError> {
        match entry.error() {
            Some(e) => Err(self.execution_error(&e)),
            None => Ok(entry),
        }
    }

    fn execution_error(&self, e: &wire::ExecutionError) -> ImageError {
        let node = e.node();
        ImageError::Node {
            endpoint: self.describe(),
            class_type: e
                .node_type
                .clone()
                .unwrap_or_else(|| self.workflow.class_of(&node)),
            node,
            message: e.message(),
        }
    }

    /// Follow the websocket to the job's end: `Ok(true)` when it finished, `Ok(false)`
    /// when the socket closed first.
    async fn follow(
        &self,
        ch: &mut ws::Progress,
        prompt_id: &str,
        request: &GenerationRequest,
    ) -> Result<bool, ImageError> {
        while let Some(text) = ch.next_text().await {
            match wire::parse_ws(&text, prompt_id) {
                WsEvent::Started => request.report(progress("started", None)),
                WsEvent::Cached(nodes) => {
                    request.report(progress("cached", Some(nodes.join(","))));
                }
                WsEvent::Executing(Some(node)) => {
                    request.report(progress("executing", Some(node)));
                }
                WsEvent::Executing(None) | WsEvent::Success => {
                    request.report(progress("done", None));
                    return Ok(true);
                }
                WsEvent::Progress { node, value, max } => request.report(GeneratorProgress {
                    stage: "progress".into(),
                    node,
                    value: Some(value),
                    max: Some(max),
                }),
                WsEvent::Executed(node) => request.report(progress("executed", Some(node))),
                WsEvent::Error(e) => return Err(self.execution_error(&e)),
                WsEvent::Interrupted => {
                    return Err(ImageError::Api {
                        endpoint: self.describe(),
                        message: "the job was interrupted on the server".into(),
                    });
                }
                WsEvent::Other => {}
            }
        }
        Ok(false)
    }

    /// Stop the job: interrupt it if running, delete it if pending.
    async fn interrupt(&self, prompt_id: &str) {
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
    async fn view(&self, img: &wire::OutputImage) -> Result<GeneratedImage, ImageError> {
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

    /// Run one job to its images.
    async fn run_job(
        &self,
        workflow: &Workflow,
        job: &JobInputs,
        request: &GenerationRequest,
    ) -> Result<Vec<GeneratedImage>, ImageError> {
        let mut graph = workflow.apply(job)?;
        for (node, inputs) in &request.options {
            if let (Some(target), Value::Object(fields)) = (
                graph.get_mut(node).and_then(|n| n.get_mut("inputs")),
                inputs,
            ) && let Some(obj) = target.as_object_mut()
            {
                obj.extend(fields.clone());
            }
        }
        let prompt_id = uuid::Uuid::new_v4().to_string();
        // Connect before queueing so no message is missed.
        let channel = match (self.websocket, ws::ws_url(&self.base, &self.client_id)) {
            (true, Some(url)) => match ws::Progress::open(&url).await {
                Ok(ch) => Some(ch),
                Err(why) => {
                    tracing::warn!(%why, "no ComfyUI websocket; polling /history");
                    request.report(progress("polling", None));
                    None
                }
            },
            _ => None,
        };
        self.queue(graph, &prompt_id).await?;
        request.report(progress("queued", Some(prompt_id.clone())));
        let started = Instant::now();
        let entry =
            match tokio::time::timeout(self.timeout, self.wait(channel, &prompt_id, request)).await
            {
                Ok(r) => r?,
                Err(_) => {
                    self.interrupt(&prompt_id).await;
                    return Err(ImageError::Timeout {
                        endpoint: self.describe(),
                        after: started.elapsed(),
                        detail: format!("job {prompt_id} was interrupted and taken off the queue"),
                    });
                }
            };
        let mut listed = entry.images(workflow.output_node());
        if listed.is_empty() && workflow.output_node().is_some() {
            tracing::warn!("the mapped output node has no images; taking every output node's");
            listed = entry.images(None);
        }
        if listed.is_empty() {
            return Err(ImageError::NoImage {
                endpoint: self.describe(),
                detail: format!(
                    "job {prompt_id} finished without output images (is a SaveImage node in \
                     the workflow, and the output node mapped right?)"
                ),
            });
        }
        let mut images = Vec::with_capacity(listed.len());
        for img in &listed {
            images.push(self.view(img).await?);
        }
        Ok(images)
    }
}

fn progress(stage: &str, node: Option<String>) -> GeneratorProgress {
    GeneratorProgress {
        stage: stage.into(),
        node,
        value: None,
        max: None,
    }
}

#[async_trait]
impl Generator for ComfyUi {
    async fn generate(&self, request: &GenerationRequest) -> Result<Generation, ImageError> {
        let (edit, references, mut notes) = fit_request(request, &self.limits);
        let mut inputs: Vec<&InputImage> = edit.iter().collect();
        inputs.extend(references.iter().map(|r| &r.image));
        let workflow = match (&self.text_workflow, inputs.is_empty()) {
            (Some(text), true) => text,
            _ => &self.workflow,
        };
        let slots = workflow.image_slots();
        if inputs.len() > slots {
            notes.push(format!(
                "{} of {} images not sent: the workflow maps {slots} image input(s)",
                inputs.len() - slots,
                inputs.len()
            ));
            inputs.truncate(slots);
        }
        let mut names = Vec::with_capacity(inputs.len());
        for img in inputs {
            names.push(
                self.upload(img)
                    .instrument(tracing::info_span!("comfyui.upload"))
                    .await?,
            );
        }
        if request.negative_prompt.is_some() && !workflow.takes_negative_prompt() {
            notes.push("the workflow maps no negative prompt; it was not sent".into());
        }
        if request.size.is_some() && !workflow.takes_size() {
            notes.push("the workflow maps no width/height; the size was not set".into());
        }
        let n = request.n();
        let batched = workflow.takes_batch_size();
        let seed = request.seed.unwrap_or_else(rand_seed);
        let mut images = Vec::new();
        let jobs = if batched { 1 } else { n };
        for i in 0..jobs {
            let job = JobInputs {
                prompt: request.prompt.clone(),
                negative_prompt: request.negative_prompt.clone(),
                seed: seed.wrapping_add(u64::from(i)),
                size: request.size.as_ref().map(|s| s.pixels()),
                batch_size: if batched { n } else { 1 },
                images: names.clone(),
            };
            let span = tracing::info_span!("comfyui.job", job = i);
            images.extend(
                self.run_job(workflow, &job, request)
                    .instrument(span)
                    .await?,
            );
        }
        let usage = ImageUsage {
            images: images.len() as u32,
            calls: jobs,
            ..ImageUsage::default()
        };
        for img in &mut images {
            img.usage = usage;
        }
        Ok(Generation {
            images,
            usage,
            prompt_sent: request.prompt.clone(),
            text: None,
            notes,
        })
    }

    fn describe(&self) -> String {
        format!("ComfyUI at {}", redact(&self.base))
    }
}

/// A random seed (ComfyUI templates carry a fixed one).
fn rand_seed() -> u64 {
    let id = uuid::Uuid::new_v4();
    let b = id.as_bytes();
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) >> 1
}
