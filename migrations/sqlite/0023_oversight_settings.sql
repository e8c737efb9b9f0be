-- Human oversight settings per tenant (docs/OPERATIONS.md, "Human oversight"): see
-- migrations/postgres/0023_oversight_settings.sql.

CREATE TABLE oversight_settings (
    tenant_id                TEXT PRIMARY KEY,
    four_eyes                INTEGER NOT NULL CHECK (four_eyes IN (0, 1)),
    review_sla_hours         INTEGER NOT NULL CHECK (review_sla_hours > 0),
    contest_sla_hours        INTEGER NOT NULL CHECK (contest_sla_hours > 0),
    explanation_sla_hours    INTEGER NOT NULL CHECK (explanation_sla_hours > 0),
    updated_at_us            INTEGER NOT NULL,
    updated_by               TEXT NOT NULL
) STRICT;
