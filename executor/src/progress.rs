//! Progress reporting at a bounded rate.
//!
//! Handlers may call `ctx.progress(..)` in a tight loop; each call only
//! replaces an entry in the in-memory [`ProgressBoard`]. A publisher task
//! writes each changed `(job, executor)` record at most once per interval
//! (one second), latest value wins, attached to the executor's lease. When
//! the last reporting item of a job finishes, the record is deleted.
//!
//! Progress is informational: it is not fenced and a lost write is simply
//! superseded by the next one.

use crate::assignment::JobRef;
use nightshift_coord::{Coordinator, LeaseId};
use nightshift_protocol::ids::ExecutorId;
use nightshift_protocol::keyspace::{self, ItemProgress, ProgressRecord};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Latest progress of the running items of every job of one registration.
#[derive(Default)]
pub(crate) struct ProgressBoard {
    jobs: Mutex<HashMap<JobRef, JobProgress>>,
}

#[derive(Default)]
struct JobProgress {
    items: BTreeMap<u32, ItemProgress>,
    /// Changed since the last publication.
    dirty: bool,
    /// A record exists in the store (so an empty board means "delete it").
    written: bool,
}

/// One pending write of the publisher.
#[derive(Debug, PartialEq)]
pub(crate) enum ProgressWrite {
    /// Put this record.
    Put(JobRef, ProgressRecord),
    /// Delete the job's record: no item reports anymore.
    Delete(JobRef),
}

impl ProgressBoard {
    fn lock(&self) -> MutexGuard<'_, HashMap<JobRef, JobProgress>> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (every critical section is a single insert/remove), so recover.
        self.jobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records an item's latest progress.
    pub(crate) fn report(&self, job: &JobRef, item: u32, progress: ItemProgress) {
        let mut jobs = self.lock();
        let entry = jobs.entry(job.clone()).or_default();
        entry.items.insert(item, progress);
        entry.dirty = true;
    }

    /// The item finished: its progress no longer matters.
    pub(crate) fn finish(&self, job: &JobRef, item: u32) {
        if let Some(entry) = self.lock().get_mut(job) {
            if entry.items.remove(&item).is_some() {
                entry.dirty = true;
            }
        }
    }

    /// The job's assignment is gone: stop publishing for it.
    pub(crate) fn forget(&self, job: &JobRef) {
        self.lock().remove(job);
    }

    /// Takes the writes needed to bring the store up to date.
    pub(crate) fn take_writes(&self) -> Vec<ProgressWrite> {
        let mut writes = Vec::new();
        let mut jobs = self.lock();
        jobs.retain(|job, entry| {
            if !entry.dirty {
                return true;
            }
            entry.dirty = false;
            if !entry.items.is_empty() {
                entry.written = true;
                writes.push(ProgressWrite::Put(
                    job.clone(),
                    ProgressRecord {
                        items: entry.items.clone(),
                    },
                ));
                true
            } else {
                if entry.written {
                    writes.push(ProgressWrite::Delete(job.clone()));
                }
                false
            }
        });
        writes
    }
}

/// Publishes the board every `interval` until `stop` is cancelled.
pub(crate) async fn publish(
    board: Arc<ProgressBoard>,
    coord: Arc<dyn Coordinator>,
    prefix: String,
    executor: ExecutorId,
    lease: LeaseId,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        for write in board.take_writes() {
            let result = match &write {
                ProgressWrite::Put(job, record) => {
                    let key = keyspace::progress_key(&prefix, &job.run, &job.job, &executor);
                    match keyspace::encode(record) {
                        Ok(value) => coord.put(&key, value, Some(lease)).await.map(drop),
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot encode progress");
                            Ok(())
                        }
                    }
                }
                ProgressWrite::Delete(job) => {
                    let key = keyspace::progress_key(&prefix, &job.run, &job.job, &executor);
                    coord.delete(&key).await.map(drop)
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "progress not published; a later report supersedes it");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(done: u64) -> ItemProgress {
        ItemProgress {
            done,
            total: 10,
            message: None,
            at_ms: 0,
        }
    }

    #[test]
    fn coalesces_reports_and_deletes_when_the_last_item_finishes() {
        let board = ProgressBoard::default();
        let job = JobRef::new("r".into(), "j".into());
        for done in 0..100 {
            board.report(&job, 1, p(done));
        }
        board.report(&job, 2, p(5));
        let writes = board.take_writes();
        assert_eq!(writes.len(), 1, "one write per job however many reports");
        match &writes[0] {
            ProgressWrite::Put(_, record) => {
                assert_eq!(record.items[&1].done, 99, "latest value wins");
                assert_eq!(record.items.len(), 2);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(board.take_writes().is_empty(), "nothing changed");
        board.finish(&job, 1);
        assert!(
            matches!(&board.take_writes()[..], [ProgressWrite::Put(_, r)] if r.items.len() == 1)
        );
        board.finish(&job, 2);
        assert_eq!(
            board.take_writes(),
            vec![ProgressWrite::Delete(job.clone())]
        );
        board.finish(&job, 3);
        assert!(board.take_writes().is_empty());
    }

    #[test]
    fn finishing_an_item_that_never_reported_writes_nothing() {
        let board = ProgressBoard::default();
        let job = JobRef::new("r".into(), "j".into());
        board.finish(&job, 1);
        assert!(board.take_writes().is_empty());
    }
}
