//! DAG files: the model, and reading it from TOML with every error reported.
//!
//! A DAG file (one DAG per file, named after the file stem unless it sets
//! `name`) declares a schedule and jobs linked by `depends_on`; the format is
//! documented in the README ("DAG file format"). This module turns such a file into a
//! [`DagSpec`] — every key checked, every default resolved — or into a list
//! of [`Diagnostic`]s naming each problem's `file:line:col`.
//!
//! Why not `serde` with `deny_unknown_fields`? It stops at the first error
//! and loses positions for semantic mistakes. Instead the text is parsed into
//! toml's spanned tree and walked by hand, so one pass reports a syntax
//! error, three typos and a dependency cycle together, each where it is.
//!
//! Layout: [`model`] the plain types; `parse` / `job` / `validate` the walk
//! (pure: text in, spec or diagnostics out); `calendar_file` calendar files;
//! [`diagnostic`] positions and rendering; [`load`] the only code that
//! touches the file system.
//!
//! **Architecture invariant:** nothing here but [`load`] performs I/O;
//! [`parse_dag`] and [`parse_calendar`] are pure functions of their input.

mod calendar_file;
pub mod diagnostic;
mod graph;
mod job;
pub mod load;
pub mod model;
mod params_check;
mod parse;
pub(crate) mod suggest;
mod validate;
mod values;

pub use calendar_file::{CalendarLookup, CalendarSet};
pub use diagnostic::{Diagnostic, Severity, SourceText};
pub use load::{load_dags, LoadReport, LoadedDag};
pub use model::{
    BusinessDatePolicy, ConcurrencyPolicy, DagSpec, JobSpec, MisfirePolicy, Strategy, TriggerRule,
    UnknownVariant, DEFAULT_FAILOVER, DEFAULT_MAX_BACKOFF, DEFAULT_RETRIES, DEFAULT_RETRY_BACKOFF,
    MAX_CATCH_UP_RUNS, MAX_RETRIES, MAX_SHARDS,
};
pub use params_check::check_params;

use crate::calendar::Calendar;
use std::path::Path;

/// Parses and validates one DAG file.
///
/// `path` is used for messages and for the DAG's default name (its stem);
/// `source` is the file's text; `calendars` resolves `calendar = "<name>"`.
/// On failure returns every error (and warning) found, sorted by position.
/// Warnings of a valid file are dropped; use [`check_dag`] to get them.
///
/// ```
/// use nightshift_core::dag::{parse_dag, CalendarSet};
/// use std::path::Path;
/// let dag = parse_dag(
///     Path::new("dags/demo.toml"),
///     "[jobs.a]\nshards = 4\n[jobs.b]\ndepends_on = [\"a\"]\n",
///     &CalendarSet::new(),
/// ).unwrap();
/// assert_eq!(dag.name.as_str(), "demo");
/// assert_eq!(dag.total_items(), 5);
///
/// let errors = parse_dag(Path::new("x.toml"), "[jobs.a]\nshard = 4\n", &CalendarSet::new()).unwrap_err();
/// assert_eq!(errors[0].message, "unknown key `shard` (did you mean `shards`?)");
/// assert_eq!((errors[0].line, errors[0].col), (2, 1));
/// ```
pub fn parse_dag(
    path: &Path,
    source: &str,
    calendars: &CalendarSet,
) -> Result<DagSpec, Vec<Diagnostic>> {
    match parse::parse(path, source, calendars) {
        (Some(parsed), _) => Ok(parsed.spec),
        (None, diagnostics) => Err(diagnostics),
    }
}

/// Like [`parse_dag`], but also returns the warnings of a valid file: the DAG
/// when there is no error, and every diagnostic either way.
pub fn check_dag(
    path: &Path,
    source: &str,
    calendars: &CalendarSet,
) -> (Option<DagSpec>, Vec<Diagnostic>) {
    let (parsed, diagnostics) = parse::parse(path, source, calendars);
    (parsed.map(|p| p.spec), diagnostics)
}

/// Parses and validates a calendar file (`calendars/<name>.toml`); the
/// calendar is named after the file stem.
pub fn parse_calendar(path: &Path, source: &str) -> Result<Calendar, Vec<Diagnostic>> {
    calendar_file::parse(path, source)
}
