-- The integrity check running for each tenant, shared by every service node: see
-- migrations/postgres/0025_integrity_runs.sql.

CREATE TABLE integrity_runs (
    tenant_id         TEXT PRIMARY KEY,
    check_id          TEXT NOT NULL,
    started_at_us     INTEGER NOT NULL,
    heartbeat_us      INTEGER NOT NULL,
    cancel_requested  INTEGER NOT NULL CHECK (cancel_requested IN (0, 1)),
    progress          TEXT NOT NULL
) STRICT;
