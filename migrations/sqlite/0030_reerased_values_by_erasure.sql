-- Which lost erasure erased each waiting value again: see
-- migrations/postgres/0032_reerased_values_by_erasure.sql.

ALTER TABLE reerased_values ADD COLUMN erasure_hash BLOB;
