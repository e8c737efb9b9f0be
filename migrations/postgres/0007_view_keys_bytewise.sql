-- The views' key columns compare as bytes (COLLATE "C"), as SQLite's do. Every insert into a
-- view's B-tree compares text keys at each level; under the database's default collation each
-- comparison goes through the C library's locale-aware strcoll (even for C.UTF-8), which a
-- profile of a rebuild showed as a large share of the time spent inserting index entries. The
-- keys are identifiers (tenant, event and model ids, subject references, ISO days), for which
-- byte order is also the order wanted: it no longer depends on the server's locale.
--
-- A column used in a row-level security policy cannot change type, so each table's policy is
-- dropped and created again (the same policy) around the change. Each table and its indexes
-- are rewritten: on a large deployment this migration takes about as long as building the
-- views' indexes.

DROP POLICY tenant_isolation ON proj_decisions;
ALTER TABLE proj_decisions
    ALTER COLUMN tenant_id TYPE TEXT COLLATE "C",
    ALTER COLUMN event_id TYPE TEXT COLLATE "C",
    ALTER COLUMN model_id TYPE TEXT COLLATE "C",
    ALTER COLUMN model_version TYPE TEXT COLLATE "C",
    ALTER COLUMN current_outcome TYPE TEXT COLLATE "C",
    ALTER COLUMN status TYPE TEXT COLLATE "C";
CREATE POLICY tenant_isolation ON proj_decisions
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));

DROP POLICY tenant_isolation ON proj_models;
ALTER TABLE proj_models
    ALTER COLUMN tenant_id TYPE TEXT COLLATE "C",
    ALTER COLUMN model_id TYPE TEXT COLLATE "C",
    ALTER COLUMN model_version TYPE TEXT COLLATE "C";
CREATE POLICY tenant_isolation ON proj_models
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));

DROP POLICY tenant_isolation ON proj_model_outcomes;
ALTER TABLE proj_model_outcomes
    ALTER COLUMN tenant_id TYPE TEXT COLLATE "C",
    ALTER COLUMN model_id TYPE TEXT COLLATE "C",
    ALTER COLUMN model_version TYPE TEXT COLLATE "C",
    ALTER COLUMN outcome TYPE TEXT COLLATE "C";
CREATE POLICY tenant_isolation ON proj_model_outcomes
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));

DROP POLICY tenant_isolation ON proj_oversight;
ALTER TABLE proj_oversight
    ALTER COLUMN tenant_id TYPE TEXT COLLATE "C",
    ALTER COLUMN decision_id TYPE TEXT COLLATE "C",
    ALTER COLUMN actor TYPE TEXT COLLATE "C";
CREATE POLICY tenant_isolation ON proj_oversight
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));

DROP POLICY tenant_isolation ON proj_subjects;
ALTER TABLE proj_subjects
    ALTER COLUMN tenant_id TYPE TEXT COLLATE "C",
    ALTER COLUMN subject_ref TYPE TEXT COLLATE "C";
CREATE POLICY tenant_isolation ON proj_subjects
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));

DROP POLICY tenant_isolation ON proj_daily;
ALTER TABLE proj_daily
    ALTER COLUMN tenant_id TYPE TEXT COLLATE "C",
    ALTER COLUMN day TYPE TEXT COLLATE "C",
    ALTER COLUMN model_id TYPE TEXT COLLATE "C",
    ALTER COLUMN model_version TYPE TEXT COLLATE "C",
    ALTER COLUMN outcome TYPE TEXT COLLATE "C";
CREATE POLICY tenant_isolation ON proj_daily
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
