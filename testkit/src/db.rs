//! Fresh databases for tests: a new PostgreSQL database on the local server,
//! or a new SQLite file in a temporary directory. Both clean up on drop.
//!
//! PostgreSQL is reached through an admin URL
//! (`NIGHTSHIFT_TEST_PG_ADMIN_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`); `scripts/ensure-services`
//! makes sure a server answers there. Nothing here starts a server: a test
//! without one fails with the admin URL in the error, rather than skipping
//! silently.

use anyhow::Context;
use sqlx::{Connection, PgConnection};
use std::path::PathBuf;
use std::time::Duration;
use tempfile::TempDir;

/// Environment variable naming the PostgreSQL admin URL.
pub const PG_ADMIN_URL_ENV: &str = "NIGHTSHIFT_TEST_PG_ADMIN_URL";

/// Admin URL used when [`PG_ADMIN_URL_ENV`] is unset.
pub const DEFAULT_PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// How long to wait for the admin connection before giving up.
const ADMIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A PostgreSQL database created for one test; dropped (with any open
/// connections forced closed) when this handle is dropped.
#[derive(Debug)]
pub struct PgDatabase {
    /// URL of the new database, for `Store::connect`.
    pub url: String,
    /// Its name, `ns_test_<random hex>`.
    pub name: String,
    admin_url: String,
}

/// The admin URL tests use: [`PG_ADMIN_URL_ENV`] or [`DEFAULT_PG_ADMIN_URL`].
pub fn pg_admin_url() -> String {
    std::env::var(PG_ADMIN_URL_ENV).unwrap_or_else(|_| DEFAULT_PG_ADMIN_URL.to_owned())
}

/// Creates a new, empty database `ns_test_<random hex>` on the server of the
/// admin URL.
pub async fn fresh_postgres() -> anyhow::Result<PgDatabase> {
    let admin_url = pg_admin_url();
    let name = format!("ns_test_{:016x}", rand::random::<u64>());
    let mut admin = connect_admin(&admin_url).await?;
    // The name is ours (hex digits only), so quoting it is enough.
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
        .with_context(|| format!("cannot create test database {name}"))?;
    let _ = admin.close().await;
    let url = with_database(&admin_url, &name)?;
    Ok(PgDatabase {
        url,
        name,
        admin_url,
    })
}

async fn connect_admin(admin_url: &str) -> anyhow::Result<PgConnection> {
    tokio::time::timeout(ADMIN_CONNECT_TIMEOUT, PgConnection::connect(admin_url))
        .await
        .with_context(|| {
            format!("timed out connecting to postgres at {admin_url} (is it running? try scripts/ensure-services)")
        })?
        .with_context(|| {
            format!("cannot connect to postgres at {admin_url} (set {PG_ADMIN_URL_ENV}, or run scripts/ensure-services)")
        })
}

/// `url` with its database (the path) replaced by `name`, query kept.
fn with_database(url: &str, name: &str) -> anyhow::Result<String> {
    let scheme_end = url.find("://").context("postgres url has no scheme")? + 3;
    let (base, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    Ok(format!("{}/{name}{query}", &base[..host_end]))
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // Drop cannot be async, and we may be inside a runtime that must not
        // be blocked on itself: use a separate thread with its own runtime.
        // Cleanup is best-effort; a leftover `ns_test_` database is harmless.
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut admin) = connect_admin(&admin_url).await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = sqlx::query(&sql).execute(&mut admin).await;
                    let _ = admin.close().await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// A new SQLite database location in its own temporary directory; the file
/// does not exist until something connects to it. The directory (with the
/// database and its WAL files) is deleted on drop.
#[derive(Debug)]
pub struct SqliteFile {
    /// The temporary directory holding the file.
    pub dir: TempDir,
    /// The database file, `<dir>/nightshift.db`.
    pub path: PathBuf,
    /// `sqlite://<path>`, for `Store::connect`.
    pub url: String,
}

/// A fresh SQLite location (see [`SqliteFile`]).
///
/// # Panics
///
/// If no temporary directory can be created: there is nothing sensible a
/// test could do instead.
pub fn fresh_sqlite() -> SqliteFile {
    let dir = tempfile::Builder::new()
        .prefix("nightshift-test-")
        .tempdir()
        .expect("cannot create a temporary directory for a test database");
    let path = dir.path().join("nightshift.db");
    let url = format!("sqlite://{}", path.display());
    SqliteFile { dir, path, url }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn with_database_replaces_only_the_path() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x").unwrap(),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgresql://u:p@h/db?sslmode=disable", "x").unwrap(),
            "postgresql://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "x").unwrap(),
            "postgres://h:5432/x"
        );
    }
}
