//! Builds `WHERE` clauses from optional filters, with `$n` placeholders that
//! both SQLite and PostgreSQL accept, and binds the collected values to a
//! query of either backend (`bind_args!`).

/// A value to bind; the filters only need text and integers.
pub(crate) enum Arg {
    Text(String),
    Int(i64),
}

/// The conditions of a query, joined with `AND`.
#[derive(Default)]
pub(crate) struct Where {
    clauses: Vec<String>,
    pub(crate) args: Vec<Arg>,
}

impl Where {
    /// Adds a bind value and returns its placeholder.
    pub(crate) fn arg(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    /// `column = value` when a value is given.
    pub(crate) fn eq_text(&mut self, column: &str, value: Option<&str>) {
        if let Some(v) = value {
            let p = self.arg(Arg::Text(v.to_owned()));
            self.clauses.push(format!("{column} = {p}"));
        }
    }

    /// `column <op> value` when a value is given.
    pub(crate) fn cmp_int(&mut self, column: &str, op: &str, value: Option<i64>) {
        if let Some(v) = value {
            let p = self.arg(Arg::Int(v));
            self.clauses.push(format!("{column} {op} {p}"));
        }
    }

    /// `column IN (values…)` when the list is not empty.
    pub(crate) fn in_text(&mut self, column: &str, values: &[&str]) {
        if values.is_empty() {
            return;
        }
        let ps: Vec<String> = values
            .iter()
            .map(|v| self.arg(Arg::Text((*v).to_owned())))
            .collect();
        self.clauses
            .push(format!("{column} IN ({})", ps.join(", ")));
    }

    /// A raw condition without bind values.
    pub(crate) fn raw(&mut self, clause: &str) {
        self.clauses.push(clause.to_owned());
    }

    /// ` WHERE a AND b`, or nothing.
    pub(crate) fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }
}

/// Binds every collected [`Arg`] to `$query`, in order.
macro_rules! bind_args {
    ($query:expr, $args:expr) => {{
        let mut q = $query;
        for arg in $args {
            q = match arg {
                $crate::filter::Arg::Text(s) => q.bind(s),
                $crate::filter::Arg::Int(i) => q.bind(i),
            };
        }
        q
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_bind_order() {
        let mut w = Where::default();
        w.eq_text("dag", Some("d"));
        w.eq_text("job", None);
        w.in_text("state", &["a", "b"]);
        w.cmp_int("seq", ">", Some(3));
        assert_eq!(
            w.sql(),
            " WHERE dag = $1 AND state IN ($2, $3) AND seq > $4"
        );
        assert_eq!(w.args.len(), 4);
        assert_eq!(Where::default().sql(), "");
    }
}
