//! Request bodies of every mutating API endpoint (issue 7, "Bad input"),
//! against a real router over the in-process coordinator and a fresh SQLite
//! file. Property tests send arbitrary JSON values, arbitrary bytes, valid
//! bodies with one field out of range and valid bodies with an unknown
//! field. Whatever comes in: never a 5xx or a panic; a rejection is a 4xx in
//! the API's error format with a message, and writes no key; an unknown
//! field or a value out of range is a 400 naming the field; a valid body is
//! accepted (so each property can fail both ways).

mod support;

use axum::http::{Method, Request, StatusCode};
use axum::{body::Body, Router};
use chrono::{Datelike, NaiveDate};
use http_body_util::BodyExt;
use nightshift_console::api::actions::{BUSINESS_DATE_YEARS, MAX_PARAMS_BYTES};
use nightshift_console::api::alerts::MAX_SILENCE_MINUTES;
use nightshift_console::MAX_BODY_BYTES;
use nightshift_core::keyspace::{validate_segment, MAX_SEGMENT_LEN};
use nightshift_core::state::AlertRule;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Map, Value};
use support::{seed, Fixture, TOKEN};
use tower::ServiceExt;

/// Cases per property: enough to hit every endpoint and mutation many
/// times, few enough for the file to run in seconds.
const CASES: u32 = 64;

/// What an endpoint's body holds: a `TriggerRequest`, a `RetryRequest`, a
/// `SilenceRequest` (the one required body), or no fields (nothing or `{}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Trigger,
    Retry,
    Silence,
    Clear,
    NoFields,
}

impl Kind {
    fn fields(self) -> &'static [&'static str] {
        match self {
            Kind::Trigger => &["business_date", "params", "rerun"],
            Kind::Retry => &["job"],
            Kind::Silence => &["rule", "dag", "minutes"],
            Kind::Clear => &["jobs", "items", "downstream"],
            Kind::NoFields => &[],
        }
    }
}

/// One mutating endpoint of the seeded console: its path as `openapi.json`
/// lists it (`template`) and for the seeded state (`path`).
#[derive(Debug, Clone)]
struct Endpoint {
    template: &'static str,
    path: String,
    kind: Kind,
    /// The answer to a valid body: 202 for commands, 200 for alert
    /// bookkeeping, 409 for the test notification (no channel configured).
    ok: StatusCode,
}

fn endpoints(alert: i64) -> Vec<Endpoint> {
    let e = |template: &'static str, path: String, kind, ok| Endpoint {
        template,
        path,
        kind,
        ok,
    };
    vec![
        e(
            "/dags/{dag}/trigger",
            "/api/v1/dags/settlement/trigger".into(),
            Kind::Trigger,
            StatusCode::ACCEPTED,
        ),
        e(
            "/dags/{dag}/runs",
            "/api/v1/dags/settlement/runs".into(),
            Kind::Trigger,
            StatusCode::ACCEPTED,
        ),
        e(
            "/dags/{dag}/pause",
            "/api/v1/dags/settlement/pause".into(),
            Kind::NoFields,
            StatusCode::ACCEPTED,
        ),
        e(
            "/dags/{dag}/resume",
            "/api/v1/dags/settlement/resume".into(),
            Kind::NoFields,
            StatusCode::ACCEPTED,
        ),
        e(
            "/runs/{run}/cancel",
            "/api/v1/runs/r1/cancel".into(),
            Kind::NoFields,
            StatusCode::ACCEPTED,
        ),
        e(
            "/runs/{run}/retry",
            "/api/v1/runs/r1/retry".into(),
            Kind::Retry,
            StatusCode::ACCEPTED,
        ),
        e(
            "/runs/{run}/clear",
            "/api/v1/runs/r1/clear".into(),
            Kind::Clear,
            StatusCode::ACCEPTED,
        ),
        e(
            "/runs/{run}/jobs/{job}/skip",
            "/api/v1/runs/r1/jobs/settle/skip".into(),
            Kind::NoFields,
            StatusCode::ACCEPTED,
        ),
        e(
            "/runs/{run}/jobs/{job}/items/{item}/mark-succeeded",
            "/api/v1/runs/r1/jobs/settle/items/1/mark-succeeded".into(),
            Kind::NoFields,
            StatusCode::ACCEPTED,
        ),
        e(
            "/alerts/{id}/ack",
            format!("/api/v1/alerts/{alert}/ack"),
            Kind::NoFields,
            StatusCode::OK,
        ),
        e(
            "/alerts/silence",
            "/api/v1/alerts/silence".into(),
            Kind::Silence,
            StatusCode::OK,
        ),
        e(
            "/notifications/test",
            "/api/v1/notifications/test".into(),
            Kind::NoFields,
            StatusCode::CONFLICT,
        ),
    ]
}

