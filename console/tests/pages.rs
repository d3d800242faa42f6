//! The HTML pages render the seeded state, escape every user-supplied
//! string, and load nothing from outside the console.

mod support;

use axum::http::{Method, StatusCode};
use nightshift_core::ids::{DagName, ExecutorId, FencingToken, ItemIndex, JobName, RunId};
use nightshift_core::state::{AttemptOutcome, JobState, RunState, TriggerSource};
use nightshift_store::{EndedAttempt, JobRun, NewAttempt, NewEvent, NewRun};
use support::{seed, Fixture, TOKEN};

const HOUR_MS: i64 = 3_600_000;

/// The inner HTML of `<section id="{id}" …>`.
fn section<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("<section id=\"{id}\""))
        .unwrap_or_else(|| panic!("no section {id}: {html}"));
    let rest = &html[start..];
    &rest[..rest.find("</section>").unwrap_or(rest.len())]
}

/// A run of the seeded DAG created at `created_ms`, in `state`.
async fn add_run(f: &Fixture, id: &str, created_ms: i64, state: RunState) {
    f.store
        .insert_run(&NewRun {
            run_id: RunId::new(id),
            dag: DagName::new("settlement"),
            dag_version: 1,
            business_date: chrono::NaiveDate::from_ymd_opt(2024, 3, 28).unwrap(),
            trigger_source: TriggerSource::Manual,
            params: serde_json::json!({}),
            scheduled_for_ms: None,
            created_at_ms: created_ms,
        })
        .await
        .unwrap();
    f.store
        .update_run_state(&RunId::new(id), RunState::Running, created_ms + 100, None)
        .await
        .unwrap();
    if state != RunState::Running {
        f.store
            .update_run_state(&RunId::new(id), state, created_ms + 60_000, None)
            .await
            .unwrap();
    }
}

fn lost_event(at_ms: i64, executor: &str, items: &str) -> NewEvent {
    NewEvent {
        at_ms,
        kind: "executor_lost".into(),
        actor: "scheduler:s1".into(),
        dag: Some(DagName::new("settlement")),
        run_id: Some(RunId::new("r1")),
        job: Some(JobName::new("settle")),
        item: None,
        executor: Some(ExecutorId::new(executor)),
        detail: serde_json::json!({ "items": items }),
    }
}

async fn page(f: &Fixture, path: &str) -> String {
    let (status, headers, body) = f.call(Method::GET, path, Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{path}"
    );
    // Air-gapped: no absolute URLs to load anything from. (The SVG
    // namespace is an identifier, not a fetch.)
    let without_ns = body.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(
        !without_ns.contains("http://") && !without_ns.contains("https://"),
        "{path} refers outside"
    );
    // Nothing user-supplied came through as markup.
    assert!(
        !body.contains("<script>alert")
            && !body.contains("<script>boom")
            && !body.contains("<script>x"),
        "{path}"
    );
    assert!(!body.contains("<b>halfway"), "{path}");
    body
}

