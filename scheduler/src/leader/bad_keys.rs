//! Values under the prefix that do not decode (garbage bytes, JSON of the
//! wrong shape, a newer schema): each is skipped so that one bad key never
//! stops other work, and reported — an error log line and a `bad_key`
//! event — once per key revision, not on every pass.

use super::history::Emit;
use super::Leader;
use nightshift_coord::KeyValue;
use nightshift_core::keyspace::{self, Record};
use serde_json::json;
use std::collections::BTreeMap;

/// Bad keys already reported, with the revision that was reported: a
/// rewrite (a new revision) that is still bad is reported again.
#[derive(Debug, Default)]
pub struct BadKeys {
    reported: BTreeMap<String, i64>,
}

impl Leader {
    /// Decodes `kv` as a `T`; if it does not decode, reports it (once per
    /// revision) with what the leader does about it, and returns `None`.
    pub(super) fn decode_or_report<T: Record>(&mut self, kv: &KeyValue, action: &str) -> Option<T> {
        match keyspace::decode::<T>(&kv.value) {
            Ok(v) => {
                if !self.bad_keys.reported.is_empty() {
                    self.bad_keys.reported.remove(&kv.key);
                }
                Some(v)
            }
            Err(e) => {
                self.report_bad_key(kv, &e.to_string(), action);
                None
            }
        }
    }

    /// Reports an unusable key once per revision: error log and event.
    pub(super) fn report_bad_key(&mut self, kv: &KeyValue, error: &str, action: &str) {
        if self.bad_keys.reported.get(&kv.key) == Some(&kv.mod_revision) {
            return;
        }
        self.bad_keys
            .reported
            .insert(kv.key.clone(), kv.mod_revision);
        tracing::error!(key = %kv.key, revision = kv.mod_revision, error = %error, action = %action, "unreadable value under the scheduler prefix");
        let detail =
            json!({"key": kv.key, "revision": kv.mod_revision, "error": error, "action": action});
        self.outbox.push(Emit { actor: &self.actor }.system(
            self.clock.now_ms(),
            "bad_key",
            detail,
        ));
    }
    /// A command that does not decode was deleted: it can never be carried
    /// out, so it is rejected like any refused command — a
    /// `command_rejected` event with its id and the reason — rather than
    /// retried at every pass.
    pub(super) fn reject_unreadable_command(&mut self, kv: &KeyValue, error: &str) {
        let id = keyspace::parse_command_key(&self.config.prefix, &kv.key);
        // Who issued it, if that much can be read.
        let issued_by = serde_json::from_slice::<serde_json::Value>(&kv.value)
            .ok()
            .and_then(|v| v.get("issued_by")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| self.actor.clone());
        let outcome = format!("rejected: unreadable command: {error}");
        tracing::error!(key = %kv.key, by = %issued_by, error = %error, "unreadable command under the scheduler prefix; rejected and deleted");
        let detail = json!({"command_id": id.as_ref().map(|i| i.as_str()), "key": kv.key, "outcome": outcome});
        self.outbox.push(Emit { actor: &issued_by }.system(
            self.clock.now_ms(),
            "command_rejected",
            detail,
        ));
    }
}
