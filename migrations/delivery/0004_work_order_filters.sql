-- ListWorkOrders by planner phase or feature, newest first: the key of
-- each index gains `id` so a page is a range of it (the indexes still serve
-- the foreign keys' ON DELETE look-ups).
DROP INDEX work_orders_phase_idx;
CREATE INDEX work_orders_phase_idx ON work_orders (org_id, program_id, phase_id, id)
    WHERE phase_id IS NOT NULL;
DROP INDEX work_orders_feature_idx;
CREATE INDEX work_orders_feature_idx ON work_orders (org_id, program_id, feature_id, id)
    WHERE feature_id IS NOT NULL;
