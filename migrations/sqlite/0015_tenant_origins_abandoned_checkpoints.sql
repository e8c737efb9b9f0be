-- Each tenant's checkpoint origin, recorded once, and the checkpoints of branches abandoned by an
-- acknowledged rollback.
--
-- A tenant's origin names its checkpoints and its verifier keys. It used to be derived at every
-- use from the configured AUDITEX_ORIGIN, so an export run with another (or no) setting wrote
-- evidence that contradicted the tenant's signed checkpoints. Now it is stored when the tenant is
-- created and never derived again. Tenants created before this migration get theirs recorded on
-- first use: the origin named by their latest stored checkpoint (what the world has seen signed),
-- or, when they never published one, the configured origin at that moment (nothing signed under
-- an origin can contradict it). Rows are written once and never changed.
CREATE TABLE tenant_origins (
    tenant_id      TEXT PRIMARY KEY NOT NULL REFERENCES tenants(tenant_id),
    origin         TEXT NOT NULL CHECK (length(origin) > 0),
    recorded_at_us INTEGER NOT NULL
) STRICT;

CREATE TRIGGER tenant_origins_no_update BEFORE UPDATE ON tenant_origins
BEGIN SELECT RAISE(ABORT, 'tenant origins are written once: UPDATE is not allowed'); END;
CREATE TRIGGER tenant_origins_no_delete BEFORE DELETE ON tenant_origins
BEGIN SELECT RAISE(ABORT, 'tenant origins are written once: DELETE is not allowed'); END;

-- Checkpoints published for a branch of the tree that an acknowledged rollback abandoned (the
-- database was restored to an older state). They no longer extend the current tree, but they
-- were published, so they are kept and listed, each with the sequence number of the
-- `rollback_acknowledged` record that abandoned it. They come from the published-checkpoint
-- folder, which a database restore does not touch.
CREATE TABLE abandoned_checkpoints (
    tenant_id        TEXT NOT NULL REFERENCES tenants(tenant_id),
    abandoned_by_seq INTEGER NOT NULL CHECK (abandoned_by_seq >= 0),
    tree_size        INTEGER NOT NULL CHECK (tree_size >= 0),
    root             BLOB NOT NULL CHECK (length(root) = 32),
    signed_note      TEXT NOT NULL,
    published_at_us  INTEGER NOT NULL CHECK (published_at_us >= 0),
    PRIMARY KEY (tenant_id, abandoned_by_seq, tree_size)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER abandoned_checkpoints_no_update BEFORE UPDATE ON abandoned_checkpoints
BEGIN SELECT RAISE(ABORT, 'abandoned checkpoints are append-only: UPDATE is not allowed'); END;
CREATE TRIGGER abandoned_checkpoints_no_delete BEFORE DELETE ON abandoned_checkpoints
BEGIN SELECT RAISE(ABORT, 'abandoned checkpoints are append-only: DELETE is not allowed'); END;
