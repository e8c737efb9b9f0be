//! The storage seam: every statement the store sends to a database goes through the [`Backend`]
//! trait, implemented once per database — [`SqliteDb`](super::sqlite::SqliteDb) in `sqlite.rs`
//! (and `sqlite/`) and [`PgDb`](super::postgres::PgDb) in `postgres.rs` (and `postgres/`).
//!
//! The rest of the store (`mod.rs`, `appender.rs`, `users.rs`, `views.rs`, …) holds the domain
//! logic — hashing, sealing, proofs, token rules, turning rows into types — and calls the seam
//! through an `Arc<dyn Backend>`; it never names a backend. A backend owns its connections and
//! how a statement runs on them: on SQLite, writes on the single writer connection of the ledger's
//! file or of the views' file, and reads on the reader pool, which attaches the views' file; on
//! PostgreSQL, every tenant-scoped statement in a transaction that sets the tenant for row-level
//! security.
//!
//! The trait is split by the tables it reaches: [`LedgerBackend`] (tenants, signing keys,
//! records, checkpoints, Merkle tiles), [`AccessBackend`] (API keys, portal users, sessions,
//! reset tokens) and [`ViewBackend`] (the projections' views, implemented in `views.rs` beside
//! the view SQL of each backend). A new query is one method on the sub-trait of its tables and
//! one implementation in each backend; a new backend is one type implementing the four traits
//! and one arm in `open_backend` and `migrate_backend` (`store/mod.rs`).
//!
//! Dynamic dispatch costs one boxed future per call, nothing per row: the append path makes the
//! same round trips it would with the backends called directly.

use std::path::Path;

use ledger::record::EventType;
use ledger::types::{EventId, Hash, Sequence, TenantId, TreeSize};
use projections::runner::{ProjectionState, Stuck, TargetPage};
use projections::{DecisionFacts, Event, Views};

use super::api_keys::ApiKeyRow;
use super::cells::{MoveCopied, MovePrecopy};
use super::erasure::ErasureScope;
use super::erasure_sql::{NewDataKeyRow, StoredValueRow, SubjectValueRow};
use super::holds::{HoldChange, HoldRow};
use super::integrity_runs::IntegrityRunRow;
use super::reseal::Resealed;
use super::retention::{RetentionCandidate, RetentionRule};
use super::rows::{Session, SessionTuple, UserTuple};
use super::view_query::{
    ChartWindow, DashboardCharts, DecisionQuery, ModelCharts, OversightQuery, Page,
};
use super::{
    ChainHead, KeyRow, NewErasableRow, NewRecordRow, PublicationReads, RecordRow, StoreError,
    StoredCheckpoint,
};

/// Why a backend without tenant cells cannot move a tenant.
fn no_cells() -> StoreError {
    StoreError::Cells(
        "tenant cells are PostgreSQL clusters: set AUDITEX_DATABASE_URL and AUDITEX_CELLS".into(),
    )
}

/// A tenant's oversight settings as stored: four eyes and the three service levels in hours
/// (see `oversight.rs`).
pub(crate) type SettingsTuple = (bool, i64, i64, i64);

/// Which database a backend talks to, for the few decisions made above the seam that depend on
/// it (what a backup means, which tuning defaults apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BackendKind {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// One database behind the store: the ledger, access and view tables, and the database's own
/// housekeeping.
#[async_trait::async_trait]
pub(crate) trait Backend: LedgerBackend + AccessBackend + ViewBackend {
    /// Which database this is.
    fn kind(&self) -> BackendKind;

    /// On PostgreSQL, the node used as the primary and what happened to it (`/metrics`).
    fn primary(&self) -> Option<PrimaryInfo> {
        None
    }

    /// On PostgreSQL, the read replicas and what the watcher last measured of them.
    fn read_replicas(&self) -> Vec<ReplicaInfo> {
        Vec::new()
    }

    /// Whether the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The version of the SQLite library in use; `None` on other databases.
    async fn sqlite_version(&self) -> Option<String>;

    /// Writes a consistent copy of the whole database to the file `dest` while appends carry on
    /// (SQLite's `VACUUM INTO`).
    ///
    /// # Errors
    /// [`StoreError::Backup`] on a database that is not copied this way (PostgreSQL is backed up
    /// with its own tools), or when the copy fails.
    async fn vacuum_into(&self, dest: &Path) -> Result<(), StoreError>;

    /// Gives up what marks the database as in use by this process (SQLite's shared lock file), so
    /// that `auditex restore` may replace it: the store has shut down and writes nothing more.
    fn release_in_use_lock(&self);

