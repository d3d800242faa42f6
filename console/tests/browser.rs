//! The console in a real headless Chromium (driven through chromedriver):
//! an operator logs in through the login form, the pages' script connects
//! to the live stream, a run's item grid updates
//! without a reload, clicking an item shows its attempts, an operator
//! triggers a run and acknowledges an alert. Screenshots of the overview,
//! run and DAG pages are saved under `target/console-screenshots/`.
//!
//! With a real etcd, scheduler and executor process (this binary run again
//! as [`executor_process`]): items shown running on their executor while
//! they sleep, the executors page and overview counting them, a trigger's
//! toast following the command to the leader's answer and linking to the
//! run, actions disabled on a finished run, and a trigger the leader
//! refuses shown as rejected — screenshots `trigger-applied.png`,
//! `run-items-running.png`, `executors-running.png`,
//! `overview-running-now.png`, `run-succeeded-actions-disabled.png`,
//! `trigger-rejected.png`.
//!
//! Needs `chromium` and `chromium-driver` (Debian); `scripts/ensure-services`
//! installs them.

mod support;

use nightshift_core::ids::{JobName, RunId};
use nightshift_core::keyspace::{commands_prefix, decode, Command, CommandRecord};
use nightshift_core::state::{AttemptOutcome, JobState};
use nightshift_store::{JobRun, NewEvent};
use std::path::PathBuf;
use std::time::Duration;
use support::webdriver::{log_in, Browser, Served};
use support::{seed, Fixture, PREFIX, TOKEN};

fn shots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots")
}

