-- Which journaled erasures this database carried out again: see
-- migrations/postgres/0022_erasure_reapplications.sql.

CREATE TABLE erasure_reapplications (
    tenant_id    TEXT NOT NULL,
    seq          INTEGER NOT NULL CHECK (seq >= 0),
    record_hash  BLOB NOT NULL CHECK (length(record_hash) = 32),
    PRIMARY KEY (tenant_id, seq, record_hash)
) STRICT, WITHOUT ROWID;
