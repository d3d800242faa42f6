//! The four demo handlers. Each item runs its statements in one transaction
//! that first claims the item's idempotency key in `demo_effects`: a second
//! run of the same item (retry, failover, a crash after commit) finds the
//! key and writes nothing. The statements are set-based over the item's
//! account range, so an item costs a handful of round trips whatever its size.
//!
//! Every such transaction is also *fenced* (see the SDK's crate docs,
//! "Fencing"): it first raises the item's row in `demo_item_fence` to the
//! owner's fencing token, which fails if a newer owner already holds a
//! higher one, so a stale owner still running after a failover writes
//! nothing.
//!
//! `interest-accrual` works through its range in pages of
//! [`ACCRUAL_PAGE`] accounts: each page is one such transaction (claimed
//! under `{idempotency key}/page-{n}`), followed by a checkpoint of the
//! pages done, so a moved, retried or re-run item resumes after its last
//! page instead of starting over.

use crate::db::{on_db, DemoDb, DemoError};
use crate::range::account_range;
use nightshift_executor::{async_trait, ExecutorBuilder, ItemContext, ItemOutcome, Job, JobError};
use std::sync::Arc;

/// Handler names the demo registers, in DAG order.
pub const HANDLERS: [&str; 4] = [
    "interest-accrual",
    "nightly-debits",
    "ledger-postings",
    "reconciliation",
];

/// Every statement is bound with, in order: `$1` business date, `$2` the
/// item's idempotency key, `$3..$4` its account range.
const ACCRUE: &[&str] = &[
    // Daily interest, act/365, on positive balances; rate in basis points.
    "INSERT INTO demo_accruals (account_id, business_date, amount, idem_key)
     SELECT id, $1, balance * rate_bps / 3650000, $2 FROM demo_accounts
     WHERE id >= $3 AND id < $4 AND balance * rate_bps / 3650000 > 0
     ON CONFLICT (account_id, business_date) DO NOTHING",
    "UPDATE demo_accounts SET balance = balance + (SELECT a.amount FROM demo_accruals a
        WHERE a.account_id = demo_accounts.id AND a.business_date = $1 AND a.idem_key = $2)
     WHERE id >= $3 AND id < $4 AND EXISTS (SELECT 1 FROM demo_accruals a
        WHERE a.account_id = demo_accounts.id AND a.business_date = $1 AND a.idem_key = $2)",
];

const DEBIT: &[&str] = &[
    // An account has at most one loan, so at most one installment due a day.
    "INSERT INTO demo_collections (loan_id, seq, account_id, business_date, amount, status, idem_key)
     SELECT i.loan_id, i.seq, l.account_id, $1, i.amount,
            CASE WHEN a.balance >= i.amount THEN 'collected' ELSE 'failed' END, $2
     FROM demo_installments i JOIN demo_loans l ON l.id = i.loan_id JOIN demo_accounts a ON a.id = l.account_id
     WHERE i.due_date = $1 AND l.account_id >= $3 AND l.account_id < $4
     ON CONFLICT (loan_id, seq, business_date) DO NOTHING",
    "UPDATE demo_accounts SET balance = balance - (SELECT c.amount FROM demo_collections c
        WHERE c.account_id = demo_accounts.id AND c.business_date = $1 AND c.idem_key = $2 AND c.status = 'collected')
     WHERE id >= $3 AND id < $4 AND EXISTS (SELECT 1 FROM demo_collections c
        WHERE c.account_id = demo_accounts.id AND c.business_date = $1 AND c.idem_key = $2 AND c.status = 'collected')",
];

const POST: &[&str] = &[
    "INSERT INTO demo_postings (source, source_id, business_date, leg, ledger_account, account_id, debit, credit, idem_key)
     SELECT 'accrual', account_id, $1, 'D', 'interest-expense', CAST(NULL AS BIGINT), amount, 0, $2 FROM demo_accruals
     WHERE business_date = $1 AND posted_key IS NULL AND account_id >= $3 AND account_id < $4
     ON CONFLICT DO NOTHING",
    "INSERT INTO demo_postings (source, source_id, business_date, leg, ledger_account, account_id, debit, credit, idem_key)
     SELECT 'accrual', account_id, $1, 'C', 'customer-deposits', account_id, 0, amount, $2 FROM demo_accruals
     WHERE business_date = $1 AND posted_key IS NULL AND account_id >= $3 AND account_id < $4
     ON CONFLICT DO NOTHING",
    "INSERT INTO demo_postings (source, source_id, business_date, leg, ledger_account, account_id, debit, credit, idem_key)
     SELECT 'collection', loan_id, $1, 'D', 'customer-deposits', account_id, amount, 0, $2 FROM demo_collections
     WHERE business_date = $1 AND posted_key IS NULL AND status = 'collected' AND account_id >= $3 AND account_id < $4
     ON CONFLICT DO NOTHING",
    "INSERT INTO demo_postings (source, source_id, business_date, leg, ledger_account, account_id, debit, credit, idem_key)
     SELECT 'collection', loan_id, $1, 'C', 'loans-receivable', CAST(NULL AS BIGINT), 0, amount, $2 FROM demo_collections
     WHERE business_date = $1 AND posted_key IS NULL AND status = 'collected' AND account_id >= $3 AND account_id < $4
     ON CONFLICT DO NOTHING",
    "UPDATE demo_accruals SET posted_key = $2
     WHERE business_date = $1 AND posted_key IS NULL AND account_id >= $3 AND account_id < $4",
    // Failed collections are marked processed too: they have no posting.
    "UPDATE demo_collections SET posted_key = $2
     WHERE business_date = $1 AND posted_key IS NULL AND account_id >= $3 AND account_id < $4",
];

