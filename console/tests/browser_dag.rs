//! The DAG page in a real headless Chromium at 1440 px, on the demo's
//! `dags/nightly-settlement.toml` (loaded with core's loader and applied as
//! `nightshift apply` would) with a history of runs: every edge of the job
//! graph ends in an arrowhead, no edge passes through a job other than its
//! two ends (points sampled along each drawn path with
//! `getPointAtLength`), names fit their boxes, the non-default trigger
//! rules are shown, a job is a link to its items in the selected run, the
//! duration trend chart has a bar per ended run, and nothing overflows the
//! window. Screenshots: `target/screenshots/dag-page.png` and
//! `dag-page-trend.png` (scrolled to the chart).
//!
//! Needs `chromium` and `chromium-driver` (Debian); `scripts/ensure-services`
//! installs them.

mod support;

use nightshift_core::dag::load_dags;
use nightshift_core::ids::{DagName, JobName, RunId};
use nightshift_core::keyspace::{dag_checksum, dag_key, encode, AppliedDag};
use nightshift_core::state::{JobState, RunState, TriggerSource};
use nightshift_store::{JobRun, NewDagVersion, NewRun};
use std::path::PathBuf;
use support::webdriver::{log_in, Browser, Served};
use support::{Fixture, PREFIX, TOKEN};

const DAG: &str = "nightly-settlement";
/// Ended runs in the history (one of them failed).
const ENDED: i64 = 12;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Applies the shipped settlement DAG (etcd record and SQL version), adds
/// [`ENDED`] ended runs of growing duration and a running run `live` with
/// its first jobs done and `ledger-postings` running.
async fn seed_settlement(f: &Fixture) {
    let file = repo().join("dags").join(format!("{DAG}.toml"));
    let report = load_dags(std::slice::from_ref(&file));
    assert!(!report.has_errors(), "{:?}", report.diagnostics);
    let loaded = report.dags.into_iter().next().expect("the settlement DAG");
    let (spec, source) = (loaded.spec, loaded.source);
    let now = chrono::Utc::now().timestamp_millis();
    let dag = DagName::new(DAG);
    let checksum = dag_checksum(&source, &spec);
    f.store
        .record_dag_version(&NewDagVersion {
            dag: &dag,
            spec_json: &serde_json::to_string(&spec).unwrap(),
            source_toml: &source,
            checksum: &checksum,
            applied_by: "ops",
            at_ms: now - 30 * 86_400_000,
        })
        .await
        .unwrap();
    let applied = AppliedDag {
        spec,
        source_toml: source,
        checksum,
        version: 1,
        applied_at_ms: now - 30 * 86_400_000,
        applied_by: "ops".into(),
        paused: false,
    };
    f.coord
        .put(&dag_key(PREFIX, &dag), encode(&applied).unwrap(), None)
        .await
        .unwrap();

    let minute = 60_000;
    for i in 0..=ENDED {
        let id = if i == ENDED {
            "live".to_owned()
        } else {
            format!("night-{i:02}")
        };
        let created = now - (ENDED - i + 1) * 86_400_000;
        f.store
            .insert_run(&NewRun {
                run_id: RunId::new(&id),
                dag: dag.clone(),
                dag_version: 1,
                business_date: chrono::NaiveDate::from_ymd_opt(2024, 3, 1 + i as u32).unwrap(),
                trigger_source: TriggerSource::Schedule,
                params: serde_json::json!({}),
                scheduled_for_ms: Some(created),
                created_at_ms: created,
            })
            .await
            .unwrap();
        f.store
            .update_run_state(&RunId::new(&id), RunState::Running, created, None)
            .await
            .unwrap();
        if i < ENDED {
            // Clearing time grows night after night; night 7 failed early.
            let (state, took) = if i == 7 {
                (RunState::Failed, 9 * minute)
            } else {
                (RunState::Succeeded, (40 + 3 * i) * minute)
            };
            f.store
                .update_run_state(&RunId::new(&id), state, created + took, None)
                .await
                .unwrap();
        }
    }
    let live = RunId::new("live");
    let started = now - 10 * minute;
    for (job, state, shards) in [
        ("interest-accrual", JobState::Succeeded, 16),
        ("fx-revaluation", JobState::Succeeded, 4),
        ("nightly-debits", JobState::Succeeded, 8),
        ("fee-assessment", JobState::Succeeded, 8),
        ("ledger-postings", JobState::Running, 8),
    ] {
        let done = state == JobState::Succeeded;
        f.store
            .upsert_job_run(&JobRun {
                run_id: live.clone(),
                job: JobName::new(job),
                state,
                shards,
                succeeded: if done { shards } else { 0 },
                failed: 0,
                skipped: 0,
                cancelled: 0,
                started_at_ms: Some(started),
                ended_at_ms: done.then_some(started + minute),
                error: None,
            })
            .await
            .unwrap();
    }
}

