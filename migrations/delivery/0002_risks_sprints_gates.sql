-- Delivery, second slice: risks, sprints, sprint gates and their immutable
-- evaluations. Same rules as 0001: keyed (org_id, id), every foreign key
-- carries org_id (and program_id where the parent is in a program), every
-- list is an index prefix then the keyset column, row-level security forced.

CREATE TABLE risks (
    org_id        uuid NOT NULL,
    id            uuid NOT NULL,
    program_id    uuid NOT NULL,
    title         text NOT NULL,
    description   text NOT NULL DEFAULT '',
    likelihood    smallint NOT NULL CHECK (likelihood BETWEEN 1 AND 5),
    impact        smallint NOT NULL CHECK (impact BETWEEN 1 AND 5),
    -- Derived by the service (domain::severity); stored so it can be
    -- filtered on an index, and checked here against the same rule.
    severity      text NOT NULL CONSTRAINT risks_severity_derived CHECK (severity = CASE
                      WHEN likelihood * impact >= 16 THEN 'critical'
                      WHEN likelihood * impact >= 10 THEN 'high'
                      WHEN likelihood * impact >= 5 THEN 'medium'
                      ELSE 'low' END),
    mitigation    text NOT NULL DEFAULT '',
    owner_user_id uuid,
    status        text NOT NULL CHECK (status IN ('open', 'mitigating', 'accepted', 'closed')),
    created_by    uuid NOT NULL,
    version       bigint NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    CONSTRAINT risks_program_fkey FOREIGN KEY (org_id, program_id)
        REFERENCES programs (org_id, id) ON DELETE CASCADE,
    -- ListRisks unfiltered (newest first) and cascades by program.
    CONSTRAINT risks_program_id_key UNIQUE (org_id, program_id, id)
);
-- ListRisks by severity (and status, checked on the rows found); by status.
CREATE INDEX risks_severity_idx ON risks (org_id, program_id, severity, id);
CREATE INDEX risks_status_idx ON risks (org_id, program_id, status, id);

CREATE TABLE sprints (
    org_id        uuid NOT NULL,
    id            uuid NOT NULL,
    program_id    uuid NOT NULL,
    name          text NOT NULL,
    goal          text NOT NULL DEFAULT '',
    start_at      timestamptz NOT NULL,
    end_at        timestamptz NOT NULL,
    capacity      double precision NOT NULL DEFAULT 0 CHECK (capacity >= 0),
    capacity_unit text NOT NULL DEFAULT 'hours' CHECK (capacity_unit IN ('hours', 'points')),
    status        text NOT NULL DEFAULT 'planned'
                  CHECK (status IN ('planned', 'active', 'completed')),
    created_by    uuid NOT NULL,
    version       bigint NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    CHECK (start_at < end_at),
    CONSTRAINT sprints_program_fkey FOREIGN KEY (org_id, program_id)
        REFERENCES programs (org_id, id) ON DELETE CASCADE,
    -- ListSprints unfiltered (newest first), cascades by program and the
    -- target of tasks' and gates' same-program keys.
    CONSTRAINT sprints_program_id_key UNIQUE (org_id, program_id, id)
);
CREATE INDEX sprints_status_idx ON sprints (org_id, program_id, status, id);
-- At most one ACTIVE sprint per program (StartSprint checks first and maps
-- a race that reaches this to FAILED_PRECONDITION).
CREATE UNIQUE INDEX sprints_one_active_key ON sprints (org_id, program_id)
    WHERE status = 'active';

-- tasks.sprint_id was an unchecked UUID in 0001: with no sprints table,
-- every value set so far points nowhere. Clear them (every org: system
-- scope, for a non-superuser owner under forced RLS), then key the column.
SELECT set_config('app.system', 'on', true);
UPDATE tasks SET sprint_id = NULL WHERE sprint_id IS NOT NULL;
SELECT set_config('app.system', '', true);
ALTER TABLE tasks ADD CONSTRAINT tasks_sprint_fkey
    FOREIGN KEY (org_id, program_id, sprint_id)
    REFERENCES sprints (org_id, program_id, id) ON DELETE SET NULL (sprint_id);

CREATE TABLE sprint_gates (
    org_id      uuid NOT NULL,
    id          uuid NOT NULL,
    program_id  uuid NOT NULL,
    sprint_id   uuid NOT NULL,
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    -- [{"id", "description", "required"}], in order.
    criteria    jsonb NOT NULL CHECK (jsonb_typeof(criteria) = 'array'),
    created_by  uuid NOT NULL,
    version     bigint NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    CONSTRAINT sprint_gates_sprint_fkey FOREIGN KEY (org_id, program_id, sprint_id)
        REFERENCES sprints (org_id, program_id, id) ON DELETE CASCADE,
    -- ListSprintGates (newest first) and cascades by sprint.
    CONSTRAINT sprint_gates_sprint_id_key UNIQUE (org_id, sprint_id, id)
);
-- Cascades by program.
CREATE INDEX sprint_gates_program_idx ON sprint_gates (org_id, program_id, sprint_id);

-- Immutable: the service role may read and insert, never update or delete.
-- They go only with their gate (ON DELETE CASCADE runs as the table owner,
-- which the role's grants do not limit).
CREATE TABLE sprint_gate_evaluations (
    org_id         uuid NOT NULL,
    id             uuid NOT NULL,
    gate_id        uuid NOT NULL,
    sprint_id      uuid NOT NULL,
    program_id     uuid NOT NULL,
    evaluator_id   uuid NOT NULL,
    evaluator_type text NOT NULL
                   CHECK (evaluator_type IN ('user', 'agent', 'api_key', 'service')),
    -- [{"criterion_id", "passed", "evidence", "description", "required"}].
    results        jsonb NOT NULL CHECK (jsonb_typeof(results) = 'array'),
    passed         boolean NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    CONSTRAINT sprint_gate_evaluations_gate_fkey FOREIGN KEY (org_id, gate_id)
        REFERENCES sprint_gates (org_id, id) ON DELETE CASCADE
);
-- ListSprintGateEvaluations (newest first) and the cascade from the gate.
CREATE INDEX sprint_gate_evaluations_gate_idx ON sprint_gate_evaluations (org_id, gate_id, id);
-- Counting a program's evaluations for its delete event.
CREATE INDEX sprint_gate_evaluations_program_idx ON sprint_gate_evaluations (org_id, program_id);

ALTER TABLE risks ENABLE ROW LEVEL SECURITY;
ALTER TABLE risks FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON risks
    USING (org_id = current_org() OR system_scope())
    WITH CHECK (org_id = current_org() OR system_scope());

ALTER TABLE sprints ENABLE ROW LEVEL SECURITY;
ALTER TABLE sprints FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON sprints
    USING (org_id = current_org() OR system_scope())
    WITH CHECK (org_id = current_org() OR system_scope());

ALTER TABLE sprint_gates ENABLE ROW LEVEL SECURITY;
ALTER TABLE sprint_gates FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON sprint_gates
    USING (org_id = current_org() OR system_scope())
    WITH CHECK (org_id = current_org() OR system_scope());

ALTER TABLE sprint_gate_evaluations ENABLE ROW LEVEL SECURITY;
ALTER TABLE sprint_gate_evaluations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON sprint_gate_evaluations
    USING (org_id = current_org() OR system_scope())
    WITH CHECK (org_id = current_org() OR system_scope());

GRANT SELECT, INSERT, UPDATE, DELETE ON risks, sprints, sprint_gates TO foundry_delivery;
GRANT SELECT, INSERT ON sprint_gate_evaluations TO foundry_delivery;
