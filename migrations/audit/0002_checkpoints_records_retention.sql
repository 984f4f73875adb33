-- Signed checkpoints, execution audit records, per-organization settings
-- and retention. Runs with search_path = audit as the migration owner; the
-- service's pool acts as role foundry_audit, which row-level security binds
-- and the grants below keep from changing or removing any record.

-- The audit service's Ed25519 keys, which sign checkpoints. The service
-- creates the first on its first start (see the audit crate's keys.rs);
-- checkpoints name the key that signed them. The private key sits in this
-- table so that a local run needs nothing else. In production a KMS (or an
-- HSM) would hold it and sign, and this table would keep only the public
-- half: whoever can read the private key can sign a rewritten chain.
CREATE TABLE signing_keys (
    kid         text PRIMARY KEY,
    private_key bytea NOT NULL,
    public_key  bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Signed statements of a chain's head (see the audit crate's
-- domain/checkpoint.rs for the canonical form the signature covers).
CREATE TABLE checkpoints (
    org_id            uuid NOT NULL,
    id                uuid NOT NULL,
    reason            text NOT NULL CHECK (reason IN ('on_demand', 'periodic', 'retention')),
    sequence          bigint NOT NULL CHECK (sequence >= 0),
    head_hash         bytea NOT NULL,
    event_count       bigint NOT NULL CHECK (event_count >= 0),
    first_occurred_at timestamptz,
    last_occurred_at  timestamptz,
    created_at        timestamptz NOT NULL,
    key_id            text NOT NULL REFERENCES signing_keys (kid),
    signature         bytea NOT NULL,
    PRIMARY KEY (org_id, id)
);
-- The newest checkpoint of a chain (the checkpointer's "has the head moved
-- since?" and the continuity check of the next checkpoint).
CREATE INDEX checkpoints_sequence_idx ON checkpoints (org_id, sequence);

-- Snapshots of agent executions, names embedded (delivery writes them when
-- an execution ends). Immutable.
CREATE TABLE execution_records (
    org_id            uuid NOT NULL,
    id                uuid NOT NULL,
    execution_id      uuid,
    program_id        uuid NOT NULL,
    task_id           uuid NOT NULL,
    task_title        text NOT NULL,
    skill_name        text NOT NULL,
    skill_version     text NOT NULL,
    user_id           uuid,
    user_display_name text NOT NULL,
    environment       jsonb NOT NULL DEFAULT '{}',
    model             text NOT NULL,
    outcome           text NOT NULL CHECK (outcome IN ('succeeded', 'failed', 'cancelled', 'timed_out')),
    started_at        timestamptz NOT NULL,
    ended_at          timestamptz NOT NULL,
    duration_us       bigint NOT NULL CHECK (duration_us >= 0),
    recorded_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    -- Idempotent by id, whatever the org.
    CONSTRAINT execution_records_id_key UNIQUE (id),
    CHECK (ended_at >= started_at)
);
-- ListExecutionAuditRecords by program, by task (and by both: the task's).
CREATE INDEX execution_records_program_idx ON execution_records (org_id, program_id, id);
CREATE INDEX execution_records_task_idx ON execution_records (org_id, task_id, id);

-- Per-organization settings; no row means the defaults (keep forever).
CREATE TABLE settings (
    org_id         uuid PRIMARY KEY,
    retention_days integer CHECK (retention_days BETWEEN 1 AND 36500),
    version        bigint NOT NULL DEFAULT 1,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Where retention cut each chain: the last removed event's position and
-- hash, to which the first retained event links. Written only by
-- remove_retained_prefix below, together with the removal.
CREATE TABLE retention_watermarks (
    org_id      uuid PRIMARY KEY,
    sequence    bigint NOT NULL CHECK (sequence > 0),
    hash        bytea NOT NULL,
    occurred_at timestamptz NOT NULL,
    removed     bigint NOT NULL CHECK (removed >= 0),
    applied_at  timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE checkpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE checkpoints FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON checkpoints
    USING (org_id = current_org() OR system_scope())
    WITH CHECK (org_id = current_org() OR system_scope());

ALTER TABLE execution_records ENABLE ROW LEVEL SECURITY;
ALTER TABLE execution_records FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON execution_records
    USING (org_id = current_org() OR system_scope())
    WITH CHECK (org_id = current_org() OR system_scope());

ALTER TABLE settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE settings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON settings
    USING (org_id = current_org() OR system_scope())
    WITH CHECK (org_id = current_org() OR system_scope());

ALTER TABLE retention_watermarks ENABLE ROW LEVEL SECURITY;
ALTER TABLE retention_watermarks FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON retention_watermarks
    USING (org_id = current_org() OR system_scope())
    WITH CHECK (org_id = current_org() OR system_scope());

-- Retention: removes events 1..p_through of the transaction's organization
-- and moves its watermark to event p_through, in one statement the caller
-- commits with the checkpoint it signed first. SECURITY DEFINER: it runs as
-- the migration owner, which may delete events; the service's role may not,
-- and through this function it can remove only what the organization's
-- retention allows: a whole prefix of the chain, every event of which
-- occurred before now() - retention_days, never the events of the last day.
-- (The owner is subject to the forced row-level security too unless it is a
-- superuser, hence the organization must be the transaction's.)
CREATE FUNCTION remove_retained_prefix(p_org uuid, p_through bigint) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = audit, pg_temp AS $$
DECLARE
    v_days    integer;
    v_head    bigint;
    v_from    bigint;
    v_hash    bytea;
    v_at      timestamptz;
    v_removed bigint;
BEGIN
    IF p_org IS DISTINCT FROM current_org() THEN
        RAISE EXCEPTION 'retention of % must run in that organization''s transaction', p_org
            USING ERRCODE = '42501';
    END IF;
    SELECT retention_days INTO v_days FROM settings WHERE org_id = p_org;
    IF v_days IS NULL THEN
        RAISE EXCEPTION 'organization % keeps its audit log forever', p_org
            USING ERRCODE = '55000';
    END IF;
    SELECT sequence INTO v_head FROM chain_heads WHERE org_id = p_org;
    IF v_head IS NULL OR p_through > v_head THEN
        RAISE EXCEPTION 'event % is past the head of organization %', p_through, p_org
            USING ERRCODE = '22023';
    END IF;
    SELECT sequence INTO v_from FROM retention_watermarks WHERE org_id = p_org;
    v_from := coalesce(v_from, 0);
    IF p_through <= v_from THEN
        RETURN 0;
    END IF;
    IF EXISTS (SELECT 1 FROM events
               WHERE org_id = p_org AND sequence <= p_through
                 AND occurred_at >= now() - make_interval(days => v_days)) THEN
        RAISE EXCEPTION 'events up to % of organization % are not all older than % days', p_through, p_org, v_days
            USING ERRCODE = '55000';
    END IF;
    SELECT hash, occurred_at INTO v_hash, v_at FROM events
        WHERE org_id = p_org AND sequence = p_through;
    IF v_hash IS NULL THEN
        RAISE EXCEPTION 'event % of organization % is missing', p_through, p_org
            USING ERRCODE = '55000';
    END IF;
    DELETE FROM events WHERE org_id = p_org AND sequence <= p_through;
    GET DIAGNOSTICS v_removed = ROW_COUNT;
    INSERT INTO retention_watermarks (org_id, sequence, hash, occurred_at, removed)
        VALUES (p_org, p_through, v_hash, v_at, v_removed)
        ON CONFLICT (org_id) DO UPDATE
        SET sequence = EXCLUDED.sequence, hash = EXCLUDED.hash,
            occurred_at = EXCLUDED.occurred_at,
            removed = retention_watermarks.removed + EXCLUDED.removed,
            applied_at = now();
    RETURN v_removed;
END $$;
REVOKE ALL ON FUNCTION remove_retained_prefix(uuid, bigint) FROM PUBLIC;

-- The service's role reads and inserts keys, checkpoints and records and
-- never changes or removes one; it keeps the settings; the watermarks it
-- only reads (the function above writes them).
GRANT SELECT, INSERT ON signing_keys, checkpoints, execution_records TO foundry_audit;
GRANT SELECT, INSERT, UPDATE ON settings TO foundry_audit;
GRANT SELECT ON retention_watermarks TO foundry_audit;
GRANT EXECUTE ON FUNCTION remove_retained_prefix(uuid, bigint) TO foundry_audit;
