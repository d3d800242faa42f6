//! DAG file parsing: every kind of bad input gets its message at the right
//! `line:col`, and several errors come out together. (Valid files becoming
//! the expected model: `dag_model.rs`.)

use chrono::Weekday;
use nightshift_core::calendar::Calendar;
use nightshift_core::dag::{check_dag, parse_dag, CalendarSet, Severity};
use nightshift_core::ids::JobName;
use std::path::Path;

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

/// The errors of `source` as (line, col, message).
fn errors(source: &str) -> Vec<(usize, usize, String)> {
    let diagnostics = parse_dag(Path::new("dags/test.toml"), source, &calendars())
        .expect_err("the file should be rejected");
    diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| (d.line, d.col, d.message.clone()))
        .collect()
}

/// Asserts `source` has exactly one error, at `line:col`, whose message
/// contains `message`.
#[track_caller]
fn assert_one_error(source: &str, line: usize, col: usize, message: &str) {
    let found = errors(source);
    assert_eq!(found.len(), 1, "expected one error, got {found:#?}");
    let (l, c, m) = &found[0];
    assert!(
        m.contains(message),
        "message {m:?} does not contain {message:?}"
    );
    assert_eq!((*l, *c), (line, col), "wrong position for {m:?}");
}

const JOB: &str = "[jobs.a]\n";

#[test]
fn toml_syntax_error_is_reported_at_its_position() {
    assert_one_error(
        "description = \"x\nschedule = \"* * * * *\"\n[jobs.a]\n",
        1,
        17,
        "invalid toml",
    );
    assert_one_error("[jobs.a]\nshards = = 3\n", 2, 10, "invalid toml");
}

#[test]
fn unknown_key_suggests_the_closest_known_key() {
    assert_one_error(
        "[jobs.a]\nshard = 4\n",
        2,
        1,
        "unknown key `shard` (did you mean `shards`?)",
    );
    assert_one_error(
        "shedule = \"* * * * *\"\n[jobs.a]\n",
        1,
        1,
        "unknown key `shedule` (did you mean `schedule`?)",
    );
    assert_one_error(
        "[defaults]\nretires = 2\n[jobs.a]\n",
        2,
        1,
        "unknown key `retires` (did you mean `retries`?)",
    );
    // No close key: list what is allowed instead of guessing.
    assert_one_error(
        "[jobs.a]\ncolour = 4\n",
        2,
        1,
        "unknown key `colour` (expected one of:",
    );
}

#[test]
fn dependency_cycle_names_its_jobs_in_order() {
    let source = "[jobs.a]\ndepends_on = [\"c\"]\n[jobs.b]\ndepends_on = [\"a\"]\n[jobs.c]\ndepends_on = [\"b\"]\n";
    assert_one_error(source, 2, 15, "dependency cycle: a -> c -> b -> a");
    assert_one_error(
        "[jobs.solo]\ndepends_on = [\"solo\"]\n",
        2,
        15,
        "dependency cycle: solo -> solo",
    );
}

#[test]
fn two_separate_cycles_are_both_reported() {
    let source = "[jobs.a]\ndepends_on = [\"b\"]\n[jobs.b]\ndepends_on = [\"a\"]\n\
                  [jobs.x]\ndepends_on = [\"y\"]\n[jobs.y]\ndepends_on = [\"x\"]\n";
    let found = errors(source);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(
        found[0],
        (
            2,
            15,
            "dependency cycle: a -> b -> a (each job depends on the next)".into()
        )
    );
    assert_eq!(
        found[1],
        (
            6,
            15,
            "dependency cycle: x -> y -> x (each job depends on the next)".into()
        )
    );
}

#[test]
fn depends_on_an_unknown_job_is_reported_at_the_entry() {
    let source = "[jobs.accrual]\n[jobs.debits]\ndepends_on = [\"accrual\", \"acrual\"]\n";
    assert_one_error(
        source,
        3,
        26,
        "job `debits` depends on unknown job `acrual` (did you mean `accrual`?)",
    );
}

#[test]
fn invalid_cron_is_reported_at_the_schedule_value() {
    assert_one_error(
        &format!("schedule = \"0 61 * * *\"\n{JOB}"),
        1,
        12,
        "invalid cron schedule \"0 61 * * *\"",
    );
    assert_one_error(
        &format!("schedule = \"* * *\"\n{JOB}"),
        1,
        12,
        "or 6 (seconds first), found 3",
    );
    assert_one_error(
        &format!("schedule = \"\"\n{JOB}"),
        1,
        12,
        "empty `schedule`",
    );
}

