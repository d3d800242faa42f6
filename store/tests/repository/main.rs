//! The repository suite: every `Store` method, written once (one `async fn`
//! per case taking a `&Store`) and run against both backends — a fresh SQLite
//! file and a fresh database on the real local PostgreSQL server (see
//! `nightshift_testkit::db`; `scripts/test` makes sure the server runs).

mod alerts;
mod attempt_logs;
mod attempts;
mod checkpoints;
mod command_outcomes;
mod dags;
mod events;
mod fixtures;
mod jobs;
mod runs;

/// Generates `sqlite::<case>` and `postgres::<case>` tests for each case.
macro_rules! suite {
    ($($module:ident :: $case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let db = nightshift_testkit::db::fresh_sqlite();
                    let store = nightshift_store::Store::connect(&db.url).await.unwrap();
                    assert_eq!(store.backend(), nightshift_store::Backend::Sqlite);
                    crate::$module::$case(&store).await;
                    store.close().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let db = nightshift_testkit::db::fresh_postgres().await.unwrap();
                    let store = nightshift_store::Store::connect(&db.url).await.unwrap();
                    assert_eq!(store.backend(), nightshift_store::Backend::Postgres);
                    crate::$module::$case(&store).await;
                    store.close().await;
                }
            )*
        }
    };
}

suite! {
    dags::new_version_only_when_checksum_changes,
    dags::versions_are_per_dag,
    dags::concurrent_applies_get_distinct_versions,
    dags::pause_remove_and_reapply,
    runs::insert_and_get_round_trips_every_field,
    runs::run_state_follows_the_state_machine,
    runs::a_run_written_by_a_later_leader_refuses_an_earlier_one,
    runs::duplicates_and_missing_versions_are_refused,
    runs::one_run_per_schedule_instant,
    runs::list_runs_pages_newest_first,
    runs::runs_for_business_date_oldest_first,
    runs::retries_link_both_ways,
    runs::recent_durations_are_of_succeeded_runs_newest_first,
    jobs::job_runs_track_tallies_and_legal_moves,
    jobs::a_job_row_written_by_a_later_leader_refuses_an_earlier_one,
    attempts::attempts_start_and_finish_exactly_once,
    attempts::attempts_filter_by_item_and_unfinished,
    attempts::ended_attempts_are_recorded_in_bulk_and_only_once,
    attempts::a_deposed_terms_attempt_rows_never_hide_a_later_terms,
    attempts::items_are_counted_by_their_succeeded_attempts,
    attempt_logs::attempt_logs_round_trip_once_per_attempt,
    command_outcomes::outcomes_are_found_by_command_id,
    events::events_round_trip_and_increase,
    events::events_filter_by_every_field,
    events::events_page_forwards_and_backwards,
    events::concurrent_appends_get_unique_seqs,
    alerts::open_alert_dedupes_active_alerts,
    alerts::ack_and_resolve_lifecycle,
    alerts::resolve_run_alerts_closes_only_that_runs_rules,
    alerts::alerts_of_ended_runs_are_resolved_by_rule,
    alerts::concurrent_opens_create_one_alert,
    alerts::list_alerts_filters_and_orders,
    alerts::silences_cover_rule_and_dag_until_expiry,
    checkpoints::runs_carry_a_redo_generation,
    checkpoints::checkpoints_round_trip_and_seed_only_unfinished_work,
}
