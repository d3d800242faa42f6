//! Reading typed values out of the spanned TOML tree, reporting every problem.
//!
//! [`Reader`] wraps the source text and the diagnostics found so far. Each
//! `expect_*` method returns `Some(value)` when the value has the right type
//! and `None` after recording a diagnostic at the value's position, so the
//! walkers in `parse` and `calendar_file` carry on and report everything in
//! one pass instead of stopping at the first mistake.

use super::diagnostic::{Diagnostic, Severity, SourceText};
use super::suggest;
use std::ops::Range;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// A key of a spanned TOML table.
pub(crate) type Key<'i> = Spanned<toml::de::DeString<'i>>;
/// A value of a spanned TOML table.
pub(crate) type Value<'i> = Spanned<DeValue<'i>>;

/// The source being read and what is wrong with it so far.
pub(crate) struct Reader<'s> {
    pub(crate) source: SourceText<'s>,
    pub(crate) diagnostics: Vec<Diagnostic>,
}

impl<'s> Reader<'s> {
    pub(crate) fn new(source: SourceText<'s>) -> Self {
        Self {
            source,
            diagnostics: Vec::new(),
        }
    }

    pub(crate) fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let d = self.source.diagnostic(span, Severity::Error, message);
        self.diagnostics.push(d);
    }

    pub(crate) fn warning(&mut self, span: Range<usize>, message: impl Into<String>) {
        let d = self.source.diagnostic(span, Severity::Warning, message);
        self.diagnostics.push(d);
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// The diagnostics, sorted by position (stable, so that several at one
    /// spot keep the order they were found in).
    pub(crate) fn into_diagnostics(mut self) -> Vec<Diagnostic> {
        self.diagnostics.sort_by_key(|d| (d.line, d.col));
        self.diagnostics
    }

    /// Reports every key of `table` that is not in `allowed`, suggesting the
    /// closest known key.
    pub(crate) fn reject_unknown_keys(&mut self, table: &DeTable<'_>, allowed: &[&str]) {
        for (key, _) in table.iter() {
            let name: &str = key.get_ref();
            if allowed.contains(&name) {
                continue;
            }
            let hint = match suggest::closest(name, allowed.iter().copied()) {
                Some(c) => format!("did you mean `{c}`?"),
                None => format!("expected one of: {}", allowed.join(", ")),
            };
            self.error(key.span(), format!("unknown key `{name}` ({hint})"));
        }
    }

    pub(crate) fn expect_str<'v>(&mut self, key: &str, value: &'v Value<'_>) -> Option<&'v str> {
        match value.get_ref() {
            DeValue::String(s) => Some(s.as_ref()),
            other => self.wrong_type(key, value.span(), "a string", other),
        }
    }

    pub(crate) fn expect_bool(&mut self, key: &str, value: &Value<'_>) -> Option<bool> {
        match value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            other => self.wrong_type(key, value.span(), "a boolean (true or false)", other),
        }
    }

    pub(crate) fn expect_table<'v, 'i>(
        &mut self,
        key: &str,
        value: &'v Value<'i>,
    ) -> Option<&'v DeTable<'i>> {
        match value.get_ref() {
            DeValue::Table(t) => Some(t),
            other => self.wrong_type(key, value.span(), "a table", other),
        }
    }

    pub(crate) fn expect_array<'v, 'i>(
        &mut self,
        key: &str,
        value: &'v Value<'i>,
    ) -> Option<&'v [Value<'i>]> {
        match value.get_ref() {
            DeValue::Array(a) => Some(a),
            other => self.wrong_type(key, value.span(), "an array", other),
        }
    }

    /// An integer in `min..=max`, reporting the type or the range.
    pub(crate) fn expect_int_in(
        &mut self,
        key: &str,
        value: &Value<'_>,
        min: i64,
        max: i64,
    ) -> Option<i64> {
        let n = match value.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
            other => return self.wrong_type(key, value.span(), "an integer", other),
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.error(
                    value.span(),
                    format!(
                        "`{key}` must be between {min} and {max}, found {}",
                        show_scalar(value.get_ref())
                    ),
                );
                None
            }
        }
    }

    fn wrong_type<T>(
        &mut self,
        key: &str,
        span: Range<usize>,
        expected: &str,
        found: &DeValue<'_>,
    ) -> Option<T> {
        self.error(
            span,
            format!("`{key}`: expected {expected}, found {}", type_name(found)),
        );
        None
    }
}

