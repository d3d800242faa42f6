//! A valid DAG file becomes the expected model: defaults inherited, handler
//! and shards defaulted, JSON round trip, and the graph helpers.

use chrono::{NaiveTime, Weekday};
use nightshift_core::calendar::Calendar;
use nightshift_core::dag::{
    parse_dag, CalendarLookup, CalendarSet, ConcurrencyPolicy, DagSpec, JobSpec, MisfirePolicy,
    Strategy, TriggerRule,
};
use nightshift_core::ids::{DagName, HandlerName, ItemIndex, JobName};
use std::path::Path;
use std::time::Duration;

fn calendars() -> CalendarSet {
    let mut set = CalendarSet::new();
    set.insert(Calendar {
        name: "cn-business-days".into(),
        weekends: [Weekday::Sat, Weekday::Sun].into(),
        ..Calendar::default()
    });
    set.insert_invalid("broken-days");
    set
}

const VALID: &str = r#"
description = "nightly loan settlement"
schedule    = "0 30 1 * * Mon-Fri"
timezone    = "Asia/Shanghai"
calendar    = "cn-business-days"
concurrency = "replace"
misfire     = "catch_up"
deadline    = "05:00"

[defaults]
retries = 3
retry_backoff = "30s"
timeout = "1h"
strategy = "average"

[params]
currency = "CNY"
region = "all"

[jobs.interest-accrual]
shards = 16
params = { rate_table = "standard", region = "east" }

[jobs.nightly-debits]
depends_on = ["interest-accrual"]
shard_params = ["north", "south", 3, true]
retries = 5
failover = false

[jobs.ledger-postings]
description = "post to the ledger"
depends_on = ["nightly-debits"]
trigger_rule = "none_failed"
handler = "ledger.post"
shards = 8
strategy = "hash"
retry_backoff = "1m"
max_backoff = "3m"
item_timeout = "90s"
"#;

#[test]
fn a_valid_file_becomes_the_expected_model() {
    let dag = parse_dag(
        Path::new("dags/nightly-settlement.toml"),
        VALID,
        &calendars(),
    )
    .unwrap();

    let mut accrual = JobSpec::new("interest-accrual");
    accrual.shards = 16;
    accrual.params =
        serde_json::json!({"currency": "CNY", "region": "east", "rate_table": "standard"});
    accrual.retries = 3;
    accrual.retry_backoff = Duration::from_secs(30);
    accrual.timeout = Some(Duration::from_secs(3600));
    accrual.strategy = Strategy::Average;

    let mut debits = JobSpec::new("nightly-debits");
    debits.shards = 4;
    debits.shard_params = Some(vec![
        "north".into(),
        "south".into(),
        "3".into(),
        "true".into(),
    ]);
    debits.params = serde_json::json!({"currency": "CNY", "region": "all"});
    debits.depends_on = vec![JobName::new("interest-accrual")];
    debits.retries = 5;
    debits.retry_backoff = Duration::from_secs(30);
    debits.timeout = Some(Duration::from_secs(3600));
    debits.strategy = Strategy::Average;
    debits.failover = false;

    let mut ledger = JobSpec::new("ledger-postings");
    ledger.description = Some("post to the ledger".into());
    ledger.handler = HandlerName::new("ledger.post");
    ledger.shards = 8;
    ledger.params = serde_json::json!({"currency": "CNY", "region": "all"});
    ledger.depends_on = vec![JobName::new("nightly-debits")];
    ledger.trigger_rule = TriggerRule::NoneFailed;
    ledger.retries = 3;
    ledger.retry_backoff = Duration::from_secs(60);
    ledger.max_backoff = Duration::from_secs(180);
    ledger.timeout = Some(Duration::from_secs(3600));
    ledger.item_timeout = Some(Duration::from_secs(90));
    ledger.strategy = Strategy::Hash;

    let expected = DagSpec {
        name: DagName::new("nightly-settlement"),
        description: Some("nightly loan settlement".into()),
        schedule: Some("0 30 1 * * Mon-Fri".into()),
        timezone: chrono_tz::Asia::Shanghai,
        calendar: calendars_cn(),
        concurrency: ConcurrencyPolicy::Replace,
        misfire: MisfirePolicy::CatchUp,
        deadline: Some(NaiveTime::from_hms_opt(5, 0, 0).unwrap()),
        business_date: Default::default(),
        schedule_business_day: None,
        jobs: vec![accrual, debits, ledger],
    };
    assert_eq!(dag, expected);
    assert_eq!(
        dag.jobs[0].handler,
        HandlerName::new("interest-accrual"),
        "handler defaults to the job name"
    );
    assert_eq!(dag.jobs[1].shard_param(ItemIndex(1)), Some("south"));
    assert_eq!(dag.jobs[2].retry_delay(1), Duration::from_secs(60));
    assert_eq!(dag.jobs[2].retry_delay(2), Duration::from_secs(120));
    assert_eq!(
        dag.jobs[2].retry_delay(3),
        Duration::from_secs(180),
        "capped at max_backoff"
    );
}

