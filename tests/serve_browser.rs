//! The try-it page in a real browser: headless Chromium (Debian's `chromium`), driven
//! over the DevTools protocol, fills the form on `GET /`, submits it, lands on the run's
//! report page, and the page's DOM and a screenshot are checked. Skipped (said) without
//! Chromium; a failure under `CI=true`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use common::*;
use futures::{SinkExt, StreamExt};
use iat2i::Settings;
use iat2i::serve::{ServeConfig, Server};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use wiremock::MockServer;

/// The browser process, stopped however the test ends.
struct Browser(std::process::Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One DevTools session: commands by id, their results.
struct Cdp {
    ws: Socket,
    next: u64,
}

impl Cdp {
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws.send(Message::text(msg)).await.unwrap();
        loop {
            let Some(Ok(Message::Text(text))) = self.ws.next().await else {
                continue;
            };
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    async fn eval(&mut self, js: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": js, "returnByValue": true}),
            )
            .await;
        r["result"]["value"].clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_submitted_in_chromium_lands_on_its_report_page() {
    let Some(browser) = chromium() else {
        skip_or_fail("Chromium is not installed (apt-get install chromium)");
        return;
    };
    let api = MockServer::start().await;
    mount_images(&api, "generations", &["images_red.json"]).await;
    mount_chat(&api, "verdict", &["verdict_aligned.json"]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut s = Settings::default();
    s.chat.base_url = format!("{}/v1", api.uri());
    s.chat.api_key = Some(iat2i::Secret::new(KEY));
    s.run.gate_mode = iat2i::GateMode::Never;
    s.run.max_rounds = 1;
    s.memory.no_memory = true;
    s.memory.cache_dir = Some(dir.path().join("cache"));
    s.memory.model_dir = Some(tiny_model());
    let mut config = ServeConfig::new(vec![("iat2i/gpt-image-1".into(), s)]);
    config.state_dir = dir.path().join("state");
    let server = Server::new(config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(server.run(listener, std::future::pending()));

    let mut chrome = Browser(
        Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--remote-debugging-port=0",
            ])
            .arg(format!(
                "--user-data-dir={}",
                dir.path().join("profile").display()
            ))
            .arg("--window-size=1100,1400")
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = chrome.0.stderr.take().unwrap();
    let ws_url = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.split("DevTools listening on ").nth(1).map(str::to_string))
        .expect("Chromium printed its DevTools address");
    let port = ws_url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let targets: Value = reqwest::get(format!("http://127.0.0.1:{port}/json/list"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let page = targets
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "page")
        .unwrap();
    let (ws, _) = tokio_tungstenite::connect_async(page["webSocketDebuggerUrl"].as_str().unwrap())
        .await
        .unwrap();
    let mut cdp = Cdp { ws, next: 0 };
    cdp.call("Page.enable", json!({})).await;
    cdp.call("Page.navigate", json!({"url": format!("{base}/")}))
        .await;
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    while cdp.eval("!!document.querySelector('form textarea')").await != true {
        assert!(tokio::time::Instant::now() < until, "the form did not load");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        cdp.eval("document.querySelector('#model').value").await,
        "iat2i/gpt-image-1"
    );
    assert_eq!(
        cdp.eval("document.scripts.length").await,
        0,
        "the page runs no script"
    );
    cdp.eval(
        "document.querySelector('#prompt').value = 'A red apple <b>bold</b>'; \
         document.querySelector('form').submit(); true",
    )
    .await;
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let at = cdp
            .eval("location.pathname + '|' + document.readyState")
            .await;
        let at = at.as_str().unwrap_or_default().to_string();
        if at.starts_with("/reports/rep_") && at.ends_with("|complete") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "never reached a report page: {at}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The report shows the prompt as text, the image, the round with its scores.
    assert_eq!(
        cdp.eval("document.querySelector('#prompt').textContent")
            .await,
        "A red apple <b>bold</b>"
    );
    assert_eq!(
        cdp.eval("document.querySelectorAll('#prompt b').length")
            .await,
        0
    );
    let loaded = cdp
        .eval("(() => { const i = document.querySelector('#image'); return i.complete && i.naturalWidth > 0; })()")
        .await;
    assert_eq!(loaded, true, "the generated image loads");
    let rounds = cdp
        .eval("document.querySelector('#rounds').innerText")
        .await;
    assert!(rounds.as_str().unwrap().contains("9"), "{rounds}");
    assert_eq!(cdp.eval("document.scripts.length").await, 0);
    let shot = cdp
        .call("Page.captureScreenshot", json!({"format": "png"}))
        .await;
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().unwrap())
        .unwrap();
    let img = image::load_from_memory(&png).unwrap();
    assert!(
        img.width() >= 800 && img.height() >= 600,
        "{}x{}",
        img.width(),
        img.height()
    );
    // Kept beside the build for a person to look at.
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve-report-page.png");
    std::fs::write(&out, &png).unwrap();
    eprintln!("screenshot: {}", out.display());
}