#[tokio::test]
async fn every_page_renders_the_seeded_state_escaped() {
    let f = Fixture::memory(support::operators()).await;
    seed(&f).await;

    let overview = page(&f, "/").await;
    assert!(overview.contains("href=\"/dags/settlement\""), "{overview}");
    assert!(overview.contains("Europe/Paris"));
    assert!(overview.contains("href=\"/runs/r1\""));
    assert!(
        overview.contains("<em>7/13</em>"),
        "current run progress bar"
    );

    let dag = page(&f, "/dags/settlement").await;
    for job in ["extract", "settle", "report"] {
        assert!(dag.contains(&format!(">{job}</text>")), "graph lacks {job}");
    }
    assert!(
        dag.contains("&lt;script&gt;alert(&#39;dag&#39;)&lt;/script&gt;"),
        "escaped description"
    );
    assert!(
        dag.contains("class=\"node st-succeeded\""),
        "extract coloured by its state in r1"
    );
    assert!(dag.contains("class=\"node st-running\""));
    assert!(dag.contains("[jobs.settle]"), "applied TOML shown");
    assert!(dag.contains("data-path=\"/api/v1/dags/settlement/trigger\""));
    assert!(dag.contains("data-confirm=\"Trigger a run of settlement?\""));
    // The next five fires at 02:00 Paris time, each with its business date
    // (fire_date: the fire's own date in the DAG's zone).
    let (status, api) = f.get_json("/api/v1/dags/settlement").await;
    assert_eq!(status, 200, "{api}");
    let fires = api["next_fires"].as_array().expect("next_fires");
    assert_eq!(fires.len(), 5, "{api}");
    for fire in fires {
        let local = fire["at_local"].as_str().unwrap_or_default();
        let day = fire["business_date"].as_str().unwrap_or_default();
        assert!(local.starts_with(day) && local.contains("02:00"), "{fire}");
        assert!(
            dag.contains(&format!("<td>{day}</td>")),
            "{day} not on the page"
        );
    }
    assert!(dag.contains("<h2>Next fires</h2>"));

    let run = page(&f, "/runs/r1").await;
    // The job Gantt, on the shared lane chart with its time ticks.
    let gantt = section(&run, "gantt");
    assert!(gantt.contains("class=\"gantt timeline\""), "{gantt}");
    assert!(gantt.contains("class=\"axis tick\""), "{gantt}");
    assert!(
        run.contains("Items of settle"),
        "the running job's items are shown by default"
    );
    assert_eq!(run.matches("class=\"cell st-").count(), 8);
    assert!(run.contains("class=\"cell st-failed\" data-item=\"2\""));
    assert!(
        run.contains("&lt;script&gt;boom&lt;/script&gt; ledger refused"),
        "error in the tooltip, escaped"
    );
    assert!(
        run.contains("progress 5/10: &lt;b&gt;halfway&lt;/b&gt;"),
        "progress in the tooltip, escaped"
    );
    assert!(run.contains("data-confirm=\"Cancel run r1?\""));
    let extract = page(&f, "/runs/r1?job=extract").await;
    assert!(extract.contains("Items of extract"));
    assert_eq!(extract.matches("class=\"cell st-").count(), 4);

    let executors = page(&f, "/executors").await;
    assert!(executors.contains("host-a") && executors.contains("zone=eu-1"));
    let alerts = page(&f, "/alerts").await;
    assert!(alerts.contains("&lt;script&gt;x&lt;/script&gt; item failed"));
    assert!(alerts.contains("/ack\""));
    assert!(alerts.contains("<th>Resolved</th>"));
    let resolved_at = support::t0() + 90_000;
    f.store
        .resolve_alert("item_failed:r1:settle:2", resolved_at)
        .await
        .unwrap()
        .expect("the seeded alert resolves");
    let resolved = page(&f, "/alerts?state=resolved").await;
    assert!(
        resolved.contains(&format!("data-ms=\"{resolved_at}\"")),
        "the resolved time is shown: {resolved}"
    );
    let events = page(&f, "/events?run=r1").await;
    assert!(events.contains("run_started") && events.contains("&lt;i&gt;x&lt;/i&gt;"));
}

/// A retry and its origin link to each other on their run pages, in the
/// API too; each job row has a Clear form posting to the run's clear
/// endpoint with the job (escaped) and the downstream choice.
#[tokio::test]
async fn run_pages_link_retries_both_ways_and_offer_clear() {
    let f = Fixture::memory(support::operators()).await;
    seed(&f).await;
    f.store
        .link_retry(&RunId::new("r1"), &RunId::new("r0"))
        .await
        .unwrap();
    let origin = page(&f, "/runs/r0").await;
    assert!(
        origin.contains("Retried by run <a href=\"/runs/r1\">r1</a>"),
        "{origin}"
    );
    let retry = page(&f, "/runs/r1").await;
    assert!(
        retry.contains("Retry of run <a href=\"/runs/r0\">r0</a>"),
        "{retry}"
    );
    assert!(
        retry.contains("data-path=\"/api/v1/runs/r1/clear\""),
        "{retry}"
    );
    assert!(
        retry.contains("name=\"jobs\" data-json value=\"[&quot;extract&quot;]\""),
        "{retry}"
    );
    assert!(retry.contains("<select name=\"downstream\" data-json"));
    let (_, json) = f.get_json("/api/v1/runs/r1").await;
    assert_eq!(json["retry_of"], "r0");
    let (_, json) = f.get_json("/api/v1/runs/r0").await;
    assert_eq!(json["retried_by"], serde_json::json!(["r1"]));
}

