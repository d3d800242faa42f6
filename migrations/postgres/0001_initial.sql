-- Nightshift's SQL store, PostgreSQL flavour. Keep in step with
-- migrations/sqlite/0001_initial.sql: same tables, columns and indexes;
-- only the types differ (BIGINT/BIGSERIAL here, INTEGER there). Instants are
-- epoch milliseconds; JSON is stored as TEXT.

CREATE TABLE dags (
    dag             TEXT    PRIMARY KEY,
    current_version BIGINT  NOT NULL,
    paused          BOOLEAN NOT NULL DEFAULT FALSE,
    removed         BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at_ms   BIGINT  NOT NULL
);

CREATE TABLE dag_versions (
    dag           TEXT    NOT NULL REFERENCES dags (dag),
    version       BIGINT  NOT NULL,
    spec_json     TEXT    NOT NULL,
    source_toml   TEXT    NOT NULL,
    checksum      TEXT    NOT NULL,
    applied_at_ms BIGINT  NOT NULL,
    applied_by    TEXT    NOT NULL,
    PRIMARY KEY (dag, version)
);

CREATE TABLE runs (
    run_id           TEXT    PRIMARY KEY,
    dag              TEXT    NOT NULL,
    dag_version      BIGINT  NOT NULL,
    business_date    TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    trigger_source   TEXT    NOT NULL,
    params_json      TEXT    NOT NULL,
    scheduled_for_ms BIGINT,
    created_at_ms    BIGINT  NOT NULL,
    started_at_ms    BIGINT,
    ended_at_ms      BIGINT,
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
    shards        BIGINT  NOT NULL,
    succeeded     BIGINT  NOT NULL DEFAULT 0,
    failed        BIGINT  NOT NULL DEFAULT 0,
    skipped       BIGINT  NOT NULL DEFAULT 0,
    cancelled     BIGINT  NOT NULL DEFAULT 0,
    started_at_ms BIGINT,
    ended_at_ms   BIGINT,
    error         TEXT,
    PRIMARY KEY (run_id, job)
);

CREATE TABLE item_attempts (
    id             BIGSERIAL PRIMARY KEY,
    run_id         TEXT    NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    job            TEXT    NOT NULL,
    item           BIGINT  NOT NULL,
    attempt        BIGINT  NOT NULL,
    executor       TEXT    NOT NULL,
    fencing_token  BIGINT  NOT NULL,
    started_at_ms  BIGINT  NOT NULL,
    ended_at_ms    BIGINT,
    outcome        TEXT,
    error          TEXT,
    moved_from     TEXT,
    UNIQUE (run_id, job, item, attempt)
);
CREATE INDEX item_attempts_unfinished_by_executor ON item_attempts (executor)
    WHERE ended_at_ms IS NULL;

CREATE TABLE events (
    seq         BIGSERIAL PRIMARY KEY,
    at_ms       BIGINT  NOT NULL,
    kind        TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    dag         TEXT,
    run_id      TEXT,
    job         TEXT,
    item        BIGINT,
    executor    TEXT,
    detail_json TEXT    NOT NULL
);
CREATE INDEX events_by_dag ON events (dag, seq);
CREATE INDEX events_by_run ON events (run_id, job, seq);
CREATE INDEX events_by_executor ON events (executor, seq);
CREATE INDEX events_by_kind ON events (kind, seq);
CREATE INDEX events_by_time ON events (at_ms);

CREATE TABLE alerts (
    id              BIGSERIAL PRIMARY KEY,
    rule            TEXT    NOT NULL,
    dedupe_key      TEXT    NOT NULL,
    severity        TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    dag             TEXT,
    run_id          TEXT,
    job             TEXT,
    item            BIGINT,
    executor        TEXT,
    message         TEXT    NOT NULL,
    opened_at_ms    BIGINT  NOT NULL,
    last_seen_at_ms BIGINT  NOT NULL,
    acked_at_ms     BIGINT,
    acked_by        TEXT,
    resolved_at_ms  BIGINT,
    notified_at_ms  BIGINT 
);
-- At most one active (open or acknowledged) alert per dedupe key.
CREATE UNIQUE INDEX alerts_one_active_per_key ON alerts (dedupe_key)
    WHERE state <> 'resolved';
CREATE INDEX alerts_by_state ON alerts (state, opened_at_ms);

CREATE TABLE alert_silences (
    id         BIGSERIAL PRIMARY KEY,
    rule       TEXT    NOT NULL,
    dag        TEXT,
    until_ms   BIGINT  NOT NULL,
    created_by TEXT    NOT NULL,
    created_at_ms BIGINT  NOT NULL
);
CREATE INDEX alert_silences_by_rule ON alert_silences (rule, until_ms);