/// Appends a harmless event so that a stream that connected after an
/// earlier change still hears about it.
async fn nudge(f: &Fixture) {
    let event = NewEvent {
        at_ms: 1,
        kind: "test_nudge".into(),
        actor: "test".into(),
        dag: None,
        run_id: Some(RunId::new("r1")),
        job: None,
        item: None,
        executor: None,
        detail: serde_json::Value::Null,
    };
    f.store.append_event(&event).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_watches_a_run_live_and_acts_in_a_real_browser() {
    let f = Fixture::memory(support::operators()).await;
    let alert = seed(&f).await;
    let served = Served::start(f.state.clone()).await;
    let base = served.base.clone();
    let browser = Browser::start().await.unwrap();

    // Anonymous: the login form; log in through it, back to the overview.
    log_in(&browser, &base, TOKEN, "settlement").await;
    browser
        .screenshot(&shots().join("overview.png"))
        .await
        .unwrap();

    // Run page: the script connects to the stream.
    browser.goto(&format!("{base}/runs/r1")).await.unwrap();
    browser
        .wait_true(
            30,
            "the live stream",
            "return document.getElementById('live').textContent.includes('● live')",
        )
        .await
        .unwrap();

    // Clicking an item shows its attempts and error.
    browser.click(".cell[data-item=\"2\"]").await.unwrap();
    browser
        .wait_true(30, "the item detail", "var d = document.getElementById('item-detail'); return !d.hidden && d.textContent.includes('ledger refused')")
        .await
        .unwrap();

    // Item 3 finishes: the grid updates without a reload.
    browser
        .exec("window.notReloaded = true; return true")
        .await
        .unwrap();
    let (r1, settle) = (RunId::new("r1"), JobName::new("settle"));
    let running = f
        .store
        .attempts(&r1, &settle, Some(nightshift_core::ids::ItemIndex(3)))
        .await
        .unwrap();
    f.store
        .finish_attempt(
            running[0].id,
            AttemptOutcome::Succeeded,
            support::t0() + 9_000,
            None,
        )
        .await
        .unwrap();
    let mut job = f.store.job_run(&r1, &settle).await.unwrap().unwrap();
    job.succeeded = 3;
    job.state = JobState::Running;
    let job: JobRun = job;
    f.store.upsert_job_run(&job).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        nudge(&f).await;
        let updated = browser
            .exec("return document.querySelector('.cell[data-item=\"3\"]').classList.contains('st-succeeded')")
            .await
            .unwrap();
        if updated == serde_json::Value::Bool(true) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the item grid did not update live"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        browser
            .exec("return window.notReloaded === true")
            .await
            .unwrap(),
        true,
        "the page reloaded"
    );
    browser.screenshot(&shots().join("run.png")).await.unwrap();

    // DAG page: trigger a run with a business date, confirming the dialog.
    browser
        .goto(&format!("{base}/dags/settlement"))
        .await
        .unwrap();
    browser
        .wait_true(
            30,
            "the DAG graph",
            "return !!document.querySelector('svg.graph')",
        )
        .await
        .unwrap();
    browser.screenshot(&shots().join("dag.png")).await.unwrap();
    let script = "window.confirmed = []; \
         window.confirm = function (m) { window.confirmed.push(m); return true; }; \
         document.querySelector('input[name=business_date]').value = '2024-03-30'; return true";
    browser.exec(script).await.unwrap();
    browser.click("form.act button[type=submit]").await.unwrap();
    browser
        .wait_true(
            30,
            "the trigger confirmation",
            // No scheduler here: the page says it waits for the leader's
            // answer rather than claiming success.
            "var t = document.getElementById('toast'); \
             return t.textContent.includes('Trigger sent; waiting for the scheduler') \
             && t.getAttribute('data-outcome') === 'pending'",
        )
        .await
        .unwrap();
    assert_eq!(
        browser.exec("return window.confirmed").await.unwrap(),
        serde_json::json!(["Trigger a run of settlement?"])
    );
    let (kvs, _) = f.coord.get_prefix(&commands_prefix(PREFIX)).await.unwrap();
    assert_eq!(kvs.len(), 1);
    let record: CommandRecord = decode(&kvs[0].value).unwrap();
    assert_eq!(record.issued_by, "alice");
    assert!(
        matches!(&record.command, Command::Trigger { business_date: Some(d), .. } if d.to_string() == "2024-03-30"),
        "{:?}",
        record.command
    );

    // Alerts page: acknowledge (the session cookie and CSRF header carry it).
    browser.goto(&format!("{base}/alerts")).await.unwrap();
    browser
        .click(&format!(
            "button.act[data-path=\"/api/v1/alerts/{alert}/ack\"]"
        ))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let a = f
            .store
            .get_alert(nightshift_store::AlertId(alert))
            .await
            .unwrap()
            .unwrap();
        if a.acked_by.as_deref() == Some("alice") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the alert was not acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    drop(browser);
    served.stop().await;
}

/// The DAG of the live test: four `sleep` items long enough to be seen
/// running.
const LIVE_DAG: &str = r#"
name = "nightly"
schedule = "0 2 * * *"
timezone = "UTC"

[jobs.work]
handler = "sleep"
shards = 4
params = { millis = 20000 }
"#;

/// Environment of the executor child process (see [`executor_process`]).
const CHILD_ENDPOINTS: &str = "NIGHTSHIFT_TEST_CHILD_ETCD";
const CHILD_ID: &str = "NIGHTSHIFT_TEST_CHILD_EXECUTOR";

/// Not a test: the body of the executor process that
/// [`an_operator_sees_items_running_and_a_rejection_in_a_real_browser`]
/// starts by running this test binary again with only this test selected.
/// Does nothing when run as a test.
#[tokio::test]
#[ignore = "the executor process of the live browser test; does nothing on its own"]
async fn executor_process() {
    let (Ok(endpoints), Ok(id)) = (std::env::var(CHILD_ENDPOINTS), std::env::var(CHILD_ID)) else {
        return;
    };
    let coord = nightshift_coord::etcd::EtcdCoordinator::connect(
        nightshift_coord::etcd::EtcdConfig::new(endpoints.split(',').map(str::to_owned).collect()),
    )
    .await
    .unwrap();
    nightshift_executor::Executor::builder()
        .coordinator(std::sync::Arc::new(coord))
        .prefix(PREFIX)
        .id(id)
        .capacity(4)
        .handler("sleep", nightshift_executor::builtin::Sleep)
        .build()
        .unwrap()
        .run_until_signal()
        .await
        .unwrap();
}

