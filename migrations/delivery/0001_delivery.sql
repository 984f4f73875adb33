-- Delivery: programs, workstreams, requirements and their dependency graph,
-- tasks and subtasks. Runs with search_path = delivery; the service's pool
-- acts as role foundry_delivery (no superuser, no BYPASSRLS), so the
-- row-level security below binds it.
--
-- Every table is keyed (org_id, id) and every foreign key carries org_id,
-- so a row can never point at another tenant's row. Children also carry
-- their program_id, and reference their parent through (org_id, program_id,
-- parent_id): a requirement's workstream, a dependency's two ends and a
-- task's requirement are always in the same program. Deletes remove the
-- children explicitly (counting them for the audit event); the cascading
-- keys are the safety net for a child inserted concurrently. Every list is an
-- index prefix then the keyset column (id, UUIDv7: creation order; or
-- position, id for ordered children).

-- Tenant predicate helpers, as in every schema.
CREATE FUNCTION current_org() RETURNS uuid LANGUAGE sql STABLE AS
$$ SELECT NULLIF(current_setting('app.org_id', true), '')::uuid $$;
CREATE FUNCTION system_scope() RETURNS boolean LANGUAGE sql STABLE AS
$$ SELECT coalesce(current_setting('app.system', true), '') = 'on' $$;

CREATE TABLE programs (
    org_id          uuid NOT NULL,
    id              uuid NOT NULL,
    name            text NOT NULL,
    slug            text NOT NULL,
    description     text NOT NULL DEFAULT '',
    source_platform text NOT NULL DEFAULT '',
    target_platform text NOT NULL DEFAULT '',
    phase           text NOT NULL DEFAULT 'discovery'
                    CHECK (phase IN ('discovery', 'build', 'test', 'deploy', 'complete')),
    archived_at     timestamptz,
    archived        boolean GENERATED ALWAYS AS (archived_at IS NOT NULL) STORED,
    created_by      uuid NOT NULL,
    version         bigint NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    CONSTRAINT programs_slug_key UNIQUE (org_id, slug)
);
-- ListPrograms: unfiltered on the primary key; by phase; by archived.
CREATE INDEX programs_phase_idx ON programs (org_id, phase, id);
CREATE INDEX programs_archived_idx ON programs (org_id, archived, id);

CREATE TABLE workstreams (
    org_id      uuid NOT NULL,
    id          uuid NOT NULL,
    program_id  uuid NOT NULL,
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    position    integer NOT NULL CHECK (position > 0),
    created_by  uuid NOT NULL,
    version     bigint NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    CONSTRAINT workstreams_program_fkey FOREIGN KEY (org_id, program_id)
        REFERENCES programs (org_id, id) ON DELETE CASCADE,
    -- The target of children's (org_id, program_id, workstream_id) keys;
    -- also serves cascades by program.
    CONSTRAINT workstreams_program_id_key UNIQUE (org_id, program_id, id)
);
CREATE INDEX workstreams_position_idx ON workstreams (org_id, program_id, position, id);

CREATE TABLE requirements (
    org_id              uuid NOT NULL,
    id                  uuid NOT NULL,
    program_id          uuid NOT NULL,
    workstream_id       uuid NOT NULL,
    title               text NOT NULL,
    description         text NOT NULL DEFAULT '',
    priority            text NOT NULL CHECK (priority IN ('critical', 'high', 'medium', 'low')),
    status              text NOT NULL
                        CHECK (status IN ('draft', 'approved', 'in_progress', 'done', 'deferred')),
    acceptance_criteria text[] NOT NULL DEFAULT '{}',
    batch               text NOT NULL DEFAULT '',
    created_by          uuid NOT NULL,
    version             bigint NOT NULL DEFAULT 1,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    CONSTRAINT requirements_workstream_fkey FOREIGN KEY (org_id, program_id, workstream_id)
        REFERENCES workstreams (org_id, program_id, id) ON DELETE CASCADE,
    -- Lists by program (newest first) and the target of same-program keys.
    CONSTRAINT requirements_program_id_key UNIQUE (org_id, program_id, id)
);
CREATE INDEX requirements_program_status_idx ON requirements (org_id, program_id, status, id);
CREATE INDEX requirements_workstream_idx ON requirements (org_id, workstream_id, id);
CREATE INDEX requirements_workstream_status_idx ON requirements (org_id, workstream_id, status, id);

-- The dependency graph: requirement_id depends on depends_on_id. Acyclic:
-- the service checks every new edge against the program's edges while
-- holding the program row's lock.
CREATE TABLE requirement_dependencies (
    org_id         uuid NOT NULL,
    program_id     uuid NOT NULL,
    requirement_id uuid NOT NULL,
    depends_on_id  uuid NOT NULL,
    created_by     uuid NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, requirement_id, depends_on_id),
    CHECK (requirement_id <> depends_on_id),
    CONSTRAINT requirement_dependencies_requirement_fkey
        FOREIGN KEY (org_id, program_id, requirement_id)
        REFERENCES requirements (org_id, program_id, id) ON DELETE CASCADE,
    CONSTRAINT requirement_dependencies_depends_on_fkey
        FOREIGN KEY (org_id, program_id, depends_on_id)
        REFERENCES requirements (org_id, program_id, id) ON DELETE CASCADE
);
-- Downstream walks (who depends on X).
CREATE INDEX requirement_dependencies_depends_on_idx
    ON requirement_dependencies (org_id, depends_on_id, requirement_id);
