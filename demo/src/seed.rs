//! `nightshift demo seed`: deterministic demo data. Account `n` always gets
//! the same holder, rate and opening balance, so seeding again is harmless:
//! existing rows keep their balances (which postings have moved), new ids
//! are added. One transaction, multi-row inserts of generated numbers.

use crate::db::{on_db, DemoDb, DemoError};
use chrono::NaiveDate;

const REGIONS: [&str; 4] = ["north", "south", "east", "west"];
const BATCH: i64 = 1000;
/// Installments per loan (monthly).
const INSTALLMENTS: i64 = 36;
/// First installment month: schedules cover July 2025 to June 2028.
const FIRST_MONTH: (i32, u32) = (2025, 7);

/// What [`seed`] wrote (rows present afterwards).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedReport {
    /// Accounts `1..=accounts`.
    pub accounts: i64,
    /// Loans (one for every fourth account).
    pub loans: i64,
    /// Installment rows.
    pub installments: i64,
}

/// Opening balance in cents: most accounts hold 200–5,200; every tenth
/// holds 5.00, so its installments fail to collect.
fn opening_balance(id: i64) -> i64 {
    if id % 10 == 0 {
        500
    } else {
        (id * 7919) % 500_000 + 20_000
    }
}

fn due_date(loan: i64, seq: i64) -> Option<NaiveDate> {
    let months = i64::from(FIRST_MONTH.1 - 1) + seq;
    let year = FIRST_MONTH.0 + i32::try_from(months / 12).ok()?;
    let month = u32::try_from(months % 12).ok()? + 1;
    let day = u32::try_from(loan % 28).ok()? + 1;
    NaiveDate::from_ymd_opt(year, month, day)
}

/// Creates the schema and upserts `accounts` accounts with their loans and
/// installment schedules.
pub async fn seed(db: &DemoDb, accounts: i64) -> Result<SeedReport, DemoError> {
    db.ensure_schema().await?;
    let mut statements = Vec::new();
    let mut start = 1;
    while start <= accounts {
        let end = (start + BATCH - 1).min(accounts);
        let rows: Vec<String> = (start..=end)
            .map(|id| {
                let balance = opening_balance(id);
                format!(
                    "({id}, 'customer-{id}', '{}', {}, {balance}, {balance})",
                    REGIONS[(id % 4) as usize],
                    100 + (id % 5) * 50
                )
            })
            .collect();
        statements.push(format!(
            "INSERT INTO demo_accounts (id, holder, region, rate_bps, initial_balance, balance) VALUES {}
             ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, region = excluded.region, rate_bps = excluded.rate_bps",
            rows.join(",")
        ));
        let loans: Vec<i64> = (start..=end).filter(|id| id % 4 == 0).collect();
        if !loans.is_empty() {
            let rows: Vec<String> = loans
                .iter()
                .map(|id| format!("({}, {id}, {})", id / 4, principal(*id)))
                .collect();
            statements.push(format!(
                "INSERT INTO demo_loans (id, account_id, principal) VALUES {} ON CONFLICT (id) DO NOTHING",
                rows.join(",")
            ));
            let mut rows = Vec::new();
            for id in &loans {
                let loan = id / 4;
                for seq in 0..INSTALLMENTS {
                    if let Some(due) = due_date(loan, seq) {
                        rows.push(format!(
                            "({loan}, {seq}, '{due}', {})",
                            principal(*id) / INSTALLMENTS
                        ));
                    }
                }
            }
            for chunk in rows.chunks(BATCH as usize * 4) {
                statements.push(format!(
                    "INSERT INTO demo_installments (loan_id, seq, due_date, amount) VALUES {} ON CONFLICT DO NOTHING",
                    chunk.join(",")
                ));
            }
        }
        start = end + 1;
    }
    on_db!(&db.pool, pool => {
        let mut tx = pool.begin().await?;
        for statement in &statements {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
        tx.commit().await?;
    });
    Ok(SeedReport {
        accounts: db
            .scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM demo_accounts")
            .await?,
        loans: db
            .scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM demo_loans")
            .await?,
        installments: db
            .scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM demo_installments")
            .await?,
    })
}

fn principal(account: i64) -> i64 {
    120_000 + (account % 7) * 10_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_are_monthly_on_the_loan_day() {
        assert_eq!(due_date(1, 0), NaiveDate::from_ymd_opt(2025, 7, 2));
        assert_eq!(due_date(1, 6), NaiveDate::from_ymd_opt(2026, 1, 2));
        assert_eq!(due_date(27, 35), NaiveDate::from_ymd_opt(2028, 6, 28));
    }
}