/// A child process, killed on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Applies `LIVE_DAG` as `nightshift apply` does: the version in SQL, the
/// applied record in etcd.
async fn apply_live_dag(f: &Fixture) {
    use nightshift_core::dag::{parse_dag, CalendarSet};
    use nightshift_core::keyspace::{dag_checksum, dag_key, encode, AppliedDag};
    let spec = parse_dag(
        std::path::Path::new("dags/nightly.toml"),
        LIVE_DAG,
        &CalendarSet::new(),
    )
    .unwrap();
    let checksum = dag_checksum(LIVE_DAG, &spec);
    let now = chrono::Utc::now().timestamp_millis();
    f.store
        .record_dag_version(&nightshift_store::NewDagVersion {
            dag: &spec.name,
            spec_json: &serde_json::to_string(&spec).unwrap(),
            source_toml: LIVE_DAG,
            checksum: &checksum,
            applied_by: "ops",
            at_ms: now,
        })
        .await
        .unwrap();
    let key = dag_key(PREFIX, &spec.name);
    let applied = AppliedDag {
        spec,
        source_toml: LIVE_DAG.to_owned(),
        checksum,
        version: 1,
        applied_at_ms: now,
        applied_by: "ops".into(),
        paused: false,
    };
    f.coord
        .put(&key, encode(&applied).unwrap(), None)
        .await
        .unwrap();
}

/// Triggers `nightly` for `date` from its DAG page, confirming the dialog,
/// and waits for the toast to carry the leader's answer (`applied` or
/// `rejected`); returns the toast's text.
async fn trigger_from_the_page(browser: &Browser, base: &str, date: &str) -> (String, String) {
    browser.goto(&format!("{base}/dags/nightly")).await.unwrap();
    browser
        .wait_true(
            30,
            "the trigger form",
            "return !!document.querySelector('input[name=business_date]')",
        )
        .await
        .unwrap();
    browser
        .exec(&format!(
            "window.confirm = function () {{ return true; }}; \
             document.querySelector('input[name=business_date]').value = '{date}'; return true"
        ))
        .await
        .unwrap();
    browser.click("form.act button[type=submit]").await.unwrap();
    browser
        .wait_true(
            60,
            "the leader's answer in the toast",
            "var o = document.getElementById('toast').getAttribute('data-outcome'); \
             return o === 'applied' || o === 'rejected'",
        )
        .await
        .unwrap();
    let outcome = browser
        .exec("return document.getElementById('toast').getAttribute('data-outcome')")
        .await
        .unwrap();
    let text = browser
        .exec("return document.getElementById('toast').textContent")
        .await
        .unwrap();
    (
        outcome.as_str().unwrap_or_default().to_owned(),
        text.as_str().unwrap_or_default().to_owned(),
    )
}