/// The seeded console and a runtime to drive it from synchronous proptest.
struct Harness {
    rt: tokio::runtime::Runtime,
    f: Fixture,
    app: Router,
    endpoints: Vec<Endpoint>,
}

fn harness() -> Harness {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let f = rt.block_on(Fixture::memory(support::operators()));
    let alert = rt.block_on(seed(&f));
    Harness {
        app: nightshift_console::router(f.state.clone()),
        rt,
        f,
        endpoints: endpoints(alert),
    }
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// POSTs `body` (none when `None`) with the operator token.
async fn post(
    app: &Router,
    path: &str,
    body: Option<Vec<u8>>,
    content_type: Option<&str>,
) -> (StatusCode, String) {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("authorization", format!("Bearer {TOKEN}"));
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let req = req.body(body.map_or_else(Body::empty, Body::from)).unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// The `code` of the API's error format for each 4xx status.
const CODES: &[(u16, &str)] = &[
    (400, "bad_request"),
    (401, "unauthorized"),
    (403, "forbidden"),
    (404, "not_found"),
    (409, "conflict"),
    (413, "payload_too_large"),
    (415, "unsupported_media_type"),
];

fn code_of(status: StatusCode) -> &'static str {
    CODES
        .iter()
        .find(|(s, _)| *s == status.as_u16())
        .map_or("?", |(_, c)| c)
}

/// The message of a `{"error": {"code", "message"}}` answer whose code
/// matches `status`; fails the case otherwise.
fn error_message(status: StatusCode, text: &str) -> Result<String, TestCaseError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| TestCaseError::fail(format!("{status}: not JSON ({e}): {text}")))?;
    prop_assert_eq!(
        v["error"]["code"].as_str(),
        Some(code_of(status)),
        "{}",
        text
    );
    let message = v["error"]["message"].as_str().unwrap_or("");
    prop_assert!(!message.trim().is_empty(), "empty message: {}", text);
    Ok(message.to_owned())
}

/// Sends a body and checks what holds for any input: no 5xx, the expected
/// class of answer, the error shape, and that a rejection wrote no key.
/// `valid`: `Some(true)` → the endpoint's `ok` status; `Some(false)` → a
/// 4xx; `None` → either. Returns the status and the error message.
fn check(
    h: &Harness,
    ep: &Endpoint,
    body: Option<Vec<u8>>,
    valid: Option<bool>,
) -> Result<(StatusCode, String), TestCaseError> {
    h.rt.block_on(async {
        let before = h.f.keys().await;
        let (status, text) = post(&h.app, &ep.path, body.clone(), Some("application/json")).await;
        let shown = body
            .as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect::<String>();
        prop_assert!(
            !status.is_server_error(),
            "{} {} -> {}: {}",
            ep.path,
            shown,
            status,
            text
        );
        if valid == Some(true) {
            prop_assert_eq!(status, ep.ok, "{} {} was refused: {}", ep.path, shown, text);
        }
        if valid == Some(false) {
            // `ok` is a 409 for the test notification: a refused body must
            // be told apart from it.
            prop_assert!(
                status.is_client_error() && status != ep.ok,
                "{} {} was accepted ({}): {}",
                ep.path,
                shown,
                status,
                text
            );
        }
        prop_assert!(
            status == ep.ok || status.is_client_error(),
            "{} {} -> {}: {}",
            ep.path,
            shown,
            status,
            text
        );
        if status.is_client_error() {
            let message = error_message(status, &text)?;
            prop_assert_eq!(
                h.f.keys().await,
                before,
                "{} {} was refused but wrote a key",
                ep.path,
                shown
            );
            return Ok((status, message));
        }
        if status == StatusCode::ACCEPTED {
            // A command endpoint writes exactly one command.
            let after = h.f.keys().await;
            let added: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
            prop_assert_eq!(added.len(), 1, "{}: {:?}", ep.path, added);
            prop_assert!(added[0].contains("/commands/"), "{:?}", added);
        }
        Ok((status, String::new()))
    })
}