    /// Rids the database's own log of the page images an erasure made stale: on SQLite, the
    /// write-ahead log still holds the pages as they were before an erasure (the erased values'
    /// ciphertext, the destroyed data key) until a checkpoint copies the newest pages into the
    /// file and the log is truncated. `Ok(false)` when readers kept the log from being truncated
    /// now (nothing is lost; a later call finishes it). PostgreSQL's log is its own: what it holds
    /// of an erased value is ciphertext under a destroyed key (FORMAT.md, erasure).
    async fn truncate_log(&self) -> Result<bool, StoreError> {
        Ok(true)
    }

    /// Marks, durably and before an erasure commits, that the database's log may hold erased
    /// values' old pages. The mark outlives a process killed before the log was truncated: the
    /// next open sees it ([`Backend::log_marked`]) and truncates the log before anything is
    /// served. It is cleared ([`Backend::clear_log_mark`]) only by a shutdown that truncated
    /// the log, when no erasure can be under way: clearing it after each truncation could
    /// race with another tenant's erasure committing meanwhile.
    fn mark_log(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Whether the log is marked as possibly holding erased values' old pages.
    fn log_marked(&self) -> bool {
        false
    }

    /// Removes the mark of [`Backend::mark_log`].
    fn clear_log_mark(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Tenant cells: the configured cells' names, `home` first (see `postgres/cells.rs`).
    fn cell_names(&self) -> Vec<String> {
        vec![super::cells::HOME.to_owned()]
    }

    /// The cell `tenant` is placed on, as the placement table says.
    async fn placement(&self, _tenant: &TenantId) -> Result<String, StoreError> {
        Ok(super::cells::HOME.to_owned())
    }

    /// A move's first half: the copy of one snapshot, writes going on (see
    /// [`super::Store::move_tenant`]).
    async fn move_precopy(
        &self,
        _tenant: &TenantId,
        _to: &str,
        _now_us: u64,
        _progress: &(dyn for<'p> Fn(&'p str, u64) + Send + Sync),
    ) -> Result<MovePrecopy, StoreError> {
        Err(no_cells())
    }

    /// A move's second half: fence, the rest copied, every table compared, the switch.
    async fn move_fenced(
        &self,
        _tenant: &TenantId,
        _to: &str,
        _now_us: u64,
        _pre: &MovePrecopy,
        _progress: &(dyn for<'p> Fn(&'p str, u64) + Send + Sync),
    ) -> Result<MoveCopied, StoreError> {
        Err(no_cells())
    }

    /// Deletes the personal data of a tenant's copy on a cell it does not live on.
    async fn drop_personal_copy(&self, _tenant: &TenantId, _cell: &str) -> Result<(), StoreError> {
        Err(no_cells())
    }

    /// Lets a moved tenant's writes land on its new cell.
    async fn move_finish(&self, _tenant: &TenantId, _to: &str) -> Result<(), StoreError> {
        Err(no_cells())
    }

    /// Closes every connection; the backend is unusable afterwards.
    async fn close(&self);
}

/// The ledger's tables: tenants, signing keys, records, erasable values, checkpoints and Merkle
/// tiles. Every statement is scoped to one tenant but [`LedgerBackend::tenants`].
/// A witness as configured for a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessRow {
    /// Its name (the key name of its cosignatures).
    pub name: String,
    /// Its public key, a C2SP vkey of type 0x04.
    pub vkey: String,
    /// The submission URL prefix.
    pub url: String,
    /// The CA certificate (PEM) to trust for it, when no public CA signs its certificate.
    pub ca_pem: Option<String>,
}

#[async_trait::async_trait]
pub(crate) trait LedgerBackend: Send + Sync {
    /// Creates a tenant with its first signing key and its checkpoint origin, in one transaction.
    ///
    /// # Errors
    /// [`StoreError::TenantExists`] or a database error.
    async fn create_tenant(
        &self,
        tenant: &TenantId,
        origin: &str,
        key: &KeyRow,
        now_us: u64,
    ) -> Result<(), StoreError>;

    /// Every tenant id, sorted.
    async fn tenants(&self) -> Result<Vec<String>, StoreError>;

    /// Whether the tenant exists.
    async fn tenant_exists(&self, tenant: &TenantId) -> Result<bool, StoreError>;

    /// The tenant's signing keys, oldest first.
    async fn keys(&self, tenant: &TenantId) -> Result<Vec<KeyRow>, StoreError>;

