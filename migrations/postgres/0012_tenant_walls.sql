-- Row-level security on every table that holds a tenant's rows, and accounts per tenant.
--
-- Until now the portal's tables (`users`, `sessions`, `password_resets`), `api_keys` and
-- `tenants` were readable and writable by the application role across tenants: a statement that
-- forgot its tenant, or an injected one, could read every tenant's emails and password hashes,
-- move a user into another tenant, replace a password hash or revoke another tenant's keys. Each
-- is now forced under the same policy as the ledger (the tenant set per transaction with
-- `set_config('app.tenant_id', ..., true)`; no setting, no row).
--
-- The few look-ups that happen before the tenant is known go through functions of the schema
-- owner (SECURITY DEFINER, fixed search path, EXECUTE for the application role only), each
-- returning at most one row found by an exact key derived from a secret the caller holds:
-- `api_key_for_secret` (key id and the SHA-256 of the key's secret), `session_for_id_hash`
-- (SHA-256 of the session id), `password_reset_for_token_hash` (SHA-256 of the reset token).
-- Sign-in needs none: the form names the organisation, so it runs scoped like everything else.
-- `tenant_ids` lists the tenants' ids (the runner and the checkpointer visit every tenant); it
-- reveals nothing else of them. Since row-level security is forced, the owner itself reads
-- these tables only through a policy of its own, limited to SELECT, which the functions use.
--
-- Accounts belong to one tenant: an email is unique within its tenant only, so the same person
-- may hold accounts in two tenants, and inviting an address says nothing about other tenants.
-- Sessions and reset tokens name the tenant of their user (enforced by a composite foreign key),
-- and the application role may update only the columns its work changes: never a row's tenant,
-- user or email.
--
-- The view-generation functions of 0011 now validate their arguments (a generation number
-- between 1 and the projection's next one) and their in-use guard reads `projection_state`,
-- whose generation columns can only move the way the service moves them, for every role: a
-- trigger allows starting a rebuild (a fresh number from `next_generation`), activating the
-- generation being built, or leaving the generations as they are. The application role can no
-- longer point the state away from the generation queries read and then have it dropped; the
-- most it can do is what the service does, start and switch to a rebuild, which leaves the
-- active generation guarded.

-- Reset tokens carry their user's tenant.
ALTER TABLE password_resets ADD COLUMN tenant_id TEXT;
UPDATE password_resets p SET tenant_id = u.tenant_id FROM users u WHERE u.user_id = p.user_id;
ALTER TABLE password_resets ALTER COLUMN tenant_id SET NOT NULL;

-- Emails are unique per tenant; (user_id, tenant_id) is the target of the composite keys below.
ALTER TABLE users DROP CONSTRAINT users_email_key;
DROP INDEX users_by_tenant;
ALTER TABLE users ADD CONSTRAINT users_tenant_email_key UNIQUE (tenant_id, email);
ALTER TABLE users ADD CONSTRAINT users_user_tenant_key UNIQUE (user_id, tenant_id);
ALTER TABLE sessions ADD CONSTRAINT sessions_user_tenant_fkey
    FOREIGN KEY (user_id, tenant_id) REFERENCES users (user_id, tenant_id);
ALTER TABLE password_resets ADD CONSTRAINT password_resets_user_tenant_fkey
    FOREIGN KEY (user_id, tenant_id) REFERENCES users (user_id, tenant_id);

-- Only the columns the service changes: a row's tenant, user, email and key never move.
REVOKE UPDATE ON users, sessions, password_resets, api_keys FROM auditex_app;
GRANT UPDATE (role, password_hash, password_changed_at_us, expires_at_us, disabled_at_us,
              failed_logins, locked_until_us) ON users TO auditex_app;
GRANT UPDATE (last_seen_us, ended_at_us) ON sessions TO auditex_app;
GRANT UPDATE (used_at_us) ON password_resets TO auditex_app;
GRANT UPDATE (last_used_at_us, revoked_at_us) ON api_keys TO auditex_app;

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_keys
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON users
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sessions
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
ALTER TABLE password_resets ENABLE ROW LEVEL SECURITY;
ALTER TABLE password_resets FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON password_resets
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));

-- The owner's own read access, for the functions below (forced row-level security binds it
-- too). Its name is whoever runs this migration.
DO $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['tenants', 'api_keys', 'sessions', 'password_resets'] LOOP
        EXECUTE format('CREATE POLICY schema_owner_lookup ON %I FOR SELECT TO %I USING (true)',
                       t, current_user);
    END LOOP;
END
$$;

-- Every tenant's id, for the service's background work over all tenants.
CREATE FUNCTION tenant_ids() RETURNS SETOF TEXT
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = public, pg_temp
AS $$
    SELECT tenant_id FROM tenants ORDER BY tenant_id
$$;
REVOKE ALL ON FUNCTION tenant_ids() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenant_ids() TO auditex_app;

-- The API key with this id, only if its stored hash is this one: authentication before the
-- tenant is known. (The caller compares the hash again, in constant time.)
CREATE FUNCTION api_key_for_secret(p_key_id TEXT, p_secret_hash BYTEA)
    RETURNS TABLE (key_id TEXT, tenant_id TEXT, role TEXT, secret_hash BYTEA, label TEXT,
                   created_at_us BIGINT, expires_at_us BIGINT, revoked_at_us BIGINT,
                   last_used_at_us BIGINT)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = public, pg_temp
