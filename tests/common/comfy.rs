//! A local ComfyUI: wiremock answers the HTTP API (`/upload/image`, `/prompt`,
//! `/history/{id}`, `/view`, `/interrupt`, `/queue`, and `/object_info` when asked), and
//! a front listener on the address the client is given hands `/ws` upgrades to a
//! websocket hub and proxies everything else to wiremock.
//!
//! The hub behaves like ComfyUI's `PromptServer`: sockets are kept in a map keyed by
//! `clientId`, a new socket with the same id replaces the older one (which stays open
//! and hears nothing more), and a job's messages go to whichever socket holds the
//! job's `client_id` when each message is sent. Jobs run concurrently, each for
//! [`Comfy::run_for`], and the n-th job queued saves `iat2i_0000n_.png`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use iat2i::generator::comfyui::{ComfyUi, Workflow};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request as WireRequest, Respond, ResponseTemplate};

use super::{encode, gen_bytes, gen_json_with, requests_to, scene, test_http};

/// One of `examples/workflows/` with its node map.
pub fn comfy_workflow(name: &str) -> Workflow {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/workflows");
    let graph = std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap();
    let nodes = std::fs::read_to_string(dir.join(format!("{name}.nodes.json"))).unwrap();
    Workflow::from_json(&graph, &nodes).unwrap()
}

/// What the websocket says about each job once it is queued.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum WsScript {
    /// Reports progress and success.
    Success,
    /// Reports progress, then an `execution_error` on node 3.
    Error,
    /// Sends `execution_start`, then closes the connection.
    Drop,
    /// As `Success`, with step progress sent without `prompt_id` and `node`, as
    /// ComfyUI builds before the prompt id was added to `progress` do.
    LegacyProgress,
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
    hub: Arc<Hub>,
}

/// What the hub sends down one socket.
enum Out {
    Frame(Message),
    Close,
}

/// ComfyUI's socket map and job runner.
struct Hub {
    script: Option<WsScript>,
    run_for: Mutex<Duration>,
    sockets: Mutex<HashMap<String, UnboundedSender<Out>>>,
    connected: Mutex<Vec<String>>,
    files: Mutex<HashMap<String, usize>>,
    queued: Mutex<Option<UnboundedSender<(String, String)>>>,
}

impl Hub {
    /// Send to the socket that holds `client_id` now; nothing when none does.
    fn send(&self, client_id: &str, out: Out) {
        if let Some(tx) = self.sockets.lock().unwrap().get(client_id) {
            let _ = tx.send(out);
        }
    }

    /// The output file number of `prompt_id` (1 for the first job queued, ...).
    fn file_of(&self, prompt_id: &str) -> usize {
        let mut files = self.files.lock().unwrap();
        let n = files.len() + 1;
        *files.entry(prompt_id.to_string()).or_insert(n)
    }
}

struct History {
    script: HistoryScript,
    calls: AtomicUsize,
    hub: Arc<Hub>,
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
        let file = file_name(self.hub.file_of(&id));
        match fixture {
            Some(f) => ResponseTemplate::new(200).set_body_json(gen_json_with(
                f,
                &[
                    ("__PROMPT_ID__", &id),
                    ("__CLIENT_ID__", "client"),
                    ("iat2i_00001_.png", &file),
                ],
            )),
            None => ResponseTemplate::new(200).set_body_json(json!({})),
        }
    }
}

fn file_name(n: usize) -> String {
    format!("iat2i_{n:05}_.png")
}

