//! The routes: the OpenAI Images API, reports, the try-it page and operations.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::BytesRejection;
use axum::extract::{
    ConnectInfo, DefaultBodyLimit, FromRequestParts, MatchedPath, Multipart, Path, State as Shared,
};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use super::admission::bearer;
use super::api::{
    ApiError, ImageData, ImagesRequest, ImagesResponse, ImagesUsage, InputDetails, ModelEntry,
    ModelList, ReferenceSummary, RunSummary,
};
use super::{Model, State, pages};
use crate::guard::{CallUsage, Halt, HaltKind, PaidCall, PlannedCall, RunGuard};
use crate::pipeline::RunOptions;
use crate::settings::{Backend, parse_size};
use crate::{ErrorClass, Outcome, PipelineError, Report, Request};

type St = Arc<State>;

pub(super) fn router(state: St) -> Router {
    let limit = state.max_body_bytes;
    Router::new()
        .route("/v1/images/generations", post(generations))
        .route("/v1/images/edits", post(edits))
        .route("/v1/models", get(list_models))
        .route("/v1/reports/{id}", get(report_json))
        .route("/reports/{id}", get(report_page))
        .route("/reports/{id}/image", get(report_image))
        .route("/", get(index))
        .route("/try", post(try_it))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            let mut e = ApiError::not_found("this route does not take that method");
            e.status = StatusCode::METHOD_NOT_ALLOWED;
            e
        })
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), count))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// The pipeline a response came from, for the metrics.
#[derive(Clone)]
struct ModelName(String);

async fn count(Shared(s): Shared<St>, req: axum::extract::Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "other".into());
    let started = Instant::now();
    let response = next.run(req).await;
    let model = response
        .extensions()
        .get::<ModelName>()
        .map(|m| m.0.clone())
        .unwrap_or_default();
    s.metrics.request(
        &route,
        response.status().as_u16(),
        &model,
        started.elapsed().as_secs_f64(),
    );
    response
}

/// The caller's key name, checked.
struct Caller(String);

impl FromRequestParts<St> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, s: &St) -> Result<Self, ApiError> {
        let auth = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        s.keys.check(bearer(auth), peer).map(Caller)
    }
}

fn peer_of(parts: &axum::http::Extensions) -> Option<SocketAddr> {
    parts.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn body_error(e: BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large("the request body is larger than this server accepts")
    } else {
        ApiError::invalid(None, format!("the request body could not be read: {e}"))
    }
}

async fn generations(
    Shared(s): Shared<St>,
    Caller(key): Caller,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return body_error(e).into_response(),
    };
    let req: ImagesRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return ApiError::invalid(
                None,
                format!("We could not parse the JSON body of your request: {e}"),
            )
            .into_response();
        }
    };
    respond(generate(&s, &key, req, None).await)
}

