-- A projection generation that cannot apply one of a tenant's records, even alone, is marked
-- stuck at it on its position row: `stuck_error` holds why (NULL while it is not stuck) and
-- `stuck_since_us` when it was marked. The runner skips a stuck generation for that tenant only,
-- so every other tenant and projection keeps up; `auditex projections retry` clears the mark.
-- The position itself (`next_seq`) is the record it stopped at, so its lag is computed from the
-- chain's length like any other and keeps growing while it is stuck, across restarts.
ALTER TABLE projection_positions ADD COLUMN stuck_error TEXT;
ALTER TABLE projection_positions ADD COLUMN stuck_since_us BIGINT;
