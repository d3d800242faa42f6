//! `nightshift console --etcd URLS --database URL --listen ADDR
//! [--operator-token-file F] [--viewer-token-file F] [--token-file F]
//! [--state-dir DIR] [--read-only] [--secure-cookies]`: serve the web
//! console and JSON API.
//!
//! Every page and API call but `/healthz` needs a token. There is no
//! default token: tokens come from files, `NIGHTSHIFT_OPERATOR_TOKEN` /
//! `NIGHTSHIFT_VIEWER_TOKEN` (comma-separated), a `user:token` file, or the
//! deprecated bare flags (see [`crate::cli::tokens`]); when no operator
//! token is configured, the console generates one on first start, keeps
//! only its SHA-256 in `--state-dir`, and prints it once to stdout. Tokens
//! are never logged. Ctrl-C or SIGTERM stops it gracefully.

use crate::cli::conn::{self, bad_input, DatabaseArgs, EtcdArgs};
use crate::cli::tokens::{self, Secret, OPERATOR_TOKEN_ENV, VIEWER_TOKEN_ENV};
use anyhow::Context as _;
use nightshift_console::{AppState, AuthConfig, Role};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Flags of `nightshift console`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// File of operator tokens (read and act), one per line or
    /// comma-separated. Or set NIGHTSHIFT_OPERATOR_TOKEN.
    #[arg(long, env = "NIGHTSHIFT_OPERATOR_TOKEN_FILE", value_name = "FILE")]
    pub operator_token_file: Option<PathBuf>,
    /// File of viewer tokens (read only). Or set NIGHTSHIFT_VIEWER_TOKEN.
    #[arg(long, env = "NIGHTSHIFT_VIEWER_TOKEN_FILE", value_name = "FILE")]
    pub viewer_token_file: Option<PathBuf>,
    /// Operator tokens, comma-separated (deprecated: visible in `ps`; use
    /// --operator-token-file or NIGHTSHIFT_OPERATOR_TOKEN).
    #[arg(long, value_name = "TOKENS", conflicts_with = "operator_token_file")]
    pub operator_token: Option<Secret>,
    /// Viewer tokens, comma-separated (deprecated: visible in `ps`; use
    /// --viewer-token-file or NIGHTSHIFT_VIEWER_TOKEN).
    #[arg(long, value_name = "TOKENS", conflicts_with = "viewer_token_file")]
    pub viewer_token: Option<Secret>,
    /// File of tokens, one per line: `user:token`, `token`, or
    /// `viewer:user:token`.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Where the generated first-start operator token's hash is kept.
    #[arg(long, env = "NIGHTSHIFT_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Alert notification settings (TOML; see README "Alert notifications").
    /// Without it, `NIGHTSHIFT_NOTIFY_*` variables are read.
    #[arg(long, value_name = "FILE")]
    pub notify_config: Option<PathBuf>,
    /// Refuse every action with 403 (reading still needs a token).
    #[arg(long)]
    pub read_only: bool,
    /// The console is reached over HTTPS (directly or through a proxy):
    /// session cookies are `Secure` and named `__Host-…`.
    #[arg(long, env = "NIGHTSHIFT_SECURE_COOKIES")]
    pub secure_cookies: bool,
    #[command(flatten)]
    pub etcd: EtcdArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// The default state directory: `$XDG_STATE_HOME/nightshift`, else
/// `~/.local/state/nightshift`, else `./.nightshift`.
pub fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("nightshift");
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/state/nightshift"),
        None => PathBuf::from(".nightshift"),
    }
}

/// Builds the token configuration (shared with `nightshift dev`): the
/// configured tokens, plus the bootstrap operator token from `state_dir`
/// when no operator token is configured (and the console may act). The
/// second value is a newly generated token, to print once.
pub fn auth_config(
    operator_tokens: Option<&str>,
    viewer_tokens: Option<&str>,
    token_file: Option<&Path>,
    read_only: bool,
    state_dir: &Path,
) -> anyhow::Result<(AuthConfig, Option<String>)> {
    let mut auth = AuthConfig::new();
    let mut add = || -> Result<(), nightshift_console::AuthError> {
        if let Some(list) = operator_tokens {
            auth.add_list(Role::Operator, list)?;
        }
        if let Some(list) = viewer_tokens {
            auth.add_list(Role::Viewer, list)?;
        }
        Ok(())
    };
    if let Err(e) = add() {
        return bad_input(e.to_string());
    }
    if let Some(path) = token_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading token file {}", path.display()))?;
        if let Err(e) = auth.add_token_file(&text) {
            return bad_input(format!("{}: {e}", path.display()));
        }
    }
    auth.set_read_only(read_only);
    let mut new_token = None;
    if !auth.has_operator() && (!read_only || auth.is_empty()) {
        let boot = nightshift_console::bootstrap::operator_token(state_dir)?;
        auth.add_digest("operator", Role::Operator, boot.digest);
        new_token = boot.new_token;
    }
    Ok((auth, new_token))
}

