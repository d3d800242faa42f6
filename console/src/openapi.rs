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
    param(name, "path", &format!("the {name}"), json!({ "type": "string" }))
}

fn query(name: &str, description: &str) -> Value {
    param(name, "query", description, json!({ "type": "string" }))
}

fn limit_offset() -> Vec<Value> {
    vec![
        param("limit", "query", "page size, 1 to 1000 (default 50)", json!({ "type": "integer" })),
        param("offset", "query", "rows to skip", json!({ "type": "integer" })),
    ]
}

fn error_ref() -> Value {
    json!({ "description": "error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

/// One operation: summary, parameters, success status, optional JSON body
/// schema; every operation can also answer 400/401/403/404/409/503.
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
        o["requestBody"] = json!({ "required": false, "content": { "application/json": { "schema": schema } } });
    }
    o
}

fn trigger_body() -> Value {
    json!({ "type": "object", "additionalProperties": false, "properties": {
        "business_date": { "type": "string", "format": "date" },
        "params": { "type": "object" },
        "rerun": { "type": "boolean" } } })
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
    add("/dags", "get", op("every DAG with schedule, next fire time, last and current run", vec![], "200", None));
    add("/dags/{dag}", "get", op("one DAG with jobs, applied TOML and versions", vec![dag()], "200", None));
    add("/dags/{dag}/runs", "get", op("runs of a DAG, newest first", [vec![dag()], limit_offset()].concat(), "200", None));
    add(
        "/dags/{dag}/runs",
        "post",
        op("trigger a run; answers {run_id, command_id, kind, issued_by}; 409 when the DAG is paused", vec![dag()], "202", Some(trigger_body())),
    );
    add("/dags/{dag}/trigger", "post", op("trigger a run (answers the command only)", vec![dag()], "202", Some(trigger_body())));
    add("/dags/{dag}/pause", "post", op("pause scheduled runs", vec![dag()], "202", None));
    add("/dags/{dag}/resume", "post", op("resume scheduled runs", vec![dag()], "202", None));
    let mut runs_q = vec![query("dag", "only this DAG"), query("state", "states, comma-separated")];
    runs_q.extend(limit_offset());
    add("/runs", "get", op("runs, newest first", runs_q, "200", None));
    add("/runs/{run}", "get", op("a run with per-job counts, throughput and ETA", vec![run()], "200", None));
    add("/runs/{run}/items", "get", op("items of a job: job, item, state, executor, attempts", vec![run(), query("job", "the job (required)")], "200", None));
    add("/runs/{run}/jobs/{job}/items", "get", op("items of a job", vec![run(), job()], "200", None));
    add("/runs/{run}/cancel", "post", op("cancel a run", vec![run()], "202", None));
    add(
        "/runs/{run}/retry",
        "post",
        op("retry failed items", vec![run()], "202", Some(json!({ "type": "object", "properties": { "job": { "type": "string" } } }))),
    );
    add("/runs/{run}/jobs/{job}/skip", "post", op("skip a job", vec![run(), job()], "202", None));
    add(
        "/runs/{run}/jobs/{job}/items/{item}/mark-succeeded",
        "post",
        op("record an item as succeeded", vec![run(), job(), path_param("item")], "202", None),
    );
    add("/executors", "get", op("live executors", vec![], "200", None));
    add(
        "/alerts",
        "get",
        op("alerts", vec![query("state", "open, acknowledged, resolved (comma-separated)"), query("dag", "only this DAG"), query("limit", "page size")], "200", None),
    );
    add("/alerts/silences", "get", op("silences in force", vec![], "200", None));
    add(
        "/alerts/silence",
        "post",
        op("silence a rule for some minutes", vec![], "200", Some(json!({ "type": "object", "required": ["rule", "minutes"], "properties": {
            "rule": { "type": "string" }, "dag": { "type": "string" }, "minutes": { "type": "integer", "minimum": 1 } } }))),
    );
    add("/alerts/{id}/ack", "post", op("acknowledge an alert", vec![path_param("id")], "200", None));
    let mut events_q: Vec<Value> = ["dag", "run", "job", "executor", "kind", "from", "to"]
        .iter()
        .map(|n| query(n, "filter (times: epoch ms or RFC 3339)"))
        .collect();
    events_q.push(param("after", "query", "only events after this sequence number", json!({ "type": "integer" })));
    events_q.push(param("before", "query", "only events before this sequence number", json!({ "type": "integer" })));
    events_q.push(param("limit", "query", "page size", json!({ "type": "integer" })));
    add("/events", "get", op("the audit log", events_q, "200", None));
    add("/events/stream", "get", op("server-sent `changed` events (text/event-stream)", vec![], "200", None));
    add("/stream", "get", op("the same stream as /events/stream", vec![], "200", None));
    add("/notifications/test", "post", op("send a test notification to every channel; one {channel, ok, attempts, error} per channel; 409 without channels", vec![], "200", None));
    add("/openapi.json", "get", op("this document", vec![], "200", None));
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
                        "payload_too_large", "unsupported_media_type", "unavailable", "internal"] },
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
        include_str!("api/executors.rs"),
        include_str!("api/alerts.rs"),
        include_str!("api/events.rs"),
        include_str!("api/actions.rs"),
        include_str!("api/notifications.rs"),
    ];

    /// `(path, method)` of every `.route("...", get(..).post(..))` call.
    fn routes() -> Vec<(String, &'static str)> {
        let mut out = Vec::new();
        for src in SOURCES {
            for call in src.split(".route(\"").skip(1) {
                let Some((path, rest)) = call.split_once('"') else { continue };
                // The handlers: up to the end of this `.route(...)` call.
                let handlers = rest.split(".route(").next().unwrap_or(rest).lines().next().unwrap_or("");
                for method in ["get", "post", "put", "delete", "patch"] {
                    let called = handlers.contains(&format!(" {method}(")) || handlers.contains(&format!(".{method}("));
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
        assert!(found.len() >= 25, "the route scan found too little: {found:?}");
        for (path, method) in found {
            assert!(doc["paths"][&path][method].is_object(), "{method} {path} is missing from openapi.json");
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
