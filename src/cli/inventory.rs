//! Read-only verbs for an operator's terminal: `nightshift dags list` (applied
//! DAGs from SQL), `nightshift executors` (live registrations in etcd) and
//! `nightshift alerts` (open alerts from SQL, `--all` for resolved ones too),
//! each as aligned text or, with `--format json`, one JSON document. With
//! `--server URL` and a console token they read the console's API instead
//! (no etcd or database flags) and print the same rows.

/// Largest page the console's API serves.
const MAX_API_LIMIT: u32 = 1000;

use crate::cli::conn::{self, bad_input, DatabaseArgs, EtcdArgs};
use crate::cli::remote::{self, ServerArgs};
use crate::cli::status::Format;
use anyhow::Context as _;
use chrono::{TimeZone as _, Utc};
use nightshift_client::ServerClient;
use nightshift_core::keyspace::{self, ExecutorInfo};
use nightshift_core::state::AlertState;
use nightshift_store::AlertFilter;
use serde::{Deserialize, Serialize};
use std::process::ExitCode;

/// `nightshift dags <verb>`.
#[derive(Debug, clap::Subcommand)]
pub enum DagsCommand {
    /// Applied DAGs: current version, paused or not.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Include removed DAGs (their history is kept; not through
        /// --server, whose console lists applied DAGs only).
        #[arg(long)]
        all: bool,
        /// Store URL (not needed with --server).
        #[arg(long, env = "NIGHTSHIFT_DATABASE_URL", value_name = "URL")]
        database: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
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
    #[command(flatten)]
    pub server: ServerArgs,
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
    /// Store URL (not needed with --server).
    #[arg(long, env = "NIGHTSHIFT_DATABASE_URL", value_name = "URL")]
    pub database: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
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
    let DagsCommand::List {
        format,
        all,
        database,
        server,
    } = command;
    conn::block_on(async move {
        let rows = match server.client()? {
            Some(_) if all => {
                return bad_input(
                    "--all (removed DAGs) reads the store: not available through --server",
                );
            }
            Some(server) => server_dags(&server).await?,
            None => store_dags(&remote::database(database.as_deref())?, all).await?,
        };
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

/// The applied DAGs through a console (`GET /api/v1/dags`).
async fn server_dags(server: &ServerClient) -> anyhow::Result<Vec<DagRow>> {
    #[derive(Deserialize)]
    struct Overview {
        name: String,
        version: u32,
        paused: bool,
        applied_at_ms: i64,
    }
    let dags: Vec<Overview> = server.get_json("/dags").await.map_err(remote::error)?;
    Ok(dags
        .into_iter()
        .map(|d| DagRow {
            dag: d.name,
            version: d.version,
            paused: d.paused,
            removed: false,
            updated_at: instant(d.applied_at_ms),
        })
        .collect())
}

/// The DAGs in the store (`all`: removed ones too).
async fn store_dags(db: &DatabaseArgs, all: bool) -> anyhow::Result<Vec<DagRow>> {
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
    Ok(rows)
}

/// Runs `nightshift executors`.
pub fn executors(args: ExecutorsArgs) -> ExitCode {
    conn::block_on(async move {
        let rows = match args.server.client()? {
            Some(server) => server_executors(&server).await?,
            None => etcd_executors(&args.etcd).await?,
        };
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

/// Live executors through a console (`GET /api/v1/executors`).
async fn server_executors(server: &ServerClient) -> anyhow::Result<Vec<ExecutorRow>> {
    #[derive(Deserialize)]
    struct View {
        id: String,
        host: String,
        pid: u32,
        handlers: Vec<String>,
        #[serde(default)]
        labels: std::collections::BTreeMap<String, String>,
        capacity: u32,
        version: String,
        started_at_ms: i64,
    }
    let views: Vec<View> = server.get_json("/executors").await.map_err(remote::error)?;
    Ok(views
        .into_iter()
        .map(|v| ExecutorRow {
            id: v.id,
            handlers: v.handlers,
            capacity: v.capacity,
            labels: v.labels,
            host: v.host,
            pid: v.pid,
            version: v.version,
            started_at: instant(v.started_at_ms),
        })
        .collect())
}

/// Live executors from their registrations in etcd.
async fn etcd_executors(etcd: &EtcdArgs) -> anyhow::Result<Vec<ExecutorRow>> {
    let prefix = etcd.key_prefix()?;
    let coord = etcd.connect().await?;
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
    Ok(rows)
}

/// Runs `nightshift alerts`.
pub fn alerts(args: AlertsArgs) -> ExitCode {
    conn::block_on(async move {
        let rows = match args.server.client()? {
            Some(server) => server_alerts(&server, &args).await?,
            None => store_alerts(&remote::database(args.database.as_deref())?, &args).await?,
        };
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

/// Alerts through a console (`GET /api/v1/alerts`).
async fn server_alerts(server: &ServerClient, args: &AlertsArgs) -> anyhow::Result<Vec<AlertRow>> {
    #[derive(Deserialize)]
    struct View {
        id: i64,
        rule: String,
        severity: String,
        state: String,
        dag: Option<String>,
        run_id: Option<String>,
        job: Option<String>,
        message: String,
        opened_at_ms: i64,
        resolved_at_ms: Option<i64>,
    }
    let states = if args.all { "" } else { "open,acknowledged" };
    let limit = args.limit.clamp(1, MAX_API_LIMIT);
    let views: Vec<View> = server
        .get_json(&format!("/alerts?state={states}&limit={limit}"))
        .await
        .map_err(remote::error)?;
    Ok(views
        .into_iter()
        .map(|a| AlertRow {
            id: a.id,
            rule: a.rule,
            severity: a.severity,
            state: a.state,
            dag: a.dag,
            run_id: a.run_id,
            job: a.job,
            message: a.message,
            opened_at: instant(a.opened_at_ms),
            resolved_at: a.resolved_at_ms.map(instant),
        })
        .collect())
}

/// Alerts from the store.
async fn store_alerts(db: &DatabaseArgs, args: &AlertsArgs) -> anyhow::Result<Vec<AlertRow>> {
    let store = db.connect().await?;
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
    Ok(rows)
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
