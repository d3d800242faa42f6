//! Cases for runs: creation, state changes, uniqueness, listing.

use crate::fixtures::{day, new_run, seed_dag, seed_run};
use nightshift_core::ids::{DagName, RunId};
use nightshift_core::state::{RunState, TriggerSource};
use nightshift_store::{NewRun, RunFilter, Store, StoreError};

pub async fn insert_and_get_round_trips_every_field(store: &Store) {
    let dag = seed_dag(store, "accrual").await;
    let new = NewRun {
        run_id: RunId::new("accrual-2024-03-05"),
        dag: dag.clone(),
        dag_version: 1,
        business_date: day(5),
        trigger_source: TriggerSource::Schedule,
        params: serde_json::json!({"region": "eu", "limit": 5}),
        scheduled_for_ms: Some(1_709_600_000_000),
        created_at_ms: 1_709_600_000_123,
    };
    let inserted = store.insert_run(&new).await.unwrap();
    assert_eq!(inserted.state, RunState::Pending);
    let got = store.get_run(&new.run_id).await.unwrap().unwrap();
    assert_eq!(got, inserted);
    assert_eq!(got.run_id, new.run_id);
    assert_eq!(got.dag, dag);
    assert_eq!(got.dag_version, 1);
    assert_eq!(got.business_date, day(5));
    assert_eq!(got.trigger_source, TriggerSource::Schedule);
    assert_eq!(got.params, new.params);
    assert_eq!(got.scheduled_for_ms, new.scheduled_for_ms);
    assert_eq!(got.created_at_ms, new.created_at_ms);
    assert_eq!(
        (got.started_at_ms, got.ended_at_ms, got.error),
        (None, None, None)
    );
    assert_eq!(store.get_run(&RunId::new("nope")).await.unwrap(), None);
}

pub async fn run_state_follows_the_state_machine(store: &Store) {
    let dag = seed_dag(store, "d").await;
    let run = seed_run(store, &dag, "r1", 100).await;

    let running = store
        .update_run_state(&run.run_id, RunState::Running, 200, None)
        .await
        .unwrap();
    assert_eq!(
        (running.state, running.started_at_ms, running.ended_at_ms),
        (RunState::Running, Some(200), None)
    );

    let err = store
        .update_run_state(&run.run_id, RunState::Pending, 250, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::IllegalTransition { ref from, ref to, .. } if from == "running" && to == "pending"),
        "{err}"
    );

    let failed = store
        .update_run_state(&run.run_id, RunState::Failed, 300, Some("job x failed"))
        .await
        .unwrap();
    assert_eq!(failed.state, RunState::Failed);
    assert_eq!(failed.started_at_ms, Some(200), "start time is kept");
    assert_eq!(failed.ended_at_ms, Some(300));
    assert_eq!(failed.error.as_deref(), Some("job x failed"));

    // Terminal is final but for the re-open (a clear): nothing changes,
    // not even the timestamps.
    for to in [
        RunState::Pending,
        RunState::Succeeded,
        RunState::Failed,
        RunState::Cancelled,
    ] {
        let err = store
            .update_run_state(&run.run_id, to, 400, None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::IllegalTransition { .. }),
            "{to}: {err}"
        );
    }
    assert_eq!(store.get_run(&run.run_id).await.unwrap().unwrap(), failed);

    // A clear re-opens the ended run: running again, its first start
    // kept, its end and error gone until it ends again.
    let reopened = store
        .update_run_state(&run.run_id, RunState::Running, 450, None)
        .await
        .unwrap();
    assert_eq!(
        (
            reopened.state,
            reopened.started_at_ms,
            reopened.ended_at_ms,
            reopened.error
        ),
        (RunState::Running, Some(200), None, None)
    );
    let again = store
        .update_run_state(&run.run_id, RunState::Succeeded, 500, None)
        .await
        .unwrap();
    assert_eq!(
        (again.state, again.ended_at_ms),
        (RunState::Succeeded, Some(500))
    );

    // Cancelling a pending run ends it without a start time.
    let other = seed_run(store, &dag, "r2", 100).await;
    let cancelled = store
        .update_run_state(&other.run_id, RunState::Cancelled, 500, None)
        .await
        .unwrap();
    assert_eq!(
        (cancelled.started_at_ms, cancelled.ended_at_ms),
        (None, Some(500))
    );

    let missing = store
        .update_run_state(&RunId::new("ghost"), RunState::Running, 1, None)
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound { .. })));
}

