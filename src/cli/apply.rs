//! `nightshift apply PATH... [--prune] [--dry-run]`: publish DAG files.
//!
//! Every file is validated first; if any has an error, the diagnostics are
//! printed and nothing is published (exit 1). So are the jobs' params
//! against the params types the live executors' handlers declare (a job
//! whose handler no live executor offers gets a warning: executors may come
//! later). Then, DAG by DAG, a new
//! version is recorded in SQL when the checksum changed (the history) and
//! the current version is put under `{p}dags/{name}` in etcd (what the
//! leader schedules). The etcd write is guarded by the key's revision so
//! that a concurrent pause by the leader is never overwritten: `paused` is
//! carried over from the record being replaced. `--prune` removes applied
//! DAGs whose files were not given (their SQL history is kept).

use crate::cli::applied;
use crate::cli::conn::{self, BadInput, DatabaseArgs, EtcdArgs};
use crate::cli::params;
use anyhow::Context as _;
use nightshift_coord::Coordinator;
use nightshift_core::dag::{load_dags, LoadedDag};
use nightshift_core::ids::DagName;
use nightshift_core::keyspace::{dag_checksum, AppliedDag};
use nightshift_store::{NewDagVersion, NewEvent, Store, StoreError};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

/// How many times a guarded etcd write is retried when the key changed
/// under it (the leader pausing the DAG at the same moment).
const WRITE_ATTEMPTS: usize = 5;

/// Flags of `nightshift apply`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// DAG files, or folders whose `*.toml` files are DAGs.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Also remove applied DAGs whose files are not among PATH.
    #[arg(long)]
    pub prune: bool,
    /// Validate and show what would change, without writing anything.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub etcd: EtcdArgs,
    #[command(flatten)]
    pub db: DatabaseArgs,
}

/// Runs `nightshift apply`.
pub fn run(args: Args) -> ExitCode {
    conn::block_on(apply(args))
}

async fn apply(args: Args) -> anyhow::Result<ExitCode> {
    let report = load_dags(&args.paths);
    if report.has_errors() {
        for d in &report.diagnostics {
            eprintln!("{}", d.render());
        }
        return Err(BadInput(format!(
            "{} error(s) found: nothing was applied",
            report.error_count()
        ))
        .into());
    }
    let dags = report.dags;
    let prefix = args.etcd.key_prefix()?;
    let coord = args.etcd.connect().await?;
    // Params against the handlers' declared types, before anything is
    // written: a typo fails now rather than at 01:30.
    let schemas = params::executor_schemas(coord.as_ref(), &prefix).await?;
    let errors = params::print(&params::check(&dags, &schemas));
    if errors > 0 {
        return Err(BadInput(format!(
            "{errors} error(s) found: params do not fit their handlers; nothing was applied"
        ))
        .into());
    }
    let store = args.db.connect().await?;
    let mut out = Vec::new();
    for dag in &dags {
        out.push(apply_one(coord.as_ref(), &store, &prefix, dag, args.dry_run).await?);
    }
    if args.prune {
        let keep: BTreeSet<&DagName> = dags.iter().map(|d| &d.spec.name).collect();
        out.extend(prune(coord.as_ref(), &store, &prefix, &keep, args.dry_run).await?);
    }
    for line in &out {
        println!("{line}");
    }
    if args.dry_run {
        println!("dry run: nothing was written");
    }
    Ok(ExitCode::SUCCESS)
}

