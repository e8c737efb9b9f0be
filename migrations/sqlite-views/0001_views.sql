-- The read-side views of the embedded SQLite backend, in a database file of their own beside the
-- ledger's (`<database>-views`): their own write-ahead log and write lock, so that view pages and
-- appends never wait for each other. Reader connections attach this file, so queries name the
-- view tables and the ledger's tables alike. The schema is that of the ledger file's migrations
-- 0004–0027, which created these tables there before migration 0028 moved them here; the
-- positions name their tenant without a foreign key, which SQLite cannot keep across files.

-- Where the views stand in each tenant's chain: the number of records applied (the greatest
-- position of any view) and the hash of the last of them, as the ledger stored it. The record
-- hash commits to the whole chain before it, so one comparison tells whether the views were
-- built from a prefix of the ledger beside them (`SqliteDb::open`).
CREATE TABLE view_anchors (
    tenant_id  TEXT PRIMARY KEY NOT NULL,
    next_seq   INTEGER NOT NULL CHECK (next_seq > 0),
    last_hash  BLOB NOT NULL CHECK (length(last_hash) = 32)
) STRICT;

CREATE TABLE projection_state (
    name                TEXT PRIMARY KEY NOT NULL,
    active_generation   INTEGER NOT NULL,
    active_version      INTEGER NOT NULL,
    building_generation INTEGER,
    building_version    INTEGER,
    next_generation     INTEGER NOT NULL
) STRICT;

CREATE TABLE projection_positions (
    name            TEXT NOT NULL,
    generation      INTEGER NOT NULL,
    tenant_id       TEXT NOT NULL,
    next_seq        INTEGER NOT NULL CHECK (next_seq >= 0),
    stuck_error     TEXT,
    stuck_since_us  INTEGER,
    PRIMARY KEY (name, generation, tenant_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE proj_decisions (
    generation            INTEGER NOT NULL,
    tenant_id             TEXT NOT NULL,
    event_id              TEXT NOT NULL,
    seq                   INTEGER NOT NULL,
    model_id              TEXT NOT NULL,
    model_version         TEXT NOT NULL,
    outcome               TEXT NOT NULL,
    current_outcome       TEXT NOT NULL,
    score                 REAL,
    subject_ref           TEXT NOT NULL,
    decided_at_us         INTEGER,
    captured_at_us        INTEGER NOT NULL,
    oversight_mode        TEXT NOT NULL,
    status                TEXT NOT NULL,
    reviews               INTEGER NOT NULL,
    overrides             INTEGER NOT NULL,
    contests              INTEGER NOT NULL,
    explanation_requests  INTEGER NOT NULL,
    submissions           INTEGER NOT NULL,
    last_reviewer         TEXT,
    last_event_seq        INTEGER NOT NULL,
    PRIMARY KEY (generation, tenant_id, seq)
) STRICT, WITHOUT ROWID;

-- Search: every filter has an index that ends in seq, so a filtered page in sequence order is a
-- range scan that stops after `limit` rows. A decision by event id is found through the ledger's
-- event-id index (the view keeps none).
CREATE INDEX proj_decisions_by_model ON proj_decisions (generation, tenant_id, model_id, model_version, seq);
CREATE INDEX proj_decisions_by_outcome ON proj_decisions (generation, tenant_id, current_outcome, seq);
CREATE INDEX proj_decisions_by_status ON proj_decisions (generation, tenant_id, status, seq);
CREATE INDEX proj_decisions_by_decided ON proj_decisions (generation, tenant_id, decided_at_us);

CREATE TABLE proj_models (
    generation       INTEGER NOT NULL,
    tenant_id        TEXT NOT NULL,
    model_id         TEXT NOT NULL,
    model_version    TEXT NOT NULL,
    first_seen_us    INTEGER,
    last_seen_us     INTEGER,
    decisions        INTEGER NOT NULL,
    reviews          INTEGER NOT NULL,
    overrides        INTEGER NOT NULL,
    contests         INTEGER NOT NULL,
    status           TEXT NOT NULL,
    validation_ref   TEXT,
    validated_at_us  INTEGER,
    approval_ref     TEXT,
    approved_at_us   INTEGER,
    findings         INTEGER NOT NULL,
    last_change_seq  INTEGER,
    PRIMARY KEY (generation, tenant_id, model_id, model_version)
) STRICT, WITHOUT ROWID;

CREATE TABLE proj_model_outcomes (
    generation     INTEGER NOT NULL,
    tenant_id      TEXT NOT NULL,
    model_id       TEXT NOT NULL,
    model_version  TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    decisions      INTEGER NOT NULL,
    PRIMARY KEY (generation, tenant_id, model_id, model_version, outcome)
) STRICT, WITHOUT ROWID;

CREATE TABLE proj_oversight (
    generation      INTEGER NOT NULL,
    tenant_id       TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    decision_id     TEXT NOT NULL,
    decision_known  INTEGER NOT NULL,
    actor           TEXT,
    action          TEXT,
    reason          TEXT,
    captured_at_us  INTEGER NOT NULL,
    PRIMARY KEY (generation, tenant_id, seq)
) STRICT, WITHOUT ROWID;
CREATE INDEX proj_oversight_by_decision ON proj_oversight (generation, tenant_id, decision_id, seq);
CREATE INDEX proj_oversight_by_actor ON proj_oversight (generation, tenant_id, actor, seq);

-- Entries lead with their bucket of sequence numbers (`seq >> 12`; see the ledger file's
-- migration 0027): a page's entries fall in the current bucket's few pages.
CREATE TABLE proj_subjects (
    generation   INTEGER NOT NULL,
    tenant_id    TEXT NOT NULL,
    bucket       INTEGER NOT NULL,
    subject_ref  TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    decision_id  TEXT,
    PRIMARY KEY (generation, tenant_id, bucket, subject_ref, seq)
) STRICT, WITHOUT ROWID;

CREATE TABLE proj_daily (
    generation     INTEGER NOT NULL,
    tenant_id      TEXT NOT NULL,
    day            TEXT NOT NULL,
    model_id       TEXT NOT NULL,
    model_version  TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    decisions      INTEGER NOT NULL,
    PRIMARY KEY (generation, tenant_id, day, model_id, model_version, outcome)
) STRICT, WITHOUT ROWID;