/// `/prompt` echoes the client's prompt_id, as ComfyUI does, and starts the job.
struct PromptOk(Arc<Hub>);
impl Respond for PromptOk {
    fn respond(&self, r: &WireRequest) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        let id = body["prompt_id"].as_str().unwrap_or("").to_string();
        let client = body["client_id"].as_str().unwrap_or("").to_string();
        self.0.file_of(&id);
        if let Some(q) = self.0.queued.lock().unwrap().as_ref() {
            let _ = q.send((client, id.clone()));
        }
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

/// `/view` serves job n's image for `iat2i_0000n_.png`.
struct View;
impl Respond for View {
    fn respond(&self, r: &WireRequest) -> ResponseTemplate {
        let n = r
            .url
            .query_pairs()
            .find(|(k, _)| k == "filename")
            .and_then(|(_, f)| {
                f.strip_prefix("iat2i_")
                    .and_then(|s| s.strip_suffix("_.png"))
                    .and_then(|s| s.parse::<usize>().ok())
            });
        match n {
            Some(n) => ResponseTemplate::new(200).set_body_raw(Comfy::output(n), "image/png"),
            None => ResponseTemplate::new(404),
        }
    }
}

impl Comfy {
    /// A server whose `/prompt` accepts the job.
    pub async fn start(ws: Option<WsScript>, history: HistoryScript) -> Comfy {
        let hub = Arc::new(Hub {
            script: ws,
            run_for: Mutex::new(Duration::ZERO),
            sockets: Mutex::default(),
            connected: Mutex::default(),
            files: Mutex::default(),
            queued: Mutex::new(None),
        });
        let http = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/prompt"))
            .respond_with(PromptOk(hub.clone()))
            .mount(&http)
            .await;
        Comfy::mount_rest(&http, history, &hub).await;
        let http = Arc::new(http);
        let base = front(http.clone(), hub.clone()).await;
        if let Some(script) = ws {
            let (tx, mut rx) = unbounded_channel::<(String, String)>();
            *hub.queued.lock().unwrap() = Some(tx);
            let runner = hub.clone();
            tokio::spawn(async move {
                while let Some((client, id)) = rx.recv().await {
                    tokio::spawn(run_job(runner.clone(), script, client, id));
                }
            });
        }
        Comfy { http, base, hub }
    }

    /// A server whose `/prompt` answers `status` with `body`.
    pub async fn rejecting(body: ResponseTemplate) -> Comfy {
        let comfy = Comfy::start(None, HistoryScript::Never).await;
        comfy.http.reset().await;
        Mock::given(method("POST"))
            .and(path("/prompt"))
            .respond_with(body)
            .mount(&comfy.http)
            .await;
        Comfy::mount_rest(&comfy.http, HistoryScript::Never, &comfy.hub).await;
        comfy
    }

    /// A client of this server running `wf` (quick polls, a 10 s timeout).
    pub fn client(&self, wf: Workflow) -> ComfyUi {
        ComfyUi::new(test_http(), &self.base, wf)
            .unwrap()
            .with_poll_interval(Duration::from_millis(20))
            .with_timeout(Duration::from_secs(10))
    }

    /// Each job takes `d` between its first progress and its end.
    pub fn run_for(self, d: Duration) -> Comfy {
        *self.hub.run_for.lock().unwrap() = d;
        self
    }

    /// Serve `GET /object_info` with `body`.
    pub async fn serve_object_info(&self, body: Value) {
        Mock::given(method("GET"))
            .and(path("/object_info"))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&self.http)
            .await;
    }

    /// The image of the n-th job queued (the first is `teal.png`).
    pub fn output(n: usize) -> Vec<u8> {
        if n == 1 {
            return gen_bytes("teal.png").to_vec();
        }
        encode(scene(n as u32, 16, 16), image::ImageFormat::Png)
    }

    /// The output number of the job queued as `prompt_id`.
    pub fn file_of(&self, prompt_id: &str) -> usize {
        self.hub.file_of(prompt_id)
    }

    /// The `clientId` of every websocket opened, in order.
    pub fn ws_clients(&self) -> Vec<String> {
        self.hub.connected.lock().unwrap().clone()
    }

    async fn mount_rest(http: &MockServer, history: HistoryScript, hub: &Arc<Hub>) {
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
                hub: hub.clone(),
            })
            .mount(http)
            .await;
        Mock::given(method("GET"))
            .and(path("/view"))
            .respond_with(View)
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

