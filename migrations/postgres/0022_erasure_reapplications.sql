-- Which journaled erasures this database carried out again (src/store/erasure.rs, "The journal").
--
-- An erasure appended to the chain is carried out in its own transaction, so a database whose
-- chain holds that very record (same sequence number and hash) has carried it out. One carried
-- out again from the journal, on a database restored to before it, is marked here by the
-- record's sequence number *and hash*: the chain may since have given that number to another
-- record, and a later restore of another copy must still tell the two apart. A mark is written
-- in the re-application's own transaction and never changed.

CREATE TABLE erasure_reapplications (
    tenant_id    TEXT NOT NULL,
    seq          BIGINT NOT NULL CHECK (seq >= 0),
    record_hash  BYTEA NOT NULL CHECK (length(record_hash) = 32),
    PRIMARY KEY (tenant_id, seq, record_hash)
);
GRANT SELECT, INSERT ON erasure_reapplications TO auditex_app;

ALTER TABLE erasure_reapplications ENABLE ROW LEVEL SECURITY;
ALTER TABLE erasure_reapplications FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON erasure_reapplications
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