/// Issue 14 ("running work is invisible", "actions mislead"): with a real
/// etcd, scheduler and executor process, the run page shows items
/// `running` on their executor while they sleep (and the executors page
/// and the overview say so), a trigger's toast waits for the leader and
/// links to the run, and a trigger the leader refuses — a settled business
/// date without "re-run" — is shown as rejected with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sees_items_running_and_a_rejection_in_a_real_browser() {
    let etcd = nightshift_testkit::etcd::EtcdServer::start().await.unwrap();
    let endpoints = etcd.endpoints();
    let coord = nightshift_coord::etcd::EtcdCoordinator::connect(
        nightshift_coord::etcd::EtcdConfig::new(endpoints.clone()),
    )
    .await
    .unwrap();
    let db = nightshift_testkit::db::fresh_sqlite();
    let url = db.url.clone();
    let f = Fixture::new(
        std::sync::Arc::new(coord),
        &url,
        support::operators(),
        vec![Box::new(db)],
    )
    .await;
    apply_live_dag(&f).await;

    // The scheduler (its future is not Send: a thread of its own).
    let (stop_scheduler, stopped) = tokio::sync::watch::channel(false);
    let scheduler = {
        let (endpoints, url) = (endpoints.clone(), url.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let coord = nightshift_coord::etcd::EtcdCoordinator::connect(
                    nightshift_coord::etcd::EtcdConfig::new(endpoints),
                )
                .await
                .unwrap();
                let store = nightshift_store::Store::connect(&url).await.unwrap();
                let mut config = nightshift_scheduler::SchedulerConfig::new("s1", PREFIX);
                config.tick = Duration::from_millis(250);
                nightshift_scheduler::run_scheduler(
                    std::sync::Arc::new(coord),
                    store,
                    std::sync::Arc::new(nightshift_scheduler::SystemClock),
                    config,
                    stopped,
                )
                .await
                .unwrap();
            });
        })
    };
    // The executor: this test binary again, running `executor_process`.
    let _executor = Child(
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["executor_process", "--exact", "--ignored", "--nocapture"])
            .env(CHILD_ENDPOINTS, endpoints.join(","))
            .env(CHILD_ID, "exec-1")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    nightshift_testkit::wait::wait_for(
        Duration::from_secs(30),
        "the executor registers",
        || async {
            f.get_json("/api/v1/executors")
                .await
                .1
                .as_array()
                .is_some_and(|a| a.len() == 1)
        },
    )
    .await
    .unwrap();

    let served = Served::start(f.state.clone()).await;
    let base = served.base.clone();
    let browser = Browser::start().await.unwrap();
    log_in(&browser, &base, TOKEN, "Overview").await;

    // Trigger: the toast waits for the leader, then links to the run.
    let (outcome, text) = trigger_from_the_page(&browser, &base, "2024-05-01").await;
    assert_eq!(outcome, "applied", "{text}");
    assert!(text.contains("Trigger applied"), "{text}");
    browser
        .screenshot(&shots().join("trigger-applied.png"))
        .await
        .unwrap();
    let run_link = browser
        .exec(
            "var a = document.querySelector('#toast a'); return a ? a.getAttribute('href') : null",
        )
        .await
        .unwrap();
    let run_link = run_link
        .as_str()
        .expect("the toast links to the run")
        .to_owned();
    assert!(run_link.starts_with("/runs/nightly-"), "{run_link}");

    // The run page: items running on exec-1, live, while they sleep.
    browser.click("#toast a").await.unwrap();
    browser
        .wait_true(
            30,
            "items shown running on their executor",
            "return document.querySelectorAll('.cell.st-running[data-executor=\"exec-1\"]').length === 4",
        )
        .await
        .unwrap();
    let tooltip = browser
        .exec("return document.querySelector('.cell.st-running').getAttribute('title')")
        .await
        .unwrap();
    let tooltip = tooltip.as_str().unwrap_or_default();
    assert!(
        tooltip.contains("on exec-1")
            && tooltip.contains("attempt 1")
            && tooltip.contains("last progress"),
        "{tooltip}"
    );
    // Its detail panel names the executor and attempt (in the screenshot).
    browser.click(".cell.st-running").await.unwrap();
    browser
        .wait_true(
            30,
            "the running item's detail",
            "var d = document.getElementById('item-detail'); \
             return !d.hidden && d.textContent.includes('running · on exec-1 · attempt 1')",
        )
        .await
        .unwrap();
    browser
        .screenshot(&shots().join("run-items-running.png"))
        .await
        .unwrap();
    let run_id = run_link.trim_start_matches("/runs/").to_owned();
    let (_, items) = f
        .get_json(&format!("/api/v1/runs/{run_id}/jobs/work/items"))
        .await;
    for item in items.as_array().unwrap() {
        assert_eq!(item["state"], "running", "{item}");
        assert_eq!(item["executor"], "exec-1", "{item}");
        assert_eq!(item["attempt"], 1, "{item}");
    }
    // The executors page counts them; the overview lists them.
    browser.goto(&format!("{base}/executors")).await.unwrap();
    browser
        .wait_true(30, "the executor's running count", "return document.body.innerText.includes('4 / 4') || document.body.innerText.includes('4/4')")
        .await
        .unwrap();
    browser
        .screenshot(&shots().join("executors-running.png"))
        .await
        .unwrap();
    browser.goto(&format!("{base}/")).await.unwrap();
    browser
        .wait_true(
            30,
            "the running-now list",
            "return document.querySelectorAll('#running-items tr.running-item').length === 4",
        )
        .await
        .unwrap();
    browser
        .screenshot(&shots().join("overview-running-now.png"))
        .await
        .unwrap();

    // The run ends; on its page, actions that cannot apply are disabled
    // with the reason.
    nightshift_testkit::wait::wait_for(Duration::from_secs(60), "the run succeeds", || async {
        f.get_json(&format!("/api/v1/runs/{run_id}")).await.1["run"]["state"] == "succeeded"
    })
    .await
    .unwrap();
    browser.goto(&format!("{base}{run_link}")).await.unwrap();
    let cancel = browser
        .exec("var b = [...document.querySelectorAll('button.act')].find(b => b.textContent === 'Cancel run'); \
               return b ? [b.disabled, b.title] : null")
        .await
        .unwrap();
    assert_eq!(
        cancel,
        serde_json::json!([true, "the run is already succeeded"])
    );
    browser
        .screenshot(&shots().join("run-succeeded-actions-disabled.png"))
        .await
        .unwrap();

    // The same business date again, without "re-run": the leader refuses,
    // and the page says so with its reason.
    let (outcome, text) = trigger_from_the_page(&browser, &base, "2024-05-01").await;
    assert_eq!(outcome, "rejected", "{text}");
    assert!(
        text.contains("rejected") && text.contains("already succeeded"),
        "{text}"
    );
    assert!(!text.contains("applied"), "{text}");
    browser
        .screenshot(&shots().join("trigger-rejected.png"))
        .await
        .unwrap();

    drop(browser);
    served.stop().await;
    stop_scheduler.send(true).unwrap();
    scheduler.join().unwrap();
    drop(etcd);
}

