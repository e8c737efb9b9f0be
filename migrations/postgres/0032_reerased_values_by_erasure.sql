-- Which lost erasure erased each waiting value again (src/store/erasure.rs, "Restatement"): the
-- hash of that erasure's record. Its restatement names exactly the records of values it erased
-- again. Matching by the lost erasure's scope alone is not enough: after two restores, an
-- erasure restated after the first has no record in the chain either, and its wider scope (a
-- whole subject) would take values a narrower, later erasure (one field) erased again, and
-- erase their other fields with them. Rows written before this column (NULL) are matched by
-- scope alone, as before.

ALTER TABLE reerased_values ADD COLUMN erasure_hash BYTEA;