// ---- the oracle: which JSON values each kind of body accepts ----

fn is_valid_date(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s
            .parse::<NaiveDate>()
            .is_ok_and(|d| BUSINESS_DATE_YEARS.contains(&d.year())),
        _ => false,
    }
}

/// Whether the API must accept `v` as the body of `kind` (for the seeded
/// run `r1`, whose jobs are `extract`, `settle` and `report`).
fn accepts(kind: Kind, v: &Value) -> bool {
    let Some(obj) = v.as_object() else {
        return false;
    };
    if obj.keys().any(|k| !kind.fields().contains(&k.as_str())) {
        return false;
    }
    let field = |name: &str| obj.get(name);
    match kind {
        Kind::NoFields => true,
        Kind::Trigger => {
            field("business_date").is_none_or(is_valid_date)
                && field("params").is_none_or(|p| {
                    p.is_null() || (p.is_object() && p.to_string().len() <= MAX_PARAMS_BYTES)
                })
                && field("rerun").is_none_or(Value::is_boolean)
        }
        Kind::Retry => field("job").is_none_or(|j| {
            j.is_null() || matches!(j.as_str(), Some("extract" | "settle" | "report"))
        }),
        Kind::Clear => {
            let jobs_ok = field("jobs").is_none_or(|j| {
                j.as_array().is_some_and(|a| {
                    a.iter()
                        .all(|n| n.as_str().is_some_and(|n| shards_of(n).is_some()))
                })
            });
            let items_ok = field("items").is_none_or(|i| {
                i.as_object().is_some_and(|m| {
                    m.iter().all(|(job, list)| {
                        list.as_array().is_some_and(|a| {
                            a.iter().all(|n| n.as_u64().is_some())
                                && (a.is_empty()
                                    || shards_of(job).is_some_and(|shards| {
                                        a.iter().all(|n| n.as_u64().is_some_and(|n| n < shards))
                                    }))
                        })
                    })
                })
            });
            let named = field("jobs")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
                || field("items").and_then(Value::as_object).is_some_and(|m| {
                    m.values()
                        .any(|l| l.as_array().is_some_and(|a| !a.is_empty()))
                });
            jobs_ok && items_ok && named && field("downstream").is_none_or(Value::is_boolean)
        }
        Kind::Silence => {
            field("rule")
                .and_then(Value::as_str)
                .is_some_and(|r| AlertRule::ALL.iter().any(|k| k.as_str() == r))
                && field("minutes")
                    .and_then(Value::as_u64)
                    .is_some_and(|m| (1..=u64::from(MAX_SILENCE_MINUTES)).contains(&m))
                && field("dag").is_none_or(|d| {
                    d.is_null()
                        || d.as_str()
                            .is_some_and(|d| validate_segment("dag", d).is_ok())
                })
        }
    }
}

/// Items of the seeded run's jobs.
fn shards_of(job: &str) -> Option<u64> {
    match job {
        "extract" => Some(4),
        "settle" => Some(8),
        "report" => Some(1),
        _ => None,
    }
}

