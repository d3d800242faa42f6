//! Committing what a pass decided about one run so that no outcome is lost
//! and no job start is half-visible, whatever etcd answers.
//!
//! Three rules, each against a failure seen in review (issue 13):
//!
//! - **Every txn touching a run compares the run's record revision**
//!   (`mod_revision` of `runs/{run}/state`, the record's head, kept with the
//!   leader's copy), not only the leadership fence. The record is stored as
//!   many values (`record_values`: head, job states, item sets, owners);
//!   a commit writes only the values whose bytes changed, deletes those
//!   that disappeared, and always rewrites the head with them, so that the
//!   head's revision moves with every change of the run. When a commit fails for any reason — a
//!   refused compare, an error, or an answer that never came although the
//!   txn may have committed (`Unavailable` after an etcd leader change or a
//!   timeout) — the leader drops its copy and reads the record again
//!   (etcd reads are linearizable) before deciding anything more about the
//!   run. A stale copy can therefore never overwrite a newer record.
//! - **Consumed result batches are deleted only with, or after, the record
//!   that absorbed them.** They ride in the record's txn while it has room,
//!   else in later txns once the record is confirmed. If the record's txn
//!   committed without our knowing, the reload shows the outcomes applied
//!   and the batches are either gone (same txn) or re-read next pass, where
//!   orchestration ignores an `(item, attempt)` it already applied. If it
//!   did not commit, the batches are still there. Nothing is lost or
//!   applied twice either way.
//! - **A job start becomes visible in one txn, at any size.** Its
//!   assignments carry a generation and are *staged* first, in as many txns
//!   as they need; executors run nothing of them until the job's spec names
//!   that generation. The spec is written in the record's txn (the
//!   activation). A leader that dies between the staged txns and the
//!   activation leaves assignments no spec activates; the run's record
//!   still shows the job unstarted, and the next start (by any leader)
//!   deletes or overwrites them before activating its own generation
//!   ([`orphans`]). Generations are the etcd revision the pass read its
//!   assignments at, so a later start's generation is above every staged
//!   one before it: an orphan is never activated by mistake.
//!
//!   A start's owner values (`runs/{run}/jobs/{job}/owners/{executor}`)
//!   carry its generation and are staged like its assignments when they do
//!   not fit in the record's txn: a reader ignores an owner value whose
//!   generation is not its job's, and the next commit deletes it.
//!
//! What stays non-atomic: rewrites of *running* jobs' assignments (retries,
//! failover, cancels) and of their record values (owners, item sets) share
//! the record's txn, but when they exceed a txn the overflow is committed
//! before it, the head and job states last (README "Limits").

use super::{Leader, LeaderError, LiveRun};
use crate::record::{self, RunRecord};
use crate::record_values;
use nightshift_coord::{Compare, CoordError, Revision, TxnOp};
use nightshift_core::ids::{ExecutorId, JobName, RunId};
use nightshift_core::keyspace;
use nightshift_core::state::JobState;
use std::collections::{BTreeMap, BTreeSet};

/// A run's writes of one pass, by when they may take effect.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct RunOps {
    /// Invisible until activated, and harmless if never activated: new
    /// starts' assignments (their generation is on no spec yet), deletes of
    /// orphaned assignments, last-assignment records.
    pub staged: Vec<TxnOp>,
    /// The activations: specs naming the new generations. They must commit
    /// with the record.
    pub activate: Vec<TxnOp>,
    /// Rewrites of running jobs' assignments; with the record when they fit.
    pub rewrites: Vec<TxnOp>,
    /// Safe only once the record is committed, and safe to repeat (the next
    /// pass derives them again): deletes of consumed result batches and of
    /// terminal jobs' assignments.
    pub after: Vec<TxnOp>,
    /// The commit deletes the record (the run is finished): it is not
    /// written, only compared.
    pub deletes_record: bool,
}

