//! Translation between the coordination contract and `etcd-client` types:
//! compares, txn ops and results, key-values, and errors.
//!
//! Error mapping is by gRPC code first and etcd's message second (etcd puts
//! the precise reason only in the message): anything that may succeed on retry
//! becomes [`CoordError::Unavailable`], so callers can trust
//! [`CoordError::is_transient`].

use crate::api::{
    CmpOp, Compare, CompareTarget, CoordError, KeyValue, LeaseId, Txn, TxnOp, TxnOpResult,
};
use etcd_client as ec;
use tonic::Code;

/// Converts an etcd key-value; a lease id of 0 means "no lease".
pub(super) fn key_value(kv: &ec::KeyValue) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        version: kv.version(),
        lease: (kv.lease() != 0).then_some(LeaseId(kv.lease())),
    }
}

fn compare(c: &Compare) -> ec::Compare {
    let op = match c.op {
        CmpOp::Equal => ec::CompareOp::Equal,
        CmpOp::NotEqual => ec::CompareOp::NotEqual,
        CmpOp::Greater => ec::CompareOp::Greater,
        CmpOp::Less => ec::CompareOp::Less,
    };
    let key = c.key.as_bytes();
    match &c.target {
        CompareTarget::CreateRevision(r) => ec::Compare::create_revision(key, op, *r),
        CompareTarget::ModRevision(r) => ec::Compare::mod_revision(key, op, *r),
        CompareTarget::Version(v) => ec::Compare::version(key, op, *v),
        CompareTarget::Lease(l) => ec::Compare::lease(key, op, *l),
        CompareTarget::Value(v) => ec::Compare::value(key, op, v.clone()),
    }
}

fn txn_op(op: TxnOp) -> ec::TxnOp {
    match op {
        TxnOp::Put { key, value, lease } => ec::TxnOp::put(
            key,
            value,
            lease.map(|l| ec::PutOptions::new().with_lease(l.0)),
        ),
        TxnOp::Delete { key } => ec::TxnOp::delete(key, None),
        TxnOp::DeletePrefix { prefix } => {
            ec::TxnOp::delete(prefix, Some(ec::DeleteOptions::new().with_prefix()))
        }
        TxnOp::Get { key } => ec::TxnOp::get(key, None),
    }
}

/// Builds the etcd txn.
pub(super) fn txn(txn: Txn) -> ec::Txn {
    let compares: Vec<ec::Compare> = txn.compares.iter().map(compare).collect();
    let success: Vec<ec::TxnOp> = txn.success.into_iter().map(txn_op).collect();
    let failure: Vec<ec::TxnOp> = txn.failure.into_iter().map(txn_op).collect();
    ec::Txn::new()
        .when(compares)
        .and_then(success)
        .or_else(failure)
}

/// Converts the results of the branch that ran.
pub(super) fn txn_results(resp: &ec::TxnResponse) -> Vec<TxnOpResult> {
    resp.op_responses()
        .into_iter()
        .map(|r| match r {
            ec::TxnOpResponse::Put(_) => TxnOpResult::Put,
            ec::TxnOpResponse::Delete(d) => TxnOpResult::Delete(d.deleted()),
            ec::TxnOpResponse::Get(g) => TxnOpResult::Get(g.kvs().first().map(key_value)),
            // We never send nested txns.
            ec::TxnOpResponse::Txn(_) => TxnOpResult::Put,
        })
        .collect()
}

/// Maps an etcd-client error. `lease` names the lease the call was about,
/// for [`CoordError::LeaseNotFound`].
pub(super) fn error(e: ec::Error, lease: Option<LeaseId>) -> CoordError {
    let lease_gone = || CoordError::LeaseNotFound(lease.unwrap_or(LeaseId(0)));
    match e {
        ec::Error::GRpcStatus(status) => status_error(&status, lease),
        ec::Error::LeaseKeepAliveError(msg) if msg.contains("lease not found") => lease_gone(),
        ec::Error::InvalidArgs(msg) => CoordError::Invalid(msg),
        ec::Error::InvalidUri(e) => CoordError::Invalid(format!("invalid endpoint: {e}")),
        ec::Error::EndpointError(msg) => CoordError::Invalid(format!("endpoint error: {msg}")),
        ec::Error::InvalidMetadataValue(e) => {
            CoordError::Denied(format!("invalid credentials: {e}"))
        }
        other => CoordError::Unavailable(other.to_string()),
    }
}