// ---- strategies ----

fn rule_name() -> impl Strategy<Value = String> {
    prop::sample::select(
        AlertRule::ALL
            .iter()
            .map(|r| r.as_str().to_owned())
            .collect::<Vec<_>>(),
    )
}

fn date_text() -> impl Strategy<Value = String> {
    (
        *BUSINESS_DATE_YEARS.start()..=*BUSINESS_DATE_YEARS.end(),
        1u32..=366,
    )
        .prop_filter_map("no such day", |(y, d)| NaiveDate::from_yo_opt(y, d))
        .prop_map(|d| d.to_string())
}

/// Strings a body field might plausibly hold, valid or not.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        date_text(),
        "[0-9]{1,5}-[0-9]{1,2}-[0-9]{1,2}",
        rule_name(),
        prop::sample::select(vec![
            "extract",
            "settle",
            "report",
            "settlement",
            "nope",
            "",
            "a/b"
        ])
        .prop_map(str::to_owned),
        "[A-Za-z0-9_.:-]{1,20}",
        "\\PC{0,24}",
    ]
}

/// Every field of every body.
const KNOWN_FIELDS: &[&str] = &[
    "business_date",
    "params",
    "rerun",
    "job",
    "rule",
    "dag",
    "minutes",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(KNOWN_FIELDS).prop_map(str::to_owned),
        1 => "[a-z_]{1,10}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (0u64..=50_000).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1.0e6f64..1.0e6).prop_map(Value::from),
        text().prop_map(Value::from),
    ]
}

/// Arbitrary JSON, with objects keyed mostly by the API's field names.
fn json_value() -> impl Strategy<Value = Value> {
    let any_json = leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop_oneof![
        1 => any_json.clone(),
        2 => prop::collection::btree_map(key(), any_json, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
    ]
}

/// A body `kind` accepts; `None` is no body at all.
fn valid_body(kind: Kind) -> BoxedStrategy<Option<Value>> {
    let maybe = |s: BoxedStrategy<Value>| {
        prop_oneof![Just(None), Just(Some(Value::Null)), s.prop_map(Some)]
    };
    match kind {
        Kind::NoFields => prop_oneof![Just(None), Just(Some(json!({})))].boxed(),
        Kind::Trigger => {
            let params = prop::collection::btree_map("[a-z]{1,8}", leaf(), 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect()))
                .boxed();
            (
                maybe(date_text().prop_map(Value::from).boxed()),
                maybe(params),
                prop::option::of(any::<bool>()),
            )
                .prop_map(|(date, params, rerun)| {
                    let mut o = Map::new();
                    date.map(|d| o.insert("business_date".into(), d));
                    params.map(|p| o.insert("params".into(), p));
                    rerun.map(|r| o.insert("rerun".into(), r.into()));
                    Some(Value::Object(o))
                })
                .boxed()
        }
        Kind::Retry => {
            let job = prop::sample::select(vec!["extract", "settle", "report"])
                .prop_map(Value::from)
                .boxed();
            prop_oneof![
                Just(None),
                maybe(job).prop_map(|j| Some(j.map_or(json!({}), |j| json!({ "job": j }))))
            ]
            .boxed()
        }
        Kind::Clear => {
            let job = || prop::sample::select(vec!["extract", "settle", "report"]);
            let jobs = prop::collection::vec(job(), 0..3);
            let items =
                prop::collection::btree_map(job(), prop::collection::vec(0u64..1, 0..3), 0..3);
            (jobs, items, prop::option::of(any::<bool>()))
                .prop_filter("names something", |(j, i, _)| {
                    !j.is_empty() || i.values().any(|l| !l.is_empty())
                })
                .prop_map(|(jobs, items, downstream)| {
                    let mut o = Map::new();
                    if !jobs.is_empty() {
                        o.insert("jobs".into(), json!(jobs));
                    }
                    if !items.is_empty() {
                        o.insert("items".into(), json!(items));
                    }
                    downstream.map(|d| o.insert("downstream".into(), d.into()));
                    Some(Value::Object(o))
                })
                .boxed()
        }
        Kind::Silence => {
            let dag = prop_oneof![Just("settlement".to_owned()), "[A-Za-z0-9_.:-]{1,128}"]
                .prop_map(Value::from)
                .boxed();
            (rule_name(), 1..=MAX_SILENCE_MINUTES, maybe(dag))
                .prop_map(|(rule, minutes, dag)| {
                    let mut o = json!({ "rule": rule, "minutes": minutes });
                    dag.into_iter().for_each(|d| o["dag"] = d);
                    Some(o)
                })
                .boxed()
        }
    }
}