/// Every edge of the graph against every job box but its own two ends:
/// the points (sampled every 2 units along the drawn path) strictly inside
/// another box. Returns `[samples, violations, [the first 10…]]`.
const EDGES_THROUGH_NODES: &str = r#"
var nodes = Array.from(document.querySelectorAll('svg.graph g.node')).map(function (g) {
  var r = g.querySelector('rect');
  return { job: g.getAttribute('data-job'), x: r.x.baseVal.value, y: r.y.baseVal.value,
           w: r.width.baseVal.value, h: r.height.baseVal.value };
});
var bad = [], count = 0, samples = 0;
document.querySelectorAll('svg.graph path.edge').forEach(function (p) {
  var from = p.getAttribute('data-from'), to = p.getAttribute('data-to');
  var len = p.getTotalLength();
  for (var s = 0; s <= len; s += 2) {
    var pt = p.getPointAtLength(s);
    samples++;
    nodes.forEach(function (n) {
      if (n.job === from || n.job === to) return;
      if (pt.x > n.x && pt.x < n.x + n.w && pt.y > n.y && pt.y < n.y + n.h && count++ < 10) {
        bad.push(from + ' -> ' + to + ' inside ' + n.job + ' at ' + pt.x.toFixed(1) + ',' + pt.y.toFixed(1));
      }
    });
  }
});
return [samples, count, bad];
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dag_page_draws_a_readable_graph_and_trend_in_a_real_browser() {
    let f = Fixture::memory(support::operators()).await;
    seed_settlement(&f).await;
    let served = Served::start(f.state.clone()).await;
    let base = served.base.clone();
    let browser = Browser::start().await.unwrap();
    browser.set_window_size(1440, 1000).await.unwrap();

    // Log in through the form.
    log_in(&browser, &base, TOKEN, DAG).await;

    browser.goto(&format!("{base}/dags/{DAG}")).await.unwrap();
    browser
        .wait_true(
            30,
            "the DAG graph and trend chart",
            "return !!document.querySelector('svg.graph') && !!document.querySelector('svg.trend')",
        )
        .await
        .unwrap();
    let shot = repo().join("target/screenshots/dag-page.png");
    browser.screenshot(&shot).await.unwrap();

    // Seven dependencies, each an edge with an arrowhead.
    let edges = browser
        .exec(
            "return Array.from(document.querySelectorAll('svg.graph path.edge'))\
             .map(function (p) { return p.getAttribute('marker-end'); })",
        )
        .await
        .unwrap();
    assert_eq!(
        edges,
        serde_json::json!(vec!["url(#arrow)"; 7]),
        "every edge has a marker-end"
    );
    assert_eq!(
        browser
            .exec("return !!document.querySelector('svg.graph marker#arrow path')")
            .await
            .unwrap(),
        true,
        "the arrowhead marker is defined"
    );

    // No edge runs through a job other than its ends (fx-revaluation ->
    // reconciliation used to run under ledger-postings).
    let through = browser.exec(EDGES_THROUGH_NODES).await.unwrap();
    assert!(
        through[0].as_u64().unwrap_or(0) > 200,
        "too few samples: {through}"
    );
    assert_eq!(through[1], 0, "edges through jobs: {}", through[2]);

    // Every job is drawn, its name inside its box; the two `all_done` jobs
    // show their rule.
    let fits = browser
        .exec(
            "return Array.from(document.querySelectorAll('svg.graph g.node')).map(function (g) {\
               var r = g.querySelector('rect'), t = g.querySelector('text');\
               return [g.getAttribute('data-job'),\
                 t.getComputedTextLength() + 8 <= r.width.baseVal.value]; })",
        )
        .await
        .unwrap();
    let fits = fits.as_array().cloned().unwrap_or_default();
    assert_eq!(fits.len(), 7, "{fits:?}");
    for fit in &fits {
        assert_eq!(fit[1], true, "name wider than its box: {fit}");
    }
    assert_eq!(
        browser
            .exec(
                "return Array.from(document.querySelectorAll('svg.graph text.rule'))\
                 .map(function (t) { return t.closest('g.node').getAttribute('data-job') + ':' + t.textContent; })"
            )
            .await
            .unwrap(),
        serde_json::json!(["reconciliation:all_done", "settlement-report:all_done"])
    );

    // The trend chart: a bar per ended run, one marked failed, tick labels,
    // the median and threshold lines.
    let trend = browser
        .exec(
            "var s = document.querySelector('svg.trend'); return [\
               s.querySelectorAll('.trend-bar').length,\
               s.querySelectorAll('.fail-mark').length,\
               s.querySelectorAll('.ytick').length,\
               !!s.querySelector('line.median'),\
               !!s.querySelector('line.slow-line')]",
        )
        .await
        .unwrap();
    assert_eq!(
        trend,
        serde_json::json!([ENDED, 1, trend[2].clone(), true, true])
    );
    assert!(trend[2].as_u64().unwrap_or(0) >= 3, "tick labels: {trend}");

    browser
        .exec("document.getElementById('trend').scrollIntoView(); return true")
        .await
        .unwrap();
    browser
        .screenshot(&repo().join("target/screenshots/dag-page-trend.png"))
        .await
        .unwrap();

    // Nothing wider than the window.
    let sizes = browser
        .exec("return [document.documentElement.scrollWidth, window.innerWidth]")
        .await
        .unwrap();
    assert!(
        sizes[0].as_i64().unwrap_or(i64::MAX) <= sizes[1].as_i64().unwrap_or(0),
        "the DAG page overflows at 1440 px: [scrollWidth, innerWidth] = {sizes}"
    );

    // A job is a link to its items in the selected (newest) run.
    browser
        .click("svg.graph g.node[data-job=\"ledger-postings\"]")
        .await
        .unwrap();
    browser
        .wait_true(
            30,
            "the run page zoomed into ledger-postings",
            "return location.pathname === '/runs/live' && location.search === '?job=ledger-postings' \
             && document.body.innerText.includes('Items of ledger-postings')",
        )
        .await
        .unwrap();

    drop(browser);
    served.stop().await;
}