async fn edits(
    Shared(s): Shared<St>,
    Caller(key): Caller,
    form: Result<Multipart, MultipartRejection>,
) -> Response {
    let form = match form {
        Ok(f) => f,
        Err(e) => {
            return ApiError::invalid(
                None,
                format!(
                    "/v1/images/edits takes a multipart/form-data body: {}",
                    e.body_text()
                ),
            )
            .into_response();
        }
    };
    let form = match read_form(form).await {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let Some(image) = form.images.first().cloned() else {
        return ApiError::invalid(
            Some("image"),
            "an image to edit is required (`image` or `image[]`)",
        )
        .into_response();
    };
    respond(generate(&s, &key, form.request(), Some((image, form.ignored))).await)
}

fn respond(result: Result<(ImagesResponse, String), ApiError>) -> Response {
    match result {
        Ok((body, model)) => {
            let mut r = axum::Json(body).into_response();
            r.extensions_mut().insert(ModelName(model));
            r
        }
        Err(e) => e.into_response(),
    }
}

/// A multipart form: the images and the text fields.
#[derive(Default)]
struct Form {
    images: Vec<Bytes>,
    fields: serde_json::Map<String, serde_json::Value>,
    key: Option<String>,
    ignored: Vec<String>,
}

impl Form {
    fn request(&self) -> ImagesRequest {
        serde_json::from_value(serde_json::Value::Object(self.fields.clone())).unwrap_or_default()
    }
}

async fn read_form(mut form: Multipart) -> Result<Form, ApiError> {
    let mut out = Form::default();
    let too_large = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large("the request body is larger than this server accepts")
        } else {
            ApiError::invalid(None, format!("the multipart body could not be read: {e}"))
        }
    };
    while let Some(field) = form.next_field().await.map_err(too_large)? {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "image" | "image[]" => {
                let bytes = field.bytes().await.map_err(too_large)?;
                if bytes.is_empty() {
                    continue;
                }
                if crate::generator::sniff_mime(&bytes).is_none() {
                    return Err(ApiError::invalid(
                        Some("image"),
                        "the uploaded image is not a PNG, JPEG, WebP or GIF image",
                    ));
                }
                out.images.push(bytes);
            }
            "mask" => {
                field.bytes().await.map_err(too_large)?;
                out.ignored
                    .push("mask: this server edits the whole image".into());
            }
            "key" => out.key = Some(field.text().await.map_err(too_large)?),
            _ => {
                let text = field.text().await.map_err(too_large)?;
                let value = match name.as_str() {
                    "n" => text
                        .trim()
                        .parse::<u64>()
                        .map(serde_json::Value::from)
                        .map_err(|_| {
                            ApiError::invalid(Some("n"), "n must be a number from 1 to 10")
                        })?,
                    _ => serde_json::Value::String(text),
                };
                out.fields.insert(name, value);
            }
        }
    }
    if out.images.len() > 1 {
        out.ignored.push(format!(
            "image[]: {} images were sent; the first is edited, the others are not used",
            out.images.len()
        ));
    }
    Ok(out)
}