/// The txns that must commit before a run's record, when its writes do
/// not fit in one txn with the record: the staged ops, then rewrites that
/// do not fit beside the record and the activations (with a warning: those
/// are not atomic with the record). Each is guarded by the fence and the
/// record's revision, which none of them changes. Returns them cut into
/// txns of at most `max` ops, and what is left for [`record_txn`].
pub(super) fn before_record(
    ops: RunOps,
    max: usize,
    record_slots: usize,
) -> (Vec<Vec<TxnOp>>, RunOps) {
    let max = max.max(2);
    let RunOps {
        mut staged,
        activate,
        mut rewrites,
        after,
        deletes_record,
    } = ops;
    // Slots for the record's head and job states, whether or not they
    // changed.
    let core = activate.len() + rewrites.len() + record_slots;
    if staged.len() + core <= max {
        // Everything fits in the record's txn: no staging at all.
        let rest = RunOps {
            staged,
            activate,
            rewrites,
            after,
            deletes_record,
        };
        return (Vec::new(), rest);
    }
    let room = max.saturating_sub(activate.len() + record_slots);
    if rewrites.len() > room {
        let overflow = rewrites.len() - room;
        tracing::warn!(
            overflow,
            "assignment rewrites exceed one txn; some commit before the run record"
        );
        staged.extend(rewrites.drain(..overflow));
    }
    let rest = RunOps {
        staged: Vec::new(),
        activate,
        rewrites,
        after,
        deletes_record,
    };
    (chunks(staged, max), rest)
}

/// The txn carrying the record (if it changed), the activations, the
/// rewrites and the staged ops that fit with them, filled up with `after`
/// ops; then the rest of `after` cut into txns. The first is the commit
/// point; the others follow it, guarded by the fence only.
pub(super) fn record_txn(
    rest: RunOps,
    record: Vec<TxnOp>,
    max: usize,
) -> (Vec<TxnOp>, Vec<Vec<TxnOp>>) {
    let max = max.max(record.len() + 1);
    let mut last = rest.staged;
    last.extend(rest.activate);
    last.extend(rest.rewrites);
    last.extend(record);
    let room = max.saturating_sub(last.len());
    let mut after = rest.after.into_iter();
    last.extend(after.by_ref().take(room));
    (last, chunks(after.collect(), max))
}

fn chunks(ops: Vec<TxnOp>, max: usize) -> Vec<Vec<TxnOp>> {
    let mut out = Vec::new();
    let mut ops = ops.into_iter().peekable();
    while ops.peek().is_some() {
        out.push(ops.by_ref().take(max).collect());
    }
    out
}

/// Whether `key` is the run's commit log (marker or chunk).
fn is_log_key(prefix: &str, key: &str) -> bool {
    matches!(
        keyspace::parse_run_value_key(prefix, key),
        Some(keyspace::RunValueKey::Wal(_) | keyspace::RunValueKey::WalChunk(..))
    )
}

fn op_key(op: &TxnOp) -> &str {
    match op {
        TxnOp::Put { key, .. } | TxnOp::Delete { key } | TxnOp::Get { key } => key,
        TxnOp::DeletePrefix { prefix } => prefix,
    }
}

/// Value text a log chunk holds at most: with its JSON escaping a chunk
/// stays under the 256 KiB every value the leader writes is held to.
const LOG_CHUNK_BYTES: usize = 160 * 1024;

/// Whether `op` puts an owner value of a generation its job's committed
/// state (in `written`) does not name: a start not yet activated.
fn is_new_start_owner(prefix: &str, written: &BTreeMap<String, Vec<u8>>, op: &TxnOp) -> bool {
    let TxnOp::Put { key, value, .. } = op else {
        return false;
    };
    let Some(keyspace::RunValueKey::Owner(run, job, _)) =
        keyspace::parse_run_value_key(prefix, key)
    else {
        return false;
    };
    let Ok(owner) = keyspace::decode::<record_values::OwnerValue>(value) else {
        return false;
    };
    let committed = written
        .get(&keyspace::job_state_key(prefix, &run, &job))
        .and_then(|v| keyspace::decode::<record_values::JobHead>(v).ok())
        .and_then(|head| head.generation);
    owner.generation.is_some() && owner.generation != committed
}

/// `ops` (value puts and deletes) as log chunks of at most
/// [`LOG_CHUNK_BYTES`] of value text each.
fn log_chunks(ops: &[TxnOp]) -> Result<Vec<record_values::WalChunk>, LeaderError> {
    let mut out = vec![record_values::WalChunk::default()];
    let mut size = 0;
    for op in ops {
        let (key, value) = match op {
            TxnOp::Put { key, value, .. } => {
                let text = String::from_utf8(value.clone()).map_err(|_| {
                    LeaderError::Record(keyspace::RecordError::Malformed {
                        kind: "run commit log",
                        message: format!("{key}: a value is not UTF-8 text"),
                    })
                })?;
                (key.clone(), Some(text))
            }
            TxnOp::Delete { key } => (key.clone(), None),
            other => (op_key(other).to_owned(), None),
        };
        let len = key.len() + value.as_ref().map_or(0, String::len);
        if size + len > LOG_CHUNK_BYTES && size > 0 {
            out.push(record_values::WalChunk::default());
            size = 0;
        }
        size += len;
        if let Some(last) = out.last_mut() {
            last.ops.push((key, value));
        }
    }
    Ok(out)
}

