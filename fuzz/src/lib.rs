//! A small fuzz harness that runs on the stable toolchain (no nightly, no sanitizers):
//! seeded from the fixtures, mutated byte-wise and structure-aware (JSON trees, binary
//! header fields), each input run under `catch_unwind`; an input whose outcome is new
//! joins the corpus; a panicking input is minimised and saved.
//!
//! `make fuzz` runs every target for 10^6 inputs; `cargo test -p iat2i-fuzz` runs a
//! short round of each (what CI keeps).

pub mod mutate;
pub mod targets;

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

pub use targets::{TARGETS, Target};

/// Corpus entries kept at most per target.
const MAX_CORPUS: usize = 1024;

/// A panic found, minimised.
#[derive(Debug, Clone)]
pub struct Crash {
    /// The smallest input found that still panics.
    pub input: Vec<u8>,
    /// The panic message.
    pub message: String,
    /// Where it was saved, if it was.
    pub saved: Option<PathBuf>,
}

/// What one target's run did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The target.
    pub target: &'static str,
    /// Inputs run (seeds included).
    pub inputs: u64,
    /// Distinct panics (by message).
    pub crashes: Vec<Crash>,
    /// Corpus size at the end.
    pub corpus: usize,
    /// Distinct outcomes seen.
    pub outcomes: usize,
    /// Wall time.
    pub elapsed: Duration,
}

thread_local! {
    static LAST_PANIC: RefCell<String> = const { RefCell::new(String::new()) };
    static FUZZING: Cell<bool> = const { Cell::new(false) };
}

/// While a target runs, record its panic messages quietly; any other panic goes to the
/// previous hook as usual (installed once per process).
fn quiet_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !FUZZING.with(Cell::get) {
                return previous(info);
            }
            let msg = match info.payload().downcast_ref::<&str>() {
                Some(s) => (*s).to_string(),
                None => info
                    .payload()
                    .downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_else(|| "panic".to_string()),
            };
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            LAST_PANIC.with(|p| *p.borrow_mut() = format!("{msg}{at}"));
        }));
    });
}

/// Run `target` on `input`: its outcome, or the panic message.
pub fn run_one(target: &Target, input: &[u8]) -> Result<String, String> {
    quiet_panics();
    FUZZING.with(|f| f.set(true));
    let result = catch_unwind(AssertUnwindSafe(|| (target.run)(input)));
    FUZZING.with(|f| f.set(false));
    result.map_err(|_| LAST_PANIC.with(|p| p.borrow().clone()))
}

/// Remove chunks of `input` while it still panics (bounded work).
pub fn minimise(target: &Target, input: &[u8]) -> Vec<u8> {
    let mut best = input.to_vec();
    let mut chunk = best.len() / 2;
    let mut tries = 0;
    while chunk >= 1 && tries < 4000 {
        let mut i = 0;
        while i < best.len() && tries < 4000 {
            let mut shorter = best.clone();
            shorter.drain(i..(i + chunk).min(best.len()));
            tries += 1;
            if run_one(target, &shorter).is_err() {
                best = shorter;
            } else {
                i += chunk;
            }
        }
        chunk /= 2;
    }
    best
}

/// Fuzz `target` with `runs` inputs from the random seed `seed`, saving minimised
/// crashers under `save` (`<save>/<target>/crash-<hash>`).
pub fn fuzz(target: &Target, runs: u64, seed: u64, save: Option<&Path>) -> Report {
    let start = Instant::now();
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut corpus = target.seeds();
    let mut outcomes = HashSet::new();
    let mut crashes: Vec<Crash> = Vec::new();
    let mut inputs = 0u64;
    let seeds = corpus.clone();
    let mut check =
        |input: Vec<u8>, corpus: &mut Vec<Vec<u8>>, crashes: &mut Vec<Crash>| match run_one(
            target, &input,
        ) {
            Ok(outcome) => {
                if outcomes.insert(outcome) && corpus.len() < MAX_CORPUS {
                    corpus.push(input);
                }
            }
            Err(message) => {
                if crashes.iter().all(|c| c.message != message) {
                    let input = minimise(target, &input);
                    let saved = save.and_then(|dir| save_crash(dir, target.name, &input));
                    crashes.push(Crash {
                        input,
                        message,
                        saved,
                    });
                }
            }
        };
    for s in seeds {
        inputs += 1;
        check(s, &mut corpus, &mut crashes);
    }
    while inputs < runs {
        let base = &corpus[rng.usize(..corpus.len())];
        let other = &corpus[rng.usize(..corpus.len())];
        let input = mutate::mutate(&mut rng, base, other, target.dict, target.json);
        inputs += 1;
        check(input, &mut corpus, &mut crashes);
    }
    Report {
        target: target.name,
        inputs,
        crashes,
        corpus: corpus.len(),
        outcomes: outcomes.len(),
        elapsed: start.elapsed(),
    }
}

/// FNV-1a, to name a crasher file by its content.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn save_crash(dir: &Path, target: &str, input: &[u8]) -> Option<PathBuf> {
    let dir = dir.join(target);
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join(format!("crash-{:016x}", fnv(input)));
    std::fs::write(&path, input).ok()?;
    Some(path)
}

