-- Nightshift's SQL store, SQLite flavour. Keep in step with
-- migrations/postgres/0001_initial.sql: same tables, columns and indexes;
-- only the types differ (INTEGER here, BIGINT/BIGSERIAL there). Instants are
-- epoch milliseconds; JSON is stored as TEXT.

CREATE TABLE dags (
    dag             TEXT    PRIMARY KEY,
    current_version INTEGER NOT NULL,
    paused          BOOLEAN NOT NULL DEFAULT FALSE,
    removed         BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at_ms   INTEGER NOT NULL
);

CREATE TABLE dag_versions (
    dag           TEXT    NOT NULL REFERENCES dags (dag),
    version       INTEGER NOT NULL,
    spec_json     TEXT    NOT NULL,
    source_toml   TEXT    NOT NULL,
    checksum      TEXT    NOT NULL,
    applied_at_ms INTEGER NOT NULL,
    applied_by    TEXT    NOT NULL,
    PRIMARY KEY (dag, version)
);

CREATE TABLE runs (
    run_id           TEXT    PRIMARY KEY,
    dag              TEXT    NOT NULL,
    dag_version      INTEGER NOT NULL,
    business_date    TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    trigger_source   TEXT    NOT NULL,
    params_json      TEXT    NOT NULL,
    scheduled_for_ms INTEGER,
    created_at_ms    INTEGER NOT NULL,
    started_at_ms    INTEGER,
    ended_at_ms      INTEGER,
    error            TEXT,
    FOREIGN KEY (dag, dag_version) REFERENCES dag_versions (dag, version)
);
CREATE INDEX runs_by_created ON runs (created_at_ms, run_id);
CREATE INDEX runs_by_dag_created ON runs (dag, created_at_ms, run_id);
CREATE INDEX runs_by_state ON runs (state);
CREATE INDEX runs_by_business_date ON runs (dag, business_date);
-- A schedule instant fires at most once, even across a leader failover.
CREATE UNIQUE INDEX runs_one_per_schedule_instant ON runs (dag, scheduled_for_ms)
    WHERE scheduled_for_ms IS NOT NULL AND trigger_source IN ('schedule', 'catch_up');

CREATE TABLE job_runs (
    run_id        TEXT    NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    job           TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    shards        INTEGER NOT NULL,
    succeeded     INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,
    skipped       INTEGER NOT NULL DEFAULT 0,
    cancelled     INTEGER NOT NULL DEFAULT 0,
    started_at_ms INTEGER,
    ended_at_ms   INTEGER,
    error         TEXT,
    PRIMARY KEY (run_id, job)
);

CREATE TABLE item_attempts (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id         TEXT    NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    job            TEXT    NOT NULL,
    item           INTEGER NOT NULL,
    attempt        INTEGER NOT NULL,
    executor       TEXT    NOT NULL,
    fencing_token  INTEGER NOT NULL,
    started_at_ms  INTEGER NOT NULL,
    ended_at_ms    INTEGER,
    outcome        TEXT,
    error          TEXT,
    moved_from     TEXT,
    UNIQUE (run_id, job, item, attempt)
);
CREATE INDEX item_attempts_unfinished_by_executor ON item_attempts (executor)
    WHERE ended_at_ms IS NULL;

CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms       INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    dag         TEXT,
    run_id      TEXT,
    job         TEXT,
    item        INTEGER,
    executor    TEXT,
    detail_json TEXT    NOT NULL
);
CREATE INDEX events_by_dag ON events (dag, seq);
CREATE INDEX events_by_run ON events (run_id, job, seq);
CREATE INDEX events_by_executor ON events (executor, seq);
CREATE INDEX events_by_kind ON events (kind, seq);
CREATE INDEX events_by_time ON events (at_ms);

CREATE TABLE alerts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    rule            TEXT    NOT NULL,
    dedupe_key      TEXT    NOT NULL,
    severity        TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    dag             TEXT,
    run_id          TEXT,
    job             TEXT,
    item            INTEGER,
    executor        TEXT,
    message         TEXT    NOT NULL,
    opened_at_ms    INTEGER NOT NULL,
    last_seen_at_ms INTEGER NOT NULL,
    acked_at_ms     INTEGER,
    acked_by        TEXT,
    resolved_at_ms  INTEGER,
    notified_at_ms  INTEGER
);
-- At most one active (open or acknowledged) alert per dedupe key.
CREATE UNIQUE INDEX alerts_one_active_per_key ON alerts (dedupe_key)
    WHERE state <> 'resolved';
CREATE INDEX alerts_by_state ON alerts (state, opened_at_ms);

CREATE TABLE alert_silences (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    rule       TEXT    NOT NULL,
    dag        TEXT,
    until_ms   INTEGER NOT NULL,
    created_by TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX alert_silences_by_rule ON alert_silences (rule, until_ms);