/// Values out of range (or of the wrong type) for each field of `kind`.
fn bad_values(kind: Kind) -> Vec<(&'static str, Value)> {
    let long = json!("x".repeat(MAX_SEGMENT_LEN + 1));
    let dates = [
        "1969-12-31",
        "3000-01-01",
        "2024-02-30",
        "2024-13-01",
        "",
        "tomorrow",
    ]
    .map(Value::from);
    let per_field: Vec<(&str, Vec<Value>)> = match kind {
        Kind::NoFields => vec![],
        Kind::Trigger => vec![
            (
                "business_date",
                [dates.as_slice(), &[json!(20240329), json!(["2024-03-29"])]].concat(),
            ),
            (
                "params",
                vec![
                    json!([1, 2]),
                    json!("region=eu"),
                    json!(5),
                    json!({ "pad": "x".repeat(MAX_PARAMS_BYTES) }),
                ],
            ),
            ("rerun", vec![json!("yes"), json!(1), Value::Null]),
        ],
        Kind::Retry => vec![(
            "job",
            vec![json!(""), json!("a/b"), long, json!(5), json!(["settle"])],
        )],
        Kind::Clear => vec![
            (
                "jobs",
                vec![json!("extract"), json!(5), json!([5]), Value::Null],
            ),
            (
                "items",
                vec![
                    json!([1]),
                    json!({"settle": [-1]}),
                    json!({"settle": "1"}),
                    json!({"settle": [1.5]}),
                ],
            ),
            ("downstream", vec![json!("yes"), json!(1), Value::Null]),
        ],
        Kind::Silence => vec![
            (
                "minutes",
                vec![
                    json!(0),
                    json!(-1),
                    json!(MAX_SILENCE_MINUTES + 1),
                    json!(u64::from(u32::MAX) + 1),
                    json!(1.5),
                    json!("5"),
                    Value::Null,
                ],
            ),
            (
                "rule",
                vec![json!(""), json!("meteor_strike"), json!(5), Value::Null],
            ),
            ("dag", vec![json!(""), json!("a/b"), long, json!(7)]),
        ],
    };
    per_field
        .into_iter()
        .flat_map(|(field, values)| values.into_iter().map(move |v| (field, v)))
        .collect()
}

// ---- properties ----

