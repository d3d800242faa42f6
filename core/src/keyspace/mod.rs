//! The coordination keyspace. The keys and records executors use live in
//! [`nightshift_protocol::keyspace`] (re-exported here whole, so every path
//! stays `nightshift_core::keyspace::…`); the records only the scheduler side
//! reads or writes — applied DAGs, which need the DAG model, and operator
//! commands — are defined here.

pub use nightshift_protocol::keyspace::*;

pub mod commands;
pub mod dags;

pub use commands::{
    command_key, commands_prefix, parse_command_key, Command, CommandId, CommandRecord,
};
pub use dags::{dag_checksum, dag_key, dags_prefix, parse_dag_key, AppliedDag};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_health_key_is_neither_a_dag_nor_a_command_key() {
        let key = store_health_key("/n/");
        assert!(!key.starts_with(&dags_prefix("/n/")) && !key.starts_with(&commands_prefix("/n/")));
    }
}
