//! The API and pages against a real etcd process, with a fresh SQLite file
//! and with a fresh PostgreSQL database: the same happy paths as the
//! in-process run, so both backends are known to work end to end.

mod support;

use axum::http::{Method, StatusCode};
use nightshift_coord::etcd::{EtcdConfig, EtcdCoordinator};
use nightshift_testkit::db::{fresh_postgres, fresh_sqlite};
use nightshift_testkit::etcd::EtcdServer;
use std::sync::Arc;
use support::{seed, suite, Fixture, TOKEN};

async fn etcd_fixture(url: String, guard: Box<dyn std::any::Any + Send + Sync>) -> Fixture {
    let etcd = EtcdServer::start().await.unwrap();
    let coord = EtcdCoordinator::connect(EtcdConfig::new(etcd.endpoints()))
        .await
        .unwrap();
    Fixture::new(
        Arc::new(coord),
        &url,
        support::operators(),
        vec![Box::new(etcd), guard],
    )
    .await
}

async fn everything(f: &Fixture) {
    let alert = seed(f).await;
    suite::reads(f, alert).await;
    suite::metrics(f).await;
    let (status, _, body) = f.call(Method::GET, "/runs/r1", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.matches("class=\"cell st-").count(), 8);
    suite::actions(f, alert).await;
}

#[tokio::test]
async fn api_and_pages_work_on_etcd_with_sqlite() {
    let db = fresh_sqlite();
    let url = db.url.clone();
    let f = etcd_fixture(url, Box::new(db)).await;
    everything(&f).await;
}

#[tokio::test]
async fn api_and_pages_work_on_etcd_with_postgres() {
    let db = fresh_postgres().await.unwrap();
    let url = db.url.clone();
    let f = etcd_fixture(url, Box::new(db)).await;
    everything(&f).await;
}