/// Whether the page is wider than the window (horizontal overflow).
const OVERFLOWS: &str = "return document.documentElement.scrollWidth > window.innerWidth";

/// Issue 14 ("unusable on a phone", "dark only"): at 400 px wide the login
/// page (with its viewport tag), the run page and the other pages do not
/// overflow sideways; the pages follow the system's light or dark
/// preference. Screenshots `login-400.png`, `run-400.png`,
/// `overview-400.png`, `run-light.png`, `run-dark.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_fit_a_phone_and_follow_the_system_theme() {
    let f = Fixture::memory(support::operators()).await;
    seed(&f).await;
    let served = Served::start(f.state.clone()).await;
    let base = served.base.clone();
    let browser = Browser::start().await.unwrap();
    browser.set_window_size(400, 900).await.unwrap();

    browser.goto(&format!("{base}/login")).await.unwrap();
    browser
        .wait_true(
            30,
            "the login form",
            "return !!document.querySelector('form#login')",
        )
        .await
        .unwrap();
    let width = browser.exec("return window.innerWidth").await.unwrap();
    assert!(
        width.as_u64().is_some_and(|w| w <= 420),
        "the window is not phone-sized: {width}"
    );
    assert_eq!(
        browser
            .exec("var m = document.querySelector('meta[name=viewport]'); return m ? m.content : null")
            .await
            .unwrap(),
        "width=device-width, initial-scale=1"
    );
    assert_eq!(
        browser.exec(OVERFLOWS).await.unwrap(),
        false,
        "the login page"
    );
    browser
        .screenshot(&shots().join("login-400.png"))
        .await
        .unwrap();

    log_in(&browser, &base, TOKEN, "Overview").await;
    for (path, shot) in [
        ("/events", None),
        ("/runs/r1", Some("run-400.png")),
        ("/runs/r1?job=extract", None),
        ("/", Some("overview-400.png")),
        ("/dags/settlement", None),
        ("/executors", None),
        ("/alerts", None),
    ] {
        browser.goto(&format!("{base}{path}")).await.unwrap();
        browser
            .wait_true(
                30,
                path,
                "return document.readyState === 'complete' && !!document.querySelector('main h1')",
            )
            .await
            .unwrap();
        let sizes = browser
            .exec("return [document.documentElement.scrollWidth, window.innerWidth]")
            .await
            .unwrap();
        assert_eq!(
            browser.exec(OVERFLOWS).await.unwrap(),
            false,
            "{path} overflows at 400 px: [scrollWidth, innerWidth] = {sizes}"
        );
        if let Some(shot) = shot {
            browser.screenshot(&shots().join(shot)).await.unwrap();
        }
    }

    // Themes: the system preference decides.
    browser.set_window_size(1280, 900).await.unwrap();
    for (scheme, background, shot) in [
        ("light", "rgb(245, 247, 250)", "run-light.png"),
        ("dark", "rgb(15, 20, 25)", "run-dark.png"),
    ] {
        browser.prefer_color_scheme(scheme).await.unwrap();
        browser.goto(&format!("{base}/runs/r1")).await.unwrap();
        browser
            .wait_true(
                30,
                "the run page",
                "return !!document.querySelector('.grid')",
            )
            .await
            .unwrap();
        assert_eq!(
            browser
                .exec("return getComputedStyle(document.body).backgroundColor")
                .await
                .unwrap(),
            background,
            "{scheme}"
        );
        browser.screenshot(&shots().join(shot)).await.unwrap();
    }

    drop(browser);
    served.stop().await;
}

