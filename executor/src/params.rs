//! Typed job params: a handler declares the Rust type its params decode
//! into, and the executor publishes that type's JSON Schema with its
//! registration so that mistakes are caught before the night, not at 01:30.
//!
//! The flow: `#[derive(Deserialize, JsonSchema)] struct MyParams`, then
//! either [`ExecutorBuilder::handler_with_params`](crate::ExecutorBuilder::handler_with_params)
//! or [`Job::params_schema`](crate::Job::params_schema) names it;
//! [`ItemContext::params`](crate::ItemContext::params) decodes it in the
//! handler. `nightshift apply`, `nightshift validate --against` and the
//! leader (for a trigger's run params) check a job's merged params against
//! the published schema and refuse what does not fit.
//!
//! Why schemars: a derive is the only way a schema stays true to the type
//! as the type changes, and schemars follows serde's attributes
//! (`deny_unknown_fields`, `default`, `rename`, enums) — a hand-written
//! schema type would drift from the struct it describes. It is built
//! without default features (no chrono/uuid/… impls): six small crates.
//!
//! What is published is trimmed (no `$schema`, `title` or `description`,
//! so doc comments cost nothing) and bounded by
//! [`MAX_PARAMS_SCHEMA_BYTES`]: executor records are read on every leader
//! pass and must stay small.

use nightshift_protocol::keyspace::MAX_PARAMS_SCHEMA_BYTES;
use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde_json::{Map, Value};

/// The JSON Schema of a handler's params, as published in its executor's
/// registration. Make one with [`ParamsSchema::of`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamsSchema(Value);

impl ParamsSchema {
    /// The schema of `P` (draft 2020-12, trimmed of titles and
    /// descriptions). `P` should be the type the handler decodes with
    /// [`ItemContext::params`](crate::ItemContext::params); put
    /// `#[serde(deny_unknown_fields)]` on it so that a misspelt key is
    /// refused at apply instead of ignored.
    pub fn of<P: JsonSchema>() -> Self {
        let schema = SchemaSettings::draft2020_12()
            .into_generator()
            .into_root_schema_for::<P>();
        let mut value = schema.to_value();
        trim(&mut value);
        Self(value)
    }

    /// The schema as JSON.
    pub fn as_json(&self) -> &Value {
        &self.0
    }

    /// The schema as JSON, owned.
    pub fn into_json(self) -> Value {
        self.0
    }

    /// A schema as given (tests of the size bound).
    #[cfg(test)]
    pub(crate) fn from_json(schema: Value) -> Self {
        Self(schema)
    }

    /// Size of the compact JSON, in bytes.
    pub(crate) fn encoded_len(&self) -> usize {
        serde_json::to_vec(&self.0).map_or(usize::MAX, |v| v.len())
    }

    /// Whether it is small enough to publish.
    pub(crate) fn fits(&self) -> bool {
        self.encoded_len() <= MAX_PARAMS_SCHEMA_BYTES
    }
}

/// Keywords whose value is a map of name → subschema.
const SCHEMA_MAPS: &[&str] = &["properties", "$defs", "definitions", "patternProperties"];
/// Keywords whose value is one subschema.
const SCHEMA_ONE: &[&str] = &[
    "items",
    "additionalProperties",
    "not",
    "contains",
    "propertyNames",
    "if",
    "then",
    "else",
    "unevaluatedProperties",
    "unevaluatedItems",
];
/// Keywords whose value is a list of subschemas.
const SCHEMA_LISTS: &[&str] = &["anyOf", "oneOf", "allOf", "prefixItems"];
/// Annotations dropped from every (sub)schema: they do not constrain values.
const DROPPED: &[&str] = &["$schema", "title", "description", "examples"];

/// Drops annotations from a schema and its subschemas — only in schema
/// positions, so a property that happens to be named `description` stays.
fn trim(schema: &mut Value) {
    let Value::Object(map) = schema else {
        return;
    };
    for key in DROPPED {
        map.remove(*key);
    }
    for (key, value) in map.iter_mut() {
        if SCHEMA_MAPS.contains(&key.as_str()) {
            if let Value::Object(subs) = value {
                subs.values_mut().for_each(trim);
            }
        } else if SCHEMA_ONE.contains(&key.as_str()) {
            trim(value);
        } else if SCHEMA_LISTS.contains(&key.as_str()) {
            if let Value::Array(subs) = value {
                subs.iter_mut().for_each(trim);
            }
        }
    }
}

/// Params as a handler decodes them: a job without params (`null`) is an
/// empty object, so a params type whose fields all have defaults decodes.
pub(crate) fn as_object_or_null(params: &Value) -> Value {
    if params.is_null() {
        Value::Object(Map::new())
    } else {
        params.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// Sleep-like params: what the executor publishes for them.
    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Params {
        /// How long, in milliseconds (a doc comment: not published).
        #[serde(default)]
        millis: u64,
        description: Option<String>,
        mode: Mode,
    }

    #[derive(Deserialize, JsonSchema)]
    #[serde(rename_all = "snake_case")]
    #[allow(dead_code)]
    enum Mode {
        Fast,
        Slow,
    }

    #[test]
    fn the_schema_keeps_constraints_and_drops_annotations() {
        let schema = ParamsSchema::of::<Params>();
        let json = schema.as_json();
        assert_eq!(json["type"], "object");
        assert_eq!(json["additionalProperties"], false);
        assert!(json.get("$schema").is_none() && json.get("title").is_none());
        let props = &json["properties"];
        assert!(props["millis"].get("description").is_none(), "{json}");
        // A property named `description` is a property, not an annotation.
        assert!(props.get("description").is_some(), "{json}");
        assert_eq!(json["required"], serde_json::json!(["mode"]));
        assert!(schema.fits(), "{} bytes", schema.encoded_len());
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Typed {
        #[serde(default)]
        millis: u64,
    }

    #[tokio::test]
    async fn ctx_params_decodes_the_declared_type_and_refuses_a_typo_permanently() {
        use crate::testing::{run_item, TestItem};
        use crate::{job_fn, ItemContext, ItemOutcome, JobError};
        let job = job_fn(|ctx: ItemContext| async move {
            let params: Typed = ctx.params()?;
            assert_eq!(ctx.params_json().is_null(), params.millis == 0);
            Ok::<_, JobError>(ItemOutcome::Succeeded)
        });
        // No params at all: `{}`, and the defaults apply.
        assert!(run_item(&job, TestItem::new(0)).await.result.is_ok());
        let ok = TestItem::new(0).params(serde_json::json!({"millis": 5}));
        assert!(run_item(&job, ok).await.result.is_ok());
        let typo = TestItem::new(0).params(serde_json::json!({"milis": 5}));
        let err = run_item(&job, typo).await.result.err();
        assert!(
            err.as_ref()
                .is_some_and(|e| !e.is_retryable() && e.message().contains("unknown field `milis`")),
            "{err:?}"
        );
    }

    #[test]
    fn null_params_decode_as_an_empty_object() {
        assert_eq!(as_object_or_null(&Value::Null), serde_json::json!({}));
        assert_eq!(
            as_object_or_null(&serde_json::json!({"a": 1})),
            serde_json::json!({"a": 1})
        );
    }
}
