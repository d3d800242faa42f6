//! Read-only verbs for an operator's terminal: `nightshift dags list` (applied
//! DAGs from SQL), `nightshift executors` (live registrations in etcd) and
//! `nightshift alerts` (open alerts from SQL, `--all` for resolved ones too),
//! each as aligned text or, with `--format json`, one JSON document.

use crate::cli::conn::{self, DatabaseArgs, EtcdArgs};
use crate::cli::status::Format;
use anyhow::Context as _;
use chrono::{TimeZone as _, Utc};
use nightshift_core::keyspace::{self, ExecutorInfo};
use nightshift_core::state::AlertState;
use nightshift_store::AlertFilter;
use serde::Serialize;
use std::process::ExitCode;

/// `nightshift dags <verb>`.
#[derive(Debug, clap::Subcommand)]
pub enum DagsCommand {
    /// Applied DAGs: current version, paused or not.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Include removed DAGs (their history is kept).
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

/// Flags of `nightshift executors`.
#[derive(Debug, clap::Args)]
pub struct ExecutorsArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    #[command(flatten)]
    pub etcd: EtcdArgs,
}

/// Flags of `nightshift alerts`.
#[derive(Debug, clap::Args)]
pub struct AlertsArgs {
    /// Also resolved alerts (newest first).
    #[arg(long)]
    pub all: bool,
    /// How many alerts at most.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub limit: u32,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    #[command(flatten)]
    pub db: DatabaseArgs,
}

#[derive(Debug, Serialize)]
struct DagRow {
    dag: String,
    version: u32,
    paused: bool,
    removed: bool,
    updated_at: String,
}

#[derive(Debug, Serialize)]
struct ExecutorRow {
    id: String,
    handlers: Vec<String>,
    capacity: u32,
    labels: std::collections::BTreeMap<String, String>,
    host: String,
    pid: u32,
    version: String,
    started_at: String,
}

#[derive(Debug, Serialize)]
struct AlertRow {
    id: i64,
    rule: String,
    severity: String,
    state: String,
    dag: Option<String>,
    run_id: Option<String>,
    job: Option<String>,
    message: String,
    opened_at: String,
    resolved_at: Option<String>,
}

fn instant(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms).single().map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// Runs `nightshift dags <verb>`.
pub fn dags(command: DagsCommand) -> ExitCode {
    let DagsCommand::List { format, all, db } = command;
    conn::block_on(async move {
        let store = db.connect().await?;
        let rows: Vec<DagRow> = store
            .list_dags()
            .await
            .context("reading DAGs")?
            .into_iter()
            .filter(|d| all || !d.removed)
            .map(|d| DagRow {
                dag: d.dag.to_string(),
                version: d.current_version,
                paused: d.paused,
                removed: d.removed,
                updated_at: instant(d.updated_at_ms),
            })
            .collect();
        print(format, &rows, |r| {
            let mut state = if r.paused { "paused" } else { "active" }.to_owned();
            if r.removed {
                state = "removed".into();
            }
            vec![
                r.dag.clone(),
                format!("v{}", r.version),
                state,
                r.updated_at.clone(),
            ]
        })
    })
}

/// Runs `nightshift executors`.
pub fn executors(args: ExecutorsArgs) -> ExitCode {
    conn::block_on(async move {
        let prefix = args.etcd.key_prefix()?;
        let coord = args.etcd.connect().await?;
        let (kvs, _) = coord
            .get_prefix(&keyspace::executors_prefix(&prefix))
            .await
            .context("reading executors from etcd")?;
        let mut rows = Vec::new();
        for kv in kvs {
            // One unreadable registration must not hide the others.
            match keyspace::decode::<ExecutorInfo>(&kv.value) {
                Ok(info) => rows.push(ExecutorRow {
                    id: info.id.to_string(),
                    handlers: info.handlers.iter().map(ToString::to_string).collect(),
                    capacity: info.capacity,
                    labels: info.labels,
                    host: info.host,
                    pid: info.pid,
                    version: info.version,
                    started_at: instant(info.started_at_ms),
                }),
                Err(e) => eprintln!("warning: skipping unreadable {}: {e}", kv.key),
            }
        }
        print(args.format, &rows, |r| {
            let labels: Vec<String> = r.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            vec![
                r.id.clone(),
                format!("capacity {}", r.capacity),
                r.handlers.join(","),
                labels.join(","),
                format!("{} pid {}", r.host, r.pid),
                r.started_at.clone(),
            ]
        })
    })
}

/// Runs `nightshift alerts`.
pub fn alerts(args: AlertsArgs) -> ExitCode {
    conn::block_on(async move {
        let store = args.db.connect().await?;
        let filter = AlertFilter {
            states: if args.all {
                Vec::new()
            } else {
                vec![AlertState::Open, AlertState::Acknowledged]
            },
            dag: None,
            limit: Some(args.limit),
        };
        let rows: Vec<AlertRow> = store
            .list_alerts(&filter)
            .await
            .context("reading alerts")?
            .into_iter()
            .map(|a| AlertRow {
                id: a.id.0,
                rule: a.rule.to_string(),
                severity: a.severity.to_string(),
                state: a.state.to_string(),
                dag: a.dag.map(|d| d.to_string()),
                run_id: a.run_id.map(|r| r.to_string()),
                job: a.job.map(|j| j.to_string()),
                message: a.message,
                opened_at: instant(a.opened_at_ms),
                resolved_at: a.resolved_at_ms.map(instant),
            })
            .collect();
        print(args.format, &rows, |r| {
            vec![
                format!("#{}", r.id),
                r.severity.clone(),
                r.state.clone(),
                r.rule.clone(),
                r.run_id
                    .clone()
                    .or_else(|| r.dag.clone())
                    .unwrap_or_default(),
                r.opened_at.clone(),
                r.message.lines().next().unwrap_or_default().to_owned(),
            ]
        })
    })
}

/// Prints rows as JSON, or as aligned columns (a note when there are none).
fn print<T: Serialize>(
    format: Format,
    rows: &[T],
    columns: impl Fn(&T) -> Vec<String>,
) -> anyhow::Result<ExitCode> {
    match format {
        Format::Json => {
            println!(
                "{}",
                serde_json::to_string_pretty(rows).context("encoding JSON")?
            );
        }
        Format::Text if rows.is_empty() => eprintln!("(none)"),
        Format::Text => {
            let cells: Vec<Vec<String>> = rows.iter().map(columns).collect();
            let widths: Vec<usize> = (0..cells[0].len())
                .map(|i| {
                    cells
                        .iter()
                        .map(|r| r[i].chars().count())
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            for row in cells {
                let line: Vec<String> = row
                    .iter()
                    .zip(&widths)
                    .map(|(cell, w)| format!("{cell:<w$}"))
                    .collect();
                println!("{}", line.join("  ").trim_end());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
