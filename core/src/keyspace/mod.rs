//! The coordination keyspace. The keys and records executors use live in
//! [`nightshift_protocol::keyspace`] (re-exported here whole, so every path
//! stays `nightshift_core::keyspace::…`); the records only the scheduler side
//! reads or writes — applied DAGs, which need the DAG model, operator
//! commands, and the leader's own keys ([`leader`]) — are defined here.

pub use nightshift_protocol::keyspace::*;

pub mod commands;
pub mod dags;
pub mod leader;

pub use commands::{
    command_key, commands_prefix, parse_command_key, Command, CommandId, CommandOutcome,
    CommandRecord, Effect, Rejection,
};
pub use dags::{
    dag_checksum, dag_key, dag_version_key, dags_prefix, parse_dag_key, parse_dag_version_key,
    AppliedDag, DagVersionRecord,
};
pub use leader::{
    cron_key, cron_prefix, job_items_key, job_owner_key, job_state_key, last_assignment_chunk_key,
    last_assignment_chunks_prefix, last_assignment_key, last_assignments_prefix, leader_prefix,
    parse_cron_key, parse_run_state_key, parse_run_value_key, run_state_key, run_wal_chunk_key,
    run_wal_key, RunValueKey,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_health_key_is_neither_a_dag_nor_a_command_key() {
        let key = store_health_key("/n/");
        assert!(!key.starts_with(&dags_prefix("/n/")) && !key.starts_with(&commands_prefix("/n/")));
    }
}
