-- Issue 15, finding 2a: delivery's replica of identity's memberships, from
-- which user references (tasks' and work orders' assignee_ids, goals' and
-- risks' owner_user_id) are checked, in the mutation's own transaction and
-- without a call to identity. Fed only by identity's membership events
-- (crates/outbox/src/membership.rs) through InboxService, under system
-- scope; a tenant's transaction reads its organization's rows and writes
-- none. One row per organization and user, kept after a removal
-- (active = false) so that an older event that comes again or late cannot
-- bring the member back: a row changes only for an event of a higher
-- `seq`, its place in the organization's commit order at identity.
CREATE TABLE members (
    org_id        uuid NOT NULL,
    user_id       uuid NOT NULL,
    -- identity's membership (a user removed and added again has a new one)
    membership_id uuid NOT NULL,
    role          text NOT NULL,
    active        boolean NOT NULL,
    -- the newest event applied: its sequence at identity, id and time
    seq           bigint NOT NULL,
    event_id      uuid NOT NULL,
    change_time   timestamptz NOT NULL,
    -- when it reached delivery (change_time to here: the replica's lag)
    receive_time  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, user_id)
);

ALTER TABLE members ENABLE ROW LEVEL SECURITY;
ALTER TABLE members FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON members FOR SELECT
    USING (org_id = current_org() OR system_scope());
CREATE POLICY subscriber ON members
    USING (system_scope())
    WITH CHECK (system_scope());

GRANT SELECT, INSERT, UPDATE ON members TO foundry_delivery;
