//! The coordination contract: the operations Nightshift needs from a
//! coordination service, shaped after etcd v3 so that the etcd backend is a
//! thin translation and the in-process backend can reproduce the same
//! semantics (revisions, leases, compares, ordered watches).
//!
//! Why this shape: every safety property of Nightshift rests on three etcd
//! features — keys attached to a lease vanish when the lease ends, a txn can
//! compare a key's revisions before writing (fencing), and a watch delivers
//! every change after a revision exactly once and in order. The trait exposes
//! exactly those, and nothing that only one backend could offer.

use async_trait::async_trait;
use futures::stream::BoxStream;
use std::time::Duration;

/// A store-wide revision: every write increments it; each key remembers the
/// revision that created it and the one that last modified it.
pub type Revision = i64;

/// Identity of a lease. Keys put with a lease are deleted when it expires or
/// is revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseId(pub i64);

/// A key with its value and metadata, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// Full key.
    pub key: String,
    /// Raw value (JSON for Nightshift's own records).
    pub value: Vec<u8>,
    /// Revision at which the key was created (0 = does not exist).
    pub create_revision: Revision,
    /// Revision of the last write to the key; Nightshift's fencing token.
    pub mod_revision: Revision,
    /// Number of writes since creation.
    pub version: i64,
    /// Lease the key is attached to, if any.
    pub lease: Option<LeaseId>,
}

/// Comparison operator of a txn compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`
    Equal,
    /// `!=`
    NotEqual,
    /// `>`
    Greater,
    /// `<`
    Less,
}

/// What a txn compare looks at. A missing key has create/mod revision 0,
/// version 0 and lease 0, as in etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompareTarget {
    /// The key's create revision.
    CreateRevision(Revision),
    /// The key's mod revision (the fencing token).
    ModRevision(Revision),
    /// The key's version.
    Version(i64),
    /// The key's lease id (0 = none).
    Lease(i64),
    /// The key's value, compared bytewise.
    Value(Vec<u8>),
}

/// One guard of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    /// Key being compared.
    pub key: String,
    /// Operator.
    pub op: CmpOp,
    /// Field and operand.
    pub target: CompareTarget,
}

impl Compare {
    /// `mod_revision(key) == rev`: the fencing compare.
    pub fn mod_revision(key: impl Into<String>, rev: Revision) -> Self {
        Self {
            key: key.into(),
            op: CmpOp::Equal,
            target: CompareTarget::ModRevision(rev),
        }
    }
    /// `create_revision(key) == rev`; with `rev == 0` it means "key absent".
    pub fn create_revision(key: impl Into<String>, rev: Revision) -> Self {
        Self {
            key: key.into(),
            op: CmpOp::Equal,
            target: CompareTarget::CreateRevision(rev),
        }
    }
    /// The key does not exist.
    pub fn absent(key: impl Into<String>) -> Self {
        Self::create_revision(key, 0)
    }
    /// The key is attached to `lease`.
    pub fn lease(key: impl Into<String>, lease: LeaseId) -> Self {
        Self {
            key: key.into(),
            op: CmpOp::Equal,
            target: CompareTarget::Lease(lease.0),
        }
    }
}

/// One operation inside a transaction branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOp {
    /// Put a key, optionally attached to a lease.
    Put {
        /// Key.
        key: String,
        /// Value.
        value: Vec<u8>,
        /// Lease to attach, if any.
        lease: Option<LeaseId>,
    },
    /// Delete one key.
    Delete {
        /// Key.
        key: String,
    },
    /// Delete every key starting with the prefix.
    DeletePrefix {
        /// Prefix.
        prefix: String,
    },
    /// Read one key.
    Get {
        /// Key.
        key: String,
    },
}

/// A transaction: if every compare holds, run `success`, else `failure`.
/// At most 128 operations per branch (etcd's default limit).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    /// Guards, all of which must hold.
    pub compares: Vec<Compare>,
    /// Operations run when all compares hold.
    pub success: Vec<TxnOp>,
    /// Operations run otherwise.
    pub failure: Vec<TxnOp>,
}

/// Result of one [`TxnOp`], in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOpResult {
    /// A put was applied.
    Put,
    /// A delete removed this many keys.
    Delete(i64),
    /// A get found this key (or nothing).
    Get(Option<KeyValue>),
}

/// Outcome of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnResponse {
    /// Whether the compares held (and `success` ran).
    pub succeeded: bool,
    /// Store revision after the txn.
    pub revision: Revision,
    /// Results of the branch that ran.
    pub results: Vec<TxnOpResult>,
}

