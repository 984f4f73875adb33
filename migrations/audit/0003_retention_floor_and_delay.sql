-- Issue 13, finding 3: a shorter retention waits before it takes effect
-- (the operator's delay), so that it can be reverted and is seen in the
-- log before any event goes. The waiting value and when it takes effect
-- are kept beside the retention in force; both or neither.
ALTER TABLE settings
    ADD COLUMN pending_retention_days integer
        CHECK (pending_retention_days BETWEEN 1 AND 36500),
    ADD COLUMN pending_effective_at timestamptz,
    ADD CONSTRAINT settings_pending_whole
        CHECK ((pending_retention_days IS NULL) = (pending_effective_at IS NULL));
-- The maintenance round's search for reductions that are due.
CREATE INDEX settings_pending_idx ON settings (pending_effective_at)
    WHERE pending_effective_at IS NOT NULL;
