//! `nightshift migrate`: moves an idle keyspace to this build's format.
//!
//! A scheduler or executor refuses a keyspace of another format (see
//! `protocol::keyspace::format`). Between two formats nothing live can be
//! carried over — a run's keys mean different things — so the upgrade is:
//! let the runs in flight finish with the old version, stop its schedulers
//! and executors, run this command, start the new version. What survives is
//! what both formats share and read alike: applied DAGs, cron progress, the
//! last assignments and the SQL history. The command refuses while anything
//! is live and says what.

use crate::cli::conn::{self, EtcdArgs};
use anyhow::Context as _;
use nightshift_coord::{Compare, Txn, TxnOp};
use nightshift_core::keyspace::{
    self,
    format::{self, FormatFound, FormatRecord},
};
use std::process::ExitCode;

/// Flags of `nightshift migrate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only say what would be done.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub etcd: EtcdArgs,
}

/// What is live under the prefix.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Live {
    /// Scheduler replicas campaigning or leading.
    pub schedulers: usize,
    /// Registered executors.
    pub executors: usize,
    /// Runs with keys under `runs/` (their ids, sorted).
    pub runs: Vec<String>,
}

/// What `migrate` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The keyspace already has this build's format.
    UpToDate,
    /// Record this build's format (`from`: the format found; `None` for a
    /// keyspace without the key and without format-1 keys).
    Record { from: Option<u32> },
}

/// Why `migrate` refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A newer build has the keyspace.
    #[error("the keyspace holds format {found}, newer than this build's {ours}: upgrade nightshift instead")]
    Newer { found: u32, ours: u32 },
    /// Something of the old format is still live.
    #[error("the keyspace is not idle: {0}")]
    Busy(String),
}

/// The pure decision.
pub fn plan(found: FormatFound, live: &Live) -> Result<Plan, Refusal> {
    let ours = format::KEYSPACE_FORMAT;
    let from = match found {
        FormatFound::Key(f) if f == ours => return Ok(Plan::UpToDate),
        FormatFound::Key(f) if f > ours => return Err(Refusal::Newer { found: f, ours }),
        // Nothing of another layout: the key can be written at any time
        // (the first leader would write it anyway).
        FormatFound::Empty => return Ok(Plan::Record { from: None }),
        FormatFound::Key(f) => f,
        FormatFound::Unversioned => 1,
    };
    let mut busy = Vec::new();
    if live.schedulers > 0 {
        busy.push(format!("{} scheduler replica(s) running", live.schedulers));
    }
    if live.executors > 0 {
        busy.push(format!("{} executor(s) registered", live.executors));
    }
    if !live.runs.is_empty() {
        let shown: Vec<&str> = live.runs.iter().take(5).map(String::as_str).collect();
        let more = live.runs.len().saturating_sub(shown.len());
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        busy.push(format!(
            "{} run(s) in flight ({}{more}): let them finish with the old version",
            live.runs.len(),
            shown.join(", ")
        ));
    }
    if busy.is_empty() {
        Ok(Plan::Record { from: Some(from) })
    } else {
        Err(Refusal::Busy(format!(
            "{}; stop the old version's schedulers and executors first",
            busy.join("; ")
        )))
    }
}

