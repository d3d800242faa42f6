//! A JSON Schema checker for the subset schemars emits for serde types.
//!
//! The question it answers is "would the handler's params type decode this
//! JSON?", not full JSON Schema conformance; where the two differ it sides
//! with decoding. So:
//! - `integer` means a JSON integer, as serde_json sees it (`1.0` is not an
//!   integer to serde, and TOML keeps `1` and `1.0` apart);
//! - `oneOf` is read as `anyOf`: serde takes the first variant that
//!   decodes, matching two is not an error;
//! - keywords it does not know (`pattern`, `format`, `if`, `multipleOf`,
//!   `patternProperties`, …) constrain nothing: an unknown keyword can
//!   make it miss a mistake (the handler then fails as before), never
//!   refuse params that decode.
//!
//! Supported: boolean schemas, `type` (one or a list), `enum`, `const`,
//! `properties`, `required`, `additionalProperties`, `items` (a schema, or
//! draft-07's list), `prefixItems`, `minItems`/`maxItems`,
//! `minLength`/`maxLength`, `minimum`/`maximum` and their exclusive forms,
//! `anyOf`/`oneOf`/`allOf`/`not`, OpenAPI's `nullable`, and `$ref` into the
//! same document (`#/$defs/…`, `#/definitions/…`, `#`).
//!
//! Why not the `jsonschema` crate: it brings regex engines, an HTTP
//! resolver and dozens of crates into every binary for a few keywords.

use crate::dag::suggest;
use serde_json::{Map, Number, Value};
use std::fmt;

/// Deepest `$ref` chain followed (a recursive type refers to itself).
const MAX_DEPTH: usize = 64;

/// One step into a JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    /// An object key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// What kind of mismatch a [`SchemaError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A key the schema does not allow; the path ends at that key.
    UnknownKey,
    /// A required key is absent; the path is the object that lacks it.
    MissingKey,
    /// The value has the wrong JSON type.
    Type,
    /// The value has the right type but is not allowed (enum, range, length).
    Value,
}

/// Where params do not fit a schema, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError {
    /// Path from the params' root to the offending value (or key).
    pub path: Vec<PathSegment>,
    /// What kind of mismatch.
    pub kind: ErrorKind,
    /// What is wrong, lowercase, naming the param.
    pub message: String,
}

/// Renders a path the way a user writes it: `accounts[2].id`; the root is
/// `params`.
pub fn path_text(path: &[PathSegment]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            PathSegment::Key(k) if out.is_empty() => out.push_str(k),
            PathSegment::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            PathSegment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    if out.is_empty() {
        "params".to_owned()
    } else {
        out
    }
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Every way `value` does not fit `schema` (empty: it fits).
pub fn validate(schema: &Value, value: &Value) -> Vec<SchemaError> {
    let mut checker = Checker {
        root: schema,
        path: Vec::new(),
        errors: Vec::new(),
    };
    checker.check(schema, value, 0);
    checker.errors
}

struct Checker<'s> {
    root: &'s Value,
    path: Vec<PathSegment>,
    errors: Vec<SchemaError>,
}

impl<'s> Checker<'s> {
    fn error(&mut self, kind: ErrorKind, message: String) {
        self.errors.push(SchemaError {
            path: self.path.clone(),
            kind,
            message,
        });
    }

    fn here(&self) -> String {
        format!("`{}`", path_text(&self.path))
    }

