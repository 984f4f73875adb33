-- A key's binding is a project and, optionally, one resource inside it (a
-- chat agent, for the keys its embed widget uses): never a resource alone.
-- A bound caller lists only its project's keys: (org_id, project_id, id).
ALTER TABLE api_keys ADD COLUMN resource_id uuid;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_resource_in_a_project
    CHECK (resource_id IS NULL OR project_id IS NOT NULL);
CREATE INDEX api_keys_project_idx ON api_keys (org_id, project_id, id);
