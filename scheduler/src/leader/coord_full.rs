//! etcd full: its NOSPACE alarm ("database space exceeded"). etcd then
//! refuses every write except deletes until an operator compacts its
//! history, defragments it and disarms the alarm — waiting does not help,
//! so the leader says so instead of retrying silently:
//!
//! - a refused write ([`CoordError::Full`]) fails only the step that made it
//!   (a run's pass, the commands and cron step, the SQL-outage record); the
//!   pass goes on with everything else: reads, SQL history, and the deletes
//!   that end finished runs (which is also what frees etcd space);
//! - the first refusal opens a critical `coordination_full` alert (in SQL,
//!   which does not depend on etcd) saying what to do, and logs it;
//! - while the alert is open, a pass that saw no refusal proves recovery
//!   with a write of its own (`{p}health/coord`, deleted right after), then
//!   resolves the alert. Meanwhile the loop backs off like for a failing
//!   pass.

use super::history::Pending;
use super::{Leader, LeaderError};
use crate::alert_key::AlertKey;
use nightshift_coord::{CoordError, TxnOp};
use nightshift_core::keyspace;
use nightshift_core::state::{AlertRule, AlertSeverity};
use nightshift_store::NewAlert;

/// What an operator does about a full etcd (also in README, "Operations").
pub const WHAT_TO_DO: &str = "free space in etcd: compact its history \
(`etcdctl compact <current revision>`), defragment every member \
(`etcdctl defrag --cluster`), then disarm the alarm (`etcdctl alarm disarm`); \
if it fills again, raise --quota-backend-bytes or check that auto-compaction is on";

/// An open `coordination_full` condition.
#[derive(Debug, Clone)]
pub(super) struct Full {
    since_ms: i64,
}

impl Full {
    fn alert_key(&self) -> AlertKey {
        AlertKey::CoordinationFull {
            since_ms: self.since_ms,
        }
    }
}

/// Whether `e` is etcd refusing a write because it is full.
pub(super) fn is_full(e: &LeaderError) -> bool {
    matches!(e, LeaderError::Coord(CoordError::Full(_)))
}

impl Leader {
    /// Takes in a step's result: a refusal because etcd is full is noted
    /// (and the step counts as done for this pass); anything else is
    /// returned.
    pub(super) fn unless_full(
        &mut self,
        result: Result<(), LeaderError>,
    ) -> Result<(), LeaderError> {
        match result {
            Err(e) if is_full(&e) => {
                self.coord_trouble.get_or_insert_with(|| e.to_string());
                Ok(())
            }
            other => other,
        }
    }

    /// Whether etcd is known to be full (the loop then backs off).
    pub(super) fn coord_is_full(&self) -> bool {
        self.coord_full.is_some()
    }

    /// At the end of a pass: opens the alert on a first refusal, or, while
    /// one is open and this pass saw none, tries to end it.
    pub(super) async fn check_coord(&mut self) -> Result<(), LeaderError> {
        let now = self.clock.now_ms();
        if let Some(error) = self.coord_trouble.take() {
            if self.coord_full.is_none() {
                let full = Full { since_ms: now };
                tracing::error!(error = %error, "etcd is full (NOSPACE alarm): it refuses writes; {WHAT_TO_DO}");
                self.outbox.push(Pending::Open(NewAlert {
                    rule: AlertRule::CoordinationFull,
                    dedupe_key: full.alert_key().to_string(),
                    severity: AlertSeverity::Critical,
                    dag: None,
                    run_id: None,
                    job: None,
                    item: None,
                    executor: None,
                    message: format!(
                        "etcd's database is full and refuses writes: no run can start or advance. {WHAT_TO_DO}. ({error})"
                    ),
                    at_ms: now,
                }));
                self.coord_full = Some(full);
            }
            return Ok(());
        }
        let Some(full) = self.coord_full.clone() else {
            return Ok(());
        };
        let key = keyspace::coord_probe_key(&self.config.prefix);
        let probe = self
            .fenced
            .commit(vec![TxnOp::Put {
                key: key.clone(),
                value: now.to_string().into_bytes(),
                lease: None,
            }])
            .await;
        match probe {
            Ok(_) => {
                self.fenced.commit(vec![TxnOp::Delete { key }]).await?;
                tracing::info!(
                    full_ms = now - full.since_ms,
                    "etcd accepts writes again; coordination_full resolved"
                );
                self.outbox.push(Pending::Resolve(full.alert_key(), now));
                self.coord_full = None;
                Ok(())
            }
            Err(e) if is_full(&e) => {
                tracing::warn!(
                    full_ms = now - full.since_ms,
                    "etcd still full; {WHAT_TO_DO}"
                );
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}