/// One page of a prefix read ([`Coordinator::get_prefix_page`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixPage {
    /// Up to `limit` keys, sorted by key.
    pub kvs: Vec<KeyValue>,
    /// Revision the page was read at: the pinned one, or the store's
    /// current revision when none was given.
    pub revision: Revision,
    /// Whether keys past the last one of this page remain under the prefix.
    pub more: bool,
}

/// Page size for a paged read of values of any size: no value is larger
/// than etcd's largest request (1.5 MiB by default), so 40 of them stay
/// under the 64 MiB the etcd backend accepts in one response.
pub const PAGE_KEYS_ANY: usize = 40;

/// Page size for a paged read of values known to stay small (at most
/// 16 KiB each: progress reports, checkpoints, assignment keys read for
/// their names and revisions): 1,000 of them are at most 16 MiB.
pub const PAGE_KEYS_SMALL: usize = 1_000;

/// How many times [`Coordinator::get_prefix_paged`] starts over when the
/// revision its pages are pinned to is compacted between two pages.
const PAGED_READ_ATTEMPTS: usize = 3;

/// The first key after every key starting with `prefix` (etcd's range end
/// for a prefix): the prefix with its last byte below `0xff` incremented
/// and what follows dropped. `None` when no such key exists (an empty
/// prefix, or one of only `0xff` bytes): the range then runs to the end of
/// the keyspace.
pub fn prefix_range_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// A change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// A key was created or updated.
    Put(KeyValue),
    /// A key was deleted (explicitly, or because its lease ended).
    Delete {
        /// Deleted key.
        key: String,
        /// Revision of the delete.
        mod_revision: Revision,
    },
    /// The watch could not resume from where it was (history compacted):
    /// here is the whole current state of the prefix at `revision`. The
    /// consumer must replace what it knew; events after `revision` follow.
    Resync {
        /// Every key under the prefix.
        kvs: Vec<KeyValue>,
        /// Revision the listing was read at.
        revision: Revision,
    },
}

impl WatchEvent {
    /// Revision at which the event happened.
    pub fn revision(&self) -> Revision {
        match self {
            WatchEvent::Put(kv) => kv.mod_revision,
            WatchEvent::Delete { mod_revision, .. } => *mod_revision,
            WatchEvent::Resync { revision, .. } => *revision,
        }
    }
}

/// A supervised stream of watch events. It survives connection loss and
/// backend restarts by resuming from the last delivered revision + 1; it ends
/// only when dropped or on a fatal error.
pub type WatchStream = BoxStream<'static, Result<WatchEvent, CoordError>>;

/// Errors from a coordination backend.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CoordError {
    /// The service could not be reached or did not answer in time; retry.
    #[error("coordination service unavailable: {0}")]
    Unavailable(String),
    /// The lease no longer exists (expired or revoked).
    #[error("lease {0:?} not found (expired or revoked)")]
    LeaseNotFound(LeaseId),
    /// The requested revision has been compacted away.
    #[error("revision {requested} compacted (oldest available {compacted})")]
    Compacted {
        /// Revision asked for.
        requested: Revision,
        /// Compaction revision.
        compacted: Revision,
    },
    /// The request was refused as invalid (too many ops, too large, ...).
    #[error("invalid coordination request: {0}")]
    Invalid(String),
    /// Authentication or permission failure.
    #[error("coordination access denied: {0}")]
    Denied(String),
    /// etcd's database is full (its NOSPACE alarm, "database space
    /// exceeded"): it refuses every write but deletes until an operator
    /// compacts its history, defragments it and disarms the alarm. Reads,
    /// deletes and lease renewals still work.
    #[error(
        "coordination service full: {0}; compact etcd's history, defragment it, then disarm the NOSPACE alarm"
    )]
    Full(String),
}

impl CoordError {
    /// Whether retrying the same call later may succeed. [`CoordError::Full`]
    /// is: writes succeed again as soon as an operator has freed space, so
    /// callers keep what they hold and retry with backoff — but it is never
    /// silent: the scheduler raises a `coordination_full` alert for it.
    pub fn is_transient(&self) -> bool {
        matches!(self, CoordError::Unavailable(_) | CoordError::Full(_))
    }
}

