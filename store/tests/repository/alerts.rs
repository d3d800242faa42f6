//! Cases for alerts and silences.

use nightshift_core::ids::{DagName, ItemIndex, JobName, RunId};
use nightshift_core::state::{AlertRule, AlertSeverity, AlertState, RunState};
use nightshift_store::{AlertFilter, AlertId, NewAlert, Store, StoreError};

fn alert(key: &str, at_ms: i64) -> NewAlert {
    NewAlert {
        rule: AlertRule::ItemFailed,
        dedupe_key: key.to_owned(),
        severity: AlertSeverity::Critical,
        dag: Some(DagName::new("d")),
        run_id: Some(RunId::new("r1")),
        job: Some(JobName::new("j")),
        item: Some(ItemIndex(3)),
        executor: None,
        message: format!("{key} failed"),
        at_ms,
    }
}

pub async fn open_alert_dedupes_active_alerts(store: &Store) {
    let opened = store.open_alert(&alert("k1", 100)).await.unwrap();
    assert!(opened.created);
    let a = &opened.alert;
    assert_eq!(
        (a.state, a.opened_at_ms, a.last_seen_at_ms),
        (AlertState::Open, 100, 100)
    );
    assert_eq!(
        (a.rule, a.severity),
        (AlertRule::ItemFailed, AlertSeverity::Critical)
    );
    assert_eq!(a.item, Some(ItemIndex(3)));
    assert_eq!(a.message, "k1 failed");

    let again = store.open_alert(&alert("k1", 200)).await.unwrap();
    assert!(!again.created);
    assert_eq!(again.alert.id, a.id);
    assert_eq!(
        (again.alert.opened_at_ms, again.alert.last_seen_at_ms),
        (100, 200)
    );
    // A late, out-of-order sighting never moves last_seen backwards.
    let late = store.open_alert(&alert("k1", 150)).await.unwrap();
    assert_eq!(late.alert.last_seen_at_ms, 200);

    let other = store.open_alert(&alert("k2", 300)).await.unwrap();
    assert!(other.created);
    assert_ne!(other.alert.id, a.id);
    let open = store
        .list_alerts(&AlertFilter {
            states: vec![AlertState::Open],
            ..AlertFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(open.len(), 2);
}

/// Dedupe keys of the open and acknowledged alerts, sorted.
async fn active_keys(store: &Store) -> Vec<String> {
    let active = store
        .list_alerts(&AlertFilter {
            states: vec![AlertState::Open, AlertState::Acknowledged],
            ..AlertFilter::default()
        })
        .await
        .unwrap();
    let mut keys: Vec<String> = active.into_iter().map(|a| a.dedupe_key).collect();
    keys.sort();
    keys
}

pub async fn resolve_run_alerts_closes_only_that_runs_rules(store: &Store) {
    let of = |key: &str, rule: AlertRule, run: &str| NewAlert {
        rule,
        run_id: Some(RunId::new(run)),
        ..alert(key, 100)
    };
    store
        .open_alert(&of("lost:e1:r1", AlertRule::ExecutorLost, "r1"))
        .await
        .unwrap();
    let acked = store
        .open_alert(&of("stalled:r1", AlertRule::ItemStalled, "r1"))
        .await
        .unwrap()
        .alert;
    store.ack_alert(acked.id, "bob", 105).await.unwrap();
    store
        .open_alert(&of("failed:r1", AlertRule::ItemFailed, "r1"))
        .await
        .unwrap();
    store
        .open_alert(&of("lost:e1:r2", AlertRule::ExecutorLost, "r2"))
        .await
        .unwrap();

    let rules = [AlertRule::ExecutorLost, AlertRule::ItemStalled];
    let resolved = store
        .resolve_run_alerts(&RunId::new("r1"), &rules, 140)
        .await
        .unwrap();
    let mut keys: Vec<_> = resolved.iter().map(|a| a.dedupe_key.as_str()).collect();
    keys.sort();
    assert_eq!(keys, ["lost:e1:r1", "stalled:r1"]);
    assert!(resolved
        .iter()
        .all(|a| a.state == AlertState::Resolved && a.resolved_at_ms == Some(140)));

    assert_eq!(
        active_keys(store).await,
        ["failed:r1", "lost:e1:r2"],
        "another rule or run stays open"
    );
    assert!(store
        .resolve_run_alerts(&RunId::new("r1"), &rules, 150)
        .await
        .unwrap()
        .is_empty());
}

pub async fn alerts_of_ended_runs_are_resolved_by_rule(store: &Store) {
    let dag = crate::fixtures::seed_dag(store, "d").await;
    for id in ["ended", "live", "failed"] {
        crate::fixtures::seed_run(store, &dag, id, 10).await;
        store
            .update_run_state(&RunId::new(id), RunState::Running, 20, None)
            .await
            .unwrap();
    }
    store
        .update_run_state(&RunId::new("ended"), RunState::Succeeded, 30, None)
        .await
        .unwrap();
    store
        .update_run_state(&RunId::new("failed"), RunState::Failed, 30, Some("x"))
        .await
        .unwrap();
    let of = |key: &str, rule: AlertRule, run: &str| NewAlert {
        rule,
        run_id: Some(RunId::new(run)),
        ..alert(key, 100)
    };
    for (key, rule, run) in [
        ("lost:e1:ended", AlertRule::ExecutorLost, "ended"),
        ("slow:failed", AlertRule::RunSlow, "failed"),
        ("failed:ended", AlertRule::ItemFailed, "ended"),
        ("lost:e1:live", AlertRule::ExecutorLost, "live"),
        ("lost:e1:unknown", AlertRule::ExecutorLost, "unknown"),
    ] {
        store.open_alert(&of(key, rule, run)).await.unwrap();
    }

    let rules = [AlertRule::ExecutorLost, AlertRule::RunSlow];
    let resolved = store
        .resolve_alerts_of_ended_runs(&rules, 140)
        .await
        .unwrap();
    let mut keys: Vec<_> = resolved.iter().map(|a| a.dedupe_key.as_str()).collect();
    keys.sort();
    assert_eq!(keys, ["lost:e1:ended", "slow:failed"]);
    assert!(resolved
        .iter()
        .all(|a| a.state == AlertState::Resolved && a.resolved_at_ms == Some(140)));
    assert_eq!(
        active_keys(store).await,
        ["failed:ended", "lost:e1:live", "lost:e1:unknown"],
        "another rule, a live run or a run SQL does not know stays open"
    );
    assert!(store
        .resolve_alerts_of_ended_runs(&rules, 150)
        .await
        .unwrap()
        .is_empty());
}

pub async fn ack_and_resolve_lifecycle(store: &Store) {
    let first = store.open_alert(&alert("k", 100)).await.unwrap().alert;

    let acked = store.ack_alert(first.id, "bob", 110).await.unwrap();
    assert_eq!(acked.state, AlertState::Acknowledged);
    assert_eq!(
        (acked.acked_at_ms, acked.acked_by.as_deref()),
        (Some(110), Some("bob"))
    );
    // Acknowledging twice keeps the first acknowledgement.
    let again = store.ack_alert(first.id, "carol", 120).await.unwrap();
    assert_eq!(again, acked);

    // An acknowledged alert is still active: the same condition dedupes.
    let seen = store.open_alert(&alert("k", 130)).await.unwrap();
    assert!(!seen.created);
    assert_eq!(seen.alert.state, AlertState::Acknowledged);

    store.mark_alert_notified(first.id, 135).await.unwrap();
    assert_eq!(
        store
            .get_alert(first.id)
            .await
            .unwrap()
            .unwrap()
            .notified_at_ms,
        Some(135)
    );

    let resolved = store.resolve_alert("k", 140).await.unwrap().unwrap();
    assert_eq!(
        (resolved.id, resolved.state, resolved.resolved_at_ms),
        (first.id, AlertState::Resolved, Some(140))
    );
    assert_eq!(
        store.resolve_alert("k", 150).await.unwrap(),
        None,
        "nothing active is left"
    );
    assert_eq!(
        store.resolve_alert("never-opened", 150).await.unwrap(),
        None
    );

    let err = store.ack_alert(first.id, "bob", 160).await.unwrap_err();
    assert!(matches!(err, StoreError::IllegalTransition { .. }), "{err}");
    assert!(matches!(
        store.ack_alert(AlertId(424_242), "bob", 1).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.mark_alert_notified(AlertId(424_242), 1).await,
        Err(StoreError::NotFound { .. })
    ));

    // After resolution, the same condition opens a fresh alert.
    let reopened = store.open_alert(&alert("k", 200)).await.unwrap();
    assert!(reopened.created);
    assert_ne!(reopened.alert.id, first.id);
    assert_eq!(
        store.get_alert(first.id).await.unwrap().unwrap().state,
        AlertState::Resolved
    );
}

pub async fn concurrent_opens_create_one_alert(store: &Store) {
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.open_alert(&alert("same", 100 + i)).await })
        })
        .collect();
    let mut created = 0;
    let mut ids = Vec::new();
    for t in tasks {
        let opened = t.await.unwrap().unwrap();
        created += usize::from(opened.created);
        ids.push(opened.alert.id);
    }
    assert_eq!(created, 1);
    ids.dedup();
    assert_eq!(ids.len(), 1, "every caller got the same alert");
    assert_eq!(
        store
            .list_alerts(&AlertFilter::default())
            .await
            .unwrap()
            .len(),
        1
    );
}