/// The ops that bring the run's values from `written` to `wanted`
/// ([`record_values::diff`]), split in two: those for the record's txn —
/// the head (always, when anything changed: every change moves the head's
/// revision), the job states, then as many others as fit beside `rest` —
/// and the others, cut into txns that commit before it.
pub(super) fn value_ops(
    prefix: &str,
    written: &BTreeMap<String, Vec<u8>>,
    wanted: &BTreeMap<String, Vec<u8>>,
    max: usize,
    rest: &RunOps,
) -> (Vec<TxnOp>, Vec<Vec<TxnOp>>) {
    let (mut puts, deletes) = record_values::diff(written, wanted);
    if puts.is_empty() && deletes.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let is_core = |key: &str| {
        matches!(
            keyspace::parse_run_value_key(prefix, key),
            Some(keyspace::RunValueKey::Head(_) | keyspace::RunValueKey::Job(..))
        )
    };
    let head_changed = puts.iter().any(|(k, _)| {
        matches!(
            keyspace::parse_run_value_key(prefix, k),
            Some(keyspace::RunValueKey::Head(_))
        )
    });
    if !head_changed {
        if let Some((key, value)) = wanted.iter().find(|(k, _)| {
            matches!(
                keyspace::parse_run_value_key(prefix, k),
                Some(keyspace::RunValueKey::Head(_))
            )
        }) {
            puts.push((key.clone(), value.clone()));
        }
    }
    let put = |(key, value): (String, Vec<u8>)| TxnOp::Put {
        key,
        value,
        lease: None,
    };
    let (core, others): (Vec<_>, Vec<_>) = puts.into_iter().partition(|(k, _)| is_core(k));
    let mut record: Vec<TxnOp> = core.into_iter().map(put).collect();
    let mut others: Vec<TxnOp> = others
        .into_iter()
        .map(put)
        .chain(deletes.into_iter().map(|key| TxnOp::Delete { key }))
        .collect();
    let used = rest.staged.len() + rest.activate.len() + rest.rewrites.len() + record.len();
    let room = max.saturating_sub(used).min(others.len());
    // The last ones ride with the head; the first ones go before it.
    record.extend(others.split_off(others.len() - room));
    (record, chunks(others, max))
}

/// Assignment keys of `(run, job)` present in etcd that a start of the job
/// must delete before it activates: every key of an executor the start
/// does not assign to (an earlier start's leftovers, or orphans staged by a
/// leader that died before activating them). Keys of executors it assigns
/// to are overwritten in place instead (etcd refuses a txn that deletes
/// and puts the same key).
pub(super) fn orphans(
    present: &BTreeMap<ExecutorId, i64>,
    assigned: &BTreeSet<ExecutorId>,
) -> Vec<ExecutorId> {
    present
        .keys()
        .filter(|e| !assigned.contains(*e))
        .cloned()
        .collect()
}

/// Jobs of a run that hold assignment keys although the record shows them
/// unstarted: staged by a start that was never activated. Their keys are
/// deleted so their executors stop waiting for an activation that will
/// not come (a start of the job would delete or overwrite them anyway).
pub(super) fn unactivated_jobs<'a>(
    rec: &'a RunRecord,
    keys_of: impl Fn(&JobName) -> bool + 'a,
) -> impl Iterator<Item = &'a JobName> + 'a {
    rec.jobs
        .iter()
        .filter(|(_, j)| matches!(j.state, JobState::Pending | JobState::Waiting))
        .map(|(n, _)| n)
        .filter(move |n| keys_of(n))
}

