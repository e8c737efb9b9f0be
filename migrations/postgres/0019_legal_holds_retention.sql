-- Legal holds and retention (docs/OPERATIONS.md "Retention and legal hold").
--
-- Both tables are derived from ledger records and written by the appender in the transaction
-- that appends those records: a `legal_hold` record places or lifts a hold, an `administration`
-- record with action `retention_policy_set` replaces the tenant's retention policy. The ledger
-- stays the source of truth; these tables answer "is this subject held?" and "what expires?"
-- without reading the chain.

CREATE TABLE legal_holds (
    tenant_id      TEXT NOT NULL,
    -- The sequence number of the `legal_hold` record that placed the hold.
    hold_seq       BIGINT NOT NULL,
    subject_ref    TEXT NOT NULL,
    -- A hold on one decision of the subject; NULL holds the whole subject.
    decision_id    TEXT,
    reason         TEXT NOT NULL,
    reference      TEXT,
    placed_at_us   BIGINT NOT NULL,
    -- The `legal_hold` record that lifted it; NULL while the hold is active.
    lifted_seq     BIGINT,
    lifted_reason  TEXT,
    lifted_at_us   BIGINT,
    PRIMARY KEY (tenant_id, hold_seq)
);
CREATE INDEX legal_holds_by_subject ON legal_holds (tenant_id, subject_ref, hold_seq);

-- The tenant's retention policy: rules in the order given, each naming what it applies to
-- (an event type, a model, both or neither) and after how many days of a record's capture its
-- erasable values are erased. `policy_seq` is the administration record that set the policy.
CREATE TABLE retention_rules (
    tenant_id         TEXT NOT NULL,
    position          BIGINT NOT NULL,
    event_type        TEXT,
    model_id          TEXT,
    erase_after_days  BIGINT NOT NULL CHECK (erase_after_days > 0),
    policy_seq        BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, position)
);

-- A hold is placed once and lifted once (only the lift columns change); a new policy replaces
-- the rules of the old one.
GRANT SELECT, INSERT ON legal_holds TO auditex_app;
GRANT UPDATE (lifted_seq, lifted_reason, lifted_at_us) ON legal_holds TO auditex_app;
GRANT SELECT, INSERT, DELETE ON retention_rules TO auditex_app;

ALTER TABLE legal_holds ENABLE ROW LEVEL SECURITY;
ALTER TABLE legal_holds FORCE ROW LEVEL SECURITY;
ALTER TABLE retention_rules ENABLE ROW LEVEL SECURITY;
ALTER TABLE retention_rules FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON legal_holds
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
CREATE POLICY tenant_isolation ON retention_rules
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
