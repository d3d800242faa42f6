//! Leader election, written once over `Arc<dyn Coordinator>` (etcd's
//! election recipe, as in `clientv3/concurrency`).
//!
//! Each candidate puts `prefix + lease-id-hex` attached to its own lease; the
//! candidate whose key has the lowest create revision leads. A candidate
//! waits for the deletion of the key just before its own (no polling, no
//! thundering herd), then re-checks. A leader stays leader exactly as long
//! as its key exists with the create revision it won with, which is what
//! [`Leadership::fence`] compares: every leader write carries that compare,
//! so once the key is gone (lease expired or revoked, resignation) a deposed
//! leader's writes fail atomically.
//!
//! Why not etcd's native election API (`v3election`)? It exists only in etcd:
//! implementing the recipe over the [`Coordinator`] trait gives one
//! implementation that runs — and is tested by the same conformance suite —
//! on both the etcd and the in-process backend, and it needs nothing beyond
//! leases, compares and watches, which the contract already guarantees.
//!
//! Lease ids are written as 16 hex digits, so every candidate key has the
//! same length and a prefix watch on one key sees only that key.

use crate::api::{
    Compare, CoordError, Coordinator, KeyValue, LeaseId, Revision, Txn, TxnOp, TxnOpResult,
    WatchEvent,
};
use futures::stream::BoxStream;
use futures::StreamExt;
use std::collections::BTreeMap;
use std::sync::Arc;

/// An election among holders of leases, under one key prefix.
#[derive(Clone)]
pub struct Election {
    coord: Arc<dyn Coordinator>,
    prefix: String,
}

/// Won leadership. Valid while the key exists with `create_revision`.
#[derive(Clone)]
pub struct Leadership {
    coord: Arc<dyn Coordinator>,
    key: String,
    create_revision: Revision,
    lease: LeaseId,
}

impl Election {
    /// An election under `prefix` (include the trailing `/`, e.g.
    /// `/nightshift/leader/`).
    pub fn new(coord: Arc<dyn Coordinator>, prefix: impl Into<String>) -> Self {
        Election {
            coord,
            prefix: prefix.into(),
        }
    }

    /// The election's key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key a candidate holding `lease` campaigns with.
    pub fn candidate_key(&self, lease: LeaseId) -> String {
        format!("{}{:016x}", self.prefix, lease.0)
    }

    /// Becomes a candidate with `value` (e.g. the node's address), attached to
    /// `lease`, and waits until elected. Campaigning again with the same
    /// lease reuses the existing candidacy (updating its value).
    ///
    /// Fails with [`CoordError::LeaseNotFound`] if the lease ends (and with it
    /// the candidacy) before election. Cancelling the future leaves the
    /// candidacy in place until the lease ends: revoke the lease to withdraw.
    pub async fn campaign(&self, value: Vec<u8>, lease: LeaseId) -> Result<Leadership, CoordError> {
        let key = self.candidate_key(lease);
        let create_revision = self.declare(&key, value, lease).await?;
        self.wait_for_turn(&key, create_revision, lease).await?;
        Ok(Leadership {
            coord: self.coord.clone(),
            key,
            create_revision,
            lease,
        })
    }

    /// The current leader's key-value, `None` when there is no candidate.
    pub async fn leader(&self) -> Result<Option<KeyValue>, CoordError> {
        let (kvs, _) = self.coord.get_prefix(&self.prefix).await?;
        Ok(kvs.into_iter().min_by_key(|kv| kv.create_revision))
    }

    /// The current leader, then every change of leader (or of its value).
    /// `None` means no candidate at all.
    pub async fn observe(
        &self,
    ) -> Result<BoxStream<'static, Result<Option<KeyValue>, CoordError>>, CoordError> {
        let (kvs, revision) = self.coord.get_prefix(&self.prefix).await?;
        let events = self
            .coord
            .watch_prefix(&self.prefix, Some(revision + 1))
            .await?;
        let candidates: BTreeMap<String, KeyValue> =
            kvs.into_iter().map(|kv| (kv.key.clone(), kv)).collect();
        let first = leader_of(&candidates);
        let state = Observer {
            events,
            candidates,
            last: first.clone(),
            done: false,
        };
        let changes = futures::stream::unfold(state, |mut s| async move {
            let item = s.next_change().await?;
            Some((item, s))
        });
        Ok(futures::stream::once(async move { Ok(first) })
            .chain(changes)
            .boxed())
    }

    /// Puts the candidate key unless it exists; returns its create revision.
    async fn declare(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: LeaseId,
    ) -> Result<Revision, CoordError> {
        let put = TxnOp::Put {
            key: key.to_owned(),
            value: value.clone(),
            lease: Some(lease),
        };
        let resp = self
            .coord
            .txn(Txn {
                compares: vec![Compare::absent(key)],
                success: vec![put.clone()],
                failure: vec![TxnOp::Get {
                    key: key.to_owned(),
                }],
            })
            .await?;
        if resp.succeeded {
            return Ok(resp.revision);
        }
        let existing = match resp.results.first() {
            Some(TxnOpResult::Get(Some(kv))) => kv.clone(),
            _ => {
                return Err(CoordError::Unavailable(
                    "election key vanished during campaign; retry".into(),
                ))
            }
        };
        if existing.lease != Some(lease) {
            return Err(CoordError::Invalid(format!(
                "election key {key} is attached to another lease"
            )));
        }
        if existing.value != value {
            let fence = Compare::create_revision(key, existing.create_revision);
            let updated = self
                .coord
                .txn(Txn {
                    compares: vec![fence],
                    success: vec![put],
                    failure: vec![],
                })
                .await?;
            if !updated.succeeded {
                return Err(CoordError::LeaseNotFound(lease));
            }
        }
        Ok(existing.create_revision)
    }

    /// Waits until no candidate key older than ours remains.
    async fn wait_for_turn(
        &self,
        key: &str,
        mine: Revision,
        lease: LeaseId,
    ) -> Result<(), CoordError> {
        loop {
            let (kvs, revision) = self.coord.get_prefix(&self.prefix).await?;
            if !kvs
                .iter()
                .any(|kv| kv.key == key && kv.create_revision == mine)
            {
                return Err(CoordError::LeaseNotFound(lease));
            }
            let Some(before) = kvs
                .iter()
                .filter(|kv| kv.create_revision < mine)
                .max_by_key(|kv| kv.create_revision)
            else {
                return Ok(());
            };
            // Watch the whole prefix, not just `before`: our own key may
            // vanish too (lease expired while waiting), and then we must stop.
            let mut events = self
                .coord
                .watch_prefix(&self.prefix, Some(revision + 1))
                .await?;
            loop {
                match events.next().await {
                    Some(Ok(WatchEvent::Delete { key: gone, .. }))
                        if gone == before.key || gone == key =>
                    {
                        break
                    }
                    Some(Ok(WatchEvent::Resync { .. })) => break,
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(e),
                    None => return Err(CoordError::Unavailable("election watch ended".into())),
                }
            }
        }
    }
}

