-- API keys: each belongs to one tenant and has one role. Only a SHA-256 hash of the 256-bit secret
-- is stored; the key id (public, part of the key text) finds the row.
CREATE TABLE api_keys (
    key_id         TEXT PRIMARY KEY NOT NULL,
    tenant_id      TEXT NOT NULL REFERENCES tenants(tenant_id),
    role           TEXT NOT NULL CHECK (role IN ('ingest', 'read', 'verify')),
    secret_hash    BLOB NOT NULL CHECK (length(secret_hash) = 32),
    label          TEXT NOT NULL,
    created_at_us  INTEGER NOT NULL,
    expires_at_us  INTEGER,
    revoked_at_us  INTEGER,
    last_used_at_us INTEGER
) STRICT;

CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at_us);
