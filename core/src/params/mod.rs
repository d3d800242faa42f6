//! Job params against the params types handlers declare.
//!
//! An executor publishes, per handler, the JSON Schema of the type its
//! handler decodes params into (`ExecutorInfo::params_schemas`). This module
//! is the pure part of checking params before a run: how run params merge
//! over a job's ([`merge_run_params`], the one rule the leader uses), which
//! schemas the live executors publish for a handler ([`HandlerSchemas`]),
//! and whether a value fits one ([`schema::validate`]). Mapping a mismatch
//! back to `file:line:col` of a DAG is `dag::check_params`.
//!
//! **Architecture invariant:** no I/O; callers read the executor records.

pub mod schema;

use crate::ids::{HandlerName, JobName};
use nightshift_protocol::keyspace::ExecutorInfo;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

pub use schema::{path_text, validate, ErrorKind, PathSegment, SchemaError};

/// Run params over a job's params: objects merged key by key (a run param
/// replaces the job's param of the same name, whole); `null` run params
/// leave the job's; any other run params replace them.
pub fn merge_run_params(job: &Value, run: &Value) -> Value {
    match (job, run) {
        (Value::Object(j), Value::Object(r)) => {
            let mut out = j.clone();
            for (k, v) in r {
                out.insert(k.clone(), v.clone());
            }
            Value::Object(out)
        }
        (j, Value::Null) => j.clone(),
        (_, r) => r.clone(),
    }
}

/// What the live executors say about one handler's params.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Declared<'a> {
    /// No live executor offers the handler: nothing to check against (the
    /// job waits for an executor; one may come later).
    Unknown,
    /// Offered, but no executor declares a params type: any params go.
    Untyped,
    /// The distinct schemas executors publish (several during a rolling
    /// upgrade: params must fit each, since any of them may run the job).
    Typed(&'a [Value]),
}

/// The params schemas of the live executors, by handler.
#[derive(Debug, Clone, Default)]
pub struct HandlerSchemas {
    offered: BTreeSet<HandlerName>,
    schemas: BTreeMap<HandlerName, Vec<Value>>,
}

impl HandlerSchemas {
    /// Collects the handlers and schemas of `executors`.
    pub fn from_executors<'a>(executors: impl IntoIterator<Item = &'a ExecutorInfo>) -> Self {
        let mut out = Self::default();
        for info in executors {
            out.offered.extend(info.handlers.iter().cloned());
            for (handler, schema) in &info.params_schemas {
                let list = out.schemas.entry(handler.clone()).or_default();
                if !list.contains(schema) {
                    list.push(schema.clone());
                }
            }
        }
        out
    }

    /// What is declared for `handler`.
    pub fn declared(&self, handler: &HandlerName) -> Declared<'_> {
        match self.schemas.get(handler) {
            Some(list) => Declared::Typed(list),
            None if self.offered.contains(handler) => Declared::Untyped,
            None => Declared::Unknown,
        }
    }

    /// The mismatches of `params` against every schema declared for
    /// `handler` (duplicates dropped); empty when they fit or nothing is
    /// declared.
    pub fn check(&self, handler: &HandlerName, params: &Value) -> Vec<SchemaError> {
        let Declared::Typed(schemas) = self.declared(handler) else {
            return Vec::new();
        };
        let mut out: Vec<SchemaError> = Vec::new();
        for schema in schemas {
            for e in validate(schema, params) {
                if !out.contains(&e) {
                    out.push(e);
                }
            }
        }
        out
    }
}

