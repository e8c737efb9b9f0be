-- The subjects view's entries lead with their bucket of sequence numbers (`seq >> 12`, as the
-- stored values' subject index of migration 0026). Keyed by subject first, each new entry went
-- to its subject's place in a table as large as all of the tenant's records: a view page of
-- 1,000 records with as many subjects dirtied about one 4 KiB page per record, each written to
-- the write-ahead log at the commit, and the view's writes held the one writer the appenders
-- also need. A page's entries now fall in the current bucket's few pages. A subject's entries
-- are found by one probe per bucket (`subject_page` in `src/store/views/shared.rs`).
--
-- The table is made again, empty, and the projection runner fills the subjects view again from
-- the ledger when the service starts, as after migration 0006; until it has caught up, the view
-- lags the ledger as any view behind does (`GET /v1/projections` shows how far).
DROP TABLE proj_subjects;

CREATE TABLE proj_subjects (
    generation   INTEGER NOT NULL,
    tenant_id    TEXT NOT NULL,
    bucket       INTEGER NOT NULL,
    subject_ref  TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    decision_id  TEXT,
    PRIMARY KEY (generation, tenant_id, bucket, subject_ref, seq)
) STRICT, WITHOUT ROWID;

DELETE FROM projection_positions WHERE name = 'subjects';
DELETE FROM projection_state WHERE name = 'subjects';
