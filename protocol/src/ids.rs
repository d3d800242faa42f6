//! Newtype identifiers shared by every crate.
//!
//! Ids are distinct types so that a job name can never be passed where an
//! executor id is expected; they serialize as their plain inner value.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! string_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a string as this id.
            pub fn new(s: impl Into<String>) -> Self {
                Self(s.into())
            }
            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }
    };
}

string_id!(
    /// Name of an applied DAG (the file stem unless the file sets `name`).
    DagName
);
string_id!(
    /// Name of a job inside a DAG.
    JobName
);
string_id!(
    /// Identity of an executor process, stable across its restarts when the
    /// operator sets one (default `host-pid`).
    ExecutorId
);
string_id!(
    /// Identity of one run of a DAG.
    RunId
);
string_id!(
    /// Name of the handler an executor registers and a job targets.
    HandlerName
);

/// Index of a shard item within a job, `0..shards`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ItemIndex(pub u32);

impl ItemIndex {
    /// The index as a number, to compare with a count of items (`u32`).
    pub fn get(self) -> u32 {
        self.0
    }
}

impl From<u32> for ItemIndex {
    fn from(index: u32) -> Self {
        ItemIndex(index)
    }
}

impl From<ItemIndex> for u32 {
    fn from(index: ItemIndex) -> Self {
        index.0
    }
}

impl fmt::Display for ItemIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Proof of ownership of an assignment: the mod revision of the assignment key
/// in the coordination store. A write fenced by a stale token fails.
///
/// For one item of a job run, every later owner or attempt holds a strictly
/// greater token than any earlier one: each token is the revision of a write
/// by the leader that gave the item to that owner, ownership periods do not
/// overlap, and the store's revisions only increase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FencingToken(pub i64);

impl FencingToken {
    /// The token as a number, to store next to what it guards (a SQL
    /// `BIGINT` column) and compare there.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
