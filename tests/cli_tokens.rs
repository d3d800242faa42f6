//! Console tokens as a real `nightshift console` process reads them:
//! from files (`--operator-token-file`, `--viewer-token-file`), from the
//! environment, and from the deprecated bare flags, which warn; tokens
//! shorter than 32 characters are refused; `--secure-cookies` names the
//! session cookie `__Host-…`.

mod cli_env;

use cli_env::{path_str, Db, Env};
use nightshift_testkit::wait::wait_for_value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::Duration;

const OPERATOR: &str = "operator-from-file-0123456789abcdef";
const VIEWER: &str = "viewer-from-file-0123456789abcdef0";

/// The console process, killed on drop.
struct Console(Child);

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `METHOD path` with optional bearer token and form body; the answer.
fn http(addr: &str, method: &str, path: &str, token: Option<&str>, form: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: console\r\n{auth}Content-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[tokio::test]
async fn the_console_reads_its_tokens_from_files() {
    let env = Env::start(Db::Sqlite).await;
    let dir = env.dir.path();
    let (op_file, viewer_file) = (dir.join("operator-token"), dir.join("viewer-token"));
    std::fs::write(&op_file, format!("# operators\n{OPERATOR}\n")).unwrap();
    std::fs::write(&viewer_file, VIEWER).unwrap();
    let log = dir.join("console.log");
    let child = env
        .command(&[
            "console",
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
            path_str(&dir.join("state")),
            "--operator-token-file",
            path_str(&op_file),
            "--viewer-token-file",
            path_str(&viewer_file),
            "--secure-cookies",
        ])
        .env_remove("NIGHTSHIFT_OPERATOR_TOKEN")
        .env_remove("NIGHTSHIFT_VIEWER_TOKEN")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _console = Console(child);
    let addr = wait_for_value(Duration::from_secs(30), "the console's address", || {
        let log = log.clone();
        async move {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.lines()
                .find_map(|l| l.strip_prefix("console on http://"))
                .map(|a| a.split('/').next().unwrap_or(a).to_owned())
        }
    })
    .await
    .unwrap();

    let ok = http(&addr, "GET", "/api/v1/dags", Some(OPERATOR), "");
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let viewer = http(&addr, "GET", "/api/v1/dags", Some(VIEWER), "");
    assert!(viewer.starts_with("HTTP/1.1 200"), "{viewer}");
    let act = http(&addr, "POST", "/api/v1/dags/x/pause", Some(VIEWER), "");
    assert!(
        act.starts_with("HTTP/1.1 403"),
        "a viewer cannot act: {act}"
    );
    let wrong = http(
        &addr,
        "GET",
        "/api/v1/dags",
        Some("x".repeat(40).as_str()),
        "",
    );
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
    let login = http(&addr, "POST", "/login", None, &format!("token={OPERATOR}"));
    assert!(login.starts_with("HTTP/1.1 303"), "{login}");
    assert!(
        login.contains("set-cookie: __Host-nightshift_session=") && login.contains("; Secure"),
        "{login}"
    );

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("deprecated"), "{text}");
    assert!(!text.contains(OPERATOR) && !text.contains(VIEWER), "{text}");
}

#[tokio::test]
async fn bare_token_flags_warn_and_short_tokens_are_refused() {
    let env = Env::start(Db::Sqlite).await;
    let state = env.dir.path().join("state");
    let out = env.run(&[
        "console",
        "--state-dir",
        path_str(&state),
        "--operator-token",
        "short-token-0123456789",
    ]);
    assert_eq!(out.code(), Some(1), "{}", out.all());
    assert!(
        out.stderr()
            .contains("--operator-token on the command line is deprecated"),
        "{}",
        out.all()
    );
    assert!(
        out.stderr().contains("at least 32 characters"),
        "{}",
        out.all()
    );

    // From the environment: the same check, no warning.
    let out = env
        .command(&["console", "--state-dir", path_str(&state)])
        .env("NIGHTSHIFT_OPERATOR_TOKEN", "short-token-0123456789")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("at least 32") && !stderr.contains("deprecated"),
        "{stderr}"
    );
    assert!(!stderr.contains("short-token-0123456789"), "{stderr}");
}