#[tokio::test]
async fn page_errors_are_html_with_the_right_status() {
    let f = Fixture::memory(support::operators()).await;
    seed(&f).await;
    let (status, _, body) = f.call(Method::GET, "/runs/nope", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("no run `nope`"));
    let (status, _, _) = f
        .call(Method::GET, "/dags/settlement?run=nope", Some(TOKEN), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn read_only_pages_disable_actions_and_assets_are_embedded() {
    let f = Fixture::memory(support::read_only()).await;
    seed(&f).await;
    let run = page(&f, "/runs/r1").await;
    assert!(run.contains("read-only"));
    assert!(
        run.contains(
            "data-path=\"/api/v1/runs/r1/cancel\" data-confirm=\"Cancel run r1?\" disabled"
        ),
        "{run}"
    );
    let (status, headers, css) = f
        .call(Method::GET, "/assets/console.css", Some(TOKEN), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    assert!(css.contains(".st-succeeded"));
    let (_, headers, js) = f
        .call(Method::GET, "/assets/console.js", Some(TOKEN), None)
        .await;
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(js.contains("EventSource") && js.contains("confirm"));
}

#[tokio::test]
async fn the_overview_timeline_draws_tonights_runs_by_dag_with_links() {
    let f = Fixture::memory(support::operators()).await;
    seed(&f).await;
    let now = chrono::Utc::now().timestamp_millis();
    add_run(&f, "r-old", now - 30 * HOUR_MS, RunState::Succeeded).await;
    add_run(&f, "r-stuck", now - 30 * HOUR_MS, RunState::Running).await;

    let overview = page(&f, "/").await;
    let timeline = section(&overview, "timeline");
    assert!(
        timeline.contains("<svg class=\"gantt timeline\""),
        "{timeline}"
    );
    assert!(
        timeline.contains("<a href=\"/dags/settlement\"><text class=\"lane\""),
        "one lane per DAG: {timeline}"
    );
    assert_eq!(timeline.matches("class=\"lane\"").count(), 1, "{timeline}");
    assert!(
        timeline.contains("<a href=\"/runs/r0\"><rect class=\"st-succeeded\""),
        "{timeline}"
    );
    assert!(
        timeline.contains("<a href=\"/runs/r1\"><rect class=\"st-running\""),
        "{timeline}"
    );
    assert!(
        timeline.contains("<title>run r1 · running · business date 2024-03-29 · started "),
        "{timeline}"
    );
    // Created before the window: drawn only while unfinished.
    assert!(!timeline.contains("/runs/r-old\""), "{timeline}");
    assert!(
        timeline.contains("<a href=\"/runs/r-stuck\"><rect class=\"st-running\""),
        "{timeline}"
    );
    // The daily 02:00 Paris schedule fires within a day: its marker is drawn.
    assert!(
        timeline.contains("<title>settlement: next fire "),
        "{timeline}"
    );
    assert!(
        timeline.contains(">UTC</text>") && timeline.contains(">Europe/Paris</text>"),
        "{timeline}"
    );
    assert!(timeline.contains("(3 shown)"), "{timeline}");
}

#[tokio::test]
async fn the_overview_timeline_draws_at_most_500_runs_of_the_window() {
    let f = Fixture::memory(support::operators()).await;
    seed(&f).await;
    let now = chrono::Utc::now().timestamp_millis();
    for i in 0..500 {
        add_run(
            &f,
            &format!("bulk-{i}"),
            now - 2 * HOUR_MS - i * 1_000,
            RunState::Succeeded,
        )
        .await;
    }
    let overview = page(&f, "/").await;
    let timeline = section(&overview, "timeline");
    assert!(
        timeline.contains("Only the newest 500 runs of the window are drawn."),
        "{timeline}"
    );
    assert_eq!(timeline.matches("<a href=\"/runs/").count(), 500);
    // The newest are kept, the oldest of the window left out.
    assert!(timeline.contains("\"/runs/r1\"") && timeline.contains("\"/runs/bulk-497\""));
    assert!(!timeline.contains("\"/runs/bulk-498\"") && !timeline.contains("\"/runs/bulk-499\""));
}

#[tokio::test]
async fn the_run_page_zooms_into_a_job_with_its_item_attempts() {
    let f = Fixture::memory(support::operators()).await;
    seed(&f).await;
    let run = page(&f, "/runs/r1?job=settle").await;
    let items = section(&run, "item-timeline");
    assert!(items.contains("showing 5 of 5 started items"), "{items}");
    assert_eq!(
        items.matches("<rect class=\"st-").count(),
        6,
        "one bar per attempt: {items}"
    );
    assert!(items.contains("<rect class=\"st-failed\""), "{items}");
    assert!(
        items.contains("<title>item 2 · attempt 1 on e1 · failed · 1.0s"),
        "{items}"
    );
    assert!(
        items.contains("&lt;script&gt;boom&lt;/script&gt; ledger refused"),
        "error in the tooltip, escaped"
    );
    assert!(
        items.contains("<rect class=\"st-warning\""),
        "the lost attempt: {items}"
    );
    assert!(
        items.contains("<title>item 4 · attempt 1 on e2 · lost · 2.0s"),
        "{items}"
    );
    assert!(
        items.contains("<title>item 4 · attempt 2 on e1 · running · "),
        "{items}"
    );
    assert!(items.contains(" · moved from e2</title>"), "{items}");
    assert!(
        !items.contains(">item 5</text>"),
        "items never started have no row: {items}"
    );
    // The first job: its items never started in the seed.
    let extract = page(&f, "/runs/r1?job=extract").await;
    assert!(section(&extract, "item-timeline").contains("No item of extract has started yet"));
}

#[tokio::test]
async fn the_item_timeline_caps_rows_and_pages_through_a_large_job() {
    let f = Fixture::memory(support::operators()).await;
    seed(&f).await;
    let t0 = support::t0();
    add_run(&f, "big", t0, RunState::Running).await;
    let (big, extract) = (RunId::new("big"), JobName::new("extract"));
    f.store
        .upsert_job_run(&JobRun {
            run_id: big.clone(),
            job: extract.clone(),
            state: JobState::Running,
            shards: 450,
            succeeded: 450,
            failed: 0,
            skipped: 0,
            cancelled: 0,
            started_at_ms: Some(t0),
            ended_at_ms: None,
            error: None,
        })
        .await
        .unwrap();
    let ended: Vec<EndedAttempt> = (0..450)
        .map(|i| EndedAttempt {
            new: NewAttempt {
                run_id: big.clone(),
                job: extract.clone(),
                item: ItemIndex(i),
                attempt: 1,
                executor: ExecutorId::new(format!("e{}", i % 3)),
                fencing_token: FencingToken(3),
                started_at_ms: t0 + i64::from(i) * 10,
                moved_from: None,
            },
            outcome: AttemptOutcome::Succeeded,
            ended_at_ms: t0 + i64::from(i) * 10 + 500,
            error: None,
        })
        .collect();
    f.store.record_ended_attempts(&ended).await.unwrap();

    let first = page(&f, "/runs/big?job=extract").await;
    let rows = section(&first, "item-timeline");
    assert_eq!(
        rows.matches("<rect class=\"st-succeeded\"").count(),
        200,
        "capped at 200 rows"
    );
    assert!(
        rows.contains("showing 200 of 450 started items (rows 1 to 200)"),
        "{rows}"
    );
    assert!(rows.contains(">item 199</text>") && !rows.contains(">item 200</text>"));
    assert!(
        rows.contains("<title>item 7 · attempt 1 on e1 · succeeded · 0.5s"),
        "{rows}"
    );
    assert!(
        rows.contains("href=\"?job=extract&amp;offset=200\">next →"),
        "{rows}"
    );

    let last = page(&f, "/runs/big?job=extract&offset=400").await;
    let rows = section(&last, "item-timeline");
    assert_eq!(rows.matches("<rect class=\"st-succeeded\"").count(), 50);
    assert!(
        rows.contains(">item 400</text>")
            && rows.contains(">item 449</text>")
            && !rows.contains(">item 399</text>")
    );
    assert!(
        rows.contains("offset=200\">← previous") && !rows.contains("next →"),
        "{rows}"
    );
    let (status, _, _) = f
        .call(
            Method::GET,
            "/runs/big?job=extract&offset=-1",
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_executors_page_and_api_list_recently_lost_executors() {
    let f = Fixture::memory(support::operators()).await;
    seed(&f).await;
    let now = chrono::Utc::now().timestamp_millis();
    f.store
        .append_event(&lost_event(now - 25 * HOUR_MS, "e-old", "0-3"))
        .await
        .unwrap();
    f.store
        .append_event(&lost_event(now - 2 * HOUR_MS, "e2", "4,6-7"))
        .await
        .unwrap();
    f.store
        .append_event(&lost_event(now - HOUR_MS, "e3", "<script>x</script>"))
        .await
        .unwrap();
    let mut other = lost_event(now - HOUR_MS, "e9", "1");
    other.kind = "item_failed".into();
    f.store.append_event(&other).await.unwrap();

    let executors = page(&f, "/executors").await;
    let lost = section(&executors, "lost-executors");
    assert_eq!(lost.matches("<tr class=\"lost\">").count(), 2, "{lost}");
    assert!(
        lost.contains("<tr class=\"lost\"><td>e2</td>")
            && lost.contains("<a href=\"/runs/r1\">r1</a>")
            && lost.contains("<a href=\"/runs/r1?job=settle\">settle</a>")
            && lost.contains("<code>4,6-7</code> <small>(3)</small>"),
        "{lost}"
    );
    assert!(
        lost.contains("<code>&lt;script&gt;x&lt;/script&gt;</code>"),
        "{lost}"
    );
    assert!(!lost.contains("e-old") && !lost.contains("e9"), "{lost}");
    // Newest first.
    assert!(lost.find("<td>e3</td>").unwrap() < lost.find("<td>e2</td>").unwrap());

    let (status, json) = f.get_json("/api/v1/executors/lost").await;
    assert_eq!(status, StatusCode::OK);
    let list = json.as_array().unwrap();
    assert_eq!(list.len(), 2, "{json}");
    assert_eq!(list[1]["executor"], "e2");
    assert_eq!(list[1]["run_id"], "r1");
    assert_eq!(list[1]["job"], "settle");
    assert_eq!(list[1]["items"], "4,6-7");
    assert_eq!(list[1]["item_count"], 3);
    assert_eq!(list[1]["at_ms"], now - 2 * HOUR_MS);
    assert!(list[0]["item_count"].is_null(), "{json}");
    let (_, json) = f.get_json("/api/v1/executors/lost?hours=26").await;
    assert_eq!(json.as_array().unwrap().len(), 3, "{json}");
    let (_, json) = f.get_json("/api/v1/executors/lost?hours=26&limit=1").await;
    assert_eq!(json[0]["executor"], "e3", "{json}");
    assert_eq!(json.as_array().unwrap().len(), 1);
    for bad in ["hours=0", "hours=169", "limit=0", "since=1"] {
        let (status, json) = f.get_json(&format!("/api/v1/executors/lost?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {json}");
    }
}

#[tokio::test]
async fn the_executors_page_says_when_no_executor_was_lost() {
    let f = Fixture::memory(support::operators()).await;
    seed(&f).await;
    let executors = page(&f, "/executors").await;
    assert!(section(&executors, "lost-executors")
        .contains("No executor was lost while holding items in the last 24 hours."));
}

/// A run of the seeded DAG that started at `created_ms + 100` and ended in
/// `state` after `took_ms`.
async fn ended_run(f: &Fixture, id: &str, created_ms: i64, took_ms: i64, state: RunState) {
    add_run(f, id, created_ms, RunState::Running).await;
    f.store
        .update_run_state(&RunId::new(id), state, created_ms + 100 + took_ms, None)
        .await
        .unwrap();
}

/// The DAG page's graph: an arrowhead on every edge, each job a link to
/// its items in the selected run (or to its row when no run is selected),
/// the jobs listed with their trigger rules; and the duration trend: one
/// linked bar per ended run that started (the last 30), failed runs
/// marked, the median and the "slower than usual" line once there are
/// three succeeded runs.
#[tokio::test]
async fn the_dag_page_links_its_graph_and_charts_the_duration_trend() {
    let f = Fixture::memory(support::operators()).await;
    seed(&f).await;
    let now = chrono::Utc::now().timestamp_millis();

    let dag = page(&f, "/dags/settlement").await;
    let graph = section(&dag, "graph");
    assert_eq!(graph.matches("class=\"edge\"").count(), 2, "{graph}");
    assert_eq!(
        graph.matches("marker-end=\"url(#arrow)\"").count(),
        2,
        "{graph}"
    );
    assert!(graph.contains("<marker id=\"arrow\""), "{graph}");
    for job in ["extract", "settle", "report"] {
        assert!(
            graph.contains(&format!("<a href=\"/runs/r1?job={job}#items\">")),
            "{job}: {graph}"
        );
        assert!(dag.contains(&format!("<tr id=\"job-{job}\">")), "{job}");
    }
    assert!(
        !graph.contains("class=\"rule\""),
        "default rules are not tagged"
    );
    let (_, api) = f.get_json("/api/v1/dags/settlement").await;
    assert_eq!(api["job_specs"][1]["trigger_rule"], "all_success", "{api}");
    // Past the history's first page no run is selected: jobs link to their rows.
    let older = page(&f, "/dags/settlement?offset=20").await;
    assert!(
        section(&older, "graph").contains("<a href=\"#job-settle\">"),
        "{older}"
    );

    // r0 (seeded, succeeded) is the only ended run: one bar, no baseline.
    let trend = section(&dag, "trend");
    assert_eq!(trend.matches("class=\"trend-bar").count(), 1, "{trend}");
    assert!(trend.contains("<a href=\"/runs/r0\">"), "{trend}");
    assert!(!trend.contains("class=\"median\""), "{trend}");

    // Four more: two succeeded (a baseline of three), one failed, and one
    // cancelled before it started (no bar).
    let minute = 60_000;
    ended_run(
        &f,
        "t1",
        now - 50 * HOUR_MS,
        2 * minute,
        RunState::Succeeded,
    )
    .await;
    ended_run(
        &f,
        "t2",
        now - 49 * HOUR_MS,
        4 * minute,
        RunState::Succeeded,
    )
    .await;
    ended_run(&f, "t3", now - 48 * HOUR_MS, minute, RunState::Failed).await;
    f.store
        .insert_run(&NewRun {
            run_id: RunId::new("t4"),
            dag: DagName::new("settlement"),
            dag_version: 1,
            business_date: chrono::NaiveDate::from_ymd_opt(2024, 3, 28).unwrap(),
            trigger_source: TriggerSource::Manual,
            params: serde_json::json!({}),
            scheduled_for_ms: None,
            created_at_ms: now - 47 * HOUR_MS,
        })
        .await
        .unwrap();
    f.store
        .update_run_state(&RunId::new("t4"), RunState::Cancelled, now, None)
        .await
        .unwrap();
    let dag = page(&f, "/dags/settlement").await;
    let trend = section(&dag, "trend");
    assert_eq!(trend.matches("class=\"trend-bar").count(), 4, "{trend}");
    assert!(!trend.contains("data-run=\"t4\""), "{trend}");
    assert_eq!(trend.matches("class=\"fail-mark\"").count(), 1, "{trend}");
    assert!(
        trend.contains("trend-bar st-failed\" data-run=\"t3\""),
        "{trend}"
    );
    // Durations 2m, 4m and r0's: the median is 2m, the threshold 3m, and
    // the 4-minute run is past it.
    let r0 = f.store.get_run(&RunId::new("r0")).await.unwrap().unwrap();
    let r0_ms = r0.ended_at_ms.unwrap() - r0.started_at_ms.unwrap();
    assert!(r0_ms < 2 * minute, "{r0_ms}");
    assert!(trend.contains("</title>median 2m 0s</text>"), "{trend}");
    assert!(trend.contains("</title>slow &gt; 3m 0s</text>"), "{trend}");
    assert!(
        trend.contains("trend-bar st-succeeded slow\" data-run=\"t2\""),
        "{trend}"
    );
    assert!(trend.contains(">4m</text>"), "a labelled tick: {trend}");

    // Forty more ended runs: only the last 30 are drawn.
    for i in 0..40 {
        ended_run(
            &f,
            &format!("u{i:02}"),
            now - 40 * HOUR_MS + i * minute,
            minute + i * 1_000,
            if i % 7 == 0 {
                RunState::Failed
            } else {
                RunState::Succeeded
            },
        )
        .await;
    }
    let dag = page(&f, "/dags/settlement").await;
    let trend = section(&dag, "trend");
    assert_eq!(trend.matches("class=\"trend-bar").count(), 30, "{trend}");
    assert!(trend.contains("data-run=\"u39\""), "the newest is drawn");
    assert!(!trend.contains("data-run=\"u09\""), "the oldest are not");
}
