//! Job params against the params types of live executors' handlers, for
//! `nightshift apply` and `nightshift validate --against`: read the
//! executor records, check each DAG (pure: `dag::check_params`), print.

use nightshift_coord::Coordinator;
use nightshift_core::dag::LoadedDag;
use nightshift_core::dag::{check_params, Diagnostic};
use nightshift_core::params::HandlerSchemas;

/// The handlers and params schemas the live executors publish.
pub async fn executor_schemas(
    coord: &dyn Coordinator,
    prefix: &str,
) -> anyhow::Result<HandlerSchemas> {
    let executors = crate::cli::plan::live_executors(coord, prefix).await?;
    Ok(HandlerSchemas::from_executors(&executors))
}

/// Every params mismatch (error) and unchecked job (warning) of `dags`.
pub fn check(dags: &[LoadedDag], schemas: &HandlerSchemas) -> Vec<Diagnostic> {
    dags.iter()
        .flat_map(|d| check_params(&d.path, &d.source, &d.spec, schemas))
        .collect()
}

/// Prints diagnostics rustc-style on stderr; returns how many are errors.
pub fn print(diagnostics: &[Diagnostic]) -> usize {
    for d in diagnostics {
        eprintln!("{}", d.render());
    }
    diagnostics.iter().filter(|d| d.is_error()).count()
}
