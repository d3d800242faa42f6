//! Issue 14's readable pages, as served (no browser): every absolute time
//! is a `<time>` element in UTC with its instant for the page script; pages
//! and rows about one DAG carry its zone for the "DAG zone" choice; the
//! header says times are in UTC until the script offers the choice; the
//! overview's timeline zooms (`?window=6h|12h|36h`) and names its window.
//! `browser_layout.rs` checks what the script does with them in Chromium.

mod support;

use axum::http::{Method, StatusCode};
use nightshift_core::ids::{DagName, RunId};
use nightshift_core::state::{RunState, TriggerSource};
use nightshift_store::NewRun;
use support::{seed, Fixture, TOKEN};

const HOUR_MS: i64 = 3_600_000;

async fn page(f: &Fixture, path: &str) -> String {
    let (status, _, body) = f.call(Method::GET, path, Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

fn section<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("<section id=\"{id}\""))
        .unwrap_or_else(|| panic!("no section {id}: {html}"));
    let rest = &html[start..];
    &rest[..rest.find("</section>").unwrap_or(rest.len())]
}

/// A succeeded run of the seeded DAG from `start_ms`, a minute long.
async fn run_at(f: &Fixture, id: &str, start_ms: i64) {
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
    for (state, at) in [
        (RunState::Running, start_ms),
        (RunState::Succeeded, start_ms + 60_000),
    ] {
        f.store
            .update_run_state(&RunId::new(id), state, at, None)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn times_are_time_elements_in_utc_with_the_dags_zone_nearby() {
    let f = Fixture::memory(support::operators()).await;
    seed(&f).await;

    let run = page(&f, "/runs/r1").await;
    assert!(
        run.contains("<body data-run=\"r1\" data-zone=\"Europe/Paris\">"),
        "the run page names its DAG's zone"
    );
    assert!(
        run.contains("<span id=\"tz-note\" class=\"tz\">times in UTC</span>")
            && run.contains("<label id=\"tz-choice\" class=\"tz\" hidden>"),
        "without the script the header says UTC; the choice waits for it"
    );
    let summary = section(&run, "summary");
    let started = summary
        .split("<time datetime=\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no <time> in {summary}"));
    // `2024-…T…Z" data-ms="…">2024-… …Z</time>`
    let (rfc, rest) = started.split_once("\" data-ms=\"").unwrap();
    let (ms, rest) = rest.split_once("\">").unwrap();
    let (text, _) = rest.split_once("</time>").unwrap();
    let ms: i64 = ms.parse().unwrap();
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(rfc)
            .unwrap()
            .timestamp_millis(),
        ms
    );
    assert_eq!(text, nightshift_console_utc(ms));

    for path in ["/events", "/alerts"] {
        let html = page(&f, path).await;
        let rows: Vec<&str> = html.split("<tr><td>").skip(1).collect();
        assert!(!rows.is_empty(), "{path}: {html}");
        assert!(
            rows.iter().all(
                |r| r.contains("<time datetime=") && r.contains(" data-zone=\"Europe/Paris\">")
            ),
            "{path}: times are <time> elements with their DAG's zone: {html}"
        );
    }
    let overview = page(&f, "/").await;
    assert!(
        overview.contains("<body data-zone=\"Europe/Paris\">"),
        "every DAG shares one zone"
    );
    assert!(overview.contains("<p class=\"sub\">As of <time datetime="));
    // The next fire: UTC text, the DAG's local time in the title.
    assert!(
        overview.contains("data-zone=\"Europe/Paris\">")
            && (overview.contains(" CEST\"><time datetime=")
                || overview.contains(" CET\"><time datetime=")),
        "{}",
        section(&overview, "dags")
    );
}

/// The server's UTC text for an instant (`crate::time::utc`).
fn nightshift_console_utc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .format("%Y-%m-%d %H:%M:%SZ")
        .to_string()
}

#[tokio::test]
async fn the_overview_timeline_zooms() {
    let f = Fixture::memory(support::operators()).await;
    seed(&f).await;
    let now = chrono::Utc::now().timestamp_millis();
    run_at(&f, "r-4h", now - 4 * HOUR_MS).await;
    run_at(&f, "r-8h", now - 8 * HOUR_MS).await;
    run_at(&f, "r-20h", now - 20 * HOUR_MS).await;
    let drawn = |html: &str, run: &str| {
        section(html, "timeline").contains(&format!("<a href=\"/runs/{run}\"><rect"))
    };

    for (query, window, shown, hidden) in [
        ("", "12 h", &["r1", "r-4h", "r-8h"][..], &["r-20h"][..]),
        ("?window=6h", "6 h", &["r1", "r-4h"], &["r-8h", "r-20h"]),
        ("?window=12h", "12 h", &["r1", "r-4h", "r-8h"], &["r-20h"]),
        ("?window=36h", "36 h", &["r1", "r-4h", "r-8h", "r-20h"], &[]),
    ] {
        let html = page(&f, &format!("/{query}")).await;
        let timeline = section(&html, "timeline");
        assert!(
            timeline.contains(&format!("<strong aria-current=\"true\">{window}</strong>")),
            "{query}: {timeline}"
        );
        for run in shown {
            assert!(drawn(&html, run), "{query}: {run} not drawn: {timeline}");
        }
        for run in hidden {
            assert!(!drawn(&html, run), "{query}: {run} drawn: {timeline}");
        }
        assert!(
            timeline.contains(&format!("({} shown)", shown.len() + 1)),
            "{query}: r0 and the window's runs: {timeline}"
        );
    }
    let html = page(&f, "/?window=6h").await;
    assert!(html.contains("<a href=\"/?window=36h\">36 h</a>"));
    let (status, _, _) = f.call(Method::GET, "/?window=2d", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
