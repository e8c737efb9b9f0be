-- Read-side projections (the `projections` crate). Everything here can be thrown away and rebuilt
-- from the ledger. Every view row carries the generation it belongs to: queries read the active
-- generation of `projection_state`, and a rebuild fills a new generation beside it before taking
-- over (see ARCHITECTURE.md).

CREATE TABLE projection_state (
    name                TEXT PRIMARY KEY NOT NULL,
    active_generation   INTEGER NOT NULL,
    active_version      INTEGER NOT NULL,
    building_generation INTEGER,
    building_version    INTEGER,
    next_generation     INTEGER NOT NULL
) STRICT;

-- The next sequence number each projection generation applies, per tenant. Moved in the same
-- transaction as the view rows it accounts for.
CREATE TABLE projection_positions (
    name        TEXT NOT NULL,
    generation  INTEGER NOT NULL,
    tenant_id   TEXT NOT NULL REFERENCES tenants(tenant_id),
    next_seq    INTEGER NOT NULL CHECK (next_seq >= 0),
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
-- range scan that stops after `limit` rows.
CREATE UNIQUE INDEX proj_decisions_by_event ON proj_decisions (generation, tenant_id, event_id);
CREATE INDEX proj_decisions_by_model ON proj_decisions (generation, tenant_id, model_id, model_version, seq);
CREATE INDEX proj_decisions_by_subject ON proj_decisions (generation, tenant_id, subject_ref, seq);
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

CREATE TABLE proj_subjects (
    generation      INTEGER NOT NULL,
    tenant_id       TEXT NOT NULL,
    subject_ref     TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    decision_id     TEXT,
    captured_at_us  INTEGER NOT NULL,
    PRIMARY KEY (generation, tenant_id, subject_ref, seq)
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
