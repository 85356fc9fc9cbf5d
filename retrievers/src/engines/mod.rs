//! The built-in search engines, one file each.

mod wikimedia;

pub use wikimedia::WikimediaCommons;
