//! Shared harness for Nightshift's integration tests.
//!
//! Real parts only: [`etcd`] spawns a real `etcd` process on free loopback
//! ports in a temporary directory; [`db`] hands out a fresh PostgreSQL
//! database or a fresh SQLite file. Every handle cleans up on drop, so a
//! panicking test still kills its etcd and drops its database. [`wait`]
//! polls a condition with a deadline, so no test sleeps to synchronise.
//! [`tls`] makes throwaway certificates for a secured etcd.
//!
//! Used only as a dev-dependency; nothing in production links it.

pub mod db;
pub mod etcd;
pub mod tls;
pub mod wait;