/// Records and publishes one DAG; returns the line to print.
pub(crate) async fn apply_one(
    coord: &dyn Coordinator,
    store: &Store,
    prefix: &str,
    dag: &LoadedDag,
    dry_run: bool,
) -> anyhow::Result<String> {
    let name = &dag.spec.name;
    let checksum = dag_checksum(&dag.source, &dag.spec);
    let latest = store
        .latest_dag_version(name)
        .await
        .context("reading the dag history")?;
    if dry_run {
        let published = applied::get(coord, prefix, name).await?;
        return Ok(match latest {
            None => format!("{name}: would be created as v1"),
            Some(v) if v.checksum == checksum && published.is_some_and(|p| p.dag.is_some()) => {
                format!("{name}: unchanged (v{})", v.version)
            }
            Some(v) if v.checksum == checksum => {
                format!("{name}: would be republished as v{}", v.version)
            }
            Some(v) => format!("{name}: would be updated to v{}", v.version + 1),
        });
    }
    let applied_by = conn::user_name();
    let now = conn::now_ms();
    let recorded = store
        .record_dag_version(&NewDagVersion {
            dag: name,
            spec_json: &serde_json::to_string(&dag.spec).context("serializing the dag")?,
            source_toml: &dag.source,
            checksum: &checksum,
            applied_by: &applied_by,
            at_ms: now,
        })
        .await
        .context("recording the dag version")?;
    let sql_paused = store
        .get_dag(name)
        .await
        .context("reading the dag")?
        .is_some_and(|d| d.paused);
    for _ in 0..WRITE_ATTEMPTS {
        let current = applied::get(coord, prefix, name).await?;
        let up_to_date = current
            .as_ref()
            .and_then(|p| p.dag.as_ref())
            .is_some_and(|d| d.checksum == checksum && d.version == recorded.version);
        if up_to_date && !recorded.created {
            return Ok(format!("{name}: unchanged (v{})", recorded.version));
        }
        let record = AppliedDag {
            spec: dag.spec.clone(),
            source_toml: dag.source.clone(),
            checksum: checksum.clone(),
            version: recorded.version,
            applied_at_ms: now,
            applied_by: applied_by.clone(),
            paused: current
                .as_ref()
                .and_then(|p| p.dag.as_ref())
                .map_or(sql_paused, |d| d.paused),
        };
        if applied::put_if_unchanged(
            coord,
            prefix,
            &record,
            current.as_ref().map(|p| p.mod_revision),
        )
        .await?
        {
            audit(
                store,
                "dag_applied",
                &applied_by,
                name,
                serde_json::json!({ "version": recorded.version, "checksum": checksum }),
            )
            .await;
            return Ok(match (recorded.created, recorded.version) {
                (true, 1) => format!("{name}: created v1"),
                (true, v) => format!("{name}: updated to v{v}"),
                // The history already had this checksum but etcd did not
                // (a DAG applied again after a prune, or an interrupted apply).
                (false, v) => format!("{name}: republished v{v}"),
            });
        }
    }
    anyhow::bail!("{name}: the etcd record kept changing while being applied; try again")
}

/// Appends an audit event for a DAG published or pruned. Best effort: the
/// change is already made, so a failure is a warning, not a failed apply.
async fn audit(store: &Store, kind: &str, actor: &str, dag: &DagName, detail: serde_json::Value) {
    let event = NewEvent {
        at_ms: conn::now_ms(),
        kind: kind.to_owned(),
        actor: actor.to_owned(),
        dag: Some(dag.clone()),
        run_id: None,
        job: None,
        item: None,
        executor: None,
        detail,
    };
    if let Err(e) = store.append_event(&event).await {
        tracing::warn!(kind, dag = %dag, error = %e, "could not record the audit event");
    }
}

/// Removes applied DAGs not in `keep`; returns the lines to print.
async fn prune(
    coord: &dyn Coordinator,
    store: &Store,
    prefix: &str,
    keep: &BTreeSet<&DagName>,
    dry_run: bool,
) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    let published = applied::list(coord, prefix).await?;
    let mut gone: BTreeSet<DagName> = BTreeSet::new();
    for (name, mod_revision) in &published {
        if keep.contains(name) {
            continue;
        }
        if !dry_run && !applied::delete_if_unchanged(coord, prefix, name, *mod_revision).await? {
            anyhow::bail!("{name}: the etcd record changed while being pruned; try again");
        }
        gone.insert(name.clone());
    }
    // DAGs the SQL store still lists as current but etcd no longer has (an
    // earlier prune that stopped half-way) are marked removed too.
    for summary in store.list_dags().await.context("listing dags")? {
        if !summary.removed && !keep.contains(&summary.dag) {
            gone.insert(summary.dag);
        }
    }
    for name in gone {
        if !dry_run {
            match store.mark_dag_removed(&name, conn::now_ms()).await {
                Ok(()) | Err(StoreError::NotFound { .. }) => {}
                Err(e) => {
                    return Err(anyhow::Error::new(e).context(format!("marking {name} removed")))
                }
            }
            audit(
                store,
                "dag_pruned",
                &conn::user_name(),
                &name,
                serde_json::Value::Null,
            )
            .await;
        }
        lines.push(if dry_run {
            format!("{name}: would be pruned")
        } else {
            format!("{name}: pruned")
        });
    }
    Ok(lines)
}
