-- PostgreSQL's migration 0008 stops writing WAL for the views. SQLite has no such table kind
-- (the views share the database's journal, so a crash loses their rows and positions
-- together, or neither); the file keeps the two migration histories numbered alike.
SELECT 1;
