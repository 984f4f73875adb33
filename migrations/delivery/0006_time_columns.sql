-- One name per field: a timestamp column is named as its API field (AIP-142:
-- `*_time`), so the domain struct, the row, the proto and the audit event
-- agree and rows map to domain values by name (foundry_resource::row).
-- Renames carry indexes, constraints and the generated `archived` column.
ALTER TABLE programs RENAME COLUMN archived_at TO archive_time;
ALTER TABLE tasks RENAME COLUMN due_at TO due_time;
ALTER TABLE sprints RENAME COLUMN start_at TO start_time;
ALTER TABLE sprints RENAME COLUMN end_at TO end_time;
ALTER TABLE goals RENAME COLUMN target_at TO target_time;
ALTER TABLE planner_phases RENAME COLUMN start_at TO start_time;
ALTER TABLE planner_phases RENAME COLUMN end_at TO end_time;