pub async fn duplicates_and_missing_versions_are_refused(store: &Store) {
    let dag = seed_dag(store, "d").await;
    seed_run(store, &dag, "r1", 1).await;
    let dup = store.insert_run(&new_run(&dag, "r1", 2)).await.unwrap_err();
    assert!(matches!(dup, StoreError::Conflict { .. }), "{dup}");

    let mut unknown_version = new_run(&dag, "r2", 3);
    unknown_version.dag_version = 7;
    let err = store.insert_run(&unknown_version).await.unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { ref what } if what.contains("version 7")),
        "{err}"
    );
    let err = store
        .insert_run(&new_run(&DagName::new("ghost"), "r3", 3))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

pub async fn one_run_per_schedule_instant(store: &Store) {
    let dag = seed_dag(store, "d").await;
    let scheduled = |id: &str, source| NewRun {
        trigger_source: source,
        scheduled_for_ms: Some(86_400_000),
        ..new_run(&dag, id, 1)
    };
    store
        .insert_run(&scheduled("s1", TriggerSource::Schedule))
        .await
        .unwrap();
    let again = store
        .insert_run(&scheduled("s2", TriggerSource::Schedule))
        .await
        .unwrap_err();
    assert!(matches!(again, StoreError::Conflict { .. }), "{again}");
    let catch_up = store
        .insert_run(&scheduled("s3", TriggerSource::CatchUp))
        .await
        .unwrap_err();
    assert!(
        matches!(catch_up, StoreError::Conflict { .. }),
        "{catch_up}"
    );
    // A backfill or manual re-run of the same instant is deliberate: allowed.
    store
        .insert_run(&scheduled("b1", TriggerSource::Backfill))
        .await
        .unwrap();
    store
        .insert_run(&scheduled("m1", TriggerSource::Manual))
        .await
        .unwrap();
    // Another DAG's run for the same instant is unrelated.
    let other = seed_dag(store, "other").await;
    store
        .insert_run(&NewRun {
            dag: other,
            ..scheduled("o1", TriggerSource::Schedule)
        })
        .await
        .unwrap();
}

fn ids(runs: &[nightshift_store::Run]) -> Vec<&str> {
    runs.iter().map(|r| r.run_id.as_str()).collect()
}

pub async fn list_runs_pages_newest_first(store: &Store) {
    let a = seed_dag(store, "a").await;
    let b = seed_dag(store, "b").await;
    for (dag, id, at) in [
        (&a, "a1", 10),
        (&b, "b1", 20),
        (&a, "a2", 30),
        (&a, "a3", 40),
        (&b, "b2", 50),
    ] {
        seed_run(store, dag, id, at).await;
    }
    // Same creation time: the run id breaks the tie, so paging is stable.
    seed_run(store, &a, "a4", 40).await;
    store
        .update_run_state(&RunId::new("a2"), RunState::Running, 31, None)
        .await
        .unwrap();

    let all = store.list_runs(&RunFilter::default()).await.unwrap();
    assert_eq!(ids(&all), ["b2", "a4", "a3", "a2", "b1", "a1"]);

    let page = |offset| RunFilter {
        limit: Some(2),
        offset,
        ..RunFilter::default()
    };
    assert_eq!(ids(&store.list_runs(&page(0)).await.unwrap()), ["b2", "a4"]);
    assert_eq!(ids(&store.list_runs(&page(2)).await.unwrap()), ["a3", "a2"]);
    assert_eq!(ids(&store.list_runs(&page(4)).await.unwrap()), ["b1", "a1"]);
    assert!(store.list_runs(&page(6)).await.unwrap().is_empty());

    let before = RunFilter {
        created_before_ms: Some(40),
        ..RunFilter::default()
    };
    assert_eq!(
        ids(&store.list_runs(&before).await.unwrap()),
        ["a2", "b1", "a1"]
    );

    let of_a = RunFilter {
        dag: Some(a.clone()),
        ..RunFilter::default()
    };
    assert_eq!(
        ids(&store.list_runs(&of_a).await.unwrap()),
        ["a4", "a3", "a2", "a1"]
    );

    let running = RunFilter {
        states: vec![RunState::Running],
        ..RunFilter::default()
    };
    assert_eq!(ids(&store.list_runs(&running).await.unwrap()), ["a2"]);
    let pending_of_b = RunFilter {
        dag: Some(b),
        states: vec![RunState::Pending, RunState::Succeeded],
        ..RunFilter::default()
    };
    assert_eq!(
        ids(&store.list_runs(&pending_of_b).await.unwrap()),
        ["b2", "b1"]
    );
}

