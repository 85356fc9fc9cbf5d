//! `make fuzz`: run every fuzz target (or those named) for N inputs each and print,
//! per target, the inputs run, the panics found and the time taken.
//!
//! ```text
//! cargo run -p iat2i-fuzz -- [--runs N] [--seed S] [--save DIR] [TARGET ...]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use iat2i_fuzz::{TARGETS, run_all};

fn main() -> ExitCode {
    let mut runs: u64 = 1_000_000;
    let mut seed: u64 = 1;
    let mut save = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/crashers"));
    let mut names = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let value = |args: &mut dyn Iterator<Item = String>| args.next().unwrap_or_default();
        match a.as_str() {
            "--runs" => runs = value(&mut args).replace('_', "").parse().unwrap_or(runs),
            "--seed" => seed = value(&mut args).parse().unwrap_or(seed),
            "--save" => save = PathBuf::from(value(&mut args)),
            "-h" | "--help" => {
                println!("usage: iat2i-fuzz [--runs N] [--seed S] [--save DIR] [TARGET ...]");
                println!(
                    "targets: {}",
                    TARGETS.iter().map(|t| t.name).collect::<Vec<_>>().join(" ")
                );
                return ExitCode::SUCCESS;
            }
            other => names.push(other.to_string()),
        }
    }
    let chosen: Vec<_> = TARGETS
        .iter()
        .filter(|t| names.is_empty() || names.iter().any(|n| n == t.name))
        .copied()
        .collect();
    if chosen.is_empty() {
        eprintln!(
            "no such target among: {}",
            TARGETS.iter().map(|t| t.name).collect::<Vec<_>>().join(" ")
        );
        return ExitCode::FAILURE;
    }
    let all = run_all(&chosen, runs, seed, &save);
    let panics: usize = all.iter().map(|r| r.crashes.len()).sum();
    if panics > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
