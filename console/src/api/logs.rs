//! `GET /runs/{run}/jobs/{job}/items/{item}/attempts/{attempt}/log`: the
//! log tail an executor shipped with an item attempt's result, as
//! `text/plain` (the last 64 KiB of its lines, with a marker line at the top
//! when earlier ones were dropped). A log arrives when its attempt ends:
//! a running attempt has none yet.

use super::id_segment;
use super::runs::get_run;
use crate::error::ApiError;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use nightshift_core::ids::{ItemIndex, JobName};

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route(
        "/runs/{run}/jobs/{job}/items/{item}/attempts/{attempt}/log",
        get(attempt_log),
    )
}

/// A path number (item index, attempt), 400 when it is not one.
fn number(kind: &str, value: &str) -> Result<u32, ApiError> {
    value
        .parse()
        .map_err(|_| ApiError::bad(format!("{kind} `{value}` is not a non-negative integer")))
}

async fn attempt_log(
    State(state): State<AppState>,
    Path((run, job, item, attempt)): Path<(String, String, String, String)>,
) -> Result<Response, ApiError> {
    let run = get_run(&state, &run).await?;
    id_segment("job name", &job)?;
    let item = number("item", &item)?;
    let attempt = number("attempt", &attempt)?;
    let log = state
        .store
        .attempt_log(&run.run_id, &JobName::new(&job), ItemIndex(item), attempt)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no log for attempt {attempt} of item {item} of job `{job}` in run `{}` \
                 (a log arrives when its attempt ends; an attempt that logged nothing, \
                 or that ended without its executor's result, has none)",
                run.run_id
            ))
        })?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], log).into_response())
}
