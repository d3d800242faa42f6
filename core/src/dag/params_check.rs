//! Checking a parsed DAG's job params against the params schemas live
//! executors publish, and pointing each mismatch at `file:line:col`.
//!
//! A job's params are the DAG's `[params]` with the job's own `params`
//! merged over them key by key (see `job`), so a mismatch at `millis` is
//! reported where `millis` is written: in the job's table if it sets it,
//! else in the DAG's. The spec keeps no spans, so the text is parsed again
//! here — the file is already known to be valid, and this keeps the first
//! pass (which must not need executors) unchanged.

use super::diagnostic::{Diagnostic, Severity, SourceText};
use super::model::DagSpec;
use super::values::{field, Key, Value};
use crate::params::{Declared, ErrorKind, HandlerSchemas, PathSegment, SchemaError};
use std::ops::Range;
use std::path::Path;
use toml::de::{DeTable, DeValue};

/// Every job of `spec` (parsed from `source`, the text of `path`) whose
/// params do not fit its handler's published schema, as an error at the
/// offending param; and a warning for each job whose handler no live
/// executor offers (its params cannot be checked yet).
pub fn check_params(
    path: &Path,
    source: &str,
    spec: &DagSpec,
    schemas: &HandlerSchemas,
) -> Vec<Diagnostic> {
    let text = SourceText::new(path, source);
    let Ok(root) = DeTable::parse(source) else {
        return vec![Diagnostic::for_file(
            path,
            Severity::Error,
            "the file no longer parses: validate it again",
        )];
    };
    let root = root.get_ref();
    let dag_params = field(root, "params").and_then(|(_, v)| as_table(v));
    let jobs = field(root, "jobs").and_then(|(_, v)| as_table(v));
    let mut out = Vec::new();
    for job in &spec.jobs {
        let entry = jobs.and_then(|j| field(j, job.name.as_str()));
        let job_table = entry.and_then(|(_, v)| as_table(v));
        let job_span = entry.map_or(0..0, |(k, _)| k.span());
        let handler_span = job_table
            .and_then(|t| field(t, "handler"))
            .map_or(job_span.clone(), |(_, v)| v.span());
        match schemas.declared(&job.handler) {
            Declared::Unknown => {
                out.push(text.diagnostic(
                    handler_span,
                    Severity::Warning,
                    format!(
                        "no live executor offers handler `{}`: the params of job `{}` are not checked (the job would wait for an executor)",
                        job.handler, job.name
                    ),
                ));
                continue;
            }
            Declared::Untyped => continue,
            Declared::Typed(_) => {}
        }
        let own = job_table.and_then(|t| field(t, "params"));
        for error in schemas.check(&job.handler, &job.params) {
            let span = locate(&error, own, dag_params, &job_span);
            out.push(text.diagnostic(
                span,
                Severity::Error,
                format!(
                    "{} (job `{}`, handler `{}`)",
                    error.message, job.name, job.handler
                ),
            ));
        }
    }
    out.sort_by_key(|d| (d.line, d.col));
    out
}

fn as_table<'t, 'i>(value: &'t Value<'i>) -> Option<&'t DeTable<'i>> {
    match value.get_ref() {
        DeValue::Table(t) => Some(t),
        _ => None,
    }
}