impl Leader {
    /// Commits one run's writes: [`before_record`], then [`record_txn`].
    /// `rec` is the record as the pass left it; `committed` sees each
    /// committed txn's ops and revision — the staged ones before the record
    /// is encoded (so tokens of staged assignments go into it), the
    /// record's own after it. On any failure before
    /// the record's txn is confirmed the run is reloaded from etcd and the
    /// error returned. Returns the record txn's revision, if one ran.
    pub(super) async fn commit_run(
        &mut self,
        run: &RunId,
        ops: RunOps,
        rec: &mut RunRecord,
        mut committed: impl FnMut(&mut RunRecord, &[TxnOp], Revision),
    ) -> Result<Option<Revision>, LeaderError> {
        let Some(live) = self.runs.get(run) else {
            return Ok(None);
        };
        let prefix = self.config.prefix.clone();
        let state_key = record::run_state_key(&prefix, run);
        let guard = [Compare::mod_revision(state_key.clone(), live.revision)];
        let max = self.fenced.max_ops;
        let deletes_record = ops.deletes_record;
        // The head, the log marker and the job states that change go in the record's txn
        // (a job state names its start's generation: it must commit with
        // the activation). Job states hold no tokens, so which change is
        // known before the staged txns.
        let record_slots = 2 + record_values::job_states(&prefix, rec)?
            .into_iter()
            .filter(|(k, v)| live.written.get(k) != Some(v))
            .count();
        let (staged, rest) = before_record(ops, max, record_slots);
        for chunk in staged {
            let resp = self.fenced.txn(&guard, chunk.clone()).await;
            let rev = self.judge(run, resp).await?;
            committed(rec, &chunk, rev);
            if let Some(hook) = &self.config.test_hooks.after_staged_txn {
                hook();
            }
        }
        // Encoded after the staged txns: their tokens are in it.
        let wanted = if deletes_record {
            BTreeMap::new()
        } else {
            record_values::encode_run(&prefix, rec)?
        };
        // One slot of the record's txn is kept for the commit log's marker.
        let (record_ops, overflow, old_log) = match self.runs.get(run) {
            Some(live) if !deletes_record => {
                let (record_ops, overflow) = value_ops(
                    &prefix,
                    &live.written,
                    &wanted,
                    max.saturating_sub(1).max(2),
                    &rest,
                );
                let old_log: Vec<String> = live
                    .written
                    .keys()
                    .filter(|k| is_log_key(&prefix, k))
                    .cloned()
                    .collect();
                (record_ops, overflow, old_log)
            }
            _ => (Vec::new(), Vec::new(), Vec::new()),
        };
        // Values that do not fit beside the head (owners, item sets of a
        // large job) are logged: written as chunks before the head's txn,
        // named by a marker in it, applied in place after it. A reader
        // applies a marked log over what it reads, so the run is seen
        // before or after the commit, never half-way (see `record_values`).
        let mut record_ops: Vec<TxnOp> = record_ops
            .into_iter()
            .filter(|op| !is_log_key(&prefix, op_key(op)))
            .collect();
        let overflow: Vec<TxnOp> = overflow
            .into_iter()
            .flatten()
            .filter(|op| !is_log_key(&prefix, op_key(op)))
            .collect();
        // A new start's owner values need no log: they carry its
        // generation, which no reader takes for the job's until the
        // record's txn names it, so they are staged before it like the
        // start's assignments (and a start that never commits leaves only
        // values the next commit deletes).
        let (staged_owners, overflow): (Vec<TxnOp>, Vec<TxnOp>) = match self.runs.get(run) {
            Some(live) => overflow
                .into_iter()
                .partition(|op| is_new_start_owner(&prefix, &live.written, op)),
            None => (Vec::new(), overflow),
        };
        for chunk in chunks(staged_owners, max) {
            let resp = self.fenced.txn(&guard, chunk).await;
            self.judge(run, resp).await?;
        }
        let marker_key = keyspace::run_wal_key(&prefix, run);
        let mut cleanup: Vec<TxnOp> = old_log
            .iter()
            .filter(|k| **k != marker_key)
            .map(|k| TxnOp::Delete { key: k.clone() })
            .collect();
        if !overflow.is_empty() {
            let tag = self.runs.get(run).map_or(0, |l| l.revision);
            let logged = log_chunks(&overflow)?;
            let chunks = u32::try_from(logged.len()).unwrap_or(u32::MAX);
            for (n, chunk) in (0..chunks).zip(logged) {
                let key = keyspace::run_wal_chunk_key(&prefix, run, tag, n);
                let op = TxnOp::Put {
                    key: key.clone(),
                    value: keyspace::encode(&chunk)?,
                    lease: None,
                };
                let resp = self.fenced.txn(&guard, vec![op]).await;
                self.judge(run, resp).await?;
                if !old_log.contains(&key) {
                    cleanup.push(TxnOp::Delete { key });
                }
            }
            record_ops.push(TxnOp::Put {
                key: marker_key.clone(),
                value: keyspace::encode(&record_values::WalMarker { tag, chunks })?,
                lease: None,
            });
            cleanup.push(TxnOp::Delete {
                key: marker_key.clone(),
            });
        } else if old_log.contains(&marker_key) && !record_ops.is_empty() {
            // A loaded run's log is written in place by this commit: its
            // marker goes with it, or readers would apply the old log
            // over newer values.
            record_ops.push(TxnOp::Delete {
                key: marker_key.clone(),
            });
        }
        let changed = !record_ops.is_empty();
        let (last, after) = record_txn(rest, record_ops, max);
        let mut record_revision = None;
        if !last.is_empty() {
            let resp = self.fenced.txn(&guard, last.clone()).await;
            let rev = self.judge(run, resp).await?;
            record_revision = Some(rev);
            if let Some(live) = self.runs.get_mut(run) {
                if changed {
                    live.revision = rev;
                }
                live.written = wanted;
            }
            committed(rec, &last, rev);
            if !overflow.is_empty() {
                if let Some(hook) = &self.config.test_hooks.after_logged_head {
                    hook();
                }
            }
            // The log in place, then the log gone; a failure reloads the
            // run, whose read still applies the log.
            let guard = [Compare::mod_revision(state_key.clone(), rev)];
            for chunk in chunks(overflow, max)
                .into_iter()
                .chain(chunks(cleanup, max))
            {
                let resp = self.fenced.txn(&guard, chunk).await;
                self.judge(run, resp).await?;
            }
        }
        // The record is confirmed: what follows only removes what it made
        // useless, and the next pass does it again if this fails.
        for chunk in after {
            match self.fenced.txn(&[], chunk).await {
                Ok(resp) if resp.succeeded => {}
                Ok(_) => return Err(LeaderError::Deposed),
                Err(e) => {
                    tracing::warn!(run = %run, error = %e, "deleting consumed keys failed; the next pass retries");
                    break;
                }
            }
        }
        Ok(record_revision)
    }

