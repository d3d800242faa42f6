//! Limits that keep one client from wearing the console down: how long a
//! connection may take to send its headers and a request to complete, how
//! many requests run at once, how many event streams one user keeps open,
//! and how many wrong tokens one address may try.
//!
//! The timeouts and the request limit are applied by [`crate::router`]
//! (tower layers) and [`crate::serve`] (hyper's header-read timer); the
//! login throttle by [`crate::session`]; the stream cap by the stream
//! handler.

use axum::extract::ConnectInfo;
use axum::http::Extensions;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A connection must have sent a request's complete headers within this
/// time (also while idle between keep-alive requests), or it is closed:
/// slow-header clients cannot hold sockets open.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A request (body included) must be answered within this time, else 408:
/// a slow body cannot hold a handler. Event streams are not cut by it (their
/// response starts at once; the body that follows is not timed).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests handled at once; more wait for a slot (within
/// [`REQUEST_TIMEOUT`]).
pub const MAX_CONCURRENT_REQUESTS: usize = 256;
/// Event streams one user may hold open; the next one gets 429. A browser
/// tab holds one.
pub const MAX_STREAMS_PER_USER: usize = 16;
/// Wrong tokens (login form or bearer) accepted from one address per
/// [`FAILURE_WINDOW`]; beyond that every attempt gets 429 until the window
/// ends.
pub const MAX_FAILURES: u32 = 10;
/// See [`MAX_FAILURES`].
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered by the throttle; beyond that the expired ones are
/// dropped, then the oldest.
const MAX_TRACKED: usize = 10_000;

/// The peer address of the connection a request came on (set by
/// [`crate::serve`]; absent when the router is driven directly).
pub fn client_addr(extensions: &Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

/// Counts failed authentications per client address in fixed windows.
#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl std::fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginThrottle").finish_non_exhaustive()
    }
}

fn key(addr: Option<IpAddr>) -> IpAddr {
    // Requests without a peer address (tests driving the router) share one
    // bucket.
    addr.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

impl LoginThrottle {
    /// `Err(retry after)` when `addr` has used up its failures in the
    /// current window.
    pub fn check(&self, addr: Option<IpAddr>) -> Result<(), Duration> {
        let map = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        match map.get(&key(addr)) {
            Some((count, since)) if *count >= MAX_FAILURES => {
                let elapsed = since.elapsed();
                if elapsed < FAILURE_WINDOW {
                    Err(FAILURE_WINDOW - elapsed)
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// Records a wrong token from `addr`.
    pub fn failed(&self, addr: Option<IpAddr>) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_TRACKED {
            map.retain(|_, (_, since)| now.duration_since(*since) < FAILURE_WINDOW);
            if map.len() >= MAX_TRACKED {
                if let Some(oldest) = map.iter().min_by_key(|(_, (_, s))| *s).map(|(k, _)| *k) {
                    map.remove(&oldest);
                }
            }
        }
        let entry = map.entry(key(addr)).or_insert((0, now));
        if now.duration_since(entry.1) >= FAILURE_WINDOW {
            *entry = (0, now);
        }
        entry.0 = entry.0.saturating_add(1);
    }
}

/// Open event streams per user.
#[derive(Debug, Default, Clone)]
pub struct StreamSlots {
    open: Arc<Mutex<HashMap<String, usize>>>,
}

/// One open stream; its slot is given back when dropped (the stream ended
/// or the client went away).
#[derive(Debug)]
pub struct StreamSlot {
    open: Arc<Mutex<HashMap<String, usize>>>,
    user: String,
}

impl StreamSlots {
    /// A slot for `user`, or `None` when the user already holds
    /// [`MAX_STREAMS_PER_USER`].
    pub fn acquire(&self, user: &str) -> Option<StreamSlot> {
        let mut map = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let n = map.entry(user.to_owned()).or_insert(0);
        if *n >= MAX_STREAMS_PER_USER {
            return None;
        }
        *n += 1;
        Some(StreamSlot {
            open: self.open.clone(),
            user: user.to_owned(),
        })
    }

    /// Streams `user` holds open.
    pub fn open(&self, user: &str) -> usize {
        let map = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(user).copied().unwrap_or(0)
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut map = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_counts_per_address() {
        let t = LoginThrottle::default();
        let a: Option<IpAddr> = Some("10.0.0.1".parse().unwrap());
        let b: Option<IpAddr> = Some("10.0.0.2".parse().unwrap());
        for _ in 0..MAX_FAILURES {
            assert!(t.check(a).is_ok());
            t.failed(a);
        }
        let wait = t.check(a).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= FAILURE_WINDOW);
        assert!(t.check(b).is_ok(), "another address is not affected");
    }

    #[test]
    fn stream_slots_are_capped_per_user_and_given_back() {
        let slots = StreamSlots::default();
        let held: Vec<StreamSlot> = (0..MAX_STREAMS_PER_USER)
            .map(|_| slots.acquire("alice").unwrap())
            .collect();
        assert!(slots.acquire("alice").is_none());
        assert!(slots.acquire("bob").is_some(), "bob has his own slots");
        drop(held);
        assert_eq!(slots.open("alice"), 0);
        assert!(slots.acquire("alice").is_some());
    }
}
