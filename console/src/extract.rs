//! Extractors whose rejections are [`ApiError`]s, so that malformed input
//! comes back in the API's error format rather than axum's plain text.
//!
//! Messages carry serde's own words with the path of the offending field
//! (`minutes: invalid value: integer `-1`, expected u32`), without axum's
//! generic prefix, so that a client sees which field to fix.
//!
//! Every body must be a JSON object: serde would also read a struct from an
//! array, field by field in declaration order, so `[null, {}, true]` would
//! pass as a trigger request without naming a single field.

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Deserialize;

/// A JSON object body with `Content-Type: application/json` (415
/// otherwise). Bodies should be `#[serde(deny_unknown_fields)]` so that a
/// misspelt field is a 400 rather than silently ignored.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = body(req, state).await?;
        Ok(ApiJson(object(&bytes)?))
    }
}

/// `application/json`, or any `application/…+json`, parameters aside.
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.split_once('/') {
        Some((kind, sub)) => kind == "application" && (sub == "json" || sub.ends_with("+json")),
        None => false,
    }
}

/// The whole body, within [`crate::MAX_BODY_BYTES`] (413 beyond).
async fn body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge {
                limit: crate::MAX_BODY_BYTES,
            }
        } else {
            ApiError::bad(r.body_text())
        }
    })
}

/// `T` from a body that must be one JSON object.
fn object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(match serde_json::from_slice::<IgnoredAny>(bytes) {
            Ok(_) => ApiError::bad("the request body must be a JSON object"),
            Err(e) => ApiError::bad(format!("malformed JSON: {e}")),
        });
    }
    match axum::Json::<T>::from_bytes(bytes) {
        Ok(axum::Json(value)) => Ok(value),
        Err(rejection) => Err(json_rejection(rejection)),
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(e) => {
            ApiError::bad(format!("invalid request body: {}", detail(&e)))
        }
        JsonRejection::JsonSyntaxError(e) => {
            ApiError::bad(format!("malformed JSON: {}", detail(&e)))
        }
        other => ApiError::bad(other.body_text()),
    }
}

/// The underlying serde error of a rejection (`field: what is wrong`), or
/// the rejection's whole text when it has none.
fn detail<E: std::error::Error>(rejection: &E) -> String {
    match rejection.source() {
        Some(inner) => inner.to_string(),
        None => rejection.to_string(),
    }
}

/// Query-string parameters; unknown or malformed ones are a 400.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> ApiError {
    ApiError::bad(format!("invalid query: {}", detail(&rejection)))
}

/// A JSON object body that may be absent: an empty body reads as
/// `T::default()`. The content type is not checked, so `curl -d '{}'` works.
#[derive(Debug)]
pub struct OptionalJson<T>(pub T);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        Ok(OptionalJson(object(&bytes)?))
    }
}

/// The body of an action that takes no fields: nothing, or `{}` (what the
/// pages' script sends). Anything else is a 400 — an unknown field is named
/// — so a client that believes it passes a parameter learns that it does
/// not, instead of the field being silently ignored.
#[derive(Debug)]
pub struct NoFields;

/// The one accepted JSON value of [`NoFields`]: an object without fields.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

impl<S> FromRequest<S> for NoFields
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let OptionalJson(Empty {}) = OptionalJson::<Empty>::from_request(req, state).await?;
        Ok(NoFields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Pair {
        a: Option<u32>,
        b: Option<bool>,
    }

    fn message(e: ApiError) -> String {
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        e.to_string()
    }

    #[test]
    fn a_body_must_be_an_object_not_an_array_serde_would_read_by_position() {
        assert_eq!(
            object::<Pair>(br#" {"a": 1}"#).unwrap(),
            Pair {
                a: Some(1),
                b: None
            }
        );
        assert_eq!(
            message(object::<Pair>(b"[1, true]").unwrap_err()),
            "the request body must be a JSON object"
        );
        assert_eq!(
            message(object::<Pair>(b"null").unwrap_err()),
            "the request body must be a JSON object"
        );
        assert!(message(object::<Pair>(b"[1,").unwrap_err()).starts_with("malformed JSON"));
        assert!(message(object::<Pair>(b"").unwrap_err()).starts_with("malformed JSON"));
    }

    #[test]
    fn messages_name_the_field_without_axums_prefix() {
        let bad = message(object::<Pair>(br#"{"a": -1}"#).unwrap_err());
        assert!(
            bad.starts_with("invalid request body: a: invalid value: integer `-1`"),
            "{bad}"
        );
        let unknown = message(object::<Pair>(br#"{"c": 1}"#).unwrap_err());
        assert!(unknown.contains("unknown field `c`"), "{unknown}");
    }

    #[test]
    fn json_content_types_are_recognised() {
        let with = |ct: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
            json_content_type(&h)
        };
        assert!(
            with("application/json")
                && with("Application/JSON; charset=utf-8")
                && with("application/problem+json")
        );
        assert!(!with("text/plain") && !with("application/x-www-form-urlencoded") && !with("json"));
        assert!(!json_content_type(&HeaderMap::new()));
    }
}
