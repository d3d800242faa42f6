//! One conformance suite for both coordination backends.
//!
//! Every case is an async fn over a [`backend::Backend`], written once and
//! instantiated by [`conformance!`] twice: `memory::<case>` against the
//! in-process backend and `etcd::<case>` against a fresh real etcd process
//! (from `nightshift_testkit::etcd`) per test. A behaviour the scheduler or
//! the executor SDK relies on belongs here, so both backends must show it.
//!
//! Run: `cargo test -p nightshift-coord --test conformance`.

mod backend;
mod election;
mod kv;
mod leases;
mod paged;
mod support;
mod watch;

/// Declares each `group::case` as a test in `mod memory` and `mod etcd`.
macro_rules! conformance {
    ($($group:ident :: $case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() -> anyhow::Result<()> {
                    let backend = crate::backend::Memory::start().await;
                    crate::$group::$case(&backend).await
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() -> anyhow::Result<()> {
                    let backend = crate::backend::Etcd::start().await;
                    crate::$group::$case(&backend).await
                }
            )*
        }
    };
}

conformance! {
    kv::put_get_delete,
    kv::get_prefix_is_sorted_and_delete_prefix_counts,
    kv::revisions_behave_like_etcd,
    kv::txn_absent_key_create_succeeds_once,
    kv::txn_stale_mod_revision_runs_failure_branch,
    kv::txn_lease_and_value_compares,
    kv::txn_with_more_than_128_ops_is_invalid,
    kv::txn_writing_one_key_twice_is_invalid,
    kv::put_with_unknown_lease_is_lease_not_found,
    paged::paged_read_of_a_prefix_larger_than_a_page,
    paged::write_between_pages_does_not_show,
    paged::page_at_a_compacted_revision_is_compacted,
    paged::paged_read_starts_over_when_compacted_between_pages,
    paged::keys_only_read_has_every_key_and_revision_but_no_value,
    leases::lease_expiry_deletes_keys_and_watchers_see_it,
    leases::revoke_deletes_keys_at_once,
    leases::keep_alive_of_expired_lease_is_lease_not_found,
    leases::lease_keeper_keeps_lease_alive_then_reports_lost,
    watch::watch_from_past_revision_replays_missed_events_in_order,
    watch::watch_without_start_sees_only_later_changes,
    watch::txn_events_share_one_revision_in_order,
    watch::watch_survives_restart_without_gaps_or_duplicates,
    watch::watch_from_compacted_revision_resyncs_then_continues,
    election::first_campaigner_leads_second_waits,
    election::revoked_leader_is_replaced_and_its_fenced_writes_fail,
    election::resign_hands_over_and_observe_reports_it,
}
