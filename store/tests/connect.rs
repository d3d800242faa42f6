//! Connecting: URL handling, SQLite file creation, reconnecting to existing
//! data (re-running migrations is a no-op), and clear, bounded failures for
//! bad URLs and unreachable servers.

use nightshift_core::ids::DagName;
use nightshift_store::{Backend, NewDagVersion, Store, StoreError, StoreOptions};
use nightshift_testkit::db::{fresh_postgres, fresh_sqlite};
use sqlx::Connection;
use std::time::{Duration, Instant};

fn version(dag: &DagName) -> NewDagVersion<'_> {
    NewDagVersion {
        dag,
        spec_json: "{}",
        source_toml: "",
        checksum: "c1",
        applied_by: "t",
        at_ms: 1,
    }
}

/// `(version, installed_on)` of every applied migration, read with a plain
/// connection so the store's own pool is not involved.
async fn applied_migrations_sqlite(path: &std::path::Path) -> Vec<(i64, String)> {
    let url = format!("sqlite://{}", path.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query_as(
        "SELECT version, CAST(installed_on AS TEXT) FROM _sqlx_migrations ORDER BY version",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
}

async fn applied_migrations_pg(url: &str) -> Vec<(i64, String)> {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query_as("SELECT version, installed_on::TEXT FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn sqlite_file_and_parent_dirs_are_created() {
    let db = fresh_sqlite();
    let path = db.dir.path().join("a/b/c/ns.db");
    let url = format!("sqlite://{}", path.display());
    assert!(!path.exists());
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    assert!(path.exists());
    store.close().await;
}

#[tokio::test]
async fn reconnecting_to_a_sqlite_file_keeps_data_and_skips_migrations() {
    let db = fresh_sqlite();
    let dag = DagName::new("kept");
    let store = Store::connect(&db.url).await.unwrap();
    store.record_dag_version(&version(&dag)).await.unwrap();
    store.close().await;
    let migrations = applied_migrations_sqlite(&db.path).await;
    assert!(!migrations.is_empty());

    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(
        store
            .latest_dag_version(&dag)
            .await
            .unwrap()
            .unwrap()
            .version,
        1
    );
    store.close().await;
    assert_eq!(
        applied_migrations_sqlite(&db.path).await,
        migrations,
        "nothing re-applied"
    );
}

#[tokio::test]
async fn reconnecting_to_a_postgres_database_keeps_data_and_skips_migrations() {
    let db = fresh_postgres().await.unwrap();
    let dag = DagName::new("kept");
    let store = Store::connect(&db.url).await.unwrap();
    assert_eq!(store.backend(), Backend::Postgres);
    store.record_dag_version(&version(&dag)).await.unwrap();
    store.close().await;
    let migrations = applied_migrations_pg(&db.url).await;
    assert!(!migrations.is_empty());

    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(
        store
            .latest_dag_version(&dag)
            .await
            .unwrap()
            .unwrap()
            .version,
        1
    );
    store.close().await;
    assert_eq!(
        applied_migrations_pg(&db.url).await,
        migrations,
        "nothing re-applied"
    );
}

#[tokio::test]
async fn two_stores_can_open_a_new_sqlite_file_at_once() {
    let db = fresh_sqlite();
    let (a, b) = tokio::join!(Store::connect(&db.url), Store::connect(&db.url));
    let (a, b) = (a.unwrap(), b.unwrap());
    let dag = DagName::new("shared");
    a.record_dag_version(&version(&dag)).await.unwrap();
    assert!(b.get_dag(&dag).await.unwrap().is_some());
}

#[tokio::test]
async fn in_memory_sqlite_works_for_throwaway_use() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    let dag = DagName::new("m");
    store.record_dag_version(&version(&dag)).await.unwrap();
    assert_eq!(store.list_dags().await.unwrap().len(), 1);
}

#[tokio::test]
async fn unsupported_urls_get_a_clear_error_without_the_password() {
    for url in [
        "mysql://u:hunter2@db/ns",
        "",
        "nightshift.db",
        "sqlite://",
        "http://x",
    ] {
        let err = Store::connect(url).await.unwrap_err();
        assert!(
            matches!(err, StoreError::UnsupportedUrl { .. }),
            "{url}: {err:?}"
        );
        let msg = err.to_string();
        assert!(msg.starts_with("unsupported database url"), "{msg}");
        assert!(
            msg.contains("sqlite://") && msg.contains("postgres://"),
            "names what is accepted: {msg}"
        );
        assert!(!msg.contains("hunter2"), "password leaked: {msg}");
    }
}

#[tokio::test]
async fn malformed_postgres_url_is_invalid() {
    let err = Store::connect("postgres://u:hunter2@host:notaport/db")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidUrl { .. }), "{err:?}");
    assert!(!err.to_string().contains("hunter2"));
}

/// A port on loopback that nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn unreachable_postgres_fails_within_the_connect_timeout() {
    let options = StoreOptions {
        connect_timeout: Duration::from_millis(800),
        ..StoreOptions::default()
    };
    // A refused port (retried until the timeout) and a non-routable address
    // (no answer at all): both must fail, and soon.
    let urls = [
        format!("postgres://u:hunter2@127.0.0.1:{}/ns", closed_port()),
        "postgres://u:hunter2@10.255.255.1:5432/ns".to_owned(),
    ];
    for url in urls {
        let started = Instant::now();
        let err = Store::connect_with(&url, &options).await.unwrap_err();
        let took = started.elapsed();
        assert!(took < Duration::from_secs(5), "{url} took {took:?}");
        assert!(matches!(err, StoreError::Connect { .. }), "{url}: {err:?}");
        let msg = err.to_string();
        assert!(
            msg.starts_with("cannot connect to the database at"),
            "{msg}"
        );
        assert!(!msg.contains("hunter2"), "password leaked: {msg}");
    }
}

#[tokio::test]
async fn sqlite_in_an_uncreatable_directory_gets_a_clear_error() {
    let db = fresh_sqlite();
    let file = db.dir.path().join("plain-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let url = format!("sqlite://{}/sub/ns.db", file.display());
    let err = Store::connect(&url).await.unwrap_err();
    assert!(matches!(err, StoreError::CreateDir { .. }), "{err:?}");
    assert!(err.to_string().contains("cannot create directory"), "{err}");
}
