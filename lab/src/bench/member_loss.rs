//! `bench member-loss`: how long losing one etcd member stalls a run. On a
//! 3-member etcd (started here, each member on its own ports and data),
//! the same DAG — 2 chained jobs of `--items` 500 ms `sleep` items over 3
//! in-process executors of capacity 4 and a scheduler child, every client
//! given the three endpoints — runs three times: fault-free, with the etcd
//! leader member SIGKILLed once a quarter of the first job's items have
//! started, and with a follower SIGKILLed at the same point (the killed
//! member is restarted on its data after each run). The *stall* is a
//! faulty run's duration (run created → ended, by the scheduler's clock)
//! minus the fault-free one's, measured on the same cluster in the same
//! process so the machine's speed cancels out. `tests/etcd_member_loss.rs`
//! asserts the same bound with scheduler and executor processes.

use super::etcd::BenchEtcd;
use super::fleet::Fleet;
use super::report::{round3, Report};
use super::rig::{Deadline, Rig};
use anyhow::Context as _;
use nightshift_core::state::RunState;
use std::time::Duration;

const DAG: &str = "bench-member-loss";
/// The bound on the delay one lost member may cause.
const STALL_TARGET_S: f64 = 3.0;

/// Flags of `bench member-loss`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `sleep` items (500 ms each) in each of the two jobs.
    #[arg(long, default_value_t = 48)]
    pub items: u32,
    /// Give up when a run has not ended after this many seconds.
    #[arg(long, default_value_t = 180)]
    pub timeout_secs: u64,
}

/// Which member a run loses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loss {
    None,
    Leader,
    Follower,
}

fn dag_toml(items: u32) -> String {
    format!(
        "description = \"nightshift bench member-loss\"\ntimezone = \"UTC\"\n\n\
         [jobs.a]\nhandler = \"sleep\"\nshards = {items}\nparams = {{ millis = 500 }}\n\n\
         [jobs.b]\nhandler = \"sleep\"\nshards = {items}\nparams = {{ millis = 500 }}\n\
         depends_on = [\"a\"]\n"
    )
}

/// Runs the scenario on a 3-member etcd of its own (`--etcd` is not used:
/// the scenario must be able to kill members).
pub async fn run(args: &Args, raw_window: Duration) -> anyhow::Result<Report> {
    if args.items < 4 {
        anyhow::bail!("need --items ≥ 4");
    }
    let mut members = BenchEtcd::cluster(3).await?;
    let endpoints: Vec<String> = members.iter().map(|m| m.endpoint().to_owned()).collect();
    let rig = Rig::start(&endpoints).await?;
    let raw = rig.raw_put_rate(raw_window).await?;
    rig.apply(DAG, &dag_toml(args.items))?;
    let mut scheduler = rig.scheduler().await?;
    let fleet = Fleet::start(&rig, "member-loss", 3, Some(4)).await?;
    let store = rig.store().await?;
    let timeout = Duration::from_secs(args.timeout_secs);

    let mut durations = Vec::new();
    for loss in [Loss::None, Loss::Leader, Loss::Follower] {
        let started_before = fleet.items_started();
        let run_id = rig.trigger(DAG).await?;
        let mut killed = None;
        let deadline = Deadline::new("a member-loss run to end", timeout);
        let run = loop {
            scheduler.ensure_running()?;
            if killed.is_none()
                && loss != Loss::None
                && fleet.items_started() - started_before >= u64::from(args.items / 4)
            {
                killed = Some(kill(&mut members, loss).await?);
            }
            if let Some(run) = store.get_run(&run_id).await? {
                if run.state.is_terminal() {
                    break run;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            deadline.tick().await?;
        };
        if run.state != RunState::Succeeded {
            anyhow::bail!("run {run_id} ended {} (expected succeeded)", run.state);
        }
        let ended = run
            .ended_at_ms
            .context("an ended run without an end time")?;
        durations.push((ended - run.created_at_ms) as f64 / 1000.0);
        if let Some(i) = killed {
            members[i].restart().await?;
        }
    }
    fleet.stop().await?;
    let (free, leader, follower) = (durations[0], durations[1], durations[2]);
    let (leader_stall, follower_stall) = (leader - free, follower - free);

    let mut r = Report::new("member-loss");
    r.figure("items", args.items * 2, "");
    r.figure(
        "raw_etcd_puts_per_s",
        round3(raw),
        "puts/s (sequential, same etcd)",
    );
    r.figure("fault_free_run_s", round3(free), "s");
    r.figure("leader_lost_run_s", round3(leader), "s");
    r.figure("follower_lost_run_s", round3(follower), "s");
    r.figure(
        "leader_loss_stall_s",
        round3(leader_stall),
        "s beyond fault-free",
    );
    r.figure(
        "follower_loss_stall_s",
        round3(follower_stall),
        "s beyond fault-free",
    );
    r.target(
        "losing the etcd leader member",
        format!("≤ {STALL_TARGET_S} s stall"),
        format!("{leader_stall:.2} s"),
        leader_stall <= STALL_TARGET_S,
    );
    r.target(
        "losing a follower member",
        format!("≤ {STALL_TARGET_S} s stall"),
        format!("{follower_stall:.2} s"),
        follower_stall <= STALL_TARGET_S,
    );
    Ok(r)
}

/// SIGKILLs the member `loss` names; returns its index.
async fn kill(members: &mut [BenchEtcd], loss: Loss) -> anyhow::Result<usize> {
    let deadline = Deadline::new("an etcd leader member", Duration::from_secs(20));
    let leader = loop {
        let mut found = None;
        for (i, m) in members.iter().enumerate() {
            if m.is_leader().await {
                found = Some(i);
            }
        }
        if let Some(i) = found {
            break i;
        }
        deadline.tick().await?;
    };
    let victim = match loss {
        Loss::Leader => leader,
        _ => (leader + 1) % members.len(),
    };
    members[victim].kill();
    Ok(victim)
}
