//! Reading one `[jobs.<name>]` table, and the `[defaults]` it inherits from.
//!
//! A job's settings (retries, backoff, timeouts, strategy, failover) come
//! from the job table, else from `[defaults]`, else from the documented
//! built-in defaults in [`super::model`]. Both tables go through
//! [`read_setting`], so they accept exactly the same spellings and types.

use super::model::UnknownVariant;
use super::model::{
    JobSpec, Strategy, TriggerRule, DEFAULT_FAILOVER, DEFAULT_MAX_BACKOFF, DEFAULT_RETRIES,
    DEFAULT_RETRY_BACKOFF, MAX_RETRIES, MAX_SHARDS,
};
use super::suggest;
use super::values::{field, in_file_order, show_scalar, table_to_json, Key, Reader, Value};
use crate::duration::parse_duration;
use crate::ids::{HandlerName, JobName};
use std::ops::Range;
use std::str::FromStr;
use std::time::Duration;
use toml::de::{DeTable, DeValue};

/// Keys allowed in `[defaults]` (and, with [`JOB_ONLY_KEYS`], in a job).
pub(crate) const SETTING_KEYS: &[&str] = &[
    "retries",
    "retry_backoff",
    "max_backoff",
    "timeout",
    "item_timeout",
    "strategy",
    "failover",
];

/// Keys only a job table may have.
const JOB_ONLY_KEYS: &[&str] = &[
    "description",
    "handler",
    "shards",
    "shard_params",
    "params",
    "depends_on",
    "trigger_rule",
    "executor_labels",
];

/// Settings a job may inherit; `None` where this table does not set them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Settings {
    retries: Option<u32>,
    retry_backoff: Option<Duration>,
    max_backoff: Option<Duration>,
    timeout: Option<Duration>,
    item_timeout: Option<Duration>,
    strategy: Option<Strategy>,
    failover: Option<bool>,
}

/// A job read from its table, with the positions the DAG-wide checks need.
#[derive(Debug)]
pub(crate) struct JobDraft {
    pub(crate) spec: JobSpec,
    /// Each `depends_on` entry with the span of its string.
    pub(crate) deps: Vec<(JobName, Range<usize>)>,
}

/// Reads `[defaults]`.
pub(crate) fn read_defaults(reader: &mut Reader<'_>, table: &DeTable<'_>) -> Settings {
    reader.reject_unknown_keys(table, SETTING_KEYS);
    let mut settings = Settings::default();
    for (key, value) in in_file_order(table) {
        read_setting(reader, &mut settings, key.get_ref(), value);
    }
    settings
}

