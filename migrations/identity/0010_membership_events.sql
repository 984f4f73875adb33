-- Issue 15, finding 2a: from this version on, every membership change
-- records a domain event in its transaction (identity.membership.created,
-- .updated, .removed: crates/outbox/src/membership.rs), from which delivery
-- keeps its replica of memberships (user references must name members).
-- Memberships made before have no event. When there are any (an existing
-- deployment upgrading), this enqueues the job identity.memberships.snapshot
-- on identity's queue, once (a migration runs once, under sqlx's lock when
-- replicas start together; the unique key makes a second enqueue a no-op
-- while one is pending). The job announces each membership as it stands
-- (identity.membership.snapshot), organization by organization, from
-- identity's own outbox: delivery reads none of identity's tables. A fresh
-- database has no membership and enqueues nothing.
SELECT set_config('app.system', 'on', true);
INSERT INTO jobs (id, org_id, kind, args, state, run_at, max_attempts, unique_key, created_at)
SELECT
    -- A UUID v7 minted now, as the queue's ids are (time-ordered, which its
    -- sweep relies on): the Unix time in milliseconds in the first 48 bits
    -- of a random UUID, and its version nibble set to 7.
    encode(set_byte(overlay(uuid_send(r.id)
                            PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                            FROM 1 FOR 6),
                    6, (get_byte(uuid_send(r.id), 6) & 15) | 112), 'hex')::uuid,
    '00000000-0000-0000-0000-000000000000', 'identity.memberships.snapshot', '{}',
    'available', now(), 20, 'identity.memberships.snapshot', now()
FROM (SELECT gen_random_uuid() AS id) r
WHERE EXISTS (SELECT 1 FROM memberships)
ON CONFLICT DO NOTHING;
