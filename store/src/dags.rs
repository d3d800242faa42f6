//! Applied DAG versions (`dag_versions`, full history) and each DAG's current
//! row (`dags`: current version, paused, removed).
//!
//! A new version is recorded only when the spec's checksum differs from the
//! latest one, so re-applying an unchanged file is a no-op.

use crate::connect::BeginWrite;
use crate::error::{query_err, QueryContext, StoreError};
use crate::rows::to_u32;
use crate::{Result, Store};
use nightshift_core::ids::DagName;

/// What to record when a DAG file is applied.
#[derive(Debug, Clone)]
pub struct NewDagVersion<'a> {
    /// The DAG.
    pub dag: &'a DagName,
    /// The validated spec, serialized.
    pub spec_json: &'a str,
    /// The TOML source as applied, kept for display and diffing.
    pub source_toml: &'a str,
    /// Checksum of the spec; an unchanged checksum records no new version.
    pub checksum: &'a str,
    /// Who applied it.
    pub applied_by: &'a str,
    /// When, epoch milliseconds.
    pub at_ms: i64,
}

/// One applied version of a DAG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DagVersion {
    /// The DAG.
    pub dag: DagName,
    /// 1, 2, 3… per DAG.
    pub version: u32,
    /// The validated spec, serialized.
    pub spec_json: String,
    /// The TOML source as applied.
    pub source_toml: String,
    /// Checksum of the spec.
    pub checksum: String,
    /// When it was applied, epoch milliseconds.
    pub applied_at_ms: i64,
    /// Who applied it.
    pub applied_by: String,
}

/// The result of [`Store::record_dag_version`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordedVersion {
    /// The DAG's current version after the call.
    pub version: u32,
    /// Whether this call created it (false: the checksum was unchanged).
    pub created: bool,
}

/// A DAG's current row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DagSummary {
    /// The DAG.
    pub dag: DagName,
    /// Its latest applied version.
    pub current_version: u32,
    /// Whether scheduling is paused.
    pub paused: bool,
    /// Whether the DAG was removed (its history is kept).
    pub removed: bool,
    /// Last change to this row, epoch milliseconds.
    pub updated_at_ms: i64,
}

#[derive(sqlx::FromRow)]
struct VersionRow {
    dag: String,
    version: i64,
    spec_json: String,
    source_toml: String,
    checksum: String,
    applied_at_ms: i64,
    applied_by: String,
}

impl TryFrom<VersionRow> for DagVersion {
    type Error = StoreError;
    fn try_from(r: VersionRow) -> Result<Self> {
        Ok(DagVersion {
            dag: DagName::new(r.dag),
            version: to_u32("dag_versions.version", r.version)?,
            spec_json: r.spec_json,
            source_toml: r.source_toml,
            checksum: r.checksum,
            applied_at_ms: r.applied_at_ms,
            applied_by: r.applied_by,
        })
    }
}

#[derive(sqlx::FromRow)]
struct DagRow {
    dag: String,
    current_version: i64,
    paused: bool,
    removed: bool,
    updated_at_ms: i64,
}

impl TryFrom<DagRow> for DagSummary {
    type Error = StoreError;
    fn try_from(r: DagRow) -> Result<Self> {
        Ok(DagSummary {
            dag: DagName::new(r.dag),
            current_version: to_u32("dags.current_version", r.current_version)?,
            paused: r.paused,
            removed: r.removed,
            updated_at_ms: r.updated_at_ms,
        })
    }
}

const VERSION_COLUMNS: &str =
    "dag, version, spec_json, source_toml, checksum, applied_at_ms, applied_by";
const DAG_COLUMNS: &str = "dag, current_version, paused, removed, updated_at_ms";

