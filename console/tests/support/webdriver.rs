//! A minimal WebDriver client over a `chromedriver` process driving
//! headless Chromium: just what the browser test needs (navigate, find,
//! click, run a script, screenshot). Plain HTTP/1.1 over TCP with
//! `Connection: close`, so it needs no HTTP client crate.

use anyhow::{anyhow, bail, Context as _};
use base64::Engine as _;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The element key of the W3C WebDriver protocol.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one browser session; both end on drop.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

/// One WebDriver call, bounded so that a stuck driver fails the test
/// instead of hanging it.
async fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
    tokio::time::timeout(Duration::from_secs(30), http_once(port, method, path, body))
        .await
        .map_err(|_| anyhow!("{method} {path}: no answer from chromedriver within 30 s"))?
}

async fn http_once(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<Value> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    // chromedriver may keep the connection open despite `Connection:
    // close`, so read exactly Content-Length bytes after the head.
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut buf).await?;
        if n == 0 {
            bail!("{method} {path}: connection closed before the response head");
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_owned())
        })
        .and_then(|v| v.parse::<usize>().ok());
    match length {
        Some(len) => {
            while raw.len() < head_end + len {
                let n = s.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                raw.extend_from_slice(&buf[..n]);
            }
        }
        None => {
            s.read_to_end(&mut raw).await?;
        }
    }
    let text = String::from_utf8_lossy(&raw[head_end..]).to_string();
    let payload = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(&text)
    } else {
        text
    };
    let value: Value =
        serde_json::from_str(&payload).with_context(|| format!("{method} {path}: {payload}"))?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("{method} {path}: {head}: {value}");
    }
    Ok(value["value"].clone())
}

fn dechunk(mut text: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = text.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        text = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub async fn start() -> anyhow::Result<Browser> {
        let port = free_port()?;
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context(
                "starting chromedriver (apt: chromium-driver; scripts/ensure-services installs it)",
            )?;
        let profile = tempfile::tempdir()?;
        let mut browser = Browser {
            driver,
            port,
            session: String::new(),
            _profile: profile,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            match http(port, "GET", "/status", None).await {
                Ok(v) if v["ready"] == true => break,
                _ if tokio::time::Instant::now() > deadline => {
                    bail!("chromedriver did not become ready")
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let args = json!([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1280,1000",
            format!("--user-data-dir={}", browser._profile.path().display()),
        ]);
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}
        }}});
        let session = http(port, "POST", "/session", Some(&caps)).await?;
        browser.session = session["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("no session id: {session}"))?
            .to_owned();
        Ok(browser)
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        http(
            self.port,
            method,
            &format!("/session/{}{path}", self.session),
            body.as_ref(),
        )
        .await
    }

    /// Opens a URL.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.call("POST", "/url", Some(json!({"url": url})))
            .await
            .map(drop)
    }

    /// Runs a script (`return ...` to get a value back).
    pub async fn exec(&self, script: &str) -> anyhow::Result<Value> {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Clicks the first element matching a CSS selector.
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        let el = self
            .call(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await?;
        let id = el[ELEMENT]
            .as_str()
            .ok_or_else(|| anyhow!("no element {css}"))?
            .to_owned();
        self.call("POST", &format!("/element/{id}/click"), Some(json!({})))
            .await
            .map(drop)
    }

    /// Resizes the window (headless: the viewport is the window).
    pub async fn set_window_size(&self, width: u32, height: u32) -> anyhow::Result<()> {
        self.call(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await
        .map(drop)
    }

    /// Emulates the system's colour preference (`light` or `dark`) for
    /// `prefers-color-scheme`, through the DevTools protocol.
    pub async fn prefer_color_scheme(&self, scheme: &str) -> anyhow::Result<()> {
        self.call(
            "POST",
            "/goog/cdp/execute",
            Some(json!({
                "cmd": "Emulation.setEmulatedMedia",
                "params": {"features": [{"name": "prefers-color-scheme", "value": scheme}]}
            })),
        )
        .await
        .map(drop)
    }

    /// Saves a PNG screenshot of the window.
    pub async fn screenshot(&self, path: &Path) -> anyhow::Result<()> {
        let data = self.call("GET", "/screenshot", None).await?;
        let png =
            base64::engine::general_purpose::STANDARD.decode(data.as_str().unwrap_or_default())?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png)?;
        Ok(())
    }

    /// Polls a script until it returns `true`, for up to `secs` seconds.
    pub async fn wait_true(&self, secs: u64, what: &str, script: &str) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if self.exec(script).await? == Value::Bool(true) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("timed out waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session closes Chromium; chromedriver is killed after.
        if !self.session.is_empty() {
            let (port, path) = (self.port, format!("/session/{}", self.session));
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                if let Ok(rt) = rt {
                    // The timer must be made inside the runtime.
                    let _ = rt.block_on(async {
                        tokio::time::timeout(
                            Duration::from_secs(5),
                            http(port, "DELETE", &path, None),
                        )
                        .await
                    });
                }
            })
            .join();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A console serving `state` on a free loopback port, for a browser to
/// open; [`Served::stop`] shuts it down and checks it stopped cleanly.
pub struct Served {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Served {
    /// Serves `state` until [`Served::stop`] (or the test's end).
    pub async fn start(state: nightshift_console::AppState) -> Served {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(nightshift_console::serve(listener, state, async {
            let _ = stopped.await;
        }));
        Served { base, stop, server }
    }

    /// Stops the console and waits (10 s at most) for it to have stopped.
    pub async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(10), self.server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

/// Logs in through the login form with `token` and waits until the page
/// after it shows `landing` (the overview shows `Overview`).
pub async fn log_in(browser: &Browser, base: &str, token: &str, landing: &str) {
    browser.goto(&format!("{base}/")).await.unwrap();
    browser
        .wait_true(
            30,
            "the login form",
            "return !!document.querySelector('form#login')",
        )
        .await
        .unwrap();
    browser
        .exec(&format!(
            "document.querySelector('form#login input[name=token]').value = '{token}'; return true"
        ))
        .await
        .unwrap();
    browser
        .click("form#login button[type=submit]")
        .await
        .unwrap();
    browser
        .wait_true(
            30,
            "the page after logging in",
            &format!("return document.body.innerText.includes('{landing}')"),
        )
        .await
        .unwrap();
}