/// Who writes: the item (its idempotency key) and the owner's fencing token.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Owner<'a> {
    pub item_key: &'a str,
    pub token: i64,
}

impl<'a> Owner<'a> {
    pub(crate) fn of(ctx: &ItemContext, item_key: &'a str) -> Self {
        Owner {
            item_key,
            token: ctx.fencing_token().get(),
        }
    }
}

/// Runs `statements` for one item exactly once, as its current owner:
/// `Ok(None)` when `key` was already claimed (its effects are committed),
/// else the number of rows the statements touched. Fenced first: in the
/// same transaction the owner claims the item with its token, which only
/// succeeds if no higher token has (`DemoError::Fenced` otherwise) — the
/// row lock orders the claims, so an owner deposed by a failover that is
/// still running finds the newer token and writes nothing.
pub(crate) async fn apply_once(
    db: &DemoDb,
    owner: Owner<'_>,
    job: &str,
    key: &str,
    date: &str,
    range: (i64, i64),
    statements: &[&str],
) -> Result<Option<u64>, DemoError> {
    on_db!(&db.pool, pool => {
        let mut tx = pool.begin().await?;
        // The fence is the transaction's first write, so on SQLite it takes
        // the write lock (waiting for it) before anything is read.
        let current = sqlx::query(
            "INSERT INTO demo_item_fence (item_key, token) VALUES ($1, $2)
             ON CONFLICT (item_key) DO UPDATE SET token = excluded.token
             WHERE demo_item_fence.token <= excluded.token",
        )
        .bind(owner.item_key)
        .bind(owner.token)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if current == 0 {
            tx.rollback().await?;
            return Err(DemoError::Fenced {
                key: owner.item_key.to_owned(),
                token: owner.token,
            });
        }
        let claimed = sqlx::query(
            "INSERT INTO demo_effects (idem_key, job, business_date, detail) VALUES ($1, $2, $3, '')
             ON CONFLICT (idem_key) DO NOTHING",
        )
        .bind(key)
        .bind(job)
        .bind(date)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let mut rows = 0;
        for statement in statements {
            rows += sqlx::query(statement)
                .bind(date)
                .bind(key)
                .bind(range.0)
                .bind(range.1)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        sqlx::query("UPDATE demo_effects SET detail = $2 WHERE idem_key = $1")
            .bind(key)
            .bind(format!("accounts {}..{}: {rows} rows", range.0, range.1))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(rows))
    })
}

/// Runs one ranged item of `job`.
async fn ranged_item(
    db: &DemoDb,
    job: &str,
    statements: &[&str],
    ctx: &ItemContext,
) -> Result<ItemOutcome, JobError> {
    let total = db.account_count().await.map_err(JobError::retryable)?;
    let range = account_range(ctx.item().0, ctx.total_items(), total);
    let date = ctx.business_date().format("%Y-%m-%d").to_string();
    let key = ctx.idempotency_key();
    match apply_once(
        db,
        Owner::of(ctx, &key),
        job,
        &key,
        &date,
        range,
        statements,
    )
    .await
    {
        Ok(Some(rows)) => {
            ctx.progress(
                1,
                1,
                format!("accounts {}..{}: {rows} rows", range.0, range.1),
            );
            Ok(ItemOutcome::Succeeded)
        }
        Ok(None) => {
            tracing::info!(%key, "item already applied: nothing written");
            ctx.progress(1, 1, "already applied");
            Ok(ItemOutcome::Succeeded)
        }
        Err(e) => Err(JobError::retryable(e)),
    }
}

