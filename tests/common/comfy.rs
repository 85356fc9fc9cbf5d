//! A local ComfyUI: wiremock answers the HTTP API (`/upload/image`, `/prompt`,
//! `/history/{id}`, `/view`, `/interrupt`, `/queue`), and a front listener on the
//! address the client is given hands `/ws` upgrades to a websocket script and proxies
//! everything else to wiremock.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request as WireRequest, Respond, ResponseTemplate};

use super::{gen_bytes, gen_json_with, requests_to};

/// What the websocket does once the job is queued.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum WsScript {
    /// Reports progress and success.
    Success,
    /// Reports an `execution_error` on node 3.
    Error,
    /// Sends `execution_start`, then drops the connection.
    Drop,
}

/// How `/history/{id}` answers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HistoryScript {
    /// `{}` `pending` times, then the success entry.
    SuccessAfter(usize),
    /// `{}` once, then the error entry.
    Error,
    /// Always `{}` (the job never ends).
    Never,
}

pub struct Comfy {
    pub http: Arc<MockServer>,
    pub base: String,
}

struct History {
    script: HistoryScript,
    calls: AtomicUsize,
}

impl Respond for History {
    fn respond(&self, r: &WireRequest) -> ResponseTemplate {
        let id = r.url.path().rsplit('/').next().unwrap_or("").to_string();
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let fixture = match self.script {
            HistoryScript::SuccessAfter(k) if n >= k => Some("comfyui_history_success.json"),
            HistoryScript::Error if n >= 1 => Some("comfyui_history_error.json"),
            _ => None,
        };
        match fixture {
            Some(f) => ResponseTemplate::new(200).set_body_json(gen_json_with(
                f,
                &[("__PROMPT_ID__", &id), ("__CLIENT_ID__", "client")],
            )),
            None => ResponseTemplate::new(200).set_body_json(json!({})),
        }
    }
}

/// `/prompt` echoes the client's prompt_id, as ComfyUI does.
struct PromptOk;
impl Respond for PromptOk {
    fn respond(&self, r: &WireRequest) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        let id = body["prompt_id"].as_str().unwrap_or("").to_string();
        ResponseTemplate::new(200).set_body_json(gen_json_with(
            "comfyui_prompt_ok.json",
            &[("__PROMPT_ID__", &id)],
        ))
    }
}

/// `/upload/image` answers with the uploaded file's name.
struct Upload;
impl Respond for Upload {
    fn respond(&self, r: &WireRequest) -> ResponseTemplate {
        let text = String::from_utf8_lossy(&r.body);
        let name = text
            .split("filename=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or("upload.png")
            .to_string();
        ResponseTemplate::new(200)
            .set_body_json(gen_json_with("comfyui_upload.json", &[("__NAME__", &name)]))
    }
}

impl Comfy {
    /// A server whose `/prompt` accepts the job.
    pub async fn start(ws: Option<WsScript>, history: HistoryScript) -> Comfy {
        let http = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/prompt"))
            .respond_with(PromptOk)
            .mount(&http)
            .await;
        Comfy::mount_rest(&http, history).await;
        let http = Arc::new(http);
        let base = front(http.clone(), ws).await;
        Comfy { http, base }
    }

    /// A server whose `/prompt` answers `status` with `body`.
    pub async fn rejecting(body: ResponseTemplate) -> Comfy {
        let http = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/prompt"))
            .respond_with(body)
            .mount(&http)
            .await;
        Comfy::mount_rest(&http, HistoryScript::Never).await;
        let http = Arc::new(http);
        let base = front(http.clone(), None).await;
        Comfy { http, base }
    }

    async fn mount_rest(http: &MockServer, history: HistoryScript) {
        Mock::given(method("POST"))
            .and(path("/upload/image"))
            .respond_with(Upload)
            .mount(http)
            .await;
        Mock::given(method("GET"))
            .and(path_regex("^/history/.+"))
            .respond_with(History {
                script: history,
                calls: AtomicUsize::new(0),
            })
            .mount(http)
            .await;
        Mock::given(method("GET"))
            .and(path("/view"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_raw(gen_bytes("teal.png").to_vec(), "image/png"),
            )
            .mount(http)
            .await;
        for p in ["/interrupt", "/queue"] {
            Mock::given(method("POST"))
                .and(path(p))
                .respond_with(ResponseTemplate::new(200))
                .mount(http)
                .await;
        }
        Mock::given(method("GET"))
            .and(path("/queue"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"queue_running": [], "queue_pending": []})),
            )
            .mount(http)
            .await;
    }

