//! The finance demo: what a small lender's own service would run under
//! Nightshift. It plays the role of a *user* of the SDK, not part of it: it
//! embeds `nightshift-executor` and talks to its own tables with sqlx.
//!
//! The demo ledger lives in the same SQL database as Nightshift's history,
//! in tables prefixed `demo_` that the demo creates itself ([`DemoDb::ensure_schema`]):
//! accounts with balances, loans with monthly installment schedules, the
//! day's accruals and collections, and double-entry postings.
//!
//! Four handlers ([`register`]) do the nightly work:
//! `interest-accrual`, `nightly-debits`, `ledger-postings` (items partition
//! accounts by id range, see [`range`]) and `reconciliation` (fan-in).
//! The fifth, `settlement-report`, is a shell script run as a program
//! handler ([`report`]).
//!
//! **Exactly-once effects.** Each item does all its writes in one
//! transaction that starts by inserting the item's idempotency key into
//! `demo_effects` (a primary key). If the key is already there, the item ran
//! before and committed: the transaction is rolled back and nothing is
//! written again. So a retried or failed-over item never posts twice.
//! `interest-accrual` does this page by page and checkpoints each page
//! (`ctx.checkpoint`), so a moved or retried item resumes where it stopped.
#![deny(missing_docs)]

mod db;
mod jobs;
pub mod params;
pub mod range;
#[cfg(target_os = "linux")]
pub mod report;
mod seed;

pub use db::{DemoDb, DemoError, LedgerCheck};
pub use jobs::{
    register, InterestAccrual, LedgerPostings, NightlyDebits, Reconciliation, ACCRUAL_PAGE,
    HANDLERS,
};
pub use seed::{seed, SeedReport};
