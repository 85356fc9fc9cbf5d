//! The OpenAI Images API on the wire: requests, responses and the error object, with the
//! field names, nesting and status codes of OpenAI's own API.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// `POST /v1/images/generations` (JSON), and the form fields of `/v1/images/edits`.
/// Unknown fields are ignored, as OpenAI's SDKs expect.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImagesRequest {
    /// A configured pipeline (`iat2i/gpt-image-1`); default: the first configured.
    pub model: Option<String>,
    /// What to draw.
    #[serde(default)]
    pub prompt: String,
    /// Images wanted, 1 to 10 (each one a run of its own).
    pub n: Option<u32>,
    /// `auto`, WIDTHxHEIGHT.
    pub size: Option<String>,
    /// `low`, `medium`, `high`, `auto` (`standard`, `hd`): OpenAI backends only.
    pub quality: Option<String>,
    /// Only `b64_json` is served.
    pub response_format: Option<String>,
    /// `transparent`, `opaque`, `auto`: OpenAI backends only.
    pub background: Option<String>,
    /// `png` (default), `jpeg` or `webp`.
    pub output_format: Option<String>,
    /// The end user, for the logs (not stored).
    pub user: Option<String>,
}

/// One image of a response.
#[derive(Debug, Clone, Serialize)]
pub struct ImageData {
    /// The image, base64.
    pub b64_json: String,
    /// The prompt the backend says it used, when it rewrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revised_prompt: Option<String>,
}

/// Token usage, in OpenAI's shape (`gpt-image-1` answers with it).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImagesUsage {
    /// Input tokens (text and images).
    pub input_tokens: u64,
    /// Output (image) tokens.
    pub output_tokens: u64,
    /// Both.
    pub total_tokens: u64,
    /// Input tokens by kind.
    pub input_tokens_details: InputDetails,
}

/// Input tokens by kind.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InputDetails {
    /// Text tokens.
    pub text_tokens: u64,
    /// Image tokens.
    pub image_tokens: u64,
}

/// The response: OpenAI's fields, and what iat2i adds in `iat2i` (clients ignore it).
#[derive(Debug, Clone, Serialize)]
pub struct ImagesResponse {
    /// Unix seconds.
    pub created: u64,
    /// The images.
    pub data: Vec<ImageData>,
    /// The image backend's usage, summed over the runs.
    pub usage: ImagesUsage,
    /// The output format.
    pub output_format: String,
    /// What iat2i did: one entry per image.
    pub iat2i: Vec<RunSummary>,
}

/// What one run did, in brief; the whole report is at `report_url`.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// The report's id (`GET /v1/reports/{id}`).
    pub report_id: String,
    /// The report as JSON.
    pub report_url: String,
    /// The report as a page.
    pub page_url: String,
    /// The pipeline that ran.
    pub model: String,
    /// Rounds generated.
    pub rounds: usize,
    /// Why the run stopped, in words.
    pub stop_reason: String,
    /// The references the image was conditioned on.
    pub references: Vec<ReferenceSummary>,
    /// What the run lost on the way (empty: nothing).
    pub degraded: Vec<String>,
    /// Chat tokens spent deciding and judging.
    pub chat_tokens: u64,
    /// Estimated cost in US dollars, when the models are priced.
    pub cost_usd: Option<f64>,
}

/// A reference, with where it comes from.
#[derive(Debug, Clone, Serialize)]
pub struct ReferenceSummary {
    /// What it shows.
    pub label: String,
    /// The image.
    pub image_url: String,
    /// The page it appears on.
    pub source_page: Option<String>,
    /// Its licence.
    pub license: Option<String>,
    /// Its creator.
    pub creator: Option<String>,
}

/// `GET /v1/models`.
#[derive(Debug, Clone, Serialize)]
pub struct ModelList {
    /// `list`.
    pub object: &'static str,
    /// The configured pipelines.
    pub data: Vec<ModelEntry>,
}

/// One configured pipeline.
#[derive(Debug, Clone, Serialize)]
pub struct ModelEntry {
    /// Its name.
    pub id: String,
    /// `model`.
    pub object: &'static str,
    /// Unix seconds the server started.
    pub created: u64,
    /// `iat2i`.
    pub owned_by: &'static str,
}

/// OpenAI's error object, with its status (and `Retry-After` for 429s).
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// For people.
    pub message: String,
    /// `invalid_request_error`, `authentication_error`, `rate_limit_error`, ...
    pub kind: &'static str,
    /// The request field at fault.
    pub param: Option<&'static str>,
    /// A machine-readable code (`invalid_api_key`, `model_not_found`, ...).
    pub code: Option<&'static str>,
    /// Seconds to wait, for 429 and 503.
    pub retry_after: Option<u64>,
    /// Whether a client may send the request again as it is. OpenAI's SDKs retry 429s
    /// and 5xx on their own unless told `x-should-retry: false`: said for every error
    /// after which a paid call may have been made (or retrying cannot help), so that a
    /// client never pays twice for one request.
    pub retry: bool,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorObject<'a>,
}

#[derive(Serialize)]
struct ErrorObject<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
            retry_after: None,
            retry: false,
        }
    }

    /// 400, the request is wrong.
    pub fn invalid(param: Option<&'static str>, message: impl Into<String>) -> Self {
        ApiError {
            param,
            ..Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
        }
    }

    /// 401, no key or a wrong one.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError {
            code: Some("invalid_api_key"),
            ..Self::new(StatusCode::UNAUTHORIZED, "invalid_request_error", message)
        }
    }

    /// 404, no such model.
    pub fn unknown_model(model: &str, known: &[String]) -> Self {
        ApiError {
            param: Some("model"),
            code: Some("model_not_found"),
            ..Self::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                format!(
                    "The model `{model}` does not exist on this server; it serves: {}",
                    known.join(", ")
                ),
            )
        }
    }

    /// 404, no such resource.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "invalid_request_error", message)
    }

    /// 413, the body is too large.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            message,
        )
    }

    /// 429, try again later (a full queue, too many requests at once for a key, an
    /// upstream rate limit).
    pub fn rate_limited(message: impl Into<String>, retry_after: u64) -> Self {
        ApiError {
            code: Some("rate_limit_exceeded"),
            retry_after: Some(retry_after),
            retry: true,
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "requests", message)
        }
    }

    /// 429, the key's budget for today is spent (no point retrying before tomorrow).
    pub fn quota(message: impl Into<String>) -> Self {
        ApiError {
            code: Some("insufficient_quota"),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "insufficient_quota", message)
        }
    }

    /// 502, a model service failed.
    pub fn upstream(message: impl Into<String>) -> Self {
        ApiError {
            code: Some("upstream_error"),
            ..Self::new(StatusCode::BAD_GATEWAY, "server_error", message)
        }
    }

    /// 503, not ready or shutting down: nothing was paid for, another replica may answer.
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError {
            retry_after: Some(5),
            retry: true,
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", message)
        }
    }

    /// 504, past the request's deadline.
    pub fn timeout(message: impl Into<String>) -> Self {
        ApiError {
            code: Some("timeout"),
            ..Self::new(StatusCode::GATEWAY_TIMEOUT, "server_error", message)
        }
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
    }

    /// With a code.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorObject {
                message: &self.message,
                kind: self.kind,
                param: self.param,
                code: self.code,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        response.headers_mut().insert(
            "x-should-retry",
            HeaderValue::from_static(if self.retry { "true" } else { "false" }),
        );
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}
