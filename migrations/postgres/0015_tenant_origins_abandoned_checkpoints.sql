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
    recorded_at_us BIGINT NOT NULL
);

-- Checkpoints published for a branch of the tree that an acknowledged rollback abandoned (the
-- database was restored to an older state). They no longer extend the current tree, but they
-- were published, so they are kept and listed, each with the sequence number of the
-- `rollback_acknowledged` record that abandoned it. They come from the published-checkpoint
-- folder, which a database restore does not touch.
CREATE TABLE abandoned_checkpoints (
    tenant_id        TEXT NOT NULL REFERENCES tenants(tenant_id),
    abandoned_by_seq BIGINT NOT NULL CHECK (abandoned_by_seq >= 0),
    tree_size        BIGINT NOT NULL CHECK (tree_size >= 0),
    root             BYTEA NOT NULL CHECK (length(root) = 32),
    signed_note      TEXT NOT NULL,
    published_at_us  BIGINT NOT NULL CHECK (published_at_us >= 0),
    PRIMARY KEY (tenant_id, abandoned_by_seq, tree_size)
);

CREATE TRIGGER tenant_origins_append_only BEFORE UPDATE OR DELETE ON tenant_origins
    FOR EACH ROW EXECUTE FUNCTION auditex_refuse_change();
CREATE TRIGGER tenant_origins_no_truncate BEFORE TRUNCATE ON tenant_origins
    FOR EACH STATEMENT EXECUTE FUNCTION auditex_refuse_change();
CREATE TRIGGER abandoned_checkpoints_append_only BEFORE UPDATE OR DELETE ON abandoned_checkpoints
    FOR EACH ROW EXECUTE FUNCTION auditex_refuse_change();
CREATE TRIGGER abandoned_checkpoints_no_truncate BEFORE TRUNCATE ON abandoned_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION auditex_refuse_change();

GRANT SELECT, INSERT ON tenant_origins, abandoned_checkpoints TO auditex_app;

-- Like the other ledger tables, abandoned checkpoints are visible to their tenant only. The
-- origins are a directory like `tenants` itself, which has no policy.
ALTER TABLE abandoned_checkpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE abandoned_checkpoints FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON abandoned_checkpoints
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