/// Reads one `[jobs.<name>]` table. Settings it leaves unset come from
/// `defaults`; `dag_params` is merged under the job's `params`.
pub(crate) fn read_job(
    reader: &mut Reader<'_>,
    name: &Key<'_>,
    table: &DeTable<'_>,
    defaults: &Settings,
    dag_params: &serde_json::Map<String, serde_json::Value>,
) -> JobDraft {
    let allowed: Vec<&str> = SETTING_KEYS.iter().chain(JOB_ONLY_KEYS).copied().collect();
    reader.reject_unknown_keys(table, &allowed);

    let mut spec = JobSpec::new(name.get_ref().as_ref());
    let mut own = Settings::default();
    let mut deps = Vec::new();
    let mut shards: Option<u32> = None;
    let mut params = dag_params.clone();

    for (key, value) in in_file_order(table) {
        let key: &str = key.get_ref();
        match key {
            "description" => spec.description = reader.expect_str(key, value).map(str::to_owned),
            "handler" => {
                if let Some(h) = reader.expect_str(key, value) {
                    if is_valid_handler(h) {
                        spec.handler = HandlerName::new(h);
                    } else {
                        reader.error(
                            value.span(),
                            format!("invalid handler name `{h}`: use letters, digits, `-`, `_`, `.` and `:`"),
                        );
                    }
                }
            }
            "shards" => {
                shards = reader
                    .expect_int_in(key, value, 1, i64::from(MAX_SHARDS))
                    .and_then(|n| u32::try_from(n).ok());
            }
            "shard_params" => spec.shard_params = read_shard_params(reader, value),
            "params" => {
                if let Some(own_params) = reader.expect_table(key, value) {
                    params.extend(table_to_json(reader, own_params));
                }
            }
            "depends_on" => deps = read_depends_on(reader, value),
            "executor_labels" => spec.executor_labels = read_labels(reader, value),
            "trigger_rule" => {
                if let Some(rule) = read_enum::<TriggerRule>(reader, key, value) {
                    spec.trigger_rule = rule;
                }
                if field(table, "depends_on").is_none() {
                    reader.warning(
                        value.span(),
                        "`trigger_rule` has no effect on a job without `depends_on`",
                    );
                }
            }
            other => {
                read_setting(reader, &mut own, other, value);
            }
        }
    }

    spec.shards = match (shards, &spec.shard_params) {
        (Some(n), Some(list)) => {
            if list.len() != n as usize {
                if let Some((_, v)) = field(table, "shard_params") {
                    reader.error(
                        v.span(),
                        format!(
                            "`shard_params` has {} entries but `shards` is {n} (give one entry per shard, or drop `shards`)",
                            list.len()
                        ),
                    );
                }
            }
            n
        }
        (Some(n), None) => n,
        // `read_shard_params` guarantees 1..=MAX_SHARDS entries.
        (None, Some(list)) => u32::try_from(list.len()).unwrap_or(MAX_SHARDS),
        (None, None) => 1,
    };
    spec.params = serde_json::Value::Object(params);
    spec.depends_on = Vec::new();
    for (dep, _) in &deps {
        if !spec.depends_on.contains(dep) {
            spec.depends_on.push(dep.clone());
        }
    }
    spec.retries = own.retries.or(defaults.retries).unwrap_or(DEFAULT_RETRIES);
    spec.retry_backoff = own
        .retry_backoff
        .or(defaults.retry_backoff)
        .unwrap_or(DEFAULT_RETRY_BACKOFF);
    spec.max_backoff = own
        .max_backoff
        .or(defaults.max_backoff)
        .unwrap_or(DEFAULT_MAX_BACKOFF);
    spec.timeout = own.timeout.or(defaults.timeout);
    spec.item_timeout = own.item_timeout.or(defaults.item_timeout);
    spec.strategy = own.strategy.or(defaults.strategy).unwrap_or_default();
    spec.failover = own
        .failover
        .or(defaults.failover)
        .unwrap_or(DEFAULT_FAILOVER);
    JobDraft { spec, deps }
}

/// Reads one inheritable setting into `settings`. Unknown keys were already
/// reported by the caller, so they are ignored here.
fn read_setting(reader: &mut Reader<'_>, settings: &mut Settings, key: &str, value: &Value<'_>) {
    match key {
        "retries" => {
            settings.retries = reader
                .expect_int_in(key, value, 0, i64::from(MAX_RETRIES))
                .and_then(|n| u32::try_from(n).ok());
        }
        "retry_backoff" => settings.retry_backoff = read_duration(reader, key, value, true),
        "max_backoff" => settings.max_backoff = read_duration(reader, key, value, false),
        "timeout" => settings.timeout = read_duration(reader, key, value, false),
        "item_timeout" => settings.item_timeout = read_duration(reader, key, value, false),
        "strategy" => settings.strategy = read_enum(reader, key, value),
        "failover" => settings.failover = reader.expect_bool(key, value),
        _ => {}
    }
}

/// A duration such as `"30s"`; zero is allowed only where `zero_ok`.
pub(crate) fn read_duration(
    reader: &mut Reader<'_>,
    key: &str,
    value: &Value<'_>,
    zero_ok: bool,
) -> Option<Duration> {
    let DeValue::String(text) = value.get_ref() else {
        reader.error(
            value.span(),
            format!(
                "`{key}`: expected a duration such as \"30s\" or \"1h30m\", found {}",
                super::values::type_name(value.get_ref())
            ),
        );
        return None;
    };
    match parse_duration(text) {
        Ok(d) if d.is_zero() && !zero_ok => {
            reader.error(value.span(), format!("`{key}` must be greater than zero"));
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            reader.error(
                value.span(),
                format!("invalid duration \"{text}\" for `{key}`: {e}"),
            );
            None
        }
    }
}