    /// Creates a run: `ops` (its record first) in one txn guarded by the
    /// fence and the record's absence. Returns the record's revision, or
    /// `None` when the run exists already (then it is loaded: a creation
    /// that went unanswered may have committed). On an error the run is
    /// loaded too if its record is there.
    pub(super) async fn commit_new_run(
        &mut self,
        run: &RunId,
        ops: Vec<TxnOp>,
    ) -> Result<Option<Revision>, LeaderError> {
        let key = record::run_state_key(&self.config.prefix, run);
        match self.fenced.txn(&[Compare::absent(key)], ops).await {
            Ok(r) if r.succeeded => Ok(Some(r.revision)),
            Ok(_) => {
                self.reload_run(run).await;
                self.fenced.check().await?;
                tracing::info!(run = %run, "the run exists already; loaded it");
                Ok(None)
            }
            Err(e) => {
                self.reload_run(run).await;
                Err(e.into())
            }
        }
    }

    /// The verdict on one guarded txn of `run`: its revision, or — after
    /// dropping and reloading the run — the error.
    async fn judge(
        &mut self,
        run: &RunId,
        resp: Result<nightshift_coord::TxnResponse, CoordError>,
    ) -> Result<Revision, LeaderError> {
        match resp {
            Ok(r) if r.succeeded => Ok(r.revision),
            Ok(_) => {
                // The fence or the record's revision: either way the copy
                // goes (first, so that a failing check cannot keep it).
                self.reload_run(run).await;
                self.fenced.check().await?;
                tracing::warn!(run = %run, "the run's record changed under this leader; reloaded it");
                Err(LeaderError::RunChanged(run.clone()))
            }
            Err(e) => {
                tracing::warn!(run = %run, error = %e, "a commit of the run failed or went unanswered; reloading it");
                self.reload_run(run).await;
                Err(e.into())
            }
        }
    }

