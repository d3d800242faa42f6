//! The demo handlers against a real database, SQLite and PostgreSQL: a full
//! day reconciles, running an item twice posts once, and tampering with a
//! posting makes reconciliation fail with a report.

use chrono::NaiveDate;
use nightshift_demo::{
    seed, DemoDb, InterestAccrual, LedgerPostings, NightlyDebits, Reconciliation, ACCRUAL_PAGE,
};
use nightshift_executor::testing::{run_item, TestItem};
use nightshift_executor::{ItemOutcome, Job};
use std::sync::Arc;

const ACCOUNTS: i64 = 2_000;
/// Loan `n` falls due on day `n % 28 + 1`: plenty of installments due.
fn date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 5).unwrap()
}

fn item(job: &str, item: u32, total: u32) -> TestItem {
    TestItem::new(item)
        .run("run-1")
        .dag("nightly-settlement")
        .job(job)
        .total_items(total)
        .business_date(date())
}

async fn run_all(job: &dyn Job, name: &str, shards: u32) {
    for i in 0..shards {
        let run = run_item(job, item(name, i, shards)).await;
        assert_eq!(run.result, Ok(ItemOutcome::Succeeded), "{name} item {i}");
    }
}

async fn full_day(db: &Arc<DemoDb>) {
    run_all(&InterestAccrual::new(db.clone()), "interest-accrual", 4).await;
    run_all(&NightlyDebits::new(db.clone()), "nightly-debits", 3).await;
    run_all(&LedgerPostings::new(db.clone()), "ledger-postings", 2).await;
}

async fn scenario(url: &str) {
    let db = Arc::new(DemoDb::connect(url).await.unwrap());
    let report = seed(&db, ACCOUNTS).await.unwrap();
    assert_eq!(report.accounts, ACCOUNTS);
    assert_eq!(report.loans, ACCOUNTS / 4);
    assert_eq!(
        seed(&db, ACCOUNTS).await.unwrap(),
        report,
        "seeding again changes nothing"
    );

    // Running an accrual item twice accrues once.
    let accrual = InterestAccrual::new(db.clone());
    run_item(&accrual, item("interest-accrual", 0, 4))
        .await
        .result
        .unwrap();
    let after_once = db
        .scalar("SELECT CAST(SUM(balance) AS BIGINT) FROM demo_accounts")
        .await
        .unwrap();
    run_item(&accrual, item("interest-accrual", 0, 4).attempt(2))
        .await
        .result
        .unwrap();
    let after_twice = db
        .scalar("SELECT CAST(SUM(balance) AS BIGINT) FROM demo_accounts")
        .await
        .unwrap();
    assert_eq!(
        after_once, after_twice,
        "a second run of the same item changed balances"
    );

    // An accrual item resumes from its checkpoint: given "2 pages done",
    // it accrues only from the third page on, and checkpoints each page.
    let resumed = run_item(&accrual, item("interest-accrual", 1, 4).checkpoint(&2u32)).await;
    assert_eq!(resumed.result, Ok(ItemOutcome::Succeeded));
    let (start, end) = nightshift_demo::range::account_range(1, 4, ACCOUNTS);
    let pages = u32::try_from((end - start + ACCRUAL_PAGE - 1) / ACCRUAL_PAGE).unwrap();
    assert_eq!(
        resumed.checkpoints,
        (3..=pages)
            .map(|p| serde_json::json!(p))
            .collect::<Vec<_>>()
    );
    let accrued = |from: i64, to: i64| {
        let db = db.clone();
        async move {
            db.scalar(&format!(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM demo_accruals WHERE account_id >= {from} AND account_id < {to}"
            ))
            .await
            .unwrap()
        }
    };
    let skipped_to = start + 2 * ACCRUAL_PAGE;
    assert_eq!(
        accrued(start, skipped_to).await,
        0,
        "pages the checkpoint says are done were accrued again"
    );
    assert!(accrued(skipped_to, end).await > 0);
    // From scratch, the same item accrues the two skipped pages and
    // nothing twice (the other pages' claims are there).
    let fresh = run_item(&accrual, item("interest-accrual", 1, 4)).await;
    assert_eq!(fresh.result, Ok(ItemOutcome::Succeeded));
    assert!(accrued(start, skipped_to).await > 0);

    full_day(&db).await;
    let legs = db
        .scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM demo_postings")
        .await
        .unwrap();
    let accruals = db
        .scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM demo_accruals")
        .await
        .unwrap();
    let collected = db
        .scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM demo_collections WHERE status = 'collected'")
        .await
        .unwrap();
    let failed = db
        .scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM demo_collections WHERE status = 'failed'")
        .await
        .unwrap();
    assert!(accruals > ACCOUNTS / 2, "most accounts accrue interest");
    assert!(
        collected > 0 && failed > 0,
        "some installments collect, some fail: {collected}/{failed}"
    );
    assert_eq!(
        legs,
        2 * (accruals + collected),
        "two legs per accrual and per collection"
    );

    // The whole day again (a rerun of every item) posts nothing more.
    full_day(&db).await;
    assert_eq!(
        db.scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM demo_postings")
            .await
            .unwrap(),
        legs
    );

    let recon = Reconciliation::new(db.clone());
    let ok = run_item(&recon, item("reconciliation", 0, 1)).await;
    assert_eq!(ok.result, Ok(ItemOutcome::Succeeded));

    db.execute("UPDATE demo_postings SET credit = credit + 7 WHERE leg = 'C' AND source_id = 8 AND source = 'accrual'")
        .await
        .unwrap();
    let failed = run_item(&recon, item("reconciliation", 0, 1)).await;
    let message = failed.result.unwrap_err().to_string();
    assert!(message.contains("ledger does not reconcile"), "{message}");
    assert!(message.contains("difference -7"), "{message}");
    assert!(message.contains("account 8:"), "{message}");

    // The tour's break-and-repair pair.
    db.execute("UPDATE demo_postings SET credit = credit - 7 WHERE leg = 'C' AND source_id = 8 AND source = 'accrual'")
        .await
        .unwrap();
    assert_eq!(db.tamper().await.unwrap(), 1);
    assert_eq!(
        db.tamper().await.unwrap(),
        0,
        "tampering twice changes nothing more"
    );
    assert!(run_item(&recon, item("reconciliation", 0, 1))
        .await
        .result
        .is_err());
    assert_eq!(db.repair().await.unwrap(), 1);
    assert_eq!(
        run_item(&recon, item("reconciliation", 0, 1)).await.result,
        Ok(ItemOutcome::Succeeded)
    );
}

