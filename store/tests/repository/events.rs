//! Cases for the append-only event log.

use nightshift_core::ids::{DagName, ExecutorId, ItemIndex, JobName, RunId};
use nightshift_store::{EventFilter, NewEvent, Store};

fn event(at_ms: i64, kind: &str) -> NewEvent {
    NewEvent {
        at_ms,
        kind: kind.to_owned(),
        actor: "scheduler:s1".to_owned(),
        dag: None,
        run_id: None,
        job: None,
        item: None,
        executor: None,
        detail: serde_json::json!({}),
    }
}

fn kinds(events: &[nightshift_store::Event]) -> Vec<&str> {
    events.iter().map(|e| e.event.kind.as_str()).collect()
}

pub async fn events_round_trip_and_increase(store: &Store) {
    let full = NewEvent {
        dag: Some(DagName::new("d")),
        run_id: Some(RunId::new("r1")),
        job: Some(JobName::new("j")),
        item: Some(ItemIndex(7)),
        executor: Some(ExecutorId::new("ex-1")),
        detail: serde_json::json!({"attempt": 2, "error": "boom"}),
        actor: "executor:ex-1".to_owned(),
        ..event(5, "item_failed")
    };
    let seq = store.append_event(&full).await.unwrap();
    let batch = store
        .append_events(&[event(6, "a"), event(7, "b"), event(8, "c")])
        .await
        .unwrap();
    assert_eq!(batch.len(), 3);
    assert!(
        seq < batch[0] && batch[0] < batch[1] && batch[1] < batch[2],
        "{seq} {batch:?}"
    );
    assert!(store.append_events(&[]).await.unwrap().is_empty());

    let all = store.events(&EventFilter::default()).await.unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].seq, seq);
    assert_eq!(all[0].event, full);
    assert_eq!(kinds(&all), ["item_failed", "a", "b", "c"]);
}

pub async fn events_filter_by_every_field(store: &Store) {
    let on = |kind: &str, at, dag: &str, run: &str, job: &str, ex: &str| NewEvent {
        dag: Some(DagName::new(dag)),
        run_id: Some(RunId::new(run)),
        job: Some(JobName::new(job)),
        executor: Some(ExecutorId::new(ex)),
        ..event(at, kind)
    };
    store
        .append_events(&[
            on("e1", 100, "d1", "r1", "j1", "x1"),
            on("e2", 200, "d1", "r1", "j2", "x2"),
            on("e3", 300, "d1", "r2", "j1", "x1"),
            on("e4", 400, "d2", "r3", "j1", "x2"),
            event(500, "e5"),
        ])
        .await
        .unwrap();
    let q = |f: EventFilter| async move { store.events(&f).await.unwrap() };
    let d = EventFilter::default;

    assert_eq!(
        kinds(
            &q(EventFilter {
                dag: Some(DagName::new("d1")),
                ..d()
            })
            .await
        ),
        ["e1", "e2", "e3"]
    );
    assert_eq!(
        kinds(
            &q(EventFilter {
                run_id: Some(RunId::new("r1")),
                ..d()
            })
            .await
        ),
        ["e1", "e2"]
    );
    assert_eq!(
        kinds(
            &q(EventFilter {
                run_id: Some(RunId::new("r1")),
                job: Some(JobName::new("j2")),
                ..d()
            })
            .await
        ),
        ["e2"]
    );
    assert_eq!(
        kinds(
            &q(EventFilter {
                job: Some(JobName::new("j1")),
                ..d()
            })
            .await
        ),
        ["e1", "e3", "e4"]
    );
    assert_eq!(
        kinds(
            &q(EventFilter {
                executor: Some(ExecutorId::new("x2")),
                ..d()
            })
            .await
        ),
        ["e2", "e4"]
    );
    assert_eq!(
        kinds(
            &q(EventFilter {
                kind: Some("e5".into()),
                ..d()
            })
            .await
        ),
        ["e5"]
    );
    // from is inclusive, to is exclusive.
    assert_eq!(
        kinds(
            &q(EventFilter {
                from_ms: Some(200),
                to_ms: Some(400),
                ..d()
            })
            .await
        ),
        ["e2", "e3"]
    );
    assert!(q(EventFilter {
        dag: Some(DagName::new("d2")),
        kind: Some("e1".into()),
        ..d()
    })
    .await
    .is_empty());
}

pub async fn events_page_forwards_and_backwards(store: &Store) {
    let seqs = store
        .append_events(
            &(0..7)
                .map(|i| event(i, &format!("k{i}")))
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();

    // Tailing forwards: after the last seen seq, in order.
    let first = store
        .events(&EventFilter {
            limit: Some(3),
            ..EventFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(kinds(&first), ["k0", "k1", "k2"]);
    let next = EventFilter {
        after_seq: Some(first[2].seq),
        limit: Some(3),
        ..EventFilter::default()
    };
    assert_eq!(
        kinds(&store.events(&next).await.unwrap()),
        ["k3", "k4", "k5"]
    );
    let tail = EventFilter {
        after_seq: Some(seqs[6]),
        ..EventFilter::default()
    };
    assert!(store.events(&tail).await.unwrap().is_empty());

    // Paging backwards from the newest.
    let newest = EventFilter {
        newest_first: true,
        limit: Some(2),
        ..EventFilter::default()
    };
    let page1 = store.events(&newest).await.unwrap();
    assert_eq!(kinds(&page1), ["k6", "k5"]);
    let older = EventFilter {
        before_seq: Some(page1[1].seq),
        ..newest
    };
    assert_eq!(kinds(&store.events(&older).await.unwrap()), ["k4", "k3"]);
}

pub async fn concurrent_appends_get_unique_seqs(store: &Store) {
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..10 {
                    seqs.push(
                        store
                            .append_event(&event(i, &format!("t{t}")))
                            .await
                            .unwrap(),
                    );
                }
                seqs
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        let seqs = t.await.unwrap();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "each writer's seqs increase"
        );
        all.extend(seqs);
    }
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 80);
    let stored = store
        .events(&EventFilter {
            limit: Some(1000),
            ..EventFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(stored.len(), 80);
}