    /// Drops the leader's copy of `run` and reads it again. The run is
    /// removed when its record is gone (a commit that ended it went
    /// unanswered), and left marked stale when the read fails.
    pub(super) async fn reload_run(&mut self, run: &RunId) {
        if let Some(live) = self.runs.get_mut(run) {
            live.stale = true;
        }
        let prefix = self.config.prefix.clone();
        // All the run's values in one read at one revision (the same
        // reader the CLI uses).
        let (kvs, _) = match self
            .coord
            .get_prefix_paged(
                &keyspace::run_prefix(&prefix, run),
                nightshift_coord::PAGE_KEYS_ANY,
            )
            .await
        {
            Ok(read) => read,
            Err(e) => {
                tracing::warn!(run = %run, error = %e, "cannot reload the run; it waits");
                return;
            }
        };
        let found = record_values::assemble(&prefix, run, &kvs);
        if matches!(found, Ok(None)) {
            tracing::info!(run = %run, "the run's record is gone: it ended");
            self.runs.remove(run);
            return;
        }
        let stored = match self.resolve_run(run, found, &kvs).await {
            Ok(Some(stored)) => stored,
            Ok(None) => {
                self.runs.remove(run);
                return;
            }
            Err(e) => {
                tracing::warn!(run = %run, error = %e, "cannot reload the run's DAG version; it waits");
                return;
            }
        };
        tracing::info!(run = %run, revision = stored.revision, "run reloaded");
        self.runs.insert(
            run.clone(),
            LiveRun {
                rec: stored.rec,
                written: stored.values,
                synced: Default::default(),
                revision: stored.revision,
                stale: false,
            },
        );
    }