/// The notifier configured by `--notify-config` or `NIGHTSHIFT_NOTIFY_*`,
/// if any.
pub fn notifier(
    file: Option<&Path>,
) -> anyhow::Result<Option<std::sync::Arc<nightshift_console::notify::Notifier>>> {
    use nightshift_console::notify::{Notifier, NotifyConfig};
    let config = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            match NotifyConfig::from_toml(&text) {
                Ok(c) => Some(c),
                Err(e) => return bad_input(format!("{}: {e}", path.display())),
            }
        }
        None => match NotifyConfig::from_env(|name| std::env::var(name).ok()) {
            Ok(c) => c,
            Err(e) => return bad_input(e.to_string()),
        },
    };
    match config {
        Some(c) => Ok(Some(std::sync::Arc::new(Notifier::new(c)?))),
        None => Ok(None),
    }
}

/// Runs `nightshift console`.
pub fn run(args: Args) -> ExitCode {
    conn::block_on(async move {
        let state_dir = args.state_dir.clone().unwrap_or_else(default_state_dir);
        let var = |name: &str| std::env::var(name).ok();
        let operator_tokens = tokens::load(
            "operator-token",
            args.operator_token.as_ref(),
            args.operator_token_file.as_deref(),
            OPERATOR_TOKEN_ENV,
            var,
        )?;
        let viewer_tokens = tokens::load(
            "viewer-token",
            args.viewer_token.as_ref(),
            args.viewer_token_file.as_deref(),
            VIEWER_TOKEN_ENV,
            var,
        )?;
        let (auth, new_token) = auth_config(
            operator_tokens.as_deref(),
            viewer_tokens.as_deref(),
            args.token_file.as_deref(),
            args.read_only,
            &state_dir,
        )?;
        if let Some(token) = new_token {
            // Printed once, on the start that generated it; only its hash
            // is stored.
            println!(
                "no operator token configured: generated one (store it now, it will not be shown again):\n{token}\n(its hash is in {})",
                state_dir.join(nightshift_console::bootstrap::BOOTSTRAP_FILE).display()
            );
        }
        let prefix = args.etcd.key_prefix()?;
        let coord = crate::cli::conn::until_reachable("etcd", || args.etcd.connect()).await?;
        let store =
            crate::cli::conn::until_reachable("the database", || args.database.connect()).await?;
        let read_only = auth.is_read_only();
        let mut state = AppState::new(store, coord, &prefix, auth);
        state.secure_cookies = args.secure_cookies;
        state.notifier = notifier(args.notify_config.as_deref())?;
        let process = crate::cli::prometheus::handle()?;
        state.process_metrics = Some(std::sync::Arc::new(move || process.render()));
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let addr = listener.local_addr().unwrap_or(args.listen);
        tracing::info!(%addr, read_only, "console listening");
        eprintln!(
            "console on http://{addr}/{}",
            if read_only { " (read-only)" } else { "" }
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        let shutdown = async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => tracing::info!("ctrl-c received: stopping"),
                _ = term.recv() => tracing::info!("SIGTERM received: stopping"),
            }
        };
        nightshift_console::serve(listener, state, shutdown)
            .await
            .context("serving the console")?;
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_an_operator_token_one_is_generated_once_and_only_its_hash_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, token) = auth_config(
            None,
            Some("viewer-token-0123456789abcdef0123456789"),
            None,
            false,
            dir.path(),
        )
        .unwrap();
        let token = token.expect("a token is generated on first start");
        assert_eq!(
            auth.identify(&token),
            Some(("operator".to_owned(), Role::Operator))
        );
        assert_eq!(
            auth.identify("viewer-token-0123456789abcdef0123456789"),
            Some(("viewer".to_owned(), Role::Viewer))
        );
        let stored = std::fs::read_to_string(
            dir.path()
                .join(nightshift_console::bootstrap::BOOTSTRAP_FILE),
        )
        .unwrap();
        assert!(!stored.contains(&token));
        let (again, none) = auth_config(None, None, None, false, dir.path()).unwrap();
        assert_eq!(none, None, "printed only once");
        assert!(
            again.identify(&token).is_some(),
            "the same token works after a restart"
        );
    }

    #[test]
    fn configured_operator_tokens_need_no_bootstrap() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, token) = auth_config(
            Some("op-token-0123456789abcdef0123456789a,op-token-0123456789abcdef0123456789b"),
            None,
            None,
            false,
            dir.path(),
        )
        .unwrap();
        assert_eq!(token, None);
        assert!(auth
            .identify("op-token-0123456789abcdef0123456789b")
            .is_some());
        assert!(!dir
            .path()
            .join(nightshift_console::bootstrap::BOOTSTRAP_FILE)
            .exists());
        assert!(auth_config(Some("short"), None, None, false, dir.path()).is_err());
    }
}
