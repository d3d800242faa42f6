//! Reading a DAG file: TOML text → spanned tree → [`DagSpec`], or every
//! problem found.
//!
//! The TOML parser recovers from syntax errors, so even a file with a syntax
//! error gets its keys and values checked. The DAG-wide checks (no jobs,
//! unknown dependencies, cycles) only run on a file that parsed cleanly: on a
//! broken file they would mostly report echoes of the syntax error.

use super::calendar_file::{CalendarLookup, CalendarSet};
use super::diagnostic::{Diagnostic, SourceText};
use super::job::{read_defaults, read_enum, read_job, JobDraft, Settings};
use super::model::{BusinessDatePolicy, ConcurrencyPolicy, DagSpec, MisfirePolicy};
use super::suggest::did_you_mean;
use super::validate::check_graph;
use super::values::{
    field, in_file_order, is_valid_name, prune_recovered, report_syntax_errors, table_to_json,
    Reader, Value,
};
use crate::ids::DagName;
use chrono::NaiveTime;
use chrono_tz::Tz;
use std::ops::Range;
use std::path::Path;
use toml::de::{DeTable, DeValue};

/// Keys allowed at the top of a DAG file.
const TOP_LEVEL_KEYS: &[&str] = &[
    "name",
    "description",
    "schedule",
    "timezone",
    "calendar",
    "concurrency",
    "misfire",
    "deadline",
    "business_date",
    "schedule_business_day",
    "defaults",
    "params",
    "jobs",
];

/// Where a DAG's name came from, so that a clash between two files can be
/// reported at the right spot.
pub(crate) struct Parsed {
    pub(crate) spec: DagSpec,
    /// The span of the `name` value, or `None` when the name is the file stem.
    pub(crate) name_span: Option<Range<usize>>,
}