/// What Nightshift needs from a coordination service. Implemented by the etcd
/// backend (production) and the in-process backend (`nightshift dev`,
/// simulation tests); both pass the same conformance suite.
///
/// Prefixes are plain byte prefixes: callers include the trailing `/`.
#[async_trait]
pub trait Coordinator: Send + Sync + 'static {
    /// Grants a lease that expires `ttl` after the last keep-alive.
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, CoordError>;
    /// Refreshes a lease once; returns the TTL it was renewed for.
    /// `Err(LeaseNotFound)` when it has already expired or was revoked.
    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration, CoordError>;
    /// Revokes a lease at once, deleting every key attached to it.
    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), CoordError>;
    /// Remaining time to live of a lease, `None` when it no longer exists.
    async fn lease_time_to_live(&self, lease: LeaseId) -> Result<Option<Duration>, CoordError>;

    /// Puts a key; returns the revision of the write.
    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<Revision, CoordError>;
    /// Reads one key.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, CoordError>;
    /// Reads every key under a prefix, sorted by key, and the revision read
    /// at, in one response. Only for prefixes that cannot grow with the
    /// work (a DAG's jobs, the leader candidates, the executors): a prefix
    /// that can grow with items, results or runs is read with
    /// [`get_prefix_paged`](Self::get_prefix_paged), because one response
    /// is capped (etcd's client refuses a response past its decoding limit).
    async fn get_prefix(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision), CoordError>;
    /// Reads one page of a prefix: at most `limit` keys (at least 1) under
    /// `prefix` that sort strictly after `after` (from the first key when
    /// `None`), sorted by key, as of `revision` (the current revision when
    /// `None`). `Err(Compacted)` when `revision` is older than the oldest
    /// the backend still keeps. etcd: one range request with a limit and a
    /// pinned revision.
    async fn get_prefix_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        revision: Option<Revision>,
    ) -> Result<PrefixPage, CoordError>;
    /// Reads every key under a prefix, like [`get_prefix`](Self::get_prefix),
    /// in pages of at most `page_keys` keys: the first page fixes the
    /// revision and every later page is read at that same revision, so the
    /// result is one consistent snapshot of the prefix (a write between two
    /// pages does not show) however large it is. Returns the keys and that
    /// revision. When the revision is compacted between two pages (etcd's
    /// auto-compaction ran), the read starts over at the current revision,
    /// a few times at most.
    async fn get_prefix_paged(
        &self,
        prefix: &str,
        page_keys: usize,
    ) -> Result<(Vec<KeyValue>, Revision), CoordError> {
        let limit = page_keys.max(1);
        let mut attempt = 0;
        'read: loop {
            attempt += 1;
            let first = self.get_prefix_page(prefix, None, limit, None).await?;
            let revision = first.revision;
            let mut more = first.more;
            let mut kvs = first.kvs;
            while more {
                let Some(after) = kvs.last().map(|kv| kv.key.clone()) else {
                    break;
                };
                match self
                    .get_prefix_page(prefix, Some(&after), limit, Some(revision))
                    .await
                {
                    Ok(page) => {
                        more = page.more;
                        kvs.extend(page.kvs);
                    }
                    Err(CoordError::Compacted { .. }) if attempt < PAGED_READ_ATTEMPTS => {
                        continue 'read
                    }
                    Err(e) => return Err(e),
                }
            }
            return Ok((kvs, revision));
        }
    }
    /// Every key under a prefix without its value (`value` empty; the
    /// revisions and lease kept), as one consistent snapshot like
    /// [`get_prefix_paged`](Self::get_prefix_paged): for a reader that needs
    /// only names and mod revisions (the leader's per-pass listing of every
    /// assignment), so values of any size cost neither the store nor the
    /// wire. The default reads the values and drops them; etcd reads keys
    /// only, in large pages.
    async fn get_prefix_keys(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision), CoordError> {
        let (mut kvs, revision) = self.get_prefix_paged(prefix, PAGE_KEYS_ANY).await?;
        for kv in &mut kvs {
            kv.value = Vec::new();
        }
        Ok((kvs, revision))
    }
    /// Deletes one key; returns how many keys were deleted (0 or 1).
    async fn delete(&self, key: &str) -> Result<i64, CoordError>;
    /// Deletes every key under a prefix; returns how many were deleted.
    async fn delete_prefix(&self, prefix: &str) -> Result<i64, CoordError>;
    /// Runs a transaction atomically.
    async fn txn(&self, txn: Txn) -> Result<TxnResponse, CoordError>;
    /// Current store revision.
    async fn current_revision(&self) -> Result<Revision, CoordError>;

    /// Watches every key under `prefix`, delivering each change with a
    /// revision ≥ `start_revision` (or only future changes when `None`)
    /// exactly once and in revision order, across reconnects.
    async fn watch_prefix(
        &self,
        prefix: &str,
        start_revision: Option<Revision>,
    ) -> Result<WatchStream, CoordError>;
}

#[cfg(test)]
mod tests {
    use super::prefix_range_end;

    #[test]
    fn prefix_range_end_is_the_first_key_after_the_prefix() {
        assert_eq!(prefix_range_end(b"/p/"), Some(b"/p0".to_vec()));
        assert_eq!(prefix_range_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_range_end(b"a\xff\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_range_end(b"\xff"), None);
        assert_eq!(prefix_range_end(b""), None);
    }
}
