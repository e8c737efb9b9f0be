-- The stored values' subject index leads with the bucket of 4096 sequence numbers a value falls
-- in (`seq >> 12`), then the subject; see migrations/sqlite/0026_subject_index_by_bucket.sql.
DROP INDEX erasable_values_by_subject;
CREATE INDEX erasable_values_by_subject ON erasable_values (tenant_id, (seq >> 12), subject_ref, seq);
