-- Crypto-shredding (FORMAT.md section 6, docs/DESIGN.md "Erasure").
--
-- Erasable values are sealed under a data key per tenant and subject (or per record for a
-- record without a subject); the data key is stored wrapped under the master key. Erasure
-- deletes the sealed values and, once no value uses it, the data key, in the transaction that
-- appends the `erasure` record. The salt now travels inside the ciphertext, so `salt` is empty
-- for values sealed this way; rows written before keep their salt and are sealed under the
-- master key directly (`key_seq` NULL) until erased.

CREATE TABLE data_keys (
    tenant_id    TEXT NOT NULL,
    -- The sequence number of the record whose value first used the key: unique per tenant.
    key_seq      BIGINT NOT NULL,
    -- NULL for a key of one record without a subject.
    subject_ref  TEXT,
    wrapped      BYTEA NOT NULL,
    PRIMARY KEY (tenant_id, key_seq)
);
CREATE INDEX data_keys_by_subject ON data_keys (tenant_id, subject_ref, key_seq);

ALTER TABLE erasable_values DROP CONSTRAINT IF EXISTS erasable_values_salt_check;
ALTER TABLE erasable_values ADD CONSTRAINT erasable_values_salt_length CHECK (length(salt) IN (0, 32));
ALTER TABLE erasable_values ADD COLUMN subject_ref TEXT;
ALTER TABLE erasable_values ADD COLUMN key_seq BIGINT;
UPDATE erasable_values v
   SET subject_ref = COALESCE(
           r.payload::jsonb ->> 'subject_ref',
           (SELECT d.payload::jsonb ->> 'subject_ref' FROM records d
             WHERE d.tenant_id = r.tenant_id
               AND d.event_id = r.payload::jsonb ->> 'decision_id'
               AND d.event_type = 'decision'
             LIMIT 1))
  FROM records r
 WHERE r.tenant_id = v.tenant_id AND r.seq = v.seq;
CREATE INDEX erasable_values_by_subject ON erasable_values (tenant_id, subject_ref, seq);

-- What erasure removed: one row per erased value, naming the `erasure` record that erased it.
CREATE TABLE erased_values (
    tenant_id    TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    field        TEXT NOT NULL,
    erasure_seq  BIGINT NOT NULL,
    subject_ref  TEXT,
    PRIMARY KEY (tenant_id, seq, field)
);
CREATE INDEX erased_values_by_subject ON erased_values (tenant_id, subject_ref, seq);

-- Every `erasure` record, by subject, written in the erasure's own transaction.
CREATE TABLE erasures (
    tenant_id    TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    subject_ref  TEXT NOT NULL,
    erased       BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX erasures_by_subject ON erasures (tenant_id, subject_ref, seq);

-- The application inserts keys and deletes them on erasure; re-wrapping under a new master key
-- updates only the wrapped bytes. Erased-value and erasure rows are written once and kept.
GRANT SELECT, INSERT, DELETE ON data_keys TO auditex_app;
GRANT UPDATE (wrapped) ON data_keys TO auditex_app;
GRANT SELECT, INSERT ON erased_values, erasures TO auditex_app;

ALTER TABLE data_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE data_keys FORCE ROW LEVEL SECURITY;
ALTER TABLE erased_values ENABLE ROW LEVEL SECURITY;
ALTER TABLE erased_values FORCE ROW LEVEL SECURITY;
ALTER TABLE erasures ENABLE ROW LEVEL SECURITY;
ALTER TABLE erasures FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON data_keys
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
CREATE POLICY tenant_isolation ON erased_values
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
CREATE POLICY tenant_isolation ON erasures
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
