//! Cases for item attempts.

use crate::fixtures::{seed_dag, seed_run};
use nightshift_core::ids::{ExecutorId, FencingToken, ItemIndex, JobName, RunId};
use nightshift_core::state::AttemptOutcome;
use nightshift_store::{AttemptId, EndedAttempt, NewAttempt, Store, StoreError, SucceededCounts};

fn attempt(run: &RunId, item: u32, attempt: u32, executor: &str) -> NewAttempt {
    NewAttempt {
        run_id: run.clone(),
        job: JobName::new("debit"),
        item: ItemIndex(item),
        attempt,
        executor: ExecutorId::new(executor),
        fencing_token: FencingToken(1000 + i64::from(item)),
        started_at_ms: 10 * i64::from(item + attempt),
        moved_from: None,
    }
}

pub async fn attempts_start_and_finish_exactly_once(store: &Store) {
    let dag = seed_dag(store, "d").await;
    let run = seed_run(store, &dag, "r1", 1).await.run_id;
    let new = attempt(&run, 0, 1, "ex-a");
    let id = store.start_attempt(&new).await.unwrap();

    let dup = store.start_attempt(&new).await.unwrap_err();
    assert!(matches!(dup, StoreError::Conflict { .. }), "{dup}");

    let finished = store
        .finish_attempt(id, AttemptOutcome::Failed, 99, Some("boom"))
        .await
        .unwrap();
    assert_eq!(finished.id, id);
    assert_eq!(finished.outcome, Some(AttemptOutcome::Failed));
    assert_eq!(finished.ended_at_ms, Some(99));
    assert_eq!(finished.error.as_deref(), Some("boom"));
    assert_eq!(finished.fencing_token, FencingToken(1000));
    assert_eq!(finished.executor, ExecutorId::new("ex-a"));

    // A late second report (say, from a fenced owner) changes nothing.
    let again = store
        .finish_attempt(id, AttemptOutcome::Succeeded, 120, None)
        .await
        .unwrap_err();
    assert!(
        matches!(again, StoreError::IllegalTransition { ref from, .. } if from == "failed"),
        "{again}"
    );
    let stored = store
        .attempts(&run, &new.job, Some(ItemIndex(0)))
        .await
        .unwrap();
    assert_eq!(stored, [finished]);

    let ghost = store
        .finish_attempt(AttemptId(987_654), AttemptOutcome::Lost, 1, None)
        .await;
    assert!(matches!(ghost, Err(StoreError::NotFound { .. })));

    let orphan = attempt(&RunId::new("ghost"), 0, 1, "ex-a");
    assert!(matches!(
        store.start_attempt(&orphan).await,
        Err(StoreError::NotFound { .. })
    ));
}

pub async fn attempts_filter_by_item_and_unfinished(store: &Store) {
    let dag = seed_dag(store, "d").await;
    let run = seed_run(store, &dag, "r1", 1).await.run_id;
    let other_run = seed_run(store, &dag, "r2", 2).await.run_id;

    let first = store
        .start_attempt(&attempt(&run, 1, 1, "ex-a"))
        .await
        .unwrap();
    store
        .start_attempt(&attempt(&run, 0, 1, "ex-a"))
        .await
        .unwrap();
    store
        .finish_attempt(first, AttemptOutcome::Lost, 50, Some("lease expired"))
        .await
        .unwrap();
    // Item 1 failed over from ex-a to ex-b.
    let moved = NewAttempt {
        moved_from: Some(ExecutorId::new("ex-a")),
        ..attempt(&run, 1, 2, "ex-b")
    };
    store.start_attempt(&moved).await.unwrap();
    store
        .start_attempt(&attempt(&other_run, 0, 1, "ex-a"))
        .await
        .unwrap();

    let job = JobName::new("debit");
    let all = store.attempts(&run, &job, None).await.unwrap();
    let keys: Vec<(u32, u32)> = all.iter().map(|a| (a.item.0, a.attempt)).collect();
    assert_eq!(keys, [(0, 1), (1, 1), (1, 2)], "by item, then attempt");

    let item1 = store
        .attempts(&run, &job, Some(ItemIndex(1)))
        .await
        .unwrap();
    assert_eq!(item1.len(), 2);
    assert_eq!(item1[0].outcome, Some(AttemptOutcome::Lost));
    assert_eq!(item1[1].moved_from, Some(ExecutorId::new("ex-a")));
    assert_eq!(item1[1].executor, ExecutorId::new("ex-b"));
    assert!(store
        .attempts(&run, &JobName::new("other"), None)
        .await
        .unwrap()
        .is_empty());

    let open_a = store
        .unfinished_attempts(None, Some(&ExecutorId::new("ex-a")))
        .await
        .unwrap();
    let open_a: Vec<(&str, u32)> = open_a
        .iter()
        .map(|a| (a.run_id.as_str(), a.item.0))
        .collect();
    assert_eq!(open_a, [("r1", 0), ("r2", 0)]);
    let open_r1 = store.unfinished_attempts(Some(&run), None).await.unwrap();
    assert_eq!(open_r1.len(), 2);
    assert!(open_r1.iter().all(|a| a.ended_at_ms.is_none()));
    let open_r1_b = store
        .unfinished_attempts(Some(&run), Some(&ExecutorId::new("ex-b")))
        .await
        .unwrap();
    assert_eq!(open_r1_b.len(), 1);
}

