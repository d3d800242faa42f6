//! Browser sessions and the authentication gate in front of every route
//! but `/healthz` and the login form.
//!
//! `POST /login` with a valid token creates a session (a random 32-byte id,
//! kept in memory, expiring after [`SESSION_TTL`]) and sets two cookies,
//! both `SameSite=Strict`: `nightshift_session` (the id, `HttpOnly`) and
//! `nightshift_csrf` (the session's CSRF token, readable by the page's
//! script). A cookie-authenticated request that changes anything must echo
//! that token in the `X-Nightshift-CSRF` header, which another site cannot
//! read or set; bearer-token requests are exempt (browsers never send
//! bearer tokens on their own). Sessions live in this process: a restart
//! logs everyone out, and replicas do not share sessions.

use crate::auth::{Principal, Role};
use crate::error::ApiError;
use crate::AppState;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::Form;
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// How long a login lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Most sessions kept at once; the oldest goes first beyond that.
pub const MAX_SESSIONS: usize = 10_000;
/// Name of the session cookie (`HttpOnly`).
pub const SESSION_COOKIE: &str = "nightshift_session";
/// Name of the cookie holding the CSRF token (readable by the script).
pub const CSRF_COOKIE: &str = "nightshift_csrf";
/// Header a cookie-authenticated mutating request must carry.
pub const CSRF_HEADER: &str = "x-nightshift-csrf";

struct Session {
    user: String,
    role: Role,
    csrf: String,
    expires: Instant,
}

/// The in-memory session store.
#[derive(Default)]
pub struct Sessions {
    inner: Mutex<HashMap<String, Session>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").finish_non_exhaustive()
    }
}

fn random_hex() -> String {
    let bytes: [u8; 32] = rand::random();
    let mut out = String::with_capacity(64);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

impl Sessions {
    /// A new session for `user`; returns `(session id, csrf token)`.
    pub fn create(&self, user: &str, role: Role) -> (String, String) {
        let (id, csrf) = (random_hex(), random_hex());
        let now = Instant::now();
        let mut map = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(
            id.clone(),
            Session {
                user: user.to_owned(),
                role,
                csrf: csrf.clone(),
                expires: now + SESSION_TTL,
            },
        );
        (id, csrf)
    }

    /// The live session with this id.
    pub fn get(&self, id: &str) -> Option<Principal> {
        let map = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let s = map.get(id).filter(|s| s.expires > Instant::now())?;
        Some(Principal {
            user: s.user.clone(),
            role: s.role,
            csrf: Some(s.csrf.clone()),
        })
    }

    /// Ends a session.
    pub fn remove(&self, id: &str) {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id);
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Who the request comes from: the bearer token when an `Authorization`
/// header is present (and then only it), else the session cookie.
fn principal(state: &AppState, headers: &HeaderMap) -> Option<Principal> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let token = value.to_str().ok()?.strip_prefix("Bearer ")?.trim();
        let (user, role) = state.auth.identify(token)?;
        return Some(Principal {
            user,
            role,
            csrf: None,
        });
    }
    state.sessions.get(cookie(headers, SESSION_COOKIE)?)
}

/// Whether an unauthenticated request is a person's browser asking for a
/// page (answered with the login form) rather than a program (JSON error).
fn wants_page(req: &Request) -> bool {
    let path = req.uri().path();
    req.method() == axum::http::Method::GET
        && !path.starts_with("/api/")
        && !matches!(path, "/metrics" | "/readyz")
}

