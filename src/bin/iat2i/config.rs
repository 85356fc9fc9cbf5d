//! `iat2i.toml`: every flag of every subcommand as a key, so a content pipeline commits one
//! file instead of a 20-flag cron line.
//!
//! ```toml
//! [generate]
//! model = "gpt-4o-mini"
//! max-rounds = 3
//! engine = ["wikimedia", "openverse"]
//!
//! [batch.run]
//! concurrency = 8
//! max-cost = 25
//! ```
//!
//! A table per subcommand (`[batch.run]`, `[memory.index]` for nested ones), keys named
//! as the long flags (`max-rounds`; `max_rounds` also works). The file's values become the
//! flags' defaults, so the precedence is flags > environment > file > built-in defaults.
//! Global options (`log-format = "json"`) are keys at the top, before any table.
//! An unknown table or key is an error naming it: a typo never passes silently.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::Command;

/// The config file named by `--config FILE` (anywhere before the subcommand's own
/// arguments) or `IAT2I_CONFIG`.
pub fn path(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(p) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(p));
        }
    }
    std::env::var_os("IAT2I_CONFIG")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

/// `command` with the file's values as its flags' defaults.
pub fn apply(command: Command, file: &Path) -> Result<Command> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("config file {}: cannot read it", file.display()))?;
    let table: toml::Table = toml::from_str(&text)
        .with_context(|| format!("config file {}: not TOML", file.display()))?;
    apply_table(command, &table, "").with_context(|| format!("config file {}", file.display()))
}

fn apply_table(mut command: Command, table: &toml::Table, at: &str) -> Result<Command> {
    for (key, value) in table {
        let name = key.replace('_', "-");
        let here = if at.is_empty() {
            name.clone()
        } else {
            format!("{at}.{name}")
        };
        if let (Some(sub), toml::Value::Table(inner)) =
            (command.find_subcommand(&name).cloned(), value)
        {
            let sub = apply_table(sub, inner, &here)?;
            command = command.mut_subcommand(&name, |_| sub);
            continue;
        }
        let id = command
            .get_arguments()
            .find(|a| a.get_long() == Some(name.as_str()) && name != "config")
            .map(|a| a.get_id().clone())
            .ok_or_else(|| match at {
                "" => anyhow!("`{name}` is neither a subcommand nor a global option of iat2i"),
                _ => anyhow!("{here}: `{at}` has no --{name} flag"),
            })?;
        let values = scalars(value).with_context(|| here.clone())?;
        let values: Vec<&'static str> = values
            .into_iter()
            .map(|v| &*Box::leak(v.into_boxed_str()))
            .collect();
        command = command.mut_arg(id, |a| a.default_values(values));
    }
    Ok(command)
}

/// A value as the flag's text: a string, number or boolean, or an array of them.
fn scalars(value: &toml::Value) -> Result<Vec<String>> {
    Ok(match value {
        toml::Value::String(s) => vec![s.clone()],
        toml::Value::Integer(i) => vec![i.to_string()],
        toml::Value::Float(f) => vec![f.to_string()],
        toml::Value::Boolean(b) => vec![b.to_string()],
        toml::Value::Array(items) => items
            .iter()
            .map(|v| scalars(v).map(|mut one| one.remove(0)))
            .collect::<Result<_>>()?,
        toml::Value::Datetime(d) => vec![d.to_string()],
        toml::Value::Table(_) => bail!("a table where a flag's value was expected"),
    })
}

/// What `iat2i config show` prints: every flag of every subcommand that the environment,
/// the file or a built-in default sets, with where its value comes from (`base` is the
/// command without the file, `applied` with it). Secrets (keys, tokens) are masked.
pub fn show(base: &Command, applied: &Command, file: Option<&Path>) -> String {
    let mut out = match file {
        Some(f) => format!("# config file: {}\n", f.display()),
        None => "# no config file (--config FILE or IAT2I_CONFIG)\n".to_string(),
    };
    out.push_str("# precedence: flags > environment > config file > built-in defaults\n");
    show_into(Some(base), applied, "", &mut out);
    out
}

fn defaults(arg: &clap::Arg) -> Vec<String> {
    arg.get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect()
}

fn show_into(base: Option<&Command>, command: &Command, at: &str, out: &mut String) {
    let mut lines = Vec::new();
    for arg in command.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if matches!(long, "help" | "version" | "config") {
            continue;
        }
        let from_env = arg
            .get_env()
            .and_then(|var| Some((var.to_string_lossy().into_owned(), std::env::var(var).ok()?)));
        let now = defaults(arg);
        let before = base
            .and_then(|b| b.get_arguments().find(|a| a.get_id() == arg.get_id()))
            .map(defaults)
            .unwrap_or_default();
        let (value, source) = match from_env {
            Some((var, v)) => (v, format!("environment {var}")),
            None if now.is_empty() => continue,
            None if now != before => (now.join(", "), "config file".to_string()),
            None => (now.join(", "), "built-in default".to_string()),
        };
        let secret = ["key", "token", "secret", "password"]
            .iter()
            .any(|s| long.contains(s));
        let shown = if secret {
            "********".to_string()
        } else {
            value
        };
        lines.push(format!("{long} = {shown:?}   # {source}"));
    }
    match (lines.is_empty(), at.is_empty()) {
        (true, _) => {}
        (false, true) => out.push_str(&format!("\n# global options\n{}\n", lines.join("\n"))),
        (false, false) => out.push_str(&format!("\n[{at}]\n{}\n", lines.join("\n"))),
    }
    for sub in command.get_subcommands() {
        let name = sub.get_name();
        if matches!(name, "help" | "completions" | "man" | "config") {
            continue;
        }
        let here = if at.is_empty() {
            name.to_string()
        } else {
            format!("{at}.{name}")
        };
        let base_sub = base.and_then(|b| b.find_subcommand(name));
        show_into(base_sub, sub, &here, out);
    }
}
