//! Items in flight come from the live assignments in a real etcd, not only
//! from SQL (which learns of an attempt when it ends): the items API says
//! `running` with the owner, attempt and last-progress age, the run's job
//! counts and the executors' running counts agree, the overview lists the
//! items running now, and an item SQL records as ended or an assignment
//! that vanished with its executor's lease stops counting.

mod support;

use nightshift_coord::LeaseId;
use nightshift_core::ids::{ExecutorId, FencingToken, ItemIndex, JobName, RunId};
use nightshift_core::keyspace::{
    assign_key, decode, encode, executor_key, AssignmentRecord, ExecutorInfo,
};
use nightshift_core::state::AttemptOutcome;
use nightshift_store::NewAttempt;
use serde_json::Value;
use std::time::Duration;
use support::{seed, Fixture, PREFIX, TOKEN};

fn item(items: &Value, n: usize) -> &Value {
    &items.as_array().unwrap()[n]
}

async fn settle_running(f: &Fixture) -> u64 {
    let (_, run) = f.get_json("/api/v1/runs/r1").await;
    let settle = run["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job"] == "settle")
        .unwrap()
        .clone();
    settle["counts"]["running"].as_u64().unwrap()
}

async fn e1_running(f: &Fixture) -> u64 {
    let (_, execs) = f.get_json("/api/v1/executors").await;
    execs
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "e1")
        .map_or(0, |e| e["running_items"].as_u64().unwrap())
}

#[tokio::test]
async fn items_in_flight_come_from_the_live_assignments_on_etcd() {
    let f = Fixture::etcd(support::operators()).await;
    seed(&f).await;
    let (r1, settle, e1) = (
        RunId::new("r1"),
        JobName::new("settle"),
        ExecutorId::new("e1"),
    );

    // e1 also takes items 5 and 6 (first attempts): SQL knows nothing of
    // them yet.
    let key = assign_key(PREFIX, &r1, &settle, &e1);
    let info: ExecutorInfo = decode(
        &f.coord
            .get(&executor_key(PREFIX, &e1))
            .await
            .unwrap()
            .unwrap()
            .value,
    )
    .unwrap();
    let mut owned: AssignmentRecord =
        decode(&f.coord.get(&key).await.unwrap().unwrap().value).unwrap();
    owned.items.insert(5);
    owned.items.insert(6);
    f.coord
        .put(&key, encode(&owned).unwrap(), Some(LeaseId(info.lease)))
        .await
        .unwrap();

    let (status, items) = f.get_json("/api/v1/runs/r1/jobs/settle/items").await;
    assert_eq!(status, 200);
    for (n, attempt) in [(3, 1), (4, 2), (5, 1), (6, 1)] {
        let it = item(&items, n);
        assert_eq!(it["state"], "running", "item {n}: {it}");
        assert_eq!(it["executor"], "e1", "item {n}");
        assert_eq!(it["attempt"], attempt, "item {n}");
        assert!(
            it["last_progress_age_ms"].as_i64().is_some_and(|a| a >= 0),
            "item {n}: {it}"
        );
    }
    // Item 3 reported progress; item 5 only has its job's start.
    let t3 = item(&items, 3)["last_progress_at_ms"].as_i64().unwrap();
    assert_eq!(t3, item(&items, 3)["progress"]["at_ms"].as_i64().unwrap());
    assert_eq!(item(&items, 7)["state"], "pending");
    assert_eq!(item(&items, 7)["executor"], Value::Null);
    assert_eq!(settle_running(&f).await, 4);
    assert_eq!(e1_running(&f).await, 4);
    let (_, _, overview) = f
        .call(axum::http::Method::GET, "/", Some(TOKEN), None)
        .await;
    assert!(overview.contains("Running now"), "{overview}");
    assert_eq!(
        overview.matches("<tr class=\"running-item").count(),
        4,
        "{overview}"
    );

    // Item 5 finishes: SQL holds its end while the assignment still lists
    // it (the leader rewrites the key only when it must).
    let done = f
        .store
        .start_attempt(&NewAttempt {
            run_id: r1.clone(),
            job: settle.clone(),
            item: ItemIndex(5),
            attempt: 1,
            executor: e1.clone(),
            fencing_token: FencingToken(9),
            started_at_ms: support::t0() + 9_000,
            moved_from: None,
        })
        .await
        .unwrap();
    f.store
        .finish_attempt(
            done,
            AttemptOutcome::Succeeded,
            support::t0() + 10_000,
            None,
        )
        .await
        .unwrap();
    let (_, items) = f.get_json("/api/v1/runs/r1/jobs/settle/items").await;
    assert_eq!(item(&items, 5)["state"], "succeeded");
    assert_eq!(item(&items, 5)["attempt"], Value::Null);
    assert_eq!(settle_running(&f).await, 3);
    assert_eq!(e1_running(&f).await, 3);

    // e1 dies: its lease takes its registration and its assignments along.
    f.coord.revoke_lease(LeaseId(info.lease)).await.unwrap();
    nightshift_testkit::wait::wait_for(Duration::from_secs(10), "e1's assignment gone", || async {
        f.coord.get(&key).await.unwrap().is_none()
    })
    .await
    .unwrap();
    let (_, items) = f.get_json("/api/v1/runs/r1/jobs/settle/items").await;
    assert_eq!(item(&items, 6)["state"], "pending");
    assert_eq!(item(&items, 6)["executor"], Value::Null);
    assert_eq!(settle_running(&f).await, 0);
    let (_, execs) = f.get_json("/api/v1/executors").await;
    assert_eq!(execs, serde_json::json!([]));
}
