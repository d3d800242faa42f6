//! Opening the store from a URL, applying migrations, and the `on_pool!`
//! macro that lets every query be written once for both backends.
//!
//! SQLite is opened in WAL mode with a busy timeout and foreign keys on, its
//! file (and parent directories) created if missing. PostgreSQL connections
//! are bounded by a connect timeout so an unreachable server is an error, not
//! a hang.

use crate::error::{redact, StoreError};
use crate::Result;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Postgres, Sqlite, Transaction};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// Runs `$body` with `$pool` bound to the concrete pool of `$store`. The body
/// is compiled once per backend, so it must only use SQL both accept (`$1`
/// placeholders, `RETURNING`, `ON CONFLICT`).
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            $crate::connect::Pool::Sqlite($pool) => $body,
            $crate::connect::Pool::Postgres($pool) => $body,
        }
    };
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file (the embedded default).
    Sqlite,
    /// A PostgreSQL server (production).
    Postgres,
}

/// Tuning for [`Store::connect_with`]; [`Store::connect`] uses the defaults.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// How long to keep trying to open a connection (PostgreSQL retries a
    /// refused connection until this runs out). Default 10 s.
    pub connect_timeout: Duration,
    /// Pool size. Default 10 (SQLite in-memory databases always use 1).
    pub max_connections: u32,
    /// How long an SQLite writer waits for another writer. Default 5 s.
    pub sqlite_busy_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            max_connections: 10,
            sqlite_busy_timeout: Duration::from_secs(5),
        }
    }
}

/// A connection pool to the store; cheap to clone (clones share the pool).
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: Pool,
}

#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Store {
    /// Connects to `url` with default [`StoreOptions`] and applies migrations.
    ///
    /// `url` is `sqlite://path/to/file.db` (relative to the working
    /// directory; `sqlite:///abs/path.db` for an absolute path;
    /// `sqlite::memory:` for a throwaway database) or `postgres://…` /
    /// `postgresql://…`.
    pub async fn connect(url: &str) -> Result<Store> {
        Self::connect_with(url, &StoreOptions::default()).await
    }

    /// Connects to `url` with explicit options and applies migrations.
    pub async fn connect_with(url: &str, options: &StoreOptions) -> Result<Store> {
        let store = if let Some(rest) = url.strip_prefix("sqlite:") {
            connect_sqlite(url, rest, options).await?
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            connect_postgres(url, options).await?
        } else {
            return Err(StoreError::UnsupportedUrl { url: redact(url) });
        };
        store.migrate().await?;
        tracing::debug!(backend = ?store.backend(), "store connected and migrated");
        Ok(store)
    }

    /// Which backend this store uses.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }

    /// Applies the embedded migrations that are not applied yet; a no-op when
    /// the database is current.
    pub async fn migrate(&self) -> Result<()> {
        match &self.pool {
            Pool::Postgres(pool) => POSTGRES_MIGRATIONS
                .run(pool)
                .await
                .map_err(StoreError::Migrate),
            Pool::Sqlite(pool) => {
                // SQLite has no migration lock: two processes opening a new
                // file at once can both try the same migration. The loser
                // fails; by then the winner has committed that migration
                // and may be applying the next, so the loser runs again
                // (briefly backing off) until it finds everything applied
                // or keeps getting an error, which is then the real one.
                let mut tries = 0;
                loop {
                    match SQLITE_MIGRATIONS.run(pool).await {
                        Ok(()) => return Ok(()),
                        Err(e) if tries < 20 => {
                            tracing::debug!(error = %e, tries, "sqlite migration failed, retrying");
                            tries += 1;
                            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
                        }
                        Err(e) => return Err(StoreError::Migrate(e)),
                    }
                }
            }
        }
    }
}

async fn connect_sqlite(url: &str, rest: &str, options: &StoreOptions) -> Result<Store> {
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() {
        return Err(StoreError::UnsupportedUrl { url: redact(url) });
    }
    let in_memory = path == ":memory:";
    if !in_memory {
        if let Some(dir) = Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        }
    }
    let connect = SqliteConnectOptions::from_str(url)
        .map_err(|source| StoreError::InvalidUrl {
            url: redact(url),
            source,
        })?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // NORMAL is durable across application crashes in WAL mode; only an
        // OS crash can lose the last commits, which the scheduler re-derives.
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(options.sqlite_busy_timeout)
        .foreign_keys(true);
    let mut pool = SqlitePoolOptions::new().acquire_timeout(options.connect_timeout);
    pool = if in_memory {
        // An in-memory database lives as long as its last connection.
        pool.max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        pool.max_connections(options.max_connections.max(1))
    };
    // Switching a brand-new file to WAL takes an exclusive lock, and SQLite
    // answers a second process doing the same at that moment with BUSY at
    // once, without waiting its busy timeout: retry for up to that timeout.
    let deadline = tokio::time::Instant::now() + options.sqlite_busy_timeout;
    let mut backoff = Duration::from_millis(10);
    let pool = loop {
        match pool.clone().connect_with(connect.clone()).await {
            Ok(pool) => break pool,
            Err(source) if is_busy(&source) && tokio::time::Instant::now() < deadline => {
                tracing::debug!(error = %source, "sqlite busy while opening; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(200));
            }
            Err(source) => {
                return Err(StoreError::Connect {
                    url: redact(url),
                    source,
                })
            }
        }
    };
    Ok(Store {
        pool: Pool::Sqlite(pool),
    })
}

/// SQLITE_BUSY (5) or SQLITE_LOCKED (6), possibly extended.
fn is_busy(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| matches!(c & 0xff, 5 | 6)),
        _ => false,
    }
}

async fn connect_postgres(url: &str, options: &StoreOptions) -> Result<Store> {
    let connect = PgConnectOptions::from_str(url).map_err(|source| StoreError::InvalidUrl {
        url: redact(url),
        source,
    })?;
    let pool = PgPoolOptions::new()
        .max_connections(options.max_connections.max(1))
        .acquire_timeout(options.connect_timeout)
        .connect_with(connect)
        .await
        .map_err(|source| StoreError::Connect {
            url: redact(url),
            source,
        })?;
    Ok(Store {
        pool: Pool::Postgres(pool),
    })
}

/// Opens a transaction that is going to write.
///
/// SQLite's default deferred transaction takes the write lock only at its
/// first write; a transaction that reads first and then writes can then fail
/// at once with "database is locked" instead of waiting its busy timeout.
/// `BEGIN IMMEDIATE` takes the lock up front, so writers queue instead.
pub(crate) trait BeginWrite {
    /// The driver.
    type Db: sqlx::Database;
    /// Begins a write transaction.
    async fn begin_write(&self)
        -> std::result::Result<Transaction<'static, Self::Db>, sqlx::Error>;
}

impl BeginWrite for SqlitePool {
    type Db = Sqlite;
    async fn begin_write(&self) -> std::result::Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

impl BeginWrite for PgPool {
    type Db = Postgres;
    async fn begin_write(
        &self,
    ) -> std::result::Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.begin().await
    }
}
