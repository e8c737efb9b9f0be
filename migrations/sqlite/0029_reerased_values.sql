-- Values a re-application of the erasure journal erased, waiting for an `erasure` record of this
-- chain to cover them: see migrations/postgres/0031_reerased_values.sql.

CREATE TABLE reerased_values (
    tenant_id    TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    field        TEXT NOT NULL,
    subject_ref  TEXT,
    PRIMARY KEY (tenant_id, seq, field)
) STRICT, WITHOUT ROWID;
CREATE INDEX reerased_values_by_subject ON reerased_values (tenant_id, subject_ref, seq);
