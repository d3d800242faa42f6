//! Built-in handlers, for trying Nightshift out, for tests and benchmarks:
//! [`Noop`] and [`Sleep`]. `nightshift executor --handlers noop,sleep` serves
//! them.
//!
//! There is deliberately no "shell" handler: an executor that runs commands
//! named in a DAG file lets whoever can apply a DAG run anything on every
//! executor host. Write a [`crate::Job`], or have the executor's operator
//! map a handler name to a program ([`crate::program`]).

use crate::clock::now_ms;
use crate::context::ItemContext;
use crate::job::{ItemOutcome, Job, JobError};
use crate::params::ParamsSchema;
use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod journal;

/// Succeeds at once. Job params are ignored.
#[derive(Debug, Clone, Copy, Default)]
pub struct Noop;

#[async_trait]
impl Job for Noop {
    async fn run(&self, _ctx: ItemContext) -> Result<ItemOutcome, JobError> {
        Ok(ItemOutcome::Succeeded)
    }
}

/// Sleeps, then succeeds or fails as its job params say; stops early (as a
/// retryable failure) when the item is cancelled.
///
/// Params (all optional): `millis` (default 100), `fail_rate` in `0..=1`
/// (a deterministic share of `(item, attempt)`s fails, retryably),
/// `fail_items` (items that always fail, retryably), `steps` (default 1:
/// the sleep is done in that many equal steps, each reported as progress),
/// `ignore_cancel` (default false: keep stepping when cancelled — a
/// stubborn handler, for testing that the executor stops it), `journal`
/// (a file name: see [`Sleep::journaling_into`]; refused by a plain `Sleep`)
/// and `checkpoint` (default false: store the step number as the item's
/// checkpoint after each step, and resume after the last checkpointed step
/// — for testing resumes after a failover or a retry).
#[derive(Debug, Clone, Copy, Default)]
pub struct Sleep;

impl Sleep {
    /// A `Sleep` that honours the `journal` param: after each step it
    /// appends the line `run job item attempt executor step unix_ms` to the
    /// file of that name in `dir`, flushed line by line (one `write` per
    /// line, so that several executors may share a journal).
    ///
    /// **Security:** the journal is a file on the executor's host chosen by
    /// whoever writes the DAG, so it is confined to `dir`, which the
    /// executor's operator chooses (`nightshift executor --sleep-journal-dir`):
    /// the param must be a plain file name (`[A-Za-z0-9][A-Za-z0-9._-]*`, at
    /// most 128 bytes), never a path. Point `dir` at a directory that holds
    /// nothing else.
    pub fn journaling_into(dir: impl Into<PathBuf>) -> JournalingSleep {
        JournalingSleep { dir: dir.into() }
    }
}

/// [`Sleep`] that may journal its steps; see [`Sleep::journaling_into`].
#[derive(Debug, Clone)]
pub struct JournalingSleep {
    dir: PathBuf,
}

/// Params of [`Sleep`], published as its params schema: `nightshift
/// apply` refuses a misspelt or mistyped key before the job runs.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SleepParams {
    #[serde(default = "default_millis")]
    millis: u64,
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    fail_rate: f64,
    #[serde(default)]
    fail_items: Vec<u32>,
    #[serde(default = "default_steps")]
    #[schemars(range(min = 1))]
    steps: u32,
    #[serde(default)]
    ignore_cancel: bool,
    #[serde(default)]
    journal: Option<String>,
    #[serde(default)]
    checkpoint: bool,
}

fn default_millis() -> u64 {
    100
}

fn default_steps() -> u32 {
    1
}

/// Longest journal file name.
const MAX_JOURNAL_NAME: usize = 128;

impl SleepParams {
    fn from_value(params: &serde_json::Value) -> Result<Self, JobError> {
        let params = if params.is_null() {
            serde_json::json!({})
        } else {
            params.clone()
        };
        let parsed: SleepParams = serde_json::from_value(params)
            .map_err(|e| JobError::permanent(format!("bad sleep params: {e}")))?;
        if !(0.0..=1.0).contains(&parsed.fail_rate) {
            return Err(JobError::permanent(format!(
                "bad sleep params: fail_rate {} is not in 0..=1",
                parsed.fail_rate
            )));
        }
        if parsed.steps == 0 {
            return Err(JobError::permanent(
                "bad sleep params: steps must be at least 1",
            ));
        }
        Ok(parsed)
    }
}

/// The journal file for `name` in `dir`, if `name` is a plain file name.
fn journal_path(dir: Option<&Path>, name: &str) -> Result<PathBuf, JobError> {
    let Some(dir) = dir else {
        return Err(JobError::permanent(
            "sleep param `journal` is refused: this executor has no journal directory \
             (its operator enables it with --sleep-journal-dir)",
        ));
    };
    let plain = name.len() <= MAX_JOURNAL_NAME
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !plain {
        return Err(JobError::permanent(format!(
            "bad sleep params: journal `{name}` is not a plain file name \
             ([A-Za-z0-9][A-Za-z0-9._-]*, at most {MAX_JOURNAL_NAME} bytes)"
        )));
    }
    Ok(dir.join(name))
}

