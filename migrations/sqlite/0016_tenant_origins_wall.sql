-- Keeps the migration numbers of both backends aligned: PostgreSQL's 0016 adds row-level
-- security to tenant_origins, which SQLite does not have.
SELECT 1;
