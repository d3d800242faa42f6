//! Cases for run redo generations and item checkpoints.

use crate::fixtures::{day, seed_dag, seed_run};
use nightshift_core::ids::{ExecutorId, FencingToken, ItemIndex, JobName, RunId};
use nightshift_store::{Store, StoredCheckpoint};

fn checkpoint(run: &RunId, item: u32, work: &str, at: i64, resumable: bool) -> StoredCheckpoint {
    StoredCheckpoint {
        run_id: run.clone(),
        job: JobName::new("accrue"),
        item: ItemIndex(item),
        dag: nightshift_core::ids::DagName::new("d"),
        business_date: day(1),
        work_key: work.to_owned(),
        attempt: 2,
        executor: ExecutorId::new("ex-a"),
        fencing_token: FencingToken(77),
        saved_at_ms: at,
        value: serde_json::json!({"page": at}),
        resumable,
    }
}

pub async fn runs_carry_a_redo_generation(store: &Store) {
    let dag = seed_dag(store, "d").await;
    let r1 = seed_run(store, &dag, "r1", 1).await.run_id;
    let r2 = seed_run(store, &dag, "r2", 2).await.run_id;
    assert_eq!(store.run_redo(&r1).await.unwrap(), 0);
    assert_eq!(store.max_redo(&dag, day(1)).await.unwrap(), 0);
    store.set_run_redo(&r2, 3).await.unwrap();
    store.set_run_redo(&r2, 3).await.unwrap();
    assert_eq!(store.run_redo(&r2).await.unwrap(), 3);
    assert_eq!(store.max_redo(&dag, day(1)).await.unwrap(), 3);
    assert_eq!(store.max_redo(&dag, day(2)).await.unwrap(), 0);
    assert_eq!(store.run_redo(&RunId::new("none")).await.unwrap(), 0);
}

pub async fn checkpoints_round_trip_and_seed_only_unfinished_work(store: &Store) {
    let dag = seed_dag(store, "d").await;
    let r1 = seed_run(store, &dag, "r1", 1).await.run_id;
    let r2 = seed_run(store, &dag, "r2", 2).await.run_id;
    // r1: item 0 (work A) stopped at page 10; item 1 (work B) succeeded.
    let a1 = checkpoint(&r1, 0, "A", 10, true);
    store
        .save_checkpoints(&[a1.clone(), checkpoint(&r1, 1, "B", 11, false)])
        .await
        .unwrap();
    // Saving again (a leader redoing a crashed one's work) replaces.
    store
        .save_checkpoints(std::slice::from_ref(&a1))
        .await
        .unwrap();
    assert_eq!(
        store
            .item_checkpoint(&r1, &JobName::new("accrue"), ItemIndex(0))
            .await
            .unwrap(),
        Some(a1.clone())
    );
    let seeds = store
        .resumable_checkpoints(&dag, day(1), &JobName::new("accrue"))
        .await
        .unwrap();
    assert_eq!(seeds, vec![a1]);
    // r2 resumed A and got to page 20 (still unfinished), and finished C.
    let a2 = checkpoint(&r2, 0, "A", 20, true);
    store
        .save_checkpoints(&[a2.clone(), checkpoint(&r2, 2, "C", 21, false)])
        .await
        .unwrap();
    let seeds = store
        .resumable_checkpoints(&dag, day(1), &JobName::new("accrue"))
        .await
        .unwrap();
    assert_eq!(
        seeds,
        vec![a2],
        "the latest per work key, finished work left out"
    );
    // A third run finished A: nothing left to resume.
    let r3 = seed_run(store, &dag, "r3", 3).await.run_id;
    store
        .save_checkpoints(&[checkpoint(&r3, 0, "A", 30, false)])
        .await
        .unwrap();
    assert!(store
        .resumable_checkpoints(&dag, day(1), &JobName::new("accrue"))
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .resumable_checkpoints(&dag, day(2), &JobName::new("accrue"))
        .await
        .unwrap()
        .is_empty());
}