pub async fn ended_attempts_are_recorded_in_bulk_and_only_once(store: &Store) {
    let dag = seed_dag(store, "d").await;
    let run = seed_run(store, &dag, "r1", 1).await.run_id;
    let job = JobName::new("debit");
    // More rows than one statement holds, so the chunking is exercised.
    let ended = |item: u32, outcome: AttemptOutcome, at: i64| EndedAttempt {
        new: attempt(&run, item, 1, "ex-a"),
        outcome,
        ended_at_ms: at,
        error: (outcome != AttemptOutcome::Succeeded).then(|| format!("item {item} broke")),
    };
    let first: Vec<EndedAttempt> = (0..2500)
        .map(|i| ended(i, AttemptOutcome::Succeeded, 100_000))
        .collect();
    // Item 3 was already started by a crashed leader, not ended: it gets
    // this end. Item 4 already ended: it keeps its first outcome.
    let id3 = store.start_attempt(&first[3].new).await.unwrap();
    let id4 = store.start_attempt(&first[4].new).await.unwrap();
    store
        .finish_attempt(id4, AttemptOutcome::Lost, 50, Some("lease ended"))
        .await
        .unwrap();
    store.record_ended_attempts(&first).await.unwrap();
    // Recording the same batch again (a new leader redoing it) and a
    // conflicting late report change nothing.
    store.record_ended_attempts(&first).await.unwrap();
    store
        .record_ended_attempts(&[ended(0, AttemptOutcome::Failed, 200_000)])
        .await
        .unwrap();

    let stored = store.attempts(&run, &job, None).await.unwrap();
    assert_eq!(stored.len(), 2500);
    for a in &stored {
        match a.item.0 {
            3 => assert_eq!(
                (a.id, a.outcome, a.ended_at_ms),
                (id3, Some(AttemptOutcome::Succeeded), Some(100_000))
            ),
            4 => assert_eq!(
                (a.id, a.outcome, a.ended_at_ms, a.error.as_deref()),
                (
                    id4,
                    Some(AttemptOutcome::Lost),
                    Some(50),
                    Some("lease ended")
                )
            ),
            _ => {
                assert_eq!(
                    (a.outcome, a.ended_at_ms, a.error.as_deref()),
                    (Some(AttemptOutcome::Succeeded), Some(100_000), None),
                    "{a:?}"
                );
                assert_eq!(
                    (a.executor.as_str(), a.fencing_token, a.attempt),
                    ("ex-a", FencingToken(1000 + i64::from(a.item.0)), 1)
                );
            }
        }
    }
    // An end before the start (clock skew between hosts) is raised to it.
    let mut skewed = ended(7, AttemptOutcome::Failed, 0);
    skewed.new.attempt = 2;
    store
        .record_ended_attempts(&[skewed.clone()])
        .await
        .unwrap();
    let two = store
        .attempts(&run, &job, Some(ItemIndex(7)))
        .await
        .unwrap();
    assert_eq!(two[1].ended_at_ms, Some(skewed.new.started_at_ms));
    assert_eq!(two[1].error.as_deref(), Some("item 7 broke"));

    let mut orphan = ended(0, AttemptOutcome::Succeeded, 1);
    orphan.new.run_id = RunId::new("ghost");
    assert!(matches!(
        store.record_ended_attempts(&[orphan]).await,
        Err(StoreError::NotFound { .. })
    ));
    store.record_ended_attempts(&[]).await.unwrap();
}

