-- PostgreSQL's migration 0010 lets the service role refresh the views' statistics; on SQLite
-- the service runs ANALYZE itself. The file keeps the two migration histories numbered alike.
SELECT 1;