/// Appends one line per step to a journal file.
struct Journal {
    file: std::fs::File,
}

impl Journal {
    fn open(path: &Path) -> Result<Self, JobError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| JobError::retryable(format!("cannot open the sleep journal: {e}")))?;
        Ok(Journal { file })
    }

    fn step(&mut self, ctx: &ItemContext, step: u32) -> Result<(), JobError> {
        let line = format!(
            "{} {} {} {} {} {} {}\n",
            ctx.run_id(),
            ctx.job(),
            ctx.item(),
            ctx.attempt(),
            ctx.executor_id(),
            step,
            now_ms()
        );
        // One write of the whole line (O_APPEND): lines of several writers
        // never mix. `File` has no buffer: the line is in the file on return.
        self.file
            .write_all(line.as_bytes())
            .map_err(|e| JobError::retryable(format!("cannot write the sleep journal: {e}")))
    }
}

#[async_trait]
impl Job for Sleep {
    async fn run(&self, ctx: ItemContext) -> Result<ItemOutcome, JobError> {
        sleep(ctx, None).await
    }

    fn params_schema(&self) -> Option<ParamsSchema> {
        Some(ParamsSchema::of::<SleepParams>())
    }
}

#[async_trait]
impl Job for JournalingSleep {
    async fn run(&self, ctx: ItemContext) -> Result<ItemOutcome, JobError> {
        sleep(ctx, Some(&self.dir)).await
    }

    fn params_schema(&self) -> Option<ParamsSchema> {
        Some(ParamsSchema::of::<SleepParams>())
    }
}

async fn sleep(ctx: ItemContext, journal_dir: Option<&Path>) -> Result<ItemOutcome, JobError> {
    let params = SleepParams::from_value(ctx.params_json())?;
    ctx.log_info(format!("sleeping {} ms", params.millis));
    let mut journal = match &params.journal {
        Some(name) => Some(Journal::open(&journal_path(journal_dir, name)?)?),
        None => None,
    };
    ctx.progress(0, params.millis, "sleeping");
    let steps = params.steps;
    let first = if params.checkpoint {
        ctx.last_checkpoint::<u32>()
            .await?
            .map_or(1, |done| done + 1)
    } else {
        1
    };
    for step in first..=steps {
        // Step k ends at k/steps of the total, so the steps add up exactly.
        let from = params.millis * u64::from(step - 1) / u64::from(steps);
        let to = params.millis * u64::from(step) / u64::from(steps);
        let pause = tokio::time::sleep(Duration::from_millis(to - from));
        if params.ignore_cancel {
            pause.await;
        } else {
            tokio::select! {
                _ = pause => {}
                _ = ctx.cancelled() => return Ok(ItemOutcome::Cancelled),
            }
        }
        if let Some(journal) = &mut journal {
            journal.step(&ctx, step)?;
        }
        // After the step's effect (the journal line), as a handler should:
        // a death in between redoes the step, never skips it.
        if params.checkpoint {
            ctx.checkpoint(&step).await?;
        }
        if steps > 1 {
            ctx.progress(to, params.millis, format!("step {step}/{steps}"));
        }
    }
    if params.fail_items.contains(&ctx.item().0) {
        return Err(JobError::retryable(format!(
            "item {} is listed in fail_items",
            ctx.item()
        )));
    }
    if params.fail_rate > 0.0
        && unit_hash(
            &format!("{}/{}/{}", ctx.run_id(), ctx.job(), ctx.item()),
            ctx.attempt(),
        ) < params.fail_rate
    {
        return Err(JobError::retryable(format!(
            "item {} failed by fail_rate {}",
            ctx.item(),
            params.fail_rate
        )));
    }
    Ok(ItemOutcome::Succeeded)
}

