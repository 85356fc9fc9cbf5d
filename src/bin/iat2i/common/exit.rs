//! The exit codes the commands share, and the error that tells a usage error (exit 2:
//! bad arguments or settings, found before any paid call) from a failure (exit 1).

use std::process::ExitCode;

/// Exit code of a run that failed.
pub const FAILED: u8 = 1;
/// Exit code of bad arguments or settings, found before any paid call (clap's own
/// parse errors exit with this code too).
pub const USAGE: u8 = 2;

/// A command-line or settings error: the command exits with [`USAGE`].
#[derive(Debug)]
pub struct Usage(anyhow::Error);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for Usage {}

/// `e` as a usage error (exit 2).
pub fn usage(e: impl Into<anyhow::Error>) -> anyhow::Error {
    anyhow::Error::new(Usage(e.into()))
}

/// Whether `e` is a usage error.
pub fn is_usage(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Usage>().is_some()
}

/// Print `e` after `command: ` on stderr and return its exit code: [`USAGE`] for a usage
/// error (with a pointer to --help), [`FAILED`] otherwise.
pub fn report(command: &str, e: &anyhow::Error) -> ExitCode {
    if is_usage(e) {
        eprintln!("{command}: {e:#}\n(see {command} --help)");
        ExitCode::from(USAGE)
    } else {
        eprintln!("{command}: {e:#}");
        ExitCode::from(FAILED)
    }
}
