//! What a scenario prints: named figures and targets (met or not), as an
//! aligned table on stdout and, with `--json`, one JSON object on one line.

use serde_json::{json, Map, Value};

/// The result of one scenario run.
pub struct Report {
    scenario: &'static str,
    figures: Vec<(String, Value, &'static str)>,
    targets: Vec<Target>,
}

/// A target of the issue and whether this run met it.
struct Target {
    name: String,
    limit: String,
    measured: String,
    met: bool,
}

impl Report {
    /// An empty report for `scenario`.
    pub fn new(scenario: &'static str) -> Report {
        Report {
            scenario,
            figures: Vec::new(),
            targets: Vec::new(),
        }
    }

    /// Adds a figure (`key` is also its JSON field name).
    pub fn figure(&mut self, key: &str, value: impl Into<Value>, unit: &'static str) {
        self.figures.push((key.to_owned(), value.into(), unit));
    }

    /// Adds a target: `met` is decided by the caller from the figures.
    pub fn target(
        &mut self,
        name: &str,
        limit: impl Into<String>,
        measured: impl Into<String>,
        met: bool,
    ) {
        self.targets.push(Target {
            name: name.to_owned(),
            limit: limit.into(),
            measured: measured.into(),
            met,
        });
    }

    /// The JSON object (`scenario`, every figure by key, `targets`).
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("scenario".into(), json!(self.scenario));
        for (key, value, _) in &self.figures {
            map.insert(key.clone(), value.clone());
        }
        let targets: Vec<Value> = self
            .targets
            .iter()
            .map(
                |t| json!({"name": t.name, "limit": t.limit, "measured": t.measured, "met": t.met}),
            )
            .collect();
        map.insert("targets".into(), Value::Array(targets));
        Value::Object(map)
    }

    /// The human table.
    pub fn table(&self) -> String {
        let width = self
            .figures
            .iter()
            .map(|(k, _, _)| k.len())
            .max()
            .unwrap_or(0)
            .max(6);
        let mut out = format!("nightshift bench {}\n", self.scenario);
        for (key, value, unit) in &self.figures {
            let value = match value {
                Value::Number(n) if n.is_f64() => format!("{:.3}", n.as_f64().unwrap_or_default()),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push_str(&format!("  {key:<width$}  {value} {unit}\n"));
        }
        if !self.targets.is_empty() {
            out.push_str("targets:\n");
            for t in &self.targets {
                let verdict = if t.met { "met" } else { "NOT met" };
                out.push_str(&format!(
                    "  {:<7} {}: {} (target {})\n",
                    verdict, t.name, t.measured, t.limit
                ));
            }
        }
        out
    }
}

/// Rounds to 3 decimals for JSON (figures, not accounting).
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
