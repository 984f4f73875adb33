-- Issue 13, finding 9: a service account holds only what it was made for.
-- `service`: the service it runs as (audit accepts from it only that
-- service's events); `capabilities`: the internal methods' permissions it
-- holds. Accounts made before hold none: they keep their keys but can call
-- nothing until replaced by one made with its capabilities.
ALTER TABLE service_accounts
    ADD COLUMN service text NOT NULL DEFAULT ''
        CHECK (service = '' OR service ~ '^[a-z][a-z0-9_]{0,63}$'),
    ADD COLUMN capabilities text[] NOT NULL DEFAULT '{}';