    pub async fn requests(&self, p: &str) -> Vec<WireRequest> {
        requests_to(&self.http, p).await
    }

    /// The JSON body of the one `/prompt` request.
    pub async fn queued(&self) -> Value {
        let r = self.requests("/prompt").await;
        assert_eq!(r.len(), 1, "queued {} times", r.len());
        serde_json::from_slice(&r[0].body).unwrap()
    }
}

/// The front listener: `/ws` upgrades run `ws`; the rest is proxied to wiremock.
async fn front(http: Arc<MockServer>, ws: Option<WsScript>) -> String {
    let backend = http.address().to_string();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let backend = backend.clone();
            let http = http.clone();
            tokio::spawn(async move {
                let mut head = [0u8; 16];
                let n = stream.peek(&mut head).await.unwrap_or(0);
                if head[..n].starts_with(b"GET /ws") {
                    if let Some(script) = ws {
                        run_ws(stream, script, &http).await;
                    }
                } else {
                    proxy(stream, &backend).await;
                }
            });
        }
    });
    format!("http://{addr}")
}

async fn proxy(mut client: TcpStream, backend: &str) {
    if let Ok(mut server) = TcpStream::connect(backend).await {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    }
}

/// The prompt_id of the job queued on `http`, once there is one.
async fn queued_id(http: &MockServer) -> String {
    for _ in 0..250 {
        let reqs = http.received_requests().await.unwrap_or_default();
        let id = reqs
            .iter()
            .filter(|r| r.url.path() == "/prompt")
            .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
            .find_map(|b| b["prompt_id"].as_str().map(str::to_string));
        if let Some(id) = id {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    String::new()
}

async fn run_ws(stream: TcpStream, script: WsScript, http: &MockServer) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let status = json!({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "client"}});
    let _ = ws.send(Message::text(status.to_string())).await;
    let id = queued_id(http).await;
    let msg =
        |kind: &str, data: Value| Message::text(json!({"type": kind, "data": data}).to_string());
    let _ = ws
        .send(msg(
            "execution_start",
            json!({"prompt_id": id, "timestamp": 1746042000123u64}),
        ))
        .await;
    if script == WsScript::Drop {
        drop(ws);
        return;
    }
    let steps = vec![
        msg(
            "execution_cached",
            json!({"nodes": ["4"], "prompt_id": id, "timestamp": 1}),
        ),
        // Another client's job: ignored.
        msg(
            "progress",
            json!({"value": 9, "max": 9, "prompt_id": "someone-else", "node": "3"}),
        ),
        msg(
            "executing",
            json!({"node": "3", "display_node": "3", "prompt_id": id}),
        ),
        // A binary preview frame (type 1 = JPEG preview): ignored.
        Message::binary(vec![0u8, 0, 0, 1, 0, 0, 0, 1, 0xff, 0xd8]),
        msg(
            "progress",
            json!({"value": 1, "max": 2, "prompt_id": id, "node": "3"}),
        ),
        msg(
            "progress",
            json!({"value": 2, "max": 2, "prompt_id": id, "node": "3"}),
        ),
    ];
    for m in steps {
        let _ = ws.send(m).await;
    }
    let end = match script {
        WsScript::Error => vec![msg(
            "execution_error",
            json!({"prompt_id": id, "node_id": "3", "node_type": "KSampler", "executed": ["4"],
                   "exception_message": "Expected all tensors to be on the same device",
                   "exception_type": "RuntimeError", "traceback": [], "current_inputs": {},
                   "current_outputs": {}, "timestamp": 2}),
        )],
        _ => vec![
            msg(
                "executed",
                json!({"node": "9", "display_node": "9", "output": {"images": [
                {"filename": "iat2i_00001_.png", "subfolder": "", "type": "output"}]}, "prompt_id": id}),
            ),
            msg("executing", json!({"node": null, "prompt_id": id})),
            msg(
                "execution_success",
                json!({"prompt_id": id, "timestamp": 3}),
            ),
        ],
    };
    for m in end {
        let _ = ws.send(m).await;
    }
    // Keep the socket open a moment, as a server would.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = ws.close(None).await;
    let _ = StreamExt::next(&mut ws).await;
}
