-- The ledger schema on embedded SQLite. Never edit this file once released: add a new migration.

CREATE TABLE tenants (
    tenant_id      TEXT PRIMARY KEY NOT NULL,
    created_at_us  INTEGER NOT NULL
) STRICT;

-- Signing keys: public half in clear, private half sealed with AES-256-GCM under the master key.
-- Validity is a range of sequence numbers [from_seq, until_seq); until_seq is set once, at rotation.
CREATE TABLE signing_keys (
    tenant_id      TEXT NOT NULL REFERENCES tenants(tenant_id),
    key_id         TEXT NOT NULL,
    public_key     BLOB NOT NULL CHECK (length(public_key) = 32),
    sealed_secret  BLOB NOT NULL,
    from_seq       INTEGER NOT NULL,
    until_seq      INTEGER,
    created_at_us  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, key_id)
) STRICT;

CREATE TABLE records (
    tenant_id       TEXT NOT NULL REFERENCES tenants(tenant_id),
    seq             INTEGER NOT NULL CHECK (seq >= 0),
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    captured_at_us  INTEGER NOT NULL,
    prev            BLOB NOT NULL CHECK (length(prev) = 32),
    hash            BLOB NOT NULL CHECK (length(hash) = 32),
    key_id          TEXT NOT NULL,
    sig             BLOB NOT NULL CHECK (length(sig) = 64),
    payload         TEXT NOT NULL,
    erasable        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
) STRICT, WITHOUT ROWID;

-- Idempotency lookups go by event id. Queries name this index (INDEXED BY): without statistics
-- SQLite's planner would otherwise scan the tenant's whole primary-key range.
CREATE UNIQUE INDEX records_by_event_id ON records (tenant_id, event_id);

-- Proofs read up to 256 consecutive record hashes (one Merkle tile). This narrow covering index
-- serves them without touching the wide record rows.
CREATE INDEX records_leaf_hashes ON records (tenant_id, seq, hash);

-- Records are written once. These triggers refuse any change, whoever asks.
CREATE TRIGGER records_no_update BEFORE UPDATE ON records
BEGIN SELECT RAISE(ABORT, 'records are append-only: UPDATE is not allowed'); END;
CREATE TRIGGER records_no_delete BEFORE DELETE ON records
BEGIN SELECT RAISE(ABORT, 'records are append-only: DELETE is not allowed'); END;

-- Merkle tile hashes: perfect-subtree hashes at levels 8, 16, 24, ... (level 0 is derived from
-- records.hash). A node at another level is computed from at most 256 hashes of the level below
-- it that is a multiple of 8, so any proof needs O(log n / 8) range reads.
CREATE TABLE merkle_nodes (
    tenant_id  TEXT NOT NULL REFERENCES tenants(tenant_id),
    level      INTEGER NOT NULL CHECK (level > 0 AND level % 8 = 0),
    idx        INTEGER NOT NULL CHECK (idx >= 0),
    hash       BLOB NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (tenant_id, level, idx)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER merkle_nodes_no_update BEFORE UPDATE ON merkle_nodes
BEGIN SELECT RAISE(ABORT, 'merkle nodes are append-only: UPDATE is not allowed'); END;
CREATE TRIGGER merkle_nodes_no_delete BEFORE DELETE ON merkle_nodes
BEGIN SELECT RAISE(ABORT, 'merkle nodes are append-only: DELETE is not allowed'); END;

-- Every checkpoint ever published, so that consistency between any two can be proven.
CREATE TABLE checkpoints (
    tenant_id        TEXT NOT NULL REFERENCES tenants(tenant_id),
    tree_size        INTEGER NOT NULL CHECK (tree_size >= 0),
    root             BLOB NOT NULL CHECK (length(root) = 32),
    signed_note      TEXT NOT NULL,
    published_at_us  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, tree_size)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only: UPDATE is not allowed'); END;
CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only: DELETE is not allowed'); END;

-- Erasable values (personal data) beside their records, sealed under the master key. Unlike
-- records these rows may be deleted: that is how erasure works, and it leaves every hash intact.
CREATE TABLE erasable_values (
    tenant_id  TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    field      TEXT NOT NULL,
    salt       BLOB NOT NULL CHECK (length(salt) = 32),
    sealed     BLOB NOT NULL,
    PRIMARY KEY (tenant_id, seq, field),
    FOREIGN KEY (tenant_id, seq) REFERENCES records(tenant_id, seq)
) STRICT, WITHOUT ROWID;