/// One of an enum's spellings, suggesting the closest on a typo.
pub(crate) fn read_enum<T>(reader: &mut Reader<'_>, key: &str, value: &Value<'_>) -> Option<T>
where
    T: FromStr<Err = UnknownVariant>,
{
    let text = reader.expect_str(key, value)?;
    match text.parse::<T>() {
        Ok(v) => Some(v),
        Err(e) => {
            let message = match suggest::closest(text, e.expected.iter().copied()) {
                Some(c) => format!("unknown {} `{}` (did you mean `{c}`?)", e.kind, e.value),
                None => e.to_string(),
            };
            reader.error(value.span(), message);
            None
        }
    }
}

fn read_shard_params(reader: &mut Reader<'_>, value: &Value<'_>) -> Option<Vec<String>> {
    let items = reader.expect_array("shard_params", value)?;
    if items.is_empty() {
        reader.error(
            value.span(),
            "`shard_params` must not be empty (drop it for items without parameters)",
        );
        return None;
    }
    if items.len() > MAX_SHARDS as usize {
        reader.error(
            value.span(),
            format!(
                "`shard_params` has {} entries; at most {MAX_SHARDS} shards are allowed",
                items.len()
            ),
        );
        return None;
    }
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for item in items {
        match item.get_ref() {
            DeValue::String(s) => out.push(s.to_string()),
            DeValue::Array(_) | DeValue::Table(_) => {
                reader.error(
                    item.span(),
                    format!(
                        "`shard_params` entries must be strings or numbers, found {}",
                        super::values::type_name(item.get_ref())
                    ),
                );
                ok = false;
            }
            scalar => out.push(show_scalar(scalar)),
        }
    }
    ok.then_some(out)
}

fn read_depends_on(reader: &mut Reader<'_>, value: &Value<'_>) -> Vec<(JobName, Range<usize>)> {
    let Some(items) = reader.expect_array("depends_on", value) else {
        return Vec::new();
    };
    let mut deps: Vec<(JobName, Range<usize>)> = Vec::new();
    for item in items {
        let Some(name) = reader.expect_str("depends_on", item) else {
            continue;
        };
        let name = JobName::new(name);
        if deps.iter().any(|(d, _)| *d == name) {
            reader.warning(
                item.span(),
                format!("`{name}` is listed twice in `depends_on`"),
            );
            continue;
        }
        deps.push((name, item.span()));
    }
    deps
}

/// Longest label key or value accepted in `executor_labels`.
const MAX_LABEL_LEN: usize = 63;

/// `executor_labels = { zone = "a" }`: string values, keys and values of
/// letters, digits, `-`, `_`, `.` (and `/` in keys), each at most 63 long.
fn read_labels(
    reader: &mut Reader<'_>,
    value: &Value<'_>,
) -> std::collections::BTreeMap<String, String> {
    let mut labels = std::collections::BTreeMap::new();
    let Some(table) = reader.expect_table("executor_labels", value) else {
        return labels;
    };
    if table.is_empty() {
        reader.warning(
            value.span(),
            "`executor_labels` is empty: any executor serving the handler can run the job",
        );
    }
    for (key, v) in in_file_order(table) {
        let name: &str = key.get_ref();
        if !is_valid_label(name, true) {
            reader.error(
                key.span(),
                format!("invalid label key `{name}`: use 1-63 letters, digits, `-`, `_`, `.`, `/`"),
            );
            continue;
        }
        let Some(text) = reader.expect_str(&format!("executor_labels.{name}"), v) else {
            continue;
        };
        if !is_valid_label(text, false) {
            reader.error(
                v.span(),
                format!("invalid label value \"{text}\" for `{name}`: use 1-63 letters, digits, `-`, `_`, `.`"),
            );
            continue;
        }
        labels.insert(name.to_owned(), text.to_owned());
    }
    labels
}

fn is_valid_label(text: &str, key: bool) -> bool {
    !text.is_empty()
        && text.len() <= MAX_LABEL_LEN
        && text.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') || (key && b == b'/')
        })
}

/// Handler names also allow `.` and `:` so that executors can namespace them
/// (`billing.ledger-postings`); they are never key segments on their own.
fn is_valid_handler(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}
