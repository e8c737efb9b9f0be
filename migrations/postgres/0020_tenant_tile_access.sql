-- Who may read a tenant's tiled log (C2SP tlog-tiles, served under the tenant's origin): by
-- default only the tenant's own `read` and `verify` keys; a tenant that wants public
-- transparency opens it to anyone. A tenant without a row is private. The row is changed in
-- place by `auditex tenant tiles`, and `changed_at_us` says when.
CREATE TABLE tenant_tile_access (
    tenant_id     TEXT PRIMARY KEY NOT NULL REFERENCES tenants(tenant_id),
    public        BOOLEAN NOT NULL,
    changed_at_us BIGINT NOT NULL CHECK (changed_at_us >= 0)
);

GRANT SELECT, INSERT, UPDATE ON tenant_tile_access TO auditex_app;

-- A tenant's setting is its own row, like every other: the application role reads and writes it
-- only under that tenant's context.
ALTER TABLE tenant_tile_access ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_tile_access FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_tile_access
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