    /// Reloads `run` if a failed commit left it stale. `Ok(false)`: still
    /// stale (or gone), so nothing may be decided about it now.
    pub(super) async fn fresh(&mut self, run: &RunId) -> bool {
        if self.runs.get(run).is_some_and(|l| l.stale) {
            self.reload_run(run).await;
        }
        self.runs.get(run).is_some_and(|l| !l.stale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn put(key: &str) -> TxnOp {
        TxnOp::Put {
            key: key.into(),
            value: vec![],
            lease: None,
        }
    }

    fn del(key: &str) -> TxnOp {
        TxnOp::Delete { key: key.into() }
    }

    fn ops(staged: usize, activate: usize, rewrites: usize, after: usize) -> RunOps {
        RunOps {
            staged: (0..staged).map(|i| put(&format!("s{i}"))).collect(),
            activate: (0..activate).map(|i| put(&format!("spec{i}"))).collect(),
            rewrites: (0..rewrites).map(|i| put(&format!("w{i}"))).collect(),
            after: (0..after).map(|i| del(&format!("b{i}"))).collect(),
            deletes_record: false,
        }
    }

    fn keys(ops: &[TxnOp]) -> Vec<String> {
        ops.iter()
            .map(|op| match op {
                TxnOp::Put { key, .. } | TxnOp::Delete { key } | TxnOp::Get { key } => key.clone(),
                TxnOp::DeletePrefix { prefix } => prefix.clone(),
            })
            .collect()
    }

    #[test]
    fn a_start_that_fits_is_one_txn_with_the_record_and_the_consumed_batches() {
        let (before, rest) = before_record(ops(3, 1, 1, 2), 127, 1);
        assert!(before.is_empty());
        let (last, after) = record_txn(rest, vec![put("state")], 127);
        assert_eq!(
            keys(&last),
            ["s0", "s1", "s2", "spec0", "w0", "state", "b0", "b1"]
        );
        assert!(after.is_empty());
    }

    #[test]
    fn a_large_start_is_staged_then_activated_with_the_record() {
        let (before, rest) = before_record(ops(7, 1, 0, 5), 4, 1);
        assert_eq!(
            before.iter().map(|c| keys(c)).collect::<Vec<_>>(),
            vec![vec!["s0", "s1", "s2", "s3"], vec!["s4", "s5", "s6"]]
        );
        let (last, after) = record_txn(rest, vec![put("state")], 4);
        // The spec (activation) and the record commit together; consumed
        // batches fill the txn and the rest follow it.
        assert_eq!(keys(&last), ["spec0", "state", "b0", "b1"]);
        assert_eq!(
            after.iter().map(|c| keys(c)).collect::<Vec<_>>(),
            vec![vec!["b2", "b3", "b4"]]
        );
    }

    #[test]
    fn rewrites_that_do_not_fit_beside_the_record_go_before_it() {
        let (before, rest) = before_record(ops(0, 1, 5, 0), 4, 1);
        assert_eq!(keys(&before.concat()), ["w0", "w1", "w2"]);
        let (last, _) = record_txn(rest, vec![put("state")], 4);
        assert_eq!(keys(&last), ["spec0", "w3", "w4", "state"]);
    }

    #[test]
    fn an_orphan_is_every_key_the_new_start_does_not_overwrite() {
        let present = BTreeMap::from([(ExecutorId::new("e1"), 5), (ExecutorId::new("e2"), 6)]);
        let assigned = BTreeSet::from([ExecutorId::new("e2"), ExecutorId::new("e3")]);
        assert_eq!(orphans(&present, &assigned), vec![ExecutorId::new("e1")]);
    }

    #[test]
    fn only_owners_of_a_start_not_yet_committed_are_staged_outside_the_log() {
        use crate::record::Owner;
        use crate::record_values::{JobHead, OwnerValue};
        use nightshift_core::keyspace::ItemSet;
        let (run, job) = (RunId::new("r"), JobName::new("j"));
        let head = |generation| JobHead {
            state: JobState::Running,
            shards: 4,
            started_at_ms: None,
            ended_at_ms: None,
            waiting_since_ms: None,
            error: None,
            generation,
            first_error: None,
        };
        let owner_put = |generation| TxnOp::Put {
            key: keyspace::job_owner_key("/n/", &run, &job, &ExecutorId::new("e1")),
            value: keyspace::encode(&OwnerValue {
                generation,
                owner: Owner {
                    lease: 1,
                    items: ItemSet::range(0, 4),
                    cancel: ItemSet::default(),
                    token: 0,
                    assigned_at_ms: 0,
                },
            })
            .unwrap(),
            lease: None,
        };
        let written = BTreeMap::from([(
            keyspace::job_state_key("/n/", &run, &job),
            keyspace::encode(&head(Some(7))).unwrap(),
        )]);
        // A start of generation 8 over a committed 7: invisible until the
        // head names 8, so it may go before the head.
        assert!(is_new_start_owner("/n/", &written, &owner_put(Some(8))));
        // The committed generation's owner (a failover move) is read at
        // once, so it must go through the log.
        assert!(!is_new_start_owner("/n/", &written, &owner_put(Some(7))));
        assert!(!is_new_start_owner("/n/", &written, &owner_put(None)));
        // A first start: nothing committed yet.
        assert!(is_new_start_owner(
            "/n/",
            &BTreeMap::new(),
            &owner_put(Some(1))
        ));
        assert!(!is_new_start_owner(
            "/n/",
            &written,
            &put("/n/runs/r/state")
        ));
    }

    proptest! {
        /// Whatever the sizes: no txn exceeds the limit; every op is
        /// committed exactly once, in an order where staged ops precede the
        /// record and consumed batches never precede it; the activations and
        /// the record share one txn.
        #[test]
        fn every_op_once_in_order_and_within_the_limit(
            staged in 0usize..40,
            activate in 0usize..3,
            rewrites in 0usize..20,
            after in 0usize..40,
            max in 4usize..20,
            record in any::<bool>(),
        ) {
            let (before, rest) = before_record(ops(staged, activate, rewrites, after), max, 1);
            let (last, post) = record_txn(rest, record.then(|| put("state")).into_iter().collect(), max);
            for txn in before.iter().chain(std::iter::once(&last)).chain(&post) {
                prop_assert!(txn.len() <= max);
            }
            let all: Vec<String> = before.iter().flatten().chain(&last).chain(post.iter().flatten())
                .map(|op| keys(std::slice::from_ref(op)).remove(0)).collect();
            let expected = staged + activate + rewrites + after + usize::from(record);
            prop_assert_eq!(all.len(), expected);
            let unique: BTreeSet<&String> = all.iter().collect();
            prop_assert_eq!(unique.len(), expected);
            let last_keys = keys(&last);
            for i in 0..activate {
                let spec = format!("spec{i}");
                prop_assert!(last_keys.contains(&spec));
            }
            if record {
                prop_assert!(last_keys.contains(&"state".to_owned()));
            }
            let is_staged = |k: &String| k.starts_with('s') && k != "state" && !k.starts_with("spec");
            let before_keys = keys(&before.concat());
            prop_assert!(before_keys.iter().all(|k| !k.starts_with('b') && !k.starts_with("spec") && k != "state"));
            // Staged ops are all in the record's txn or all before it.
            prop_assert!(before.is_empty() || !last_keys.iter().any(is_staged));
            let only_deletes = post.iter().flatten().all(|op| matches!(op, TxnOp::Delete { .. }));
            prop_assert!(only_deletes);
        }
    }
}
