//! Staying up while the SQL store (or etcd) is away: the leader retries a
//! failing pass with capped exponential backoff instead of once per tick,
//! and makes a store outage visible twice over:
//!
//! - while it lasts, in the fenced etcd key `{p}health/store`
//!   ([`StoreHealth`]: since when, the last error, how many attempts) — the
//!   only place it can be recorded, since SQL refuses writes;
//! - once writes succeed again, as a `store_unavailable` alert opened at the
//!   outage start. The alert stays open for [`SchedulerConfig::store_alert_linger`]
//!   so that the console's notifier (which sends open alerts) sees it, then is
//!   resolved with the recovery time and the key is deleted. Until then the
//!   key stays, marked recovered, so a new leader finishes the job.
//!
//! "Store is back" is proven by a write, not a read: a database that refuses
//! writes still answers reads. The outage's own alert is that write.
//!
//! [`SchedulerConfig::store_alert_linger`]: super::SchedulerConfig::store_alert_linger

use super::history::Emit;
use super::{put, Leader, LeaderError};
use crate::alert_key::AlertKey;
use nightshift_coord::TxnOp;
use nightshift_core::keyspace::{self, StoreHealth};
use nightshift_core::state::{AlertRule, AlertSeverity};
use nightshift_store::{NewAlert, StoreError};
use serde_json::json;
use std::time::Duration;

/// First retry delay after a failed pass.
pub const FIRST_RETRY: Duration = Duration::from_millis(100);
/// Longest retry delay.
pub const MAX_RETRY: Duration = Duration::from_secs(5);

/// Capped exponential backoff: 100 ms, 200 ms, … up to 5 s.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    current: Option<Duration>,
}

impl Backoff {
    /// Records a failure; returns how long to wait before the next try.
    pub fn fail(&mut self) -> Duration {
        let next = self
            .current
            .map_or(FIRST_RETRY, |d| d.saturating_mul(2).min(MAX_RETRY));
        self.current = Some(next);
        next
    }

    /// Records a success: the next failure starts from [`FIRST_RETRY`].
    pub fn reset(&mut self) {
        self.current = None;
    }
}

/// A store error with its causes, for logs and the health key. The store
/// redacts passwords from the URLs it reports, and the driver's query errors
/// carry no URL.
pub(super) fn describe(e: &StoreError) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let cause = s.to_string();
        // Drivers often wrap an error in one that repeats its message.
        if !text.ends_with(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        source = s.source();
    }
    text
}

/// The outage's alert identity: one alert per outage.
fn alert_key(health: &StoreHealth) -> AlertKey {
    AlertKey::StoreUnavailable {
        since_ms: health.down_since_ms,
    }
}

impl Leader {
    /// Notes that a SQL write (or read) failed during this pass.
    pub(super) fn store_failed(&mut self, error: String) {
        self.store_trouble.get_or_insert(error);
    }

    /// Whether the store is known to be failing (the loop then backs off).
    pub(super) fn store_is_down(&self) -> bool {
        self.store_health
            .as_ref()
            .is_some_and(|h| h.recovered_at_ms.is_none())
    }

    /// At the end of a pass: records a failure in `{p}health/store`, or,
    /// while an outage is on record, tries to end it.
    pub(super) async fn check_store(&mut self) -> Result<(), LeaderError> {
        let now = self.clock.now_ms();
        if let Some(error) = self.store_trouble.take() {
            return self.outage_continues(error, now).await;
        }
        let Some(health) = self.store_health.clone() else {
            return Ok(());
        };
        let key = keyspace::store_health_key(&self.config.prefix);
        match health.recovered_at_ms {
            None => match self.open_outage_alert(&health, now).await {
                Ok(()) => {
                    let recovered = StoreHealth {
                        recovered_at_ms: Some(now),
                        ..health.clone()
                    };
                    self.fenced
                        .commit(vec![put(key, &recovered, None)?])
                        .await?;
                    self.store_health = Some(recovered);
                    tracing::info!(down_ms = now - health.down_since_ms, attempts = health.attempts, "sql store accepts writes again; outage recorded as a store_unavailable alert");
                    let detail = json!({"down_since_ms": health.down_since_ms, "recovered_at_ms": now, "attempts": health.attempts, "last_error": health.last_error});
                    self.outbox.push(Emit { actor: &self.actor }.system(
                        now,
                        "store_recovered",
                        detail,
                    ));
                    Ok(())
                }
                Err(e) => self.outage_continues(describe(&e), now).await,
            },
            Some(recovered) => {
                let linger =
                    i64::try_from(self.config.store_alert_linger.as_millis()).unwrap_or(i64::MAX);
                if now.saturating_sub(recovered) < linger {
                    return Ok(());
                }
                match self
                    .store
                    .resolve_alert(&alert_key(&health).to_string(), recovered)
                    .await
                {
                    Ok(_) => {
                        self.fenced.commit(vec![TxnOp::Delete { key }]).await?;
                        self.store_health = None;
                        Ok(())
                    }
                    Err(e) => self.outage_continues(describe(&e), now).await,
                }
            }
        }
    }

    /// A failed attempt: starts or extends the outage record. A failure
    /// soon after a recovery extends the same outage (a flapping store is
    /// one outage, one alert).
    async fn outage_continues(&mut self, error: String, now: i64) -> Result<(), LeaderError> {
        let health = match self.store_health.take() {
            Some(h) => StoreHealth {
                last_error: error,
                attempts: h.attempts.saturating_add(1),
                recovered_at_ms: None,
                ..h
            },
            None => {
                tracing::error!(error = %error, "sql store unavailable: retrying with backoff; results wait in etcd, events and alerts in memory");
                StoreHealth {
                    down_since_ms: now,
                    last_error: error,
                    attempts: 1,
                    recovered_at_ms: None,
                }
            }
        };
        tracing::warn!(attempts = health.attempts, down_ms = now - health.down_since_ms, error = %health.last_error, "sql store still unavailable");
        self.store_health = Some(health.clone());
        self.fenced
            .commit(vec![put(
                keyspace::store_health_key(&self.config.prefix),
                &health,
                None,
            )?])
            .await?;
        Ok(())
    }

    /// Opens (or bumps) the outage's alert, dated from its start.
    async fn open_outage_alert(&self, health: &StoreHealth, now: i64) -> Result<(), StoreError> {
        let secs = (now - health.down_since_ms) / 1000;
        let alert = NewAlert {
            rule: AlertRule::StoreUnavailable,
            dedupe_key: alert_key(health).to_string(),
            severity: AlertSeverity::Critical,
            dag: None,
            run_id: None,
            job: None,
            item: None,
            executor: None,
            message: format!(
                "the SQL store refused writes for {secs} s ({} failed attempts); last error: {}",
                health.attempts, health.last_error
            ),
            at_ms: health.down_since_ms,
        };
        self.store.open_alert(&alert).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let mut b = Backoff::default();
        let delays: Vec<u128> = (0..9).map(|_| b.fail().as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        b.reset();
        assert_eq!(b.fail(), FIRST_RETRY);
    }
}
