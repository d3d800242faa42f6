//! The params types of the demo's handlers, declared with the executor so
//! that `nightshift apply` refuses a DAG whose params for them do not fit
//! (a misspelt `day_count`, a day count convention the demo does not know).
//!
//! Only `interest-accrual` takes params; the other handlers take none and
//! declare nothing.

use crate::jobs::InterestAccrual;
use nightshift_executor::{
    async_trait, ItemContext, ItemOutcome, Job, JobError, JsonSchema, ParamsSchema,
};
use serde::Deserialize;

/// Params of `interest-accrual` (`nightly-settlement.toml` sets both).
///
/// The demo's accrual SQL uses each account's own rate, so these only
/// name the table and convention a real accrual would use; they are decoded
/// and logged, so a DAG cannot carry a key the handler does not know.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(crate = "nightshift_executor::schemars")]
#[serde(deny_unknown_fields)]
pub struct AccrualParams {
    /// Rate table name.
    #[serde(default = "standard")]
    pub rate_table: String,
    /// Day count convention.
    #[serde(default)]
    pub day_count: DayCount,
}

/// Day count conventions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(crate = "nightshift_executor::schemars")]
pub enum DayCount {
    /// Actual days over 365.
    #[default]
    #[serde(rename = "act/365")]
    Act365,
    /// Actual days over 360.
    #[serde(rename = "act/360")]
    Act360,
    /// 30-day months over 360.
    #[serde(rename = "30/360")]
    Thirty360,
}

/// `interest-accrual` with its params declared: decodes them (a mismatch
/// is a permanent failure), logs them, and runs the accrual.
pub struct DeclaredAccrual(pub InterestAccrual);

#[async_trait]
impl Job for DeclaredAccrual {
    async fn run(&self, ctx: ItemContext) -> Result<ItemOutcome, JobError> {
        let params: AccrualParams = ctx.params()?;
        tracing::debug!(rate_table = %params.rate_table, day_count = ?params.day_count, "accrual params");
        self.0.run(ctx).await
    }

    fn params_schema(&self) -> Option<ParamsSchema> {
        Some(ParamsSchema::of::<AccrualParams>())
    }
}

fn standard() -> String {
    "standard".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_settlement_dag_params_decode_and_a_typo_does_not() {
        let ok: Result<AccrualParams, _> =
            serde_json::from_value(json!({"rate_table": "standard", "day_count": "act/365"}));
        assert_eq!(
            ok.ok(),
            Some(AccrualParams {
                rate_table: "standard".into(),
                day_count: DayCount::Act365
            })
        );
        assert!(serde_json::from_value::<AccrualParams>(json!({"day_cnt": "act/365"})).is_err());
        assert!(serde_json::from_value::<AccrualParams>(json!({"day_count": "act/366"})).is_err());
    }
}
