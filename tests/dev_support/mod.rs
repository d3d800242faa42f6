//! Shared by the `dev_*` tests: child processes of the real binary (killed
//! on drop), a minimal HTTP/1.1 client for the console API, and polling
//! with a deadline.

#![allow(dead_code)]

use anyhow::{bail, Context as _, Result};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "dev-test-token-0123456789abcdef-0123";

/// A child process of the `nightshift` binary, SIGKILLed on drop.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// Starts `nightshift ARGS`, stderr to `log`.
    pub fn start(args: &[&str], log: &Path, stdout: bool) -> Result<Proc> {
        let child = Command::new(env!("CARGO_BIN_EXE_nightshift"))
            .args(args)
            .env("RUST_LOG", "info,sqlx=warn")
            .env("NO_COLOR", "1")
            .env_remove("NIGHTSHIFT_ETCD")
            .env_remove("NIGHTSHIFT_DATABASE_URL")
            .env_remove("NIGHTSHIFT_OPERATOR_TOKEN")
            .stdout(if stdout {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .context("starting nightshift")?;
        Ok(Proc {
            child,
            log: log.to_owned(),
        })
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The last lines of its log, for failure messages.
    pub fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `nightshift dev` with its console on a free port (it binds port 0
/// and prints the address); returns the process and the console address.
pub fn start_dev(state: &Path, extra: &[&str], log_name: &str) -> Result<(Proc, String)> {
    let dags = Path::new(env!("CARGO_MANIFEST_DIR")).join("dags");
    let state_s = state.display().to_string();
    let dags_s = dags.display().to_string();
    // The token from a file: the form the README shows first.
    let token_file = state.join("operator-token");
    std::fs::create_dir_all(state)?;
    std::fs::write(&token_file, format!("{TOKEN}\n"))?;
    let token_file_s = token_file.display().to_string();
    let mut args = vec![
        "dev",
        "--state-dir",
        &state_s,
        "--dags",
        &dags_s,
        "--listen",
        "127.0.0.1:0",
        "--operator-token-file",
        &token_file_s,
    ];
    args.extend_from_slice(extra);
    let mut proc = Proc::start(&args, &state.join(log_name), true)?;
    let stdout = proc.child.stdout.take().context("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("console: http://") {
                let _ = tx.send(addr.trim_end_matches('/').to_owned());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(addr) => Ok((proc, addr)),
        Err(_) => bail!(
            "nightshift dev printed no console address:\n{}",
            proc.tail()
        ),
    }
}

/// One HTTP request with the operator token; returns (status, body).
pub fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .context("no status line")?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    // Bodies may be chunked: the JSON is between the first `{`/`[` and the last `}`/`]`.
    let start = body.find(['{', '[']).unwrap_or(0);
    let end = body.rfind(['}', ']']).map_or(body.len(), |e| e + 1);
    Ok((status, body[start..end.max(start)].to_owned()))
}

/// GET a JSON document.
pub fn get_json(addr: &str, path: &str) -> Result<Value> {
    let (status, body) = http(addr, "GET", path, None)?;
    if status != 200 {
        bail!("GET {path}: {status} {body}");
    }
    Ok(serde_json::from_str(&body)?)
}

/// Polls `f` every 100 ms until it returns `Some`, or fails after `timeout`.
pub fn poll<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// State of job `job` in a run detail document.
pub fn job_state(detail: &Value, job: &str) -> Option<String> {
    detail["jobs"]
        .as_array()?
        .iter()
        .find(|j| j["job"] == job)
        .and_then(|j| j["state"].as_str())
        .map(str::to_owned)
}

/// The run of `dag` with business date `date`, if listed.
pub fn find_run(addr: &str, dag: &str, date: &str) -> Option<String> {
    let runs = get_json(addr, &format!("/api/v1/runs?dag={dag}")).ok()?;
    runs.as_array()?
        .iter()
        .find(|r| r["business_date"] == date)
        .and_then(|r| r["run_id"].as_str())
        .map(str::to_owned)
}

/// Waits until run `run` is terminal; returns its detail document.
pub fn wait_terminal(addr: &str, run: &str, timeout: Duration) -> Result<Value> {
    poll(timeout, &format!("run {run} to end"), || {
        let detail = get_json(addr, &format!("/api/v1/runs/{run}")).ok()?;
        matches!(
            detail["run"]["state"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        )
        .then_some(detail)
    })
}

/// Checks the demo ledger directly in SQL: reconciled for `date`, and no
/// double postings (two legs per accrual and per collected installment).
pub async fn assert_ledger_reconciled(url: &str, date: &str) -> Result<()> {
    let db = nightshift_demo::DemoDb::connect(url).await?;
    let check = db.check_ledger(date).await?;
    assert!(check.is_ok(), "{}", check.report());
    let legs = db
        .scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM demo_postings")
        .await?;
    let accruals = db
        .scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM demo_accruals")
        .await?;
    let collected = db
        .scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM demo_collections WHERE status = 'collected'")
        .await?;
    assert!(accruals > 0, "nothing accrued");
    assert_eq!(
        legs,
        2 * (accruals + collected),
        "postings are not exactly two legs per accrual/collection"
    );
    let day = db
        .scalar(&format!(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM demo_accruals WHERE business_date = '{date}'"
        ))
        .await?;
    assert!(
        day > 5_000,
        "the day's accruals cover the 10,000 accounts: {day}"
    );
    Ok(())
}