AS $$
    SELECT k.key_id, k.tenant_id, k.role, k.secret_hash, k.label, k.created_at_us,
           k.expires_at_us, k.revoked_at_us, k.last_used_at_us
    FROM api_keys k
    WHERE k.key_id = p_key_id AND k.secret_hash = p_secret_hash
$$;
REVOKE ALL ON FUNCTION api_key_for_secret(TEXT, BYTEA) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api_key_for_secret(TEXT, BYTEA) TO auditex_app;

-- The session with this id hash: the portal learns the tenant of a request from its session.
CREATE FUNCTION session_for_id_hash(p_id_hash BYTEA)
    RETURNS TABLE (id_hash BYTEA, user_id TEXT, tenant_id TEXT, created_at_us BIGINT,
                   last_seen_us BIGINT, expires_at_us BIGINT, ended_at_us BIGINT, client TEXT)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = public, pg_temp
AS $$
    SELECT s.id_hash, s.user_id, s.tenant_id, s.created_at_us, s.last_seen_us, s.expires_at_us,
           s.ended_at_us, s.client
    FROM sessions s
    WHERE s.id_hash = p_id_hash
$$;
REVOKE ALL ON FUNCTION session_for_id_hash(BYTEA) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION session_for_id_hash(BYTEA) TO auditex_app;

-- The user and tenant of a reset token that is still usable at `p_now_us`. Using it up happens
-- afterwards, scoped to that tenant.
CREATE FUNCTION password_reset_for_token_hash(p_token_hash BYTEA, p_now_us BIGINT)
    RETURNS TABLE (user_id TEXT, tenant_id TEXT)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = public, pg_temp
AS $$
    SELECT r.user_id, r.tenant_id
    FROM password_resets r
    WHERE r.token_hash = p_token_hash AND r.used_at_us IS NULL AND r.expires_at_us > p_now_us
$$;
REVOKE ALL ON FUNCTION password_reset_for_token_hash(BYTEA, BIGINT) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION password_reset_for_token_hash(BYTEA, BIGINT) TO auditex_app;

-- The generations of a projection move only as the service moves them (for every role): a new
-- state starts at generation 1; a rebuild takes `next_generation` as its building generation;
-- activation makes the building generation active; anything else leaves the three alone.
CREATE FUNCTION projection_state_transition() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.active_generation = 1 AND NEW.building_generation IS NULL
           AND NEW.next_generation = 2 THEN
            RETURN NEW;
        END IF;
    ELSIF NEW.name = OLD.name AND (
        -- Unchanged generations.
        (NEW.active_generation = OLD.active_generation
         AND NEW.building_generation IS NOT DISTINCT FROM OLD.building_generation
         AND NEW.next_generation = OLD.next_generation)
        -- A rebuild starts with a generation number never used before.
        OR (NEW.active_generation = OLD.active_generation
            AND NEW.building_generation = OLD.next_generation
            AND NEW.next_generation = OLD.next_generation + 1)
        -- The building generation takes over.
        OR (OLD.building_generation IS NOT NULL
            AND NEW.active_generation = OLD.building_generation
            AND NEW.active_version = OLD.building_version
            AND NEW.building_generation IS NULL
            AND NEW.next_generation = OLD.next_generation)
    ) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'projection_state: generations of % cannot move that way', NEW.name
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER projection_state_transitions BEFORE INSERT OR UPDATE ON projection_state
    FOR EACH ROW EXECUTE FUNCTION projection_state_transition();

-- A generation number the functions below accept: from 1 to below the projection's next one.
CREATE FUNCTION view_generation_valid(projection TEXT, generation BIGINT) RETURNS void
    LANGUAGE plpgsql STABLE
    SET search_path = public, pg_temp
AS $$
BEGIN
    PERFORM view_tables(projection);
    IF generation IS NULL OR generation < 1 OR NOT EXISTS (
        SELECT 1 FROM projection_state s WHERE s.name = projection AND generation < s.next_generation
    ) THEN
        RAISE EXCEPTION 'generation % of projection % was never started', generation, projection
            USING ERRCODE = '22023';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION view_generation_valid(TEXT, BIGINT) FROM PUBLIC;

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
            EXECUTE format('CREATE UNIQUE INDEX IF NOT EXISTS %I ON %I (tenant_id, subject_ref, seq)', p || '_key', p);
        END IF;
        EXECUTE format('ALTER TABLE %I SET (autovacuum_enabled = true)', p);
        built := true;
    END LOOP;
    RETURN built;
END
$$;

-- Partitions only for a generation in use (the active or the building one).
CREATE OR REPLACE FUNCTION views_add_generation(projection TEXT, generation BIGINT, indexed BOOLEAN) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = public, pg_temp
AS $$
DECLARE
    t TEXT;
    p TEXT;
BEGIN
    PERFORM view_generation_valid(projection, generation);
    IF NOT EXISTS (
        SELECT 1 FROM projection_state
        WHERE name = projection
          AND (active_generation = generation OR building_generation = generation)
    ) THEN
        RAISE EXCEPTION 'generation % of projection % is not in use', generation, projection
            USING ERRCODE = '22023';
    END IF;
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

-- Drops a retired generation's partitions: never the active or the building one.
CREATE OR REPLACE FUNCTION views_drop_generation(projection TEXT, generation BIGINT) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = public, pg_temp
AS $$
DECLARE
    t TEXT;
BEGIN
    PERFORM view_generation_valid(projection, generation);
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
