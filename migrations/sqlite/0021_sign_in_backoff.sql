-- Sign-in back-off shared by every process using the database (docs/OPERATIONS.md, "Several
-- service nodes"): see migrations/postgres/0021_sign_in_backoff.sql.

CREATE TABLE sign_in_backoff (
    account_hash     BLOB PRIMARY KEY CHECK (length(account_hash) = 32),
    failures         INTEGER NOT NULL CHECK (failures > 0),
    locked_until_us  INTEGER NOT NULL,
    updated_at_us    INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX sign_in_backoff_by_update ON sign_in_backoff (updated_at_us);
