//! Loading DAG files from disk: folders, calendars next to the DAG files,
//! duplicate names across files, and I/O problems reported as diagnostics.

use nightshift_core::dag::{load_dags, Severity};
use std::fs;
use std::path::{Path, PathBuf};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_folder_loads_its_dags_and_their_calendars() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.toml",
        "calendar = \"biz\"\n[jobs.x]\nshards = 3\n",
    );
    write(
        dir.path(),
        "b.toml",
        "[jobs.y]\n[jobs.z]\ndepends_on = [\"y\"]\n",
    );
    write(dir.path(), "notes.md", "not a dag");
    write(
        dir.path(),
        "calendars/biz.toml",
        "weekends = [\"sat\", \"sun\"]\n",
    );
    let report = load_dags(&[dir.path().to_path_buf()]);
    assert!(report.diagnostics.is_empty(), "{:#?}", report.diagnostics);
    let names: Vec<&str> = report.specs().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(report.dags[0].spec.calendar_name(), Some("biz"));
    assert_eq!((report.files_checked, report.calendars_checked), (2, 1));
    // Each DAG comes with its file and that file's text: the one walk
    // `apply` needs (it publishes the text that was validated).
    assert_eq!(report.dags[1].path, dir.path().join("b.toml"));
    assert_eq!(
        report.dags[1].source,
        "[jobs.y]\n[jobs.z]\ndepends_on = [\"y\"]\n"
    );
}

#[test]
fn a_broken_calendar_is_reported_once_and_blamed_where_it_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let dag = write(dir.path(), "a.toml", "calendar = \"biz\"\n[jobs.x]\n");
    let cal = write(
        dir.path(),
        "calendars/biz.toml",
        "weekends = [\"caturday\"]\n",
    );
    let report = load_dags(std::slice::from_ref(&dag));
    let found: Vec<(&Path, usize, usize, &str)> = report
        .diagnostics
        .iter()
        .map(|d| (d.file.as_path(), d.line, d.col, d.message.as_str()))
        .collect();
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!((found[0].0, found[0].1, found[0].2), (cal.as_path(), 1, 13));
    assert!(found[0].3.contains("unknown weekday `caturday`"));
    assert_eq!((found[1].0, found[1].1, found[1].2), (dag.as_path(), 1, 12));
    assert!(found[1].3.contains("calendar `biz` has errors"));
    assert!(report.dags.is_empty());
}

#[test]
fn duplicate_dag_names_across_files_are_rejected_at_the_second() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.toml", "[jobs.x]\n");
    let second = write(
        dir.path(),
        "b.toml",
        "description = \"copy\"\nname = \"a\"\n[jobs.x]\n",
    );
    let report = load_dags(&[dir.path().to_path_buf()]);
    assert_eq!(report.error_count(), 1);
    let d = &report.diagnostics[0];
    assert_eq!((d.file.as_path(), d.line, d.col), (second.as_path(), 2, 8));
    assert!(
        d.message.starts_with("dag name `a` is already used by "),
        "{}",
        d.message
    );
    assert_eq!(report.dags.len(), 1);
}

#[test]
fn io_problems_become_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let binary = dir.path().join("binary.toml");
    fs::write(&binary, [b'a', 0xff, 0xfe]).unwrap();
    let empty_dir = dir.path().join("empty");
    fs::create_dir(&empty_dir).unwrap();
    let report = load_dags(&[missing.clone(), binary.clone(), empty_dir.clone()]);
    let found: Vec<(&Path, &str)> = report
        .diagnostics
        .iter()
        .map(|d| (d.file.as_path(), d.message.as_str()))
        .collect();
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found
        .iter()
        .any(|(f, m)| *f == missing && m.starts_with("cannot read")));
    assert!(found
        .iter()
        .any(|(f, m)| *f == binary && m.starts_with("not valid utf-8 (at byte 1)")));
    assert!(found
        .iter()
        .any(|(f, m)| *f == empty_dir && m.contains("no dag files")));
    assert!(report
        .diagnostics
        .iter()
        .all(|d| d.severity == Severity::Error && d.line == 0));
}

#[test]
fn a_calendar_file_given_directly_is_checked_as_a_calendar() {
    let dir = tempfile::tempdir().unwrap();
    let cal = write(
        dir.path(),
        "calendars/biz.toml",
        "weekends = [\"sat\"]\nholidays = [\"2026-02-30\"]\n",
    );
    let report = load_dags(std::slice::from_ref(&cal));
    assert_eq!(report.calendars_checked, 1);
    assert_eq!(report.files_checked, 0);
    assert_eq!(report.error_count(), 1);
    assert_eq!(
        (report.diagnostics[0].line, report.diagnostics[0].col),
        (2, 13)
    );
}

#[test]
fn the_example_dags_in_the_repository_are_valid() {
    let dags = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dags");
    let report = load_dags(&[dags]);
    assert!(report.diagnostics.is_empty(), "{:#?}", report.diagnostics);
    let names: Vec<&str> = report.specs().map(|d| d.name.as_str()).collect();
    assert!(names.contains(&"nightly-settlement"), "{names:?}");
    let settlement = report
        .specs()
        .find(|d| d.name.as_str() == "nightly-settlement")
        .unwrap();
    assert_eq!(settlement.calendar_name(), Some("cn-business-days"));
    // reconciliation fans in from two independent branches.
    let recon = settlement
        .jobs
        .iter()
        .find(|j| j.name.as_str() == "reconciliation")
        .unwrap();
    assert_eq!(recon.depends_on.len(), 2);
}
