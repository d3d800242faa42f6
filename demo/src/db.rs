//! The demo's own connection to the SQL database (SQLite or PostgreSQL, by
//! URL), its schema, and the ledger check that reconciliation runs.
//!
//! Every statement is written once, with `$N` placeholders and `ON CONFLICT`
//! clauses that both backends accept; [`on_db!`] runs the same code against
//! whichever pool is open. Amounts are integers in minor units (cents), so
//! sums are exact.

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use std::str::FromStr;
use std::time::Duration;

/// Runs `$body` with `$pool` bound to the open pool, whatever its backend.
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Pool::Sqlite($pool) => $body,
            $crate::db::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_db;

/// A failure of the demo's database work.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The URL is neither `sqlite:` nor `postgres://`.
    #[error("unsupported database url: expected sqlite://FILE or postgres://...")]
    UnsupportedUrl,
    /// A statement failed.
    #[error("demo database: {0}")]
    Sql(#[from] sqlx::Error),
    /// A newer owner of the item (higher fencing token) has claimed it:
    /// this one is stale and wrote nothing.
    #[error("fenced: item {key} was claimed by a newer owner than token {token}")]
    Fenced {
        /// The item's idempotency key.
        key: String,
        /// This owner's token.
        token: i64,
    },
}

pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The demo's pool. Cheap to share behind an `Arc`.
pub struct DemoDb {
    pub(crate) pool: Pool,
}

/// What reconciliation found: the totals and every broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerCheck {
    /// Sum of all debit legs.
    pub total_debits: i64,
    /// Sum of all credit legs.
    pub total_credits: i64,
    /// Number of postings legs.
    pub legs: i64,
    /// Accounts whose balance is not initial + postings.
    pub mismatched_accounts: i64,
    /// The first few mismatches: (account, balance, initial + postings).
    pub examples: Vec<(i64, i64, i64)>,
    /// Accruals and collections of the business date not yet posted.
    pub unposted: i64,
}

impl LedgerCheck {
    /// Whether the ledger is balanced and complete.
    pub fn is_ok(&self) -> bool {
        self.total_debits == self.total_credits
            && self.mismatched_accounts == 0
            && self.unposted == 0
    }

    /// A report for operators, one line per broken rule.
    pub fn report(&self) -> String {
        let mut lines = Vec::new();
        if self.total_debits != self.total_credits {
            lines.push(format!(
                "debits {} != credits {} (difference {}) over {} legs",
                self.total_debits,
                self.total_credits,
                self.total_debits - self.total_credits,
                self.legs
            ));
        }
        if self.mismatched_accounts > 0 {
            let examples: Vec<String> = self
                .examples
                .iter()
                .map(|(id, balance, expected)| {
                    format!("account {id}: balance {balance}, initial + postings {expected}")
                })
                .collect();
            lines.push(format!(
                "{} account(s) where balance != initial + postings, e.g. {}",
                self.mismatched_accounts,
                examples.join("; ")
            ));
        }
        if self.unposted > 0 {
            lines.push(format!(
                "{} accrual(s)/collection(s) of the day not posted",
                self.unposted
            ));
        }
        if lines.is_empty() {
            format!(
                "ledger balanced: {} legs, debits = credits = {}",
                self.legs, self.total_debits
            )
        } else {
            format!("ledger does not reconcile: {}", lines.join("; "))
        }
    }
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS demo_accounts (
        id BIGINT PRIMARY KEY, holder TEXT NOT NULL, region TEXT NOT NULL,
        rate_bps BIGINT NOT NULL, initial_balance BIGINT NOT NULL, balance BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS demo_loans (
        id BIGINT PRIMARY KEY, account_id BIGINT NOT NULL UNIQUE, principal BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS demo_installments (
        loan_id BIGINT NOT NULL, seq BIGINT NOT NULL, due_date TEXT NOT NULL, amount BIGINT NOT NULL,
        PRIMARY KEY (loan_id, seq))",
    "CREATE INDEX IF NOT EXISTS demo_installments_due ON demo_installments (due_date)",
    // One row per item that committed its effects: the exactly-once guard.
    "CREATE TABLE IF NOT EXISTS demo_effects (
        idem_key TEXT PRIMARY KEY, job TEXT NOT NULL, business_date TEXT NOT NULL, detail TEXT NOT NULL)",
    // The highest fencing token that claimed each item: a stale owner
    // (lower token) finds it raised and writes nothing.
    "CREATE TABLE IF NOT EXISTS demo_item_fence (
        item_key TEXT PRIMARY KEY, token BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS demo_accruals (
        account_id BIGINT NOT NULL, business_date TEXT NOT NULL, amount BIGINT NOT NULL,
        idem_key TEXT NOT NULL, posted_key TEXT, PRIMARY KEY (account_id, business_date))",
    "CREATE TABLE IF NOT EXISTS demo_collections (
        loan_id BIGINT NOT NULL, seq BIGINT NOT NULL, account_id BIGINT NOT NULL, business_date TEXT NOT NULL,
        amount BIGINT NOT NULL, status TEXT NOT NULL, idem_key TEXT NOT NULL, posted_key TEXT,
        PRIMARY KEY (loan_id, seq, business_date))",
    // A leg per row; the primary key makes a second posting of the same
    // source impossible even without the effects guard.
    "CREATE TABLE IF NOT EXISTS demo_postings (
        source TEXT NOT NULL, source_id BIGINT NOT NULL, business_date TEXT NOT NULL, leg TEXT NOT NULL,
        ledger_account TEXT NOT NULL, account_id BIGINT, debit BIGINT NOT NULL, credit BIGINT NOT NULL,
        idem_key TEXT NOT NULL, PRIMARY KEY (source, source_id, business_date, leg))",
    "CREATE INDEX IF NOT EXISTS demo_postings_account ON demo_postings (account_id)",
];