pub async fn list_alerts_filters_and_orders(store: &Store) {
    let a = store.open_alert(&alert("a", 100)).await.unwrap().alert;
    let b = store.open_alert(&alert("b", 200)).await.unwrap().alert;
    let c = store
        .open_alert(&NewAlert {
            dag: Some(DagName::new("other")),
            ..alert("c", 300)
        })
        .await
        .unwrap()
        .alert;
    store.ack_alert(b.id, "bob", 250).await.unwrap();
    store.resolve_alert("a", 260).await.unwrap();

    let ids =
        |alerts: Vec<nightshift_store::Alert>| alerts.into_iter().map(|a| a.id).collect::<Vec<_>>();
    let all = store.list_alerts(&AlertFilter::default()).await.unwrap();
    assert_eq!(ids(all), [c.id, b.id, a.id], "newest first");
    let active = AlertFilter {
        states: vec![AlertState::Open, AlertState::Acknowledged],
        ..AlertFilter::default()
    };
    assert_eq!(ids(store.list_alerts(&active).await.unwrap()), [c.id, b.id]);
    let resolved = AlertFilter {
        states: vec![AlertState::Resolved],
        ..AlertFilter::default()
    };
    assert_eq!(ids(store.list_alerts(&resolved).await.unwrap()), [a.id]);
    let of_d = AlertFilter {
        dag: Some(DagName::new("d")),
        ..AlertFilter::default()
    };
    assert_eq!(ids(store.list_alerts(&of_d).await.unwrap()), [b.id, a.id]);
    let limited = AlertFilter {
        limit: Some(1),
        ..AlertFilter::default()
    };
    assert_eq!(ids(store.list_alerts(&limited).await.unwrap()), [c.id]);
}

