//! What the commands share: engine, generator and memory flags, exit codes, logging,
//! progress, and the runtime start.

pub mod engines;
pub mod exit;
pub mod generators;
pub mod logging;
pub mod memory;
pub mod preview;
pub mod process;
pub mod progress;
pub mod selection_view;
