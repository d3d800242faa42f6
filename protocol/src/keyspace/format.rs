//! The keyspace's format version: `{p}format`.
//!
//! Record schema versions (`v` in every record) cover fields that change
//! inside one layout. The *format* covers the layout itself: which keys
//! exist, who writes them and what they mean. Format 1 kept assignments and
//! results under `runs/` and had no `format` key; format 2 keeps
//! assignments under each executor (`owners/{executor}/…`) and results under
//! `results/`; format 3 bounds the leader's run record: its
//! per-item detail (attempts, failures, retry due times, moved-from
//! executors) is stored as value → item set, and the run names its DAG
//! version (`dag_versions/{dag}/{version}`) instead of copying the DAG. A
//! format-2 leader would misread such a record, so the change is a format
//! and not a record version. Format 4 (this build) splits the run record
//! into bounded values (a head `runs/{run}/state`, job states, one value
//! per item set, per owner), writes an item set as a bitmap when that is
//! smaller (executors of format 3 cannot read such an assignment), and
//! keeps a sticky job's last assignment in chunks. Two builds that disagree on the format would half-read each
//! other's keys — a scheduler would miss running items, an executor would
//! watch a prefix nobody writes — so each process checks the key before it
//! leads or registers, and refuses with a message that says what to do.
//!
//! The first leader of an empty keyspace writes the key (create-only, fenced);
//! `nightshift migrate` rewrites it for an idle keyspace.

use super::records::Record;
use serde::{Deserialize, Serialize};

/// The keyspace format this build reads and writes.
pub const KEYSPACE_FORMAT: u32 = 4;

/// `{p}format`: the keyspace's [`FormatRecord`].
pub fn format_key(prefix: &str) -> String {
    format!("{prefix}format")
}

/// `format`: which layout the keys under the prefix follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormatRecord {
    /// The layout's number ([`KEYSPACE_FORMAT`] for this build).
    pub format: u32,
    /// The process that wrote it (`nightshift-scheduler 0.1.0 (scheduler-a)`),
    /// so an operator can tell which build set the format.
    pub written_by: String,
    /// When, Unix epoch milliseconds.
    pub at_ms: i64,
}

impl Record for FormatRecord {
    const KIND: &'static str = "keyspace format";
}

/// What a process found under the prefix, before it leads or registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatFound {
    /// The `format` key holds this number.
    Key(u32),
    /// No `format` key, and no run state: a new keyspace (or one whose runs
    /// all finished under a build without the key).
    Empty,
    /// No `format` key but live run keys: written by a build before the key
    /// existed, i.e. format 1.
    Unversioned,
}

/// Whether a process of this build may use the keyspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatVerdict {
    /// Same layout: go on.
    Matches,
    /// Nothing to disagree with: go on; the leader writes the key.
    Unset,
    /// Another layout: refuse, with [`FormatMismatch`] as the reason.
    Refuse(FormatMismatch),
}

/// Decides what a process of format `ours` does with what it `found`.
///
/// ```
/// use nightshift_protocol::keyspace::format::{verdict, FormatFound, FormatVerdict};
/// assert_eq!(verdict(FormatFound::Key(2), 2), FormatVerdict::Matches);
/// assert_eq!(verdict(FormatFound::Empty, 2), FormatVerdict::Unset);
/// assert!(matches!(verdict(FormatFound::Unversioned, 2), FormatVerdict::Refuse(_)));
/// ```
pub fn verdict(found: FormatFound, ours: u32) -> FormatVerdict {
    match found {
        FormatFound::Key(format) if format == ours => FormatVerdict::Matches,
        FormatFound::Key(format) => FormatVerdict::Refuse(FormatMismatch {
            found: format,
            ours,
        }),
        FormatFound::Empty => FormatVerdict::Unset,
        FormatFound::Unversioned => FormatVerdict::Refuse(FormatMismatch { found: 1, ours }),
    }
}

/// A keyspace written in another format than this build's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the keyspace holds format {found} keys; this build reads format {ours} only. {}",
    advice(*found, *ours)
)]
pub struct FormatMismatch {
    /// The format found under the prefix.
    pub found: u32,
    /// This build's format.
    pub ours: u32,
}

fn advice(found: u32, ours: u32) -> &'static str {
    if found > ours {
        "A newer Nightshift has taken over this keyspace: upgrade this process to the \
         version the schedulers run (nothing was read or written)."
    } else {
        "Let the runs in flight finish with the old version, stop its schedulers and \
         executors, then run `nightshift migrate` and start this version (nothing was \
         read or written)."
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_format_or_an_empty_keyspace_is_used() {
        for ours in 1..5 {
            for found in 1..5 {
                let v = verdict(FormatFound::Key(found), ours);
                assert_eq!(v == FormatVerdict::Matches, found == ours);
                if found != ours {
                    assert_eq!(v, FormatVerdict::Refuse(FormatMismatch { found, ours }));
                }
            }
            assert_eq!(verdict(FormatFound::Empty, ours), FormatVerdict::Unset);
        }
    }

    #[test]
    fn an_unversioned_keyspace_with_runs_is_format_one() {
        assert_eq!(
            verdict(FormatFound::Unversioned, KEYSPACE_FORMAT),
            FormatVerdict::Refuse(FormatMismatch {
                found: 1,
                ours: KEYSPACE_FORMAT
            })
        );
    }

    #[test]
    fn the_message_says_what_to_do_either_way() {
        let older = FormatMismatch { found: 1, ours: 2 }.to_string();
        assert!(
            older.contains("format 1") && older.contains("nightshift migrate"),
            "{older}"
        );
        let newer = FormatMismatch { found: 3, ours: 2 }.to_string();
        assert!(newer.contains("upgrade this process"), "{newer}");
    }

    #[test]
    fn the_record_round_trips_with_its_schema_version() {
        let record = FormatRecord {
            format: KEYSPACE_FORMAT,
            written_by: "test".into(),
            at_ms: 1,
        };
        let bytes = crate::keyspace::encode(&record).unwrap();
        assert!(bytes.starts_with(b"{\"v\":1"));
        assert_eq!(
            crate::keyspace::decode::<FormatRecord>(&bytes).unwrap(),
            record
        );
    }
}