#[test]
fn unknown_time_zone_suggests_a_real_one() {
    assert_one_error(
        &format!("timezone = \"Asia/Shangai\"\n{JOB}"),
        1,
        12,
        "unknown time zone `Asia/Shangai` (did you mean `Asia/Shanghai`?)",
    );
    assert_one_error(
        &format!("timezone = \"Mars/Olympus\"\n{JOB}"),
        1,
        12,
        "unknown time zone `Mars/Olympus` (use an IANA name",
    );
}

#[test]
fn bad_durations_are_reported_with_the_reason() {
    let cases = [
        (
            "timeout = \"10\"",
            "invalid duration \"10\" for `timeout`: missing unit",
        ),
        (
            "timeout = \"\"",
            "invalid duration \"\" for `timeout`: empty duration",
        ),
        ("retry_backoff = \"-1s\"", "durations cannot be negative"),
        ("item_timeout = \"1x\"", "unknown unit `x`"),
        (
            "timeout = \"99999999999999999999999d\"",
            "duration is too large",
        ),
        ("timeout = \"0s\"", "`timeout` must be greater than zero"),
        (
            "timeout = 30",
            "`timeout`: expected a duration such as \"30s\" or \"1h30m\", found an integer",
        ),
    ];
    for (line, message) in cases {
        let col = line.find('=').unwrap() + 3;
        assert_one_error(&format!("[jobs.a]\n{line}\n"), 2, col, message);
    }
}

#[test]
fn shards_out_of_range_are_rejected() {
    assert_one_error(
        "[jobs.a]\nshards = 0\n",
        2,
        10,
        "`shards` must be between 1 and 1000000, found 0",
    );
    assert_one_error(
        "[jobs.a]\nshards = 1000001\n",
        2,
        10,
        "`shards` must be between 1 and 1000000, found 1000001",
    );
    assert_one_error("[jobs.a]\nshards = -3\n", 2, 10, "found -3");
}

#[test]
fn shard_params_must_match_shards() {
    assert_one_error(
        "[jobs.a]\nshards = 3\nshard_params = [\"north\", \"south\"]\n",
        3,
        16,
        "`shard_params` has 2 entries but `shards` is 3",
    );
    assert_one_error(
        "[jobs.a]\nshard_params = [\"x\", \"y\", \"z\"]\nshards = 2\n",
        2,
        16,
        "`shard_params` has 3 entries but `shards` is 2",
    );
    assert_one_error(
        "[jobs.a]\nshard_params = []\n",
        2,
        16,
        "`shard_params` must not be empty",
    );
    assert_one_error(
        "[jobs.a]\nshard_params = [\"x\", { a = 1 }]\n",
        2,
        22,
        "entries must be strings or numbers, found a table",
    );
}

#[test]
fn unknown_enum_values_are_rejected_with_a_suggestion() {
    assert_one_error(
        &format!("concurrency = \"forbidd\"\n{JOB}"),
        1,
        15,
        "unknown concurrency policy `forbidd` (did you mean `forbid`?)",
    );
    assert_one_error(
        &format!("misfire = \"never\"\n{JOB}"),
        1,
        11,
        "unknown misfire policy `never` (expected one of: skip, fire_once, catch_up)",
    );
    assert_one_error(
        "[jobs.a]\nstrategy = \"round-robin\"\n",
        2,
        12,
        "unknown strategy `round-robin` (did you mean `round_robin`?)",
    );
    assert_one_error(
        "[jobs.a]\n[jobs.b]\ndepends_on = [\"a\"]\ntrigger_rule = \"all_sucess\"\n",
        4,
        16,
        "unknown trigger rule `all_sucess` (did you mean `all_success`?)",
    );
}

#[test]
fn missing_calendar_is_reported_at_the_calendar_value() {
    assert_one_error(
        &format!("calendar = \"cn-busines-days\"\n{JOB}"),
        1,
        12,
        "unknown calendar `cn-busines-days`: no calendars/cn-busines-days.toml next to this dag file (did you mean `cn-business-days`?)",
    );
    assert_one_error(
        &format!("calendar = \"broken-days\"\n{JOB}"),
        1,
        12,
        "calendar `broken-days` has errors",
    );
    assert_one_error(
        &format!("calendar = \"../etc\"\n{JOB}"),
        1,
        12,
        "invalid calendar name `../etc`",
    );
}

#[test]
fn deadline_must_be_hh_mm() {
    for bad in [
        "\"25:00\"",
        "\"5:00\"",
        "\"05:60\"",
        "\"5pm\"",
        "\"05:00:30\"",
    ] {
        assert_one_error(
            &format!("deadline = {bad}\n{JOB}"),
            1,
            12,
            "expected HH:MM between 00:00 and 23:59",
        );
    }
    assert_one_error(
        &format!("deadline = 5\n{JOB}"),
        1,
        12,
        "`deadline`: expected a time such as \"05:00\", found an integer",
    );
}