    fn check(&mut self, schema: &'s Value, value: &Value, depth: usize) {
        let map = match schema {
            Value::Bool(true) => return,
            Value::Bool(false) => {
                let msg = format!("param {} is not allowed", self.here());
                return self.error(ErrorKind::UnknownKey, msg);
            }
            Value::Object(map) => map,
            // Not a schema: constrains nothing.
            _ => return,
        };
        if value.is_null() && map.get("nullable") == Some(&Value::Bool(true)) {
            return;
        }
        if let Some(Value::String(reference)) = map.get("$ref") {
            if depth < MAX_DEPTH {
                if let Some(target) = resolve(self.root, reference) {
                    self.check(target, value, depth + 1);
                }
            }
        }
        if let Some(types) = map.get("type") {
            if !type_matches(types, value) {
                let msg = format!(
                    "param {} must be {}, found {}",
                    self.here(),
                    type_list(types),
                    describe(value)
                );
                return self.error(ErrorKind::Type, msg);
            }
        }
        if let Some(Value::Array(allowed)) = map.get("enum") {
            if !allowed.iter().any(|a| same(a, value)) {
                let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
                let msg = format!(
                    "param {} must be one of {}, found {}",
                    self.here(),
                    list.join(", "),
                    value
                );
                self.error(ErrorKind::Value, msg);
            }
        }
        if let Some(expected) = map.get("const") {
            if !same(expected, value) {
                let msg = format!("param {} must be {expected}, found {value}", self.here());
                self.error(ErrorKind::Value, msg);
            }
        }
        match value {
            Value::Number(n) => self.check_number(map, n),
            Value::String(s) => self.check_length(map, s.chars().count(), "characters"),
            Value::Array(items) => self.check_array(map, items, depth),
            Value::Object(fields) => self.check_object(map, fields, depth),
            Value::Null | Value::Bool(_) => {}
        }
        if let Some(Value::Array(all)) = map.get("allOf") {
            for sub in all {
                self.check(sub, value, depth + 1);
            }
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(branches)) = map.get(key) {
                self.check_any(branches, value, depth);
            }
        }
        if let Some(not) = map.get("not") {
            if self.fits(not, value, depth) {
                let msg = format!("param {} has a value that is not allowed", self.here());
                self.error(ErrorKind::Value, msg);
            }
        }
    }

    /// Errors of `value` against `schema`, without recording them.
    fn trial(&mut self, schema: &'s Value, value: &Value, depth: usize) -> Vec<SchemaError> {
        let saved = std::mem::take(&mut self.errors);
        self.check(schema, value, depth + 1);
        std::mem::replace(&mut self.errors, saved)
    }

    fn fits(&mut self, schema: &'s Value, value: &Value, depth: usize) -> bool {
        self.trial(schema, value, depth).is_empty()
    }

    /// `anyOf` (and `oneOf`, see the module docs): the first branch that
    /// fits wins; otherwise the errors of the closest branch — one whose
    /// type matched, with the fewest errors — or one type error.
    fn check_any(&mut self, branches: &'s [Value], value: &Value, depth: usize) {
        if branches.is_empty() {
            return;
        }
        let here = self.path.len();
        let mut best: Option<Vec<SchemaError>> = None;
        for branch in branches {
            let errors = self.trial(branch, value, depth);
            if errors.is_empty() {
                return;
            }
            let type_matched = !errors
                .iter()
                .any(|e| e.kind == ErrorKind::Type && e.path.len() == here);
            if type_matched && best.as_ref().is_none_or(|b| errors.len() < b.len()) {
                best = Some(errors);
            }
        }
        match best {
            Some(errors) => self.errors.extend(errors),
            None => {
                let msg = format!(
                    "param {} does not fit any allowed form, found {}",
                    self.here(),
                    describe(value)
                );
                self.error(ErrorKind::Type, msg);
            }
        }
    }

    fn check_number(&mut self, map: &Map<String, Value>, n: &Number) {
        let Some(x) = n.as_f64() else {
            return;
        };
        let bound = |key: &str| map.get(key).and_then(Value::as_f64);
        let here = self.here();
        if let Some(min) = bound("minimum").filter(|m| x < *m) {
            self.error(
                ErrorKind::Value,
                format!("param {here} must be at least {}, found {n}", show(min)),
            );
        }
        if let Some(max) = bound("maximum").filter(|m| x > *m) {
            self.error(
                ErrorKind::Value,
                format!("param {here} must be at most {}, found {n}", show(max)),
            );
        }
        if let Some(min) = bound("exclusiveMinimum").filter(|m| x <= *m) {
            self.error(
                ErrorKind::Value,
                format!("param {here} must be above {}, found {n}", show(min)),
            );
        }
        if let Some(max) = bound("exclusiveMaximum").filter(|m| x >= *m) {
            self.error(
                ErrorKind::Value,
                format!("param {here} must be below {}, found {n}", show(max)),
            );
        }
    }

    fn check_length(&mut self, map: &Map<String, Value>, len: usize, unit: &str) {
        let (min_key, max_key) = if unit == "items" {
            ("minItems", "maxItems")
        } else {
            ("minLength", "maxLength")
        };
        let len64 = len as u64;
        let here = self.here();
        if let Some(min) = map.get(min_key).and_then(Value::as_u64) {
            if len64 < min {
                self.error(
                    ErrorKind::Value,
                    format!("param {here} must have at least {min} {unit}, found {len}"),
                );
            }
        }
        if let Some(max) = map.get(max_key).and_then(Value::as_u64) {
            if len64 > max {
                self.error(
                    ErrorKind::Value,
                    format!("param {here} must have at most {max} {unit}, found {len}"),
                );
            }
        }
    }

    fn check_array(&mut self, map: &'s Map<String, Value>, items: &[Value], depth: usize) {
        self.check_length(map, items.len(), "items");
        // 2020-12: `prefixItems` then `items` for the rest; draft-07:
        // `items` as a list is the prefix (and the rest is free).
        let (prefix, rest): (&'s [Value], Option<&'s Value>) =
            match (map.get("prefixItems"), map.get("items")) {
                (Some(Value::Array(p)), rest) => (p.as_slice(), rest),
                (None, Some(Value::Array(p))) => (p.as_slice(), None),
                (_, rest) => (&[], rest),
            };
        for (i, item) in items.iter().enumerate() {
            let schema = prefix
                .get(i)
                .or(if i >= prefix.len() { rest } else { None });
            if let Some(schema) = schema {
                self.path.push(PathSegment::Index(i));
                self.check(schema, item, depth + 1);
                self.path.pop();
            }
        }
    }

    fn check_object(
        &mut self,
        map: &'s Map<String, Value>,
        fields: &Map<String, Value>,
        depth: usize,
    ) {
        let props = match map.get("properties") {
            Some(Value::Object(p)) => Some(p),
            _ => None,
        };
        if let Some(Value::Array(required)) = map.get("required") {
            for name in required.iter().filter_map(Value::as_str) {
                if !fields.contains_key(name) {
                    let mut missing = self.path.clone();
                    missing.push(PathSegment::Key(name.to_owned()));
                    let msg = format!("missing required param `{}`", path_text(&missing));
                    self.error(ErrorKind::MissingKey, msg);
                }
            }
        }
        // Without a regex engine `patternProperties` cannot be checked: keys
        // it might cover are let through.
        let extra = match map.get("additionalProperties") {
            _ if map.contains_key("patternProperties") => None,
            Some(schema) => Some(schema),
            None => None,
        };
        for (key, field) in fields {
            self.path.push(PathSegment::Key(key.clone()));
            match (props.and_then(|p| p.get(key)), extra) {
                (Some(schema), _) => self.check(schema, field, depth + 1),
                (None, Some(Value::Bool(false))) => {
                    let known = props.map(|p| p.keys().map(String::as_str).collect::<Vec<_>>());
                    let known = known.unwrap_or_default();
                    let hint = match suggest::closest(key, known.iter().copied()) {
                        Some(c) => format!(" (did you mean `{c}`?)"),
                        None if known.is_empty() => " (this handler takes no params)".to_owned(),
                        None => format!(" (expected one of: {})", known.join(", ")),
                    };
                    let msg = format!("unknown param `{}`{hint}", path_text(&self.path));
                    self.error(ErrorKind::UnknownKey, msg);
                }
                (None, Some(schema)) => self.check(schema, field, depth + 1),
                (None, None) => {}
            }
            self.path.pop();
        }
    }
}

