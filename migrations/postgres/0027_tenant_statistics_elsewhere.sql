-- Coarse planner statistics on tenant_id for the other tables with more than one index led by
-- it, for the reason migration 0026 gives for records: with the default target, a tenant newer
-- than the last ANALYZE is estimated at zero rows, and a look-up by one index's key may then be
-- planned as a scan of the tenant's whole range in another index (a bundle's erasable values by
-- sequence number through the subject index, a checkpoint's cosignatures through the witness
-- index). A target of 1 estimates every tenant but the largest at its share of the rows.
ALTER TABLE erasable_values ALTER COLUMN tenant_id SET STATISTICS 1;
ALTER TABLE data_keys ALTER COLUMN tenant_id SET STATISTICS 1;
ALTER TABLE erased_values ALTER COLUMN tenant_id SET STATISTICS 1;
ALTER TABLE erasures ALTER COLUMN tenant_id SET STATISTICS 1;
ALTER TABLE legal_holds ALTER COLUMN tenant_id SET STATISTICS 1;
ALTER TABLE checkpoint_cosignatures ALTER COLUMN tenant_id SET STATISTICS 1;
ANALYZE erasable_values, data_keys, erased_values, erasures, legal_holds, checkpoint_cosignatures;
