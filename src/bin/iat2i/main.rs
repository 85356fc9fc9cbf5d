//! `iat2i`: internet-augmented text-to-image from the command line.
//!
//! ```text
//! cargo install --path .            # or: cargo install iat2i
//! iat2i generate "A Graphorn at dusk" --out graphorn.png
//! iat2i batch run prompts.jsonl --out night/ --max-cost 20
//! iat2i --help
//! ```
//!
//! The binary is thin: argument parsing, progress and logging; every decision is the
//! library's (`iat2i::Pipeline`, `iat2i::batch`, `iat2i::eval`).

mod cmd;
mod common;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Internet-augmented text-to-image: decide whether a prompt needs a reference image,
/// search the web for one, rank the candidates with CLIP, generate with the best, and let
/// a vision model judge the result, retrying until it matches.
///
/// Every subcommand has its own --help with its options, environment and exit codes.
#[derive(Parser, Debug)]
#[command(name = "iat2i", version, about, long_about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands; each one's description, options, environment and exit codes come
/// from its own `Args` (in `cmd/`).
#[derive(Subcommand, Debug)]
enum Command {
    Generate(Box<cmd::generate::Args>),
    Search(Box<cmd::search::Args>),
    Select(Box<cmd::select::Args>),
    Batch(Box<cmd::batch::Args>),
    Evaluate(Box<cmd::evaluate::Args>),
    Memory(Box<cmd::memory::Args>),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout: `iat2i man > iat2i.1`.
    Man,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Completions { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "iat2i", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man => {
            match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("iat2i: writing the man page: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        command => common::process::run(|| run(command)),
    }
}

async fn run(command: Command) -> ExitCode {
    match command {
        Command::Generate(args) => cmd::generate::main(*args).await,
        Command::Search(args) => cmd::search::main(*args).await,
        Command::Select(args) => cmd::select::main(*args).await,
        Command::Batch(args) => cmd::batch::main(*args).await,
        Command::Evaluate(args) => cmd::evaluate::main(*args).await,
        Command::Memory(args) => cmd::memory::main(*args).await,
        Command::Completions { .. } | Command::Man => ExitCode::SUCCESS,
    }
}
