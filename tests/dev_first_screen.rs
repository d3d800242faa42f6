//! The first screen of `nightshift dev --run-now nightly-settlement` (issue:
//! the console URL and token scrolled away among ~150 log lines): a short
//! banner, then one line per state change of the triggered run, and nothing
//! else until the run ends; the full log goes to a file in the state
//! directory.

mod dev_support;

use dev_support::TOKEN;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const JOBS: [&str; 7] = [
    "interest-accrual",
    "fx-revaluation",
    "nightly-debits",
    "fee-assessment",
    "ledger-postings",
    "reconciliation",
    "settlement-report",
];

#[test]
fn the_first_screen_is_the_banner_and_the_runs_progress() {
    let state = tempfile::tempdir().expect("tempdir");
    let dags = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dags");
    let mut child = Command::new(env!("CARGO_BIN_EXE_nightshift"))
        .args(["dev", "--listen", "127.0.0.1:0", "--executors", "2"])
        .args(["--accounts", "500", "--run-now", "nightly-settlement"])
        .arg("--state-dir")
        .arg(state.path())
        .arg("--dags")
        .arg(&dags)
        .env_remove("RUST_LOG")
        .env_remove("NIGHTSHIFT_LOG_FORMAT")
        .env_remove("NIGHTSHIFT_ETCD")
        .env_remove("NIGHTSHIFT_DATABASE_URL")
        .env("NIGHTSHIFT_OPERATOR_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting nightshift dev");
    // Both streams into one channel: the terminal shows them interleaved.
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let _guard = KillOnDrop(child);
    for stream in [
        Box::new(stdout) as Box<dyn std::io::Read + Send>,
        Box::new(stderr),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    drop(tx);

    let deadline = Instant::now() + Duration::from_secs(120);
    let mut screen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let last = line.starts_with("run nightly-settlement ")
                    && (line.contains(" succeeded in ") || line.contains(" failed"));
                screen.push(line);
                if last {
                    break;
                }
            }
            Err(_) => panic!(
                "the run did not end within 120 s; terminal so far:\n{}",
                screen.join("\n")
            ),
        }
    }
    let shown = screen.join("\n");

    let banner = [
        "nightshift dev:",
        "console: http://",
        "token:   ",
        "api:     curl",
        "log:     ",
        "stop:    ",
    ];
    for (i, prefix) in banner.iter().enumerate() {
        assert!(
            screen[i].starts_with(prefix),
            "banner line {i} is not `{prefix}…`:\n{shown}"
        );
    }
    assert!(
        screen[1..4].iter().any(|l| l.contains(TOKEN)),
        "no token in the banner:\n{shown}"
    );
    for line in &screen[banner.len()..] {
        assert!(
            line.starts_with("run nightly-settlement ") || line.starts_with("  job "),
            "a line that is neither banner nor progress reached the terminal: `{line}`\n{shown}"
        );
    }
    let progress = &screen[banner.len()..];
    assert!(
        progress[0].starts_with("run nightly-settlement ") && progress[0].contains(" started ("),
        "{shown}"
    );
    for job in JOBS {
        let told: Vec<&String> = progress
            .iter()
            .filter(|l| l.starts_with(&format!("  job {job} ")))
            .collect();
        assert_eq!(told.len(), 1, "job {job} should be told once:\n{shown}");
        assert!(
            told[0].contains(" succeeded in ") && told[0].contains("items succeeded"),
            "{shown}"
        );
    }
    let end = progress.last().expect("an end line");
    assert!(
        end.contains(" succeeded in ") && end.contains("/runs/nightly-settlement"),
        "{shown}"
    );

    let log = std::fs::read_to_string(state.path().join("nightshift.log")).expect("the log file");
    assert!(
        log.contains("INFO"),
        "the log file has no INFO lines:\n{log}"
    );
    assert!(
        log.lines().count() > screen.len(),
        "the log file should hold the detail the terminal does not"
    );
}

/// SIGKILLs and reaps the child, even when an assertion panics.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