/// Asks the budget before every paid call, and stops the run once its client is gone.
struct ServeGuard {
    budget: Arc<crate::batch::BudgetGuard>,
    gone: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl RunGuard for ServeGuard {
    async fn before_call(&self, call: PlannedCall) -> Result<(), Halt> {
        if self.gone.load(Ordering::SeqCst) {
            return Err(Halt::new(HaltKind::Cancelled, "the client disconnected"));
        }
        self.budget.before_call(call).await
    }

    async fn after_call(&self, call: PaidCall, usage: &CallUsage) {
        self.budget.after_call(call, usage).await;
    }
}

/// Sets its flag when dropped before `done`: the request's future was dropped (the
/// client disconnected), so the run stops before its next paid call.
struct OnDrop(Arc<AtomicBool>, bool);

impl Drop for OnDrop {
    fn drop(&mut self) {
        if !self.1 {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

/// Validate, admit, run `n` times, keep the reports, answer.
async fn generate(
    s: &St,
    key: &str,
    req: ImagesRequest,
    edit: Option<(Bytes, Vec<String>)>,
) -> Result<(ImagesResponse, String), ApiError> {
    if s.draining.load(Ordering::SeqCst) {
        return Err(ApiError::unavailable("the server is shutting down"));
    }
    let prompt = req.prompt.trim().to_string();
    if prompt.is_empty() {
        return Err(ApiError::invalid(
            Some("prompt"),
            "the prompt is empty: say what to draw",
        ));
    }
    if prompt.chars().count() > s.max_prompt_chars {
        return Err(ApiError::invalid(
            Some("prompt"),
            format!(
                "the prompt is longer than {} characters",
                s.max_prompt_chars
            ),
        )
        .with_code("string_above_max_length"));
    }
    let n = req.n.unwrap_or(1);
    if !(1..=10).contains(&n) {
        return Err(ApiError::invalid(Some("n"), "n must be from 1 to 10"));
    }
    match req.response_format.as_deref() {
        None | Some("b64_json") => {}
        Some(other) => {
            return Err(ApiError::invalid(
                Some("response_format"),
                format!("response_format {other:?} is not served: use b64_json"),
            ));
        }
    }
    let format = match req
        .output_format
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("png") => image::ImageFormat::Png,
        Some("jpeg") | Some("jpg") => image::ImageFormat::Jpeg,
        Some("webp") => image::ImageFormat::WebP,
        Some(other) => {
            return Err(ApiError::invalid(
                Some("output_format"),
                format!("output_format {other:?}: use png, jpeg or webp"),
            ));
        }
    };
    let size = match req.size.as_deref() {
        None => None,
        Some(t) => parse_size(t).map_err(|e| ApiError::invalid(Some("size"), e))?,
    };
    let model = s.model(req.model.as_deref()).ok_or_else(|| {
        ApiError::unknown_model(req.model.as_deref().unwrap_or(""), &s.model_names())
    })?;
    let (edit_image, mut ignored) = match edit {
        Some((image, ignored)) => (Some(image), ignored),
        None => (None, Vec::new()),
    };
    let mut generation = model.pipeline.generation().clone();
    if size.is_some() {
        generation = generation.size(size);
    }
    for (field, value) in [("quality", &req.quality), ("background", &req.background)] {
        let Some(v) = value.as_ref().filter(|v| !v.eq_ignore_ascii_case("auto")) else {
            continue;
        };
        if model.backend == Backend::Openai {
            generation = generation.option(field, serde_json::Value::String(v.clone()));
        } else {
            ignored.push(format!(
                "{field}: the {} pipeline has no such setting",
                model.name
            ));
        }
    }
    if let Some(user) = &req.user {
        tracing::debug!(user = %user, "request for an end user");
    }

    let _admitted = s.admission.admit(key).await?;
    s.metrics.queue_depth.set(s.admission.waiting() as i64);
    s.metrics.running.inc();
    let deadline = Instant::now() + s.request_timeout;
    let runs = (0..n).map(|_| {
        one_run(
            s,
            key,
            model,
            &prompt,
            edit_image.clone(),
            generation.clone(),
            deadline,
        )
    });
    let results = futures::future::join_all(runs).await;
    s.metrics.running.dec();

    let mut data = Vec::new();
    let mut summaries = Vec::new();
    let mut usage = ImagesUsage::default();
    let mut first_error = None;
    for r in results {
        match r {
            Ok((image, mut summary, u)) => {
                let bytes = encode_as(&image.bytes, format)?;
                data.push(ImageData {
                    b64_json: base64::engine::general_purpose::STANDARD.encode(bytes),
                    revised_prompt: image.revised_prompt.clone(),
                });
                summary
                    .degraded
                    .extend(ignored.iter().map(|i| format!("ignored {i}")));
                usage.input_tokens += u.input_tokens;
                usage.output_tokens += u.output_tokens;
                usage.total_tokens += u.total_tokens;
                usage.input_tokens_details.text_tokens += u.input_tokens_details.text_tokens;
                usage.input_tokens_details.image_tokens += u.input_tokens_details.image_tokens;
                summaries.push(summary);
            }
            Err(e) => {
                tracing::warn!(error = %e.message, model = %model.name, "serve: a run failed");
                first_error.get_or_insert(e);
            }
        }
    }
    if data.is_empty() {
        return Err(first_error.unwrap_or_else(|| ApiError::internal("no image was made")));
    }
    let output_format = match format {
        image::ImageFormat::Jpeg => "jpeg",
        image::ImageFormat::WebP => "webp",
        _ => "png",
    };
    Ok((
        ImagesResponse {
            created: unix_now(),
            data,
            usage,
            output_format: output_format.into(),
            iat2i: summaries,
        },
        model.name.clone(),
    ))
}

fn encode_as(bytes: &[u8], format: image::ImageFormat) -> Result<Vec<u8>, ApiError> {
    let same = matches!(
        (crate::generator::sniff_mime(bytes), format),
        (Some("image/png"), image::ImageFormat::Png)
            | (Some("image/jpeg"), image::ImageFormat::Jpeg)
            | (Some("image/webp"), image::ImageFormat::WebP)
    );
    if same {
        return Ok(bytes.to_vec());
    }
    let decoded = image::load_from_memory(bytes).map_err(|e| {
        ApiError::upstream(format!("the generated image could not be decoded: {e}"))
    })?;
    let decoded = match format {
        image::ImageFormat::Jpeg => image::DynamicImage::ImageRgb8(decoded.to_rgb8()),
        _ => decoded,
    };
    let mut out = std::io::Cursor::new(Vec::new());
    decoded
        .write_to(&mut out, format)
        .map_err(|e| ApiError::internal(format!("encoding the image: {e}")))?;
    Ok(out.into_inner())
}

/// One pipeline run, in a task of its own so that a disconnect stops it before its next
/// paid call (rather than cutting a call off), with its report kept.
async fn one_run(
    s: &St,
    key: &str,
    model: &Model,
    prompt: &str,
    edit: Option<Bytes>,
    generation: crate::generator::GenerationSettings,
    deadline: Instant,
) -> Result<(crate::GeneratedImage, RunSummary, ImagesUsage), ApiError> {
    let id = format!("rep_{}", uuid::Uuid::new_v4().simple());
    let budget = s
        .budgets
        .guard(key, &model.chat, &model.image, &id, deadline)
        .await?;
    let gone = Arc::new(AtomicBool::new(false));
    let mut on_drop = OnDrop(gone.clone(), false);
    let guard = Arc::new(ServeGuard {
        budget: budget.clone(),
        gone,
    });
    let mut request = Request::new(prompt);
    if let Some(image) = edit {
        request = request.with_edit_image(image);
    }
    let options = RunOptions::default()
        .with_guard(guard)
        .with_generation(generation);
    let pipeline = model.pipeline.clone();
    let task = tokio::spawn(async move { pipeline.run_with(request, options).await });
    let wait = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(30);
    let joined = tokio::time::timeout(wait, task).await;
    on_drop.1 = true;
    let result = match joined {
        Err(_) => {
            return Err(ApiError::timeout(
                "the request passed its deadline while a model call was running",
            ));
        }
        Ok(Err(e)) => return Err(ApiError::internal(format!("the run stopped: {e}"))),
        Ok(Ok(r)) => r,
    };
    // An estimate only when both models have a price.
    let priced = [&model.chat, &model.image]
        .iter()
        .all(|m| s.budgets.prices().get(m).is_some());
    let cost = priced.then(|| budget.spent.cost());
    match result {
        Ok(Outcome { image, report, .. }) => {
            s.metrics.run(&report, cost);
            keep(s, &id, &model.name, &report, Some(&image), cost).await;
            let u = &report.usage.images;
            let usage = ImagesUsage {
                input_tokens: u.input_tokens,
                output_tokens: u.output_tokens,
                total_tokens: u.total_tokens,
                input_tokens_details: InputDetails {
                    text_tokens: u.input_tokens_details.map_or(0, |d| d.text_tokens),
                    image_tokens: u.input_tokens_details.map_or(0, |d| d.image_tokens),
                },
            };
            Ok((image, summary(&id, &model.name, &report, cost), usage))
        }
        Err(e) => {
            if let Some(report) = e.report() {
                s.metrics.run(report, cost);
                keep(s, &id, &model.name, report, None, cost).await;
            }
            Err(error_of(&e, &id))
        }
    }
}

/// The OpenAI-style error for a run that made no image.
fn error_of(e: &PipelineError, id: &str) -> ApiError {
    let see = format!("{e} (report {id}: /v1/reports/{id})");
    match e {
        PipelineError::InvalidRequest(m) => ApiError::invalid(Some("image"), m.clone()),
        PipelineError::Halted { halt, .. } => match halt.kind {
            HaltKind::Budget => ApiError::quota(see),
            HaltKind::Deadline | HaltKind::JobTimeout => ApiError::timeout(see),
            HaltKind::Cancelled => ApiError::unavailable(see),
            HaltKind::Unrecorded => ApiError::internal(see),
        },
        PipelineError::Stage { source, .. } => {
            let wait = source
                .retry_after()
                .map(|d| d.as_secs().max(1))
                .unwrap_or(5);
            match source.class() {
                ErrorClass::RateLimited => {
                    // Retrying the request would pay again for the calls made before the
                    // rate limit: say so when there were any.
                    let paid = e.report().is_some_and(|r| {
                        r.usage.lmm_total.total_tokens > 0
                            || r.usage.images.images > 0
                            || r.usage.images.total_tokens > 0
                    });
                    let mut err = ApiError::rate_limited(see, wait);
                    err.retry = !paid;
                    err
                }
                ErrorClass::Quota => ApiError::upstream(see).with_code("upstream_quota"),
                ErrorClass::Safety => {
                    ApiError::invalid(Some("prompt"), see).with_code("content_policy_violation")
                }
                ErrorClass::InvalidRequest => ApiError::invalid(None, see),
                ErrorClass::Timeout => ApiError::timeout(see),
                ErrorClass::Internal | ErrorClass::Io => ApiError::internal(see),
                _ => ApiError::upstream(see),
            }
        }
        _ => ApiError::upstream(see).with_code("required_lost"),
    }
}

fn summary(id: &str, model: &str, report: &Report, cost: Option<f64>) -> RunSummary {
    let mut references: Vec<ReferenceSummary> = Vec::new();
    for r in report.rounds.iter().flat_map(|r| &r.references) {
        if references
            .iter()
            .any(|x| x.image_url == r.image_url.as_str())
        {
            continue;
        }
        references.push(ReferenceSummary {
            label: r.label.clone(),
            image_url: r.image_url.to_string(),
            source_page: r.source_page.as_ref().map(|u| u.to_string()),
            license: r.license.as_ref().map(|l| match &l.version {
                Some(v) => format!("{} {v}", l.code),
                None => l.code.clone(),
            }),
            creator: r.creator.clone(),
        });
    }
    RunSummary {
        report_id: id.to_string(),
        report_url: format!("/v1/reports/{id}"),
        page_url: format!("/reports/{id}"),
        model: model.to_string(),
        rounds: report.rounds.len(),
        stop_reason: report.stop_reason.clone(),
        references,
        degraded: report.degraded.iter().map(|d| d.to_string()).collect(),
        chat_tokens: report.usage.lmm_total.total_tokens,
        cost_usd: cost,
    }
}

/// Keep the report (and image); a failure is logged: the client still gets its image.
async fn keep(
    s: &St,
    id: &str,
    model: &str,
    report: &Report,
    image: Option<&crate::GeneratedImage>,
    cost: Option<f64>,
) {
    let json = match serde_json::to_vec(report) {
        Ok(j) => j,
        Err(e) => {
            tracing::error!(error = %e, "serve: the report could not be serialised");
            return;
        }
    };
    let kept = super::reports::Kept {
        model: model.to_string(),
        cost_usd: cost,
        report: json,
        image: image.map(|i| (i.bytes.to_vec(), i.mime.clone())),
    };
    let (reports, id) = (s.reports.clone(), id.to_string());
    let written = tokio::task::spawn_blocking(move || reports.put(&id, unix_now(), &kept)).await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "serve: the report could not be kept"),
        Err(e) => tracing::error!(error = %e, "serve: the report could not be kept"),
    }
}

/// Run `id`'s kept report: 404 for an id that is not one of ours.
async fn read_report(s: &St, id: &str) -> Result<super::reports::Kept, ApiError> {
    let well_formed =
        id.len() == 36 && id.starts_with("rep_") && id[4..].chars().all(|c| c.is_ascii_hexdigit());
    let missing = || ApiError::not_found(format!("no report {id:?}"));
    if !well_formed {
        return Err(missing());
    }
    let (reports, key) = (s.reports.clone(), id.to_string());
    match tokio::task::spawn_blocking(move || reports.get(&key)).await {
        Ok(Ok(Some(k))) => Ok(k),
        Ok(Ok(None)) => Err(missing()),
        Ok(Err(e)) => Err(ApiError::internal(format!("reading the report: {e}"))),
        Err(e) => Err(ApiError::internal(format!("reading the report: {e}"))),
    }
}

async fn report_json(Shared(s): Shared<St>, Caller(_): Caller, Path(id): Path<String>) -> Response {
    match read_report(&s, &id).await {
        Ok(k) => ([(header::CONTENT_TYPE, "application/json")], k.report).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The report page: its id is the capability (128 random bits), as a shared link is.
async fn report_page(Shared(s): Shared<St>, Path(id): Path<String>) -> Response {
    let page = read_report(&s, &id).await.and_then(|k| {
        let report: Report = serde_json::from_slice(&k.report)
            .map_err(|e| ApiError::internal(format!("the stored report is unreadable: {e}")))?;
        pages::report(&id, &k.model, &report, k.cost_usd)
            .map_err(|e| ApiError::internal(format!("rendering the report: {e}")))
    });
    match page {
        Ok(html) => Html(html).into_response(),
        Err(e) => (e.status, Html(pages::error(e.status.as_u16(), &e.message))).into_response(),
    }
}

async fn report_image(Shared(s): Shared<St>, Path(id): Path<String>) -> Response {
    match read_report(&s, &id).await {
        Ok(super::reports::Kept {
            image: Some((bytes, mime)),
            ..
        }) => ([(header::CONTENT_TYPE, mime)], bytes).into_response(),
        Ok(_) => ApiError::not_found("this run made no image").into_response(),
        Err(e) => e.into_response(),
    }
}

async fn list_models(Shared(s): Shared<St>, Caller(_): Caller) -> Response {
    axum::Json(ModelList {
        object: "list",
        data: s
            .models
            .iter()
            .map(|m| ModelEntry {
                id: m.name.clone(),
                object: "model",
                created: s.started,
                owned_by: "iat2i",
            })
            .collect(),
    })
    .into_response()
}

async fn index(Shared(s): Shared<St>) -> Response {
    match pages::index(&s.model_names(), s.keys.configured(), s.max_prompt_chars) {
        Ok(html) => Html(html).into_response(),
        Err(e) => ApiError::internal(format!("rendering the page: {e}")).into_response(),
    }
}

/// The form: generate, then land on the report page.
async fn try_it(Shared(s): Shared<St>, req: axum::extract::Request) -> Response {
    let peer = peer_of(req.extensions());
    let page_error =
        |e: ApiError| (e.status, Html(pages::error(e.status.as_u16(), &e.message))).into_response();
    let form = match Multipart::from_request(req, &s).await {
        Ok(f) => f,
        Err(e) => return page_error(ApiError::invalid(None, e.body_text())),
    };
    let form = match read_form(form).await {
        Ok(f) => f,
        Err(e) => return page_error(e),
    };
    let key = match s.keys.check(form.key.as_deref(), peer) {
        Ok(k) => k,
        Err(e) => return page_error(e),
    };
    let edit = form
        .images
        .first()
        .cloned()
        .map(|i| (i, form.ignored.clone()));
    match generate(&s, &key, form.request(), edit).await {
        Ok((body, _)) => match body.iat2i.first() {
            Some(run) => Redirect::to(&run.page_url).into_response(),
            None => page_error(ApiError::internal("no report was kept")),
        },
        Err(e) => page_error(e),
    }
}

async fn readyz(Shared(s): Shared<St>) -> Response {
    let why = s.not_ready_because.lock().ok().and_then(|w| w.clone());
    if s.draining.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    if s.ready.load(Ordering::SeqCst) {
        let body = match why {
            Some(w) => format!("ready, degraded: {w}"),
            None => "ready".into(),
        };
        return (StatusCode::OK, body).into_response();
    }
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("not ready: {}", why.unwrap_or_else(|| "starting".into())),
    )
        .into_response()
}

async fn metrics(Shared(s): Shared<St>) -> Response {
    s.metrics.queue_depth.set(s.admission.waiting() as i64);
    let mut r = s.metrics.render().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

use axum::extract::FromRequest;
