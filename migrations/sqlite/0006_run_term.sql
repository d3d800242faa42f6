-- Issue 13: run and job rows carry the term of the leader that last wrote
-- them (the create revision of its etcd election key), like item attempts
-- (0005). A write from an earlier term is refused, so a deposed leader
-- that finishes its pass late never overwrites what its successor stored.
-- 0 = written before terms (or outside a leader).
ALTER TABLE runs ADD COLUMN term BIGINT NOT NULL DEFAULT 0;
ALTER TABLE job_runs ADD COLUMN term BIGINT NOT NULL DEFAULT 0;
