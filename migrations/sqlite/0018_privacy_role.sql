-- API keys of the `privacy` role: a bank's data-protection office answers subjects' erasure
-- requests (POST /v1/subjects/{subject_ref}/erasure) with them, and may read nothing else but
-- the subject index. The role list of `api_keys` (migration 0002) gains the name.
--
-- SQLite cannot change a CHECK constraint, so the table is built again with the same columns
-- and rows (no table refers to it, and it has no triggers), then its index.

CREATE TABLE api_keys_new (
    key_id         TEXT PRIMARY KEY NOT NULL,
    tenant_id      TEXT NOT NULL REFERENCES tenants(tenant_id),
    role           TEXT NOT NULL CHECK (role IN ('ingest', 'read', 'verify', 'privacy')),
    secret_hash    BLOB NOT NULL CHECK (length(secret_hash) = 32),
    label          TEXT NOT NULL,
    created_at_us  INTEGER NOT NULL,
    expires_at_us  INTEGER,
    revoked_at_us  INTEGER,
    last_used_at_us INTEGER
) STRICT;

INSERT INTO api_keys_new
SELECT key_id, tenant_id, role, secret_hash, label, created_at_us, expires_at_us, revoked_at_us,
       last_used_at_us
FROM api_keys;

DROP TABLE api_keys;
ALTER TABLE api_keys_new RENAME TO api_keys;

CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at_us);
