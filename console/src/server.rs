//! The HTTP server loop: one hyper HTTP/1.1 connection per accepted
//! socket, with a header-read timeout, the peer address put into each
//! request (for the login throttle and its log lines), and a graceful
//! shutdown that lets in-flight requests finish.
//!
//! `axum::serve` cannot set hyper's header-read timer, and a client that
//! sends headers a byte at a time (or nothing at all) would otherwise hold
//! its socket for ever.

use crate::limits::HEADER_READ_TIMEOUT;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

/// Accepts connections on `listener` and serves `app` on each until
/// `closing` is cancelled; then stops accepting, asks every connection to
/// finish its current request, and returns when all have.
pub async fn run(
    listener: tokio::net::TcpListener,
    app: Router,
    closing: CancellationToken,
) -> std::io::Result<()> {
    let connections = TaskTracker::new();
    loop {
        let (socket, peer) = tokio::select! {
            _ = closing.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: the listener
                    // itself is fine, so wait a moment and accept again.
                    tracing::warn!(error = %e, "console: accepting a connection failed");
                    tokio::select! {
                        _ = closing.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                    }
                }
            },
        };
        let app = app.clone();
        let closing = closing.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                app.clone().oneshot(req.map(axum::body::Body::new))
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let conn = http
                .serve_connection(TokioIo::new(socket), service)
                .with_upgrades();
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = closing.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                // Timeouts and resets are the client's doing: debug only.
                tracing::debug!(%peer, error = %e, "console connection ended");
            }
        });
    }
    connections.close();
    connections.wait().await;
    Ok(())
}