impl std::fmt::Debug for Election {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Election")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Leadership {
    /// The leader key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Create revision of the leader key: identifies this term of leadership.
    pub fn create_revision(&self) -> Revision {
        self.create_revision
    }

    /// The lease the leadership is bound to.
    pub fn lease(&self) -> LeaseId {
        self.lease
    }

    /// The compare every leader write must carry: the leader key still
    /// exists with this term's create revision. A deposed leader's txn fails.
    pub fn fence(&self) -> Compare {
        Compare::create_revision(self.key.clone(), self.create_revision)
    }

    /// Whether this leadership still holds (one read).
    pub async fn is_current(&self) -> Result<bool, CoordError> {
        Ok(self
            .coord
            .get(&self.key)
            .await?
            .is_some_and(|kv| kv.create_revision == self.create_revision))
    }

    /// Replaces the leader value, fenced; `false` if no longer leader.
    pub async fn proclaim(&self, value: Vec<u8>) -> Result<bool, CoordError> {
        let put = TxnOp::Put {
            key: self.key.clone(),
            value,
            lease: Some(self.lease),
        };
        let resp = self
            .coord
            .txn(Txn {
                compares: vec![self.fence()],
                success: vec![put],
                failure: vec![],
            })
            .await?;
        Ok(resp.succeeded)
    }

    /// Gives up leadership by deleting the leader key (fenced, so it never
    /// deletes a later term's key). The lease itself is left alone.
    pub async fn resign(self) -> Result<(), CoordError> {
        let delete = TxnOp::Delete {
            key: self.key.clone(),
        };
        self.coord
            .txn(Txn {
                compares: vec![self.fence()],
                success: vec![delete],
                failure: vec![],
            })
            .await?;
        Ok(())
    }

    /// Resolves once this leadership has ended (leader key deleted, e.g. by
    /// lease expiry). An `Err` means the watch failed and the state is
    /// unknown: treat it as lost.
    pub async fn lost(&self) -> Result<(), CoordError> {
        let (kvs, revision) = self.coord.get_prefix(&self.key).await?;
        if !kvs
            .iter()
            .any(|kv| kv.key == self.key && kv.create_revision == self.create_revision)
        {
            return Ok(());
        }
        let mut events = self
            .coord
            .watch_prefix(&self.key, Some(revision + 1))
            .await?;
        loop {
            match events.next().await {
                Some(Ok(WatchEvent::Delete { key, .. })) if key == self.key => return Ok(()),
                Some(Ok(WatchEvent::Resync { kvs, .. }))
                    if !kvs.iter().any(|kv| {
                        kv.key == self.key && kv.create_revision == self.create_revision
                    }) =>
                {
                    return Ok(())
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e),
                None => return Err(CoordError::Unavailable("leadership watch ended".into())),
            }
        }
    }
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership")
            .field("key", &self.key)
            .field("create_revision", &self.create_revision)
            .field("lease", &self.lease)
            .finish()
    }
}

fn leader_of(candidates: &BTreeMap<String, KeyValue>) -> Option<KeyValue> {
    candidates
        .values()
        .min_by_key(|kv| kv.create_revision)
        .cloned()
}

/// State of an [`Election::observe`] stream: the candidates as last seen.
struct Observer {
    events: crate::api::WatchStream,
    candidates: BTreeMap<String, KeyValue>,
    last: Option<KeyValue>,
    done: bool,
}

impl Observer {
    async fn next_change(&mut self) -> Option<Result<Option<KeyValue>, CoordError>> {
        if self.done {
            return None;
        }
        loop {
            match self.events.next().await? {
                Ok(WatchEvent::Put(kv)) => {
                    self.candidates.insert(kv.key.clone(), kv);
                }
                Ok(WatchEvent::Delete { key, .. }) => {
                    self.candidates.remove(&key);
                }
                Ok(WatchEvent::Resync { kvs, .. }) => {
                    self.candidates = kvs.into_iter().map(|kv| (kv.key.clone(), kv)).collect();
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
            let leader = leader_of(&self.candidates);
            if leader != self.last {
                self.last = leader.clone();
                return Some(Ok(leader));
            }
        }
    }
}
