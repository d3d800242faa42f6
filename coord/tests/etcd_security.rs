//! The etcd backend against a secured etcd: TLS with client certificates,
//! and username/password authentication. Certificates are made per test
//! with the `openssl` command-line tool. (Test names mention etcd so that
//! nextest puts them in its `etcd` test group, see `.config/nextest.toml`.)

use nightshift_coord::etcd::{EtcdConfig, EtcdCoordinator, TlsFiles};
use nightshift_coord::{CoordError, Coordinator};
use nightshift_testkit::etcd::{EtcdOptions, EtcdServer, EtcdTls};
use nightshift_testkit::tls::certificates;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn path(dir: &Path, file: &str) -> PathBuf {
    dir.join(file)
}

#[tokio::test]
async fn etcd_tls_with_client_certificate_connects_and_without_it_is_refused() {
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path(), "client");
    let dir = certs.path();
    let tls = EtcdTls {
        cert: path(dir, "server.pem"),
        key: path(dir, "server.key"),
        ca: path(dir, "ca.pem"),
    };
    let server = EtcdServer::start_with(EtcdOptions {
        tls: Some(tls),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(server.endpoint().starts_with("https://"));

    let mut config = EtcdConfig::new(server.endpoints());
    config.tls = Some(TlsFiles {
        ca: path(dir, "ca.pem"),
        cert: Some(path(dir, "client.pem")),
        key: Some(path(dir, "client.key")),
    });
    let coord = EtcdCoordinator::connect(config.clone()).await.unwrap();
    let rev = coord.put("/tls/k", b"v".to_vec(), None).await.unwrap();
    assert_eq!(
        coord.get("/tls/k").await.unwrap().unwrap().mod_revision,
        rev
    );

    config.tls = Some(TlsFiles {
        ca: path(dir, "ca.pem"),
        cert: None,
        key: None,
    });
    config.connect_timeout = Duration::from_secs(2);
    config.request_timeout = Duration::from_secs(2);
    let err = EtcdCoordinator::connect(config)
        .await
        .expect_err("connected without a client certificate");
    assert!(
        err.is_transient() || matches!(err, CoordError::Denied(_)),
        "got {err:?}"
    );
}

#[tokio::test]
async fn etcd_password_auth_admits_the_user_and_denies_a_wrong_password() {
    let server = EtcdServer::start().await.unwrap();
    let mut admin = etcd_client::Client::connect(server.endpoints(), None)
        .await
        .unwrap();
    admin.user_add("root", "s3cret", None).await.unwrap();
    admin.user_grant_role("root", "root").await.unwrap();
    admin.auth_enable().await.unwrap();

    let mut config = EtcdConfig::new(server.endpoints());
    config.username = Some("root".into());
    config.password = Some("s3cret".into());
    let coord = EtcdCoordinator::connect(config.clone()).await.unwrap();
    coord.put("/auth/k", b"v".to_vec(), None).await.unwrap();

    config.password = Some("wrong".into());
    let err = EtcdCoordinator::connect(config)
        .await
        .expect_err("wrong password accepted");
    assert!(matches!(err, CoordError::Denied(_)), "got {err:?}");

    let anonymous = EtcdCoordinator::connect(EtcdConfig::new(server.endpoints())).await;
    assert!(
        matches!(anonymous, Err(CoordError::Denied(_))),
        "anonymous access: {anonymous:?}"
    );
}