#[tokio::test]
async fn sqlite_ledger_posts_once_and_reconciles() {
    let file = nightshift_testkit::db::fresh_sqlite();
    scenario(&file.url).await;
}

#[tokio::test]
async fn postgres_ledger_posts_once_and_reconciles() {
    let pg = nightshift_testkit::db::fresh_postgres().await.unwrap();
    scenario(&pg.url).await;
}

/// A stale owner writes nothing: after a newer owner (higher fencing
/// token) claimed an item, the old one's attempt is refused by the
/// database itself, before any effect, even where its idempotency claim
/// alone would have let it through ("already applied").
async fn fencing(url: &str) {
    use nightshift_executor::FencingToken;
    let db = Arc::new(DemoDb::connect(url).await.unwrap());
    seed(&db, ACCOUNTS).await.unwrap();
    let accrual = InterestAccrual::new(db.clone());
    let owned_by = |token: i64| item("interest-accrual", 0, 4).fencing_token(FencingToken(token));

    let first = run_item(&accrual, owned_by(20)).await;
    assert_eq!(first.result, Ok(ItemOutcome::Succeeded));
    let accruals = db
        .scalar("SELECT COUNT(*) FROM demo_accruals")
        .await
        .unwrap();
    let claims = db
        .scalar("SELECT COUNT(*) FROM demo_effects")
        .await
        .unwrap();
    assert!(accruals > 0);

    // A failover gave the item to a newer owner, which claimed it.
    assert_eq!(
        db.execute("UPDATE demo_item_fence SET token = 25")
            .await
            .unwrap(),
        1
    );
    let stale = run_item(&accrual, owned_by(20)).await;
    let err = stale.result.expect_err("a stale owner is fenced off");
    assert!(err.to_string().contains("fenced"), "{err}");
    assert!(
        stale.checkpoints.is_empty(),
        "nothing done, nothing checkpointed"
    );
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM demo_accruals")
            .await
            .unwrap(),
        accruals
    );
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM demo_effects")
            .await
            .unwrap(),
        claims
    );
    assert_eq!(
        db.scalar("SELECT MAX(token) FROM demo_item_fence")
            .await
            .unwrap(),
        25
    );

    // The current owner (and any later one) goes through.
    let newer = run_item(&accrual, owned_by(30)).await;
    assert_eq!(newer.result, Ok(ItemOutcome::Succeeded));
    assert_eq!(
        db.scalar("SELECT MAX(token) FROM demo_item_fence")
            .await
            .unwrap(),
        30
    );
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM demo_accruals")
            .await
            .unwrap(),
        accruals
    );
}

#[tokio::test]
async fn sqlite_a_stale_owner_is_fenced_off_by_the_database() {
    let file = nightshift_testkit::db::fresh_sqlite();
    fencing(&file.url).await;
}

#[tokio::test]
async fn postgres_a_stale_owner_is_fenced_off_by_the_database() {
    let pg = nightshift_testkit::db::fresh_postgres().await.unwrap();
    fencing(&pg.url).await;
}
