-- A retry run records the run it retries (issue 14): the origin finds its
-- retries through the index, so each run page links both ways.
ALTER TABLE runs ADD COLUMN retry_of TEXT REFERENCES runs (run_id);
CREATE INDEX runs_retry_of ON runs (retry_of) WHERE retry_of IS NOT NULL;
