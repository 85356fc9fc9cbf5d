//! What the commands share: engine, generator and memory flags, exit codes, logging,
//! progress, and the runtime start.

pub mod engines;
pub mod exit;
pub mod generators;
pub mod logging;
pub mod memory;
pub mod pipeline;
pub mod preview;
pub mod process;
pub mod progress;
pub mod selection_view;

/// A duration such as `90s`, `30m` or `6h` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 90s, 30m or 6h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        _ => return Err(format!("{s:?}: the unit must be s, m or h")),
    };
    Ok(std::time::Duration::from_secs(secs))
}
