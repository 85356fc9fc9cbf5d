//! Progress on stderr: a spinner on a terminal; plain lines without colour codes when
//! stderr is a file or a pipe (cron, CI, `2>log`), where a spinner is hidden and would
//! take the lines with it; nothing with --quiet. Included by the examples with `#[path]`.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Where progress goes.
#[derive(Clone)]
pub enum Progress {
    /// A spinner (stderr is a terminal).
    Spinner(ProgressBar),
    /// One plain line per step (stderr is not a terminal).
    Lines,
    /// Nothing (--quiet).
    Quiet,
}

impl Progress {
    /// A spinner when stderr is a terminal, plain lines otherwise, nothing when `quiet`.
    pub fn new(quiet: bool) -> Self {
        if quiet {
            return Progress::Quiet;
        }
        if !std::io::stderr().is_terminal() {
            return Progress::Lines;
        }
        let pb = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed}] {msg}") {
            pb.set_style(style);
        }
        pb.enable_steady_tick(Duration::from_millis(120));
        Progress::Spinner(pb)
    }

    /// What is happening now: the spinner's message, or a line.
    pub fn status(&self, msg: impl Into<String>) {
        match self {
            Progress::Spinner(pb) => pb.set_message(msg.into()),
            Progress::Lines => eprintln!("{}", msg.into()),
            Progress::Quiet => {}
        }
    }

    /// A line that stays (above the spinner on a terminal).
    pub fn line(&self, msg: impl Into<String>) {
        match self {
            Progress::Spinner(pb) => pb.println(msg.into()),
            Progress::Lines => eprintln!("{}", msg.into()),
            Progress::Quiet => {}
        }
    }

    /// Remove the spinner.
    pub fn finish(&self) {
        if let Progress::Spinner(pb) = self {
            pb.finish_and_clear();
        }
    }
}
