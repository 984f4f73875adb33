-- Identity & tenancy. Runs with search_path = identity; the service's pool
-- acts as role foundry_identity (no superuser, no BYPASSRLS), so the
-- row-level security below binds it.

-- Tenant predicate helpers: the transaction's org (SET LOCAL app.org_id),
-- user (app.user_id) and the explicit cross-tenant escape (app.system).
CREATE FUNCTION current_org() RETURNS uuid LANGUAGE sql STABLE AS
$$ SELECT NULLIF(current_setting('app.org_id', true), '')::uuid $$;
CREATE FUNCTION current_app_user() RETURNS uuid LANGUAGE sql STABLE AS
$$ SELECT NULLIF(current_setting('app.user_id', true), '')::uuid $$;
CREATE FUNCTION system_scope() RETURNS boolean LANGUAGE sql STABLE AS
$$ SELECT coalesce(current_setting('app.system', true), '') = 'on' $$;

CREATE TABLE users (
    id           uuid PRIMARY KEY,
    email        text NOT NULL,
    display_name text NOT NULL,
    avatar_url   text NOT NULL DEFAULT '',
    version      bigint NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE linked_accounts (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id),
    provider      text NOT NULL,
    issuer        text NOT NULL,
    subject       text NOT NULL,
    email         text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_login_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT linked_accounts_issuer_subject_key UNIQUE (issuer, subject)
);
CREATE INDEX linked_accounts_user_idx ON linked_accounts (user_id, id);

-- Tenants. org_id = id, so the tenant key is uniform with every other table.
CREATE TABLE organizations (
    id         uuid PRIMARY KEY,
    org_id     uuid GENERATED ALWAYS AS (id) STORED,
    name       text NOT NULL,
    slug       text NOT NULL,
    settings   jsonb NOT NULL DEFAULT '{}',
    version    bigint NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);
CREATE UNIQUE INDEX organizations_slug_key ON organizations (slug);

CREATE TABLE memberships (
    org_id     uuid NOT NULL REFERENCES organizations (id),
    id         uuid NOT NULL,
    user_id    uuid NOT NULL REFERENCES users (id),
    role       text NOT NULL CHECK (role IN ('owner', 'admin', 'editor', 'viewer', 'billing')),
    invited_by uuid,
    version    bigint NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    CONSTRAINT memberships_org_user_key UNIQUE (org_id, user_id)
);
CREATE INDEX memberships_user_idx ON memberships (user_id, org_id);
CREATE INDEX memberships_role_idx ON memberships (org_id, role, id);

CREATE TABLE invitations (
    org_id      uuid NOT NULL REFERENCES organizations (id),
    id          uuid NOT NULL,
    email       text NOT NULL,
    role        text NOT NULL CHECK (role IN ('owner', 'admin', 'editor', 'viewer', 'billing')),
    token_hash  bytea NOT NULL,
    invited_by  uuid NOT NULL,
    state       text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'accepted', 'revoked')),
    expires_at  timestamptz NOT NULL,
    accepted_at timestamptz,
    version     bigint NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id)
);
CREATE UNIQUE INDEX invitations_token_hash_key ON invitations (token_hash);
CREATE INDEX invitations_state_idx ON invitations (org_id, state, id);

CREATE TABLE sessions (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id),
    token_hash   bytea NOT NULL,
    user_agent   text NOT NULL DEFAULT '',
    client_ip    text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);
CREATE UNIQUE INDEX sessions_token_hash_key ON sessions (token_hash);
CREATE INDEX sessions_user_idx ON sessions (user_id, id);

-- API keys and agent tokens: SHA-256 of the secret, never the secret.
CREATE TABLE api_keys (
    org_id       uuid NOT NULL REFERENCES organizations (id),
    id           uuid NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('api_key', 'agent')),
    display_name text NOT NULL,
    scopes       text[] NOT NULL,
    project_id   uuid,
    prefix       text NOT NULL,
    secret_hash  bytea NOT NULL,
    created_by   uuid NOT NULL,
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz,
    version      bigint NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id)
);
CREATE UNIQUE INDEX api_keys_secret_hash_key ON api_keys (secret_hash);
CREATE INDEX api_keys_kind_idx ON api_keys (org_id, kind, id);

CREATE TABLE service_accounts (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    key_hash    bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    disabled_at timestamptz,
    CONSTRAINT service_accounts_name_key UNIQUE (name)
);
CREATE UNIQUE INDEX service_accounts_key_hash_key ON service_accounts (key_hash);

-- Token signing keys. A key is published from created_at, signs from
-- activates_at, and is withdrawn at retires_at (after its tokens expired).
CREATE TABLE signing_keys (
    kid          text PRIMARY KEY,
    private_key  bytea NOT NULL,
    public_key   bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    activates_at timestamptz NOT NULL,
    retires_at   timestamptz
);

-- AIP-155 idempotency: one row per (scope, method, request_id).
CREATE TABLE request_ids (
    scope_id   uuid NOT NULL,
    method     text NOT NULL,
    request_id uuid NOT NULL,
    response   bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope_id, method, request_id)
);

-- Row-level security, forced, on every tenant table.
ALTER TABLE organizations ENABLE ROW LEVEL SECURITY;
ALTER TABLE organizations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON organizations
    USING (org_id = current_org() OR system_scope()
           OR EXISTS (SELECT 1 FROM memberships m
                      WHERE m.org_id = organizations.id AND m.user_id = current_app_user()))
    WITH CHECK (org_id = current_org() OR system_scope() OR current_app_user() IS NOT NULL);

ALTER TABLE memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE memberships FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON memberships
    USING (org_id = current_org() OR system_scope() OR user_id = current_app_user())
    WITH CHECK (org_id = current_org() OR system_scope() OR user_id = current_app_user());

ALTER TABLE invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE invitations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON invitations
    USING (org_id = current_org() OR system_scope())
    WITH CHECK (org_id = current_org() OR system_scope());

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON api_keys
    USING (org_id = current_org() OR system_scope())
    WITH CHECK (org_id = current_org() OR system_scope());

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA identity TO foundry_identity;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA identity TO foundry_identity;
