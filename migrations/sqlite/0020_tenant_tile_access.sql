-- Who may read a tenant's tiled log (C2SP tlog-tiles, served under the tenant's origin): by
-- default only the tenant's own `read` and `verify` keys; a tenant that wants public
-- transparency opens it to anyone. A tenant without a row is private. The row is changed in
-- place by `auditex tenant tiles`, and `changed_at_us` says when.
CREATE TABLE tenant_tile_access (
    tenant_id     TEXT PRIMARY KEY NOT NULL REFERENCES tenants(tenant_id),
    public        INTEGER NOT NULL CHECK (public IN (0, 1)),
    changed_at_us INTEGER NOT NULL CHECK (changed_at_us >= 0)
) STRICT;
