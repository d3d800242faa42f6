//! Nightshift console: the web UI, JSON API, server-sent events and
//! `/metrics` that operators watch a night's batches with.
//!
//! Status: only the router skeleton exists (a health endpoint); pages, the
//! API and metrics come with the console issue.
//!
//! **Architecture invariant:** the console reads history from SQL and live
//! state from the coordination service, and never writes run state: every
//! operator action is a command the scheduler leader carries out.
#![deny(missing_docs)]

use axum::{routing::get, Json, Router};
use serde::Serialize;

/// Body of `GET /healthz`.
#[derive(Debug, Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
}

/// The console's router. Separate from serving so tests can drive it with
/// `tower::ServiceExt::oneshot`.
pub fn router() -> Router {
    Router::new().route("/healthz", get(healthz))
}

async fn healthz() -> Json<Health> {
    Json(Health { status: "ok", version: env!("CARGO_PKG_VERSION") })
}
