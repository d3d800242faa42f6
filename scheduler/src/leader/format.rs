//! The keyspace format, settled before a replica campaigns and again once
//! it leads: a scheduler never leads a keyspace laid out by another build
//! (it would half-read it: miss running items, rewrite records it does not
//! understand). The decision is the pure [`format::verdict`]; this module
//! only reads and writes the key.

use super::LeaderError;
use nightshift_coord::{Compare, Coordinator, Txn, TxnOp};
use nightshift_core::keyspace::{
    self,
    format::{self, FormatFound, FormatRecord, FormatVerdict},
};

/// Whether any key under `runs/` follows format 1, which kept assignments
/// and result batches under the run (`runs/{run}/jobs/{job}/assign/…`,
/// `…/results/…`). Format 2 before the `format` key existed left only
/// `state`, `spec` and `progress` there, which this build reads as its own.
pub fn has_format_one_keys<'a>(prefix: &str, keys: impl IntoIterator<Item = &'a str>) -> bool {
    let runs = keyspace::runs_prefix(prefix);
    keys.into_iter().any(|key| {
        let Some(rest) = key.strip_prefix(runs.as_str()) else {
            return false;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        // {run}/jobs/{job}/{assign|results}/…
        parts.len() >= 5 && parts[1] == "jobs" && matches!(parts[3], "assign" | "results")
    })
}

/// Reads what the keyspace holds: its `format` key, or without one,
/// whether run keys of format 1 are there.
pub async fn found(coord: &dyn Coordinator, prefix: &str) -> Result<FormatFound, LeaderError> {
    if let Some(kv) = coord.get(&format::format_key(prefix)).await? {
        return Ok(match keyspace::decode::<FormatRecord>(&kv.value) {
            Ok(record) => FormatFound::Key(record.format),
            Err(keyspace::RecordError::UnsupportedVersion { .. }) => {
                FormatFound::Key(format::KEYSPACE_FORMAT + 1)
            }
            Err(e) => return Err(e.into()),
        });
    }
    let (kvs, _) = coord
        .get_prefix_paged(
            &keyspace::runs_prefix(prefix),
            nightshift_coord::PAGE_KEYS_ANY,
        )
        .await?;
    Ok(
        if has_format_one_keys(prefix, kvs.iter().map(|kv| kv.key.as_str())) {
            FormatFound::Unversioned
        } else {
            FormatFound::Empty
        },
    )
}

/// Refuses a keyspace of another format. With `fence` (the replica leads),
/// also writes the key when it is missing, create-only, so that every
/// later process of another build sees what this one uses.
pub async fn settle(
    coord: &dyn Coordinator,
    prefix: &str,
    fence: Option<Compare>,
    written_by: &str,
    now_ms: i64,
) -> Result<(), LeaderError> {
    match format::verdict(found(coord, prefix).await?, format::KEYSPACE_FORMAT) {
        FormatVerdict::Matches => Ok(()),
        FormatVerdict::Refuse(mismatch) => Err(LeaderError::KeyspaceFormat(mismatch)),
        FormatVerdict::Unset => {
            let Some(fence) = fence else {
                return Ok(());
            };
            let key = format::format_key(prefix);
            let record = FormatRecord {
                format: format::KEYSPACE_FORMAT,
                written_by: written_by.to_owned(),
                at_ms: now_ms,
            };
            let resp = coord
                .txn(Txn {
                    compares: vec![fence.clone(), Compare::create_revision(key.clone(), 0)],
                    success: vec![TxnOp::Put {
                        key,
                        value: keyspace::encode(&record)?,
                        lease: None,
                    }],
                    failure: vec![],
                })
                .await?;
            if resp.succeeded {
                tracing::info!(format = format::KEYSPACE_FORMAT, "keyspace format recorded");
                return Ok(());
            }
            // Deposed, or another build wrote the key meanwhile: decide on
            // what is there now, without writing.
            match format::verdict(found(coord, prefix).await?, format::KEYSPACE_FORMAT) {
                FormatVerdict::Refuse(mismatch) => Err(LeaderError::KeyspaceFormat(mismatch)),
                FormatVerdict::Matches => Ok(()),
                FormatVerdict::Unset => Err(LeaderError::Deposed),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_one_is_recognised_by_its_run_scoped_assignments_and_results() {
        let p = "/ns/";
        assert!(has_format_one_keys(
            p,
            ["/ns/runs/r1/jobs/accrue/assign/exec-1"]
        ));
        assert!(has_format_one_keys(
            p,
            [
                "/ns/runs/r1/state",
                "/ns/runs/r1/jobs/accrue/results/exec-1/0001"
            ]
        ));
        // What format 2 keeps under runs/ is its own.
        assert!(!has_format_one_keys(
            p,
            [
                "/ns/runs/r1/state",
                "/ns/runs/r1/jobs/accrue/spec",
                "/ns/runs/r1/jobs/accrue/progress/exec-1",
            ]
        ));
        // A job named `assign` is not format 1: the marker is the fourth segment.
        assert!(!has_format_one_keys(p, ["/ns/runs/r1/jobs/assign/spec"]));
        // Another prefix is not ours.
        assert!(!has_format_one_keys(p, ["/other/runs/r1/jobs/a/assign/e"]));
    }
}