fn calendars_cn() -> Option<Calendar> {
    match calendars().lookup("cn-business-days") {
        CalendarLookup::Found(c) => Some(c.clone()),
        _ => None,
    }
}

#[test]
fn defaults_apply_when_nothing_is_set() {
    let dag = parse_dag(
        Path::new("dags/minimal.toml"),
        "[jobs.only]\n",
        &CalendarSet::new(),
    )
    .unwrap();
    assert_eq!(dag.name, DagName::new("minimal"));
    assert_eq!(dag.schedule, None);
    assert_eq!(dag.timezone, chrono_tz::UTC);
    assert_eq!(dag.concurrency, ConcurrencyPolicy::Forbid);
    assert_eq!(dag.misfire, MisfirePolicy::FireOnce);
    assert_eq!(dag.jobs, vec![JobSpec::new("only")]);
    let job = &dag.jobs[0];
    assert_eq!((job.shards, job.retries, job.failover), (1, 0, true));
    assert_eq!(
        (job.retry_backoff, job.max_backoff),
        (Duration::from_secs(10), Duration::from_secs(600))
    );
    assert_eq!(
        (job.timeout, job.strategy, job.trigger_rule),
        (None, Strategy::Sticky, TriggerRule::AllSuccess)
    );
}

#[test]
fn name_key_overrides_the_file_stem_and_deadline_accepts_a_toml_time() {
    let dag = parse_dag(
        Path::new("x.toml"),
        "name = \"renamed\"\ndeadline = 05:30:00\n[jobs.a]\n",
        &CalendarSet::new(),
    )
    .unwrap();
    assert_eq!(dag.name, DagName::new("renamed"));
    assert_eq!(dag.deadline, NaiveTime::from_hms_opt(5, 30, 0));
}

#[test]
fn the_model_round_trips_through_json_with_readable_values() {
    let dag = parse_dag(
        Path::new("dags/nightly-settlement.toml"),
        VALID,
        &calendars(),
    )
    .unwrap();
    let json = serde_json::to_value(&dag).unwrap();
    assert_eq!(json["timezone"], "Asia/Shanghai");
    assert_eq!(json["concurrency"], "replace");
    assert_eq!(json["jobs"][2]["retry_backoff"], "1m");
    assert_eq!(json["jobs"][2]["strategy"], "hash");
    assert_eq!(json["calendar"]["name"], "cn-business-days");
    let back: DagSpec = serde_json::from_value(json).unwrap();
    assert_eq!(back, dag);
}

#[test]
fn graph_helpers_follow_dependencies_and_file_order() {
    let source = "[jobs.report]\ndepends_on = [\"recon\"]\n[jobs.accrual]\n[jobs.fx]\n\
                  [jobs.debits]\ndepends_on = [\"accrual\"]\n[jobs.recon]\ndepends_on = [\"debits\", \"fx\"]\n";
    let dag = parse_dag(Path::new("g.toml"), source, &CalendarSet::new()).unwrap();
    let names = |v: Vec<JobName>| {
        v.into_iter()
            .map(|j| j.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(dag.topo_order()),
        ["accrual", "fx", "debits", "recon", "report"]
    );
    assert_eq!(
        names(dag.upstream(&JobName::new("recon"))),
        ["fx", "debits"]
    );
    assert_eq!(names(dag.downstream(&JobName::new("accrual"))), ["debits"]);
    assert_eq!(names(dag.roots()), ["accrual", "fx"]);
    assert!(dag.upstream(&JobName::new("nope")).is_empty());
}
