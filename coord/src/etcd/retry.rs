//! When a failed etcd request may be sent again, within its deadline, so
//! that the loss of one member costs a retry on another one instead of an
//! error for the caller (pure decisions; the loop is `EtcdCoordinator::call`).
//!
//! The client balances requests over every configured member. After a
//! member dies, requests the balancer routes to it fail at once with a
//! connect error, and members that lost their raft leader answer "no
//! leader" (the client sends etcd's `hasleader` metadata, so such a member
//! refuses at once instead of holding the request until etcd's own
//! timeout). Neither request was executed, so any request — a txn too — is
//! retried: at once while there are endpoints left to try (the balancer
//! does not route to a member it is still reconnecting to), after a short
//! pause afterwards. Any other transient failure (a connection reset
//! mid-request, a member's "request timed out") leaves a write ambiguous:
//! only requests that are safe to repeat (reads, lease renewals, watch
//! creation) are retried then; a write returns
//! [`CoordError::Unavailable`](crate::CoordError::Unavailable) and its
//! caller reads back what happened.

use etcd_client as ec;
use std::time::Duration;
use tonic::Code;

/// Pause before a retry that cannot go to a fresh endpoint at once.
const PAUSE: Duration = Duration::from_millis(50);

/// Whether a request may be executed twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Safety {
    /// Reads, lease renewals, watch creation: repeating changes nothing.
    Repeatable,
    /// Writes: repeated only when the failed attempt surely did nothing.
    Once,
}

/// What a failed attempt says about the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// No connection to the member could be made: nothing was sent.
    NotSent,
    /// The member refused it because it has no raft leader: not executed.
    NoLeader,
    /// Sent, outcome unknown (reset, member-side timeout, leader change).
    Ambiguous,
    /// An answer that a retry would not change (denied, invalid, compacted,
    /// lease not found, database full).
    Final,
}

/// Classifies a failed attempt.
pub(super) fn classify(e: &ec::Error) -> Failure {
    match e {
        ec::Error::GRpcStatus(status) => {
            let msg = status.message();
            match status.code() {
                Code::Unavailable if msg.contains("no leader") => Failure::NoLeader,
                // tonic reports a failed connect (refused, unreachable, TLS
                // handshake, connect timeout) as Unavailable with the
                // connector's message.
                Code::Unavailable if is_connect_error(msg) => Failure::NotSent,
                Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
                    if msg.contains("lease not found") || msg.contains("compacted") {
                        Failure::Final
                    } else {
                        Failure::Ambiguous
                    }
                }
                _ => Failure::Final,
            }
        }
        ec::Error::TransportError(_) | ec::Error::IoError(_) => Failure::Ambiguous,
        ec::Error::WatchError(_) => Failure::Ambiguous,
        ec::Error::LeaseKeepAliveError(msg) if msg.contains("lease not found") => Failure::Final,
        ec::Error::LeaseKeepAliveError(_) => Failure::Ambiguous,
        _ => Failure::Final,
    }
}

fn is_connect_error(msg: &str) -> bool {
    msg.contains("connect error")
        || msg.contains("error trying to connect")
        || msg.contains("Connection refused")
}

/// Whether to retry after attempt number `tries` (from 1) failed as
/// `failure`, and after which pause; `None`: give up and report it.
/// `endpoints` is how many members the client knows.
pub(super) fn pause(
    safety: Safety,
    failure: Failure,
    tries: u32,
    endpoints: usize,
) -> Option<Duration> {
    let endpoints = u32::try_from(endpoints).unwrap_or(u32::MAX).max(1);
    match (failure, safety) {
        (Failure::Final, _) | (Failure::Ambiguous, Safety::Once) => None,
        // Another endpoint is likely ready at once; once each had its turn,
        // pause so that an outage of every member is not a busy loop.
        (Failure::NotSent, _) if tries < 2 * endpoints => Some(Duration::ZERO),
        (Failure::NotSent | Failure::NoLeader | Failure::Ambiguous, _) => Some(PAUSE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grpc(code: Code, msg: &str) -> ec::Error {
        ec::Error::GRpcStatus(tonic::Status::new(code, msg))
    }

    #[test]
    fn failures_are_classified_by_what_the_member_did() {
        assert_eq!(
            classify(&grpc(Code::Unavailable, "tcp connect error")),
            Failure::NotSent
        );
        assert_eq!(
            classify(&grpc(Code::Unavailable, "etcdserver: no leader")),
            Failure::NoLeader
        );
        for ambiguous in [
            grpc(Code::Unavailable, "etcdserver: request timed out"),
            grpc(
                Code::Unknown,
                "h2 protocol error: error reading a body from connection",
            ),
            grpc(Code::Unavailable, "etcdserver: leader changed"),
            grpc(Code::DeadlineExceeded, "deadline"),
        ] {
            assert_eq!(classify(&ambiguous), Failure::Ambiguous, "{ambiguous}");
        }
        for fin in [
            grpc(Code::NotFound, "etcdserver: requested lease not found"),
            grpc(Code::PermissionDenied, "etcdserver: permission denied"),
            grpc(
                Code::InvalidArgument,
                "etcdserver: too many operations in txn request",
            ),
            grpc(
                Code::ResourceExhausted,
                "etcdserver: mvcc: database space exceeded",
            ),
            grpc(
                Code::OutOfRange,
                "etcdserver: mvcc: required revision has been compacted",
            ),
        ] {
            assert_eq!(classify(&fin), Failure::Final, "{fin}");
        }
    }

    #[test]
    fn writes_are_repeated_only_when_they_surely_did_nothing() {
        use Failure::*;
        use Safety::*;
        assert_eq!(pause(Once, NotSent, 1, 3), Some(Duration::ZERO));
        assert_eq!(pause(Once, NoLeader, 1, 3), Some(PAUSE));
        assert_eq!(pause(Once, Ambiguous, 1, 3), None);
        assert_eq!(pause(Once, Final, 1, 3), None);
        assert_eq!(pause(Repeatable, Ambiguous, 1, 3), Some(PAUSE));
        assert_eq!(pause(Repeatable, Final, 1, 3), None);
        // Instant retries end once every endpoint had two turns.
        assert_eq!(pause(Repeatable, NotSent, 5, 3), Some(Duration::ZERO));
        assert_eq!(pause(Repeatable, NotSent, 6, 3), Some(PAUSE));
        assert_eq!(pause(Once, NotSent, 2, 1), Some(PAUSE));
    }
}
