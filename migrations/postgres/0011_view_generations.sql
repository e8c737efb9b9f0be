-- Each generation of a view is a partition of its own, and a generation gets its secondary
-- indexes only once it has caught up.
--
-- A rebuild wrote every new row through four secondary indexes of the decisions view, two of
-- the oversight view and the subject index: one B-tree descent per index and row, where
-- `perf` showed the database's time going. A generation being built is not queried, so its
-- partitions start with the keys that writing needs (primary keys for the follow-ups' updates
-- and the aggregates' upserts; the subject index not even that), and the runner has the rest
-- built by sorting, in the transaction that makes the generation active (a view's first
-- generation, which serves as it fills, once it has caught up). Applying a rebuild of 1,000,000
-- records went from 47 k to 70–75 k records/s, and to 50.8–52.8 k until the new views serve with
-- their indexes, on an idle machine (BENCHMARKS.md). Retiring a generation drops its partitions
-- instead of deleting millions of rows.
--
-- The application role owns nothing and may not create tables, so three functions of the
-- owner (SECURITY DEFINER, fixed search path, EXECUTE for the application role only) do the
-- DDL: `views_add_generation`, `views_index_generation` and `views_drop_generation`. They take
-- a projection name, which must be one of the five, and a generation number; they never drop
-- the active or building generation. Queries and writes go through the partitioned tables
-- only, whose row-level security policies apply as before; the partitions are not granted to
-- anyone and force row-level security without a policy, so read directly they show nothing.
-- Partitions are unlogged (see 0008).
--
-- The views are derived data: this migration drops them with their positions and states, and
-- the service builds them again from the ledger when it starts.

DROP TABLE proj_decisions, proj_models, proj_model_outcomes, proj_oversight, proj_subjects, proj_daily;
DELETE FROM projection_positions;
DELETE FROM projection_state;

CREATE TABLE proj_decisions (
    generation            BIGINT NOT NULL,
    tenant_id             TEXT COLLATE "C" NOT NULL,
    event_id              TEXT COLLATE "C" NOT NULL,
    seq                   BIGINT NOT NULL,
    model_id              TEXT COLLATE "C" NOT NULL,
    model_version         TEXT COLLATE "C" NOT NULL,
    outcome               TEXT NOT NULL,
    current_outcome       TEXT COLLATE "C" NOT NULL,
    score                 DOUBLE PRECISION,
    subject_ref           TEXT NOT NULL,
    decided_at_us         BIGINT,
    captured_at_us        BIGINT NOT NULL,
    oversight_mode        TEXT NOT NULL,
    status                TEXT COLLATE "C" NOT NULL,
    reviews               BIGINT NOT NULL,
    overrides             BIGINT NOT NULL,
    contests              BIGINT NOT NULL,
    explanation_requests  BIGINT NOT NULL,
    submissions           BIGINT NOT NULL,
    last_reviewer         TEXT,
    last_event_seq        BIGINT NOT NULL,
    PRIMARY KEY (generation, tenant_id, seq)
) PARTITION BY LIST (generation);

CREATE TABLE proj_models (
    generation       BIGINT NOT NULL,
    tenant_id        TEXT COLLATE "C" NOT NULL,
    model_id         TEXT COLLATE "C" NOT NULL,
    model_version    TEXT COLLATE "C" NOT NULL,
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
) PARTITION BY LIST (generation);

CREATE TABLE proj_model_outcomes (
    generation     BIGINT NOT NULL,
    tenant_id      TEXT COLLATE "C" NOT NULL,
    model_id       TEXT COLLATE "C" NOT NULL,
    model_version  TEXT COLLATE "C" NOT NULL,
    outcome        TEXT COLLATE "C" NOT NULL,
    decisions      BIGINT NOT NULL,
    PRIMARY KEY (generation, tenant_id, model_id, model_version, outcome)
) PARTITION BY LIST (generation);

CREATE TABLE proj_oversight (
    generation      BIGINT NOT NULL,
    tenant_id       TEXT COLLATE "C" NOT NULL,
    seq             BIGINT NOT NULL,
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    decision_id     TEXT COLLATE "C" NOT NULL,
    decision_known  BOOLEAN NOT NULL,
    actor           TEXT COLLATE "C",
    action          TEXT,
    reason          TEXT,
    captured_at_us  BIGINT NOT NULL,
    PRIMARY KEY (generation, tenant_id, seq)
) PARTITION BY LIST (generation);

-- No key on the table itself: a generation's unique index is built with its other indexes.
CREATE TABLE proj_subjects (
    generation   BIGINT NOT NULL,
    tenant_id    TEXT COLLATE "C" NOT NULL,
    subject_ref  TEXT COLLATE "C" NOT NULL,
    seq          BIGINT NOT NULL,
    decision_id  TEXT
) PARTITION BY LIST (generation);

CREATE TABLE proj_daily (
    generation     BIGINT NOT NULL,
    tenant_id      TEXT COLLATE "C" NOT NULL,
    day            TEXT COLLATE "C" NOT NULL,
    model_id       TEXT COLLATE "C" NOT NULL,
    model_version  TEXT COLLATE "C" NOT NULL,
    outcome        TEXT COLLATE "C" NOT NULL,
    decisions      BIGINT NOT NULL,
    PRIMARY KEY (generation, tenant_id, day, model_id, model_version, outcome)
) PARTITION BY LIST (generation);

GRANT SELECT, INSERT, UPDATE, DELETE ON proj_decisions, proj_models, proj_model_outcomes, proj_oversight, proj_subjects, proj_daily TO auditex_app;

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

-- A projection's tables, in the order a page writes them: the functions lock them in that order
-- too, so a page being committed and a function waiting on each other cannot deadlock. (Between
-- the service's own calls, the store takes the projection's `projection_state` row before any
-- function that takes the advisory lock.)
CREATE FUNCTION view_tables(projection TEXT) RETURNS TEXT[]
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = public, pg_temp
AS $$
BEGIN
    CASE projection
        WHEN 'decisions' THEN RETURN ARRAY['proj_decisions'];
        WHEN 'models' THEN RETURN ARRAY['proj_models', 'proj_model_outcomes'];
        WHEN 'oversight' THEN RETURN ARRAY['proj_oversight'];
        WHEN 'subjects' THEN RETURN ARRAY['proj_subjects'];
        WHEN 'daily' THEN RETURN ARRAY['proj_daily'];
        ELSE RAISE EXCEPTION 'unknown projection %', projection USING ERRCODE = '22023';
    END CASE;
END
$$;
REVOKE ALL ON FUNCTION view_tables(TEXT) FROM PUBLIC;

-- The planner's statistics, now of the active generations' partitions. (0010's version analysed
-- the partitioned tables, which samples every partition again for statistics of the whole that
-- no query uses — each query reads one generation, and plans with that partition's statistics —
-- and holds a lock on the partitioned table that a new generation's partitions wait for.)
CREATE OR REPLACE FUNCTION analyze_views() RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = public, pg_temp
    SET default_statistics_target = 10
AS $$
DECLARE
    s RECORD;
    t TEXT;
BEGIN
    FOR s IN SELECT name, active_generation FROM projection_state
             WHERE name IN ('decisions', 'oversight', 'subjects') ORDER BY name LOOP
        FOREACH t IN ARRAY view_tables(s.name) LOOP
            IF to_regclass(t || '_g' || s.active_generation) IS NOT NULL THEN
                EXECUTE format('ANALYZE %I', t || '_g' || s.active_generation);
            END IF;
        END LOOP;
    END LOOP;
END
$$;

-- Builds the secondary indexes of a generation's partitions (by sorting, in memory: a million
-- decisions' keys do not fit the default 64 MB), if not built yet, and lets autovacuum at them.
-- A retired generation whose tables are gone is left alone. A partition's `autovacuum_enabled =
-- false` marks it as not indexed yet: an indexed one is left alone too, without taking a lock
-- (the runner calls this once per generation whenever a process starts). Returns whether it built
-- any index, after which the runner refreshes the statistics.
CREATE FUNCTION views_index_generation(projection TEXT, generation BIGINT) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = public, pg_temp
    SET maintenance_work_mem = '256MB'
AS $$
DECLARE
    t TEXT;
    p TEXT;
    built BOOLEAN := false;
BEGIN
    -- One DDL function per projection at a time (another runner may finish the same rebuild).
    PERFORM pg_advisory_xact_lock(hashtextextended('auditex:view-generations:' || projection, 0));
    FOREACH t IN ARRAY view_tables(projection) LOOP
        p := t || '_g' || generation;
        IF to_regclass(p) IS NULL THEN
            -- A generation retired meanwhile (another instance switched over and dropped it) has
            -- nothing left to index; one in use must have its tables.
            IF NOT EXISTS (
                SELECT 1 FROM projection_state
                WHERE name = projection
                  AND (active_generation = generation OR building_generation = generation)
            ) THEN
                RETURN false;
            END IF;
            RAISE EXCEPTION 'generation % of projection % has no table %', generation, projection, p
                USING ERRCODE = '42P01';
        END IF;
        -- Indexed already (autovacuum is switched on with the indexes): nothing to lock.
        IF NOT EXISTS (
            SELECT 1 FROM pg_class
            WHERE oid = to_regclass(p) AND 'autovacuum_enabled=false' = ANY (reloptions)
        ) THEN
            CONTINUE;
        END IF;
        IF t = 'proj_decisions' THEN
            EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %I (tenant_id, model_id, model_version, seq)', p || '_by_model', p);
            EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %I (tenant_id, current_outcome, seq)', p || '_by_outcome', p);
            EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %I (tenant_id, status, seq)', p || '_by_status', p);
            EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %I (tenant_id, decided_at_us)', p || '_by_decided', p);
        ELSIF t = 'proj_oversight' THEN
            EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %I (tenant_id, decision_id, seq)', p || '_by_decision', p);
            EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %I (tenant_id, actor, seq)', p || '_by_actor', p);
        ELSIF t = 'proj_subjects' THEN
            EXECUTE format('CREATE UNIQUE INDEX IF NOT EXISTS %I ON %I (tenant_id, subject_ref, seq)', p || '_key', p);
        END IF;
        EXECUTE format('ALTER TABLE %I SET (autovacuum_enabled = true)', p);
        built := true;
    END LOOP;
    RETURN built;
END
$$;
REVOKE ALL ON FUNCTION views_index_generation(TEXT, BIGINT) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION views_index_generation(TEXT, BIGINT) TO auditex_app;

-- Creates a generation's partitions if missing, with their secondary indexes when `indexed`, or
-- without them (the runner has them built once the generation has caught up). Partitions are
-- left alone by autovacuum until they are indexed: it would vacuum and analyse them again and
-- again as they grow, on the cores the rebuild uses, and the index builds would wait for it.
CREATE FUNCTION views_add_generation(projection TEXT, generation BIGINT, indexed BOOLEAN) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = public, pg_temp
AS $$
DECLARE
    t TEXT;
    p TEXT;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('auditex:view-generations:' || projection, 0));
    FOREACH t IN ARRAY view_tables(projection) LOOP
        p := t || '_g' || generation;
        EXECUTE format('CREATE UNLOGGED TABLE IF NOT EXISTS %I PARTITION OF %I FOR VALUES IN (%s) WITH (autovacuum_enabled = false)',
                       p, t, generation);
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', p);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', p);
    END LOOP;
    IF indexed THEN
        PERFORM views_index_generation(projection, generation);
    END IF;
END
$$;
REVOKE ALL ON FUNCTION views_add_generation(TEXT, BIGINT, BOOLEAN) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION views_add_generation(TEXT, BIGINT, BOOLEAN) TO auditex_app;

-- Drops a retired generation's partitions: never the active or the building one.
CREATE FUNCTION views_drop_generation(projection TEXT, generation BIGINT) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = public, pg_temp
AS $$
DECLARE
    t TEXT;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('auditex:view-generations:' || projection, 0));
    IF EXISTS (
        SELECT 1 FROM projection_state
        WHERE name = projection
          AND (active_generation = generation OR building_generation = generation)
    ) THEN
        RAISE EXCEPTION 'generation % of projection % is in use', generation, projection
            USING ERRCODE = '55006';
    END IF;
    FOREACH t IN ARRAY view_tables(projection) LOOP
        EXECUTE format('DROP TABLE IF EXISTS %I', t || '_g' || generation);
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION views_drop_generation(TEXT, BIGINT) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION views_drop_generation(TEXT, BIGINT) TO auditex_app;
