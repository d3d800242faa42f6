//! Coordination layer: what Nightshift needs from a coordination service
//! (leases, fenced transactions, ordered watches, leader election), with two
//! backends behind one trait.
//!
//! - [`etcd`]: production, over `etcd-client`, with supervision the crate
//!   lacks (keep-alives and watches are re-created after connection loss or an
//!   etcd restart; watches resume from the last seen revision + 1 and re-list
//!   on compaction).
//! - [`memory`]: in-process, for `nightshift dev` and deterministic simulation
//!   tests; same semantics, time driven by tokio's clock so tests can pause it.
//!
//! [`decorated`] lets a wrapper change a few operations of a coordinator
//! and forward the rest without restating the trait.
//!
//! [`election`] and [`lease`] are written once on top of the trait, so both
//! backends share one implementation of leadership and keep-alive supervision.
//!
//! **Architecture invariant:** this crate must not depend on sqlx, axum, the
//! scheduler or the executor; both of those depend on it.
#![deny(missing_docs)]

pub mod api;
pub mod decorated;
pub mod election;
pub mod etcd;
pub mod lease;
pub mod memory;

pub use api::*;
pub use decorated::{Decorated, Intercept};
