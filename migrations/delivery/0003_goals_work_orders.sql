-- Delivery, third slice: goals (the outcomes a program is for), work
-- orders (units of implementation work with their assignees) and planner
-- phases (the ordered stages of a program's plan) and features (a tree per
-- program, slugs unique in it). Same rules
-- as 0001 and 0002: keyed (org_id, id), every foreign key carries org_id
-- and program_id, every list is an index prefix then the keyset column,
-- row-level security forced.

CREATE TABLE goals (
    org_id        uuid NOT NULL,
    id            uuid NOT NULL,
    program_id    uuid NOT NULL,
    title         text NOT NULL,
    description   text NOT NULL DEFAULT '',
    target_metric text NOT NULL DEFAULT '',
    target_at     timestamptz,
    status        text NOT NULL CHECK (status IN ('proposed', 'active', 'achieved', 'abandoned')),
    owner_user_id uuid,
    created_by    uuid NOT NULL,
    version       bigint NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    CONSTRAINT goals_program_fkey FOREIGN KEY (org_id, program_id)
        REFERENCES programs (org_id, id) ON DELETE CASCADE,
    -- ListGoals unfiltered (newest first) and cascades by program.
    CONSTRAINT goals_program_id_key UNIQUE (org_id, program_id, id)
);
-- ListGoals by status.
CREATE INDEX goals_status_idx ON goals (org_id, program_id, status, id);

CREATE TABLE work_orders (
    org_id              uuid NOT NULL,
    id                  uuid NOT NULL,
    program_id          uuid NOT NULL,
    title               text NOT NULL,
    description         text NOT NULL DEFAULT '',
    status              text NOT NULL
                        CHECK (status IN ('backlog', 'ready', 'in_progress', 'in_review', 'done')),
    acceptance_criteria text[] NOT NULL DEFAULT '{}',
    implementation_plan text NOT NULL DEFAULT '',
    assignee_ids        uuid[] NOT NULL DEFAULT '{}',
    created_by          uuid NOT NULL,
    version             bigint NOT NULL DEFAULT 1,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    CONSTRAINT work_orders_program_fkey FOREIGN KEY (org_id, program_id)
        REFERENCES programs (org_id, id) ON DELETE CASCADE,
    -- ListWorkOrders unfiltered (newest first), cascades by program and the
    -- target of the assignees' key.
    CONSTRAINT work_orders_program_id_key UNIQUE (org_id, program_id, id)
);
-- ListWorkOrders by status.
CREATE INDEX work_orders_status_idx ON work_orders (org_id, program_id, status, id);

