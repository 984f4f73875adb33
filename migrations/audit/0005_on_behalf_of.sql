-- Issue 13, finding 9: whom an event's actor acted for (a service account
-- carrying out a user's or an agent's request), beside the actor. Both or
-- neither; chained (in the canonical form) only when set, so the hashes of
-- the events appended before stay what they were.
ALTER TABLE events
    ADD COLUMN on_behalf_of_type text,
    ADD COLUMN on_behalf_of_id uuid,
    ADD CONSTRAINT events_on_behalf_of_whole
        CHECK ((on_behalf_of_type IS NULL) = (on_behalf_of_id IS NULL));