/// Parses and validates one DAG file; see [`super::parse_dag`].
/// Returns the DAG when there is no error, and every diagnostic (errors and
/// warnings) either way.
pub(crate) fn parse(
    path: &Path,
    text: &str,
    calendars: &CalendarSet,
) -> (Option<Parsed>, Vec<Diagnostic>) {
    let mut reader = Reader::new(SourceText::new(path, text));
    let (mut root, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        prune_recovered(root.get_mut());
    }
    let syntax_ok = syntax_errors.is_empty();
    report_syntax_errors(&mut reader, syntax_errors);
    let root = root.get_ref();
    reader.reject_unknown_keys(root, TOP_LEVEL_KEYS);

    let (name, name_span) = read_name(&mut reader, path, root);
    let mut dag = DagSpec {
        name,
        description: None,
        schedule: None,
        timezone: Tz::UTC,
        calendar: None,
        concurrency: ConcurrencyPolicy::default(),
        misfire: MisfirePolicy::default(),
        deadline: None,
        business_date: BusinessDatePolicy::default(),
        schedule_business_day: None,
        jobs: Vec::new(),
    };
    let mut business_date_span: Option<Range<usize>> = None;
    let mut defaults = Settings::default();
    let mut dag_params = serde_json::Map::new();
    let mut jobs_value: Option<(Range<usize>, &Value<'_>)> = None;

    for (key, value) in in_file_order(root) {
        let key_text: &str = key.get_ref();
        match key_text {
            "description" => {
                dag.description = reader.expect_str(key_text, value).map(str::to_owned)
            }
            "schedule" => dag.schedule = read_schedule(&mut reader, value),
            "timezone" => {
                if let Some(tz) = read_timezone(&mut reader, value) {
                    dag.timezone = tz;
                }
            }
            "calendar" => dag.calendar = read_calendar_ref(&mut reader, value, calendars),
            "concurrency" => {
                dag.concurrency = read_enum(&mut reader, key_text, value).unwrap_or_default()
            }
            "misfire" => dag.misfire = read_enum(&mut reader, key_text, value).unwrap_or_default(),
            "deadline" => dag.deadline = read_deadline(&mut reader, value),
            "schedule_business_day" => {
                let n = reader
                    .expect_int_in(key_text, value, -31, 31)
                    .and_then(|n| i32::try_from(n).ok());
                if n == Some(0) {
                    reader.error(
                        value.span(),
                        "`schedule_business_day` counts from 1 (the first business day of the month) or from -1 (the last)",
                    );
                } else if field(root, "calendar").is_none() {
                    reader.error(
                        value.span(),
                        "`schedule_business_day` needs a `calendar` to say which days are business days",
                    );
                } else if field(root, "schedule").is_none() {
                    reader.error(
                        value.span(),
                        "`schedule_business_day` needs a `schedule` for the time of day (e.g. \"0 30 1 * * *\")",
                    );
                }
                dag.schedule_business_day = n.filter(|&n| n != 0);
            }
            "business_date" => {
                dag.business_date = read_enum(&mut reader, key_text, value).unwrap_or_default();
                business_date_span = Some(value.span());
            }
            "defaults" => {
                if let Some(t) = reader.expect_table(key_text, value) {
                    defaults = read_defaults(&mut reader, t);
                }
            }
            "params" => {
                if let Some(table) = reader.expect_table(key_text, value) {
                    dag_params = table_to_json(&mut reader, table);
                }
            }
            "jobs" => jobs_value = Some((key.span(), value)),
            _ => {}
        }
    }

    if let Some(span) = business_date_span {
        let has_calendar = field(root, "calendar").is_some();
        match dag.business_date {
            BusinessDatePolicy::PreviousBusinessDay if !has_calendar => reader.error(
                span,
                "`business_date = \"previous_business_day\"` needs a `calendar` to say which days are business days (without one, use \"previous_day\")",
            ),
            BusinessDatePolicy::PreviousDay if has_calendar => reader.error(
                span,
                "`business_date = \"previous_day\"` with a `calendar` would give non-business days as business dates (Monday's run would be for Sunday): use \"previous_business_day\"",
            ),
            _ => {}
        }
    }

    let mut drafts: Vec<JobDraft> = Vec::new();
    match jobs_value {
        None if syntax_ok => reader.error(
            0..0,
            "dag has no jobs: add at least one [jobs.<name>] table",
        ),
        None => {}
        Some((key_span, value)) => {
            if let Some(jobs) = reader.expect_table("jobs", value) {
                if jobs.is_empty() && syntax_ok {
                    reader.error(
                        key_span,
                        "dag has no jobs: add at least one [jobs.<name>] table",
                    );
                }
                for (job_key, job_value) in in_file_order(jobs) {
                    let job_name: &str = job_key.get_ref();
                    if !is_valid_name(job_name) {
                        reader.error(
                            job_key.span(),
                            format!(
                                "invalid job name `{job_name}`: use letters, digits, `-` and `_`"
                            ),
                        );
                    }
                    let DeValue::Table(table) = job_value.get_ref() else {
                        reader.error(
                            job_value.span(),
                            format!(
                                "job `{job_name}` must be a table ([jobs.{job_name}]), found {}",
                                super::values::type_name(job_value.get_ref())
                            ),
                        );
                        continue;
                    };
                    drafts.push(read_job(
                        &mut reader,
                        job_key,
                        table,
                        &defaults,
                        &dag_params,
                    ));
                }
            }
        }
    }

    if syntax_ok {
        check_graph(&mut reader, &drafts);
    }
    if reader.has_errors() {
        return (None, reader.into_diagnostics());
    }
    dag.jobs = drafts.into_iter().map(|d| d.spec).collect();
    (
        Some(Parsed {
            spec: dag,
            name_span,
        }),
        reader.into_diagnostics(),
    )
}

fn read_name(
    reader: &mut Reader<'_>,
    path: &Path,
    root: &DeTable<'_>,
) -> (DagName, Option<Range<usize>>) {
    if let Some((_, value)) = field(root, "name") {
        if let Some(name) = reader.expect_str("name", value) {
            if !is_valid_name(name) {
                reader.error(
                    value.span(),
                    format!("invalid dag name `{name}`: use letters, digits, `-` and `_`"),
                );
            }
            return (DagName::new(name), Some(value.span()));
        }
        return (DagName::new(""), Some(value.span()));
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !is_valid_name(&stem) {
        reader.error(
            0..0,
            format!(
                "the dag name `{stem}` taken from the file name is invalid: use letters, digits, `-` and `_`, or set `name = \"...\"`"
            ),
        );
    }
    (DagName::new(stem), None)
}

fn read_schedule(reader: &mut Reader<'_>, value: &Value<'_>) -> Option<String> {
    let text = reader.expect_str("schedule", value)?.trim();
    if text.is_empty() {
        reader.error(
            value.span(),
            "empty `schedule`: remove the key for a dag that only runs when triggered",
        );
        return None;
    }
    match crate::schedule::validate_cron(text) {
        Ok(()) => Some(text.to_owned()),
        Err(reason) => {
            // Keep messages on one line: some parsers draw a multi-line
            // picture whose last line is the explanation.
            let reason = reason
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid")
                .trim();
            reader.error(
                value.span(),
                format!("invalid cron schedule \"{text}\": {reason}"),
            );
            None
        }
    }
}

fn read_timezone(reader: &mut Reader<'_>, value: &Value<'_>) -> Option<Tz> {
    let text = reader.expect_str("timezone", value)?;
    match text.parse::<Tz>() {
        Ok(tz) => Some(tz),
        Err(_) => {
            let hint = match super::suggest::closest(
                text,
                chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()),
            ) {
                Some(c) => format!("did you mean `{c}`?"),
                None => "use an IANA name such as `Asia/Shanghai` or `UTC`".to_owned(),
            };
            reader.error(value.span(), format!("unknown time zone `{text}` ({hint})"));
            None
        }
    }
}

fn read_calendar_ref(
    reader: &mut Reader<'_>,
    value: &Value<'_>,
    calendars: &CalendarSet,
) -> Option<crate::calendar::Calendar> {
    let name = reader.expect_str("calendar", value)?;
    if !is_valid_name(name) {
        reader.error(
            value.span(),
            format!("invalid calendar name `{name}`: use letters, digits, `-` and `_`"),
        );
        return None;
    }
    match calendars.lookup(name) {
        CalendarLookup::Found(cal) => Some(cal.clone()),
        CalendarLookup::Invalid => {
            reader.error(
                value.span(),
                format!("calendar `{name}` has errors (see calendars/{name}.toml)"),
            );
            None
        }
        CalendarLookup::Missing => {
            let hint = did_you_mean(name, calendars.names());
            reader.error(value.span(), format!("unknown calendar `{name}`: no calendars/{name}.toml next to this dag file{hint}"));
            None
        }
    }
}

/// `"HH:MM"`, or a TOML local time with zero seconds (`deadline = 05:00:00`).
fn read_deadline(reader: &mut Reader<'_>, value: &Value<'_>) -> Option<NaiveTime> {
    let parsed = match value.get_ref() {
        DeValue::String(s) => parse_hh_mm(s),
        DeValue::Datetime(dt) => match (dt.date, dt.time, dt.offset) {
            (None, Some(t), None) if t.second == 0 && t.nanosecond == 0 => {
                NaiveTime::from_hms_opt(u32::from(t.hour), u32::from(t.minute), 0)
            }
            _ => None,
        },
        other => {
            reader.error(
                value.span(),
                format!(
                    "`deadline`: expected a time such as \"05:00\", found {}",
                    super::values::type_name(other)
                ),
            );
            return None;
        }
    };
    if parsed.is_none() {
        reader.error(
            value.span(),
            format!(
                "invalid deadline {}: expected HH:MM between 00:00 and 23:59",
                super::values::show_scalar(value.get_ref())
            ),
        );
    }
    parsed
}

fn parse_hh_mm(text: &str) -> Option<NaiveTime> {
    let (h, m) = text.split_once(':')?;
    let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(h) || !two_digits(m) {
        return None;
    }
    NaiveTime::from_hms_opt(h.parse().ok()?, m.parse().ok()?, 0)
}
