//! A real Qdrant server for tests: `../shared/bin/qdrant` started on free loopback ports
//! with its storage in a temporary directory, stopped (and its storage removed) on drop.
//!
//! When the binary is absent the tests say they skipped — except under `CI=true`, where
//! that is a failure.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Qdrant server.
pub struct QdrantServer {
    child: Child,
    _dir: tempfile::TempDir,
    /// REST port.
    pub http_port: u16,
    /// gRPC port (what qdrant-client talks to).
    pub grpc_port: u16,
    /// The API key the server requires, when started with one.
    pub api_key: Option<String>,
}

impl QdrantServer {
    /// The gRPC URL for qdrant-client.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    /// A server, or `None` (after printing why) when the binary is absent outside CI.
    pub fn start() -> Option<Self> {
        Self::start_with_key(None)
    }

    /// A server requiring `api_key` when given.
    pub fn start_with_key(api_key: Option<&str>) -> Option<Self> {
        let bin = binary()?;
        let dir = tempfile::tempdir().expect("temporary storage");
        // Pick two free ports (bind port 0, read it back, release it); retry on a clash.
        for _ in 0..5 {
            let (http_port, grpc_port) = (free_port(), free_port());
            let mut cmd = Command::new(&bin);
            cmd.arg("--disable-telemetry")
                .env("QDRANT__STORAGE__STORAGE_PATH", dir.path().join("storage"))
                .env(
                    "QDRANT__STORAGE__SNAPSHOTS_PATH",
                    dir.path().join("snapshots"),
                )
                .env("QDRANT__SERVICE__HOST", "127.0.0.1")
                .env("QDRANT__SERVICE__HTTP_PORT", http_port.to_string())
                .env("QDRANT__SERVICE__GRPC_PORT", grpc_port.to_string())
                .env("QDRANT__TELEMETRY_DISABLED", "true")
                .env("QDRANT__LOG_LEVEL", "WARN")
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if let Some(key) = api_key {
                cmd.env("QDRANT__SERVICE__API_KEY", key);
            }
            let mut child = cmd.spawn().expect("start ../shared/bin/qdrant");
            if wait_ready(&mut child, http_port, Duration::from_secs(30)) {
                return Some(QdrantServer {
                    child,
                    _dir: dir,
                    http_port,
                    grpc_port,
                    api_key: api_key.map(String::from),
                });
            }
            // It exited (a port was taken meanwhile) or never answered: try other ports.
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "the Qdrant server at {} did not become ready",
            bin.display()
        );
    }
}

fn wait_ready(child: &mut Child, port: u16, timeout: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if readyz(port) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

impl Drop for QdrantServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> Option<PathBuf> {
    // `../shared` beside the repository: one level up from the root crate, two from a
    // member crate (this file is included by both).
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        here.join("../shared/bin/qdrant"),
        here.join("../../shared/bin/qdrant"),
    ];
    if let Some(bin) = candidates.iter().find(|b| b.is_file()) {
        return Some(bin.clone());
    }
    let bin = candidates[1].clone();
    let why = format!(
        "the Qdrant server binary is not at {} (../shared is absent)",
        bin.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why}; under CI=true the server tests must run");
    }
    eprintln!("skipped: {why}");
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn readyz(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req =
        format!("GET /readyz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.1 200") || buf.starts_with("HTTP/1.0 200")
}