/// Why a trigger's params are refused: the first job whose merged params do
/// not fit its handler, as one line for the command's outcome. `jobs` are
/// `(job, handler, job params)`; `None` when every job fits.
pub fn refuse_run_params<'a>(
    schemas: &HandlerSchemas,
    jobs: impl IntoIterator<Item = (&'a JobName, &'a HandlerName, &'a Value)>,
    run_params: &Value,
) -> Option<String> {
    for (job, handler, job_params) in jobs {
        let merged = merge_run_params(job_params, run_params);
        let errors = schemas.check(handler, &merged);
        if !errors.is_empty() {
            let reasons: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
            return Some(format!(
                "params of job {job} do not fit handler {handler}: {}",
                reasons.join("; ")
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn exec(handlers: &[&str], schemas: &[(&str, Value)]) -> ExecutorInfo {
        ExecutorInfo {
            id: nightshift_protocol::ids::ExecutorId::new("e1"),
            lease: 1,
            handlers: handlers.iter().map(|h| HandlerName::new(*h)).collect(),
            capacity: 1,
            labels: BTreeMap::new(),
            host: "h".into(),
            pid: 1,
            version: "0".into(),
            started_at_ms: 0,
            handler_capacity: BTreeMap::new(),
            params_schemas: schemas
                .iter()
                .map(|(h, s)| (HandlerName::new(*h), s.clone()))
                .collect(),
        }
    }

    fn strict(keys: &[&str]) -> Value {
        let props: serde_json::Map<String, Value> = keys
            .iter()
            .map(|k| ((*k).to_owned(), json!({"type": "integer"})))
            .collect();
        json!({"type": "object", "properties": props, "additionalProperties": false})
    }

    #[test]
    fn run_params_replace_job_params_key_by_key() {
        let job = json!({"a": 1, "b": {"x": 1}});
        assert_eq!(
            merge_run_params(&job, &json!({"b": 2, "c": 3})),
            json!({"a": 1, "b": 2, "c": 3})
        );
        assert_eq!(merge_run_params(&job, &Value::Null), job);
        assert_eq!(merge_run_params(&job, &json!(5)), json!(5));
    }

    #[test]
    fn declared_tells_unknown_untyped_and_typed_apart() {
        let execs = [
            exec(&["sleep", "noop"], &[("sleep", strict(&["millis"]))]),
            exec(&["sleep"], &[("sleep", strict(&["millis"]))]),
        ];
        let s = HandlerSchemas::from_executors(&execs);
        assert_eq!(s.declared(&HandlerName::new("other")), Declared::Unknown);
        assert_eq!(s.declared(&HandlerName::new("noop")), Declared::Untyped);
        // The same schema from two executors is one schema.
        assert!(
            matches!(s.declared(&HandlerName::new("sleep")), Declared::Typed(l) if l.len() == 1)
        );
    }

    #[test]
    fn params_must_fit_every_published_version_of_a_handler() {
        let execs = [
            exec(&["h"], &[("h", strict(&["a"]))]),
            exec(&["h"], &[("h", strict(&["a", "b"]))]),
        ];
        let s = HandlerSchemas::from_executors(&execs);
        let h = HandlerName::new("h");
        assert!(s.check(&h, &json!({"a": 1})).is_empty());
        // `b` is known to the newer executor only: the older one would refuse it.
        let errors = s.check(&h, &json!({"a": 1, "b": 2}));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].message.starts_with("unknown param `b`"),
            "{errors:?}"
        );
    }

    #[test]
    fn a_trigger_is_refused_naming_the_first_job_that_does_not_fit() {
        let s = HandlerSchemas::from_executors(&[exec(&["h", "free"], &[("h", strict(&["a"]))])]);
        let (j1, j2) = (JobName::new("first"), JobName::new("second"));
        let (free, h) = (HandlerName::new("free"), HandlerName::new("h"));
        let p = json!({"a": 1});
        let jobs = [(&j1, &free, &p), (&j2, &h, &p)];
        assert_eq!(refuse_run_params(&s, jobs, &json!({"a": 2})), None);
        let why = refuse_run_params(&s, jobs, &json!({"aa": 2})).unwrap_or_default();
        assert_eq!(
            why,
            "params of job second do not fit handler h: unknown param `aa` (did you mean `a`?)"
        );
    }
}