fn status_error(status: &tonic::Status, lease: Option<LeaseId>) -> CoordError {
    let msg = status.message();
    let text = format!("{}: {msg}", code_name(status.code()));
    if msg.contains("requested lease not found") || msg.contains("lease not found") {
        return CoordError::LeaseNotFound(lease.unwrap_or(LeaseId(0)));
    }
    if msg.contains("database space exceeded") {
        // The NOSPACE alarm (gRPC ResourceExhausted): distinct from an
        // outage, because only an operator can end it.
        return CoordError::Full(text);
    }
    if msg.contains("required revision has been compacted") {
        // Unary calls do not say which revision; the watch path builds a
        // precise Compacted from the watch response instead.
        return CoordError::Compacted {
            requested: 0,
            compacted: 0,
        };
    }
    if [
        "authentication failed",
        "permission denied",
        "user name is empty",
        "invalid auth token",
    ]
    .iter()
    .any(|m| msg.contains(m))
    {
        // etcd reports a failed login as InvalidArgument: check before codes.
        return CoordError::Denied(text);
    }
    match status.code() {
        Code::InvalidArgument
        | Code::FailedPrecondition
        | Code::OutOfRange
        | Code::Unimplemented => CoordError::Invalid(text),
        Code::PermissionDenied | Code::Unauthenticated => CoordError::Denied(text),
        // Unavailable, DeadlineExceeded (request timed out, leader changed),
        // Cancelled, Unknown, Aborted, ResourceExhausted (other than the
        // NOSPACE alarm above), Internal.
        _ => CoordError::Unavailable(text),
    }
}

fn code_name(code: Code) -> &'static str {
    match code {
        Code::InvalidArgument => "invalid argument",
        Code::FailedPrecondition => "failed precondition",
        Code::OutOfRange => "out of range",
        Code::PermissionDenied => "permission denied",
        Code::Unauthenticated => "unauthenticated",
        Code::Unavailable => "unavailable",
        Code::DeadlineExceeded => "deadline exceeded",
        Code::NotFound => "not found",
        Code::ResourceExhausted => "resource exhausted",
        _ => "grpc error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grpc(code: Code, msg: &str) -> ec::Error {
        ec::Error::GRpcStatus(tonic::Status::new(code, msg))
    }

    #[test]
    fn etcd_errors_map_to_contract_errors() {
        let lease = Some(LeaseId(7));
        assert_eq!(
            error(
                grpc(Code::NotFound, "etcdserver: requested lease not found"),
                lease
            ),
            CoordError::LeaseNotFound(LeaseId(7))
        );
        assert!(matches!(
            error(
                grpc(
                    Code::InvalidArgument,
                    "etcdserver: too many operations in txn request"
                ),
                None
            ),
            CoordError::Invalid(_)
        ));
        assert!(matches!(
            error(
                grpc(
                    Code::OutOfRange,
                    "etcdserver: mvcc: required revision has been compacted"
                ),
                None
            ),
            CoordError::Compacted { .. }
        ));
        assert!(matches!(
            error(
                grpc(
                    Code::InvalidArgument,
                    "etcdserver: authentication failed, invalid user ID or password"
                ),
                None
            ),
            CoordError::Denied(_)
        ));
        assert!(matches!(
            error(
                grpc(Code::PermissionDenied, "etcdserver: permission denied"),
                None
            ),
            CoordError::Denied(_)
        ));
        assert!(error(
            grpc(Code::Unavailable, "etcdserver: request timed out"),
            None
        )
        .is_transient());
        assert!(error(grpc(Code::DeadlineExceeded, "deadline"), None).is_transient());
        assert!(
            error(
                ec::Error::LeaseKeepAliveError("lease not found".into()),
                lease
            ) == CoordError::LeaseNotFound(LeaseId(7))
        );
        assert!(error(ec::Error::WatchError("stream closed".into()), None).is_transient());
        let full = error(
            grpc(
                Code::ResourceExhausted,
                "etcdserver: mvcc: database space exceeded",
            ),
            None,
        );
        assert!(matches!(full, CoordError::Full(_)), "{full:?}");
        assert!(full.is_transient(), "kept and retried until space is freed");
        assert!(full.to_string().contains("defragment"), "{full}");
    }
}