/// Issue 13: a deposed leader's late `lost` never hides its successor's
/// recorded success, and the successor's record replaces a stale `lost`
/// the deposed leader wrote first.
pub async fn a_deposed_terms_attempt_rows_never_hide_a_later_terms(store: &Store) {
    let dag = seed_dag(store, "d").await;
    let run = seed_run(store, &dag, "r1", 1).await.run_id;
    let job = JobName::new("debit");
    let ended = |item: u32, outcome: AttemptOutcome| EndedAttempt {
        new: attempt(&run, item, 1, "ex-a"),
        outcome,
        ended_at_ms: 100,
        error: None,
    };
    // Item 0: the successor (term 9) first, then the deposed leader (term 5).
    store
        .record_ended_attempts_in_term(&[ended(0, AttemptOutcome::Succeeded)], 9)
        .await
        .unwrap();
    store
        .record_ended_attempts_in_term(&[ended(0, AttemptOutcome::Lost)], 5)
        .await
        .unwrap();
    // Item 1: the deposed leader first, then the successor.
    store
        .record_ended_attempts_in_term(&[ended(1, AttemptOutcome::Lost)], 5)
        .await
        .unwrap();
    store
        .record_ended_attempts_in_term(&[ended(1, AttemptOutcome::Succeeded)], 9)
        .await
        .unwrap();
    // Item 2: within one term the first end stays (a repeat is a no-op).
    store
        .record_ended_attempts_in_term(&[ended(2, AttemptOutcome::Succeeded)], 9)
        .await
        .unwrap();
    store
        .record_ended_attempts_in_term(&[ended(2, AttemptOutcome::Failed)], 9)
        .await
        .unwrap();
    let stored = store.attempts(&run, &job, None).await.unwrap();
    let outcomes: Vec<_> = stored.iter().map(|a| (a.item.0, a.outcome)).collect();
    assert_eq!(
        outcomes,
        [
            (0, Some(AttemptOutcome::Succeeded)),
            (1, Some(AttemptOutcome::Succeeded)),
            (2, Some(AttemptOutcome::Succeeded)),
        ]
    );
}

pub async fn items_are_counted_by_their_succeeded_attempts(store: &Store) {
    let dag = seed_dag(store, "d").await;
    let run = seed_run(store, &dag, "r1", 1).await.run_id;
    let other = seed_run(store, &dag, "r2", 2).await.run_id;
    let ended = |run: &RunId, job: &str, item: u32, attempt_no: u32, outcome| {
        let mut new = attempt(run, item, attempt_no, "ex-a");
        new.job = JobName::new(job);
        EndedAttempt {
            new,
            outcome,
            ended_at_ms: 100,
            error: None,
        }
    };
    let ok = AttemptOutcome::Succeeded;
    let failed = AttemptOutcome::Failed;
    store
        .record_ended_attempts(&[
            // Item 0 of two jobs: two items, once each.
            ended(&run, "a", 0, 1, ok),
            ended(&run, "b", 0, 1, ok),
            // Failed, then succeeded: once.
            ended(&run, "a", 1, 1, failed),
            ended(&run, "a", 1, 2, ok),
            // Succeeded twice (a fencing breach): more than once.
            ended(&run, "a", 2, 1, ok),
            ended(&run, "a", 2, 2, ok),
            // Only failed: not counted.
            ended(&run, "a", 3, 1, failed),
            // Another run's success is not this run's.
            ended(&other, "a", 4, 1, ok),
        ])
        .await
        .unwrap();
    // Started, not ended: not counted.
    store
        .start_attempt(&attempt(&run, 5, 1, "ex-a"))
        .await
        .unwrap();

    let counts = store.succeeded_counts(&run).await.unwrap();
    assert_eq!((counts.once, counts.more), (3, 1));
    let empty = seed_run(store, &dag, "r3", 3).await.run_id;
    assert_eq!(
        store.succeeded_counts(&empty).await.unwrap(),
        SucceededCounts::default()
    );
}
