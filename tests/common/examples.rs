//! The example binaries, built once per test binary by cargo itself.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The examples the CLI tests run; one cargo invocation builds them all.
const EXAMPLES: [&str; 4] = ["generate", "search", "select", "batch"];

/// The executable of example `name` (one of [`EXAMPLES`]), built (or found up to date) by
/// cargo: `cargo test --all-targets` compiles examples as test harnesses, so the plain
/// binaries may be missing or stale. Cargo's lock is free while tests run and the library
/// is already built, so this only links the examples; it runs once per test binary.
pub fn example_binary(name: &str) -> PathBuf {
    static BINS: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    let bins = BINS.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["build", "--offline", "-p", "iat2i"]);
        // Cargo gives the test process the variables of the crate under test; some build
        // scripts (ring's) track CARGO_MANIFEST_DIR, so passing them on would make this
        // build and the next plain `cargo build` each recompile the TLS stack (~50 s).
        for (var, _) in std::env::vars_os() {
            if var.to_str().is_some_and(set_by_cargo_for_tests) {
                build.env_remove(var);
            }
        }
        for example in EXAMPLES {
            build.args(["--example", example]);
        }
        let out = build
            .args(["--message-format", "json-render-diagnostics"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "building the examples failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|m| m["reason"] == "compiler-artifact")
            .filter_map(|m| {
                let name = m["target"]["name"].as_str()?.to_string();
                let exe = m["executable"].as_str()?;
                Some((name, PathBuf::from(exe)))
            })
            .collect()
    });
    bins.get(name)
        .unwrap_or_else(|| panic!("cargo reported no executable for the {name} example"))
        .clone()
}

/// Variables cargo sets only for the crate it runs (not the user's CARGO_HOME etc.).
fn set_by_cargo_for_tests(var: &str) -> bool {
    var.starts_with("CARGO_PKG_")
        || var.starts_with("CARGO_MANIFEST_")
        || var.starts_with("CARGO_BIN_")
        || [
            "CARGO_CRATE_NAME",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
            "CARGO_RUSTC_CURRENT_DIR",
        ]
        .contains(&var)
}

/// Everything a run printed, stdout then stderr.
pub fn shown(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
