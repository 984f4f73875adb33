-- Audit log. Runs with search_path = audit; the service's pool acts as role
-- foundry_audit (no superuser, no BYPASSRLS), so the row-level security
-- below binds it, and the grants at the end make the log append only for it.

-- Tenant predicate helpers: the transaction's org (SET LOCAL app.org_id) and
-- the explicit cross-tenant escape (app.system), as in every schema.
CREATE FUNCTION current_org() RETURNS uuid LANGUAGE sql STABLE AS
$$ SELECT NULLIF(current_setting('app.org_id', true), '')::uuid $$;
CREATE FUNCTION system_scope() RETURNS boolean LANGUAGE sql STABLE AS
$$ SELECT coalesce(current_setting('app.system', true), '') = 'on' $$;

-- One row per event, chained per organization: `prev_hash` is the `hash` of
-- the event at `sequence - 1` (32 zero bytes for the first), and `hash` is
-- SHA-256 of the event's canonical form (see the audit crate's domain.rs).
CREATE TABLE events (
    org_id        uuid NOT NULL,
    sequence      bigint NOT NULL CHECK (sequence > 0),
    id            uuid NOT NULL,
    occurred_at   timestamptz NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    service       text NOT NULL,
    actor_type    text NOT NULL,
    actor_id      uuid,
    action        text NOT NULL,
    resource_type text NOT NULL,
    resource_id   text NOT NULL,
    project_id    uuid,
    changes       jsonb NOT NULL DEFAULT '{}',
    request_id    text NOT NULL,
    trace_id      text NOT NULL,
    client_ip     text NOT NULL,
    user_agent    text NOT NULL,
    prev_hash     bytea NOT NULL,
    hash          bytea NOT NULL,
    PRIMARY KEY (org_id, sequence),
    -- Delivery is at least once: an id is appended once, whatever the org.
    CONSTRAINT events_id_key UNIQUE (id)
);

-- Every ListAuditEvents filter is an index prefix, then the keyset (ids are
-- UUID v7, so id order is time order and a time range is an id range).
CREATE INDEX events_org_id_idx ON events (org_id, id);
CREATE INDEX events_actor_idx ON events (org_id, actor_id, id);
CREATE INDEX events_action_idx ON events (org_id, action, id);
CREATE INDEX events_resource_idx ON events (org_id, resource_type, resource_id, id);
CREATE INDEX events_project_idx ON events (org_id, project_id, id);

-- The newest event of each organization's chain, locked by every append
-- (which serializes appends per organization) and compared by verification
-- with the last event (which detects removal of the newest events).
CREATE TABLE chain_heads (
    org_id     uuid PRIMARY KEY,
    sequence   bigint NOT NULL CHECK (sequence >= 0),
    hash       bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Row-level security, forced, on both tables.
ALTER TABLE events ENABLE ROW LEVEL SECURITY;
ALTER TABLE events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON events
    USING (org_id = current_org() OR system_scope())
    WITH CHECK (org_id = current_org() OR system_scope());

ALTER TABLE chain_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE chain_heads FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON chain_heads
    USING (org_id = current_org() OR system_scope())
    WITH CHECK (org_id = current_org() OR system_scope());

-- Append only: the service's role reads and inserts events and can neither
-- change nor remove one (no UPDATE, DELETE or TRUNCATE). Only the head moves.
GRANT SELECT, INSERT ON events TO foundry_audit;
GRANT SELECT, INSERT, UPDATE ON chain_heads TO foundry_audit;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA audit TO foundry_audit;