pub async fn silences_cover_rule_and_dag_until_expiry(store: &Store) {
    let d1 = DagName::new("d1");
    let d2 = DagName::new("d2");
    assert!(!store
        .is_silenced(AlertRule::ItemFailed, Some(&d1), 0)
        .await
        .unwrap());

    let s = store
        .silence(AlertRule::ItemFailed, Some(&d1), 1_000, "alice", 10)
        .await
        .unwrap();
    assert_eq!(
        (s.rule, s.dag.as_ref(), s.until_ms, s.created_by.as_str()),
        (AlertRule::ItemFailed, Some(&d1), 1_000, "alice")
    );
    assert!(store
        .is_silenced(AlertRule::ItemFailed, Some(&d1), 999)
        .await
        .unwrap());
    assert!(
        !store
            .is_silenced(AlertRule::ItemFailed, Some(&d1), 1_000)
            .await
            .unwrap(),
        "until is exclusive"
    );
    assert!(
        !store
            .is_silenced(AlertRule::ItemFailed, Some(&d2), 500)
            .await
            .unwrap(),
        "other dag"
    );
    assert!(
        !store
            .is_silenced(AlertRule::ItemFailed, None, 500)
            .await
            .unwrap(),
        "dag-less alert"
    );
    assert!(
        !store
            .is_silenced(AlertRule::ItemStalled, Some(&d1), 500)
            .await
            .unwrap(),
        "other rule"
    );

    // A silence without a DAG covers every DAG, and alerts with no DAG.
    store
        .silence(AlertRule::ExecutorLost, None, 2_000, "bob", 20)
        .await
        .unwrap();
    assert!(store
        .is_silenced(AlertRule::ExecutorLost, Some(&d2), 1_500)
        .await
        .unwrap());
    assert!(store
        .is_silenced(AlertRule::ExecutorLost, None, 1_500)
        .await
        .unwrap());
    assert!(!store
        .is_silenced(AlertRule::ExecutorLost, None, 2_500)
        .await
        .unwrap());

    let active: Vec<AlertRule> = store
        .active_silences(500)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.rule)
        .collect();
    assert_eq!(
        active,
        [AlertRule::ItemFailed, AlertRule::ExecutorLost],
        "ending soonest first"
    );
    let later: Vec<AlertRule> = store
        .active_silences(1_500)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.rule)
        .collect();
    assert_eq!(later, [AlertRule::ExecutorLost]);
}
