//! The in-process backend's state machine: keys, revisions, leases and the
//! event history, with etcd's semantics. Synchronous and clock-free (the
//! caller passes `now`), so every rule here is plain data manipulation.
//!
//! Rules copied from etcd v3, because Nightshift's fencing depends on them:
//! - one store revision per write request (put, delete, txn, lease
//!   revocation), however many keys it touches; a request that changes
//!   nothing (delete of a missing key, read-only txn) does not bump it;
//! - a missing key compares as create/mod revision 0, version 0, lease 0, and
//!   any *value* compare against a missing key is false;
//! - at most [`MAX_TXN_OPS`] compares and ops per branch; one key may not be
//!   put twice (or put and deleted) in one branch;
//! - putting with an unknown lease fails with lease-not-found, atomically.

use crate::api::{
    CmpOp, Compare, CompareTarget, CoordError, KeyValue, LeaseId, Revision, Txn, TxnOp,
    TxnOpResult, TxnResponse, WatchEvent,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;
use tokio::time::Instant;

/// etcd's default `--max-txn-ops`.
pub const MAX_TXN_OPS: usize = 128;

/// A live lease.
struct LeaseEntry {
    ttl: Duration,
    deadline: Instant,
    keys: BTreeSet<String>,
}

/// The whole store. Owned by a mutex in [`super::MemoryCoordinator`].
pub(super) struct Store {
    revision: Revision,
    /// Oldest revision whose events are still in `history` (etcd's
    /// compacted revision: watching from below it needs a resync).
    compacted: Revision,
    kvs: BTreeMap<String, KeyValue>,
    leases: HashMap<i64, LeaseEntry>,
    next_lease: i64,
    /// Every event since `compacted`, in revision order, each with the
    /// key's value before it (`None`: it did not exist), so that a read
    /// pinned to a past revision can undo what came after it.
    history: VecDeque<Change>,
    history_limit: usize,
}

/// Events produced by one write, all at the same revision.
pub(super) type Committed = Vec<WatchEvent>;

/// One event of the history and the key's value before it.
struct Change {
    event: WatchEvent,
    before: Option<KeyValue>,
}

impl Store {
    pub(super) fn new(history_limit: usize) -> Self {
        Store {
            revision: 1, // etcd starts at 1 with an empty store
            compacted: 0,
            kvs: BTreeMap::new(),
            leases: HashMap::new(),
            next_lease: 0x1000,
            history: VecDeque::new(),
            history_limit,
        }
    }

    pub(super) fn revision(&self) -> Revision {
        self.revision
    }

    /// See [`super::MemoryCoordinator::advance_to`]: the skipped revisions
    /// have no history, so a watch from below them resyncs.
    pub(super) fn advance_to(&mut self, revision: Revision) {
        if revision > self.revision {
            self.revision = revision;
            self.history.clear();
            self.compacted = revision;
        }
    }

    pub(super) fn compacted(&self) -> Revision {
        self.compacted
    }

    // ---- leases ----

    /// Grants a lease; TTLs are whole seconds (rounded up, at least 1), as
    /// etcd's API only carries seconds.
    pub(super) fn grant(&mut self, ttl: Duration, now: Instant) -> (LeaseId, Duration) {
        let ttl = whole_seconds(ttl);
        self.next_lease += 1;
        let id = self.next_lease;
        self.leases.insert(
            id,
            LeaseEntry {
                ttl,
                deadline: now + ttl,
                keys: BTreeSet::new(),
            },
        );
        (LeaseId(id), ttl)
    }

    pub(super) fn keep_alive(
        &mut self,
        lease: LeaseId,
        now: Instant,
    ) -> Result<Duration, CoordError> {
        let entry = self
            .leases
            .get_mut(&lease.0)
            .ok_or(CoordError::LeaseNotFound(lease))?;
        entry.deadline = now + entry.ttl;
        Ok(entry.ttl)
    }

    pub(super) fn time_to_live(&self, lease: LeaseId, now: Instant) -> Option<Duration> {
        self.leases
            .get(&lease.0)
            .map(|e| e.deadline.saturating_duration_since(now))
    }

    /// Revokes a lease, deleting its keys in one revision.
    pub(super) fn revoke(&mut self, lease: LeaseId) -> Result<Committed, CoordError> {
        let entry = self
            .leases
            .remove(&lease.0)
            .ok_or(CoordError::LeaseNotFound(lease))?;
        let rev = self.revision + 1;
        let mut changes = Vec::new();
        for key in entry.keys {
            if let Some(before) = self.kvs.remove(&key) {
                changes.push(Change {
                    event: WatchEvent::Delete {
                        key,
                        mod_revision: rev,
                    },
                    before: Some(before),
                });
            }
        }
        Ok(self.commit(changes))
    }

    /// Revokes every lease whose deadline has passed, oldest deadline first,
    /// each in its own revision (as etcd's lessor does).
    pub(super) fn expire(&mut self, now: Instant) -> Vec<Committed> {
        let mut due: Vec<(Instant, i64)> = self
            .leases
            .iter()
            .filter(|(_, e)| e.deadline <= now)
            .map(|(id, e)| (e.deadline, *id))
            .collect();
        due.sort();
        due.into_iter()
            .filter_map(|(_, id)| self.revoke(LeaseId(id)).ok())
            .collect()
    }

    /// Earliest lease deadline, for the reaper's timer.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.leases.values().map(|e| e.deadline).min()
    }

    // ---- reads ----

    pub(super) fn get(&self, key: &str) -> Option<KeyValue> {
        self.kvs.get(key).cloned()
    }

    pub(super) fn get_prefix(&self, prefix: &str) -> Vec<KeyValue> {
        self.kvs
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// At most `limit` keys under `prefix` sorting after `after`, as they
    /// were at `revision` (current when `None`), and whether more follow.
    /// A past revision is rebuilt from the current keys by undoing the
    /// history after it; `Err(Compacted)` when that history is gone.
    pub(super) fn get_prefix_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        revision: Option<Revision>,
    ) -> Result<(Vec<KeyValue>, bool), CoordError> {
        let revision = revision.unwrap_or(self.revision);
        if revision > self.revision {
            return Err(CoordError::Invalid(format!(
                "required revision {revision} is a future revision (current {})",
                self.revision
            )));
        }
        // As in etcd, revisions below the compaction cannot be read (the
        // writes after them, which a read has to undo, are kept from
        // `compacted` on).
        if revision < self.compacted {
            return Err(CoordError::Compacted {
                requested: revision,
                compacted: self.compacted,
            });
        }
        let in_page = |key: &str| key.starts_with(prefix) && after.is_none_or(|a| key > a);
        // Each key's value at `revision`: the value before the earliest
        // change after it (walking back, the last one written wins).
        let mut undone: BTreeMap<&str, Option<&KeyValue>> = BTreeMap::new();
        for change in self.history.iter().rev() {
            if change.event.revision() <= revision {
                break;
            }
            let key = event_key(&change.event);
            if in_page(key) {
                undone.insert(key, change.before.as_ref());
            }
        }
        let start = after.unwrap_or(prefix).to_owned();
        let current = self
            .kvs
            .range(start..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(k, _)| in_page(k))
            .filter(|(k, _)| !undone.contains_key(k.as_str()))
            .map(|(k, v)| (k.as_str(), v));
        let mut merged: BTreeMap<&str, &KeyValue> = undone
            .iter()
            .filter_map(|(k, v)| v.map(|v| (*k, v)))
            .collect();
        // Only the first `limit + 1` current keys can reach the page.
        merged.extend(current.take(limit + 1));
        let mut page: Vec<KeyValue> = merged
            .values()
            .take(limit + 1)
            .map(|kv| (*kv).clone())
            .collect();
        let more = page.len() > limit;
        page.truncate(limit);
        Ok((page, more))
    }

    /// Events with revision ≥ `from` under `prefix`, or `None` when `from`
    /// has been compacted away.
    pub(super) fn history_since(&self, prefix: &str, from: Revision) -> Option<Vec<WatchEvent>> {
        if from < self.compacted {
            return None;
        }
        Some(
            self.history
                .iter()
                .map(|c| &c.event)
                .filter(|e| e.revision() >= from && event_key(e).starts_with(prefix))
                .cloned()
                .collect(),
        )
    }

    /// Drops history below `revision`, like etcd's compaction.
    pub(super) fn compact(&mut self, revision: Revision) -> Result<(), CoordError> {
        if revision > self.revision {
            return Err(CoordError::Invalid(format!(
                "compaction revision {revision} is in the future (current {})",
                self.revision
            )));
        }
        if revision <= self.compacted {
            return Err(CoordError::Compacted {
                requested: revision,
                compacted: self.compacted,
            });
        }
        while self
            .history
            .front()
            .is_some_and(|c| c.event.revision() < revision)
        {
            self.history.pop_front();
        }
        self.compacted = revision;
        Ok(())
    }

    // ---- writes ----

    pub(super) fn put(
        &mut self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<Committed, CoordError> {
        self.check_lease(lease)?;
        let rev = self.revision + 1;
        let change = self.apply_put(key, value, lease, rev);
        Ok(self.commit(vec![change]))
    }

    pub(super) fn delete_range(&mut self, key: &str, prefix: bool) -> (i64, Committed) {
        let rev = self.revision + 1;
        let changes = self.apply_delete(key, prefix, rev);
        let n = changes.len() as i64;
        (n, self.commit(changes))
    }

    /// Runs a transaction atomically: validate everything, then apply.
    pub(super) fn txn(&mut self, txn: Txn) -> Result<(TxnResponse, Committed), CoordError> {
        validate_shape(&txn)?;
        let succeeded = txn.compares.iter().all(|c| self.compare_holds(c));
        let ops = if succeeded { txn.success } else { txn.failure };
        for op in &ops {
            if let TxnOp::Put { lease, .. } = op {
                self.check_lease(*lease)?;
            }
        }
        let rev = self.revision + 1;
        let mut changes = Vec::new();
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                TxnOp::Put { key, value, lease } => {
                    changes.push(self.apply_put(&key, value, lease, rev));
                    results.push(TxnOpResult::Put);
                }
                TxnOp::Delete { key } => {
                    let deleted = self.apply_delete(&key, false, rev);
                    results.push(TxnOpResult::Delete(deleted.len() as i64));
                    changes.extend(deleted);
                }
                TxnOp::DeletePrefix { prefix } => {
                    let deleted = self.apply_delete(&prefix, true, rev);
                    results.push(TxnOpResult::Delete(deleted.len() as i64));
                    changes.extend(deleted);
                }
                TxnOp::Get { key } => results.push(TxnOpResult::Get(self.get(&key))),
            }
        }
        let committed = self.commit(changes);
        Ok((
            TxnResponse {
                succeeded,
                revision: self.revision,
                results,
            },
            committed,
        ))
    }

    fn check_lease(&self, lease: Option<LeaseId>) -> Result<(), CoordError> {
        match lease {
            Some(l) if !self.leases.contains_key(&l.0) => Err(CoordError::LeaseNotFound(l)),
            _ => Ok(()),
        }
    }

    fn apply_put(
        &mut self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
        rev: Revision,
    ) -> Change {
        let previous = self.kvs.get(key);
        let old_lease = previous.and_then(|kv| kv.lease);
        let (create_revision, version) =
            previous.map_or((rev, 1), |kv| (kv.create_revision, kv.version + 1));
        if old_lease != lease {
            if let Some(entry) = old_lease.and_then(|l| self.leases.get_mut(&l.0)) {
                entry.keys.remove(key);
            }
        }
        if let Some(entry) = lease.and_then(|l| self.leases.get_mut(&l.0)) {
            entry.keys.insert(key.to_owned());
        }
        let kv = KeyValue {
            key: key.to_owned(),
            value,
            create_revision,
            mod_revision: rev,
            version,
            lease,
        };
        let before = self.kvs.insert(key.to_owned(), kv.clone());
        Change {
            event: WatchEvent::Put(kv),
            before,
        }
    }

    fn apply_delete(&mut self, key: &str, prefix: bool, rev: Revision) -> Vec<Change> {
        let keys: Vec<String> = if prefix {
            self.get_prefix(key).into_iter().map(|kv| kv.key).collect()
        } else {
            self.kvs
                .contains_key(key)
                .then(|| key.to_owned())
                .into_iter()
                .collect()
        };
        keys.into_iter()
            .filter_map(|k| {
                let kv = self.kvs.remove(&k)?;
                if let Some(entry) = kv.lease.and_then(|l| self.leases.get_mut(&l.0)) {
                    entry.keys.remove(&k);
                }
                Some(Change {
                    event: WatchEvent::Delete {
                        key: k,
                        mod_revision: rev,
                    },
                    before: Some(kv),
                })
            })
            .collect()
    }

    /// Records the events of one write: bumps the revision if anything
    /// changed, appends to history and trims it to the limit.
    fn commit(&mut self, changes: Vec<Change>) -> Committed {
        if changes.is_empty() {
            return Vec::new();
        }
        self.revision += 1;
        let events = changes.iter().map(|c| c.event.clone()).collect();
        self.history.extend(changes);
        if self.history.len() > self.history_limit {
            // Compact whole revisions only, so a watcher never resumes in
            // the middle of one.
            let keep_from = self.history[self.history.len() - self.history_limit]
                .event
                .revision();
            // Fails only when one revision alone exceeds the limit: keep it.
            let _ = self.compact(keep_from);
        }
        events
    }

    fn compare_holds(&self, c: &Compare) -> bool {
        let kv = self.kvs.get(&c.key);
        let ord = match (&c.target, kv) {
            (CompareTarget::Value(_), None) => return false,
            (CompareTarget::Value(v), Some(kv)) => kv.value.cmp(v),
            (CompareTarget::CreateRevision(r), kv) => kv.map_or(0, |kv| kv.create_revision).cmp(r),
            (CompareTarget::ModRevision(r), kv) => kv.map_or(0, |kv| kv.mod_revision).cmp(r),
            (CompareTarget::Version(v), kv) => kv.map_or(0, |kv| kv.version).cmp(v),
            (CompareTarget::Lease(l), kv) => kv.and_then(|kv| kv.lease).map_or(0, |l| l.0).cmp(l),
        };
        match c.op {
            CmpOp::Equal => ord.is_eq(),
            CmpOp::NotEqual => ord.is_ne(),
            CmpOp::Greater => ord.is_gt(),
            CmpOp::Less => ord.is_lt(),
        }
    }
}

