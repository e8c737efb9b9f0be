-- A request rate per API key: see migrations/postgres/0024_api_key_rates.sql.

ALTER TABLE api_keys ADD COLUMN rate_per_second INTEGER
    CHECK (rate_per_second IS NULL OR rate_per_second BETWEEN 1 AND 100000);
