//! Subcommands of the `nightshift` binary, one module each.

pub mod applied;
pub mod apply;
pub mod backfill;
pub mod backfill_days;
pub mod bench;
pub mod chaos;
pub mod conn;
pub mod console;
pub mod demo;
pub mod dev;
pub mod etcd_roles;
pub mod executor;
pub mod executor_config;
pub mod follow;
pub mod inventory;
pub mod issue;
pub mod live;
pub mod logging;
pub mod pause;
pub mod plan;
pub mod runs;
pub mod scheduler;
pub mod status;
pub mod tokens;
pub mod trigger;
pub mod validate;