/// etcd's static checks on a txn: op limits, and no key written twice in a
/// branch (both branches are checked, whichever runs).
fn validate_shape(txn: &Txn) -> Result<(), CoordError> {
    if txn.compares.len() > MAX_TXN_OPS
        || txn.success.len() > MAX_TXN_OPS
        || txn.failure.len() > MAX_TXN_OPS
    {
        return Err(CoordError::Invalid(
            "too many operations in txn request".into(),
        ));
    }
    for branch in [&txn.success, &txn.failure] {
        let mut puts = BTreeSet::new();
        for op in branch.iter() {
            if let TxnOp::Put { key, .. } = op {
                if !puts.insert(key.as_str()) {
                    return Err(CoordError::Invalid(format!(
                        "duplicate key given in txn request: {key}"
                    )));
                }
            }
        }
        for op in branch.iter() {
            let overlaps = match op {
                TxnOp::Delete { key } => puts.contains(key.as_str()),
                TxnOp::DeletePrefix { prefix } => {
                    puts.iter().any(|k| k.starts_with(prefix.as_str()))
                }
                _ => false,
            };
            if overlaps {
                return Err(CoordError::Invalid(
                    "duplicate key given in txn request: put and delete".into(),
                ));
            }
        }
    }
    Ok(())
}

/// The key an event is about (`""` for a resync, which matches any prefix).
pub(super) fn event_key(e: &WatchEvent) -> &str {
    match e {
        WatchEvent::Put(kv) => &kv.key,
        WatchEvent::Delete { key, .. } => key,
        WatchEvent::Resync { .. } => "",
    }
}

fn whole_seconds(ttl: Duration) -> Duration {
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    Duration::from_secs(secs.max(1))
}
