-- Accounts belong to one tenant: an email is unique within its tenant only, so the same person
-- may hold accounts in two tenants, and inviting an address says nothing about other tenants.
-- Reset tokens carry their user's tenant, and sessions and reset tokens must name their user's
-- own tenant (composite foreign keys), as on PostgreSQL (where row-level security now covers
-- these tables too; SQLite has none, and every query names its tenant).
--
-- SQLite cannot drop a column's UNIQUE constraint, so the three tables are built again. The new
-- child tables refer to `users_new`; renaming it to `users` afterwards rewrites those references,
-- and the old tables are dropped children first, so no foreign key is ever left dangling.

CREATE TABLE users_new (
    user_id                 TEXT PRIMARY KEY NOT NULL,
    tenant_id               TEXT NOT NULL REFERENCES tenants(tenant_id),
    email                   TEXT NOT NULL,
    role                    TEXT NOT NULL CHECK (role IN ('admin', 'compliance', 'auditor', 'regulator')),
    password_hash           TEXT NOT NULL,
    created_at_us           INTEGER NOT NULL,
    password_changed_at_us  INTEGER NOT NULL,
    expires_at_us           INTEGER,
    disabled_at_us          INTEGER,
    failed_logins           INTEGER NOT NULL DEFAULT 0,
    locked_until_us         INTEGER,
    UNIQUE (tenant_id, email),
    UNIQUE (user_id, tenant_id)
) STRICT;

INSERT INTO users_new
SELECT user_id, tenant_id, email, role, password_hash, created_at_us, password_changed_at_us,
       expires_at_us, disabled_at_us, failed_logins, locked_until_us
FROM users;

CREATE TABLE sessions_new (
    id_hash          BLOB PRIMARY KEY NOT NULL CHECK (length(id_hash) = 32),
    user_id          TEXT NOT NULL,
    tenant_id        TEXT NOT NULL REFERENCES tenants(tenant_id),
    created_at_us    INTEGER NOT NULL,
    last_seen_us     INTEGER NOT NULL,
    expires_at_us    INTEGER NOT NULL,
    ended_at_us      INTEGER,
    client           TEXT NOT NULL,
    FOREIGN KEY (user_id, tenant_id) REFERENCES users_new (user_id, tenant_id)
) STRICT, WITHOUT ROWID;

INSERT INTO sessions_new
SELECT id_hash, user_id, tenant_id, created_at_us, last_seen_us, expires_at_us, ended_at_us, client
FROM sessions;

CREATE TABLE password_resets_new (
    token_hash     BLOB PRIMARY KEY NOT NULL CHECK (length(token_hash) = 32),
    user_id        TEXT NOT NULL,
    tenant_id      TEXT NOT NULL,
    created_at_us  INTEGER NOT NULL,
    expires_at_us  INTEGER NOT NULL,
    used_at_us     INTEGER,
    FOREIGN KEY (user_id, tenant_id) REFERENCES users_new (user_id, tenant_id)
) STRICT, WITHOUT ROWID;

INSERT INTO password_resets_new
SELECT r.token_hash, r.user_id, u.tenant_id, r.created_at_us, r.expires_at_us, r.used_at_us
FROM password_resets r JOIN users u ON u.user_id = r.user_id;

DROP TABLE password_resets;
DROP TABLE sessions;
DROP TABLE users;

ALTER TABLE users_new RENAME TO users;
ALTER TABLE sessions_new RENAME TO sessions;
ALTER TABLE password_resets_new RENAME TO password_resets;

CREATE INDEX sessions_by_user ON sessions (user_id, created_at_us);
CREATE INDEX password_resets_by_user ON password_resets (user_id);
