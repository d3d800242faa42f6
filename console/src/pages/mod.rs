//! Server-rendered HTML pages: Overview, DAG, Run, Executors, Alerts and
//! Events. They are built from the same functions as the JSON API, so the
//! two never disagree. One stylesheet and one small script are embedded in
//! the binary (`include_str!`): nothing is fetched from elsewhere.
//!
//! Live parts of a page are elements with `data-live` and an `id`; the
//! script listens to `/api/v1/stream` and, on a relevant change, fetches the
//! page again and swaps those elements in. Actions are buttons and forms
//! that call the JSON API with the session cookie and the CSRF header (see
//! [`crate::session`]), after `confirm()` for money-moving ones.

mod dag;
mod dag_layout;
mod html;
mod item_timeline;
mod lists;
mod overview;
mod run;
mod running_now;
mod svg;
mod time_axis;
mod timeline;
mod trend;

use crate::error::ApiError;
use crate::AppState;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

pub use html::{esc, url};

const CSS: &str = include_str!("../../assets/console.css");
const JS: &str = include_str!("../../assets/console.js");

/// Routes of every page.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(overview::page))
        .route("/dags/{dag}", get(dag::page))
        .route("/runs/{run}", get(run::page))
        .route("/executors", get(lists::executors))
        .route("/alerts", get(lists::alerts))
        .route("/events", get(lists::events))
}

/// Routes of the embedded stylesheet and script (served without a token).
pub fn assets() -> Router<AppState> {
    Router::new()
        .route(
            "/assets/console.css",
            get(|| async { asset("text/css; charset=utf-8", CSS) }),
        )
        .route(
            "/assets/console.js",
            get(|| async { asset("text/javascript; charset=utf-8", JS) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [(CONTENT_TYPE, content_type), (CACHE_CONTROL, "max-age=300")],
        body,
    )
        .into_response()
}

/// A page that failed: the API error's status and message as HTML (internal
/// details are logged by [`ApiError`], never shown).
pub struct PageError(ApiError);

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError(e)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        match &self.0 {
            ApiError::Internal(detail) => tracing::error!(error = %detail, "page failed"),
            ApiError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "page failed: backing service unavailable")
            }
            _ => {}
        }
        let body = format!(
            "<h1>{}</h1><p>{}</p>",
            status.as_u16(),
            esc(&self.0.to_string())
        );
        let mut response = (status, Html(html::layout("Error", false, "", &body))).into_response();
        if let Some(backend) = self.0.backend() {
            response.extensions_mut().insert(backend);
        }
        response
    }
}

/// What a page handler returns.
pub type PageResult = Result<Html<String>, PageError>;
