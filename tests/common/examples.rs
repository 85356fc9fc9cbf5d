//! The example binaries, built once per test binary by cargo itself, and the pictures
//! and ONNX Runtime check their tests use.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

/// The examples the CLI tests run; one cargo invocation builds them all.
const EXAMPLES: [&str; 3] = ["generate", "search", "select"];

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

/// True when ONNX Runtime is available; prints why the test is skipped otherwise.
pub fn ort_available() -> bool {
    match std::env::var_os("ORT_DYLIB_PATH") {
        Some(p) if Path::new(&p).is_file() => true,
        _ => {
            eprintln!(
                "skipped: ORT_DYLIB_PATH is unset or not a file (run `make test`, or set it to \
                 the path `bash scripts/setup-ort.sh` prints)"
            );
            false
        }
    }
}

/// A smooth seeded picture: different seeds give clearly different images and hashes.
pub fn scene(seed: u32, w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy, s) = (x as f32 / w as f32, y as f32 / h as f32, seed as f32);
        let a = ((fx * (2.0 + s)).sin() * (fy * (1.0 + 0.7 * s)).cos()) * 110.0;
        let b = ((fx + fy) * (1.5 + 0.9 * s)).cos() * 90.0;
        Rgb([
            (128.0 + a).clamp(0.0, 255.0) as u8,
            (128.0 + b).clamp(0.0, 255.0) as u8,
            (128.0 - a * 0.5).clamp(0.0, 255.0) as u8,
        ])
    })
}

pub fn encode(img: RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(img)
        .write_to(&mut out, format)
        .unwrap();
    out.into_inner()
}