/// Issue 14's "why did it fail" path: from the alerts page, a failed
/// item's log is two clicks away — the alert's run link, then the item.
#[tokio::test]
async fn a_failed_items_log_is_two_clicks_from_its_alert() {
    let f = Fixture::memory(support::operators()).await;
    seed(&f).await;
    let log = "INFO  sleeping 5 ms\nERROR posting 42 refused by the ledger: account frozen\n";
    f.store
        .record_attempt_logs(&[nightshift_store::AttemptLog {
            run_id: RunId::new("r1"),
            job: JobName::new("settle"),
            item: nightshift_core::ids::ItemIndex(2),
            attempt: 1,
            log: log.to_owned(),
        }])
        .await
        .unwrap();
    let served = Served::start(f.state.clone()).await;
    let base = served.base.clone();
    let browser = Browser::start().await.unwrap();
    log_in(&browser, &base, TOKEN, "Overview").await;

    browser.goto(&format!("{base}/alerts")).await.unwrap();
    browser
        .wait_true(
            30,
            "the item_failed alert",
            "return document.body.innerText.includes('item_failed')",
        )
        .await
        .unwrap();
    // Click 1: the alert's run.
    browser.click("main a[href^=\"/runs/r1\"]").await.unwrap();
    browser
        .wait_true(
            30,
            "the run page",
            "return location.pathname === '/runs/r1' && !!document.querySelector('.cell[data-item=\"2\"]')",
        )
        .await
        .unwrap();
    // Click 2: the failed item; its panel fetches the attempt's log.
    browser.click(".cell[data-item=\"2\"]").await.unwrap();
    browser
        .wait_true(
            30,
            "the failed attempt's log in the item panel",
            "var d = document.getElementById('item-detail'); \
             return !d.hidden && d.textContent.includes('account frozen') \
             && d.textContent.includes('sleeping 5 ms')",
        )
        .await
        .unwrap();
    browser
        .screenshot(&shots().join("failed-item-log.png"))
        .await
        .unwrap();

    drop(browser);
    served.stop().await;
}