/// Fuzz every target in `chosen` on all cores, printing one line per target (inputs
/// run, panics found, outcomes, corpus, seconds, inputs per second) and each panic.
pub fn run_all(chosen: &[Target], runs: u64, seed: u64, save: &Path) -> Vec<Report> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(chosen.len().max(1));
    println!(
        "fuzzing {} targets, {runs} inputs each, {threads} threads, seed {seed}",
        chosen.len()
    );
    println!(
        "{:<20} {:>10} {:>7} {:>8} {:>7} {:>9} {:>9}",
        "target", "inputs", "panics", "outcomes", "corpus", "seconds", "inputs/s"
    );
    let queue = std::sync::Mutex::new(chosen.iter());
    let reports = std::sync::Mutex::new(Vec::<Report>::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let next = queue.lock().ok().and_then(|mut q| q.next());
                    let Some(t) = next else { break };
                    let r = fuzz(t, runs, seed, Some(save));
                    print_report(&r);
                    if let Ok(mut all) = reports.lock() {
                        all.push(r);
                    }
                }
            });
        }
    });
    let all = reports.into_inner().unwrap_or_default();
    let panics: usize = all.iter().map(|r| r.crashes.len()).sum();
    let inputs: u64 = all.iter().map(|r| r.inputs).sum();
    println!("total: {inputs} inputs, {panics} panics");
    all
}

fn print_report(r: &Report) {
    let secs = r.elapsed.as_secs_f64();
    println!(
        "{:<20} {:>10} {:>7} {:>8} {:>7} {:>9.1} {:>9.0}",
        r.target,
        r.inputs,
        r.crashes.len(),
        r.outcomes,
        r.corpus,
        secs,
        r.inputs as f64 / secs.max(1e-9)
    );
    for c in &r.crashes {
        println!(
            "  PANIC {}: {} (minimised input: {} bytes, saved to {})",
            r.target,
            c.message,
            c.input.len(),
            c.saved
                .as_ref()
                .map_or("-".to_string(), |p| p.display().to_string())
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The short round CI keeps: every target, a few thousand inputs, no panic.
    #[test]
    fn every_target_survives_a_short_run() {
        let runs = std::env::var("IAT2I_FUZZ_RUNS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1500);
        for t in TARGETS {
            let r = fuzz(t, runs, 7, None);
            assert_eq!(r.inputs, runs.max(t.seeds().len() as u64), "{}", t.name);
            assert!(
                r.crashes.is_empty(),
                "{}: {:?}",
                t.name,
                r.crashes
                    .iter()
                    .map(|c| (&c.message, String::from_utf8_lossy(&c.input)))
                    .collect::<Vec<_>>()
            );
            assert!(
                r.outcomes >= 2,
                "{}: the seeds reach one outcome only",
                t.name
            );
        }
    }

    /// `make fuzz`: every target for `IAT2I_FUZZ_RUNS` inputs (default 10^6), through
    /// the test harness so that it reuses the build of `make test`.
    #[test]
    #[ignore = "long: run with make fuzz"]
    fn fuzz_full_run() {
        let runs = std::env::var("IAT2I_FUZZ_RUNS")
            .ok()
            .and_then(|s| s.replace('_', "").parse().ok())
            .unwrap_or(1_000_000);
        let save = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/crashers"));
        let names: Vec<String> = std::env::var("IAT2I_FUZZ_TARGETS")
            .unwrap_or_default()
            .split([',', ' '])
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let chosen: Vec<Target> = TARGETS
            .iter()
            .filter(|t| names.is_empty() || names.iter().any(|n| n == t.name))
            .copied()
            .collect();
        let all = run_all(&chosen, runs, 1, &save);
        let panics: Vec<String> = all
            .iter()
            .flat_map(|r| {
                r.crashes
                    .iter()
                    .map(move |c| format!("{}: {}", r.target, c.message))
            })
            .collect();
        assert!(panics.is_empty(), "{panics:#?}");
    }

    #[test]
    fn a_panicking_target_is_caught_and_minimised() {
        fn boom(input: &[u8]) -> String {
            if input.windows(3).any(|w| w == b"BAD") {
                panic!("found it");
            }
            "ok".into()
        }
        let t = Target {
            name: "boom",
            run: boom,
            fixtures: &[],
            extra: &["xxxxxxxxxxxxBADyyyyyyyyy"],
            dict: &[],
            json: false,
            chat_content: false,
        };
        let dir = std::env::temp_dir().join(format!("iat2i-fuzz-{}", std::process::id()));
        let r = fuzz(&t, 10, 1, Some(&dir));
        assert_eq!(r.crashes.len(), 1);
        assert_eq!(r.crashes[0].input, b"BAD");
        assert!(r.crashes[0].message.starts_with("found it"));
        let saved = r.crashes[0].saved.as_ref().unwrap();
        assert_eq!(std::fs::read(saved).unwrap(), b"BAD");
        let _ = std::fs::remove_dir_all(dir);
    }
}
