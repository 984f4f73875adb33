-- Refresh tokens rotate (issue 13, finding 7). A session is one sign-in;
-- `sessions.token_hash` is its current refresh token, replaced by every
-- refresh. The tokens it replaced are kept here, by hash, until the session
-- expires: one presented again is a reuse (a copy in someone else's hands),
-- and revokes the session, so every token descended from that sign-in.
CREATE TABLE spent_refresh_tokens (
    token_hash bytea PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES sessions (id),
    spent_at   timestamptz NOT NULL DEFAULT now(),
    -- The session's: the sweep deletes the row once the session is over.
    expires_at timestamptz NOT NULL
);
CREATE INDEX spent_refresh_tokens_expires_idx ON spent_refresh_tokens (expires_at);

-- Read and written only while exchanging a credential or sweeping, under
-- system scope: no tenant or user ever sees a row.
ALTER TABLE spent_refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE spent_refresh_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY system_only ON spent_refresh_tokens
    USING (system_scope())
    WITH CHECK (system_scope());

GRANT SELECT, INSERT, DELETE ON spent_refresh_tokens TO foundry_identity;
