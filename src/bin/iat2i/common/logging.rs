//! Logging: `tracing` to stderr as text (without colour codes when stderr is not a
//! terminal: cron, CI, `2>log`) or one JSON object a line (`--log-format json`, for log
//! shippers), and without the two start-up warnings qdrant-edge logs on every run.

use std::io::IsTerminal;
use std::sync::OnceLock;

/// How logs and per-job lines are written (the global `--log-format`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Text; `iat2i serve` writes JSON when stderr is not a terminal.
    #[default]
    Auto,
    /// Text lines (a progress bar on a terminal).
    Text,
    /// One JSON object a line.
    Json,
}

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Set the format for the whole process (once, from the command line).
pub fn set_format(format: LogFormat) {
    // Set once in main; a second call changes nothing.
    let _ = FORMAT.set(format);
}

/// The format the command line asked for.
pub fn format() -> LogFormat {
    FORMAT.get().copied().unwrap_or_default()
}

/// Whether logs are JSON: asked for, or `auto` off a terminal for a service.
pub fn json(service: bool) -> bool {
    match format() {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => service && !std::io::stderr().is_terminal(),
    }
}

/// qdrant-edge warns on every run that its process-wide settings were not initialised
/// ("Feature flags not initialized!", "MULTI_MMAP_SUPPORT_CHECK_RESULT should be
/// initialized ..."). Both live in private modules that a library user cannot
/// initialise, and the defaults it falls back to are the right ones here, so their
/// targets are held to errors unless RUST_LOG names them.
const QDRANT_EDGE_NOISE: [&str; 2] = [
    "qdrant_edge::common::flags=error",
    "qdrant_edge::common::mmap::ops=error",
];

/// Install the subscriber: RUST_LOG when set, else `default` (such as `warn`).
pub fn init(default: &str) {
    install(default, json(false));
}

/// Install the subscriber for a long-running service: JSON off a terminal unless
/// `--log-format text`.
pub fn init_service(default: &str) {
    install(default, json(true));
}

fn install(default: &str, json: bool) {
    let user = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let mut directives = user.clone().unwrap_or_else(|| default.to_string());
    if !user.as_deref().is_some_and(|u| u.contains("qdrant_edge")) {
        for d in QDRANT_EDGE_NOISE {
            directives.push(',');
            directives.push_str(d);
        }
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second subscriber cannot be installed; that only means logs go to the first.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
}
