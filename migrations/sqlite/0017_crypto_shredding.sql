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
    key_seq      INTEGER NOT NULL,
    -- NULL for a key of one record without a subject.
    subject_ref  TEXT,
    wrapped      BLOB NOT NULL,
    PRIMARY KEY (tenant_id, key_seq)
) STRICT, WITHOUT ROWID;
CREATE INDEX data_keys_by_subject ON data_keys (tenant_id, subject_ref, key_seq);

-- SQLite cannot drop a CHECK constraint in place: the table is rebuilt without the salt's fixed
-- length, with the subject and the data key of each value.
CREATE TABLE erasable_values_new (
    tenant_id    TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    field        TEXT NOT NULL,
    salt         BLOB NOT NULL CHECK (length(salt) IN (0, 32)),
    sealed       BLOB NOT NULL,
    subject_ref  TEXT,
    key_seq      INTEGER,
    PRIMARY KEY (tenant_id, seq, field),
    FOREIGN KEY (tenant_id, seq) REFERENCES records(tenant_id, seq)
) STRICT, WITHOUT ROWID;
INSERT INTO erasable_values_new (tenant_id, seq, field, salt, sealed, subject_ref, key_seq)
SELECT v.tenant_id, v.seq, v.field, v.salt, v.sealed,
       COALESCE(
           json_extract(r.payload, '$.subject_ref'),
           (SELECT json_extract(d.payload, '$.subject_ref') FROM records d
             WHERE d.tenant_id = r.tenant_id
               AND d.event_id = json_extract(r.payload, '$.decision_id')
               AND d.event_type = 'decision')),
       NULL
  FROM erasable_values v JOIN records r ON r.tenant_id = v.tenant_id AND r.seq = v.seq;
DROP TABLE erasable_values;
ALTER TABLE erasable_values_new RENAME TO erasable_values;
CREATE INDEX erasable_values_by_subject ON erasable_values (tenant_id, subject_ref, seq);

-- What erasure removed: one row per erased value, naming the `erasure` record that erased it,
-- so bundles and access packages can say so (FORMAT.md section 11).
CREATE TABLE erased_values (
    tenant_id    TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    field        TEXT NOT NULL,
    erasure_seq  INTEGER NOT NULL,
    subject_ref  TEXT,
    PRIMARY KEY (tenant_id, seq, field)
) STRICT, WITHOUT ROWID;
CREATE INDEX erased_values_by_subject ON erased_values (tenant_id, subject_ref, seq);

-- Every `erasure` record, by subject, written in the erasure's own transaction.
CREATE TABLE erasures (
    tenant_id    TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    subject_ref  TEXT NOT NULL,
    erased       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, seq)
) STRICT, WITHOUT ROWID;
CREATE INDEX erasures_by_subject ON erasures (tenant_id, subject_ref, seq);
