//! The security headers every response carries, set in one place.
//!
//! The pages load only the console's own stylesheet and script (no inline
//! `<script>`, `<style>` or `style=` attributes), so the Content Security
//! Policy can be `default-src 'self'`: injected markup could not run a
//! script even if escaping ever failed. Framing is refused (clickjacking),
//! MIME sniffing is off (a JSON error echoing input is never read as HTML),
//! no Referer leaks run ids to other sites, and responses are not cached
//! unless they say otherwise (the static assets do): authenticated pages
//! must not stay in a shared cache or the browser's history cache.

use axum::extract::Request;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

/// The Content Security Policy of every response.
pub const CSP: &str =
    "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'";

/// Middleware: adds the security headers (see the module docs).
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let headers = res.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}