pub async fn runs_for_business_date_oldest_first(store: &Store) {
    let dag = seed_dag(store, "d").await;
    let other = seed_dag(store, "other").await;
    store
        .insert_run(&NewRun {
            business_date: day(2),
            ..new_run(&dag, "late", 50)
        })
        .await
        .unwrap();
    store
        .insert_run(&NewRun {
            business_date: day(2),
            ..new_run(&dag, "early", 10)
        })
        .await
        .unwrap();
    store
        .insert_run(&NewRun {
            business_date: day(3),
            ..new_run(&dag, "next-day", 20)
        })
        .await
        .unwrap();
    store
        .insert_run(&NewRun {
            business_date: day(2),
            ..new_run(&other, "other-dag", 5)
        })
        .await
        .unwrap();

    let runs = store.runs_for_business_date(&dag, day(2)).await.unwrap();
    assert_eq!(ids(&runs), ["early", "late"]);
    assert!(store
        .runs_for_business_date(&dag, day(4))
        .await
        .unwrap()
        .is_empty());
}

pub async fn retries_link_both_ways(store: &Store) {
    let dag = seed_dag(store, "d").await;
    let origin = seed_run(store, &dag, "r1", 1).await.run_id;
    let first = seed_run(store, &dag, "r1-retry-a", 2).await.run_id;
    let second = seed_run(store, &dag, "r1-retry-b", 3).await.run_id;
    assert_eq!(store.retry_of(&first).await.unwrap(), None);
    assert!(store.retries_of(&origin).await.unwrap().is_empty());
    store.link_retry(&second, &origin).await.unwrap();
    store.link_retry(&first, &origin).await.unwrap();
    // Repeating a link is harmless.
    store.link_retry(&first, &origin).await.unwrap();
    assert_eq!(store.retry_of(&first).await.unwrap(), Some(origin.clone()));
    assert_eq!(store.retry_of(&origin).await.unwrap(), None);
    assert_eq!(
        store.retries_of(&origin).await.unwrap(),
        vec![first.clone(), second.clone()],
        "oldest first"
    );
    for (retry, from) in [
        (RunId::new("ghost"), origin.clone()),
        (first.clone(), RunId::new("ghost")),
    ] {
        let err = store.link_retry(&retry, &from).await.unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    }
}

pub async fn recent_durations_are_of_succeeded_runs_newest_first(store: &Store) {
    let dag = seed_dag(store, "d").await;
    let other = seed_dag(store, "other").await;
    // (id, dag, start, end, final state)
    let runs = [
        ("a", &dag, 100, 1_100, RunState::Succeeded),
        ("b", &dag, 200, 5_200, RunState::Failed),
        ("c", &dag, 300, 2_300, RunState::Succeeded),
        ("d", &other, 400, 9_400, RunState::Succeeded),
        ("e", &dag, 500, 3_500, RunState::Succeeded),
    ];
    for (id, d, start, end, state) in runs {
        let run = seed_run(store, d, id, start).await.run_id;
        store
            .update_run_state(&run, RunState::Running, start, None)
            .await
            .unwrap();
        store
            .update_run_state(&run, state, end, None)
            .await
            .unwrap();
    }
    seed_run(store, &dag, "live", 600).await;
    assert_eq!(
        store.recent_run_durations(&dag, 10).await.unwrap(),
        vec![3_000, 2_000, 1_000]
    );
    assert_eq!(
        store.recent_run_durations(&dag, 2).await.unwrap(),
        vec![3_000, 2_000]
    );
}

/// A deposed leader finishing its pass late (term 3) cannot overwrite what
/// its successor (term 5) stored; the successor keeps writing.
pub async fn a_run_written_by_a_later_leader_refuses_an_earlier_one(store: &Store) {
    let dag = seed_dag(store, "d").await;
    let run = seed_run(store, &dag, "r1", 100).await;
    store
        .update_run_state_in_term(&run.run_id, RunState::Running, 200, None, 5)
        .await
        .unwrap();
    let err = store
        .update_run_state_in_term(&run.run_id, RunState::Failed, 300, Some("lost"), 3)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Superseded {
                term: 3,
                current: 5,
                ..
            }
        ),
        "{err}"
    );
    let kept = store.get_run(&run.run_id).await.unwrap().unwrap();
    assert_eq!((kept.state, kept.error), (RunState::Running, None));
    // Rows written outside a leader (term 0) lose too, once a leader wrote.
    assert!(matches!(
        store
            .update_run_state(&run.run_id, RunState::Cancelled, 310, None)
            .await,
        Err(StoreError::Superseded { .. })
    ));
    let done = store
        .update_run_state_in_term(&run.run_id, RunState::Succeeded, 400, None, 5)
        .await
        .unwrap();
    assert_eq!(
        (done.state, done.ended_at_ms),
        (RunState::Succeeded, Some(400))
    );
}
