-- The ledger schema on PostgreSQL. Never edit this file once released: add a new migration.
-- Run by the schema owner (`auditex migrate`); the service itself connects as `auditex_app`,
-- which may only SELECT and INSERT records and sees only the tenant set for its transaction.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'auditex_app') THEN
        CREATE ROLE auditex_app NOLOGIN;
    END IF;
END
$$;

CREATE TABLE tenants (
    tenant_id      TEXT PRIMARY KEY,
    created_at_us  BIGINT NOT NULL
);

CREATE TABLE signing_keys (
    tenant_id      TEXT NOT NULL REFERENCES tenants(tenant_id),
    key_id         TEXT NOT NULL,
    public_key     BYTEA NOT NULL CHECK (length(public_key) = 32),
    sealed_secret  BYTEA NOT NULL,
    from_seq       BIGINT NOT NULL,
    until_seq      BIGINT,
    created_at_us  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, key_id)
);

CREATE TABLE records (
    tenant_id       TEXT NOT NULL REFERENCES tenants(tenant_id),
    seq             BIGINT NOT NULL CHECK (seq >= 0),
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    captured_at_us  BIGINT NOT NULL,
    prev            BYTEA NOT NULL CHECK (length(prev) = 32),
    hash            BYTEA NOT NULL CHECK (length(hash) = 32),
    key_id          TEXT NOT NULL,
    sig             BYTEA NOT NULL CHECK (length(sig) = 64),
    payload         TEXT NOT NULL,
    erasable        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, seq),
    UNIQUE (tenant_id, event_id)
);

-- Proofs read up to 256 consecutive record hashes (one Merkle tile): an index-only scan.
CREATE INDEX records_leaf_hashes ON records (tenant_id, seq) INCLUDE (hash);

CREATE TABLE merkle_nodes (
    tenant_id  TEXT NOT NULL REFERENCES tenants(tenant_id),
    level      SMALLINT NOT NULL CHECK (level > 0 AND level % 8 = 0),
    idx        BIGINT NOT NULL CHECK (idx >= 0),
    hash       BYTEA NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (tenant_id, level, idx)
);

CREATE TABLE checkpoints (
    tenant_id        TEXT NOT NULL REFERENCES tenants(tenant_id),
    tree_size        BIGINT NOT NULL CHECK (tree_size >= 0),
    root             BYTEA NOT NULL CHECK (length(root) = 32),
    signed_note      TEXT NOT NULL,
    published_at_us  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, tree_size)
);

CREATE TABLE erasable_values (
    tenant_id  TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    field      TEXT NOT NULL,
    salt       BYTEA NOT NULL CHECK (length(salt) = 32),
    sealed     BYTEA NOT NULL,
    PRIMARY KEY (tenant_id, seq, field),
    FOREIGN KEY (tenant_id, seq) REFERENCES records(tenant_id, seq)
);

-- Append-only, enforced by triggers for every role (the owner included) ...
CREATE FUNCTION auditex_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER records_append_only BEFORE UPDATE OR DELETE ON records
    FOR EACH ROW EXECUTE FUNCTION auditex_refuse_change();
CREATE TRIGGER records_no_truncate BEFORE TRUNCATE ON records
    FOR EACH STATEMENT EXECUTE FUNCTION auditex_refuse_change();
CREATE TRIGGER merkle_nodes_append_only BEFORE UPDATE OR DELETE ON merkle_nodes
    FOR EACH ROW EXECUTE FUNCTION auditex_refuse_change();
CREATE TRIGGER merkle_nodes_no_truncate BEFORE TRUNCATE ON merkle_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION auditex_refuse_change();
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION auditex_refuse_change();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION auditex_refuse_change();

-- ... and by privileges: the application role lacks UPDATE, DELETE and TRUNCATE on the ledger.
GRANT USAGE ON SCHEMA public TO auditex_app;
GRANT SELECT, INSERT ON tenants, records, merkle_nodes, checkpoints TO auditex_app;
GRANT SELECT, INSERT, UPDATE (until_seq) ON signing_keys TO auditex_app;
GRANT SELECT, INSERT, DELETE ON erasable_values TO auditex_app;

-- Row-level security, forced so that it binds the table owner too. The tenant is set per
-- transaction with set_config('app.tenant_id', ..., true); with no setting the policy matches no
-- row (NULLIF turns an empty setting into NULL, and NULL equals nothing).
ALTER TABLE records ENABLE ROW LEVEL SECURITY;
ALTER TABLE records FORCE ROW LEVEL SECURITY;
ALTER TABLE merkle_nodes ENABLE ROW LEVEL SECURITY;
ALTER TABLE merkle_nodes FORCE ROW LEVEL SECURITY;
ALTER TABLE checkpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE checkpoints FORCE ROW LEVEL SECURITY;
ALTER TABLE signing_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE signing_keys FORCE ROW LEVEL SECURITY;
ALTER TABLE erasable_values ENABLE ROW LEVEL SECURITY;
ALTER TABLE erasable_values FORCE ROW LEVEL SECURITY;

CREATE POLICY tenant_isolation ON records
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
CREATE POLICY tenant_isolation ON merkle_nodes
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
CREATE POLICY tenant_isolation ON checkpoints
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
CREATE POLICY tenant_isolation ON signing_keys
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
CREATE POLICY tenant_isolation ON erasable_values
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
