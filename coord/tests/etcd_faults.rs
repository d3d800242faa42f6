//! etcd-only fault cases: what the etcd backend does when etcd is
//! unreachable, frozen (SIGSTOP, like a partition) or restarted. These have
//! no in-process equivalent, so they live outside the conformance suite.

use nightshift_coord::etcd::{EtcdConfig, EtcdCoordinator};
use nightshift_coord::lease::{LeaseKeeper, LeaseStatus};
use nightshift_coord::{CoordError, Coordinator};
use nightshift_testkit::etcd::EtcdServer;
use nightshift_testkit::wait::{wait_for, wait_for_value};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const SOON: Duration = Duration::from_secs(10);

async fn connect(server: &EtcdServer) -> Arc<dyn Coordinator> {
    let mut config = EtcdConfig::new(server.endpoints());
    config.request_timeout = Duration::from_secs(1);
    Arc::new(EtcdCoordinator::connect(config).await.unwrap())
}

#[tokio::test]
async fn connecting_to_nothing_is_unavailable_within_the_timeout() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = EtcdConfig::new(vec![format!("http://127.0.0.1:{port}")]);
    config.connect_timeout = Duration::from_millis(500);
    config.request_timeout = Duration::from_millis(500);
    let started = Instant::now();
    let err = EtcdCoordinator::connect(config)
        .await
        .expect_err("connected to a closed port");
    assert!(matches!(err, CoordError::Unavailable(_)), "got {err:?}");
    assert!(
        err.to_string().contains(&port.to_string()),
        "error does not name the endpoint: {err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn config_debug_redacts_credentials() {
    let mut config = EtcdConfig::new(vec!["http://127.0.0.1:2379".into()]);
    config.username = Some("root".into());
    config.password = Some("hunter2".into());
    let shown = format!("{config:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("root"),
        "{shown}"
    );
}

#[tokio::test]
async fn requests_time_out_while_etcd_is_frozen_and_work_after() {
    let server = EtcdServer::start().await.unwrap();
    let c = connect(&server).await;
    c.put("/k", b"v".to_vec(), None).await.unwrap();
    server.pause().unwrap();
    let started = Instant::now();
    let err = c.get("/k").await.expect_err("a frozen etcd answered");
    assert!(err.is_transient(), "got {err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "timeout not applied: {:?}",
        started.elapsed()
    );
    server.resume().unwrap();
    let kv = wait_for_value(SOON, "read after resume", || async {
        c.get("/k").await.ok().flatten()
    })
    .await
    .unwrap();
    assert_eq!(kv.value, b"v");
}

#[tokio::test]
async fn keeper_self_fences_before_a_frozen_etcd_expires_the_lease() {
    let server = EtcdServer::start().await.unwrap();
    let c = connect(&server).await;
    let keeper = LeaseKeeper::grant(c.clone(), Duration::from_secs(2))
        .await
        .unwrap();
    c.put("/owned", b"v".to_vec(), Some(keeper.lease()))
        .await
        .unwrap();
    let mut status = keeper.status();
    let LeaseStatus::Alive {
        mut confirmed_until,
    } = *status.borrow_and_update()
    else {
        panic!("fresh lease not alive");
    };
    server.pause().unwrap();

    // Expiring first, while the lease is still confirmed; Lost only after.
    let mut saw_expiring = false;
    loop {
        tokio::time::timeout(SOON, status.changed())
            .await
            .unwrap()
            .unwrap();
        let now = Instant::now();
        match *status.borrow_and_update() {
            LeaseStatus::Alive {
                confirmed_until: until,
            } => confirmed_until = until,
            LeaseStatus::Expiring => {
                assert!(
                    now < confirmed_until,
                    "expiring reported after the confirmed deadline"
                );
                saw_expiring = true;
            }
            LeaseStatus::Lost => {
                assert!(now >= confirmed_until, "lost reported before the deadline");
                break;
            }
        }
    }
    assert!(saw_expiring, "went from alive to lost without expiring");
    server.resume().unwrap();
    // The keeper was right to give up: etcd expires the lease and its key.
    wait_for(SOON, "lease key deleted by etcd", || async {
        matches!(c.get("/owned").await, Ok(None))
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn keeper_renews_through_an_etcd_restart() {
    let server = EtcdServer::start().await.unwrap();
    let c = connect(&server).await;
    let ttl = Duration::from_secs(3);
    let keeper = LeaseKeeper::grant(c.clone(), ttl).await.unwrap();
    c.put("/owned", b"v".to_vec(), Some(keeper.lease()))
        .await
        .unwrap();

    server.restart().await.unwrap();
    let restarted = Instant::now();
    // A renewal *sent* after the restart proves a fresh keep-alive stream
    // works: its confirmed deadline lies more than one ttl after the restart.
    let status = keeper.status();
    wait_for(SOON, "renewal after restart", || {
        let status = status.clone();
        async move {
            matches!(*status.borrow(), LeaseStatus::Alive { confirmed_until } if confirmed_until > restarted + ttl)
        }
    })
    .await
    .unwrap();
    assert!(
        c.get("/owned").await.unwrap().is_some(),
        "kept lease's key lost across restart"
    );
}
