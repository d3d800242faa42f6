//! Issue 14's readable pages, in a real headless Chromium (through
//! chromedriver): at 1440 px no page overflows sideways — the overview,
//! a DAG's runs list, a run, the events (with an event whose JSON payload is
//! long and has no spaces), alerts (with a long message) and executors;
//! the job Gantt and the item timeline carry time tick labels; and the
//! header's time-zone choice, switched to the DAG's zone
//! (`Europe/Paris`), rewrites the displayed times and ticks, and is still
//! in force after a reload. Screenshots under `target/screenshots/`
//! (`overview-1440.png`, `runs-1440.png`, `run-1440.png`,
//! `events-1440.png`, `alerts-1440.png`, `executors-1440.png`,
//! `run-paris.png`).
//!
//! Needs `chromium` and `chromium-driver` (Debian); `scripts/ensure-services`
//! installs them.

mod support;

use nightshift_core::ids::{DagName, ExecutorId, ItemIndex, JobName, RunId};
use nightshift_core::state::{AlertRule, AlertSeverity, RunState, TriggerSource};
use nightshift_store::{NewAlert, NewEvent, NewRun};
use serde_json::Value;
use std::path::PathBuf;
use support::webdriver::{log_in, Browser, Served};
use support::{seed, Fixture, TOKEN};

const HOUR_MS: i64 = 3_600_000;

fn shots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots")
}

const OVERFLOWS: &str = "return document.documentElement.scrollWidth > window.innerWidth";

/// A finished run of the seeded DAG from `start_ms` to `end_ms`.
async fn ended_run(f: &Fixture, id: &str, start_ms: i64, end_ms: i64, state: RunState) {
    f.store
        .insert_run(&NewRun {
            run_id: RunId::new(id),
            dag: DagName::new("settlement"),
            dag_version: 1,
            business_date: chrono::NaiveDate::from_ymd_opt(2024, 3, 28).unwrap(),
            trigger_source: TriggerSource::Manual,
            params: serde_json::json!({}),
            scheduled_for_ms: None,
            created_at_ms: start_ms,
        })
        .await
        .unwrap();
    f.store
        .update_run_state(&RunId::new(id), RunState::Running, start_ms, None)
        .await
        .unwrap();
    let error = (state == RunState::Failed).then_some("job settle failed");
    f.store
        .update_run_state(&RunId::new(id), state, end_ms, error)
        .await
        .unwrap();
}

/// The seeded history, plus what makes pages wide or busy: an event with
/// a long JSON payload without spaces, an alert with a long message, and
/// on the overview a long succeeded run with a 5-second failed run inside.
async fn seed_wide(f: &Fixture) {
    seed(f).await;
    let now = chrono::Utc::now().timestamp_millis();
    let token = "A".repeat(1_500);
    f.store
        .append_event(&NewEvent {
            at_ms: now - 1_000,
            kind: "command_trigger".into(),
            actor: "console:alice".into(),
            dag: Some(DagName::new("settlement")),
            run_id: Some(RunId::new("r1")),
            job: Some(JobName::new("settle")),
            item: Some(ItemIndex(2)),
            executor: Some(ExecutorId::new("e1")),
            detail: serde_json::json!({
                "params": {"accounts": (0..80).map(|i| format!("ACC-{i:06}")).collect::<Vec<_>>()},
                "signature": token,
                "path": "/var/lib/nightshift/very/long/path/".repeat(20),
            }),
        })
        .await
        .unwrap();
    f.store
        .open_alert(&NewAlert {
            rule: AlertRule::ItemStalled,
            dedupe_key: "item_stalled:r1:settle:2".into(),
            severity: AlertSeverity::Critical,
            dag: Some(DagName::new("settlement")),
            run_id: Some(RunId::new("r1")),
            job: Some(JobName::new("settle")),
            item: Some(ItemIndex(2)),
            executor: None,
            message: format!(
                "item 2 of settle quiet for 2h: last error posting refused: {}",
                "ledger-gateway.internal:8443/v2/postings/batch?id=".repeat(12)
            ),
            at_ms: now - 2_000,
        })
        .await
        .unwrap();
    ended_run(
        f,
        "r-long",
        now - 4 * HOUR_MS,
        now - 2 * HOUR_MS,
        RunState::Succeeded,
    )
    .await;
    ended_run(
        f,
        "r-short-failed",
        now - 3 * HOUR_MS,
        now - 3 * HOUR_MS + 5_000,
        RunState::Failed,
    )
    .await;
}

