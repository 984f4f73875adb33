-- Idempotency keys (AIP-155) get what every tenant table has: row-level
-- security, forced. A key belongs to the organization it was used in.
-- `request_hash` (SHA-256 of the request) lets a reuse of the key with
-- another body be refused instead of answered with the first response;
-- rows from before it have none and are replayed as before. The sweep
-- deletes keys past their retention by `created_at`.
ALTER TABLE request_ids ADD COLUMN request_hash bytea;
CREATE INDEX request_ids_created_idx ON request_ids (created_at);
ALTER TABLE request_ids ENABLE ROW LEVEL SECURITY;
ALTER TABLE request_ids FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON request_ids
    USING (scope_id = current_org() OR system_scope())
    WITH CHECK (scope_id = current_org() OR system_scope());