-- The whole graph of a program (cycle checks, plans, cascades).
CREATE INDEX requirement_dependencies_program_idx
    ON requirement_dependencies (org_id, program_id, requirement_id, depends_on_id);

CREATE TABLE tasks (
    org_id         uuid NOT NULL,
    id             uuid NOT NULL,
    program_id     uuid NOT NULL,
    requirement_id uuid,
    title          text NOT NULL,
    description    text NOT NULL DEFAULT '',
    status         text NOT NULL
                   CHECK (status IN ('backlog', 'todo', 'in_progress', 'in_review', 'done', 'blocked')),
    assignee_ids   uuid[] NOT NULL DEFAULT '{}',
    estimate_hours double precision CHECK (estimate_hours >= 0),
    due_at         timestamptz,
    labels         text[] NOT NULL DEFAULT '{}',
    sprint_id      uuid,
    created_by     uuid NOT NULL,
    version        bigint NOT NULL DEFAULT 1,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    CONSTRAINT tasks_program_fkey FOREIGN KEY (org_id, program_id)
        REFERENCES programs (org_id, id) ON DELETE CASCADE,
    CONSTRAINT tasks_requirement_fkey FOREIGN KEY (org_id, program_id, requirement_id)
        REFERENCES requirements (org_id, program_id, id) ON DELETE SET NULL (requirement_id),
    -- Lists by program (newest first) and the target of subtasks' keys.
    CONSTRAINT tasks_program_id_key UNIQUE (org_id, program_id, id)
);
CREATE INDEX tasks_status_idx ON tasks (org_id, program_id, status, id);
CREATE INDEX tasks_requirement_idx ON tasks (org_id, requirement_id, id)
    WHERE requirement_id IS NOT NULL;
CREATE INDEX tasks_sprint_idx ON tasks (org_id, program_id, sprint_id, id)
    WHERE sprint_id IS NOT NULL;

-- Who is assigned to what: the index behind "tasks of this assignee"
-- (tasks.assignee_ids is the same set, in the caller's order, for reads).
CREATE TABLE task_assignees (
    org_id     uuid NOT NULL,
    task_id    uuid NOT NULL,
    user_id    uuid NOT NULL,
    program_id uuid NOT NULL,
    PRIMARY KEY (org_id, task_id, user_id),
    CONSTRAINT task_assignees_task_fkey FOREIGN KEY (org_id, program_id, task_id)
        REFERENCES tasks (org_id, program_id, id) ON DELETE CASCADE
);
CREATE INDEX task_assignees_user_idx ON task_assignees (org_id, program_id, user_id, task_id);

CREATE TABLE subtasks (
    org_id      uuid NOT NULL,
    id          uuid NOT NULL,
    task_id     uuid NOT NULL,
    program_id  uuid NOT NULL,
    title       text NOT NULL,
    description text NOT NULL DEFAULT '',
    status      text NOT NULL CHECK (status IN ('todo', 'in_progress', 'done')),
    position    integer NOT NULL CHECK (position > 0),
    created_by  uuid NOT NULL,
    version     bigint NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    CONSTRAINT subtasks_task_fkey FOREIGN KEY (org_id, program_id, task_id)
        REFERENCES tasks (org_id, program_id, id) ON DELETE CASCADE
);
CREATE INDEX subtasks_position_idx ON subtasks (org_id, task_id, position, id);
-- Cascades by program and the foreign key's checks.
CREATE INDEX subtasks_program_idx ON subtasks (org_id, program_id, task_id);
-- "Is any subtask of this task open?"
CREATE INDEX subtasks_open_idx ON subtasks (org_id, task_id) WHERE status <> 'done';

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
ALTER TABLE programs ENABLE ROW LEVEL SECURITY;
ALTER TABLE programs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON programs
    USING (org_id = current_org() OR system_scope())
    WITH CHECK (org_id = current_org() OR system_scope());

ALTER TABLE workstreams ENABLE ROW LEVEL SECURITY;
ALTER TABLE workstreams FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON workstreams
    USING (org_id = current_org() OR system_scope())
    WITH CHECK (org_id = current_org() OR system_scope());

ALTER TABLE requirements ENABLE ROW LEVEL SECURITY;
ALTER TABLE requirements FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON requirements
    USING (org_id = current_org() OR system_scope())
    WITH CHECK (org_id = current_org() OR system_scope());

ALTER TABLE requirement_dependencies ENABLE ROW LEVEL SECURITY;
ALTER TABLE requirement_dependencies FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON requirement_dependencies
    USING (org_id = current_org() OR system_scope())
    WITH CHECK (org_id = current_org() OR system_scope());

ALTER TABLE tasks ENABLE ROW LEVEL SECURITY;
ALTER TABLE tasks FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON tasks
    USING (org_id = current_org() OR system_scope())
    WITH CHECK (org_id = current_org() OR system_scope());

ALTER TABLE task_assignees ENABLE ROW LEVEL SECURITY;
ALTER TABLE task_assignees FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON task_assignees
    USING (org_id = current_org() OR system_scope())
    WITH CHECK (org_id = current_org() OR system_scope());

ALTER TABLE subtasks ENABLE ROW LEVEL SECURITY;
ALTER TABLE subtasks FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON subtasks
    USING (org_id = current_org() OR system_scope())
    WITH CHECK (org_id = current_org() OR system_scope());

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA delivery TO foundry_delivery;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA delivery TO foundry_delivery;
