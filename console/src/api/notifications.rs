//! `POST /notifications/test`: send a test notification to every
//! configured channel now (operator role) and report each delivery.

use crate::auth::Operator;
use crate::error::ApiError;
use crate::extract::NoFields;
use crate::notify::Delivery;
use crate::AppState;
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/notifications/test", post(test))
}

/// 200 with one [`Delivery`] per channel (each says whether it worked);
/// 409 when no channel is configured.
async fn test(
    State(state): State<AppState>,
    operator: Operator,
    _: NoFields,
) -> Result<Json<Vec<Delivery>>, ApiError> {
    let Some(notifier) = state.notifier.clone() else {
        return Err(ApiError::Conflict(
            "no notification channel is configured (--notify-config)".to_owned(),
        ));
    };
    tracing::info!(user = %operator.user, "test notification requested");
    Ok(Json(notifier.test(&state).await))
}