#[test]
fn wrong_value_types_say_what_was_expected_and_found() {
    assert_one_error(
        "[defaults]\nretries = \"3\"\n[jobs.a]\n",
        2,
        11,
        "`retries`: expected an integer, found a string",
    );
    assert_one_error(
        "[jobs.a]\nfailover = \"yes\"\n",
        2,
        12,
        "`failover`: expected a boolean (true or false), found a string",
    );
    assert_one_error(
        "[jobs.a]\ndepends_on = \"b\"\n[jobs.b]\n",
        2,
        14,
        "`depends_on`: expected an array, found a string",
    );
    assert_one_error(
        "[jobs.a]\nparams = 3\n",
        2,
        10,
        "`params`: expected a table, found an integer",
    );
    assert_one_error(
        "description = 42\n[jobs.a]\n",
        1,
        15,
        "`description`: expected a string, found an integer",
    );
    assert_one_error(
        "[jobs]\na = 3\n",
        2,
        5,
        "job `a` must be a table ([jobs.a]), found an integer",
    );
    assert_one_error(
        "[jobs.a]\nretries = 101\n",
        2,
        11,
        "`retries` must be between 0 and 100, found 101",
    );
}

#[test]
fn a_dag_without_jobs_is_rejected() {
    assert_one_error("description = \"nothing\"\n", 1, 1, "dag has no jobs");
    assert_one_error("", 1, 1, "dag has no jobs");
    assert_one_error("description = \"x\"\n[jobs]\n", 2, 2, "dag has no jobs");
}

#[test]
fn names_must_be_usable_as_key_segments() {
    assert_one_error("[jobs.\"bad name\"]\n", 1, 7, "invalid job name `bad name`");
    assert_one_error("[jobs.\"\"]\n", 1, 7, "invalid job name ``");
    assert_one_error("[jobs.\"a/b\"]\n", 1, 7, "invalid job name `a/b`");
    assert_one_error(
        "name = \"nightly settlement\"\n[jobs.a]\n",
        1,
        8,
        "invalid dag name `nightly settlement`",
    );
    let from_stem = parse_dag(Path::new("dags/my dag.toml"), JOB, &calendars()).unwrap_err();
    assert_eq!((from_stem[0].line, from_stem[0].col), (1, 1));
    assert!(from_stem[0]
        .message
        .contains("the dag name `my dag` taken from the file name is invalid"));
    assert_one_error(
        "[jobs.a]\nhandler = \"\"\n",
        2,
        11,
        "invalid handler name ``",
    );
}

#[test]
fn every_error_in_a_file_is_reported_at_once_in_file_order() {
    let source = "\
schedule = \"not a cron\"
timezone = \"Nowhere/City\"
[defaults]
retry_backoff = \"10\"
[jobs.a]
shard = 4
depends_on = [\"missing\"]
[jobs.b]
shards = 0
strategy = \"fastest\"
";
    let found = errors(source);
    let positions: Vec<(usize, usize)> = found.iter().map(|(l, c, _)| (*l, *c)).collect();
    assert_eq!(
        positions,
        [
            (1, 12),
            (2, 12),
            (4, 17),
            (6, 1),
            (7, 15),
            (9, 10),
            (10, 12)
        ],
        "{found:#?}"
    );
    assert!(found[3].2.contains("unknown key `shard`"));
    assert!(found[4].2.contains("unknown job `missing`"));
}

#[test]
fn a_syntax_error_does_not_hide_errors_elsewhere() {
    let source = "[jobs.a]\nshards = 0\nretries = = 1\n";
    let found = errors(source);
    assert!(
        found
            .iter()
            .any(|(l, c, m)| (*l, *c) == (2, 10) && m.contains("`shards`")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|(l, _, m)| *l == 3 && m.starts_with("invalid toml")),
        "{found:#?}"
    );
}

#[test]
fn warnings_do_not_reject_a_file() {
    let source = "[jobs.a]\ntrigger_rule = \"all_done\"\n[jobs.b]\ndepends_on = [\"a\", \"a\"]\n";
    let (dag, diagnostics) = check_dag(Path::new("w.toml"), source, &calendars());
    let dag = dag.expect("warnings only");
    assert_eq!(dag.jobs[1].depends_on, [JobName::new("a")]);
    let warnings: Vec<_> = diagnostics
        .iter()
        .map(|d| (d.severity, d.line, d.message.as_str()))
        .collect();
    assert_eq!(
        warnings,
        [
            (
                Severity::Warning,
                2,
                "`trigger_rule` has no effect on a job without `depends_on`"
            ),
            (Severity::Warning, 4, "`a` is listed twice in `depends_on`"),
        ]
    );
}
