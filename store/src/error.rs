//! The store's error type, and the small adapter that gives every database
//! error the name of the operation that failed.
//!
//! Database URLs can carry passwords: they are redacted before they go into
//! an error message.

use std::path::PathBuf;

/// Everything that can go wrong talking to the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no backend we support.
    #[error(
        "unsupported database url `{url}`: expected `sqlite://path/to/file.db` or `postgres://user@host/db`"
    )]
    UnsupportedUrl {
        /// The URL, password redacted.
        url: String,
    },
    /// The URL names a supported backend but cannot be parsed.
    #[error("invalid database url `{url}`")]
    InvalidUrl {
        /// The URL, password redacted.
        url: String,
        /// Why the driver rejected it.
        #[source]
        source: sqlx::Error,
    },
    /// The directory for a SQLite file could not be created.
    #[error("cannot create directory {} for the sqlite database", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// No connection could be opened within the connect timeout.
    #[error("cannot connect to the database at `{url}`")]
    Connect {
        /// The URL, password redacted.
        url: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The embedded migrations could not be applied.
    #[error("cannot apply database migrations")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database error while trying to {op}")]
    Query {
        /// What we were doing, e.g. "insert run".
        op: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// A row with the same identity already exists.
    #[error("cannot {op}: {what} already exists")]
    Conflict {
        /// What we were doing.
        op: &'static str,
        /// What collided, e.g. "run 2024-01-01-abc".
        what: String,
    },
    /// The row to change does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. "run r1".
        what: String,
    },
    /// The write would break a state machine of `nightshift_core::state`.
    #[error("illegal state change for {what}: {from} -> {to}")]
    IllegalTransition {
        /// Whose state, e.g. "run r1".
        what: String,
        /// The current state.
        from: String,
        /// The requested state.
        to: String,
    },
    /// A leader's write lost to a later leader's: the row was last written
    /// in a later term (see the `term` columns), so it is left as it is.
    #[error("{what} was written by a later leader (term {current}); this write of term {term} is ignored")]
    Superseded {
        /// Whose row, e.g. "run r1".
        what: String,
        /// The writer's term.
        term: i64,
        /// The row's term.
        current: i64,
    },
    /// A stored value does not decode (written by something else, or a bug).
    #[error("corrupt value in column `{column}`: {detail}")]
    Corrupt {
        /// The column.
        column: &'static str,
        /// What is wrong with it.
        detail: String,
    },
}

/// Attaches an operation name to sqlx errors, turning unique-key violations
/// into [`StoreError::Conflict`].
pub(crate) trait QueryContext<T> {
    /// Names the operation; `what` describes the row for conflict messages.
    fn op(self, op: &'static str, what: impl FnOnce() -> String) -> Result<T, StoreError>;
}

impl<T> QueryContext<T> for Result<T, sqlx::Error> {
    fn op(self, op: &'static str, what: impl FnOnce() -> String) -> Result<T, StoreError> {
        self.map_err(|source| match &source {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict { op, what: what() }
            }
            _ => StoreError::Query { op, source },
        })
    }
}

/// Turns a foreign-key violation into [`StoreError::NotFound`] of the row
/// the write referred to (`what`); other errors pass through.
pub(crate) fn missing_parent(
    what: impl FnOnce() -> String,
) -> impl FnOnce(StoreError) -> StoreError {
    move |e| match e {
        StoreError::Query {
            source: sqlx::Error::Database(db),
            ..
        } if db.kind() == sqlx::error::ErrorKind::ForeignKeyViolation => {
            StoreError::NotFound { what: what() }
        }
        other => other,
    }
}

/// Shorthand for operations where a conflict cannot happen or needs no detail.
pub(crate) fn query_err(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { op, source }
}

/// The URL with any password replaced by `***`, safe to log and show: the
/// user-info password (`user:pw@host`) and the values of query parameters
/// that hold secrets (`?password=`, `sslpassword=`, `token=`, …).
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let mut out = url[..scheme_end + 3].to_owned();
    match authority.rfind('@') {
        Some(at) => match authority[..at].find(':') {
            Some(colon) => {
                out.push_str(&authority[..colon]);
                out.push_str(":***");
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        },
        None => out.push_str(authority),
    }
    let tail = &rest[authority_end..];
    let Some(q) = tail.find('?') else {
        out.push_str(tail);
        return out;
    };
    out.push_str(&tail[..=q]);
    let query = &tail[q + 1..];
    let (query, fragment) = match query.find('#') {
        Some(h) => (&query[..h], &query[h..]),
        None => (query, ""),
    };
    let params: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if secret_key(key) => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    out.push_str(&params.join("&"));
    out.push_str(fragment);
    out
}

/// Whether a query parameter's value is a secret.
fn secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "passwd", "pwd", "secret", "token", "key"]
        .iter()
        .any(|s| key.contains(s))
}

pub(crate) fn redact(url: &str) -> String {
    redact_url(url)
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(
            redact("postgres://ns:s3cret@db:5432/ns?sslmode=require"),
            "postgres://ns:***@db:5432/ns?sslmode=require"
        );
        assert_eq!(redact("postgres://ns@db/ns"), "postgres://ns@db/ns");
        assert_eq!(redact("sqlite://data/ns.db"), "sqlite://data/ns.db");
        assert_eq!(redact("nonsense"), "nonsense");
        assert_eq!(
            redact("postgres://db/ns?user=ns&password=s3cret&sslmode=require"),
            "postgres://db/ns?user=ns&password=***&sslmode=require"
        );
        assert_eq!(
            redact("postgres://ns:pw@db/ns?sslpassword=k#frag"),
            "postgres://ns:***@db/ns?sslpassword=***#frag"
        );
    }
}