    /// The last record's position, hash and capture time.
    async fn chain_head(&self, tenant: &TenantId) -> Result<Option<ChainHead>, StoreError>;

    /// What a checkpoint publication reads before it signs: the latest stored checkpoint's
    /// size, the signing keys and the chain head. A backend whose reads are transactions of
    /// their own (PostgreSQL: each sets the tenant for row-level security) makes them one.
    async fn publication_reads(&self, tenant: &TenantId) -> Result<PublicationReads, StoreError> {
        Ok(PublicationReads {
            latest_checkpoint: self.latest_checkpoint(tenant).await?.map(|c| c.size),
            keys: self.keys(tenant).await?,
            head: self.chain_head(tenant).await?,
        })
    }

    /// One record by sequence number.
    async fn record_by_seq(
        &self,
        tenant: &TenantId,
        seq: Sequence,
    ) -> Result<Option<RecordRow>, StoreError>;

    /// The records with these event ids (in no particular order).
    async fn records_by_event_ids(
        &self,
        tenant: &TenantId,
        ids: &[String],
    ) -> Result<Vec<RecordRow>, StoreError>;

    /// Up to `limit` records from `from` on, in sequence order.
    async fn records_range(
        &self,
        tenant: &TenantId,
        from: Sequence,
        limit: u64,
    ) -> Result<Vec<RecordRow>, StoreError>;

    /// Up to `limit` records of `event_type` below `before`, newest first.
    async fn records_of_type(
        &self,
        tenant: &TenantId,
        event_type: EventType,
        before: Option<Sequence>,
        limit: u64,
    ) -> Result<Vec<RecordRow>, StoreError>;

    /// The erasable values stored beside record `seq`, by field, each with its wrapped data key.
    async fn erasable_values(
        &self,
        tenant: &TenantId,
        seq: Sequence,
    ) -> Result<Vec<StoredValueRow>, StoreError>;

    /// The erased fields of record `seq`: `(field, erasure seq)`, by field.
    async fn erased_fields(
        &self,
        tenant: &TenantId,
        seq: Sequence,
    ) -> Result<Vec<(String, i64)>, StoreError>;

    /// Every value concerning `subject`, stored or erased, in order.
    async fn subject_values(
        &self,
        tenant: &TenantId,
        subject: &str,
    ) -> Result<Vec<SubjectValueRow>, StoreError>;

    /// The sequence number of `subject`'s latest erasure record, if it has one.
    async fn latest_subject_erasure(
        &self,
        tenant: &TenantId,
        subject: &str,
    ) -> Result<Option<i64>, StoreError>;

    /// The sequence numbers of erasure records after `after`, in order, at most `limit`.
    async fn erasures_after(
        &self,
        tenant: &TenantId,
        after: Option<i64>,
        limit: u64,
    ) -> Result<Vec<i64>, StoreError>;

    /// The journaled erasures this database carried out again, `(seq, record hash)` in order,
    /// at most `limit` after `after`.
    async fn reapplied_erasures(
        &self,
        tenant: &TenantId,
        after: Option<(i64, Vec<u8>)>,
        limit: u64,
    ) -> Result<Vec<(i64, Vec<u8>)>, StoreError>;

    /// How many values a re-application of the erasure journal erased wait for an erasure
    /// record of this chain: all of the tenant's with `None`, else those `scope` covers.
    async fn reerased_count(
        &self,
        tenant: &TenantId,
        scope: Option<&ErasureScope>,
    ) -> Result<u64, StoreError>;

    /// The records with values waiting in `reerased_values` that `scope` covers, `(seq, event
    /// id)` in chain order.
    async fn reerased_records(
        &self,
        tenant: &TenantId,
        scope: &ErasureScope,
    ) -> Result<Vec<(i64, String)>, StoreError>;

    /// The active legal holds of `subjects` (see `holds_sql.rs`).
    async fn active_holds(
        &self,
        tenant: &TenantId,
        subjects: &[&str],
    ) -> Result<Vec<HoldRow>, StoreError>;

    /// Every legal hold of `subject`, active or lifted.
    async fn subject_holds(
        &self,
        tenant: &TenantId,
        subject: &str,
    ) -> Result<Vec<HoldRow>, StoreError>;

