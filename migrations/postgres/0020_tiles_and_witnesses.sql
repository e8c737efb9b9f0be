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

-- The witnesses a tenant's checkpoints are sent to (C2SP tlog-witness): each by its name (the
-- key name of its cosignatures), its public key (a C2SP vkey of type 0x04), the submission URL
-- prefix, and, for a witness whose certificate no public CA signs, the CA to trust (PEM).
CREATE TABLE tenant_witnesses (
    tenant_id    TEXT NOT NULL REFERENCES tenants(tenant_id),
    name         TEXT NOT NULL CHECK (length(name) > 0),
    vkey         TEXT NOT NULL,
    url          TEXT NOT NULL,
    ca_pem       TEXT,
    added_at_us  BIGINT NOT NULL CHECK (added_at_us >= 0),
    PRIMARY KEY (tenant_id, name)
);

-- The cosignatures the witnesses returned, each the signature line to append to the checkpoint
-- of that size and root (verified against the witness's key before it is stored). The root is
-- part of the key: after an acknowledged rollback a size may come back with another root, and a
-- cosignature of the abandoned branch must not be attached to it.
CREATE TABLE checkpoint_cosignatures (
    tenant_id    TEXT NOT NULL REFERENCES tenants(tenant_id),
    tree_size    BIGINT NOT NULL CHECK (tree_size >= 0),
    root         BYTEA NOT NULL CHECK (length(root) = 32),
    witness      TEXT NOT NULL,
    line         TEXT NOT NULL,
    cosigned_at  BIGINT NOT NULL CHECK (cosigned_at > 0),
    PRIMARY KEY (tenant_id, tree_size, root, witness)
);
CREATE INDEX checkpoint_cosignatures_by_witness
    ON checkpoint_cosignatures (tenant_id, witness, tree_size);

-- Cosignatures are evidence: written once, never changed.
CREATE TRIGGER checkpoint_cosignatures_append_only BEFORE UPDATE OR DELETE ON checkpoint_cosignatures
    FOR EACH ROW EXECUTE FUNCTION auditex_refuse_change();
CREATE TRIGGER checkpoint_cosignatures_no_truncate BEFORE TRUNCATE ON checkpoint_cosignatures
    FOR EACH STATEMENT EXECUTE FUNCTION auditex_refuse_change();

GRANT SELECT, INSERT, UPDATE, DELETE ON tenant_witnesses TO auditex_app;
GRANT SELECT, INSERT ON checkpoint_cosignatures TO auditex_app;

ALTER TABLE tenant_witnesses ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_witnesses FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_witnesses
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
ALTER TABLE checkpoint_cosignatures ENABLE ROW LEVEL SECURITY;
ALTER TABLE checkpoint_cosignatures FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON checkpoint_cosignatures
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
