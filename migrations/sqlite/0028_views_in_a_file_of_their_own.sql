-- The read-side views move to a database file of their own, beside this one (`<database>-views`,
-- created with its own migrations from `migrations/sqlite-views`). SQLite has one write lock per
-- file: while the views shared this file, every view page held the lock the appender needs, and
-- ingestion waited for the read side (BENCHMARKS.md, issue 19). The views are rebuilt from the
-- ledger when the service starts, as after migrations 0006 and 0027; until they have caught up,
-- they lag the ledger as any view behind does (`GET /v1/projections` shows how far).
--
-- The views hold no erasable value (FORMAT.md; the projections never receive one), so their pages
-- are freed without being overwritten: with `secure_delete` on, dropping them would write every
-- page of the views to the write-ahead log once more, zeroed, in this one transaction. The
-- setting is the connection's and goes back on before the transaction ends. The freed pages stay
-- in this file and are used again as the ledger grows (`VACUUM`, with the service stopped, gives
-- them back to the file system).
PRAGMA secure_delete = OFF;
DROP TABLE proj_decisions;
DROP TABLE proj_models;
DROP TABLE proj_model_outcomes;
DROP TABLE proj_oversight;
DROP TABLE proj_subjects;
DROP TABLE proj_daily;
DROP TABLE projection_positions;
DROP TABLE projection_state;
PRAGMA secure_delete = ON;