/// Reports the TOML parser's syntax errors, keeping only the first on each
/// line: after one mistake the parser's recovery often trips again further
/// along the same line, and that second message only repeats the first.
pub(crate) fn report_syntax_errors(reader: &mut Reader<'_>, mut errors: Vec<toml::de::Error>) {
    errors.sort_by_key(|e| e.span().map_or(0, |s| s.start));
    let mut last_line = None;
    for e in errors {
        let span = e.span().unwrap_or(0..0);
        let line = reader.source.position(span.start).0;
        if last_line == Some(line) {
            continue;
        }
        last_line = Some(line);
        reader.error(span, format!("invalid toml: {}", e.message()));
    }
}

/// Drops the placeholder entries the TOML parser inserts while recovering
/// from a syntax error (they have an empty span), so that the syntax error is
/// not echoed by a bogus "wrong value" error at the top of the file.
pub(crate) fn prune_recovered(table: &mut DeTable<'_>) {
    // The map only offers `retain` for plain string keys: rebuild it.
    let entries = std::mem::take(table);
    for (key, mut value) in entries {
        if value.span().is_empty() {
            continue;
        }
        if let DeValue::Table(inner) = value.get_mut() {
            prune_recovered(inner);
        }
        table.insert(key, value);
    }
}

/// "a string", "an integer", … — the found type, with its article.
pub(crate) fn type_name(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(d) if d.time.is_none() => "a date",
        DeValue::Datetime(d) if d.date.is_none() => "a time",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// A scalar as the user wrote it, for messages.
pub(crate) fn show_scalar(value: &DeValue<'_>) -> String {
    match value {
        DeValue::String(s) => format!("\"{s}\""),
        DeValue::Integer(i) => i.to_string(),
        DeValue::Float(f) => f.to_string(),
        DeValue::Boolean(b) => b.to_string(),
        DeValue::Datetime(d) => d.to_string(),
        other => type_name(other).to_owned(),
    }
}

/// The entries of a table in the order they appear in the file (the parsed
/// map is sorted by key).
pub(crate) fn in_file_order<'t, 'i>(table: &'t DeTable<'i>) -> Vec<(&'t Key<'i>, &'t Value<'i>)> {
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    entries
}

/// The entry named `name`, if present.
pub(crate) fn field<'t, 'i>(
    table: &'t DeTable<'i>,
    name: &str,
) -> Option<(&'t Key<'i>, &'t Value<'i>)> {
    table.iter().find(|(k, _)| {
        let key: &str = k.get_ref();
        key == name
    })
}

/// Whether `name` is usable as a DAG, job or calendar name: non-empty ASCII
/// letters, digits, `-` and `_`, because names become coordination-store key
/// segments and file names.
pub(crate) fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Converts a TOML value to JSON for job parameters. Dates and times become
/// their TOML text; a float that JSON cannot hold (nan, inf) is reported.
pub(crate) fn to_json(reader: &mut Reader<'_>, value: &Value<'_>) -> serde_json::Value {
    use serde_json::Value as J;
    match value.get_ref() {
        DeValue::String(s) => J::String(s.to_string()),
        DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => J::from(n),
            Err(_) => {
                reader.error(value.span(), format!("integer {i} does not fit in 64 bits"));
                J::Null
            }
        },
        DeValue::Float(f) => match f
            .as_str()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
        {
            Some(n) => J::Number(n),
            None => {
                reader.error(
                    value.span(),
                    format!("`{f}` cannot be a parameter: JSON has no nan or inf"),
                );
                J::Null
            }
        },
        DeValue::Boolean(b) => J::Bool(*b),
        DeValue::Datetime(d) => J::String(d.to_string()),
        DeValue::Array(items) => J::Array(items.iter().map(|v| to_json(reader, v)).collect()),
        DeValue::Table(t) => J::Object(table_to_json(reader, t)),
    }
}

/// Converts a TOML table to a JSON object; see [`to_json`].
pub(crate) fn table_to_json(
    reader: &mut Reader<'_>,
    table: &DeTable<'_>,
) -> serde_json::Map<String, serde_json::Value> {
    in_file_order(table)
        .into_iter()
        .map(|(k, v)| (k.get_ref().to_string(), to_json(reader, v)))
        .collect()
}