macro_rules! ranged_job {
    ($(#[$doc:meta])* $name:ident, $handler:literal, $statements:ident) => {
        $(#[$doc])*
        pub struct $name {
            db: Arc<DemoDb>,
        }

        impl $name {
            /// The handler, over the demo database `db`.
            pub fn new(db: Arc<DemoDb>) -> Self {
                Self { db }
            }
        }

        #[async_trait]
        impl Job for $name {
            async fn run(&self, ctx: ItemContext) -> Result<ItemOutcome, JobError> {
                ranged_item(&self.db, $handler, $statements, &ctx).await
            }
        }
    };
}

/// Accounts per page of an `interest-accrual` item.
pub const ACCRUAL_PAGE: i64 = 100;

/// `interest-accrual`: daily interest on the item's accounts, credited to
/// their balance, page by page with a checkpoint after each page.
pub struct InterestAccrual {
    db: Arc<DemoDb>,
}

impl InterestAccrual {
    /// The handler, over the demo database `db`.
    pub fn new(db: Arc<DemoDb>) -> Self {
        Self { db }
    }
}

#[async_trait]
impl Job for InterestAccrual {
    async fn run(&self, ctx: ItemContext) -> Result<ItemOutcome, JobError> {
        let db = &self.db;
        let total = db.account_count().await.map_err(JobError::retryable)?;
        let range = account_range(ctx.item().0, ctx.total_items(), total);
        let date = ctx.business_date().format("%Y-%m-%d").to_string();
        let key = ctx.idempotency_key();
        let pages = u32::try_from((range.1 - range.0 + ACCRUAL_PAGE - 1) / ACCRUAL_PAGE)
            .map_err(|_| JobError::permanent("too many pages in one item"))?;
        // The checkpoint is the number of pages done.
        let done = ctx.last_checkpoint::<u32>().await?.unwrap_or(0);
        if done > 0 {
            tracing::info!(%key, done, pages, "resuming after the last checkpointed page");
        }
        for page in done..pages {
            if ctx.is_cancelled() {
                return Ok(ItemOutcome::Cancelled);
            }
            let start = range.0 + i64::from(page) * ACCRUAL_PAGE;
            let part = (start, (start + ACCRUAL_PAGE).min(range.1));
            let page_key = format!("{key}/page-{page}");
            let owner = Owner::of(&ctx, &key);
            apply_once(
                db,
                owner,
                "interest-accrual-page",
                &page_key,
                &date,
                part,
                ACCRUE,
            )
            .await
            .map_err(JobError::retryable)?;
            // After the page's commit: a death in between redoes a page
            // (its claim makes that a no-op), never skips one.
            ctx.checkpoint(&(page + 1)).await?;
            ctx.progress(
                u64::from(page + 1),
                u64::from(pages),
                format!("page {}/{pages}: accounts {}..{}", page + 1, part.0, part.1),
            );
        }
        // One row per item, as for the other jobs: the item is done.
        match apply_once(
            db,
            Owner::of(&ctx, &key),
            "interest-accrual",
            &key,
            &date,
            range,
            &[],
        )
        .await
        {
            Ok(Some(_)) => Ok(ItemOutcome::Succeeded),
            Ok(None) => {
                tracing::info!(%key, "item already applied: nothing written");
                Ok(ItemOutcome::Succeeded)
            }
            Err(e) => Err(JobError::retryable(e)),
        }
    }
}
ranged_job!(
    /// `nightly-debits`: collects the installments due on the business date;
    /// an account that cannot pay gets a failed collection (not an error).
    NightlyDebits, "nightly-debits", DEBIT
);
ranged_job!(
    /// `ledger-postings`: turns the day's accruals and collections into
    /// balanced double-entry postings.
    LedgerPostings, "ledger-postings", POST
);

/// `reconciliation`: fan-in check of the whole ledger; fails the item with
/// a report when debits != credits, a balance is not initial + postings, or
/// something of the day was not posted.
pub struct Reconciliation {
    db: Arc<DemoDb>,
}

impl Reconciliation {
    /// The handler, over the demo database `db`.
    pub fn new(db: Arc<DemoDb>) -> Self {
        Self { db }
    }
}

#[async_trait]
impl Job for Reconciliation {
    async fn run(&self, ctx: ItemContext) -> Result<ItemOutcome, JobError> {
        let date = ctx.business_date().format("%Y-%m-%d").to_string();
        let check = self
            .db
            .check_ledger(&date)
            .await
            .map_err(JobError::retryable)?;
        if check.is_ok() {
            tracing::info!(report = %check.report(), "reconciliation passed");
            ctx.progress(1, 1, check.report());
            Ok(ItemOutcome::Succeeded)
        } else {
            tracing::error!(report = %check.report(), "reconciliation failed");
            Err(JobError::permanent(check.report()))
        }
    }
}

/// Adds the four demo handlers to an executor being built.
pub fn register(builder: ExecutorBuilder, db: Arc<DemoDb>) -> ExecutorBuilder {
    builder
        .handler(
            "interest-accrual",
            crate::params::DeclaredAccrual(InterestAccrual::new(db.clone())),
        )
        .handler("nightly-debits", NightlyDebits::new(db.clone()))
        .handler("ledger-postings", LedgerPostings::new(db.clone()))
        .handler("reconciliation", Reconciliation::new(db))
}
