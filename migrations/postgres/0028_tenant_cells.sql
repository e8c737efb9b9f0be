-- Tenant cells (docs/OPERATIONS.md, "Tenant cells"): a tenant's ledger and views may live on
-- another PostgreSQL cluster (a cell) than this one, the home database, which keeps the tenant's
-- API keys, portal accounts and sessions. Every cell runs the full schema; which tables a cell
-- uses for a tenant is the service's business, not the schema's.

-- Where each tenant's ledger lives, read on the home database by every node. A tenant without a
-- row lives on the home database.
-- `version` is drawn from a sequence at every change, so the sum of the versions grows with every
-- committed change, whatever order concurrent changes commit in: the nodes' question "did any
-- placement change?" is that sum (not the maximum: a change that drew a smaller version may
-- commit after one that drew a larger, and the maximum would not move).
CREATE SEQUENCE tenant_placement_versions;
CREATE TABLE tenant_placements (
    tenant_id     TEXT PRIMARY KEY REFERENCES tenants(tenant_id),
    cell          TEXT NOT NULL CHECK (cell ~ '^[a-z0-9][a-z0-9-]{0,31}$'),
    placed_at_us  BIGINT NOT NULL,
    version       BIGINT NOT NULL DEFAULT nextval('tenant_placement_versions')
);
GRANT SELECT, INSERT, UPDATE ON tenant_placements TO auditex_app;
GRANT USAGE ON SEQUENCE tenant_placement_versions TO auditex_app;
ALTER TABLE tenant_placements ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_placements FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_placements
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
DO $$
BEGIN
    EXECUTE format('CREATE POLICY schema_owner_lookup ON tenant_placements FOR SELECT TO %I USING (true)',
                   current_user);
END
$$;

-- Every placement, for the nodes' routing table.
CREATE FUNCTION tenant_placement_list() RETURNS TABLE (tenant_id TEXT, cell TEXT)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = public, pg_temp
AS $$
    SELECT tenant_id, cell FROM tenant_placements ORDER BY tenant_id
$$;
REVOKE ALL ON FUNCTION tenant_placement_list() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenant_placement_list() TO auditex_app;

-- What the nodes ask four times a second: whether any placement changed since they read them.
CREATE FUNCTION tenant_placement_stamp() RETURNS TEXT
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = public, pg_temp
AS $$
    SELECT COALESCE(sum(version), 0)::text FROM tenant_placements
$$;
REVOKE ALL ON FUNCTION tenant_placement_stamp() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenant_placement_stamp() TO auditex_app;

-- A fenced tenant's data on this database is frozen: `auditex tenant move` fences the source
-- for good once the tenant has left (and the target for the few seconds the nodes take to learn
-- the new placement). Every write to a tenant's ledger or views runs with `app.tenant_id` set
-- (row-level security refuses it otherwise), so one statement-level trigger per table, checking
-- that setting, refuses every write of a fenced tenant, whatever node or code path sends it.
-- It runs after the statement, in a snapshot of its own: a write either sees the fence or was
-- in progress when the fence committed, and the move waits for those before it copies.
CREATE TABLE tenant_fences (
    tenant_id     TEXT PRIMARY KEY,
    reason        TEXT NOT NULL,
    fenced_at_us  BIGINT NOT NULL
);
GRANT SELECT, INSERT, DELETE ON tenant_fences TO auditex_app;
ALTER TABLE tenant_fences ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_fences FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_fences
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));

CREATE FUNCTION auditex_refuse_fenced() RETURNS trigger LANGUAGE plpgsql
    SET search_path = public, pg_temp
AS $$
DECLARE
    why TEXT;
BEGIN
    -- The copy a move writes to its (fenced) target sets this for its own transactions.
    IF current_setting('app.move_copy', true) = 'on' THEN
        RETURN NULL;
    END IF;
    SELECT reason INTO why FROM tenant_fences
     WHERE tenant_id = NULLIF(current_setting('app.tenant_id', true), '');
    IF why IS NOT NULL THEN
        -- SQLSTATE AXF01: the service answers 503 with Retry-After and routes again.
        RAISE EXCEPTION 'tenant % is fenced on this database: %',
            current_setting('app.tenant_id', true), why
            USING ERRCODE = 'AXF01';
    END IF;
    RETURN NULL;
END
$$;

DO $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['signing_keys', 'records', 'merkle_nodes', 'checkpoints',
                             'abandoned_checkpoints', 'checkpoint_cosignatures',
                             'erasable_values', 'data_keys', 'erased_values', 'erasures',
                             'erasure_reapplications', 'legal_holds', 'retention_rules',
                             'tenant_origins', 'tenant_tile_access', 'tenant_witnesses',
                             'projection_positions'] LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON %I
                        FOR EACH STATEMENT EXECUTE FUNCTION auditex_refuse_fenced()',
                       t || '_fence', t);
    END LOOP;
END
$$;
