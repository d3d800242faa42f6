//! `nightshift validate PATH...`: check DAG files and report every problem.
//!
//! Text output renders each diagnostic rustc-style (with a caret under the
//! offending key or value) on stderr and a one-line summary on stdout; JSON
//! output is one document on stdout for editors and CI. Either way the exit
//! code is 0 when every file is valid (warnings allowed) and 1 otherwise.
//! This command only reads files, unless `--against` is given: then it also
//! reads the executor records in etcd (`--etcd`) and checks each job's
//! params against the params type its handler declares, as `nightshift
//! apply` does. It never contacts a database.

use crate::cli::conn::EtcdArgs;
use crate::cli::params;
use anyhow::Context as _;
use clap::ValueEnum;
use nightshift_core::dag::{load_dags, Diagnostic, LoadReport, LoadedDag};
use serde::Serialize;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `nightshift validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// DAG files, or folders whose `*.toml` files are DAGs (their
    /// `calendars/` subfolder is checked too).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Also check every job's params against the params type its handler
    /// declares, as published by the live executors registered in the etcd
    /// of --etcd (or NIGHTSHIFT_ETCD). Jobs whose handler no live executor
    /// offers get a warning.
    #[arg(long)]
    pub against: bool,
    #[command(flatten)]
    pub etcd: EtcdArgs,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable diagnostics with carets, then a summary line.
    Text,
    /// One JSON document: `{ok, dags, errors, warnings, ...}`.
    Json,
}

/// Validates the files and prints the result; exit code 1 on any error.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut report = load_dags(&args.paths);
    if args.against && !report.has_errors() {
        let found = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?
            .block_on(params_diagnostics(&args, &report.dags))?;
        report.diagnostics.extend(found);
    }
    match args.format {
        Format::Text => print_text(&report)?,
        Format::Json => print_json(&report)?,
    }
    Ok(if report.has_errors() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The params diagnostics of the (valid) files against etcd's executors.
async fn params_diagnostics(args: &Args, dags: &[LoadedDag]) -> anyhow::Result<Vec<Diagnostic>> {
    let prefix = args.etcd.key_prefix()?;
    let coord = args.etcd.connect().await?;
    let schemas = params::executor_schemas(coord.as_ref(), &prefix).await?;
    Ok(params::check(dags, &schemas))
}

fn print_text(report: &LoadReport) -> anyhow::Result<()> {
    let mut err = std::io::stderr().lock();
    for d in &report.diagnostics {
        writeln!(err, "{}", d.render()).context("writing to stderr")?;
    }
    let warnings = report.diagnostics.len() - report.error_count();
    let warning_note = match warnings {
        0 => String::new(),
        1 => ", 1 warning".to_owned(),
        n => format!(", {n} warnings"),
    };
    if report.has_errors() {
        let errors = report.error_count();
        let files: std::collections::BTreeSet<_> = report
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| &d.file)
            .collect();
        writeln!(
            err,
            "error: {} in {}{warning_note}",
            plural(errors, "error"),
            plural(files.len(), "file")
        )
        .context("writing to stderr")?;
        return Ok(());
    }
    let jobs: usize = report.specs().map(|d| d.jobs.len()).sum();
    let items: u64 = report.specs().map(|d| d.total_items()).sum();
    let calendars = match report.calendars_checked {
        0 => String::new(),
        n => format!(", {}", plural(n, "calendar")),
    };
    println!(
        "ok: {} ({} jobs, {} items) in {}{calendars}{warning_note}",
        plural(report.dags.len(), "DAG"),
        thousands(jobs as u64),
        thousands(items),
        plural(report.files_checked, "file"),
    );
    Ok(())
}

/// The JSON document: a stable shape for tools, separate from the internal
/// `Diagnostic` type.
#[derive(Serialize)]
struct JsonReport<'r> {
    ok: bool,
    dags: Vec<&'r str>,
    errors: Vec<JsonDiagnostic<'r>>,
    warnings: Vec<JsonDiagnostic<'r>>,
    files_checked: usize,
    jobs: usize,
    items: u64,
}

#[derive(Serialize)]
struct JsonDiagnostic<'r> {
    file: String,
    line: usize,
    col: usize,
    message: &'r str,
}

impl<'r> From<&'r Diagnostic> for JsonDiagnostic<'r> {
    fn from(d: &'r Diagnostic) -> Self {
        Self {
            file: d.file.display().to_string(),
            line: d.line,
            col: d.col,
            message: &d.message,
        }
    }
}

fn print_json(report: &LoadReport) -> anyhow::Result<()> {
    let (errors, warnings): (Vec<&Diagnostic>, Vec<&Diagnostic>) =
        report.diagnostics.iter().partition(|d| d.is_error());
    let doc = JsonReport {
        ok: errors.is_empty(),
        dags: report.specs().map(|d| d.name.as_str()).collect(),
        errors: errors.into_iter().map(JsonDiagnostic::from).collect(),
        warnings: warnings.into_iter().map(JsonDiagnostic::from).collect(),
        files_checked: report.files_checked,
        jobs: report.specs().map(|d| d.jobs.len()).sum(),
        items: report.specs().map(|d| d.total_items()).sum(),
    };
    let text = serde_json::to_string_pretty(&doc).context("encoding the report as json")?;
    println!("{text}");
    Ok(())
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{} {noun}s", thousands(n as u64))
    }
}

/// `1234567` → `"1,234,567"`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1234), "1,234");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