/// Runs `nightshift migrate`.
pub fn run(args: Args) -> ExitCode {
    conn::block_on(async move {
        let prefix = args.etcd.key_prefix()?;
        let coord = args.etcd.connect().await?;
        let found = nightshift_scheduler::leader::format::found(coord.as_ref(), &prefix)
            .await
            .context("reading the keyspace format")?;
        let mut live = Live::default();
        let (leaders, _) = coord.get_prefix(&keyspace::leader_prefix(&prefix)).await?;
        live.schedulers = leaders.len();
        let (executors, _) = coord
            .get_prefix(&keyspace::executors_prefix(&prefix))
            .await?;
        live.executors = executors.len();
        let runs_prefix = keyspace::runs_prefix(&prefix);
        let (runs, _) = coord.get_prefix(&runs_prefix).await?;
        let mut ids: Vec<String> = runs
            .iter()
            .filter_map(|kv| kv.key.strip_prefix(runs_prefix.as_str()))
            .filter_map(|rest| rest.split('/').next())
            .map(str::to_owned)
            .collect();
        ids.dedup();
        live.runs = ids;
        let from = match plan(found, &live) {
            Ok(Plan::UpToDate) => {
                println!(
                    "the keyspace under {prefix} is at format {}: nothing to do",
                    format::KEYSPACE_FORMAT
                );
                return Ok(ExitCode::SUCCESS);
            }
            Ok(Plan::Record { from }) => from,
            Err(refusal) => return Err(conn::BadInput(refusal.to_string()).into()),
        };
        let from_text = from.map_or("no format key".to_owned(), |f| format!("format {f}"));
        if args.dry_run {
            println!(
                "would record format {} under {prefix} (found {from_text})",
                format::KEYSPACE_FORMAT
            );
            return Ok(ExitCode::SUCCESS);
        }
        let key = format::format_key(&prefix);
        // Only over what was read: a scheduler that wrote the key meanwhile
        // wins, and this command reports it instead of overwriting it.
        let guard = match coord.get(&key).await? {
            Some(kv) => Compare::mod_revision(key.clone(), kv.mod_revision),
            None => Compare::create_revision(key.clone(), 0),
        };
        let record = FormatRecord {
            format: format::KEYSPACE_FORMAT,
            written_by: format!("nightshift migrate {}", env!("CARGO_PKG_VERSION")),
            at_ms: chrono::Utc::now().timestamp_millis(),
        };
        let resp = coord
            .txn(Txn {
                compares: vec![guard],
                success: vec![TxnOp::Put {
                    key,
                    value: keyspace::encode(&record)?,
                    lease: None,
                }],
                failure: vec![],
            })
            .await?;
        anyhow::ensure!(
            resp.succeeded,
            "the format key changed while migrating; run `nightshift migrate` again"
        );
        println!(
            "recorded format {} under {prefix} (found {from_text}); start this version's schedulers and executors",
            format::KEYSPACE_FORMAT
        );
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle() -> Live {
        Live::default()
    }

    #[test]
    fn the_same_format_is_left_alone_and_a_newer_one_refused() {
        let ours = format::KEYSPACE_FORMAT;
        assert_eq!(plan(FormatFound::Key(ours), &idle()), Ok(Plan::UpToDate));
        assert_eq!(
            plan(FormatFound::Key(ours + 1), &idle()),
            Err(Refusal::Newer {
                found: ours + 1,
                ours
            })
        );
    }

    #[test]
    fn an_empty_keyspace_is_recorded_even_while_busy() {
        let busy = Live {
            schedulers: 2,
            executors: 3,
            runs: vec!["r1".into()],
        };
        assert_eq!(
            plan(FormatFound::Empty, &busy),
            Ok(Plan::Record { from: None })
        );
    }

    #[test]
    fn an_older_format_needs_an_idle_keyspace_and_names_what_is_live() {
        assert_eq!(
            plan(FormatFound::Unversioned, &idle()),
            Ok(Plan::Record { from: Some(1) })
        );
        let busy = Live {
            schedulers: 1,
            executors: 0,
            runs: (0..7).map(|i| format!("run-{i}")).collect(),
        };
        let Err(Refusal::Busy(why)) = plan(FormatFound::Unversioned, &busy) else {
            panic!("a busy keyspace must be refused");
        };
        assert!(why.contains("1 scheduler replica(s)"), "{why}");
        assert!(
            why.contains("7 run(s) in flight (run-0, run-1, run-2, run-3, run-4 and 2 more)"),
            "{why}"
        );
        assert!(!why.contains("executor(s) registered"), "{why}");
    }
}
