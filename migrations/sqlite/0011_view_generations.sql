-- PostgreSQL's migration 0011 makes each generation of a view a partition of its own, indexed
-- once it has caught up. SQLite keeps every generation in the same tables. The file keeps the two
-- migration histories numbered alike.
SELECT 1;
