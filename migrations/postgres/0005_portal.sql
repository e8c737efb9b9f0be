-- The compliance portal: people's accounts, their server-side sessions and password-reset
-- tokens. Secrets are never stored: passwords as Argon2id PHC strings, session ids and reset
-- tokens as SHA-256 hashes of 256-bit random values.

CREATE TABLE users (
    user_id                 TEXT PRIMARY KEY,
    tenant_id               TEXT NOT NULL REFERENCES tenants(tenant_id),
    email                   TEXT NOT NULL UNIQUE,
    role                    TEXT NOT NULL CHECK (role IN ('admin', 'compliance', 'auditor', 'regulator')),
    password_hash           TEXT NOT NULL,
    created_at_us           BIGINT NOT NULL,
    password_changed_at_us  BIGINT NOT NULL,
    expires_at_us           BIGINT,
    disabled_at_us          BIGINT,
    failed_logins           BIGINT NOT NULL DEFAULT 0,
    locked_until_us         BIGINT
);

CREATE INDEX users_by_tenant ON users (tenant_id, email);

CREATE TABLE sessions (
    id_hash          BYTEA PRIMARY KEY CHECK (length(id_hash) = 32),
    user_id          TEXT NOT NULL REFERENCES users(user_id),
    tenant_id        TEXT NOT NULL REFERENCES tenants(tenant_id),
    created_at_us    BIGINT NOT NULL,
    last_seen_us     BIGINT NOT NULL,
    expires_at_us    BIGINT NOT NULL,
    ended_at_us      BIGINT,
    client           TEXT NOT NULL
);

CREATE INDEX sessions_by_user ON sessions (user_id, created_at_us);

CREATE TABLE password_resets (
    token_hash     BYTEA PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id        TEXT NOT NULL REFERENCES users(user_id),
    created_at_us  BIGINT NOT NULL,
    expires_at_us  BIGINT NOT NULL,
    used_at_us     BIGINT
);

CREATE INDEX password_resets_by_user ON password_resets (user_id);

-- Sign-in happens before the tenant is known (the email finds the account), so these tables are
-- not under row-level security; every query of the portal still names the tenant it serves.
GRANT SELECT, INSERT, UPDATE ON users, sessions, password_resets TO auditex_app;