-- Who is assigned to what: the index behind "work orders of this assignee"
-- (work_orders.assignee_ids is the same set, in the caller's order).
CREATE TABLE work_order_assignees (
    org_id        uuid NOT NULL,
    work_order_id uuid NOT NULL,
    user_id       uuid NOT NULL,
    program_id    uuid NOT NULL,
    PRIMARY KEY (org_id, work_order_id, user_id),
    CONSTRAINT work_order_assignees_work_order_fkey FOREIGN KEY (org_id, program_id, work_order_id)
        REFERENCES work_orders (org_id, program_id, id) ON DELETE CASCADE
);
CREATE INDEX work_order_assignees_user_idx
    ON work_order_assignees (org_id, program_id, user_id, work_order_id);

CREATE TABLE planner_phases (
    org_id      uuid NOT NULL,
    id          uuid NOT NULL,
    program_id  uuid NOT NULL,
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    position    integer NOT NULL CHECK (position >= 1),
    start_at    timestamptz,
    end_at      timestamptz,
    created_by  uuid NOT NULL,
    version     bigint NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    CHECK (start_at IS NULL OR end_at IS NULL OR start_at < end_at),
    CONSTRAINT planner_phases_program_fkey FOREIGN KEY (org_id, program_id)
        REFERENCES programs (org_id, id) ON DELETE CASCADE,
    -- The target of work orders' same-program key.
    CONSTRAINT planner_phases_program_id_key UNIQUE (org_id, program_id, id)
);
-- ListPlannerPhases (by position, then id), appending after the last one
-- and cascades by program.
CREATE INDEX planner_phases_position_idx ON planner_phases (org_id, program_id, position, id);

CREATE TABLE features (
    org_id            uuid NOT NULL,
    id                uuid NOT NULL,
    program_id        uuid NOT NULL,
    parent_feature_id uuid,
    name              text NOT NULL,
    slug              text NOT NULL,
    description       text NOT NULL DEFAULT '',
    created_by        uuid NOT NULL,
    version           bigint NOT NULL DEFAULT 1,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    CHECK (parent_feature_id IS DISTINCT FROM id),
    CONSTRAINT features_program_fkey FOREIGN KEY (org_id, program_id)
        REFERENCES programs (org_id, id) ON DELETE CASCADE,
    CONSTRAINT features_slug_key UNIQUE (org_id, program_id, slug),
    -- ListFeatures unfiltered (newest first), cascades by program and the
    -- target of the parent key.
    CONSTRAINT features_program_id_key UNIQUE (org_id, program_id, id),
    -- The parent is in the same program; a parent with children is not
    -- deleted alone (the whole program's features go in one statement).
    CONSTRAINT features_parent_fkey FOREIGN KEY (org_id, program_id, parent_feature_id)
        REFERENCES features (org_id, program_id, id)
);
-- ListFeatures by parent, the child check of deletes and the parent key.
CREATE INDEX features_parent_idx ON features (org_id, program_id, parent_feature_id, id)
    WHERE parent_feature_id IS NOT NULL;

-- A work order's phase and feature, each of the work order's program;
-- deleting one unlinks its work orders.
ALTER TABLE work_orders
    ADD COLUMN phase_id uuid,
    ADD COLUMN feature_id uuid,
    ADD CONSTRAINT work_orders_phase_fkey FOREIGN KEY (org_id, program_id, phase_id)
        REFERENCES planner_phases (org_id, program_id, id) ON DELETE SET NULL (phase_id),
    ADD CONSTRAINT work_orders_feature_fkey FOREIGN KEY (org_id, program_id, feature_id)
        REFERENCES features (org_id, program_id, id) ON DELETE SET NULL (feature_id);
-- The foreign keys' ON DELETE look-ups.
CREATE INDEX work_orders_phase_idx ON work_orders (org_id, program_id, phase_id)
    WHERE phase_id IS NOT NULL;
CREATE INDEX work_orders_feature_idx ON work_orders (org_id, program_id, feature_id)
    WHERE feature_id IS NOT NULL;

ALTER TABLE goals ENABLE ROW LEVEL SECURITY;
ALTER TABLE goals FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON goals
    USING (org_id = current_org() OR system_scope())
    WITH CHECK (org_id = current_org() OR system_scope());

ALTER TABLE work_orders ENABLE ROW LEVEL SECURITY;
ALTER TABLE work_orders FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON work_orders
    USING (org_id = current_org() OR system_scope())
    WITH CHECK (org_id = current_org() OR system_scope());

ALTER TABLE work_order_assignees ENABLE ROW LEVEL SECURITY;
ALTER TABLE work_order_assignees FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON work_order_assignees
    USING (org_id = current_org() OR system_scope())
    WITH CHECK (org_id = current_org() OR system_scope());

ALTER TABLE planner_phases ENABLE ROW LEVEL SECURITY;
ALTER TABLE planner_phases FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON planner_phases
    USING (org_id = current_org() OR system_scope())
    WITH CHECK (org_id = current_org() OR system_scope());

ALTER TABLE features ENABLE ROW LEVEL SECURITY;
ALTER TABLE features FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON features
    USING (org_id = current_org() OR system_scope())
    WITH CHECK (org_id = current_org() OR system_scope());

GRANT SELECT, INSERT, UPDATE, DELETE
    ON goals, work_orders, work_order_assignees, planner_phases, features TO foundry_delivery;
