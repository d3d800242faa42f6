//! The DAG and calendar parsers never panic, whatever the input, and every
//! rejection comes with at least one diagnostic pointing at a real line.

use nightshift_core::dag::{check_dag, parse_calendar, CalendarSet, DagSpec, Diagnostic};
use proptest::prelude::*;
use std::path::Path;

const VALID: &str = r#"description = "nightly loan settlement"
schedule    = "0 30 1 * * Mon-Fri"
timezone    = "Asia/Shanghai"
concurrency = "forbid"
misfire     = "fire_once"
deadline    = "05:00"
[defaults]
retries = 3
retry_backoff = "30s"
timeout = "1h"
strategy = "sticky"
failover = true
[jobs.interest-accrual]
shards = 16
params = { rate_table = "standard" }
[jobs.nightly-debits]
depends_on = ["interest-accrual"]
shard_params = ["north", "south", "east", "west"]
[jobs.ledger-postings]
depends_on = ["nightly-debits"]
trigger_rule = "all_success"
handler = "ledger-postings"
shards = 8
"#;

const CALENDAR: &str = "weekends = [\"sat\", \"sun\"]\nholidays = [2026-10-01, \"2026-10-02\"]\nworking_days = [2026-10-10]\n";

/// Checks the contract on one input: a valid result, or errors whose
/// positions name a real line and column.
fn check_outcome(text: &str, ok: bool, diagnostics: &[Diagnostic]) -> Result<(), TestCaseError> {
    let lines: Vec<&str> = text.lines().collect();
    if !ok {
        prop_assert!(
            diagnostics.iter().any(Diagnostic::is_error),
            "rejected without an error"
        );
    }
    for d in diagnostics {
        prop_assert!(
            d.line >= 1 && d.line <= lines.len().max(1),
            "line {} of {} in {:?}",
            d.line,
            lines.len(),
            d.message
        );
        let line_len = lines.get(d.line - 1).map_or(0, |l| l.chars().count());
        prop_assert!(
            d.col >= 1 && d.col <= line_len + 1,
            "col {} on a line of {} chars",
            d.col,
            line_len
        );
        prop_assert!(!d.message.is_empty());
        let _ = d.render();
    }
    Ok(())
}

fn check_dag_text(text: &str) -> Result<(), TestCaseError> {
    let (dag, diagnostics) = check_dag(Path::new("dags/fuzz.toml"), text, &CalendarSet::new());
    check_outcome(text, dag.is_some(), &diagnostics)?;
    if let Some(dag) = dag {
        // Whatever parses must survive the trip to the coordination store.
        let json = serde_json::to_string(&dag).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back: DagSpec =
            serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, dag);
    }
    Ok(())
}

fn check_calendar_text(text: &str) -> Result<(), TestCaseError> {
    match parse_calendar(Path::new("dags/calendars/fuzz.toml"), text) {
        Ok(_) => Ok(()),
        Err(diagnostics) => check_outcome(text, false, &diagnostics),
    }
}

#[derive(Debug, Clone)]
enum Edit {
    Delete(usize),
    Insert(usize, char),
    Replace(usize, char),
    SwapLines(usize, usize),
}

/// Characters that matter to TOML and to the DAG grammar, plus some noise.
fn interesting_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => prop::sample::select(vec!['"', '\'', '[', ']', '{', '}', '=', ',', '.', '#', '\n', ' ', '-', '_', ':', '0', '9', 'a', 's', '\\']),
        1 => any::<char>(),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), interesting_char()).prop_map(|(i, c)| Edit::Insert(i, c)),
        (any::<usize>(), interesting_char()).prop_map(|(i, c)| Edit::Replace(i, c)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for edit in edits {
        match *edit {
            Edit::Delete(i) if !chars.is_empty() => {
                chars.remove(i % chars.len());
            }
            Edit::Insert(i, c) => chars.insert(i % (chars.len() + 1), c),
            Edit::Replace(i, c) if !chars.is_empty() => {
                let n = chars.len();
                chars[i % n] = c;
            }
            Edit::SwapLines(a, b) => {
                let s: String = chars.iter().collect();
                let mut lines: Vec<&str> = s.split('\n').collect();
                let n = lines.len();
                lines.swap(a % n, b % n);
                chars = lines.join("\n").chars().collect();
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        check_dag_text(&text)?;
        check_calendar_text(&text)?;
    }

    #[test]
    fn arbitrary_strings_never_panic(text in "(?s).{0,300}") {
        check_dag_text(&text)?;
        check_calendar_text(&text)?;
    }

    #[test]
    fn toml_shaped_strings_never_panic(text in "([a-z_]{1,8} = (\"[a-z0-9 *-]{0,10}\"|[0-9]{1,3}|\\[\"[a-z]{1,3}\"\\]|true)\n|\\[jobs\\.[a-z]{1,3}\\]\n|\\[defaults\\]\n){0,12}") {
        check_dag_text(&text)?;
    }

    #[test]
    fn mutated_valid_dags_never_panic(edits in prop::collection::vec(edit(), 1..8)) {
        let text = apply(VALID, &edits);
        check_dag_text(&text)?;
    }

    #[test]
    fn mutated_calendars_never_panic(edits in prop::collection::vec(edit(), 1..6)) {
        let text = apply(CALENDAR, &edits);
        check_calendar_text(&text)?;
    }
}

#[test]
fn the_unmutated_inputs_are_valid() {
    let (dag, diagnostics) = check_dag(Path::new("dags/fuzz.toml"), VALID, &CalendarSet::new());
    assert!(dag.is_some(), "{diagnostics:#?}");
    assert!(parse_calendar(Path::new("c.toml"), CALENDAR).is_ok());
}