/// The subschema `reference` points at, within the same document.
fn resolve<'s>(root: &'s Value, reference: &str) -> Option<&'s Value> {
    let pointer = reference.strip_prefix('#')?;
    if pointer.is_empty() {
        return Some(root);
    }
    root.pointer(pointer)
}

fn type_matches(types: &Value, value: &Value) -> bool {
    match types {
        Value::String(t) => one_type_matches(t, value),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .any(|t| one_type_matches(t, value)),
        _ => true,
    }
}

fn one_type_matches(t: &str, value: &Value) -> bool {
    match t {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        // An unknown type name constrains nothing.
        _ => true,
    }
}

/// Plain JSON equality: `1` and `1.0` differ, as they do to serde.
fn same(a: &Value, b: &Value) -> bool {
    a == b
}

fn type_list(types: &Value) -> String {
    let names: Vec<&str> = match types {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let words: Vec<String> = names.iter().map(|t| article(t)).collect();
    match words.as_slice() {
        [] => "a value".to_owned(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn article(t: &str) -> String {
    match t {
        "null" => "null".to_owned(),
        "integer" | "object" | "array" => format!("an {t}"),
        other => format!("a {other}"),
    }
}

/// `a string ("x")`, `an integer (5)`, …: what was found.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("a boolean ({b})"),
        Value::Number(n) if n.is_f64() => format!("a float ({n})"),
        Value::Number(n) => format!("an integer ({n})"),
        Value::String(s) => format!("a string ({value})", value = Value::String(s.clone())),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "a table".to_owned(),
    }
}

/// `1` rather than `1.0` for whole bounds.
fn show(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        x.to_string()
    }
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
