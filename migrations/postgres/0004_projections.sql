-- Read-side projections (the `projections` crate). Everything here can be thrown away and rebuilt
-- from the ledger. Every view row carries the generation it belongs to: queries read the active
-- generation of `projection_state`, and a rebuild fills a new generation beside it before taking
-- over (see ARCHITECTURE.md).

CREATE TABLE projection_state (
    name                TEXT PRIMARY KEY,
    active_generation   BIGINT NOT NULL,
    active_version      INTEGER NOT NULL,
    building_generation BIGINT,
    building_version    INTEGER,
    next_generation     BIGINT NOT NULL
);

-- The next sequence number each projection generation applies, per tenant. Moved in the same
-- transaction as the view rows it accounts for.
CREATE TABLE projection_positions (
    name        TEXT NOT NULL,
    generation  BIGINT NOT NULL,
    tenant_id   TEXT NOT NULL REFERENCES tenants(tenant_id),
    next_seq    BIGINT NOT NULL CHECK (next_seq >= 0),
    PRIMARY KEY (name, generation, tenant_id)
);

CREATE TABLE proj_decisions (
    generation            BIGINT NOT NULL,
    tenant_id             TEXT NOT NULL,
    event_id              TEXT NOT NULL,
    seq                   BIGINT NOT NULL,
    model_id              TEXT NOT NULL,
    model_version         TEXT NOT NULL,
    outcome               TEXT NOT NULL,
    current_outcome       TEXT NOT NULL,
    score                 DOUBLE PRECISION,
    subject_ref           TEXT NOT NULL,
    decided_at_us         BIGINT,
    captured_at_us        BIGINT NOT NULL,
    oversight_mode        TEXT NOT NULL,
    status                TEXT NOT NULL,
    reviews               BIGINT NOT NULL,
    overrides             BIGINT NOT NULL,
    contests              BIGINT NOT NULL,
    explanation_requests  BIGINT NOT NULL,
    submissions           BIGINT NOT NULL,
    last_reviewer         TEXT,
    last_event_seq        BIGINT NOT NULL,
    PRIMARY KEY (generation, tenant_id, seq)
);

-- Search: every filter has an index that ends in seq, so a filtered page in sequence order is a
-- range scan that stops after `limit` rows.
CREATE UNIQUE INDEX proj_decisions_by_event ON proj_decisions (generation, tenant_id, event_id);
CREATE INDEX proj_decisions_by_model ON proj_decisions (generation, tenant_id, model_id, model_version, seq);
CREATE INDEX proj_decisions_by_subject ON proj_decisions (generation, tenant_id, subject_ref, seq);
CREATE INDEX proj_decisions_by_outcome ON proj_decisions (generation, tenant_id, current_outcome, seq);
CREATE INDEX proj_decisions_by_status ON proj_decisions (generation, tenant_id, status, seq);
CREATE INDEX proj_decisions_by_decided ON proj_decisions (generation, tenant_id, decided_at_us);

CREATE TABLE proj_models (
    generation       BIGINT NOT NULL,
    tenant_id        TEXT NOT NULL,
    model_id         TEXT NOT NULL,
    model_version    TEXT NOT NULL,
    first_seen_us    BIGINT,
    last_seen_us     BIGINT,
    decisions        BIGINT NOT NULL,
    reviews          BIGINT NOT NULL,
    overrides        BIGINT NOT NULL,
    contests         BIGINT NOT NULL,
    status           TEXT NOT NULL,
    validation_ref   TEXT,
    validated_at_us  BIGINT,
    approval_ref     TEXT,
    approved_at_us   BIGINT,
    findings         BIGINT NOT NULL,
    last_change_seq  BIGINT,
    PRIMARY KEY (generation, tenant_id, model_id, model_version)
);

CREATE TABLE proj_model_outcomes (
    generation     BIGINT NOT NULL,
    tenant_id      TEXT NOT NULL,
    model_id       TEXT NOT NULL,
    model_version  TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    decisions      BIGINT NOT NULL,
    PRIMARY KEY (generation, tenant_id, model_id, model_version, outcome)
);

CREATE TABLE proj_oversight (
    generation      BIGINT NOT NULL,
    tenant_id       TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    decision_id     TEXT NOT NULL,
    decision_known  BOOLEAN NOT NULL,
    actor           TEXT,
    action          TEXT,
    reason          TEXT,
    captured_at_us  BIGINT NOT NULL,
    PRIMARY KEY (generation, tenant_id, seq)
);

CREATE INDEX proj_oversight_by_decision ON proj_oversight (generation, tenant_id, decision_id, seq);
CREATE INDEX proj_oversight_by_actor ON proj_oversight (generation, tenant_id, actor, seq);

CREATE TABLE proj_subjects (
    generation      BIGINT NOT NULL,
    tenant_id       TEXT NOT NULL,
    subject_ref     TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    decision_id     TEXT,
    captured_at_us  BIGINT NOT NULL,
    PRIMARY KEY (generation, tenant_id, subject_ref, seq)
);

CREATE TABLE proj_daily (
    generation     BIGINT NOT NULL,
    tenant_id      TEXT NOT NULL,
    day            TEXT NOT NULL,
    model_id       TEXT NOT NULL,
    model_version  TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    decisions      BIGINT NOT NULL,
    PRIMARY KEY (generation, tenant_id, day, model_id, model_version, outcome)
);

-- The service (auditex_app) maintains the views: unlike the ledger they are mutable, and can be
-- rebuilt from it at any time.
GRANT SELECT, INSERT, UPDATE ON projection_state TO auditex_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON projection_positions, proj_decisions, proj_models, proj_model_outcomes, proj_oversight, proj_subjects, proj_daily TO auditex_app;

-- Row-level security as on the ledger: forced, failing closed, the tenant set per transaction.
ALTER TABLE projection_positions ENABLE ROW LEVEL SECURITY;
ALTER TABLE projection_positions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON projection_positions
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
ALTER TABLE proj_decisions ENABLE ROW LEVEL SECURITY;
ALTER TABLE proj_decisions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON proj_decisions
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
ALTER TABLE proj_models ENABLE ROW LEVEL SECURITY;
ALTER TABLE proj_models FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON proj_models
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
ALTER TABLE proj_model_outcomes ENABLE ROW LEVEL SECURITY;
ALTER TABLE proj_model_outcomes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON proj_model_outcomes
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
ALTER TABLE proj_oversight ENABLE ROW LEVEL SECURITY;
ALTER TABLE proj_oversight FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON proj_oversight
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
ALTER TABLE proj_subjects ENABLE ROW LEVEL SECURITY;
ALTER TABLE proj_subjects FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON proj_subjects
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
ALTER TABLE proj_daily ENABLE ROW LEVEL SECURITY;
ALTER TABLE proj_daily FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON proj_daily
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
