-- PostgreSQL's migration 0007 makes the views' key columns compare as bytes. SQLite's text
-- columns already do (the BINARY collation), so there is nothing to change here; the file keeps
-- the two migration histories numbered alike.
SELECT 1;
