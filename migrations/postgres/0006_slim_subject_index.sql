-- The subject index keeps only what locates a record: subject, sequence number and, for a
-- follow-up, the decision it names. Event id, type and capture time come from the ledger's own
-- row. Inserts into this table arrive in random subject order, so each touches a page of its
-- own; the smaller the rows, the fewer pages a page of records writes.
--
-- The decisions view loses its own index by subject: a search by subject finds the decisions'
-- sequence numbers in this index instead, which saves a second random-order index per decision.
--
-- The subjects view is rebuilt from the ledger by the runner (its state is reset here; its
-- version in the code is now 2). Until it has caught up, subject queries return what it has
-- applied, as for any lag.

DROP INDEX proj_decisions_by_subject;
DROP TABLE proj_subjects;

CREATE TABLE proj_subjects (
    generation   BIGINT NOT NULL,
    tenant_id    TEXT NOT NULL,
    subject_ref  TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    decision_id  TEXT,
    PRIMARY KEY (generation, tenant_id, subject_ref, seq)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON proj_subjects TO auditex_app;

ALTER TABLE proj_subjects ENABLE ROW LEVEL SECURITY;
ALTER TABLE proj_subjects FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON proj_subjects
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));

DELETE FROM projection_positions WHERE name = 'subjects';
DELETE FROM projection_state WHERE name = 'subjects';
