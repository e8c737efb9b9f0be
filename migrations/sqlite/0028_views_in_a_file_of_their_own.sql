-- The read-side views move to a database file of their own, beside this one (`<database>-views`,
-- created with its own migrations from `migrations/sqlite-views`). SQLite has one write lock per
-- file: while the views shared this file, every view page held the lock the appender needs, and
-- ingestion waited for the read side (BENCHMARKS.md, issue 19). The views are rebuilt from the
-- ledger when the service starts, as after migrations 0006 and 0027; until they have caught up,
-- they lag the ledger as any view behind does (`GET /v1/projections` shows how far).
DROP TABLE proj_decisions;
DROP TABLE proj_models;
DROP TABLE proj_model_outcomes;
DROP TABLE proj_oversight;
DROP TABLE proj_subjects;
DROP TABLE proj_daily;
DROP TABLE projection_positions;
DROP TABLE projection_state;

-- This database's identity, written once: the views file records the identity of the ledger it
-- was built from, and views built from another database (a file copied into place) are dropped
-- and rebuilt rather than served. A backup carries the identity of the database it copies.
CREATE TABLE database_identity (
    only_row  INTEGER PRIMARY KEY CHECK (only_row = 1),
    id        TEXT NOT NULL
) STRICT;
INSERT INTO database_identity (only_row, id) VALUES (1, lower(hex(randomblob(16))));