/// Middleware: 401 without a valid token or session (the login form for a
/// page, a JSON error otherwise), 403 for a cookie-authenticated mutating
/// request without the matching CSRF header; otherwise the [`Principal`]
/// goes into the request's extensions.
pub async fn gate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(principal) = principal(&state, req.headers()) else {
        if req.headers().contains_key(AUTHORIZATION) {
            tracing::warn!(path = %req.uri().path(), "rejected an invalid token");
        }
        if wants_page(&req) {
            let next = req
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            return (StatusCode::UNAUTHORIZED, Html(login_page(&next, None))).into_response();
        }
        return ApiError::Unauthorized.into_response();
    };
    if let (Some(expected), false) = (&principal.csrf, req.method().is_safe()) {
        let presented = req
            .headers()
            .get(CSRF_HEADER)
            .map(HeaderValue::as_bytes)
            .unwrap_or_default();
        if !bool::from(presented.ct_eq(expected.as_bytes())) {
            return ApiError::Forbidden("missing or wrong X-Nightshift-CSRF header".to_owned())
                .into_response();
        }
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// `POST /login` form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    /// The token.
    pub token: String,
    /// Where to go afterwards (a local path).
    #[serde(default)]
    pub next: Option<String>,
}

/// Only local absolute paths, so the login form cannot redirect elsewhere.
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p,
        _ => "/",
    }
}

/// `GET /login?next=` query.
#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    /// Where to go after logging in.
    #[serde(default)]
    pub next: Option<String>,
}

/// `GET /login`.
pub async fn login_form(axum::extract::Query(q): axum::extract::Query<LoginQuery>) -> Html<String> {
    Html(login_page(local_path(q.next.as_deref()), None))
}

/// `POST /login`: a session and its cookies, then a redirect; 401 and the
/// form again with a wrong token.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = local_path(form.next.as_deref()).to_owned();
    let Some((user, role)) = state.auth.identify(form.token.trim()) else {
        tracing::warn!("failed console login");
        return (
            StatusCode::UNAUTHORIZED,
            Html(login_page(&next, Some("Unknown token."))),
        )
            .into_response();
    };
    let (id, csrf) = state.sessions.create(&user, role);
    tracing::info!(user = %user, role = role.as_str(), "console login");
    let age = SESSION_TTL.as_secs();
    // Behind a TLS-terminating proxy the cookies are marked `Secure`; a
    // console on plain HTTP (localhost, a lab) could not use them then.
    let https = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let secure = if https { "; Secure" } else { "" };
    let session =
        format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={age}{secure}");
    let csrf = format!("{CSRF_COOKIE}={csrf}; Path=/; SameSite=Strict; Max-Age={age}{secure}");
    let (Ok(session), Ok(csrf), Ok(location)) = (
        HeaderValue::from_str(&session),
        HeaderValue::from_str(&csrf),
        HeaderValue::from_str(&next),
    ) else {
        return ApiError::bad("invalid redirect target").into_response();
    };
    let mut res = StatusCode::SEE_OTHER.into_response();
    let headers = res.headers_mut();
    headers.append(SET_COOKIE, session);
    headers.append(SET_COOKIE, csrf);
    headers.insert(LOCATION, location);
    res
}

/// `POST /logout` (CSRF-checked by [`gate`] like every cookie mutation).
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        state.sessions.remove(id);
    }
    let mut res = StatusCode::NO_CONTENT.into_response();
    for name in [SESSION_COOKIE, CSRF_COOKIE] {
        if let Ok(v) =
            HeaderValue::from_str(&format!("{name}=; Path=/; SameSite=Strict; Max-Age=0"))
        {
            res.headers_mut().append(SET_COOKIE, v);
        }
    }
    res
}

/// The login page (served with 401 to anonymous page requests).
pub fn login_page(next: &str, error: Option<&str>) -> String {
    use crate::pages::esc;
    let error = error
        .map(|e| format!("<p class=\"error\">{}</p>", esc(e)))
        .unwrap_or_default();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Log in · Nightshift</title>\
<style>body{{font-family:sans-serif;max-width:24rem;margin:4rem auto}}input{{width:100%;margin:.5rem 0}}\
.error{{color:#b00}}</style></head><body><h1>Nightshift</h1>{error}\
<form method=\"post\" action=\"/login\" id=\"login\"><label>Token <input type=\"password\" name=\"token\" \
autocomplete=\"current-password\" autofocus></label><input type=\"hidden\" name=\"next\" value=\"{}\">\
<button type=\"submit\">Log in</button></form></body></html>\n",
        esc(local_path(Some(next)))
    )
}