#[test]
fn arbitrary_json_is_accepted_exactly_when_valid_and_never_a_5xx() {
    let h = harness();
    runner(CASES)
        .run(&json_value(), |v| {
            for ep in &h.endpoints {
                check(
                    &h,
                    ep,
                    Some(v.to_string().into_bytes()),
                    Some(accepts(ep.kind, &v)),
                )?;
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn arbitrary_bytes_are_never_a_5xx_and_malformed_json_is_a_400() {
    let h = harness();
    let bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        "\\PC{0,40}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| [b"{\"".as_slice(), &b].concat()),
    ];
    runner(CASES)
        .run(&bytes, |b| {
            let blank = b.iter().all(u8::is_ascii_whitespace);
            let json = serde_json::from_slice::<Value>(&b).ok();
            for ep in &h.endpoints {
                // Blank is "no body" except where a body is required; other
                // JSON is judged by the oracle in the property above.
                let valid = if blank {
                    Some(!matches!(ep.kind, Kind::Silence | Kind::Clear))
                } else if json.is_some() {
                    None
                } else {
                    Some(false)
                };
                let (status, _) = check(&h, ep, Some(b.clone()), valid)?;
                if valid == Some(false) {
                    prop_assert_eq!(status, StatusCode::BAD_REQUEST, "{}", ep.path);
                }
            }
            Ok(())
        })
        .unwrap();
}

/// One valid body per endpoint (in [`endpoints`] order), so that every
/// case exercises every endpoint.
fn valid_bodies() -> Vec<BoxedStrategy<Option<Value>>> {
    endpoints(0).iter().map(|e| valid_body(e.kind)).collect()
}

#[test]
fn valid_bodies_are_accepted() {
    let h = harness();
    runner(CASES)
        .run(&valid_bodies(), |bodies| {
            for (ep, body) in h.endpoints.iter().zip(bodies) {
                prop_assert!(
                    body.as_ref().is_none_or(|v| accepts(ep.kind, v)),
                    "the generator made an invalid body: {:?}",
                    body
                );
                check(&h, ep, body.map(|v| v.to_string().into_bytes()), Some(true))?;
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_field_out_of_range_is_a_400_naming_the_field() {
    let h = harness();
    // Every case sends every bad value of every field (about 50 requests),
    // each into a freshly generated valid body: fewer cases suffice.
    runner(CASES / 4)
        .run(&valid_bodies(), |bodies| {
            for (ep, body) in h.endpoints.iter().zip(bodies) {
                for (field, bad) in bad_values(ep.kind) {
                    let mut v = body
                        .clone()
                        .filter(Value::is_object)
                        .unwrap_or_else(|| json!({}));
                    v[field] = bad;
                    prop_assert!(!accepts(ep.kind, &v), "the oracle accepts {}", v);
                    let (status, message) =
                        check(&h, ep, Some(v.to_string().into_bytes()), Some(false))?;
                    prop_assert_eq!(
                        status,
                        StatusCode::BAD_REQUEST,
                        "{} {}: {}",
                        ep.path,
                        v,
                        message
                    );
                    prop_assert!(
                        message.contains(field),
                        "{} {}: the message does not name `{}`: {}",
                        ep.path,
                        v,
                        field,
                        message
                    );
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn an_unknown_field_is_a_400_naming_it() {
    let h = harness();
    let unknown = "[a-z][a-z0-9_]{0,15}".prop_filter("a field of some body", |k| {
        !KNOWN_FIELDS.contains(&k.as_str())
    });
    runner(CASES)
        .run(
            &(valid_bodies(), unknown, leaf()),
            |(bodies, unknown, value)| {
                for (ep, body) in h.endpoints.iter().zip(bodies) {
                    let mut v = body.filter(Value::is_object).unwrap_or_else(|| json!({}));
                    v[unknown.as_str()] = value.clone();
                    let (status, message) =
                        check(&h, ep, Some(v.to_string().into_bytes()), Some(false))?;
                    prop_assert_eq!(
                        status,
                        StatusCode::BAD_REQUEST,
                        "{} {}: {}",
                        ep.path,
                        v,
                        message
                    );
                    prop_assert!(
                        message.contains(&format!("`{unknown}`")),
                        "{} {}: the message does not name it: {}",
                        ep.path,
                        v,
                        message
                    );
                }
                Ok(())
            },
        )
        .unwrap();
}

// ---- plain tests ----

#[tokio::test]
async fn every_mutating_endpoint_of_the_openapi_document_is_covered_here() {
    let doc = nightshift_console::openapi::document();
    let covered: Vec<&str> = endpoints(0).iter().map(|e| e.template).collect();
    let mut found = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ["post", "put", "patch", "delete"] {
            if ops.get(method).is_some() {
                found += 1;
                assert!(
                    method == "post" && covered.contains(&path.as_str()),
                    "{method} {path} is not covered by api_bodies.rs"
                );
            }
        }
    }
    assert_eq!(
        found,
        covered.len(),
        "an endpoint listed here is not in openapi.json"
    );
}

#[tokio::test]
async fn a_body_one_byte_over_the_limit_is_a_413_with_a_message_and_at_the_limit_is_read() {
    let f = Fixture::memory(support::operators()).await;
    let alert = seed(&f).await;
    let app = nightshift_console::router(f.state.clone());
    for ep in endpoints(alert) {
        let before = f.keys().await;
        // `{}` padded with spaces: valid JSON of exactly the given size.
        let padded = |size: usize| format!("{{}}{}", " ".repeat(size - 2)).into_bytes();
        let (status, text) = post(
            &app,
            &ep.path,
            Some(padded(MAX_BODY_BYTES + 1)),
            Some("application/json"),
        )
        .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{}: {text}", ep.path);
        let v: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text}", ep.path));
        assert_eq!(v["error"]["code"], "payload_too_large", "{text}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(&MAX_BODY_BYTES.to_string())),
            "{text}"
        );
        assert_eq!(
            f.keys().await,
            before,
            "{}: a refused body wrote a key",
            ep.path
        );

        let (status, text) = post(
            &app,
            &ep.path,
            Some(padded(MAX_BODY_BYTES)),
            Some("application/json"),
        )
        .await;
        assert_ne!(
            status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{}: a body at the limit was refused: {text}",
            ep.path
        );
        assert!(!status.is_server_error(), "{}: {status}: {text}", ep.path);
    }
}

#[tokio::test]
async fn a_required_body_of_another_content_type_is_a_415() {
    let f = Fixture::memory(support::operators()).await;
    seed(&f).await;
    let app = nightshift_console::router(f.state.clone());
    let body = br#"{"rule":"item_failed","minutes":5}"#.to_vec();
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/xml"),
        None,
    ] {
        let (status, text) = post(&app, "/api/v1/alerts/silence", Some(body.clone()), ct).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (
                v["error"]["code"].as_str(),
                v["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("application/json"))
            ),
            (Some("unsupported_media_type"), true),
            "{text}"
        );
    }
    let (status, text) = post(
        &app,
        "/api/v1/alerts/silence",
        Some(body),
        Some("application/json; charset=utf-8"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
}

#[tokio::test]
async fn item_indexes_and_list_queries_out_of_range_are_a_400_naming_them() {
    let f = Fixture::memory(support::operators()).await;
    seed(&f).await;
    let app = nightshift_console::router(f.state.clone());
    let before = f.keys().await;
    for item in ["-1", "x", "1.5", "4294967296", "%20"] {
        let (status, text) = post(
            &app,
            &format!("/api/v1/runs/r1/jobs/settle/items/{item}/mark-succeeded"),
            None,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{item}: {text}");
        assert!(text.contains("item"), "{text}");
    }
    // `settle` has 8 items: 0 to 7.
    let (status, text) = post(
        &app,
        "/api/v1/runs/r1/jobs/settle/items/8/mark-succeeded",
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
    assert_eq!(f.keys().await, before);
    // (`offset` is a parameter of the run lists and unknown to the others.)
    let queries = [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        ("offset=-1", "offset"),
        ("colour=red", "`colour`"),
    ];
    for list in [
        "/api/v1/runs",
        "/api/v1/dags/settlement/runs",
        "/api/v1/alerts",
        "/api/v1/events",
    ] {
        for (query, named) in queries {
            let (status, _, text) = f
                .call(Method::GET, &format!("{list}?{query}"), Some(TOKEN), None)
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{list}?{query}: {text}");
            assert!(
                text.contains(named),
                "{list}?{query}: the message does not name {named}: {text}"
            );
        }
        let (status, _, text) = f
            .call(
                Method::GET,
                &format!("{list}?limit=1000"),
                Some(TOKEN),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{list}?limit=1000: {text}");
    }
}