/// A number in `[0, 1)` fixed by `(key, attempt)` (FNV-1a): the same item
/// attempt always gets the same verdict, so test runs are reproducible.
fn unit_hash(key: &str, attempt: u32) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes().chain(attempt.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // The top 53 bits fit an f64 mantissa exactly.
    (h >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{run_item, TestItem};
    use serde_json::json;

    #[tokio::test]
    async fn sleep_fails_listed_items_and_honours_cancellation() {
        let run = run_item(
            &Sleep,
            TestItem::new(3).params(json!({"millis": 1, "fail_items": [3]})),
        )
        .await;
        assert!(matches!(run.result, Err(JobError::Retryable(ref m)) if m.contains("fail_items")));
        let ok = run_item(
            &Sleep,
            TestItem::new(2).params(json!({"millis": 1, "fail_items": [3]})),
        )
        .await;
        assert_eq!(ok.result, Ok(ItemOutcome::Succeeded));
        assert_eq!(ok.progress.len(), 1);
        let log = ok.log.unwrap_or_default();
        assert!(log.contains("INFO  sleeping 1 ms"), "{log}");

        let item = TestItem::new(0).params(json!({"millis": 60_000}));
        item.cancellation_token().cancel();
        let cancelled = run_item(&Sleep, item).await;
        assert_eq!(cancelled.result, Ok(ItemOutcome::Cancelled));
    }

    #[tokio::test]
    async fn a_checkpointing_sleep_resumes_after_its_last_step() {
        let params = json!({"millis": 4, "steps": 4, "checkpoint": true});
        let fresh = run_item(&Sleep, TestItem::new(0).params(params.clone())).await;
        assert_eq!(fresh.result, Ok(ItemOutcome::Succeeded));
        assert_eq!(
            fresh.checkpoints,
            vec![json!(1), json!(2), json!(3), json!(4)]
        );
        let resumed = run_item(&Sleep, TestItem::new(0).params(params).checkpoint(&2)).await;
        assert_eq!(resumed.result, Ok(ItemOutcome::Succeeded));
        assert_eq!(resumed.checkpoints, vec![json!(3), json!(4)]);
    }

    #[tokio::test]
    async fn sleep_rejects_bad_params_permanently() {
        for bad in [
            json!({"millis": "soon"}),
            json!({"fail_rate": 2.0}),
            json!({"milis": 5}),
        ] {
            let run = run_item(&Sleep, TestItem::new(0).params(bad.clone())).await;
            assert!(
                matches!(run.result, Err(JobError::Permanent(_))),
                "{bad}: {:?}",
                run.result
            );
        }
    }

    #[tokio::test]
    async fn sleep_journals_each_step_into_the_operators_directory() {
        let dir = tempfile::tempdir().unwrap();
        let job = Sleep::journaling_into(dir.path());
        let params = json!({"millis": 30, "steps": 3, "journal": "steps.log"});
        let run = run_item(&job, TestItem::new(2).attempt(4).params(params)).await;
        assert_eq!(run.result, Ok(ItemOutcome::Succeeded));
        let text = std::fs::read_to_string(dir.path().join("steps.log")).unwrap();
        let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(' ').collect()).collect();
        assert_eq!(lines.len(), 3, "{text}");
        for (k, fields) in lines.iter().enumerate() {
            assert_eq!(
                fields[..6],
                [
                    "test-run",
                    "test-job",
                    "2",
                    "4",
                    "test-executor",
                    &(k + 1).to_string()
                ],
                "{text}"
            );
            assert!(
                fields[6].parse::<i64>().unwrap() > 1_600_000_000_000,
                "{text}"
            );
        }
        // Progress reports each step.
        assert_eq!(run.progress.last().map(|p| p.done), Some(30));
    }

    #[tokio::test]
    async fn a_journal_is_refused_without_a_directory_or_outside_it() {
        let refused = run_item(&Sleep, TestItem::new(0).params(json!({"journal": "j"}))).await;
        assert!(
            matches!(refused.result, Err(JobError::Permanent(ref m)) if m.contains("--sleep-journal-dir")),
            "{:?}",
            refused.result
        );
        let dir = tempfile::tempdir().unwrap();
        let job = Sleep::journaling_into(dir.path().join("journals"));
        let long = "a".repeat(129);
        for name in [
            "../j",
            "/etc/passwd",
            "a/b",
            ".hidden",
            "",
            "..",
            long.as_str(),
        ] {
            let run = run_item(&job, TestItem::new(0).params(json!({"journal": name}))).await;
            assert!(
                matches!(run.result, Err(JobError::Permanent(ref m)) if m.contains("plain file name")),
                "{name}: {:?}",
                run.result
            );
        }
        assert!(!dir.path().join("j").exists());
        assert!(!dir.path().join("journals").exists());
    }

    #[tokio::test]
    async fn a_stubborn_sleep_keeps_stepping_when_cancelled() {
        let params = json!({"millis": 30, "steps": 3, "ignore_cancel": true});
        let item = TestItem::new(0).params(params);
        item.cancellation_token().cancel();
        let run = run_item(&Sleep, item).await;
        assert_eq!(run.result, Ok(ItemOutcome::Succeeded));
        assert_eq!(run.progress.len(), 4, "{:?}", run.progress);
        let item = TestItem::new(0).params(json!({"millis": 30, "steps": 3}));
        item.cancellation_token().cancel();
        let run = run_item(&Sleep, item).await;
        assert_eq!(run.result, Ok(ItemOutcome::Cancelled));
        let zero = run_item(&Sleep, TestItem::new(0).params(json!({"steps": 0}))).await;
        assert!(matches!(zero.result, Err(JobError::Permanent(_))));
    }

    #[test]
    fn fail_rate_fails_about_that_share_deterministically() {
        let failed = (0..10_000)
            .filter(|i| unit_hash(&format!("r/j/{i}"), 1) < 0.2)
            .count();
        assert!((1_700..2_300).contains(&failed), "{failed}");
        assert_eq!(unit_hash("r/j/1", 1), unit_hash("r/j/1", 1));
        assert_ne!(unit_hash("r/j/1", 1), unit_hash("r/j/1", 2));
    }
}
