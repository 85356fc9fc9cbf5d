//! Logging for the examples: `tracing` to stderr, without colour codes when stderr is
//! not a terminal (cron, CI, `2>log`), and without the two start-up warnings
//! qdrant-edge logs on every run. Included by the examples with `#[path]`.

use std::io::IsTerminal;

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
    // A second subscriber cannot be installed; that only means logs go to the first.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
