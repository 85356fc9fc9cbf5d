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
mod config;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Internet-augmented text-to-image: decide whether a prompt needs a reference image,
/// search the web for one, rank the candidates with CLIP, generate with the best, and let
/// a vision model judge the result, retrying until it matches.
///
/// Every subcommand has its own --help with its options, environment and exit codes.
#[derive(Parser, Debug)]
#[command(name = "iat2i", version, about, long_about, propagate_version = true)]
struct Cli {
    /// A TOML file with a table per subcommand whose keys are its flags
    /// (`[generate] max-rounds = 3`, `[batch.run] concurrency = 8`): flags > environment >
    /// file > built-in defaults. `iat2i config show` prints the result.
    #[arg(long, global = true, env = "IAT2I_CONFIG", value_name = "FILE")]
    config: Option<std::path::PathBuf>,

    /// Logs and per-job lines: text, or json (one object a line, for log shippers);
    /// auto is text, except `serve` off a terminal, which logs JSON.
    #[arg(
        long,
        global = true,
        env = "IAT2I_LOG_FORMAT",
        value_enum,
        default_value = "auto"
    )]
    log_format: common::logging::LogFormat,

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
    Serve(Box<cmd::serve::Args>),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout: `iat2i man > iat2i.1`.
    Man,
    /// The configuration file: `iat2i config show` prints every setting and where its
    /// value comes from (secrets masked).
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigAction {
    /// Print every subcommand's settings with their source (flag defaults from the file,
    /// the environment, or built in).
    Show,
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let base = Cli::command();
    let file = config::path(&args);
    let applied = match &file {
        Some(f) => match config::apply(base.clone(), f) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("iat2i: {e:#}");
                return ExitCode::from(common::exit::USAGE);
            }
        },
        None => base.clone(),
    };
    let cli = match applied
        .clone()
        .try_get_matches_from(&args)
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
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
        Command::Config {
            action: ConfigAction::Show,
        } => {
            print!("{}", config::show(&base, &applied, file.as_deref()));
            ExitCode::SUCCESS
        }
        command => {
            common::logging::set_format(cli.log_format);
            common::process::run(|| run(command))
        }
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
        Command::Serve(args) => cmd::serve::main(*args).await,
        Command::Completions { .. } | Command::Man | Command::Config { .. } => ExitCode::SUCCESS,
    }
}
