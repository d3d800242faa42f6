//! Subcommands of the `nightshift` binary, one module each.

pub mod executor;
pub mod logging;
pub mod validate;
