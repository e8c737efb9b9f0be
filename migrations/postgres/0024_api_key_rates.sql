-- A request rate per API key (docs/OPERATIONS.md, "Rate limits"): NULL keeps the service's
-- default for the key's role; a number (1 to 100,000 requests a second) replaces it for that key
-- alone, set with `auditex apikey rate` or on the portal's API keys page. The application role
-- may change only this column besides the last-use and revocation times.

-- The function reads `api_keys` through its owner's own policy (0012), so it must belong to the
-- owner of `api_keys`: run by another role, this migration stops here and changes nothing,
-- instead of leaving an authentication that finds no key.
DO $$
BEGIN
    IF (SELECT tableowner FROM pg_tables WHERE schemaname = 'public' AND tablename = 'api_keys')
        <> current_user THEN
        RAISE EXCEPTION 'migration 0024 must be run by the owner of the api_keys table';
    END IF;
END
$$;

ALTER TABLE api_keys ADD COLUMN rate_per_second BIGINT
    CHECK (rate_per_second IS NULL OR rate_per_second BETWEEN 1 AND 100000);
GRANT UPDATE (rate_per_second) ON api_keys TO auditex_app;

-- Authentication reads the rate with the key: the function's columns change, so it is made
-- again with the same name, checks and privileges as in 0012.
DROP FUNCTION api_key_for_secret(TEXT, BYTEA);
CREATE FUNCTION api_key_for_secret(p_key_id TEXT, p_secret_hash BYTEA)
    RETURNS TABLE (key_id TEXT, tenant_id TEXT, role TEXT, secret_hash BYTEA, label TEXT,
                   created_at_us BIGINT, expires_at_us BIGINT, revoked_at_us BIGINT,
                   last_used_at_us BIGINT, rate_per_second BIGINT)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = public, pg_temp
AS $$
    SELECT k.key_id, k.tenant_id, k.role, k.secret_hash, k.label, k.created_at_us,
           k.expires_at_us, k.revoked_at_us, k.last_used_at_us, k.rate_per_second
    FROM api_keys k
    WHERE k.key_id = p_key_id AND k.secret_hash = p_secret_hash
$$;
REVOKE ALL ON FUNCTION api_key_for_secret(TEXT, BYTEA) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api_key_for_secret(TEXT, BYTEA) TO auditex_app;

