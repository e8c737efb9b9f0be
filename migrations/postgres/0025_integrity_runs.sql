-- The integrity check running for each tenant, shared by every service node (docs/OPERATIONS.md,
-- "Several service nodes").
--
-- At most one row per tenant: the node that starts a check inserts it, refreshes `heartbeat_us`
-- and `progress` (the check's progress as JSON, as the API shows it) about once a second, reads
-- `cancel_requested` (set by whichever node was asked to cancel), and deletes the row once the
-- result is filed in the ledger. A row whose heartbeat stopped (its node died) is taken over by
-- the next start. Nothing here is evidence: the results are `integrity_check` records.

CREATE TABLE integrity_runs (
    tenant_id         TEXT PRIMARY KEY,
    check_id          TEXT NOT NULL,
    started_at_us     BIGINT NOT NULL,
    heartbeat_us      BIGINT NOT NULL,
    cancel_requested  BOOLEAN NOT NULL,
    progress          TEXT NOT NULL
);
GRANT SELECT, INSERT, DELETE ON integrity_runs TO auditex_app;
GRANT UPDATE (heartbeat_us, cancel_requested, progress) ON integrity_runs TO auditex_app;

ALTER TABLE integrity_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE integrity_runs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON integrity_runs
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
