//! The keyspace format check before each registration: an executor of this
//! build never registers in a keyspace laid out by another (it would watch
//! a prefix no leader writes to, and its items would wait for ever).

use nightshift_coord::{CoordError, Coordinator};
use nightshift_protocol::keyspace::{
    self,
    format::{self, FormatFound, FormatMismatch, FormatRecord, FormatVerdict},
};

/// Why the check did not pass.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// Another layout: the executor stops with this reason.
    Mismatch(FormatMismatch),
    /// The key could not be read (retried like a failed registration).
    Coord(CoordError),
}

/// Reads `{p}format`. A missing key is fine for an executor: the first
/// leader writes it, and only a leader can tell an old layout from an empty
/// keyspace (it reads the run keys anyway).
pub(crate) async fn check(coord: &dyn Coordinator, prefix: &str) -> Result<(), Refusal> {
    let Some(kv) = coord
        .get(&format::format_key(prefix))
        .await
        .map_err(Refusal::Coord)?
    else {
        return Ok(());
    };
    let found = match keyspace::decode::<FormatRecord>(&kv.value) {
        Ok(record) => FormatFound::Key(record.format),
        // A newer schema of the record itself is a newer build's keyspace.
        Err(keyspace::RecordError::UnsupportedVersion { .. }) => {
            FormatFound::Key(format::KEYSPACE_FORMAT + 1)
        }
        Err(e) => return Err(Refusal::Coord(CoordError::Invalid(e.to_string()))),
    };
    match format::verdict(found, format::KEYSPACE_FORMAT) {
        FormatVerdict::Matches | FormatVerdict::Unset => Ok(()),
        FormatVerdict::Refuse(mismatch) => Err(Refusal::Mismatch(mismatch)),
    }
}
