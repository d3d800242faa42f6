//! `nightshift console --etcd URLS --database URL --listen ADDR
//! [--token-file F | --read-only]`: serve the web console and JSON API.
//!
//! There is no default operator token: without `--token-file` or
//! `NIGHTSHIFT_CONSOLE_TOKEN` the console refuses to start unless it is
//! `--read-only` (then every action answers 403). Tokens are never logged
//! or printed. Ctrl-C or SIGTERM stops it gracefully.

use crate::cli::conn::{self, bad_input, DatabaseArgs, EtcdArgs};
use anyhow::Context as _;
use nightshift_console::{AppState, AuthConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Environment variable holding one operator token (user `operator`).
pub const TOKEN_ENV: &str = "NIGHTSHIFT_CONSOLE_TOKEN";

/// Flags of `nightshift console`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// File of operator tokens, one per line: `user:token` or `token`.
    #[arg(long, value_name = "FILE", conflicts_with = "read_only")]
    pub token_file: Option<PathBuf>,
    /// Serve without any operator: every action answers 403.
    #[arg(long)]
    pub read_only: bool,
    #[command(flatten)]
    pub etcd: EtcdArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

fn auth(args: &Args) -> anyhow::Result<AuthConfig> {
    if args.read_only {
        return Ok(AuthConfig::read_only());
    }
    let parsed = match &args.token_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading token file {}", path.display()))?;
            AuthConfig::from_token_file(&text)
        }
        None => match std::env::var(TOKEN_ENV).ok().filter(|t| !t.trim().is_empty()) {
            Some(token) => AuthConfig::operators([("operator", token.trim().to_owned())]),
            None => AuthConfig::operators(Vec::<(String, String)>::new()),
        },
    };
    match parsed {
        Ok(auth) => Ok(auth),
        Err(e) => bad_input(e.to_string()),
    }
}

/// Runs `nightshift console`.
pub fn run(args: Args) -> ExitCode {
    conn::block_on(async move {
        let auth = auth(&args)?;
        let prefix = args.etcd.key_prefix()?;
        let coord = args.etcd.connect().await?;
        let store = args.database.connect().await?;
        let read_only = auth.is_read_only();
        let state = AppState::new(store, coord, &prefix, auth);
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let addr = listener.local_addr().unwrap_or(args.listen);
        tracing::info!(%addr, read_only, "console listening");
        eprintln!("console on http://{addr}/{}", if read_only { " (read-only)" } else { "" });
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        let shutdown = async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => tracing::info!("ctrl-c received: stopping"),
                _ = term.recv() => tracing::info!("SIGTERM received: stopping"),
            }
        };
        nightshift_console::serve(listener, state, shutdown).await.context("serving the console")?;
        Ok(ExitCode::SUCCESS)
    })
}
