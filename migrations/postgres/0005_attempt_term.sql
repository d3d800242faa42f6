-- Issue 13: SQL history writes carry the leader's term (the create
-- revision of its etcd election key). An ended attempt is overwritten only
-- by a write of a later term, so a deposed leader's late `lost` row never
-- hides the outcome its successor recorded, and its successor's record
-- replaces a stale row the deposed leader wrote first. 0 = written before
-- terms (or outside a leader).
ALTER TABLE item_attempts ADD COLUMN term BIGINT NOT NULL DEFAULT 0;
