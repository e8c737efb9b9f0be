-- PostgreSQL's migration 0008 stops writing WAL for the views. SQLite has no such table kind:
-- the views are journalled with the ledger, and a committed page survives a crash with its
-- position. The file keeps the two migration histories numbered alike.
SELECT 1;