impl DemoDb {
    /// Opens the database of `url` (`sqlite://FILE` or `postgres://...`).
    /// SQLite gets one connection: demo items in one process take turns
    /// instead of failing on each other's write locks.
    pub async fn connect(url: &str) -> Result<DemoDb, DemoError> {
        let pool = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(60));
            Pool::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(options)
                    .await?,
            )
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect(url)
                    .await?,
            )
        } else {
            return Err(DemoError::UnsupportedUrl);
        };
        Ok(DemoDb { pool })
    }

    /// Creates the demo tables if they do not exist.
    pub async fn ensure_schema(&self) -> Result<(), DemoError> {
        on_db!(&self.pool, pool => {
            for statement in SCHEMA {
                sqlx::query(statement).execute(pool).await?;
            }
        });
        Ok(())
    }

    /// Number of accounts (their ids are `1..=count`).
    pub async fn account_count(&self) -> Result<i64, DemoError> {
        let sql = "SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM demo_accounts";
        let (n,): (i64,) = on_db!(&self.pool, pool => sqlx::query_as(sql).fetch_one(pool).await?);
        Ok(n)
    }

    /// Runs one query returning a single integer (tests and the dev tests
    /// use it to look at the ledger).
    pub async fn scalar(&self, sql: &str) -> Result<i64, DemoError> {
        let (n,): (i64,) = on_db!(&self.pool, pool => sqlx::query_as(sql).fetch_one(pool).await?);
        Ok(n)
    }

    /// Runs one statement (tests use it to tamper with the ledger).
    pub async fn execute(&self, sql: &str) -> Result<u64, DemoError> {
        let done =
            on_db!(&self.pool, pool => sqlx::query(sql).execute(pool).await?.rows_affected());
        Ok(done)
    }

    /// Breaks the ledger on purpose, for the tour: adds 1.00 to the credit
    /// leg of the first posting and marks it, so that [`DemoDb::repair`] can
    /// undo exactly that. Returns the number of legs changed (0 when there
    /// is no posting yet or it is already tampered).
    pub async fn tamper(&self) -> Result<u64, DemoError> {
        if self.scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM demo_postings WHERE idem_key LIKE '%#tampered'").await? > 0 {
            return Ok(0);
        }
        self.execute(
            "UPDATE demo_postings SET credit = credit + 100, idem_key = idem_key || '#tampered'
             WHERE leg = 'C' AND source = 'accrual' AND source_id = (SELECT MIN(source_id) FROM demo_postings
                 WHERE leg = 'C' AND source = 'accrual')
             AND business_date = (SELECT MIN(business_date) FROM demo_postings WHERE leg = 'C' AND source = 'accrual')",
        )
        .await
    }

    /// Undoes [`DemoDb::tamper`]; returns the number of legs repaired.
    pub async fn repair(&self) -> Result<u64, DemoError> {
        self.execute(
            "UPDATE demo_postings SET credit = credit - 100,
                 idem_key = SUBSTR(idem_key, 1, LENGTH(idem_key) - LENGTH('#tampered'))
             WHERE idem_key LIKE '%#tampered'",
        )
        .await
    }

    /// Checks the whole ledger and the day's completeness for `business_date`.
    pub async fn check_ledger(&self, business_date: &str) -> Result<LedgerCheck, DemoError> {
        let totals = "SELECT CAST(COALESCE(SUM(debit), 0) AS BIGINT), CAST(COALESCE(SUM(credit), 0) AS BIGINT),
                             CAST(COUNT(*) AS BIGINT) FROM demo_postings";
        let mismatch = "SELECT a.id, a.balance, a.initial_balance + CAST(COALESCE(p.net, 0) AS BIGINT)
            FROM demo_accounts a LEFT JOIN (
                SELECT account_id, SUM(credit) - SUM(debit) AS net FROM demo_postings
                WHERE account_id IS NOT NULL GROUP BY account_id) p ON p.account_id = a.id
            WHERE a.balance <> a.initial_balance + CAST(COALESCE(p.net, 0) AS BIGINT) ORDER BY a.id";
        let unposted = "SELECT CAST((SELECT COUNT(*) FROM demo_accruals WHERE business_date = $1 AND posted_key IS NULL)
                      + (SELECT COUNT(*) FROM demo_collections WHERE business_date = $1 AND posted_key IS NULL) AS BIGINT)";
        type Mismatch = (i64, i64, i64);
        let (sums, rows, open): ((i64, i64, i64), Vec<Mismatch>, (i64,)) = on_db!(&self.pool, pool => (
            sqlx::query_as(totals).fetch_one(pool).await?,
            sqlx::query_as(mismatch).fetch_all(pool).await?,
            sqlx::query_as(unposted).bind(business_date).fetch_one(pool).await?,
        ));
        Ok(LedgerCheck {
            total_debits: sums.0,
            total_credits: sums.1,
            legs: sums.2,
            mismatched_accounts: rows.len() as i64,
            examples: rows.into_iter().take(5).collect(),
            unposted: open.0,
        })
    }
}
