//! A trigger's run params against the params types the live executors'
//! handlers declare: a run whose params would not decode is refused when it
//! is asked for, not failed when its job starts. The rule is pure
//! (`nightshift_core::params`); this only gathers its inputs.

use super::{Leader, LeaderError};
use nightshift_core::ids::DagName;
use nightshift_core::params::{refuse_run_params, HandlerSchemas};

impl Leader {
    /// Why run params `run_params` for `dag` are refused, or `None` when
    /// every job's merged params fit its handler (or its handler declares
    /// no type, or no live executor offers it yet).
    pub(super) async fn refuse_params(
        &mut self,
        dag: &DagName,
        run_params: &serde_json::Value,
    ) -> Result<Option<String>, LeaderError> {
        let Some(applied) = self.dags.get(dag) else {
            return Ok(None);
        };
        let spec = applied.spec.clone();
        let schemas = match self.params_schemas.take() {
            Some(schemas) => schemas,
            None => {
                let executors = self.live_executors().await?;
                HandlerSchemas::from_executors(executors.values())
            }
        };
        let refusal = refuse_run_params(
            &schemas,
            spec.jobs.iter().map(|j| (&j.name, &j.handler, &j.params)),
            run_params,
        );
        self.params_schemas = Some(schemas);
        Ok(refusal)
    }
}
