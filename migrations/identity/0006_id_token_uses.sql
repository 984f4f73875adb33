-- An external ID token signs in once (issue 13, finding 6). Each accepted
-- token's id at its issuer (its `jti`, or the digest of the token when it
-- has none) is kept until the token could no longer be accepted anyway
-- (its exp, or its iat + the issuer's max_age, whichever is sooner); a
-- token whose id is here is a replay. Swept past `expires_at`.
CREATE TABLE used_id_tokens (
    issuer     text NOT NULL,
    token_id   text NOT NULL,
    used_at    timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (issuer, token_id)
);
CREATE INDEX used_id_tokens_expires_idx ON used_id_tokens (expires_at);

-- Read and written only while exchanging or linking a credential, and by
-- the sweep, under system scope: no tenant or user ever sees a row.
ALTER TABLE used_id_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE used_id_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY system_only ON used_id_tokens
    USING (system_scope())
    WITH CHECK (system_scope());

GRANT SELECT, INSERT, DELETE ON used_id_tokens TO foundry_identity;
