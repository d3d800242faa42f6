//! The `run_slow` warning: a live run past its "slower than usual"
//! threshold ([`crate::slow`]) gets one alert, kept in the run's
//! `open_alerts` so that it resolves when the run ends.

use super::history::alert;
use super::Leader;
use crate::alert_key::AlertKey;
use nightshift_core::ids::RunId;
use nightshift_core::state::{AlertRule, AlertSeverity};

impl Leader {
    /// Opens the run's `run_slow` alert once it runs longer than usual.
    pub(super) fn slow_check(&mut self, run: &RunId, now_ms: i64) {
        let Some(live) = self.runs.get_mut(run) else {
            return;
        };
        let rec = &mut live.rec;
        if rec.state.is_terminal()
            || !crate::slow::is_slow(rec.created_at_ms, now_ms, rec.slow_after_ms)
        {
            return;
        }
        let key = AlertKey::RunSlow { run: run.clone() };
        if !rec.open_alerts.insert(key.clone()) {
            return;
        }
        let usual = rec.slow_after_ms.unwrap_or_default() * 2 / 3;
        self.outbox.push(alert(
            AlertRule::RunSlow,
            key,
            AlertSeverity::Warning,
            &rec.spec.name,
            Some(run),
            None,
            None,
            format!(
                "run {run} has run {} s, over 1.5 × the usual {} s (median of the last {} succeeded runs)",
                now_ms.saturating_sub(rec.created_at_ms) / 1000,
                usual / 1000,
                crate::slow::BASELINE_RUNS
            ),
            now_ms,
        ));
    }
}