    /// The tenant's retention rules, in order, each with the seq of the record that set it.
    async fn retention_policy(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<(RetentionRule, i64)>, StoreError>;

    /// Records holding erasable values of a subject, numbered above `after`, in order, each
    /// once, from at most `limit` values (the caller stops at the first one too young to expire).
    async fn retention_candidates(
        &self,
        tenant: &TenantId,
        after: i64,
        limit: u64,
    ) -> Result<Vec<RetentionCandidate>, StoreError>;

    /// The checkpoint of the largest tree size.
    async fn latest_checkpoint(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<StoredCheckpoint>, StoreError>;

    /// The checkpoint of exactly `size`.
    async fn checkpoint_at(
        &self,
        tenant: &TenantId,
        size: TreeSize,
    ) -> Result<Option<StoredCheckpoint>, StoreError>;

    /// Up to `limit` checkpoints larger than `after`, smallest first.
    async fn checkpoints(
        &self,
        tenant: &TenantId,
        after: Option<TreeSize>,
        limit: u64,
    ) -> Result<Vec<StoredCheckpoint>, StoreError>;

    /// Stores a checkpoint; one of the same size stored already stays.
    async fn insert_checkpoint(
        &self,
        tenant: &TenantId,
        c: &StoredCheckpoint,
    ) -> Result<(), StoreError>;

    /// Up to `limit` checkpoints of abandoned branches larger than `after`, smallest first, each
    /// with the sequence number of the record that abandoned it.
    async fn abandoned_checkpoints(
        &self,
        tenant: &TenantId,
        after: Option<TreeSize>,
        limit: u64,
    ) -> Result<Vec<(u64, StoredCheckpoint)>, StoreError>;

    /// Stores the checkpoint of a branch abandoned by record `abandoned_by_seq` (once).
    async fn insert_abandoned_checkpoint(
        &self,
        tenant: &TenantId,
        abandoned_by_seq: u64,
        c: &StoredCheckpoint,
    ) -> Result<(), StoreError>;

    /// The tenant's recorded checkpoint origin.
    async fn tenant_origin(&self, tenant: &TenantId) -> Result<Option<String>, StoreError>;

    /// Records the tenant's checkpoint origin unless one is recorded already.
    async fn record_tenant_origin(
        &self,
        tenant: &TenantId,
        origin: &str,
        now_us: u64,
    ) -> Result<(), StoreError>;

    /// The witnesses the tenant's checkpoints are sent to, by name.
    async fn witnesses(&self, tenant: &TenantId) -> Result<Vec<WitnessRow>, StoreError>;

    /// Adds a witness, or replaces the one of the same name.
    async fn put_witness(
        &self,
        tenant: &TenantId,
        witness: &WitnessRow,
        now_us: u64,
    ) -> Result<(), StoreError>;

    /// Removes the witness named `name`; whether there was one.
    async fn remove_witness(&self, tenant: &TenantId, name: &str) -> Result<bool, StoreError>;

    /// Stores a verified cosignature line of `witness` on the checkpoint of `size` and `root`
    /// (a repeat is ignored).
    async fn record_cosignature(
        &self,
        tenant: &TenantId,
        size: u64,
        root: &[u8],
        witness: &str,
        line: &str,
        cosigned_at: u64,
    ) -> Result<(), StoreError>;

    /// The cosignature lines on the checkpoint of `size` and `root`, by witness name.
    async fn cosignatures(
        &self,
        tenant: &TenantId,
        size: u64,
        root: &[u8],
    ) -> Result<Vec<(String, String)>, StoreError>;

    /// The largest tree size `witness` cosigned for the tenant.
    async fn last_cosigned(
        &self,
        tenant: &TenantId,
        witness: &str,
    ) -> Result<Option<u64>, StoreError>;

    /// Whether the tenant's tiled log is open to anyone (`false` without a setting).
    async fn tiles_public(&self, tenant: &TenantId) -> Result<bool, StoreError>;

    /// Opens the tenant's tiled log to anyone, or closes it to its own keys again.
    async fn set_tiles_public(
        &self,
        tenant: &TenantId,
        public: bool,
        now_us: u64,
    ) -> Result<(), StoreError>;

    /// The stored hashes of records `from..to`, in order (level 0 of the Merkle tiles).
    async fn record_hashes(
        &self,
        tenant: &TenantId,
        from: u64,
        to: u64,
    ) -> Result<Vec<Vec<u8>>, StoreError>;

    /// The stored Merkle node hashes at `level`, indexes `from..to`, in order.
    async fn merkle_nodes(
        &self,
        tenant: &TenantId,
        level: u8,
        from: u64,
        to: u64,
    ) -> Result<Vec<Vec<u8>>, StoreError>;

    /// Opens the transaction one group commit writes in, holding the tenant's write lock until
    /// it commits or is dropped (dropped, it rolls back).
    async fn begin_append(
        &self,
        tenant: &TenantId,
    ) -> Result<Box<dyn AppendTransaction>, StoreError>;

    /// Counts the tenant's data keys (re-wrapping progress).
    async fn data_key_count(&self, tenant: &TenantId) -> Result<u64, StoreError>;

    /// Up to `limit` wrapped data keys numbered above `after`: `(key_seq, wrapped)`.
    async fn data_key_page(
        &self,
        tenant: &TenantId,
        after: i64,
        limit: u64,
    ) -> Result<Vec<(i64, Vec<u8>)>, StoreError>;

    /// Replaces a wrapped data key (`r.seq` is its number) if it is still the bytes read.
    async fn rewrap_data_key(&self, tenant: &TenantId, r: &Resealed) -> Result<bool, StoreError>;

    /// Counts the tenant's erasable values sealed under the master key directly (re-sealing
    /// progress; values under a data key are re-sealed by re-wrapping their key).
    async fn erasable_count(&self, tenant: &TenantId) -> Result<u64, StoreError>;

    /// Up to `limit` erasable values sealed under the master key directly after `(seq, field)`,
    /// in key order.
    async fn erasable_sealed_page(
        &self,
        tenant: &TenantId,
        after: &(i64, String),
        limit: u64,
    ) -> Result<Vec<(i64, String, Vec<u8>)>, StoreError>;

    /// Replaces sealed values in one transaction, each only if it is still the value read;
    /// returns how many were replaced.
    async fn reseal_erasable(
        &self,
        tenant: &TenantId,
        rows: &[Resealed],
    ) -> Result<u64, StoreError>;

    /// Replaces a sealed signing key if it is still the value read; returns whether it did.
    async fn reseal_signing_key(&self, tenant: &TenantId, r: &Resealed)
    -> Result<bool, StoreError>;
}

/// One group commit's open transaction (see `appender.rs`): the appender re-reads the chain head
/// under the tenant's lock, inserts the group, and commits.
#[async_trait::async_trait]
pub(crate) trait AppendTransaction: Send {
    /// The chain head as this transaction sees it.
    async fn chain_head(&mut self, tenant: &TenantId) -> Result<Option<ChainHead>, StoreError>;

    /// Inserts records, their sealed erasable values, the new data keys that sealed them and
    /// completed Merkle nodes.
    async fn insert(
        &mut self,
        tenant: &TenantId,
        rows: &[NewRecordRow<'_>],
        erasable: &[NewErasableRow],
        keys: &[NewDataKeyRow],
        nodes: &[(u8, u64, Hash)],
    ) -> Result<(), StoreError>;

    /// The newest data key of each of `subjects` that has one: subject → (key_seq, wrapped).
    async fn subject_keys(
        &mut self,
        tenant: &TenantId,
        subjects: &[&str],
    ) -> Result<std::collections::BTreeMap<String, (i64, Vec<u8>)>, StoreError>;

    /// Carries out an erasure (see `erasure_sql.rs`); returns how many values it erased.
    async fn erase(&mut self, tenant: &TenantId, scope: &ErasureScope) -> Result<u64, StoreError>;

    /// The active legal holds of `subjects`, as this transaction sees them.
    async fn active_holds(
        &mut self,
        tenant: &TenantId,
        subjects: &[&str],
    ) -> Result<Vec<HoldRow>, StoreError>;

    /// Places and lifts legal holds (see `holds_sql.rs`).
    async fn apply_holds(
        &mut self,
        tenant: &TenantId,
        changes: &[HoldChange],
    ) -> Result<(), StoreError>;

    /// Replaces the tenant's retention policy with `rules`, set by the record at `policy_seq`.
    async fn replace_retention_policy(
        &mut self,
        tenant: &TenantId,
        policy_seq: u64,
        rules: &[RetentionRule],
    ) -> Result<(), StoreError>;

    /// Ends the current key `old_key_id` before `new_key.from_seq` and stores `new_key`.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when `old_key_id` is not the current key.
    async fn rotate_key(
        &mut self,
        tenant: &TenantId,
        old_key_id: &str,
        new_key: &KeyRow,
        now_us: u64,
    ) -> Result<(), StoreError>;

    /// Commits the group.
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// A replica as `/metrics` shows it.
#[derive(Debug, Clone)]
pub struct ReplicaInfo {
    /// `host:port`.
    pub label: String,
    /// Whether requests read from it now.
    pub in_reads: bool,
    /// Its replay lag in seconds, `None` while unknown.
    pub lag_seconds: Option<f64>,
    /// Read transactions begun on it since start.
    pub reads: u64,
}

/// The PostgreSQL node the service uses as its primary.
#[derive(Debug, Clone, PartialEq)]
pub struct PrimaryInfo {
    /// `host:port` of the node.
    pub node: String,
    /// How often the service moved to another node since it started.
    pub changes: u64,
    /// How long the service has been without a reachable primary (0 while it has one).
    pub without_primary_seconds: f64,
}

/// What ends a user's access besides their sessions and reset links (see
/// [`AccessBackend::end_user_access`]).
#[derive(Debug, Clone, Copy)]
pub(crate) enum AccessChange<'a> {
    /// A new password (an Argon2id PHC string); the failure count is cleared.
    Password(&'a str),
    /// The account is disabled (unless it was already).
    Disable,
}

/// API keys, portal users, sessions and password-reset tokens.
#[async_trait::async_trait]
pub(crate) trait AccessBackend: Send + Sync {
    /// Stores a new API key.
    async fn insert_api_key(&self, row: &ApiKeyRow) -> Result<(), StoreError>;

    /// The tenant's API keys, oldest first.
    async fn api_keys(&self, tenant: &TenantId) -> Result<Vec<ApiKeyRow>, StoreError>;

    /// The key with this id and secret hash, before its tenant is known.
    async fn api_key(
        &self,
        key_id: &str,
        secret_hash: &[u8],
    ) -> Result<Option<ApiKeyRow>, StoreError>;

    /// Revokes a key unless it is revoked already; returns whether it did.
    async fn revoke_api_key(
        &self,
        tenant: &TenantId,
        key_id: &str,
        now_us: i64,
    ) -> Result<bool, StoreError>;

    /// Sets a key's own request rate (`None`: the default); returns whether the tenant has that
    /// active key.
    async fn set_api_key_rate(
        &self,
        tenant: &TenantId,
        key_id: &str,
        rate_per_second: Option<i64>,
    ) -> Result<bool, StoreError>;

    /// Records a key's last use.
    async fn touch_api_key(
        &self,
        tenant: &TenantId,
        key_id: &str,
        now_us: i64,
    ) -> Result<(), StoreError>;

    /// Stores a new user (columns as `users::USER_COLUMNS`, no failures, not disabled).
    ///
    /// # Errors
    /// A unique violation (as [`StoreError::Unavailable`]) when the email is taken.
    #[allow(clippy::too_many_arguments)]
    async fn insert_user(
        &self,
        tenant: &TenantId,
        user_id: &str,
        email: &str,
        role: &str,
        password_hash: &str,
        expires_at_us: Option<i64>,
        now_us: i64,
    ) -> Result<(), StoreError>;

    /// The tenant's user with this (normalized) email.
    async fn user_by_email(
        &self,
        tenant: &TenantId,
        email: &str,
    ) -> Result<Option<UserTuple>, StoreError>;

    /// The tenant's user with this id.
    async fn user_by_id(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<Option<UserTuple>, StoreError>;

    /// The tenant's users, by email.
    async fn users(&self, tenant: &TenantId) -> Result<Vec<UserTuple>, StoreError>;

    /// Applies `change` to the user, ends every session of theirs and invalidates their reset
    /// (and invitation) links, in one transaction: no path that ends a user's access leaves an
    /// old session or link alive.
    async fn end_user_access(
        &self,
        tenant: &TenantId,
        user_id: &str,
        change: AccessChange<'_>,
        now_us: i64,
    ) -> Result<(), StoreError>;

    /// The tenant's oversight settings, when it changed the defaults.
    async fn oversight_settings(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<SettingsTuple>, StoreError>;

    /// Registers `check_id` as the tenant's running integrity check at `now_us`, first
    /// forgetting one whose heartbeat is older than `stale_before_us`: whether it was
    /// registered (not when another check holds the tenant).
    async fn claim_integrity_run(
        &self,
        tenant: &TenantId,
        check_id: &str,
        now_us: i64,
        stale_before_us: i64,
        progress: &str,
    ) -> Result<bool, StoreError>;

    /// The tenant's registered integrity check, if any.
    async fn integrity_run(&self, tenant: &TenantId)
    -> Result<Option<IntegrityRunRow>, StoreError>;

    /// Refreshes a registered check's heartbeat and progress: whether its cancellation was
    /// asked for, or `None` when it is no longer registered.
    async fn beat_integrity_run(
        &self,
        tenant: &TenantId,
        check_id: &str,
        now_us: i64,
        progress: &str,
    ) -> Result<Option<bool>, StoreError>;

    /// Asks a registered check to stop: whether it was registered.
    async fn cancel_integrity_run(
        &self,
        tenant: &TenantId,
        check_id: &str,
    ) -> Result<bool, StoreError>;

    /// Forgets a check that ended.
    async fn release_integrity_run(
        &self,
        tenant: &TenantId,
        check_id: &str,
    ) -> Result<(), StoreError>;

    /// Replaces the tenant's oversight settings.
    async fn set_oversight_settings(
        &self,
        tenant: &TenantId,
        settings: SettingsTuple,
        now_us: i64,
        by: &str,
    ) -> Result<(), StoreError>;

    /// Sets a user's role and expiry.
    async fn set_user_role(
        &self,
        tenant: &TenantId,
        user_id: &str,
        role: &str,
        expires_at_us: Option<i64>,
    ) -> Result<(), StoreError>;

    /// Counts a failed sign-in of `account` (a hash naming no tenant), forgets accounts whose
    /// last failure is older than `forget_before_us`, and returns the failures counted.
    async fn count_sign_in_failure(
        &self,
        account: &[u8],
        now_us: i64,
        forget_before_us: i64,
    ) -> Result<i64, StoreError>;

    /// Refuses `account`'s sign-ins until `until_us` (a longer wait already set stays).
    async fn lock_sign_in(&self, account: &[u8], until_us: i64) -> Result<(), StoreError>;

    /// Until when `account`'s sign-ins are refused, if it failed before.
    async fn sign_in_locked_until(&self, account: &[u8]) -> Result<Option<i64>, StoreError>;

    /// Forgets `account`'s failures (a successful sign-in).
    async fn clear_sign_in(&self, account: &[u8]) -> Result<(), StoreError>;

    /// Stores a new session.
    async fn insert_session(&self, s: &Session) -> Result<(), StoreError>;

    /// A session by the hash of its id, before its tenant is known.
    async fn session(&self, id_hash: &[u8]) -> Result<Option<SessionTuple>, StoreError>;

    /// Records activity on a session.
    async fn touch_session(
        &self,
        tenant: &TenantId,
        id_hash: &[u8],
        now_us: i64,
    ) -> Result<(), StoreError>;

    /// Ends one session of a user.
    async fn end_session(
        &self,
        tenant: &TenantId,
        user_id: &str,
        id_hash: &[u8],
        now_us: i64,
    ) -> Result<(), StoreError>;

    /// Ends every session of a user but `keep`; returns how many.
    async fn end_other_sessions(
        &self,
        tenant: &TenantId,
        user_id: &str,
        keep: &[u8],
        now_us: i64,
    ) -> Result<u64, StoreError>;

    /// A user's sessions not ended or expired at `now_us`, newest first (at most 100).
    async fn live_sessions(
        &self,
        tenant: &TenantId,
        user_id: &str,
        now_us: i64,
    ) -> Result<Vec<SessionTuple>, StoreError>;

    /// Invalidates the user's outstanding reset tokens and stores a new one, in one transaction.
    async fn create_password_reset(
        &self,
        tenant: &TenantId,
        user_id: &str,
        token_hash: &[u8],
        now_us: i64,
        expires_at_us: i64,
    ) -> Result<(), StoreError>;

    /// The `(user_id, tenant_id)` of a usable reset token, before its tenant is known.
    async fn password_reset_user(
        &self,
        token_hash: &[u8],
        now_us: i64,
    ) -> Result<Option<(String, String)>, StoreError>;

    /// Marks a reset token of `tenant` used if it still is usable; returns its user if it was.
    async fn take_password_reset(
        &self,
        tenant: &TenantId,
        token_hash: &[u8],
        now_us: i64,
    ) -> Result<Option<String>, StoreError>;
}

/// The projections' views (see `views.rs`, where both implementations live beside the view SQL
/// of each backend). Methods without a tenant reach the shared projection state.
#[async_trait::async_trait]
pub(crate) trait ViewBackend: Send + Sync {
    /// Every projection's state.
    async fn view_states(&self) -> Result<Vec<ProjectionState>, StoreError>;

    /// Creates a projection's state unless it exists.
    async fn ensure_view(&self, name: &str, version: u32) -> Result<(), StoreError>;

    /// Starts building a new generation: returns it and the unfinished one it replaces, if any.
    async fn start_rebuild(
        &self,
        name: &str,
        version: u32,
    ) -> Result<(i64, Option<i64>), StoreError>;

    /// Makes `generation` the active one; returns the one it retires, if any.
    async fn activate(&self, name: &str, generation: i64) -> Result<Option<i64>, StoreError>;

    /// Deletes the rows of a retired generation from a projection's `tables`, for `tenants`.
    async fn purge_generation(
        &self,
        name: &str,
        generation: i64,
        tables: &[&str],
        tenants: &[TenantId],
    ) -> Result<(), StoreError>;

    /// Deletes a retired generation's positions for a tenant.
    async fn purge_positions(
        &self,
        tenant: &TenantId,
        name: &str,
        generation: i64,
    ) -> Result<(), StoreError>;

    /// Where each (projection, generation) of the tenant stands.
    async fn positions(
        &self,
        tenant: &TenantId,
    ) -> Result<std::collections::HashMap<(String, i64), u64>, StoreError>;

    /// The tenant's stuck projection generations.
    async fn stuck(&self, tenant: &TenantId) -> Result<Vec<Stuck>, StoreError>;

    /// Marks a projection generation stuck at `seq`.
    async fn mark_stuck(
        &self,
        tenant: &TenantId,
        name: &str,
        generation: i64,
        seq: u64,
        error: &str,
    ) -> Result<(), StoreError>;

    /// Clears the tenant's stuck marks (of `name`, or all); returns how many.
    async fn clear_stuck(&self, tenant: &TenantId, name: Option<&str>) -> Result<u64, StoreError>;

    /// Up to `limit` records from `from` on, as the folds read them.
    async fn events(
        &self,
        tenant: &TenantId,
        from: u64,
        limit: u64,
    ) -> Result<Vec<Event>, StoreError>;

    /// The decision facts of these decisions.
    async fn facts(
        &self,
        tenant: &TenantId,
        ids: &[EventId],
    ) -> Result<Vec<(EventId, DecisionFacts)>, StoreError>;

    /// Builds a generation's indexes after a rebuild; whether there was anything to build.
    async fn index_generation(&self, name: &str, generation: i64) -> Result<bool, StoreError>;

    /// Refreshes the query planner's statistics.
    async fn optimize(&self) -> Result<(), StoreError>;

    /// Records applied between two refreshes of the statistics.
    fn optimize_every(&self) -> u64;

    /// Transactions the runner may commit pages in at once.
    fn commit_lanes(&self) -> usize;

    /// Writes pages and moves their positions in one transaction; `false` (and nothing written)
    /// when a position moved meanwhile.
    async fn commit_pages(
        &self,
        tenant: &TenantId,
        pages: &[TargetPage],
    ) -> Result<bool, StoreError>;

    /// A page of the decisions view.
    async fn search_decisions(
        &self,
        tenant: &TenantId,
        query: &DecisionQuery,
    ) -> Result<Page<projections::DecisionRow>, StoreError>;

    /// One decision and its oversight actions, oldest first.
    async fn decision_view(
        &self,
        tenant: &TenantId,
        id: EventId,
    ) -> Result<Option<(projections::DecisionRow, Vec<projections::OversightRow>)>, StoreError>;

    /// The model inventory, optionally of one model id.
    async fn model_inventory(
        &self,
        tenant: &TenantId,
        model_id: Option<&str>,
    ) -> Result<Vec<projections::ModelRow>, StoreError>;

    /// A page of oversight actions, newest first.
    async fn oversight_actions(
        &self,
        tenant: &TenantId,
        query: &OversightQuery,
    ) -> Result<Page<projections::OversightRow>, StoreError>;

    /// A page of the records concerning a subject, oldest first.
    async fn subject_records(
        &self,
        tenant: &TenantId,
        subject_ref: &str,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Page<projections::SubjectRow>, StoreError>;

    /// Daily volumes between two days (inclusive).
    async fn daily_volumes(
        &self,
        tenant: &TenantId,
        from: &str,
        until: &str,
        model_id: Option<&str>,
    ) -> Result<Vec<projections::DailyRow>, StoreError>;

    /// What the dashboard's charts show over a window of days.
    async fn dashboard_charts(
        &self,
        tenant: &TenantId,
        window: &ChartWindow,
    ) -> Result<DashboardCharts, StoreError>;

    /// What a model version's charts show over a window of days.
    async fn model_charts(
        &self,
        tenant: &TenantId,
        version: (&str, &str),
        window: &ChartWindow,
    ) -> Result<ModelCharts, StoreError>;

    /// Every row of every view of a tenant.
    async fn dump_views(&self, tenant: &TenantId) -> Result<Views, StoreError>;
}
