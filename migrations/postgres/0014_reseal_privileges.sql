-- `auditex master-key rotate` re-seals every private signing key and erasable value under a new
-- master key while the service runs, as the application role. It may now rewrite the sealed
-- column of those two tables and nothing else: the public key, the validity range (beyond the
-- existing until_seq grant) and the erasable value's salt stay out of reach, and row-level
-- security still limits each statement to the tenant set for its transaction.
GRANT UPDATE (sealed_secret) ON signing_keys TO auditex_app;
GRANT UPDATE (sealed) ON erasable_values TO auditex_app;
