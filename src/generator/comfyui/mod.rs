//! A self-hosted ComfyUI server running a workflow the user exported in API format.

mod api;
mod object_info;
mod watch;
mod wire;
mod workflow;
mod ws;

pub use workflow::{NodeInput, NodeInputs, NodeOutput, Workflow, WorkflowNodes};

use std::time::{Duration, Instant};

use async_trait::async_trait;
use iat2i_retrievers::http::redact;
use iat2i_retrievers::{HttpClient, HttpError};
use serde_json::Value;
use tracing::Instrument;
use url::Url;

use super::{
    GeneratedImage, Generation, GenerationRequest, Generator, GeneratorProgress, ImageError,
    ImageUsage, InputImage, ReferenceLimits, fit_request,
};
use crate::lmm::openai_support::{endpoint, parse_base};
use crate::secret::Secret;
use object_info::ObjectInfoCache;
use workflow::JobInputs;

/// ComfyUI (`http://127.0.0.1:8188` by default), a trusted self-hosted endpoint.
///
/// Before the first job, `GET /object_info` (fetched once per client and server) is
/// checked: every node class of the workflow must be installed and every mapped input
/// must exist on its node, else the call fails with [`ImageError::Node`] naming the node
/// before anything is uploaded or queued (a server without `/object_info` is not checked).
/// For each call: the image to edit and the references are uploaded with
/// `POST /upload/image` (multipart `image`, `type=input`, `overwrite=true`) and their
/// returned names set on the mapped image inputs (`LoadImage` nodes); the prompt,
/// negative prompt, seed, width, height and batch size are set on their mapped nodes;
/// the job is queued with `POST /prompt` (`prompt`, `client_id`, and a `prompt_id`
/// chosen here, so a lost answer is recovered by looking the id up instead of queueing
/// twice). Each job has a client id of its own, because ComfyUI sends a client id's
/// messages only to its newest websocket: one client shared by concurrent jobs (a batch)
/// stays correct. Progress comes from the job's `/ws?clientId=` websocket (`progress`, `executing`,
/// `executed`, `execution_error`, `execution_success`) as
/// [`crate::PipelineEvent::GeneratorProgress`], with polling of `GET /history/{id}` when
/// the socket cannot be opened or drops. Images are read from `outputs[node].images[]`
/// through `GET /view`. `node_errors` and `execution_error` are [`ImageError::Node`]
/// naming every failing node and its messages; a job that outlives the timeout is interrupted
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
    object_info: ObjectInfoCache,
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
            object_info: ObjectInfoCache::default(),
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
        // This job's own client id: ComfyUI keeps one websocket per client id (the
        // newest), so a client id shared between concurrent jobs starves all but one.
        let client_id = uuid::Uuid::new_v4().to_string();
        // Connect before queueing so no message is missed.
        let channel = match (self.websocket, ws::ws_url(&self.base, &client_id)) {
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
        self.queue(graph, &prompt_id, &client_id).await?;
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
        let listed = entry.results(workflow.output_node());
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
        self.check_nodes(workflow)
            .instrument(tracing::info_span!("comfyui.object_info"))
            .await?;
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

    fn max_input_images(&self) -> Option<usize> {
        Some(self.limits.max_images.min(self.workflow.image_slots()))
    }

    fn describe(&self) -> String {
        format!("ComfyUI at {}", redact(&self.base))
    }

    fn identity(&self) -> String {
        format!(
            "{} workflow={} text_workflow={}",
            self.describe(),
            self.workflow.digest(),
            self.text_workflow
                .as_ref()
                .map(Workflow::digest)
                .unwrap_or_default()
        )
    }
}

/// A random seed (ComfyUI templates carry a fixed one).
fn rand_seed() -> u64 {
    let id = uuid::Uuid::new_v4();
    let b = id.as_bytes();
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) >> 1
}