/// Where `error` is in the file: at the key for an unknown key, at the
/// value otherwise; at the deepest part of the path that is written; at the
/// job's `params` key or its `[jobs.<name>]` header when nothing is.
fn locate(
    error: &SchemaError,
    own: Option<(&Key<'_>, &Value<'_>)>,
    dag_params: Option<&DeTable<'_>>,
    job_span: &Range<usize>,
) -> Range<usize> {
    let fallback = own.map_or(job_span.clone(), |(k, _)| k.span());
    let Some(PathSegment::Key(first)) = error.path.first() else {
        return fallback;
    };
    // The job's own value for a top-level key wins over the DAG's.
    let start = own
        .and_then(|(_, v)| as_table(v))
        .and_then(|t| field(t, first))
        .or_else(|| dag_params.and_then(|t| field(t, first)));
    let Some((mut key_span, mut value)) = start.map(|(k, v)| (k.span(), v)) else {
        return fallback;
    };
    for seg in &error.path[1..] {
        let next = match (seg, value.get_ref()) {
            (PathSegment::Key(k), DeValue::Table(t)) => field(t, k).map(|(k, v)| (k.span(), v)),
            (PathSegment::Index(i), DeValue::Array(items)) => items.get(*i).map(|v| (v.span(), v)),
            _ => None,
        };
        match next {
            Some((k, v)) => (key_span, value) = (k, v),
            // Written differently than the path says: point at what is there.
            None => return value.span(),
        }
    }
    match error.kind {
        ErrorKind::UnknownKey => key_span,
        _ => value.span(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::{parse_dag, CalendarSet};
    use nightshift_protocol::ids::{ExecutorId, HandlerName};
    use nightshift_protocol::keyspace::ExecutorInfo;
    use serde_json::json;

    fn executor(handlers: &[&str]) -> ExecutorInfo {
        let sleep = json!({
            "type": "object",
            "properties": {
                "millis": {"type": "integer", "minimum": 0},
                "steps": {"type": "integer", "minimum": 1},
                "nested": {"type": "object", "properties": {"list": {"type": "array", "items": {"type": "string"}}}}
            },
            "additionalProperties": false
        });
        ExecutorInfo {
            id: ExecutorId::new("e"),
            lease: 1,
            handlers: handlers.iter().map(|h| HandlerName::new(*h)).collect(),
            capacity: 1,
            labels: Default::default(),
            host: "h".into(),
            pid: 1,
            version: "0".into(),
            started_at_ms: 0,
            handler_capacity: Default::default(),
            params_schemas: [(HandlerName::new("sleep"), sleep)].into_iter().collect(),
        }
    }

    fn check(source: &str) -> Vec<(usize, usize, Severity, String)> {
        let path = Path::new("dags/x.toml");
        let spec = match parse_dag(path, source, &CalendarSet::new()) {
            Ok(spec) => spec,
            Err(e) => panic!("{e:?}"),
        };
        let schemas = HandlerSchemas::from_executors(&[executor(&["sleep", "noop"])]);
        check_params(path, source, &spec, &schemas)
            .into_iter()
            .map(|d| (d.line, d.col, d.severity, d.message))
            .collect()
    }

    #[test]
    fn a_misspelt_param_is_reported_at_its_key() {
        let found = check("[jobs.a]\nhandler = \"sleep\"\nparams = { milis = 5 }\n");
        assert_eq!(
            found,
            [(
                3,
                12,
                Severity::Error,
                "unknown param `milis` (did you mean `millis`?) (job `a`, handler `sleep`)".into()
            )]
        );
    }

    #[test]
    fn a_wrong_value_from_the_dag_params_is_reported_there() {
        let found = check("[params]\nmillis = \"5\"\n[jobs.a]\nhandler = \"sleep\"\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].0, found[0].1), (2, 10), "{found:?}");
        assert!(
            found[0].3.starts_with("param `millis` must be an integer"),
            "{found:?}"
        );
    }

    #[test]
    fn the_job_value_is_blamed_when_it_overrides_the_dag_value() {
        let src =
            "[params]\nmillis = 1\n[jobs.a]\nhandler = \"sleep\"\n[jobs.a.params]\nmillis = -1\n";
        let found = check(src);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].0, found[0].1), (6, 10), "{found:?}");
    }

    #[test]
    fn nested_mistakes_point_inside_arrays() {
        let src = "[jobs.a]\nhandler = \"sleep\"\nparams = { nested = { list = [\"a\", 2] } }\n";
        let found = check(src);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].0, found[0].1), (3, 36), "{found:?}");
        assert!(
            found[0].3.starts_with("param `nested.list[1]`"),
            "{found:?}"
        );
    }

    #[test]
    fn unknown_handlers_warn_and_untyped_ones_pass() {
        let src = "[jobs.a]\nhandler = \"later\"\nparams = { x = 1 }\n[jobs.b]\nhandler = \"noop\"\nparams = { x = 1 }\n";
        let found = check(src);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].0, found[0].1, found[0].2),
            (2, 11, Severity::Warning)
        );
        assert!(found[0].3.contains("handler `later`"), "{found:?}");
    }

    #[test]
    fn fitting_params_are_quiet() {
        assert!(
            check("[jobs.a]\nhandler = \"sleep\"\nparams = { millis = 5, steps = 2 }\n").is_empty()
        );
    }
}
