-- The PostgreSQL migration 0014 lets the application role rewrite sealed columns during a
-- master-key rotation. SQLite has no roles or privileges, so nothing changes here; the file keeps
-- both backends' migration numbers aligned.
SELECT 1;
