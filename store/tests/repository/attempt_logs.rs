//! Cases for attempt logs.

use crate::fixtures::{seed_dag, seed_run};
use nightshift_core::ids::{ItemIndex, JobName, RunId};
use nightshift_store::{AttemptLog, Store, StoreError};

fn log(run: &RunId, item: u32, attempt: u32, text: &str) -> AttemptLog {
    AttemptLog {
        run_id: run.clone(),
        job: JobName::new("debit"),
        item: ItemIndex(item),
        attempt,
        log: text.to_owned(),
    }
}

pub async fn attempt_logs_round_trip_once_per_attempt(store: &Store) {
    let dag = seed_dag(store, "d").await;
    let run = seed_run(store, &dag, "r1", 1).await.run_id;
    let job = JobName::new("debit");
    let big = "line ✓ with unicode\n".repeat(3000); // ~66 KiB
    store
        .record_attempt_logs(&[
            log(&run, 0, 1, "2024-03-01T00:00:00.000Z INFO  sleeping 5 ms\n"),
            log(&run, 0, 2, &big),
            log(&run, 1, 1, "nul \0 inside\n"),
        ])
        .await
        .unwrap();
    let got = |item: u32, attempt: u32| store.attempt_log(&run, &job, ItemIndex(item), attempt);
    assert_eq!(
        got(0, 1).await.unwrap().as_deref(),
        Some("2024-03-01T00:00:00.000Z INFO  sleeping 5 ms\n")
    );
    assert_eq!(got(0, 2).await.unwrap().as_deref(), Some(big.as_str()));
    assert_eq!(
        got(1, 1).await.unwrap().as_deref(),
        Some("nul \u{FFFD} inside\n"),
        "NUL is stored as U+FFFD on both backends"
    );
    assert_eq!(got(2, 1).await.unwrap(), None, "no log for that item");
    assert_eq!(got(0, 3).await.unwrap(), None, "nor that attempt");
    assert_eq!(
        store
            .attempt_log(&run, &JobName::new("other"), ItemIndex(0), 1)
            .await
            .unwrap(),
        None,
        "logs are per job"
    );

    // A new leader recording the same results again keeps the first text.
    store
        .record_attempt_logs(&[log(&run, 0, 1, "rewritten\n")])
        .await
        .unwrap();
    assert_eq!(
        got(0, 1).await.unwrap().as_deref(),
        Some("2024-03-01T00:00:00.000Z INFO  sleeping 5 ms\n")
    );

    // Many at once (more than one statement's worth).
    let many: Vec<AttemptLog> = (10..210)
        .map(|i| log(&run, i, 1, &format!("item {i}\n")))
        .collect();
    store.record_attempt_logs(&many).await.unwrap();
    assert_eq!(got(209, 1).await.unwrap().as_deref(), Some("item 209\n"));
    assert_eq!(got(10, 1).await.unwrap().as_deref(), Some("item 10\n"));

    // No run, no log.
    let orphan = store
        .record_attempt_logs(&[log(&RunId::new("nope"), 0, 1, "x\n")])
        .await
        .unwrap_err();
    assert!(matches!(orphan, StoreError::NotFound { .. }), "{orphan}");
}
