//! Nightshift console: the web UI, JSON API, server-sent events and
//! `/metrics` that operators watch a night's batches with.
//!
//! [`router`] builds the whole application from an [`AppState`] (the SQL
//! [`Store`], a [`Coordinator`], the key prefix and the [`AuthConfig`]);
//! [`serve`] runs it on a listener until a shutdown future resolves. Tests
//! drive [`router`] directly with `tower::ServiceExt::oneshot`.
//!
//! - `/api/v1/…` — the JSON API ([`api`]); errors are
//!   `{"error": {"code", "message"}}` with the matching status.
//! - `/api/v1/stream` — server-sent "changed" events for live pages.
//! - `/`, `/dags/{dag}`, `/runs/{run}`, `/executors`, `/alerts`, `/events` —
//!   server-rendered HTML pages ([`pages`]) with one embedded script and one
//!   stylesheet: nothing is loaded from elsewhere, so the console works in
//!   an air-gapped network.
//! - `/healthz`, `/readyz` (coordination service and SQL reachable),
//!   `/metrics` (Prometheus text format).
//!
//! **Architecture invariant:** the console reads history from SQL and live
//! state from the coordination service, and never writes run state: every
//! operator action on runs and DAGs is a
//! [`CommandRecord`](nightshift_core::keyspace::CommandRecord) under
//! `{p}commands/` that the scheduler leader carries out. The only SQL writes
//! are alert acknowledgements and silences, with an audit event each.
//!
//! **Security:** every route but `/healthz` and the login form needs a
//! token ([`AuthConfig`]): `Authorization: Bearer`, or the session cookie
//! set by `POST /login` (cookie-authenticated changes also need the
//! `X-Nightshift-CSRF` header). Viewers read; operators also act. There is
//! no default token ([`bootstrap`] generates one on first start).
#![deny(missing_docs)]

pub mod api;
mod auth;
pub mod bootstrap;
mod error;
mod extract;
pub mod headers;
pub mod limits;
mod live;
pub mod live_items;
pub mod metrics;
pub mod notify;
pub mod openapi;
pub mod pages;
mod server;
pub mod session;
mod stream;
mod time;

pub use auth::{token_digest, AuthConfig, AuthError, Operator, Principal, Role};
pub use error::{ApiError, Backend};

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::{Json, Router};
use nightshift_coord::Coordinator;
use nightshift_store::Store;
use serde::Serialize;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Largest request body accepted; larger ones get 413. Commands are small:
/// the biggest is a trigger with its parameters.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Everything a request handler needs; cheap to clone (a handful of `Arc`s).
#[derive(Clone)]
pub struct AppState {
    /// The SQL store (history, events, alerts).
    pub store: Store,
    /// The coordination service (applied DAGs, executors, live progress,
    /// commands).
    pub coord: Arc<dyn Coordinator>,
    /// Key prefix of this installation, ending in `/`.
    pub prefix: Arc<str>,
    /// Who may read and act.
    pub auth: Arc<AuthConfig>,
    /// Browser sessions created by the login form.
    pub sessions: Arc<session::Sessions>,
    /// Errors this console hit talking to SQL and etcd (for `/metrics`).
    pub errors: Arc<metrics::ErrorCounts>,
    /// Alert notifications, when configured.
    pub notifier: Option<Arc<notify::Notifier>>,
    /// How often the event stream polls the SQL event log.
    pub poll_interval: Duration,
    /// Cancelled when the server shuts down, so that endless event streams
    /// end and graceful shutdown can complete.
    pub closing: CancellationToken,
    /// Mark session cookies `Secure` and name them `__Host-…` (the console
    /// is reached over HTTPS, directly or through a proxy).
    pub secure_cookies: bool,
    /// Failed authentications per client address.
    pub throttle: Arc<limits::LoginThrottle>,
    /// Open event streams per user.
    pub streams: limits::StreamSlots,
    /// Renders the process's own metrics recorder (the Prometheus exporter
    /// the binary installed), appended to `/metrics`: in `nightshift dev`
    /// that is the scheduler's and the executors' metrics too.
    pub process_metrics: Option<ProcessMetrics>,
}