/// The front listener: `/ws` upgrades go to the hub (when it has a script); the rest
/// is proxied to wiremock.
async fn front(http: Arc<MockServer>, hub: Arc<Hub>) -> String {
    let backend = http.address().to_string();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let backend = backend.clone();
            let hub = hub.clone();
            tokio::spawn(async move {
                let mut head = [0u8; 16];
                let n = stream.peek(&mut head).await.unwrap_or(0);
                if head[..n].starts_with(b"GET /ws") {
                    if hub.script.is_some() {
                        serve_ws(stream, hub).await;
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

/// One websocket, as ComfyUI's `websocket_handler` keeps it.
async fn serve_ws(stream: TcpStream, hub: Arc<Hub>) {
    let mut client_id = String::new();
    // The callback's error type is tungstenite's, not ours to shrink.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| {
        client_id = url::Url::parse(&format!("http://x{}", req.uri()))
            .ok()
            .and_then(|u| {
                u.query_pairs()
                    .find(|(k, _)| k == "clientId")
                    .map(|(_, v)| v.into_owned())
            })
            .unwrap_or_default();
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let (tx, mut rx) = unbounded_channel();
    // ComfyUI: `self.sockets.pop(sid, None)` then `self.sockets[sid] = ws`: the older
    // socket stays open but is no longer in the map.
    hub.sockets.lock().unwrap().insert(client_id.clone(), tx);
    hub.connected.lock().unwrap().push(client_id.clone());
    let status = json!({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": client_id}});
    let _ = ws.send(Message::text(status.to_string())).await;
    let mut replaced = false;
    loop {
        tokio::select! {
            out = rx.recv(), if !replaced => match out {
                Some(Out::Frame(m)) => { let _ = ws.send(m).await; }
                Some(Out::Close) => { let _ = ws.close(None).await; }
                None => replaced = true,
            },
            incoming = ws.next() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
    // ComfyUI's `finally: self.sockets.pop(sid, None)`: even when this socket had been
    // replaced, which takes the newer socket out of the map too.
    hub.sockets.lock().unwrap().remove(&client_id);
}

/// Run one queued job: its messages go to the socket holding `client` at each send.
async fn run_job(hub: Arc<Hub>, script: WsScript, client: String, id: String) {
    let msg = |kind: &str, data: Value| {
        Out::Frame(Message::text(
            json!({"type": kind, "data": data}).to_string(),
        ))
    };
    let send = |out: Out| hub.send(&client, out);
    send(msg(
        "execution_start",
        json!({"prompt_id": id, "timestamp": 1746042000123u64}),
    ));
    if script == WsScript::Drop {
        send(Out::Close);
        return;
    }
    send(msg(
        "execution_cached",
        json!({"nodes": ["4"], "prompt_id": id, "timestamp": 1}),
    ));
    // Another client's job: ignored.
    send(msg(
        "progress",
        json!({"value": 9, "max": 9, "prompt_id": "someone-else", "node": "3"}),
    ));
    send(msg(
        "executing",
        json!({"node": "3", "display_node": "3", "prompt_id": id}),
    ));
    // A binary preview frame (type 1 = JPEG preview): ignored.
    send(Out::Frame(Message::binary(vec![
        0u8, 0, 0, 1, 0, 0, 0, 1, 0xff, 0xd8,
    ])));
    for value in [1, 2] {
        let data = match script {
            WsScript::LegacyProgress => json!({"value": value, "max": 2}),
            _ => json!({"value": value, "max": 2, "prompt_id": id, "node": "3"}),
        };
        send(msg("progress", data));
    }
    let run_for = *hub.run_for.lock().unwrap();
    tokio::time::sleep(run_for).await;
    if script == WsScript::Error {
        send(msg(
            "execution_error",
            json!({"prompt_id": id, "node_id": "3", "node_type": "KSampler", "executed": ["4"],
                   "exception_message": "Expected all tensors to be on the same device",
                   "exception_type": "RuntimeError", "traceback": [], "current_inputs": {},
                   "current_outputs": {}, "timestamp": 2}),
        ));
        return;
    }
    let file = file_name(hub.file_of(&id));
    send(msg(
        "executed",
        json!({"node": "9", "display_node": "9", "output": {"images": [
            {"filename": file, "subfolder": "", "type": "output"}]}, "prompt_id": id}),
    ));
    send(msg("executing", json!({"node": null, "prompt_id": id})));
    send(msg(
        "execution_success",
        json!({"prompt_id": id, "timestamp": 3}),
    ));
}
