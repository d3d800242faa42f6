//! The console in a real headless Chromium (driven through chromedriver):
//! an operator logs in through the login form, the pages' script connects
//! to the live stream, a run's item grid updates
//! without a reload, clicking an item shows its attempts, an operator
//! triggers a run and acknowledges an alert. Screenshots of the overview,
//! run and DAG pages are saved under `target/console-screenshots/`.
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
use support::webdriver::Browser;
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(nightshift_console::serve(
        listener,
        f.state.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    let browser = Browser::start().await.unwrap();

    // Anonymous: the login form (401); log in through it.
    browser.goto(&format!("{base}/")).await.unwrap();
    browser
        .wait_true(
            30,
            "the login form",
            "return !!document.querySelector('form#login')",
        )
        .await
        .unwrap();
    browser
        .exec(&format!(
            "document.querySelector('form#login input[name=token]').value = '{TOKEN}'; return true"
        ))
        .await
        .unwrap();
    browser
        .click("form#login button[type=submit]")
        .await
        .unwrap();

    // Overview (where the login form sends us back to).
    browser
        .wait_true(
            30,
            "the overview",
            "return document.body.innerText.includes('settlement')",
        )
        .await
        .unwrap();
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
            "return document.getElementById('toast').textContent.includes('Sent trigger')",
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
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
