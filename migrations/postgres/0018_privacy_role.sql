-- API keys of the `privacy` role: a bank's data-protection office answers subjects' erasure
-- requests (POST /v1/subjects/{subject_ref}/erasure) with them, and may read nothing else but
-- the subject index. The role list of `api_keys` (migration 0002) gains the name.

ALTER TABLE api_keys DROP CONSTRAINT api_keys_role_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_role_check
    CHECK (role IN ('ingest', 'read', 'verify', 'privacy'));
