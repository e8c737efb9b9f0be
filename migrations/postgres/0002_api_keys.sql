-- API keys: each belongs to one tenant and has one role. Only a SHA-256 hash of the 256-bit secret
-- is stored; the key id (public, part of the key text) finds the row. Authentication happens
-- before the tenant is known, so this table is not under row-level security; the application role
-- may read keys, create them, and set only their last-use and revocation times.
CREATE TABLE api_keys (
    key_id          TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(tenant_id),
    role            TEXT NOT NULL CHECK (role IN ('ingest', 'read', 'verify')),
    secret_hash     BYTEA NOT NULL CHECK (length(secret_hash) = 32),
    label           TEXT NOT NULL,
    created_at_us   BIGINT NOT NULL,
    expires_at_us   BIGINT,
    revoked_at_us   BIGINT,
    last_used_at_us BIGINT
);

CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at_us);

GRANT SELECT, INSERT ON api_keys TO auditex_app;
GRANT UPDATE (last_used_at_us, revoked_at_us) ON api_keys TO auditex_app;
