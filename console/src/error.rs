//! [`ApiError`]: the one error type of every handler, rendered as
//! `{"error": {"code", "message"}}` with the matching HTTP status.
//!
//! Internal failures (SQL, coordination service) are logged with their full
//! text and answered with a generic message: driver errors can name hosts,
//! tables or credentials that a browser has no business seeing.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use nightshift_coord::CoordError;
use nightshift_store::StoreError;
use serde::Serialize;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or a value is out of range (400).
    #[error("{0}")]
    BadRequest(String),
    /// No valid operator token was presented (401).
    #[error("a valid operator token is required (Authorization: Bearer <token>)")]
    Unauthorized,
    /// The caller may not do this (403), e.g. the console is read-only.
    #[error("{0}")]
    Forbidden(String),
    /// The thing asked for does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than [`crate::MAX_BODY_BYTES`] (413).
    #[error("request body too large (limit {limit} bytes)")]
    PayloadTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The body is not `application/json` (415).
    #[error("expected a JSON body (Content-Type: application/json)")]
    UnsupportedMediaType,
    /// Too many failed logins from this address, or too many open event
    /// streams for this user (429).
    #[error("{0}")]
    TooManyRequests(String),
    /// The coordination service or database cannot be reached (503). The
    /// detail is logged, not sent.
    #[error("a backing service is unavailable")]
    Unavailable(String),
    /// Anything else (500). The detail is logged, not sent.
    #[error("internal error")]
    Internal(String),
}

/// Which backing service an error came from, for the error counters of
/// `/metrics`: attached to the error's response as an extension and
/// counted by [`crate::metrics::count_errors`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The SQL store.
    Sql,
    /// The coordination service (etcd).
    Coord,
}

/// Message prefixes of errors converted from the store / coordinator.
const SQL_PREFIX: &str = "store: ";
const COORD_PREFIX: &str = "coordination: ";

impl ApiError {
    /// The backing service this error came from, if any.
    pub fn backend(&self) -> Option<Backend> {
        match self {
            ApiError::Internal(d) | ApiError::Unavailable(d) if d.starts_with(SQL_PREFIX) => {
                Some(Backend::Sql)
            }
            ApiError::Internal(d) | ApiError::Unavailable(d) if d.starts_with(COORD_PREFIX) => {
                Some(Backend::Coord)
            }
            _ => None,
        }
    }

    /// HTTP status of the error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable machine-readable code of the error (`bad_request`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::TooManyRequests(_) => "too_many_requests",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// A 400 with `message`.
    pub fn bad(message: impl Into<String>) -> Self {
        ApiError::BadRequest(message.into())
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(detail) => tracing::error!(error = %detail, "request failed"),
            ApiError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "backing service unavailable")
            }
            _ => {}
        }
        let body = Body {
            error: Inner {
                code: self.code(),
                message: self.to_string(),
            },
        };
        let mut response = (self.status(), Json(body)).into_response();
        if let Some(backend) = self.backend() {
            response.extensions_mut().insert(backend);
        }
        if matches!(self, ApiError::Unauthorized) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Connect { .. } => ApiError::Unavailable(format!("{SQL_PREFIX}{e}")),
            other => ApiError::Internal(format!("{SQL_PREFIX}{other}")),
        }
    }
}

impl From<CoordError> for ApiError {
    fn from(e: CoordError) -> Self {
        if e.is_transient() {
            ApiError::Unavailable(format!("{COORD_PREFIX}{e}"))
        } else {
            ApiError::Internal(format!("{COORD_PREFIX}{e}"))
        }
    }
}