/// Renders a process's metrics in the Prometheus text format.
pub type ProcessMetrics = Arc<dyn Fn() -> String + Send + Sync>;

impl AppState {
    /// State for a console over `store` and `coord` with keys under `prefix`
    /// (normalised to end in `/`).
    pub fn new(store: Store, coord: Arc<dyn Coordinator>, prefix: &str, auth: AuthConfig) -> Self {
        let prefix = if prefix.ends_with('/') {
            prefix.to_owned()
        } else {
            format!("{prefix}/")
        };
        AppState {
            store,
            coord,
            prefix: prefix.into(),
            auth: Arc::new(auth),
            sessions: Arc::new(session::Sessions::default()),
            errors: Arc::new(metrics::ErrorCounts::default()),
            notifier: None,
            poll_interval: Duration::from_millis(500),
            closing: CancellationToken::new(),
            secure_cookies: false,
            throttle: Arc::default(),
            streams: limits::StreamSlots::default(),
            process_metrics: None,
        }
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("prefix", &self.prefix)
            .field("auth", &self.auth)
            .field("secure_cookies", &self.secure_cookies)
            .finish_non_exhaustive()
    }
}

/// Body of `GET /healthz`.
#[derive(Debug, Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
}

/// The console's router. Separate from [`serve`] so tests can drive it with
/// `tower::ServiceExt::oneshot`.
pub fn router(state: AppState) -> Router {
    // Everything behind the gate needs a token or a session; the fallback
    // too, so that an anonymous caller learns nothing about which paths
    // exist.
    let guarded = Router::new()
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/logout", post(session::logout))
        .nest("/api/v1", api::router())
        .merge(pages::router())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::count_errors,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            session::gate,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/login", get(session::login_form).post(session::login))
        // The stylesheet and script hold nothing secret, and the login
        // page needs the stylesheet before anyone is logged in.
        .merge(pages::assets())
        .merge(guarded)
        // Applies to every body extractor: oversized bodies get 413 before
        // any JSON parsing.
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // Outermost first: headers on every answer, the 408 included.
        .layer(
            tower::ServiceBuilder::new()
                .layer(axum::middleware::from_fn(headers::security_headers))
                .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                    axum::http::StatusCode::REQUEST_TIMEOUT,
                    limits::REQUEST_TIMEOUT,
                ))
                .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                    limits::MAX_CONCURRENT_REQUESTS,
                )),
        )
        .with_state(state)
}

/// Serves [`router`] on `listener` until `shutdown` resolves, then lets
/// in-flight requests finish (server-sent event streams end with it).
/// Connections that do not send complete headers within
/// [`limits::HEADER_READ_TIMEOUT`] are closed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let closing = state.closing.clone();
    if let Some(notifier) = state.notifier.clone() {
        tokio::spawn(notifier.run(state.clone()));
    }
    let cancel = closing.clone();
    tokio::spawn(async move {
        shutdown.await;
        cancel.cancel();
    });
    server::run(listener, router(state), closing).await
}

async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// `GET /readyz`: 200 when both the coordination service and the SQL store
/// answer, else 503 (the reason is logged, not sent).
async fn readyz(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<Json<Health>, ApiError> {
    // Any failure means "not ready": 503, whatever the error's own status.
    if let Err(e) = state.coord.current_revision().await {
        state.errors.count(error::Backend::Coord);
        return Err(ApiError::Unavailable(format!(
            "readiness: coordination service: {e}"
        )));
    }
    if let Err(e) = state.store.list_dags().await {
        state.errors.count(error::Backend::Sql);
        return Err(ApiError::Unavailable(format!("readiness: database: {e}")));
    }
    Ok(Json(Health {
        status: "ready",
        version: env!("CARGO_PKG_VERSION"),
    }))
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such page".to_owned())
}
