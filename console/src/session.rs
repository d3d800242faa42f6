//! Browser sessions and the authentication gate in front of every route
//! but `/healthz`, the login form and the static assets.
//!
//! `POST /login` with a valid token creates a session (a random 32-byte id,
//! kept in memory, expiring after [`SESSION_TTL`]) and sets two cookies,
//! both `SameSite=Strict`: `nightshift_session` (the id, `HttpOnly`) and
//! `nightshift_csrf` (the session's CSRF token, readable by the page's
//! script). With `--secure-cookies` they are `Secure` and named
//! `__Host-nightshift_session` / `__Host-nightshift_csrf`, which browsers
//! accept only from HTTPS, for the whole host and no subdomain. A
//! cookie-authenticated request that changes anything must echo the CSRF
//! token in the `X-Nightshift-CSRF` header, which another site cannot
//! read or set; bearer-token requests are exempt (browsers never send
//! bearer tokens on their own). Sessions live in this process: a restart
//! logs everyone out, and replicas do not share sessions. One token holds
//! at most [`MAX_SESSIONS_PER_TOKEN`] sessions, so mass logins with one
//! token cannot evict anyone else's.
//!
//! Wrong tokens (form or bearer) are counted per client address
//! ([`crate::limits::LoginThrottle`]): past the limit every attempt from
//! that address gets 429 for the rest of the window, and each failure is
//! logged with the address. Logins and logouts are audit events.

