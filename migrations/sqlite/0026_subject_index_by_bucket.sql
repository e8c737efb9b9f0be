-- The stored values' subject index leads with the bucket of 4096 sequence numbers a value falls
-- in (`seq >> 12`), then the subject. Indexed by subject alone, every new value went to a random
-- place in an index as large as the tenant's values, so a group of appends dirtied about one
-- index page per value, and the write-ahead log, the cache and the commit grew with the ledger.
-- Within a bucket the entries of one group fall on the few pages of the current bucket. A
-- subject's values are found by one probe per bucket (src/store/erasure_sql.rs,
-- `push_subject`): about 2,500 probes for a tenant of ten million records.
DROP INDEX erasable_values_by_subject;
CREATE INDEX erasable_values_by_subject ON erasable_values (tenant_id, (seq >> 12), subject_ref, seq);
