-- Sign-in back-off shared by every service node (docs/OPERATIONS.md, "Several service nodes").
--
-- One row per portal account that failed to sign in, known or not: `account_hash` is SHA-256 of a
-- fixed label, the organisation and the email as typed, so the table names no tenant and no
-- address, and it also holds attempts at accounts that do not exist (the back-off must not tell
-- which do). Without a tenant it has no row-level security; the application role may read and
-- change it, and nothing else refers to it. Rows untouched for a day are deleted when a failure
-- is counted. The unused per-user columns `users.failed_logins` and `users.locked_until_us`
-- (migration 0005) stay for compatibility.

CREATE TABLE sign_in_backoff (
    account_hash     BYTEA PRIMARY KEY CHECK (length(account_hash) = 32),
    failures         BIGINT NOT NULL CHECK (failures > 0),
    locked_until_us  BIGINT NOT NULL,
    updated_at_us    BIGINT NOT NULL
);
CREATE INDEX sign_in_backoff_by_update ON sign_in_backoff (updated_at_us);
GRANT SELECT, INSERT, UPDATE, DELETE ON sign_in_backoff TO auditex_app;
