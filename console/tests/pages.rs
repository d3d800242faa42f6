//! The HTML pages render the seeded state, escape every user-supplied
//! string, and load nothing from outside the console.

mod support;

use axum::http::{Method, StatusCode};
use support::{seed, Fixture, TOKEN};

async fn page(f: &Fixture, path: &str) -> String {
    let (status, headers, body) = f.call(Method::GET, path, Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"), "{path}");
    // Air-gapped: no absolute URLs to load anything from. (The SVG
    // namespace is an identifier, not a fetch.)
    let without_ns = body.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(!without_ns.contains("http://") && !without_ns.contains("https://"), "{path} refers outside");
    // Nothing user-supplied came through as markup.
    assert!(!body.contains("<script>alert") && !body.contains("<script>boom") && !body.contains("<script>x"), "{path}");
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
    assert!(overview.contains("<em>7/13</em>"), "current run progress bar");

    let dag = page(&f, "/dags/settlement").await;
    for job in ["extract", "settle", "report"] {
        assert!(dag.contains(&format!(">{job}</text>")), "graph lacks {job}");
    }
    assert!(dag.contains("&lt;script&gt;alert(&#39;dag&#39;)&lt;/script&gt;"), "escaped description");
    assert!(dag.contains("class=\"node st-succeeded\""), "extract coloured by its state in r1");
    assert!(dag.contains("class=\"node st-running\""));
    assert!(dag.contains("[jobs.settle]"), "applied TOML shown");
    assert!(dag.contains("data-path=\"/api/v1/dags/settlement/trigger\""));
    assert!(dag.contains("data-confirm=\"Trigger a run of settlement?\""));

    let run = page(&f, "/runs/r1").await;
    assert!(run.contains("class=\"gantt\""));
    assert!(run.contains("Items of settle"), "the running job's items are shown by default");
    assert_eq!(run.matches("class=\"cell st-").count(), 8);
    assert!(run.contains("class=\"cell st-failed\" data-item=\"2\""));
    assert!(run.contains("&lt;script&gt;boom&lt;/script&gt; ledger refused"), "error in the tooltip, escaped");
    assert!(run.contains("progress 5/10: &lt;b&gt;halfway&lt;/b&gt;"), "progress in the tooltip, escaped");
    assert!(run.contains("data-confirm=\"Cancel run r1?\""));
    let extract = page(&f, "/runs/r1?job=extract").await;
    assert!(extract.contains("Items of extract"));
    assert_eq!(extract.matches("class=\"cell st-").count(), 4);

    let executors = page(&f, "/executors").await;
    assert!(executors.contains("host-a") && executors.contains("zone=eu-1"));
    let alerts = page(&f, "/alerts").await;
    assert!(alerts.contains("&lt;script&gt;x&lt;/script&gt; item failed"));
    assert!(alerts.contains("/ack\""));
    let events = page(&f, "/events?run=r1").await;
    assert!(events.contains("run_started") && events.contains("&lt;i&gt;x&lt;/i&gt;"));
}

#[tokio::test]
async fn page_errors_are_html_with_the_right_status() {
    let f = Fixture::memory(support::operators()).await;
    seed(&f).await;
    let (status, _, body) = f.call(Method::GET, "/runs/nope", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("no run `nope`"));
    let (status, _, _) = f.call(Method::GET, "/dags/settlement?run=nope", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn read_only_pages_disable_actions_and_assets_are_embedded() {
    let f = Fixture::memory(support::read_only()).await;
    seed(&f).await;
    let run = page(&f, "/runs/r1").await;
    assert!(run.contains("read-only"));
    assert!(run.contains("data-path=\"/api/v1/runs/r1/cancel\" data-confirm=\"Cancel run r1?\" disabled"), "{run}");
    let (status, headers, css) = f.call(Method::GET, "/assets/console.css", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/css"));
    assert!(css.contains(".st-succeeded"));
    let (_, headers, js) = f.call(Method::GET, "/assets/console.js", Some(TOKEN), None).await;
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/javascript"));
    assert!(js.contains("EventSource") && js.contains("confirm"));
}
