-- The log tail of an item attempt, as its executor shipped it with the
-- attempt's result (at most 64 KiB plus a marker line). A table of its own,
-- not a column of item_attempts: listing attempts (grids, timelines) never
-- reads the logs, and an attempt the leader ends itself (lost, stopped) has
-- none. Written once, when the leader absorbs the result.
CREATE TABLE attempt_logs (
    run_id   TEXT    NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    job      TEXT    NOT NULL,
    item     INTEGER NOT NULL,
    attempt  INTEGER NOT NULL,
    log      TEXT    NOT NULL,
    PRIMARY KEY (run_id, job, item, attempt)
);