impl Store {
    /// Records an applied DAG: a new version when `checksum` differs from the
    /// latest version's, otherwise the latest version is returned unchanged.
    /// Either way the DAG is no longer marked removed; `paused` is kept.
    pub async fn record_dag_version(&self, new: &NewDagVersion<'_>) -> Result<RecordedVersion> {
        const OP: &str = "record dag version";
        let dag = new.dag.as_str();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await.map_err(query_err(OP))?;
            // Take the DAG's row lock first (creating a placeholder row for a
            // new DAG), so concurrent appliers of one DAG queue here instead
            // of both picking the same next version. SQLite's `BEGIN
            // IMMEDIATE` already serializes writers; this is for PostgreSQL.
            sqlx::query(
                "INSERT INTO dags (dag, current_version, paused, removed, updated_at_ms) \
                 VALUES ($1, 0, FALSE, FALSE, $2) ON CONFLICT (dag) DO UPDATE SET dag = excluded.dag",
            )
            .bind(dag)
            .bind(new.at_ms)
            .execute(&mut *tx)
            .await
            .map_err(query_err(OP))?;
            let latest: Option<(i64, String)> = sqlx::query_as(
                "SELECT version, checksum FROM dag_versions WHERE dag = $1 ORDER BY version DESC LIMIT 1",
            )
            .bind(dag)
            .fetch_optional(&mut *tx)
            .await
            .map_err(query_err(OP))?;
            let recorded = match latest {
                Some((version, checksum)) if checksum == new.checksum => {
                    sqlx::query("UPDATE dags SET removed = FALSE, updated_at_ms = $2 WHERE dag = $1 AND removed")
                        .bind(dag)
                        .bind(new.at_ms)
                        .execute(&mut *tx)
                        .await
                        .map_err(query_err(OP))?;
                    RecordedVersion { version: to_u32("dag_versions.version", version)?, created: false }
                }
                latest => {
                    let version = latest.map_or(1, |(v, _)| v + 1);
                    sqlx::query(
                        "UPDATE dags SET current_version = $2, removed = FALSE, updated_at_ms = $3 \
                         WHERE dag = $1",
                    )
                    .bind(dag)
                    .bind(version)
                    .bind(new.at_ms)
                    .execute(&mut *tx)
                    .await
                    .map_err(query_err(OP))?;
                    sqlx::query(
                        "INSERT INTO dag_versions (dag, version, spec_json, source_toml, checksum, applied_at_ms, applied_by) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(dag)
                    .bind(version)
                    .bind(new.spec_json)
                    .bind(new.source_toml)
                    .bind(new.checksum)
                    .bind(new.at_ms)
                    .bind(new.applied_by)
                    .execute(&mut *tx)
                    .await
                    .op(OP, || format!("version {version} of dag {dag}"))?;
                    RecordedVersion { version: to_u32("dag_versions.version", version)?, created: true }
                }
            };
            tx.commit().await.op(OP, || format!("a version of dag {dag}"))?;
            Ok(recorded)
        })
    }

    /// Every version of `dag`, oldest first.
    pub async fn dag_versions(&self, dag: &DagName) -> Result<Vec<DagVersion>> {
        let sql =
            format!("SELECT {VERSION_COLUMNS} FROM dag_versions WHERE dag = $1 ORDER BY version");
        let rows: Vec<VersionRow> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(dag.as_str())
            .fetch_all(pool)
            .await)
        .map_err(query_err("list dag versions"))?;
        rows.into_iter().map(DagVersion::try_from).collect()
    }

    /// The latest version of `dag`, if it was ever applied.
    pub async fn latest_dag_version(&self, dag: &DagName) -> Result<Option<DagVersion>> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM dag_versions WHERE dag = $1 ORDER BY version DESC LIMIT 1"
        );
        let row: Option<VersionRow> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(dag.as_str())
            .fetch_optional(pool)
            .await)
        .map_err(query_err("get latest dag version"))?;
        row.map(DagVersion::try_from).transpose()
    }

    /// One version of `dag` (what a run was started with).
    pub async fn dag_version(&self, dag: &DagName, version: u32) -> Result<Option<DagVersion>> {
        let sql =
            format!("SELECT {VERSION_COLUMNS} FROM dag_versions WHERE dag = $1 AND version = $2");
        let row: Option<VersionRow> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(dag.as_str())
            .bind(i64::from(version))
            .fetch_optional(pool)
            .await)
        .map_err(query_err("get dag version"))?;
        row.map(DagVersion::try_from).transpose()
    }

    /// Pauses or resumes scheduling of `dag`.
    pub async fn set_dag_paused(&self, dag: &DagName, paused: bool, at_ms: i64) -> Result<()> {
        self.update_dag(dag, "paused", paused, at_ms, "set dag paused")
            .await
    }

    /// Marks `dag` removed; its versions and runs are kept. Applying it again
    /// un-removes it.
    pub async fn mark_dag_removed(&self, dag: &DagName, at_ms: i64) -> Result<()> {
        self.update_dag(dag, "removed", true, at_ms, "mark dag removed")
            .await
    }

    async fn update_dag(
        &self,
        dag: &DagName,
        column: &'static str,
        value: bool,
        at_ms: i64,
        op: &'static str,
    ) -> Result<()> {
        let sql = format!("UPDATE dags SET {column} = $2, updated_at_ms = $3 WHERE dag = $1");
        let done = on_pool!(self, pool => sqlx::query(&sql)
            .bind(dag.as_str())
            .bind(value)
            .bind(at_ms)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(query_err(op))?;
        if done == 0 {
            return Err(StoreError::NotFound {
                what: format!("dag {dag}"),
            });
        }
        Ok(())
    }

    /// The current row of `dag`.
    pub async fn get_dag(&self, dag: &DagName) -> Result<Option<DagSummary>> {
        let sql = format!("SELECT {DAG_COLUMNS} FROM dags WHERE dag = $1");
        let row: Option<DagRow> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(dag.as_str())
            .fetch_optional(pool)
            .await)
        .map_err(query_err("get dag"))?;
        row.map(DagSummary::try_from).transpose()
    }

    /// Every DAG ever applied (removed ones included), by name.
    pub async fn list_dags(&self) -> Result<Vec<DagSummary>> {
        let sql = format!("SELECT {DAG_COLUMNS} FROM dags ORDER BY dag");
        let rows: Vec<DagRow> = on_pool!(self, pool => sqlx::query_as(&sql).fetch_all(pool).await)
            .map_err(query_err("list dags"))?;
        rows.into_iter().map(DagSummary::try_from).collect()
    }
}
