-- Values a re-application of the erasure journal erased (src/store/erasure.rs, "The journal").
--
-- On a database restored to before an erasure, the erasure's record is not in the chain, and the
-- chain goes on from the restored head: the erasure's sequence number will name another record.
-- So the values it erases again are not marked as erased by that number (a bundle would name a
-- record that is not the erasure, and fail verification); they wait here, withheld, until an
-- `erasure` record of this chain covers them. The service appends one, restating the lost
-- erasure, as soon as the tenant may append (after `auditex rollback acknowledge` when the
-- restore left it held); any later erasure covering them takes them too. Either moves them to
-- `erased_values` in its own transaction.

CREATE TABLE reerased_values (
    tenant_id    TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    field        TEXT NOT NULL,
    subject_ref  TEXT,
    PRIMARY KEY (tenant_id, seq, field)
);
CREATE INDEX reerased_values_by_subject ON reerased_values (tenant_id, subject_ref, seq);
GRANT SELECT, INSERT, DELETE ON reerased_values TO auditex_app;

ALTER TABLE reerased_values ENABLE ROW LEVEL SECURITY;
ALTER TABLE reerased_values FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON reerased_values
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));

-- A tenant fenced for a move to another cell takes no write here (migration 0028).
CREATE TRIGGER reerased_values_fence AFTER INSERT OR UPDATE OR DELETE ON reerased_values
    FOR EACH STATEMENT EXECUTE FUNCTION auditex_refuse_fenced();
