//! `nightshift validate` run as a real process: the example DAGs pass, a
//! broken file fails with `file:line:col` in the output, and `--format json`
//! prints one JSON document.

use std::path::Path;
use std::process::{Command, Output};

fn validate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nightshift"))
        .arg("validate")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run nightshift")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_example_dags_validate() {
    let out = validate(&["dags/"]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {}",
        text(&out.stderr)
    );
    assert!(stdout.starts_with("ok: 3 DAGs ("), "{stdout}");
    assert!(stdout.contains(" in 3 files"), "{stdout}");
}

#[test]
fn a_broken_file_fails_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.toml");
    std::fs::write(
        &file,
        "schedule = \"0 2 * * *\"\n[jobs.a]\nshard = 4\n[jobs.b]\ndepends_on = [\"nope\"]\n",
    )
    .unwrap();
    let out = validate(&[dir.path().to_str().unwrap()]);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{all}");
    let location = |line: usize, col: usize| format!("{}:{line}:{col}", file.display());
    assert!(all.contains(&location(3, 1)), "{all}");
    assert!(
        all.contains("unknown key `shard` (did you mean `shards`?)"),
        "{all}"
    );
    assert!(all.contains(&location(5, 15)), "{all}");
    assert!(all.contains("depends on unknown job `nope`"), "{all}");
    // The caret line sits under the typo.
    assert!(all.contains("3 | shard = 4\n  | ^^^^^\n"), "{all}");
    assert!(all.contains("error: 2 errors in 1 file"), "{all}");
}

#[test]
fn json_output_is_one_document() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), "[jobs.a]\nshards = 0\n").unwrap();
    let out = validate(&["--format", "json", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is json");
    assert_eq!(doc["ok"], false);
    let errors = doc["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["line"], 2);
    assert_eq!(errors[0]["col"], 10);
    assert!(errors[0]["file"].as_str().unwrap().ends_with("bad.toml"));

    let ok = validate(&["--format", "json", "dags"]);
    assert_eq!(ok.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&ok.stdout).expect("stdout is json");
    assert_eq!(doc["ok"], true);
    let names: Vec<&str> = doc["dags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(names.contains(&"nightly-settlement"), "{names:?}");
}

#[test]
fn a_missing_path_is_an_error_not_a_crash() {
    let missing = Path::new("does/not/exist.toml");
    let out = validate(&[missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("does/not/exist.toml"),
        "{}",
        text(&out.stderr)
    );
}
