-- Human oversight settings per tenant (docs/OPERATIONS.md, "Human oversight").
--
-- One row per tenant that changed a default: whether an override made in the portal needs a
-- second, different reviewer's approval (four eyes), and the service levels, in hours, within
-- which a decision awaiting review, a contest and an explanation request should be answered.
-- A tenant without a row has the defaults (four eyes off; 24, 72 and 72 hours). Every change is
-- appended to the tenant's ledger as an `administration` record before the row is written.

CREATE TABLE oversight_settings (
    tenant_id                TEXT PRIMARY KEY,
    four_eyes                BOOLEAN NOT NULL,
    review_sla_hours         BIGINT NOT NULL CHECK (review_sla_hours > 0),
    contest_sla_hours        BIGINT NOT NULL CHECK (contest_sla_hours > 0),
    explanation_sla_hours    BIGINT NOT NULL CHECK (explanation_sla_hours > 0),
    updated_at_us            BIGINT NOT NULL,
    updated_by               TEXT NOT NULL
);
-- A row is never deleted and never moves to another tenant: only the settings change.
GRANT SELECT, INSERT ON oversight_settings TO auditex_app;
GRANT UPDATE (four_eyes, review_sla_hours, contest_sla_hours, explanation_sla_hours, updated_at_us,
              updated_by) ON oversight_settings TO auditex_app;

ALTER TABLE oversight_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE oversight_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON oversight_settings
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
