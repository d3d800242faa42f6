//! `GET /api/v1/openapi.json`: the OpenAPI 3.0 description of the JSON
//! API, written by hand. A unit test reads every `.route(...)` of the API
//! modules and fails when one is missing here, so the two cannot drift
//! apart silently.

use axum::Json;
use serde_json::{json, Map, Value};

fn param(name: &str, place: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": place, "required": place == "path", "description": description, "schema": schema })
}

fn path_param(name: &str) -> Value {
    param(
        name,
        "path",
        &format!("the {name}"),
        json!({ "type": "string" }),
    )
}

fn query(name: &str, description: &str) -> Value {
    param(name, "query", description, json!({ "type": "string" }))
}

/// `limit`, the page size of every listing (400 outside its range).
fn limit() -> Value {
    use crate::api::{DEFAULT_LIMIT, MAX_LIMIT};
    let description = format!("page size, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})");
    param(
        "limit",
        "query",
        &description,
        json!({ "type": "integer", "minimum": 1, "maximum": MAX_LIMIT }),
    )
}

fn limit_offset() -> Vec<Value> {
    vec![
        limit(),
        param(
            "offset",
            "query",
            "rows to skip",
            json!({ "type": "integer", "minimum": 0 }),
        ),
    ]
}

fn error_ref() -> Value {
    json!({ "description": "error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

/// One operation: summary, parameters, success status, optional JSON body
/// schema; every operation can also answer 400/401/403/404/409/503, and one
/// with a body 413 (over [`crate::MAX_BODY_BYTES`]).
fn op(summary: &str, params: Vec<Value>, ok: &str, body: Option<Value>) -> Value {
    let mut o = json!({
        "summary": summary,
        "parameters": params,
        "responses": {
            ok: { "description": "success", "content": { "application/json": {} } },
            "400": error_ref(), "401": error_ref(), "403": error_ref(),
            "404": error_ref(), "409": error_ref(), "503": error_ref()
        }
    });
    if let Some(schema) = body {
        o["requestBody"] =
            json!({ "required": false, "content": { "application/json": { "schema": schema } } });
        o["responses"]["413"] = error_ref();
    }
    o
}

/// An action without parameters: no body, or `{}`; any field is a 400.
fn action(summary: &str, params: Vec<Value>, ok: &str) -> Value {
    op(
        summary,
        params,
        ok,
        Some(json!({ "type": "object", "additionalProperties": false, "properties": {} })),
    )
}

fn trigger_body() -> Value {
    use crate::api::actions::{BUSINESS_DATE_YEARS, MAX_PARAMS_BYTES};
    let years = format!(
        "years {} to {}",
        BUSINESS_DATE_YEARS.start(),
        BUSINESS_DATE_YEARS.end()
    );
    json!({ "type": "object", "additionalProperties": false, "properties": {
        "business_date": { "type": "string", "format": "date", "description": years },
        "params": { "type": "object", "description": format!("at most {MAX_PARAMS_BYTES} bytes as JSON") },
        "rerun": { "type": "boolean" } } })
}

fn silence_body() -> Value {
    use crate::api::alerts::MAX_SILENCE_MINUTES;
    use nightshift_core::keyspace::MAX_SEGMENT_LEN;
    use nightshift_core::state::AlertRule;
    let rules: Vec<&str> = AlertRule::ALL.iter().map(|r| r.as_str()).collect();
    json!({ "type": "object", "additionalProperties": false, "required": ["rule", "minutes"], "properties": {
        "rule": { "type": "string", "enum": rules },
        "dag": { "type": "string", "pattern": "^[A-Za-z0-9_.:-]+$", "maxLength": MAX_SEGMENT_LEN },
        "minutes": { "type": "integer", "minimum": 1, "maximum": MAX_SILENCE_MINUTES } } })
}

/// The document.
pub fn document() -> Value {
    let dag = || path_param("dag");
    let run = || path_param("run");
    let job = || path_param("job");
    let mut paths = Map::new();
    let mut add = |path: &str, method: &str, operation: Value| {
        let entry = paths.entry(path.to_owned()).or_insert_with(|| json!({}));
        entry[method] = operation;
    };
    add(
        "/dags",
        "get",
        op(
            "every DAG with schedule, next fire time, last and current run",
            vec![],
            "200",
            None,
        ),
    );
    add(
        "/dags/{dag}",
        "get",
        op(
            "one DAG with jobs, applied TOML and versions",
            vec![dag()],
            "200",
            None,
        ),
    );
    add(
        "/dags/{dag}/runs",
        "get",
        op(
            "runs of a DAG, newest first",
            [vec![dag()], limit_offset()].concat(),
            "200",
            None,
        ),
    );
    add(
        "/dags/{dag}/runs",
        "post",
        op("trigger a run; answers {run_id, command_id, kind, issued_by}; a paused DAG is triggered too (pausing stops scheduled runs only)", vec![dag()], "202", Some(trigger_body())),
    );
    add(
        "/dags/{dag}/trigger",
        "post",
        op(
            "trigger a run (answers the command only)",
            vec![dag()],
            "202",
            Some(trigger_body()),
        ),
    );
    add(
        "/dags/{dag}/pause",
        "post",
        action("pause scheduled runs", vec![dag()], "202"),
    );
    add(
        "/dags/{dag}/resume",
        "post",
        action("resume scheduled runs", vec![dag()], "202"),
    );
    let mut runs_q = vec![
        query("dag", "only this DAG"),
        query("state", "states, comma-separated"),
    ];
    runs_q.extend(limit_offset());
    add(
        "/runs",
        "get",
        op("runs, newest first", runs_q, "200", None),
    );
    add(
        "/runs/{run}",
        "get",
        op(
            "a run with per-job counts, throughput and ETA; `retry_of` (the run it retries) and `retried_by` (runs retrying it)",
            vec![run()],
            "200",
            None,
        ),
    );
    add(
        "/runs/{run}/items",
        "get",
        op(
            "items of a job: job, item, state, executor, attempts, progress, checkpoint",
            vec![run(), query("job", "the job (required)")],
            "200",
            None,
        ),
    );
    add(
        "/runs/{run}/jobs/{job}/items",
        "get",
        op(
            "items of a job: state (`running` with executor, attempt and last_progress_age_ms for items in flight, from the live assignments), attempts, progress, \
             checkpoint (the item's last ctx.checkpoint value: run_id, attempt, executor, saved_at_ms, value)",
            vec![run(), job()],
            "200",
            None,
        ),
    );
    add(
        "/commands/{id}",
        "get",
        op(
            "what became of an operator command: {command_id, kind, state: pending|applied|rejected, reason, outcome, run_id}",
            vec![
                path_param("id"),
                query("kind", "the command's kind as the action answered it (narrows the search)"),
            ],
            "200",
            None,
        ),
    );
    add(
        "/runs/{run}/cancel",
        "post",
        action("cancel a run", vec![run()], "202"),
    );
    add(
        "/runs/{run}/retry",
        "post",
        op(
            "retry failed items",
            vec![run()],
            "202",
            Some(
                json!({ "type": "object", "additionalProperties": false, "properties": { "job": { "type": "string" } } }),
            ),
        ),
    );
    add(
        "/runs/{run}/clear",
        "post",
        op(
            "clear: re-run chosen jobs / items in the same run (new attempts, even if the run ended); \
             with downstream, every job downstream of a cleared job runs again after it. \
             400 when nothing is named, 404 naming an unknown job or item",
            vec![run()],
            "202",
            Some(json!({
                "type": "object", "additionalProperties": false,
                "properties": {
                    "jobs": { "type": "array", "items": { "type": "string" }, "description": "jobs cleared whole" },
                    "items": {
                        "type": "object",
                        "additionalProperties": { "type": "array", "items": { "type": "integer", "minimum": 0 } },
                        "description": "job -> item indices cleared one by one"
                    },
                    "downstream": { "type": "boolean", "default": false }
                }
            })),
        ),
    );
    add(
        "/runs/{run}/jobs/{job}/skip",
        "post",
        action("skip a job", vec![run(), job()], "202"),
    );
    let item = param(
        "item",
        "path",
        "the item index, 0 to the job's shards - 1",
        json!({ "type": "integer", "minimum": 0 }),
    );
    add(
        "/runs/{run}/jobs/{job}/items/{item}/mark-succeeded",
        "post",
        action(
            "record an item as succeeded (also on a failed job: its downstream is re-evaluated)",
            vec![run(), job(), item],
            "202",
        ),
    );
    let attempt = param(
        "attempt",
        "path",
        "the attempt number, from 1",
        json!({ "type": "integer", "minimum": 1 }),
    );
    let item = param(
        "item",
        "path",
        "the item index, 0 to the job's shards - 1",
        json!({ "type": "integer", "minimum": 0 }),
    );
    let mut log = op(
        "an attempt's log tail (text/plain, the last 64 KiB; arrives when the attempt ends; 404 when it has none)",
        vec![run(), job(), item, attempt],
        "200",
        None,
    );
    log["responses"]["200"] = json!({ "description": "the log, one line per line", "content": { "text/plain": { "schema": { "type": "string" } } } });
    add(
        "/runs/{run}/jobs/{job}/items/{item}/attempts/{attempt}/log",
        "get",
        log,
    );
    add(
        "/executors",
        "get",
        op("live executors", vec![], "200", None),
    );
    {
        use crate::api::executors::{LOST_DEFAULT_HOURS, LOST_MAX_HOURS};
        let hours = param(
            "hours",
            "query",
            &format!("look-back in hours, 1 to {LOST_MAX_HOURS} (default {LOST_DEFAULT_HOURS})"),
            json!({ "type": "integer", "minimum": 1, "maximum": LOST_MAX_HOURS }),
        );
        let summary = "executors whose lease ended while holding items (executor_lost events), newest first: \
            {seq, executor, at_ms, dag, run_id, job, items, item_count}";
        add(
            "/executors/lost",
            "get",
            op(summary, vec![hours, limit()], "200", None),
        );
    }
    add(
        "/alerts",
        "get",
        op(
            "alerts",
            vec![
                query("state", "open, acknowledged, resolved (comma-separated)"),
                query("dag", "only this DAG"),
                limit(),
            ],
            "200",
            None,
        ),
    );
    add(
        "/alerts/silences",
        "get",
        op("silences in force", vec![], "200", None),
    );
    add("/alerts/silence", "post", {
        let mut o = op(
            "silence a rule for some minutes",
            vec![],
            "200",
            Some(silence_body()),
        );
        o["requestBody"]["required"] = json!(true);
        o["responses"]["415"] = error_ref();
        o
    });
    add(
        "/alerts/{id}/ack",
        "post",
        action("acknowledge an alert", vec![path_param("id")], "200"),
    );
    let mut events_q: Vec<Value> = ["dag", "run", "job", "executor", "kind", "from", "to"]
        .iter()
        .map(|n| query(n, "filter (times: epoch ms or RFC 3339)"))
        .collect();
    events_q.push(param(
        "after",
        "query",
        "only events after this sequence number",
        json!({ "type": "integer" }),
    ));
    events_q.push(param(
        "before",
        "query",
        "only events before this sequence number",
        json!({ "type": "integer" }),
    ));
    events_q.push(limit());
    add("/events", "get", op("the audit log", events_q, "200", None));
    add(
        "/events/stream",
        "get",
        op(
            "server-sent `changed` events (text/event-stream)",
            vec![],
            "200",
            None,
        ),
    );
    add(
        "/stream",
        "get",
        op("the same stream as /events/stream", vec![], "200", None),
    );
    let test = "send a test notification to every channel; one {channel, ok, attempts, error} per channel; 409 without channels";
    add("/notifications/test", "post", action(test, vec![], "200"));
    add(
        "/openapi.json",
        "get",
        op("this document", vec![], "200", None),
    );
    json!({
        "openapi": "3.0.3",
        "info": { "title": "Nightshift console API", "version": env!("CARGO_PKG_VERSION") },
        "servers": [{ "url": "/api/v1" }],
        "security": [{ "bearer": [] }, { "session": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer" },
                "session": { "type": "apiKey", "in": "cookie", "name": crate::session::SESSION_COOKIE,
                    "description": "set by POST /login; mutating requests also need the X-Nightshift-CSRF header" }
            },
            "schemas": { "Error": { "type": "object", "required": ["error"], "properties": { "error": {
                "type": "object", "required": ["code", "message"], "properties": {
                    "code": { "type": "string", "enum": ["bad_request", "unauthorized", "forbidden", "not_found", "conflict",
                        "payload_too_large", "unsupported_media_type", "too_many_requests", "unavailable", "internal"] },
                    "message": { "type": "string" } } } } } }
        }
    })
}

/// `GET /api/v1/openapi.json`.
pub async fn openapi() -> Json<Value> {
    Json(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCES: &[&str] = &[
        include_str!("api/mod.rs"),
        include_str!("api/dags.rs"),
        include_str!("api/runs.rs"),
        include_str!("api/items.rs"),
        include_str!("api/logs.rs"),
        include_str!("api/executors.rs"),
        include_str!("api/alerts.rs"),
        include_str!("api/events.rs"),
        include_str!("api/actions.rs"),
        include_str!("api/commands.rs"),
        include_str!("api/notifications.rs"),
    ];

    /// `(path, method)` of every `.route("...", get(..).post(..))` call.
    fn routes() -> Vec<(String, &'static str)> {
        let mut out = Vec::new();
        for src in SOURCES {
            // rustfmt may break `.route(` and its path onto two lines.
            for call in src.split(".route(").skip(1) {
                let Some(call) = call.trim_start().strip_prefix('"') else {
                    continue;
                };
                let Some((path, rest)) = call.split_once('"') else {
                    continue;
                };
                // The handlers: the rest of the line, or the next line when
                // rustfmt put them there.
                let mut lines = rest.split(".route(").next().unwrap_or(rest).lines();
                let first = lines.next().unwrap_or("");
                let handlers = if first.trim() == "," {
                    format!(" {}", lines.next().unwrap_or("").trim())
                } else {
                    first.to_owned()
                };
                for method in ["get", "post", "put", "delete", "patch"] {
                    let called = handlers.contains(&format!(" {method}("))
                        || handlers.contains(&format!(".{method}("));
                    if called {
                        out.push((path.to_owned(), method));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn every_api_route_is_documented() {
        let doc = document();
        let found = routes();
        assert!(
            found.len() >= 25,
            "the route scan found too little: {found:?}"
        );
        for (path, method) in found {
            assert!(
                doc["paths"][&path][method].is_object(),
                "{method} {path} is missing from openapi.json"
            );
        }
    }

    #[test]
    fn every_documented_path_parameter_is_in_its_path() {
        let doc = document();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for op in ops.as_object().unwrap().values() {
                for p in op["parameters"].as_array().unwrap() {
                    if p["in"] == "path" {
                        let name = p["name"].as_str().unwrap();
                        assert!(path.contains(&format!("{{{name}}}")), "{path}: {name}");
                    }
                }
            }
        }
    }
}
