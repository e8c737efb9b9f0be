-- Row-level security on `tenant_origins` too. Migration 0015 left the table without a policy, as
-- a directory like `tenants`; migration 0012 has since walled `tenants` in, and an origin belongs
-- to one tenant like every other row: without the wall, the application role could record an
-- origin for another tenant that has not recorded one yet (a tenant created before 0015), which
-- would then name that tenant's evidence for good. Reads and the one write are scoped to the
-- tenant, as everywhere else.
ALTER TABLE tenant_origins ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_origins FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_origins
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
