-- Who may read a tenant's tiled log (C2SP tlog-tiles, served under the tenant's origin): by
-- default only the tenant's own `read` and `verify` keys; a tenant that wants public
-- transparency opens it to anyone. A tenant without a row is private. The row is changed in
-- place by `auditex tenant tiles`, and `changed_at_us` says when.
CREATE TABLE tenant_tile_access (
    tenant_id     TEXT PRIMARY KEY NOT NULL REFERENCES tenants(tenant_id),
    public        INTEGER NOT NULL CHECK (public IN (0, 1)),
    changed_at_us INTEGER NOT NULL CHECK (changed_at_us >= 0)
) STRICT;

-- The witnesses a tenant's checkpoints are sent to (C2SP tlog-witness): each by its name (the
-- key name of its cosignatures), its public key (a C2SP vkey of type 0x04), the submission URL
-- prefix, and, for a witness whose certificate no public CA signs, the CA to trust (PEM).
CREATE TABLE tenant_witnesses (
    tenant_id    TEXT NOT NULL REFERENCES tenants(tenant_id),
    name         TEXT NOT NULL CHECK (length(name) > 0),
    vkey         TEXT NOT NULL,
    url          TEXT NOT NULL,
    ca_pem       TEXT,
    added_at_us  INTEGER NOT NULL CHECK (added_at_us >= 0),
    PRIMARY KEY (tenant_id, name)
) STRICT;

-- The cosignatures the witnesses returned, each the signature line to append to the checkpoint
-- of that size and root (verified against the witness's key before it is stored). The root is
-- part of the key: after an acknowledged rollback a size may come back with another root, and a
-- cosignature of the abandoned branch must not be attached to it.
CREATE TABLE checkpoint_cosignatures (
    tenant_id    TEXT NOT NULL REFERENCES tenants(tenant_id),
    tree_size    INTEGER NOT NULL CHECK (tree_size >= 0),
    root         BLOB NOT NULL CHECK (length(root) = 32),
    witness      TEXT NOT NULL,
    line         TEXT NOT NULL,
    cosigned_at  INTEGER NOT NULL CHECK (cosigned_at > 0),
    PRIMARY KEY (tenant_id, tree_size, root, witness)
) STRICT, WITHOUT ROWID;
CREATE INDEX checkpoint_cosignatures_by_witness
    ON checkpoint_cosignatures (tenant_id, witness, tree_size);

-- Cosignatures are evidence: written once, never changed.
CREATE TRIGGER checkpoint_cosignatures_no_update BEFORE UPDATE ON checkpoint_cosignatures
BEGIN SELECT RAISE(ABORT, 'checkpoint_cosignatures is append-only'); END;
CREATE TRIGGER checkpoint_cosignatures_no_delete BEFORE DELETE ON checkpoint_cosignatures
BEGIN SELECT RAISE(ABORT, 'checkpoint_cosignatures is append-only'); END;