/// Opens `path` and waits for its heading and the page script's zone pass
/// (`data-tz` on the body).
async fn open(browser: &Browser, base: &str, path: &str) {
    browser.goto(&format!("{base}{path}")).await.unwrap();
    browser
        .wait_true(
            30,
            path,
            "return document.readyState === 'complete' && !!document.querySelector('main h1') \
             && document.body.hasAttribute('data-tz')",
        )
        .await
        .unwrap();
}

/// The texts of the tick labels of the chart in section `id`.
async fn tick_labels(browser: &Browser, id: &str) -> Vec<String> {
    let v = browser
        .exec(&format!(
            "return Array.from(document.querySelectorAll('#{id} svg text.tick[data-ms]')).map(function (t) {{ return t.textContent; }})"
        ))
        .await
        .unwrap();
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_fit_1440_px_with_time_ticks_and_a_zone_choice() {
    let f = Fixture::memory(support::operators()).await;
    seed_wide(&f).await;
    let served = Served::start(f.state.clone()).await;
    let base = served.base.clone();
    let browser = Browser::start().await.unwrap();
    browser.set_window_size(1440, 1000).await.unwrap();
    log_in(&browser, &base, TOKEN, "Overview").await;
    let width = browser.exec("return window.innerWidth").await.unwrap();
    assert!(
        width.as_u64().is_some_and(|w| (1400..=1440).contains(&w)),
        "the window is not 1440 px wide: {width}"
    );

    for (path, shot) in [
        ("/", "overview-1440.png"),
        ("/dags/settlement", "runs-1440.png"),
        ("/runs/r1", "run-1440.png"),
        ("/events", "events-1440.png"),
        ("/alerts", "alerts-1440.png"),
        ("/executors", "executors-1440.png"),
    ] {
        open(&browser, &base, path).await;
        browser.screenshot(&shots().join(shot)).await.unwrap();
        let sizes = browser
            .exec("return [document.documentElement.scrollWidth, window.innerWidth]")
            .await
            .unwrap();
        assert_eq!(
            browser.exec(OVERFLOWS).await.unwrap(),
            false,
            "{path} overflows at 1440 px: [scrollWidth, innerWidth] = {sizes}"
        );
    }
    // The long payload and message are on their pages, wrapped.
    open(&browser, &base, "/events").await;
    assert_eq!(
        browser
            .exec("return document.body.innerText.includes('ACC-000079')")
            .await
            .unwrap(),
        true
    );

    // The overview: the 5-second failed run is drawn, wide enough to see,
    // over the long run it falls in.
    open(&browser, &base, "/").await;
    let failed = browser
        .exec(
            "var r = document.querySelector('#timeline a[href=\"/runs/r-short-failed\"] rect'); \
             var all = Array.from(document.querySelectorAll('#timeline rect')); \
             var long = document.querySelector('#timeline a[href=\"/runs/r-long\"] rect'); \
             return r ? [r.getBoundingClientRect().width, all.indexOf(r) > all.indexOf(long)] : null",
        )
        .await
        .unwrap();
    assert!(
        failed[0].as_f64().is_some_and(|w| w >= 4.0) && failed[1] == true,
        "the short failed run is narrow or under the long one: {failed}"
    );

    // The run page: tick labels on the job Gantt and the item timeline.
    open(&browser, &base, "/runs/r1").await;
    for id in ["gantt", "item-timeline"] {
        let labels = tick_labels(&browser, id).await;
        assert!(labels.len() >= 2, "{id}: ticks {labels:?}");
        assert!(
            labels
                .iter()
                .all(|l| l.len() >= 5 && l.as_bytes()[2] == b':'),
            "{id}: tick labels are times: {labels:?}"
        );
    }

    // The zone choice: UTC first (nothing stored yet), then the DAG's zone.
    let started = "return document.querySelector('#summary time').textContent";
    let utc_text = browser.exec(started).await.unwrap();
    let utc_text = utc_text.as_str().unwrap_or_default().to_owned();
    assert!(utc_text.ends_with('Z'), "{utc_text}");
    assert_eq!(
        browser
            .exec("return [document.getElementById('tz-choice').hidden, document.getElementById('tz-note').hidden]")
            .await
            .unwrap(),
        serde_json::json!([false, true]),
        "the script shows the choice and hides the no-script note"
    );
    let utc_ticks = tick_labels(&browser, "gantt").await;
    browser
        .exec(
            "var s = document.getElementById('tz'); s.value = 'dag'; \
             s.dispatchEvent(new Event('change')); return true",
        )
        .await
        .unwrap();
    let paris = |text: &str| text.ends_with(" GMT+1") || text.ends_with(" GMT+2");
    browser
        .wait_true(
            10,
            "the start time in Paris time",
            "var t = document.querySelector('#summary time').textContent; \
             return /GMT\\+[12]$/.test(t)",
        )
        .await
        .unwrap();
    let paris_text = browser.exec(started).await.unwrap();
    let paris_text = paris_text.as_str().unwrap_or_default().to_owned();
    assert!(paris(&paris_text), "{paris_text}");
    // Same instant, one or two hours later on the wall clock.
    let hour = |t: &str| t[11..13].parse::<u32>().unwrap();
    let shift = (hour(&paris_text) + 24 - hour(&utc_text)) % 24;
    assert!(
        shift == 1 || shift == 2,
        "{utc_text} → {paris_text}: not Paris time"
    );
    let paris_ticks = tick_labels(&browser, "gantt").await;
    assert_ne!(paris_ticks, utc_ticks, "tick labels follow the zone");
    assert_eq!(
        browser
            .exec("return document.querySelector('#gantt svg text.tz-name').textContent")
            .await
            .unwrap(),
        "Europe/Paris"
    );
    browser
        .screenshot(&shots().join("run-paris.png"))
        .await
        .unwrap();

    // Remembered: after a reload the page reads in Paris time again.
    open(&browser, &base, "/runs/r1").await;
    assert_eq!(
        browser
            .exec("return document.getElementById('tz').value")
            .await
            .unwrap(),
        "dag"
    );
    assert_eq!(
        browser.exec(started).await.unwrap(),
        paris_text.as_str(),
        "the choice survives a reload"
    );
    // A live refresh swaps the run's summary (its duration grows) and
    // writes the new one in Paris time too.
    browser
        .exec("document.querySelector('#summary time').classList.add('old'); return true")
        .await
        .unwrap();
    let mut swapped = false;
    for _ in 0..5 {
        browser
            .exec("document.body.removeAttribute('data-refreshed'); return true")
            .await
            .unwrap();
        f.store
            .append_event(&NewEvent {
                at_ms: 1,
                kind: "test_nudge".into(),
                actor: "test".into(),
                dag: None,
                run_id: Some(RunId::new("r1")),
                job: None,
                item: None,
                executor: None,
                detail: Value::Null,
            })
            .await
            .unwrap();
        browser
            .wait_true(
                30,
                "a live refresh",
                "return document.body.hasAttribute('data-refreshed')",
            )
            .await
            .unwrap();
        if browser
            .exec("return !document.querySelector('#summary time.old')")
            .await
            .unwrap()
            == true
        {
            swapped = true;
            break;
        }
    }
    assert!(swapped, "the summary was never refreshed");
    let after = browser.exec(started).await.unwrap();
    assert!(
        after.as_str().is_some_and(paris),
        "after a live refresh: {after}"
    );
    // And on a list: each row in its own DAG's zone.
    open(&browser, &base, "/events").await;
    let first = browser
        .exec("return document.querySelector('#events time[data-zone]').textContent")
        .await
        .unwrap();
    assert!(first.as_str().is_some_and(paris), "{first}");
    // Back to UTC.
    browser
        .exec(
            "var s = document.getElementById('tz'); s.value = 'utc'; \
             s.dispatchEvent(new Event('change')); return true",
        )
        .await
        .unwrap();
    let first = browser
        .exec("return document.querySelector('#events time[data-zone]').textContent")
        .await
        .unwrap();
    assert!(first.as_str().is_some_and(|t| t.ends_with('Z')), "{first}");

    drop(browser);
    served.stop().await;
}
