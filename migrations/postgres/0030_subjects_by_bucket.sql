-- The subjects view's entries carry their bucket of sequence numbers (`seq >> 12`) and each
-- generation's key leads with it, ahead of the subject: a view page's new entries fall in the
-- current bucket's few index pages instead of one page per subject. See
-- migrations/sqlite/0027_subjects_by_bucket.sql; the queries are in
-- `src/store/views/shared.rs`.
--
-- The entries already there get their bucket here. Each generation's old key goes first, so
-- the update does not maintain it; the generations that had one (those with autovacuum on: see
-- `views_index_generation`) get the new one after. Row-level security is forced on the table,
-- for its owner too: lifted for this update alone, inside this migration's transaction.
SET LOCAL maintenance_work_mem = '256MB';
DO $$
DECLARE
    p TEXT;
BEGIN
    FOR p IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'proj_subjects'::regclass
    LOOP
        EXECUTE format('DROP INDEX IF EXISTS %I', p || '_key');
    END LOOP;
END
$$;
ALTER TABLE proj_subjects ADD COLUMN bucket BIGINT;
ALTER TABLE proj_subjects NO FORCE ROW LEVEL SECURITY;
UPDATE proj_subjects SET bucket = seq >> 12;
ALTER TABLE proj_subjects FORCE ROW LEVEL SECURITY;
ALTER TABLE proj_subjects ALTER COLUMN bucket SET NOT NULL;
DO $$
DECLARE
    p TEXT;
BEGIN
    FOR p IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'proj_subjects'::regclass
          AND NOT ('autovacuum_enabled=false' = ANY (COALESCE(c.reloptions, '{}')))
    LOOP
        EXECUTE format('CREATE UNIQUE INDEX %I ON %I (tenant_id, bucket, subject_ref, seq)', p || '_key', p);
    END LOOP;
END
$$;

-- Generations indexed from now on: as in migration 0012, with the subjects' key so.
CREATE OR REPLACE FUNCTION views_index_generation(projection TEXT, generation BIGINT) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = public, pg_temp
    SET maintenance_work_mem = '256MB'
AS $$
DECLARE
    t TEXT;
    p TEXT;
    built BOOLEAN := false;
BEGIN
    PERFORM view_generation_valid(projection, generation);
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
            EXECUTE format('CREATE UNIQUE INDEX IF NOT EXISTS %I ON %I (tenant_id, bucket, subject_ref, seq)', p || '_key', p);
        END IF;
        EXECUTE format('ALTER TABLE %I SET (autovacuum_enabled = true)', p);
        built := true;
    END LOOP;
    RETURN built;
END
$$;

-- The planner's statistics of the rewritten partitions, with the new column.
SELECT analyze_views();
