-- Idempotency across runs and item checkpoints (PostgreSQL flavour; keep in
-- step with migrations/sqlite/0002_checkpoints.sql).

-- The redo generation of a run: 0, or n for the n-th `trigger --redo` of
-- its (DAG, business date). It enters every item's work key, so a redo is
-- the one way to make a handler apply the same work's effects again; a
-- retry of a redo run keeps it.
ALTER TABLE runs ADD COLUMN redo BIGINT NOT NULL DEFAULT 0;

-- The last checkpoint of each item of a finished run, copied from etcd
-- when the run ends. `work_key` names the work across runs; `resumable`
-- is false when the item succeeded in that run (its checkpoint is history
-- only), so the next run of the same work is seeded only from work that
-- was not done.
CREATE TABLE item_checkpoints (
    run_id        TEXT    NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    job           TEXT    NOT NULL,
    item          BIGINT  NOT NULL,
    dag           TEXT    NOT NULL,
    business_date TEXT    NOT NULL,
    work_key      TEXT    NOT NULL,
    attempt       BIGINT  NOT NULL,
    executor      TEXT    NOT NULL,
    fencing_token BIGINT  NOT NULL,
    saved_at_ms   BIGINT  NOT NULL,
    value_json    TEXT    NOT NULL,
    resumable     BOOLEAN NOT NULL,
    PRIMARY KEY (run_id, job, item)
);
CREATE INDEX item_checkpoints_by_work ON item_checkpoints (dag, business_date, job);