use crate::auth::{token_digest, Principal, Role};
use crate::error::ApiError;
use crate::limits::client_addr;
use crate::AppState;
use axum::extract::{FromRequest, Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE, LOCATION, RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::Form;
use nightshift_store::NewEvent;
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// How long a login lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Most sessions kept at once; the oldest goes first beyond that.
pub const MAX_SESSIONS: usize = 10_000;
/// Most sessions one token holds; its oldest goes first beyond that.
pub const MAX_SESSIONS_PER_TOKEN: usize = 64;
/// Name of the session cookie (`HttpOnly`).
pub const SESSION_COOKIE: &str = "nightshift_session";
/// Name of the cookie holding the CSRF token (readable by the script).
pub const CSRF_COOKIE: &str = "nightshift_csrf";
/// The session cookie's name with `--secure-cookies`.
pub const SECURE_SESSION_COOKIE: &str = "__Host-nightshift_session";
/// The CSRF cookie's name with `--secure-cookies`.
pub const SECURE_CSRF_COOKIE: &str = "__Host-nightshift_csrf";

/// `(session cookie, csrf cookie)` names.
fn cookie_names(secure: bool) -> (&'static str, &'static str) {
    if secure {
        (SECURE_SESSION_COOKIE, SECURE_CSRF_COOKIE)
    } else {
        (SESSION_COOKIE, CSRF_COOKIE)
    }
}
/// Header a cookie-authenticated mutating request must carry.
pub const CSRF_HEADER: &str = "x-nightshift-csrf";

struct Session {
    user: String,
    role: Role,
    /// Which token logged in (a prefix of its digest), for the per-token cap.
    token: [u8; 8],
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
    /// A new session for `user`, logged in with the token whose digest is
    /// `digest`; returns `(session id, csrf token)`.
    pub fn create(&self, user: &str, role: Role, digest: &[u8; 32]) -> (String, String) {
        let (id, csrf) = (random_hex(), random_hex());
        let now = Instant::now();
        let mut token = [0u8; 8];
        token.copy_from_slice(&digest[..8]);
        let mut map = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, s| s.expires > now);
        if map.values().filter(|s| s.token == token).count() >= MAX_SESSIONS_PER_TOKEN {
            if let Some(oldest) = map
                .iter()
                .filter(|(_, s)| s.token == token)
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
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
                token,
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

    /// Live sessions (for tests and metrics).
    pub fn len(&self) -> usize {
        let now = Instant::now();
        let map = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.values().filter(|s| s.expires > now).count()
    }

    /// Whether no session is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
    let (session_cookie, _) = cookie_names(state.secure_cookies);
    state.sessions.get(cookie(headers, session_cookie)?)
}

/// How a client address is written in logs.
fn shown(addr: Option<IpAddr>) -> String {
    addr.map_or_else(|| "unknown".to_owned(), |a| a.to_string())
}

/// The 429 for an address that used up its failed attempts.
fn throttled(addr: Option<IpAddr>, wait: Duration, page: Option<&str>) -> Response {
    let secs = wait.as_secs().max(1);
    tracing::warn!(client = %shown(addr), retry_after_s = secs, "too many failed logins: refused");
    let message = format!("Too many failed logins from this address; try again in {secs} s.");
    let mut res = match page {
        Some(next) => (
            StatusCode::TOO_MANY_REQUESTS,
            Html(login_page(next, Some(&message))),
        )
            .into_response(),
        None => ApiError::TooManyRequests(message).into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        res.headers_mut().insert(RETRY_AFTER, v);
    }
    res
}

/// Appends a console audit event (best effort: a store outage must not
/// lock operators out, so a failure is logged and the action goes on).
async fn audit(state: &AppState, kind: &str, user: &str, detail: serde_json::Value) {
    let event = NewEvent {
        at_ms: crate::time::now_ms(),
        kind: kind.to_owned(),
        actor: user.to_owned(),
        dag: None,
        run_id: None,
        job: None,
        item: None,
        executor: None,
        detail,
    };
    if let Err(e) = state.store.append_event(&event).await {
        tracing::warn!(kind, user, error = %e, "could not record the audit event");
    }
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
    let addr = client_addr(req.extensions());
    let bearer = req.headers().contains_key(AUTHORIZATION);
    if bearer {
        if let Err(wait) = state.throttle.check(addr) {
            return throttled(addr, wait, None);
        }
    }
    let Some(principal) = principal(&state, req.headers()) else {
        if bearer {
            state.throttle.failed(addr);
            tracing::warn!(client = %shown(addr), path = %req.uri().path(), "rejected an invalid token");
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

/// Whether `path` is a path on this site and nothing else: it starts with
/// one `/` (not `//`, which browsers read as another host), and has only
/// visible ASCII without backslashes (browsers drop tabs and newlines and
/// read `\` as `/`, so `/\t/evil.example` would become `//evil.example`).
pub fn is_local_path(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.first() == Some(&b'/')
        && bytes.get(1) != Some(&b'/')
        && bytes.iter().all(|b| b.is_ascii_graphic() && *b != b'\\')
}

/// Only local paths, so the login form cannot redirect elsewhere.
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(p) if is_local_path(p) => p,
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
pub async fn login(State(state): State<AppState>, req: Request) -> Response {
    let addr = client_addr(req.extensions());
    let headers = req.headers().clone();
    let form = match Form::<LoginForm>::from_request(req, &state).await {
        Ok(Form(form)) => form,
        Err(rejection) => return rejection.into_response(),
    };
    let next = local_path(form.next.as_deref()).to_owned();
    if let Err(wait) = state.throttle.check(addr) {
        return throttled(addr, wait, Some(&next));
    }
    let token = form.token.trim();
    let Some((user, role)) = state.auth.identify(token) else {
        state.throttle.failed(addr);
        tracing::warn!(client = %shown(addr), "failed console login");
        return (
            StatusCode::UNAUTHORIZED,
            Html(login_page(&next, Some("Unknown token."))),
        )
            .into_response();
    };
    let (id, csrf) = state.sessions.create(&user, role, &token_digest(token));
    tracing::info!(user = %user, role = role.as_str(), client = %shown(addr), "console login");
    audit(
        &state,
        "console_login",
        &user,
        serde_json::json!({ "role": role.as_str(), "client": shown(addr) }),
    )
    .await;
    let age = SESSION_TTL.as_secs();
    // `--secure-cookies` marks them `Secure` with `__Host-` names; without
    // it, a TLS-terminating proxy that says so still gets `Secure` (a
    // console on plain HTTP — localhost, a lab — could not use them then).
    let https = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let secure = if state.secure_cookies || https {
        "; Secure"
    } else {
        ""
    };
    let (session_name, csrf_name) = cookie_names(state.secure_cookies);
    let session =
        format!("{session_name}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={age}{secure}");
    let csrf = format!("{csrf_name}={csrf}; Path=/; SameSite=Strict; Max-Age={age}{secure}");
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
pub async fn logout(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<Principal>,
    req: Request,
) -> Response {
    let addr = client_addr(req.extensions());
    let (session_name, csrf_name) = cookie_names(state.secure_cookies);
    if let Some(id) = cookie(req.headers(), session_name) {
        state.sessions.remove(id);
    }
    tracing::info!(user = %principal.user, client = %shown(addr), "console logout");
    audit(
        &state,
        "console_logout",
        &principal.user,
        serde_json::json!({ "client": shown(addr) }),
    )
    .await;
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    let mut res = StatusCode::NO_CONTENT.into_response();
    for name in [session_name, csrf_name] {
        if let Ok(v) = HeaderValue::from_str(&format!(
            "{name}=; Path=/; SameSite=Strict; Max-Age=0{secure}"
        )) {
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
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Log in · Nightshift</title>\
<link rel=\"stylesheet\" href=\"/assets/console.css\"></head><body class=\"login\"><h1>Nightshift</h1>{error}\
<form method=\"post\" action=\"/login\" id=\"login\"><label>Token <input type=\"password\" name=\"token\" \
autocomplete=\"current-password\" autofocus></label><input type=\"hidden\" name=\"next\" value=\"{}\">\
<button type=\"submit\">Log in</button></form></body></html>\n",
        esc(local_path(Some(next)))
    )
}
