//! The machine prerequisites live in one list, `scripts/prerequisites`, that
//! every script installs from (issue: the README's first command failed on a
//! fresh machine because `scripts/dev` installed `protobuf-compiler` but not
//! `libprotobuf-dev`, which only `scripts/ensure-services` had learned).
//!
//! These tests fail when a crate in Cargo.lock needs a system package the
//! list does not name as a `build` prerequisite, when a script installs
//! packages on its own instead of through the list, and when this machine
//! lacks something on the list (`ensure-services --check`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One row of `scripts/prerequisites`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    scope: String,
    package: String,
    check: String,
}

fn parse_rows(text: &str) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [scope, package, check, ..] = fields[..] else {
            return Err(format!(
                "line {}: expected `scope package check why`",
                n + 1
            ));
        };
        if !matches!(scope, "build" | "test") {
            return Err(format!(
                "line {}: scope `{scope}` is not build or test",
                n + 1
            ));
        }
        if !(check.starts_with("cmd:") || check.starts_with("file:/")) {
            return Err(format!(
                "line {}: check `{check}` is not cmd:NAME or file:/PATH",
                n + 1
            ));
        }
        rows.push(Row {
            scope: scope.into(),
            package: package.into(),
            check: check.into(),
        });
    }
    Ok(rows)
}

/// Crates whose build needs a system package, and the Debian packages.
/// Add a row here when a new dependency's build script needs one.
const CRATE_NEEDS: &[(&str, &[&str])] = &[
    // tonic/prost code generation runs protoc, and etcd-client's protos
    // import google/protobuf/*.proto (libprotobuf-dev)
    ("etcd-client", &["protobuf-compiler", "libprotobuf-dev"]),
    ("prost-build", &["protobuf-compiler", "libprotobuf-dev"]),
    ("tonic-build", &["protobuf-compiler", "libprotobuf-dev"]),
    (
        "tonic-prost-build",
        &["protobuf-compiler", "libprotobuf-dev"],
    ),
    ("cc", &["gcc"]),
    ("ring", &["gcc"]),
    ("libsqlite3-sys", &["gcc"]),
    ("openssl-sys", &["libssl-dev", "pkg-config"]),
    ("pq-sys", &["libpq-dev"]),
];

/// `(crate, package)` pairs the lock file needs and the list's `build` rows lack.
fn missing_build_prerequisites(lock: &str, rows: &[Row]) -> Vec<(String, String)> {
    let crates: BTreeSet<&str> = lock
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .collect();
    let listed: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.scope == "build")
        .map(|r| r.package.as_str())
        .collect();
    let mut missing = Vec::new();
    for (krate, packages) in CRATE_NEEDS {
        if !crates.contains(krate) {
            continue;
        }
        for package in *packages {
            if !listed.contains(package) {
                missing.push(((*krate).to_owned(), (*package).to_owned()));
            }
        }
    }
    missing
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn the_list() -> Vec<Row> {
    parse_rows(&read(&root().join("scripts/prerequisites")))
        .unwrap_or_else(|e| panic!("scripts/prerequisites: {e}"))
}

#[test]
fn every_system_package_a_dependency_needs_to_build_is_listed() {
    let lock = read(&root().join("Cargo.lock"));
    let missing = missing_build_prerequisites(&lock, &the_list());
    assert!(
        missing.is_empty(),
        "scripts/prerequisites lacks build rows for (crate, package): {missing:?}"
    );
    // etcd-client is what broke a fresh machine's first build: make sure the
    // check above really looked at it.
    assert!(lock.contains("name = \"etcd-client\""));
}

#[test]
fn a_list_missing_libprotobuf_dev_is_caught() {
    let rows: Vec<Row> = the_list()
        .into_iter()
        .filter(|r| r.package != "libprotobuf-dev")
        .collect();
    let lock = "[[package]]\nname = \"etcd-client\"\nversion = \"0.21.1\"\n";
    assert_eq!(
        missing_build_prerequisites(lock, &rows),
        [("etcd-client".to_owned(), "libprotobuf-dev".to_owned())]
    );
}

#[test]
fn rows_are_well_formed_and_a_bad_one_is_named() {
    assert!(the_list().iter().any(|r| r.scope == "build"));
    assert!(the_list().iter().any(|r| r.scope == "test"));
    let err = parse_rows("build gcc cc why\n").unwrap_err();
    assert!(err.contains("line 1") && err.contains("cmd:NAME"), "{err}");
    let err = parse_rows("# c\nlater gcc cmd:cc why\n").unwrap_err();
    assert!(err.contains("line 2") && err.contains("later"), "{err}");
}

#[test]
fn only_ensure_services_installs_packages_and_every_script_uses_it() {
    let scripts = root().join("scripts");
    for entry in std::fs::read_dir(&scripts).expect("reading scripts/") {
        let path = entry.expect("listing scripts/").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name == "ensure-services" || name == "prerequisites" {
            continue;
        }
        let text = read(&path);
        for needle in ["apt-get install", "apt install", "apt-get -y install"] {
            assert!(
                !text.contains(needle),
                "scripts/{name} installs packages itself (`{needle}`): add them to \
                 scripts/prerequisites and call scripts/ensure-services instead"
            );
        }
    }
    for (name, call) in [
        ("dev", "./scripts/ensure-services --build"),
        ("quickstart", "./scripts/ensure-services --build"),
        ("test", "./scripts/ensure-services\n"),
        ("test", "./scripts/ensure-services --check"),
    ] {
        assert!(
            read(&scripts.join(name)).contains(call),
            "scripts/{name} does not run `{}`",
            call.trim()
        );
    }
}

fn check(list: Option<&Path>, build_only: bool) -> (bool, String) {
    let mut cmd = Command::new(root().join("scripts/ensure-services"));
    cmd.arg("--check");
    if build_only {
        cmd.arg("--build");
    }
    if let Some(list) = list {
        cmd.arg("--list").arg(list);
    }
    let out = cmd
        .output()
        .expect("running scripts/ensure-services --check");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn this_machine_has_every_prerequisite() {
    let (ok, stderr) = check(None, false);
    assert!(ok, "ensure-services --check: {stderr}");
}

#[test]
fn the_check_names_what_is_missing_and_installs_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("prerequisites");
    std::fs::write(
        &list,
        "build gcc cmd:cc present\n\
         build nightshift-absent-package cmd:nightshift-absent-command missing\n\
         test nightshift-absent-test-tool file:/nonexistent/nightshift missing\n",
    )
    .expect("writing the list");
    let (ok, stderr) = check(Some(&list), true);
    assert!(!ok, "a missing build prerequisite passed: {stderr}");
    assert!(stderr.contains("nightshift-absent-package"), "{stderr}");
    assert!(
        !stderr.contains("nightshift-absent-test-tool") && !stderr.contains("gcc"),
        "--build named a test row or a present package: {stderr}"
    );
    let (ok, stderr) = check(Some(&list), false);
    assert!(!ok);
    assert!(
        stderr.contains("nightshift-absent-package")
            && stderr.contains("nightshift-absent-test-tool"),
        "{stderr}"
    );
}
