//! Throwaway TLS certificates for tests of a secured etcd, made with the
//! `openssl` command-line tool (a `test` row of scripts/prerequisites): a CA,
//! a server certificate for 127.0.0.1 and one client certificate.

use std::path::Path;
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Signs a P-256 certificate `name.pem`/`name.key` with the test CA.
fn issue(dir: &Path, name: &str, extensions: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), extensions).unwrap();
    let (key, csr, pem, ext) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-out",
            &pem,
            "-extfile",
            &ext,
        ],
    );
}

/// Writes into `dir`: `ca.pem`/`ca.key`, `server.pem`/`server.key` (valid
/// for IP 127.0.0.1) and `{client}.pem`/`{client}.key`, a client
/// certificate with common name `client` (etcd maps a certificate's common
/// name to a user when auth is on: pick one that is no etcd user to grant
/// nothing by itself). Panics when openssl fails: tests only.
pub fn certificates(dir: &Path, client: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=nightshift-test-ca",
        ],
    );
    issue(
        dir,
        "server",
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    );
    issue(dir, client, "extendedKeyUsage=clientAuth\n");
}
