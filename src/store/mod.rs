//! The durable event store: tenants, signing keys, the append pipeline, Merkle tiles, checkpoints
//! and every read the service makes of them.
//!
//! Two real backends sit behind one [`Store`]: embedded SQLite (the default, a single file) and
//! PostgreSQL (selected by a `postgres://` URL), reached through one seam: the backend traits of
//! `backend.rs`. SQL lives only in their two implementations (`sqlite.rs`, `postgres.rs` and their
//! folders; the views' in `views.rs`) and in the statements both send unchanged (`access_sql.rs`);
//! this module and its siblings hold the logic both share. Every method that touches tenant data
//! takes a [`TenantId`]: there is no way to express a query without one, and on PostgreSQL
//! row-level security backs that up inside the database.

mod access_sql;
pub(crate) mod api_keys;
mod appender;
mod backend;
pub mod cells;
pub use backend::{PrimaryInfo, ReplicaInfo};
pub use postgres::replicas::{
    REPLICA_LAG_MAX_MS_DEFAULT, ReadRoute, current as read_route, scope as read_scope,
};
pub mod backup;
mod checkpointer;
pub mod crypto;
pub mod erasure;
mod erasure_sql;
mod evidence;
mod export;
pub(crate) mod faults;
pub mod holds;
mod holds_sql;
mod integrity;
mod ladder;
mod latest_checkpoints;
pub use latest_checkpoints::LATEST_CHECKPOINT_KEPT_MS;
pub mod integrity_runs;
pub mod oversight;
pub mod package;
mod postgres;
pub mod reseal;
pub mod retention;
pub mod rollback;
mod rows;
mod service_draft;
mod shredding;
mod sqlite;
pub mod subjects;
mod tiles;
mod tlog_sql;
pub mod users;
mod view_query;
pub mod views;
pub mod witnesses;
mod workers;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use ledger::checkpoint::{Checkpoint, sign_checkpoint, tenant_origin};
use ledger::draft::{ClientDraft, PreparedDraft};
use ledger::keys::{KeyId, KeyInterval, KeyRing, RecordSignature, RecordSigner};
use ledger::merkle::{
    CompactTree, NodeId, compact_range_node_ids, consistency_proof_node_ids,
    inclusion_proof_node_ids, leaf_hash, node_hash,
};
use ledger::note::NoteSigner;
use ledger::record::{ErasableValue, EventType, FieldName, Payload, Record};
use ledger::types::{CaptureTime, EventId, Hash, LeafIndex, Sequence, TenantId, TreeSize};
use tokio::sync::watch;

pub use api_keys::{API_KEY_LABEL_BYTES_MAX, API_KEY_RATE_MAX, ApiKeyInfo, api_key_label_problem};
pub(crate) use appender::content_difference;
pub use appender::{AppendError, LOOKUPS_AFTER_DUPLICATE};
pub use cells::{MoveCopied, MoveReport};
use crypto::{CryptoError, MasterKey, MasterKeys, SealContext};
pub use evidence::EvidenceError;
pub use export::ExportSummary;
pub use integrity::{
    CancelFlag, IntegrityFailure, IntegrityFailureKind, IntegrityOptions, IntegrityOutcome,
    IntegrityProgress, IntegrityReport, SEEN_CHECKPOINTS_MAX,
};
pub(crate) use service_draft::ServiceDraft;
#[doc(hidden)]
pub use shredding::unwrap_data_key_for_tools;
pub use workers::Workers;

/// Most records one append request (one HTTP batch) may carry.
pub const BATCH_RECORDS_MAX: usize = 1000;

/// Most records one group commit writes in a single transaction.
pub const GROUP_COMMIT_RECORDS_MAX: usize = 4096;

/// Default time an appender waits for more requests before committing a partial group.
pub const GROUP_COMMIT_WINDOW_US_DEFAULT: u64 = 500;

/// Default depth of each tenant's append queue, in requests.
pub const APPEND_QUEUE_REQUESTS_MAX: usize = 8192;

/// Default of [`StoreConfig::queue_records_max`]: records waiting in one tenant's queue (four
/// full group commits).
pub const APPEND_QUEUE_RECORDS_MAX: usize = 4 * GROUP_COMMIT_RECORDS_MAX;

/// Default of [`StoreConfig::queue_bytes_max`]: estimated bytes of the records waiting in one
/// tenant's queue (64 MiB).
pub const APPEND_QUEUE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Default of [`StoreConfig::queue_total_records_max`]: records waiting in all tenants' queues.
pub const APPEND_QUEUE_TOTAL_RECORDS_MAX: usize = 16 * GROUP_COMMIT_RECORDS_MAX;

/// Default of [`StoreConfig::queue_total_bytes_max`]: estimated bytes of the records waiting in
/// all tenants' queues (256 MiB), the stated ceiling of the append queues' memory.
pub const APPEND_QUEUE_TOTAL_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Default of [`StoreConfig::queue_wait_max`]: the longest an append request may wait in its
/// queue; one that waited longer is answered 503 instead of being written.
pub const APPEND_QUEUE_WAIT_MS_DEFAULT: u64 = 5_000;

/// Default of [`StoreConfig::clock_behind_max`]: how far the clock may be behind the chain head
/// (5 minutes) before appends are refused.
pub const CLOCK_BEHIND_MS_DEFAULT: u64 = 5 * 60 * 1000;

/// How often a signed checkpoint is published while records arrive.
pub const CHECKPOINT_INTERVAL_MS_DEFAULT: u64 = 500;

/// Height of a Merkle tile: 2^8 = 256 hashes, as in C2SP tlog-tiles.
pub const TILE_HEIGHT: u8 = 8;

/// Most Merkle tiles kept in memory (up to 256 hashes, 8 KiB each: at most 32 MiB). A tile's
/// stored hashes only grow at its end, so a kept tile needs no invalidation (a partial one is
/// replaced by a longer copy when a caller needs more); when the cache is full it is emptied.
pub const TILE_CACHE_TILES_MAX: usize = 4096;

/// Merkle tiles (full, or a partial tile's stored prefix) by (tenant, base level, tile index).
type TileCache = HashMap<(TenantId, u8, u64), Arc<[Hash]>>;

/// Most tiles above level 0 whose inner levels are kept folded (at most 16 KiB each: 4 MiB).
/// A tree of ten million records has 154 such tiles; when full, the set is emptied.
const FOLDED_TILES_MAX: usize = 256;

/// The inner levels of tiles above level 0, by (tenant, base level, tile index).
type FoldedTiles = HashMap<(TenantId, u8, u64), Arc<FoldedTile>>;

/// Height of the blocks of leaves whose roots are kept per full leaf tile: a proof then hashes
/// 22 nodes inside its leaf tile rather than 247 (every sibling at levels 1 to 7 folded from
/// leaf hashes), which was four fifths of a proof's CPU in the store (BENCHMARKS.md, "Leaf tiles'
/// blocks kept").
const LEAF_BLOCK_HEIGHT: u8 = 4;

/// Most full leaf tiles whose block roots are kept, as many as the tile cache keeps tiles: 16
/// roots (512 bytes) a tile, about 3 MiB with their keys. The tiles themselves are the tile
/// cache's: the set is emptied with it (and when full), so that it keeps no tile alive.
const LEAF_BLOCKS_MAX: usize = TILE_CACHE_TILES_MAX;

/// The roots of a full leaf tile's sixteen blocks of 16 leaf hashes, with the leaf hashes they
/// were folded from: used only for a tile read with exactly those, as [`FoldedTile`] is.
struct LeafBlocks {
    leaves: Arc<[Hash]>,
    roots: [Hash; 1 << (TILE_HEIGHT - LEAF_BLOCK_HEIGHT)],
}

impl LeafBlocks {
    fn fold(leaves: &Arc<[Hash]>) -> LeafBlocks {
        let mut roots = [Hash::ZERO; 1 << (TILE_HEIGHT - LEAF_BLOCK_HEIGHT)];
        for (root, block) in roots
            .iter_mut()
            .zip(leaves.chunks_exact(1 << LEAF_BLOCK_HEIGHT))
        {
            *root = fold_perfect(block);
        }
        LeafBlocks {
            leaves: Arc::clone(leaves),
            roots,
        }
    }

    fn folded_from(&self, leaves: &Arc<[Hash]>) -> bool {
        same_hashes(&self.leaves, leaves)
    }
}

/// Whether two reads of a tile hold the same hashes: the same kept copy, or the same content.
/// Equal hashes fold the same, so what was folded from one serves the other.
fn same_hashes(a: &Arc<[Hash]>, b: &Arc<[Hash]>) -> bool {
    Arc::ptr_eq(a, b) || a[..] == b[..]
}

/// The value kept in `kept` under `key` when `fits` it (made from the caller's data), else one
/// `make`s now and keeps in its place, emptying the set first when it already holds `max` others.
/// The lock is not held while `make` runs: two callers may both make one, and the last is kept.
fn kept_or_made<K: std::hash::Hash + Eq, V>(
    kept: &Mutex<HashMap<K, Arc<V>>>,
    key: K,
    max: usize,
    fits: impl Fn(&V) -> bool,
    make: impl FnOnce() -> V,
) -> Arc<V> {
    let lock = || kept.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(found) = lock().get(&key).filter(|v| fits(v)).cloned() {
        return found;
    }
    let made = Arc::new(make());
    let mut kept = lock();
    if kept.len() >= max && !kept.contains_key(&key) {
        kept.clear();
    }
    kept.insert(key, Arc::clone(&made));
    made
}

/// Block roots of full leaf tiles, by (tenant, tile index).
type LeafBlocksCache = HashMap<(TenantId, u64), Arc<LeafBlocks>>;

/// A tile's hashes with every perfect subtree inside it folded: `inner[k - 1][i]` is the root of
/// the `2^k` hashes from `i * 2^k`. Built from `hashes` alone, so it is right for exactly those
/// hashes, and used only for a tile read with the same ones.
struct FoldedTile {
    hashes: Arc<[Hash]>,
    inner: Vec<Vec<Hash>>,
}

impl FoldedTile {
    fn fold(hashes: Arc<[Hash]>) -> FoldedTile {
        let mut inner: Vec<Vec<Hash>> = Vec::with_capacity(usize::from(TILE_HEIGHT));
        let mut below: &[Hash] = &hashes;
        for _ in 1..TILE_HEIGHT {
            // An odd last hash has no sibling yet: no node above it is complete.
            let level: Vec<Hash> = below
                .chunks_exact(2)
                .map(|p| node_hash(p[0], p[1]))
                .collect();
            inner.push(level);
            below = inner.last().map_or(&[], Vec::as_slice);
        }
        FoldedTile { hashes, inner }
    }

    /// The root of the `2^height` hashes from `start` (a multiple of `2^height`), when all of
    /// them are in the tile.
    fn node(&self, height: u8, start: usize) -> Option<Hash> {
        match height {
            0 => self.hashes.get(start).copied(),
            h => self.inner.get(usize::from(h) - 1)?.get(start >> h).copied(),
        }
    }
}

/// Where a read of Merkle tiles may take them from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TileReads {
    /// Everything as stored now: the integrity check, which judges the data as it is.
    Stored,
    /// Full tiles from the cache, the right edge's partial tiles as stored now: the roots the
    /// appender resumes from, checkpoints are signed over and rollback detection compares, so
    /// that recent records changed under a running service are seen.
    FullKept,
    /// Kept partial tiles too (see [`Store::tile_hashes`]): proofs and served tiles, whose
    /// hashes a client checks against a signed checkpoint.
    AllKept,
}

/// Oldest bundled SQLite accepted (earlier versions have a WAL bug under concurrent writers).
pub const SQLITE_VERSION_MIN: (u32, u32, u32) = (3, 51, 3);

/// Most records one range read returns.
pub const RANGE_RECORDS_MAX: u64 = 10_000;

/// Which database, and where.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// An SQLite file path (created on first start).
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL URL for the application role.
    Postgres(String),
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseUrl::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            // The URL may carry a password.
            DatabaseUrl::Postgres(_) => f.write_str("postgres://<redacted>"),
        }
    }
}

impl DatabaseUrl {
    /// Parses `postgres://…`/`postgresql://…`, `sqlite://PATH`, `sqlite:PATH`, or a bare path.
    pub fn parse(text: &str) -> Self {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            DatabaseUrl::Postgres(text.to_owned())
        } else {
            let path = text
                .strip_prefix("sqlite://")
                .or_else(|| text.strip_prefix("sqlite:"))
                .unwrap_or(text);
            DatabaseUrl::Sqlite(path.into())
        }
    }
}

/// The source of capture times. Injected so that tests can move time backwards.
pub trait Clock: Send + Sync + 'static {
    /// Microseconds since the Unix epoch, UTC.
    fn now_unix_micros(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_micros(&self) -> u64 {
        u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap_or(0)
    }
}

/// Default of [`StoreConfig::projection_poll_interval`], in milliseconds.
pub const PROJECTION_POLL_MS_DEFAULT: u64 = 1000;

/// Everything the store needs to open.
#[derive(Clone)]
pub struct StoreConfig {
    /// The database the service reads and writes.
    pub database: DatabaseUrl,
    /// PostgreSQL only: the schema owner's URL, used to apply migrations. Without it the store
    /// checks that migrations are current and refuses to start otherwise.
    pub admin_database: Option<String>,
    /// The master key that seals private signing keys and erasable values.
    pub master_key: MasterKey,
    /// Earlier master keys, which open what they sealed but never seal: held while
    /// `auditex master-key rotate` re-seals everything under `master_key`.
    pub previous_master_keys: Vec<MasterKey>,
    /// The service's origin prefix; a tenant's checkpoint origin is `<origin>/<tenant>`.
    pub service_origin: String,
    /// How long an appender waits to fill a group commit.
    pub group_commit_window: Duration,
    /// Depth of each tenant's append queue, in requests.
    pub queue_requests_max: usize,
    /// Records that may wait in one tenant's append queue; beyond, appends are refused at once.
    pub queue_records_max: usize,
    /// Estimated bytes that may wait in one tenant's append queue.
    pub queue_bytes_max: usize,
    /// Records that may wait in all tenants' append queues together.
    pub queue_total_records_max: usize,
    /// Estimated bytes that may wait in all tenants' append queues together.
    pub queue_total_bytes_max: usize,
    /// The longest an append request may wait in its queue before it is answered "overloaded"
    /// instead of written.
    pub queue_wait_max: Duration,
    /// How far the clock may be behind the chain head before appends are refused (within it,
    /// records carry the chain head's capture time).
    pub clock_behind_max: Duration,
    /// How often checkpoints are published.
    pub checkpoint_interval: Duration,
    /// Size of the reader connection pool.
    pub read_connections: u32,
    /// The clock for capture times.
    pub clock: Arc<dyn Clock>,
    /// Where every checkpoint published for each tenant is logged outside the database
    /// (`<dir>/<tenant>.published`), so that a rolled-back database is detected (see
    /// [`rollback`]). `None` turns rollback protection off.
    pub checkpoint_dir: Option<std::path::PathBuf>,
    /// Whether the rollback guard reads `checkpoint_dir` (true by default). Commands that only
    /// produce evidence turn it off: they copy the database as it is, rolled back or not, and
    /// write nothing the guard protects. The erasure journal in the same folder is carried out
    /// either way, so that no command shows a value a restored database has forgotten erasing.
    pub rollback_guard: bool,
    /// Whether [`Store::start_workers`] starts the background checkpoint publisher. Maintenance
    /// commands that only read (restore verification) turn it off so that they sign nothing.
    pub publish_in_background: bool,
    /// Whether [`Store::start_workers`] starts the projection runner, which keeps the read-side
    /// views up to date in the background (the service does; one-shot commands do not).
    pub projections_in_background: bool,
    /// How often the projection runner polls for records written by another process; records
    /// appended by this one wake it at once.
    pub projection_poll_interval: Duration,
    /// How often [`Store::start_workers`]' retention scheduler erases expired values (see
    /// [`retention`]); `None` runs no scheduler (the default: `auditex serve` sets it).
    pub retention_interval: Option<Duration>,
    /// PostgreSQL only: URLs of hot standbys that serve read-only requests (see
    /// `postgres::replicas`); none by default.
    pub read_replicas: Vec<String>,
    /// How far behind the primary a read replica may replay before it is taken out of reads.
    pub replica_lag_max: Duration,
    /// PostgreSQL only: the other clusters tenants' ledgers may be placed on, as (name, URL)
    /// (see `postgres::cells`); none by default.
    pub cells: Vec<(String, String)>,
}

impl StoreConfig {
    /// Defaults for everything but the database and master key.
    pub fn new(database: DatabaseUrl, master_key: MasterKey) -> Self {
        StoreConfig {
            database,
            admin_database: None,
            master_key,
            previous_master_keys: Vec::new(),
            service_origin: "auditex.local/ledger".to_owned(),
            group_commit_window: Duration::from_micros(GROUP_COMMIT_WINDOW_US_DEFAULT),
            queue_requests_max: APPEND_QUEUE_REQUESTS_MAX,
            queue_records_max: APPEND_QUEUE_RECORDS_MAX,
            queue_bytes_max: APPEND_QUEUE_BYTES_MAX,
            queue_total_records_max: APPEND_QUEUE_TOTAL_RECORDS_MAX,
            queue_total_bytes_max: APPEND_QUEUE_TOTAL_BYTES_MAX,
            queue_wait_max: Duration::from_millis(APPEND_QUEUE_WAIT_MS_DEFAULT),
            clock_behind_max: Duration::from_millis(CLOCK_BEHIND_MS_DEFAULT),
            checkpoint_interval: Duration::from_millis(CHECKPOINT_INTERVAL_MS_DEFAULT),
            read_connections: 8,
            clock: Arc::new(SystemClock),
            checkpoint_dir: None,
            rollback_guard: true,
            publish_in_background: true,
            projections_in_background: false,
            projection_poll_interval: Duration::from_millis(PROJECTION_POLL_MS_DEFAULT),
            retention_interval: None,
            read_replicas: Vec::new(),
            replica_lag_max: Duration::from_millis(REPLICA_LAG_MAX_MS_DEFAULT),
            cells: Vec::new(),
        }
    }
}

/// Errors of the store other than append rejections.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database is unreachable or failed; the operation may succeed if retried. Shared, so
    /// that every caller of a failed group commit gets the same error.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] std::sync::Arc<sqlx::Error>),
    /// Migrations could not be applied or are not current.
    #[error("database schema: {0}")]
    Schema(String),
    /// The database URL cannot be used as written: a configuration mistake, not an outage, so
    /// never retried.
    #[error("invalid PostgreSQL URL: {0}")]
    InvalidDatabaseUrl(String),
    /// The bundled SQLite is older than [`SQLITE_VERSION_MIN`].
    #[error("SQLite {found} is too old: 3.51.3 or later is required")]
    SqliteTooOld {
        /// The version found.
        found: String,
    },
    /// No such tenant.
    #[error("unknown tenant")]
    UnknownTenant,
    /// The tenant exists already.
    #[error("tenant {0} exists already")]
    TenantExists(String),
    /// The storage under the database (or the published-checkpoint files) is full: nothing was
    /// written, and the same request succeeds once space is freed. Retryable; an HTTP layer
    /// answers 503 with the `storage-full` problem type.
    #[error("storage full: {0}")]
    StorageFull(String),
    /// The clock is further behind the chain head's capture time than allowed: nothing was
    /// written, rather than stamping every record with one instant. Retryable once the clock is
    /// corrected.
    #[error(
        "the system clock is {} s behind the latest capture time (at most {} s allowed); correct the clock",
        behind.as_secs(),
        allowed.as_secs()
    )]
    ClockBehind {
        /// How far behind.
        behind: Duration,
        /// The configured allowance.
        allowed: Duration,
    },
    /// Stored data fails a check made when reading it back.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A unique name (a user's email) is taken.
    #[error("{0}")]
    Duplicate(String),
    /// A read-side view has not been built yet (the service builds it on startup); retryable.
    #[error("{0}")]
    ViewNotReady(String),
    /// A projection's fold panicked on a record (a defect in the projection); the runner marks
    /// that projection stuck there for the tenant.
    #[error("{0}")]
    ProjectionPanicked(String),
    /// A request that cannot be answered for this tree (index beyond size, size beyond tree, …).
    #[error("{0}")]
    OutOfRange(String),
    /// The master key could not open a sealed secret, or a key file is unusable.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The tenant's database is behind (or forks from) the checkpoint published last, and no
    /// operator has acknowledged that yet: no checkpoint is published and appends are refused.
    /// Not retryable until `auditex rollback acknowledge`; an HTTP layer should answer 503.
    #[error(
        "tenant {tenant} is held after a rollback: {problem}; an operator must run `auditex rollback acknowledge --tenant {tenant} --reason \"...\"`"
    )]
    RollbackUnacknowledged {
        /// The tenant.
        tenant: String,
        /// What was detected.
        problem: rollback::RollbackProblem,
    },
    /// The published-checkpoint file (kept outside the database) cannot be read or written.
    #[error("{0}")]
    Witness(String),
    /// The tenant's erasure journal (kept outside the database) could not be carried out when
    /// the store opened: its erasable values are withheld and appends refused, so that a
    /// restored backup cannot bring erased personal data back. An HTTP layer answers 503.
    #[error(
        "tenant {tenant} is held: its erasure journal cannot be carried out ({problem}); repair or restore the journal file and restart (docs/OPERATIONS.md, \"Erasure and restores\")"
    )]
    ErasureJournal {
        /// The tenant.
        tenant: String,
        /// What is wrong.
        problem: String,
    },
    /// A backup or restore failed; the message says why and what was left untouched.
    #[error("{0}")]
    Backup(String),
    /// The PostgreSQL URL is invalid, or none of the nodes it names is a primary (the service
    /// appends only on a primary). Retryable: a failover manager may promote one.
    #[error("{0}")]
    NotPrimary(String),
    /// The tenant's ledger is fenced on the database this node sent the write to: it is being
    /// moved to another cell, or has moved and this node has not yet read its new placement
    /// (`store/postgres/cells.rs`). Nothing was written; retryable within seconds.
    #[error("{0}")]
    TenantFenced(String),
    /// Tenant cells are misconfigured or a move cannot proceed (`store/postgres/cells.rs`).
    #[error("{0}")]
    Cells(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        // Every database error passes here, so a full disk is named the same way on every path.
        if faults::is_storage_full_sqlx(&e) {
            StoreError::StorageFull(e.to_string())
        } else if e
            .as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|c| c == "AXF01")
        {
            // Migration 0028's fence: a tenant being moved between cells.
            StoreError::TenantFenced(e.to_string())
        } else {
            StoreError::Unavailable(std::sync::Arc::new(e))
        }
    }
}

impl StoreError {
    /// Whether the database refused a write for a duplicate key of a unique index.
    pub(crate) fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Unavailable(e)
            if e.as_database_error().is_some_and(|d| d.is_unique_violation()))
    }

    /// The same error for another caller (every caller of a failed group commit is told what
    /// the first one is): the same kind, so that each is told "storage full", "retry later" or
    /// "held" alike, and the same message. Every variant is named, so a new one gets a decision
    /// here rather than turning into another kind. An error holding a value that cannot be
    /// copied (an I/O error inside a crypto error) is passed on as its message.
    pub(crate) fn for_another_caller(&self) -> StoreError {
        use StoreError as E;
        match self {
            E::Unavailable(err) => E::Unavailable(std::sync::Arc::clone(err)),
            E::Schema(d) => E::Schema(d.clone()),
            E::InvalidDatabaseUrl(d) => E::InvalidDatabaseUrl(d.clone()),
            E::SqliteTooOld { found } => E::SqliteTooOld {
                found: found.clone(),
            },
            E::UnknownTenant => E::UnknownTenant,
            E::TenantExists(d) => E::TenantExists(d.clone()),
            E::StorageFull(d) => E::StorageFull(d.clone()),
            E::ClockBehind { behind, allowed } => E::ClockBehind {
                behind: *behind,
                allowed: *allowed,
            },
            E::Corrupt(d) => E::Corrupt(d.clone()),
            E::Duplicate(d) => E::Duplicate(d.clone()),
            E::ViewNotReady(d) => E::ViewNotReady(d.clone()),
            E::ProjectionPanicked(d) => E::ProjectionPanicked(d.clone()),
            E::OutOfRange(d) => E::OutOfRange(d.clone()),
            E::Crypto(c) => E::Corrupt(c.to_string()),
            E::RollbackUnacknowledged { tenant, problem } => E::RollbackUnacknowledged {
                tenant: tenant.clone(),
                problem: problem.clone(),
            },
            E::Witness(d) => E::Witness(d.clone()),
            E::ErasureJournal { tenant, problem } => E::ErasureJournal {
                tenant: tenant.clone(),
                problem: problem.clone(),
            },
            E::Backup(d) => E::Backup(d.clone()),
            E::NotPrimary(d) => E::NotPrimary(d.clone()),
            E::TenantFenced(d) => E::TenantFenced(d.clone()),
            E::Cells(d) => E::Cells(d.clone()),
        }
    }

    /// Whether the same request may succeed if retried later (database unreachable, storage
    /// full, clock behind).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable(_)
                | StoreError::NotPrimary(_)
                | StoreError::TenantFenced(_)
                | StoreError::StorageFull(_)
                | StoreError::ClockBehind { .. }
                | StoreError::ViewNotReady(_)
        )
    }
}

/// What a caller gets back for each appended record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Receipt {
    /// The record's sequence number.
    pub seq: u64,
    /// The client's event id.
    pub event_id: EventId,
    /// The record hash, hex.
    pub hash: Hash,
    /// The signature, hex.
    pub sig: RecordSignature,
    /// The signing key's id.
    pub key_id: KeyId,
    /// Capture time, µs since the Unix epoch.
    pub captured_at_us: u64,
    /// Capture time, RFC 3339.
    pub captured_at: String,
    /// True when this event id was appended earlier and nothing new was written.
    pub duplicate: bool,
}

impl Receipt {
    pub(crate) fn of(record: &Record, duplicate: bool) -> Self {
        Receipt {
            seq: record.seq.get(),
            event_id: record.event_id,
            hash: record.hash,
            sig: record.sig,
            key_id: record.key_id,
            captured_at_us: record.captured_at_us.unix_micros(),
            captured_at: record.captured_at_us.to_rfc3339(),
            duplicate,
        }
    }
}

/// A published checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// Tree size.
    pub size: TreeSize,
    /// Root hash.
    pub root: Hash,
    /// The C2SP signed note text.
    pub signed_note: String,
    /// When it was published, µs since the Unix epoch.
    pub published_at_us: u64,
}

/// The head of a tenant's chain: the last record's position, hash and capture time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChainHead {
    pub seq: Sequence,
    pub hash: Hash,
    pub captured_at: CaptureTime,
}

/// A record row as the backends return it, before it is checked.
pub(crate) struct RecordRow {
    pub tenant: String,
    pub seq: i64,
    pub event_id: String,
    pub event_type: String,
    pub captured_at_us: i64,
    pub prev: Vec<u8>,
    pub hash: Vec<u8>,
    pub key_id: String,
    pub sig: Vec<u8>,
    pub payload: String,
    pub erasable: String,
}

impl RecordRow {
    /// Rebuilds the record and checks that it still hashes to its stored hash.
    fn into_record(self) -> Result<Record, StoreError> {
        let record = self.into_unchecked_record()?;
        let computed = record.compute_hash();
        if computed != record.hash {
            return Err(StoreError::Corrupt(format!(
                "record {} hashes to {computed}, but {} is stored",
                record.seq, record.hash
            )));
        }
        Ok(record)
    }

    /// Rebuilds the record exactly as stored, without the read-back hash check: for the integrity
    /// check and the export, which must show a damaged record as it is rather than refuse it.
    fn into_unchecked_record(self) -> Result<Record, StoreError> {
        let corrupt = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::Corrupt(format!("record {}: {what}: {e}", self.seq))
        };
        let seq = u64::try_from(self.seq).map_err(|e| corrupt("seq", &e))?;
        let record = Record {
            v: ledger::record::FORMAT_VERSION,
            tenant: TenantId::parse(&self.tenant).map_err(|e| corrupt("tenant", &e))?,
            seq: Sequence::new(seq).map_err(|e| corrupt("seq", &e))?,
            prev: Hash::from_slice(&self.prev).map_err(|e| corrupt("prev", &e))?,
            captured_at_us: CaptureTime::from_unix_micros(
                u64::try_from(self.captured_at_us).map_err(|e| corrupt("captured_at_us", &e))?,
            )
            .map_err(|e| corrupt("captured_at_us", &e))?,
            event_id: EventId::parse(&self.event_id).map_err(|e| corrupt("event_id", &e))?,
            event_type: EventType::parse(&self.event_type)
                .map_err(|e| corrupt("event_type", &e))?,
            payload: Payload::from_json(&self.payload).map_err(|e| corrupt("payload", &e))?,
            erasable: serde_json::from_str::<BTreeMap<FieldName, Hash>>(&self.erasable)
                .map_err(|e| corrupt("erasable", &e))?,
            key_id: KeyId::parse(&self.key_id).map_err(|e| corrupt("key_id", &e))?,
            hash: Hash::from_slice(&self.hash).map_err(|e| corrupt("hash", &e))?,
            sig: RecordSignature::new(
                ed25519_dalek::Signature::from_slice(&self.sig).map_err(|e| corrupt("sig", &e))?,
            ),
        };
        Ok(record)
    }
}

/// A record row to insert.
pub(crate) struct NewRecordRow<'a> {
    pub record: &'a Record,
    pub payload: &'a str,
    pub erasable: String,
}

/// A sealed erasable value to insert.
pub(crate) struct NewErasableRow {
    pub seq: i64,
    pub field: String,
    /// Empty: the salt is sealed with the value.
    pub salt: Vec<u8>,
    pub sealed: Vec<u8>,
    /// The subject the value concerns (the record's, or its decision's), if known.
    pub subject_ref: Option<String>,
    /// The data key that sealed it.
    pub key_seq: i64,
}

/// A signing-key row.
pub(crate) struct KeyRow {
    pub key_id: String,
    pub public_key: Vec<u8>,
    pub sealed_secret: Vec<u8>,
    pub from_seq: i64,
    pub until_seq: Option<i64>,
}

/// The most tenants' checkpoints published at once: enough to overlap the commits and file
/// syncs of many tenants. Never more than half the read connections (see
/// [`publish_concurrency`]), so that a round of publications leaves connections for requests.
pub(crate) const PUBLISH_CONCURRENCY_MAX: usize = 16;

/// How many tenants' checkpoints a round publishes at once with `read_connections` (the pool
/// holds them plus two): half of them, at least 1, at most [`PUBLISH_CONCURRENCY_MAX`].
pub(crate) fn publish_concurrency(read_connections: u32) -> usize {
    usize::try_from(read_connections / 2)
        .unwrap_or(usize::MAX)
        .clamp(1, PUBLISH_CONCURRENCY_MAX)
}

/// What a checkpoint publication reads before it signs (see
/// [`backend::LedgerBackend::publication_reads`]).
pub(crate) struct PublicationReads {
    /// The size of the largest checkpoint stored.
    pub latest_checkpoint: Option<TreeSize>,
    /// The signing keys, oldest first.
    pub keys: Vec<KeyRow>,
    /// The last record.
    pub head: Option<ChainHead>,
}

/// Tree state an appender shares with the checkpoint publisher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TreeHead {
    pub size: TreeSize,
    pub root: Hash,
}

struct Inner {
    /// The database, behind the storage seam.
    backend: Arc<dyn backend::Backend>,
    master: MasterKeys,
    service_origin: String,
    config: StoreConfig,
    appenders: Mutex<HashMap<TenantId, appender::Handle>>,
    /// Set by [`Store::shutdown`]; read under the `appenders` lock before starting an appender.
    closed: AtomicBool,
    last_used: api_keys::LastUsed,
    /// API keys verified in the last moments (see `api_keys.rs`).
    verified_keys: api_keys::VerifiedKeys,
    tile_cache: Mutex<TileCache>,
    /// Tiles above level 0 with their inner levels folded (see [`Store::node_hashes`]).
    folded_tiles: Mutex<FoldedTiles>,
    /// Full leaf tiles' block roots (see [`Store::node_hashes`]).
    leaf_blocks: Mutex<LeafBlocksCache>,
    /// Each tenant's latest checkpoint with its cosignatures, as proofs read it (see
    /// `latest_checkpoints.rs`).
    latest_checkpoints: latest_checkpoints::LatestCheckpoints,
    /// Who may read each tenant's tiles, as last read (see `tiles.rs`).
    tile_access: tiles::TileAccessCache,
    /// How each tenant's witnesses are doing (see `witnesses.rs`).
    witness_board: witnesses::WitnessBoard,
    trees: Mutex<HashMap<TenantId, watch::Receiver<TreeHead>>>,
    /// Each tenant's recorded origin, once read: origins are written once and never change.
    origins: Mutex<HashMap<TenantId, String>>,
    shutdown: tokio::sync::Notify,
    /// Whether [`Store::start_workers`] has run (see [`workers`]).
    workers_started: AtomicBool,
    /// Checkpoint files outside the database, and the tenants held after a rollback.
    rollback: rollback::Guard,
    /// The erasure journal outside the database, and the tenants whose journal failed.
    erasure_journal: erasure::ErasureJournal,
    /// The projection runner's handle (woken after each commit; idle unless started).
    views: projections::runner::Runner,
    /// Storage full, clock behind, load shed: what `/readyz` and `/metrics` report.
    faults: faults::Faults,
    /// Records and bytes waiting in all tenants' append queues together.
    queue_total: Arc<appender::QueueBudget>,
}

/// The store: a cheap, cloneable handle.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("database", &self.inner.config.database)
            .finish()
    }
}

impl Store {
    /// [`Store::open`], then [`Store::start_workers`]: the background workers the configuration
    /// enables run until the store shuts down. For a one-shot command, a test or a bench; the
    /// server opens its store with [`Store::open`] and starts and joins the workers itself.
    ///
    /// # Errors
    /// [`StoreError`] when the database cannot be opened, is too old, or its schema is not current.
    pub async fn open_with_workers(config: StoreConfig) -> Result<Store, StoreError> {
        let store = Store::open(config).await?;
        // Nobody joins them: they stop when the store shuts down.
        drop(store.start_workers().await?);
        Ok(store)
    }

    /// Opens (and on SQLite creates) the database, applies or checks migrations, and checks for
    /// a rollback. Starts no background worker: the caller starts them with
    /// [`Store::start_workers`] (see [`workers`]), or opens with [`Store::open_with_workers`].
    ///
    /// # Errors
    /// [`StoreError`] when the database cannot be opened, is too old, or its schema is not current.
    pub async fn open(config: StoreConfig) -> Result<Store, StoreError> {
        let backend = open_backend(&config).await?;
        let config_checkpoint_dir = config.checkpoint_dir.clone();
        let rollback_guard = config.rollback_guard;
        let config_queue_total = (config.queue_total_records_max, config.queue_total_bytes_max);
        let store = Store {
            inner: Arc::new(Inner {
                backend,
                master: MasterKeys::new(
                    config.master_key.clone(),
                    config.previous_master_keys.clone(),
                ),
                service_origin: config.service_origin.clone(),
                config,
                appenders: Mutex::new(HashMap::new()),
                closed: AtomicBool::new(false),
                last_used: api_keys::LastUsed::default(),
                verified_keys: api_keys::VerifiedKeys::default(),
                tile_cache: Mutex::new(HashMap::new()),
                folded_tiles: Mutex::new(HashMap::new()),
                leaf_blocks: Mutex::new(HashMap::new()),
                latest_checkpoints: latest_checkpoints::LatestCheckpoints::default(),
                tile_access: tiles::TileAccessCache::default(),
                witness_board: witnesses::WitnessBoard::default(),
                trees: Mutex::new(HashMap::new()),
                origins: Mutex::new(HashMap::new()),
                shutdown: tokio::sync::Notify::new(),
                workers_started: AtomicBool::new(false),
                erasure_journal: erasure::ErasureJournal::new(config_checkpoint_dir.clone()),
                rollback: rollback::Guard::new(config_checkpoint_dir.filter(|_| rollback_guard)),
                views: projections::runner::Runner::new(),
                faults: faults::Faults::default(),
                queue_total: Arc::new(appender::QueueBudget::new(
                    config_queue_total.0,
                    config_queue_total.1,
                )),
            }),
        };
        // Before anything can be published: is the database behind what was published last?
        rollback::check_on_open(&store).await?;
        // Before anything can be served: erasures a restored database has forgotten are redone.
        store.reapply_erasure_journals().await?;
        // And a log a killed process left holding erased values' old pages is truncated.
        if store.backend().log_marked() {
            store.truncate_log_after_erasure().await;
        }
        Ok(store)
    }

    /// Applies migrations with `admin_url` (or the database URL on SQLite) and returns how many
    /// were applied.
    ///
    /// # Errors
    /// [`StoreError::Schema`] or [`StoreError::Unavailable`].
    pub async fn migrate(
        database: &DatabaseUrl,
        admin_url: Option<&str>,
    ) -> Result<usize, StoreError> {
        migrate_backend(database, admin_url).await
    }

    /// The database, behind the storage seam.
    pub(crate) fn backend(&self) -> &dyn backend::Backend {
        &*self.inner.backend
    }

    pub(crate) fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    pub(crate) fn faults(&self) -> &faults::Faults {
        &self.inner.faults
    }

    pub(crate) fn queue_total(&self) -> &Arc<appender::QueueBudget> {
        &self.inner.queue_total
    }

    /// On PostgreSQL, the node used as the primary, how often it changed and how long the
    /// service has been without one (for `/metrics`).
    pub fn database_primary(&self) -> Option<PrimaryInfo> {
        self.backend().primary()
    }

    /// On PostgreSQL, the read replicas: whether each is in reads, its lag and its reads (for
    /// `/metrics`).
    pub fn read_replicas(&self) -> Vec<ReplicaInfo> {
        self.backend().read_replicas()
    }

    /// The faults met so far: storage full, clock behind, load shed (for `/readyz` and
    /// `/metrics`).
    pub fn fault_status(&self) -> faults::FaultStatus {
        self.inner.faults.status(self.inner.config.clock_behind_max)
    }

    /// Records and estimated bytes waiting in all tenants' append queues (for `/metrics`).
    pub fn append_queue_load(&self) -> (usize, usize) {
        self.inner.queue_total.load()
    }

    /// Forgets every Merkle tile kept for `tenant` (see [`Store::tile_hashes`]), and its latest
    /// checkpoint as proofs read it: what a rollback hold and its release must not keep.
    pub(crate) fn forget_tiles(&self, tenant: &TenantId) {
        self.lock_tile_cache().retain(|(t, _, _), _| t != tenant);
        self.lock_folded_tiles().retain(|(t, _, _), _| t != tenant);
        self.lock_leaf_blocks().retain(|(t, _), _| t != tenant);
        self.inner.latest_checkpoints.forget(tenant);
    }

    fn lock_folded_tiles(&self) -> std::sync::MutexGuard<'_, FoldedTiles> {
        self.inner
            .folded_tiles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Tile `tile` at `base` (above level 0) with its inner levels folded, for exactly `hashes`:
    /// kept between proofs, as every proof of the tenant climbs through these few tiles.
    fn folded_tile(
        &self,
        tenant: &TenantId,
        base: u8,
        tile: u64,
        hashes: &Arc<[Hash]>,
    ) -> Arc<FoldedTile> {
        kept_or_made(
            &self.inner.folded_tiles,
            (tenant.clone(), base, tile),
            FOLDED_TILES_MAX,
            |f| same_hashes(&f.hashes, hashes),
            || FoldedTile::fold(Arc::clone(hashes)),
        )
    }

    fn lock_leaf_blocks(&self) -> std::sync::MutexGuard<'_, LeafBlocksCache> {
        self.inner
            .leaf_blocks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The block roots of full leaf tile `tile`, for exactly `leaves` (its 256 leaf hashes):
    /// kept between proofs, as a proof of any record in the tile needs some of them.
    fn leaf_blocks(&self, tenant: &TenantId, tile: u64, leaves: &Arc<[Hash]>) -> Arc<LeafBlocks> {
        kept_or_made(
            &self.inner.leaf_blocks,
            (tenant.clone(), tile),
            LEAF_BLOCKS_MAX,
            |b| b.folded_from(leaves),
            || LeafBlocks::fold(leaves),
        )
    }

    fn lock_tile_cache(&self) -> std::sync::MutexGuard<'_, TileCache> {
        self.inner
            .tile_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn last_used(&self) -> &api_keys::LastUsed {
        &self.inner.last_used
    }

    /// The master keys: the current one seals, previous ones (during a rotation) only open.
    pub fn master_keys(&self) -> &MasterKeys {
        &self.inner.master
    }

    pub(crate) fn master(&self) -> &MasterKeys {
        &self.inner.master
    }

    /// The store clock's time, µs since the Unix epoch (the portal's sessions and tokens use it,
    /// so that tests can move time).
    pub fn now_us(&self) -> i64 {
        i64::try_from(self.inner.config.clock.now_unix_micros()).unwrap_or(i64::MAX)
    }

    /// The projection runner's handle: its status (lag, rebuilds) and wake-ups.
    pub fn views_runner(&self) -> &projections::runner::Runner {
        &self.inner.views
    }

    pub(crate) fn rollback_guard(&self) -> &rollback::Guard {
        &self.inner.rollback
    }

    pub(crate) fn erasure_journal(&self) -> &erasure::ErasureJournal {
        &self.inner.erasure_journal
    }

    /// The tenants whose erasure journal could not be carried out when the store opened (their
    /// erasable values are withheld and appends refused), with the reason.
    pub fn erasure_journal_problems(&self) -> BTreeMap<TenantId, String> {
        self.inner.erasure_journal.blocked_tenants()
    }

    /// The checkpoint origin of a tenant (also the name of its checkpoint-signing key), as
    /// recorded when the tenant was created. It is never derived again from the configured
    /// origin, so evidence written by a process with another `AUDITEX_ORIGIN` (an export, a key
    /// history) still names the origin the tenant's checkpoints are signed under.
    ///
    /// A tenant created before origins were recorded gets its origin recorded on first use: the
    /// one its latest stored checkpoint names (what was signed and published), or, if it never
    /// published a checkpoint, the configured one (nothing signed can contradict it).
    ///
    /// # Errors
    /// A database error, or a stored checkpoint that cannot be parsed.
    pub async fn origin(&self, tenant: &TenantId) -> Result<String, StoreError> {
        if let Some(origin) = self.lock_origins().get(tenant) {
            return Ok(origin.clone());
        }
        let origin = match self.backend().tenant_origin(tenant).await? {
            Some(origin) => origin,
            None => self.record_legacy_origin(tenant).await?,
        };
        self.lock_origins().insert(tenant.clone(), origin.clone());
        Ok(origin)
    }

    /// Records the origin of a tenant created before origins were stored (see [`Store::origin`])
    /// and returns the one recorded (another process may have been first).
    async fn record_legacy_origin(&self, tenant: &TenantId) -> Result<String, StoreError> {
        let origin = match self.latest_checkpoint(tenant).await? {
            Some(c) => checkpoint_origin(&c.signed_note)?,
            None => tenant_origin(&self.inner.service_origin, tenant.as_str()),
        };
        let now = self.inner.config.clock.now_unix_micros();
        self.backend()
            .record_tenant_origin(tenant, &origin, now)
            .await?;
        let recorded = self
            .backend()
            .tenant_origin(tenant)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("no origin recorded for {tenant}")))?;
        tracing::info!(tenant = %tenant, origin = %recorded, "recorded the tenant's checkpoint origin");
        Ok(recorded)
    }

    fn lock_origins(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, String>> {
        self.inner
            .origins
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the database answers (for readiness checks).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.backend().ping().await
    }

    /// The version of the SQLite library in use, when the backend is SQLite.
    pub async fn sqlite_version(&self) -> Option<String> {
        self.backend().sqlite_version().await
    }

    /// Creates a tenant with a fresh Ed25519 signing key, returning the key's interval.
    ///
    /// # Errors
    /// [`StoreError::TenantExists`] or a database error.
    pub async fn create_tenant(&self, tenant: &TenantId) -> Result<KeyInterval, StoreError> {
        let secret: [u8; 32] = rand::random();
        let key = SigningKey::from_bytes(&secret);
        let key_id = KeyId::of(&key.verifying_key());
        let row = KeyRow {
            key_id: key_id.to_hex(),
            public_key: key.verifying_key().as_bytes().to_vec(),
            sealed_secret: self
                .inner
                .master
                .seal(&SealContext::signing_key(tenant, key_id), &secret)?,
            from_seq: 0,
            until_seq: None,
        };
        let now = self.inner.config.clock.now_unix_micros();
        let origin = tenant_origin(&self.inner.service_origin, tenant.as_str());
        self.backend()
            .create_tenant(tenant, &origin, &row, now)
            .await?;
        Ok(KeyInterval {
            key_id,
            public_key: key.verifying_key(),
            from_seq: 0,
            until_seq: None,
        })
    }

    /// Every tenant id, sorted.
    pub async fn tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        let ids = self.backend().tenants().await?;
        ids.iter()
            .map(|t| TenantId::parse(t).map_err(|e| StoreError::Corrupt(e.to_string())))
            .collect()
    }

    /// Whether the tenant exists.
    pub async fn tenant_exists(&self, tenant: &TenantId) -> Result<bool, StoreError> {
        self.backend().tenant_exists(tenant).await
    }

    /// The tenant's public-key history, oldest first.
    ///
    /// # Errors
    /// [`StoreError::UnknownTenant`] when it has no keys.
    pub async fn key_history(&self, tenant: &TenantId) -> Result<KeyRing, StoreError> {
        let rows = self.backend().keys(tenant).await?;
        if rows.is_empty() {
            return Err(StoreError::UnknownTenant);
        }
        let intervals = rows
            .into_iter()
            .map(|r| key_interval(&r))
            .collect::<Result<Vec<_>, _>>()?;
        KeyRing::new(intervals).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// The tenant's current signing key, decrypted.
    pub(crate) async fn current_signer(
        &self,
        tenant: &TenantId,
    ) -> Result<(RecordSigner, KeyInterval), StoreError> {
        let rows = self.backend().keys(tenant).await?;
        self.current_signer_of(tenant, rows)
    }

    /// The current signing key among the tenant's key rows, decrypted.
    fn current_signer_of(
        &self,
        tenant: &TenantId,
        rows: Vec<KeyRow>,
    ) -> Result<(RecordSigner, KeyInterval), StoreError> {
        let row = rows
            .into_iter()
            .find(|r| r.until_seq.is_none())
            .ok_or(StoreError::UnknownTenant)?;
        let interval = key_interval(&row)?;
        let secret = self.inner.master.open(
            &SealContext::signing_key(tenant, interval.key_id),
            &row.sealed_secret,
        )?;
        let secret: [u8; 32] = secret
            .try_into()
            .map_err(|_| StoreError::Corrupt("sealed signing key has the wrong length".into()))?;
        let signer = RecordSigner::new(SigningKey::from_bytes(&secret));
        if signer.key_id() != interval.key_id {
            return Err(StoreError::Corrupt(format!(
                "signing key {} does not match its public key",
                interval.key_id
            )));
        }
        Ok((signer, interval))
    }

    /// Appends a batch of client drafts for one tenant, all or nothing, and returns one receipt
    /// per draft. A draft whose event id exists already gets the original receipt (`duplicate`).
    ///
    /// Only [`ClientDraft`]s come in here: the event types the service writes itself (key
    /// rotations, integrity checks, rollback acknowledgements, portal audit records) cannot be
    /// appended through this door by any caller, HTTP, command line or library alike.
    ///
    /// # Errors
    /// [`AppendError`]: overloaded (retry later), conflict (same event id, other content),
    /// unknown tenant, batch too large, or the database failed (retryable).
    pub async fn append(
        &self,
        tenant: &TenantId,
        drafts: Vec<ClientDraft>,
    ) -> Result<Vec<Receipt>, AppendError> {
        self.append_drafts(
            tenant,
            drafts.into_iter().map(ClientDraft::into_prepared).collect(),
        )
        .await
    }

    /// Appends records the service writes in its own name, as [`Store::append`] does.
    ///
    /// # Errors
    /// As [`Store::append`].
    pub(crate) async fn append_service(
        &self,
        tenant: &TenantId,
        drafts: Vec<ServiceDraft>,
    ) -> Result<Vec<Receipt>, AppendError> {
        self.append_drafts(
            tenant,
            drafts
                .into_iter()
                .map(ServiceDraft::into_prepared)
                .collect(),
        )
        .await
    }

    async fn append_drafts(
        &self,
        tenant: &TenantId,
        drafts: Vec<PreparedDraft>,
    ) -> Result<Vec<Receipt>, AppendError> {
        if drafts.is_empty() {
            return Ok(Vec::new());
        }
        if drafts.len() > BATCH_RECORDS_MAX {
            return Err(AppendError::BatchTooLarge {
                records: drafts.len(),
                max: BATCH_RECORDS_MAX,
            });
        }
        // After a detected rollback, nothing extends the chain until an operator acknowledges.
        self.refuse_if_rolled_back(tenant)?;
        let handle = self.appender(tenant).await?;
        handle.submit(drafts).await
    }

    async fn appender(&self, tenant: &TenantId) -> Result<appender::Handle, AppendError> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(AppendError::ShuttingDown);
        }
        if let Some(h) = self.lock_appenders().get(tenant).filter(|h| h.is_alive()) {
            return Ok(h.clone());
        }
        if !self
            .tenant_exists(tenant)
            .await
            .map_err(AppendError::Store)?
        {
            return Err(AppendError::UnknownTenant);
        }
        let (handle, tree) = appender::spawn(self.clone(), tenant.clone()).await?;
        let mut appenders = self.lock_appenders();
        // Checked under the lock that `shutdown` drains, so no appender starts after it.
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(AppendError::ShuttingDown);
        }
        // Another caller may have started one meanwhile; keep the first, drop ours.
        if let Some(h) = appenders.get(tenant).filter(|h| h.is_alive()) {
            return Ok(h.clone());
        }
        appenders.insert(tenant.clone(), handle.clone());
        self.lock_trees().insert(tenant.clone(), tree);
        Ok(handle)
    }

    fn lock_appenders(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, appender::Handle>> {
        // A panic while holding this lock leaves the map itself consistent.
        self.inner
            .appenders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn lock_trees(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<TenantId, watch::Receiver<TreeHead>>> {
        self.inner.trees.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Rotates the tenant's signing key (see the key-rotation record in FORMAT.md) and returns
    /// the new key's interval.
    ///
    /// # Errors
    /// [`AppendError`] as for appends.
    pub async fn rotate_key(&self, tenant: &TenantId) -> Result<KeyInterval, AppendError> {
        self.refuse_if_rolled_back(tenant)?;
        self.appender(tenant).await?.rotate().await
    }

    /// Opens every tenant's current signing key with the master key (for readiness checks);
    /// returns how many opened, or which tenant's key did not.
    ///
    /// # Errors
    /// A message naming the first tenant whose key is missing or does not open.
    pub async fn check_signing_keys(&self) -> Result<usize, String> {
        let tenants = self.tenants().await.map_err(|e| e.to_string())?;
        for tenant in &tenants {
            self.current_signer(tenant)
                .await
                .map_err(|e| format!("the signing key of {tenant} is not usable: {e}"))?;
        }
        Ok(tenants.len())
    }

    /// Append requests waiting in every tenant's queue (for `/metrics`).
    pub fn append_queue_depth(&self) -> usize {
        self.lock_appenders()
            .values()
            .map(appender::Handle::queue_depth)
            .sum()
    }

    /// Seconds since the latest checkpoint of the tenant whose live tree is furthest ahead of its
    /// checkpoint; 0 when every tenant's latest checkpoint covers its tree.
    pub async fn oldest_checkpoint_lag_seconds(&self) -> Result<f64, StoreError> {
        let heads: Vec<(TenantId, TreeHead)> = self
            .lock_trees()
            .iter()
            .map(|(t, rx)| (t.clone(), *rx.borrow()))
            .collect();
        let now = self.inner.config.clock.now_unix_micros();
        let mut worst = 0.0f64;
        for (tenant, head) in heads {
            let latest = self.latest_checkpoint(&tenant).await?;
            match latest {
                Some(c) if c.size >= head.size => {}
                Some(c) => worst = worst.max(now.saturating_sub(c.published_at_us) as f64 / 1e6),
                None if head.size.get() > 0 => worst = worst.max(f64::INFINITY.min(1e9)),
                None => {}
            }
        }
        Ok(worst)
    }

    /// Stops accepting appends, waits for queued ones to commit, and publishes final checkpoints.
    pub async fn shutdown(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.inner.views.stop();
        let handles: Vec<_> = self.lock_appenders().drain().map(|(_, h)| h).collect();
        for h in handles {
            h.close().await;
        }
        // The final checkpoint covers the last records appended; if it cannot be published the
        // next start publishes it, but the operator must learn why this one failed.
        if let Err(e) = checkpointer::publish_all(self).await {
            tracing::error!(error = %e, "final checkpoint at shutdown failed; the next start publishes it");
        }
        // `notify_one` keeps a permit if the publisher is busy publishing right now (only one task
        // waits on this); `notify_waiters` would be lost then and leave it running.
        self.inner.shutdown.notify_one();
        // A stopped service leaves no erased value's old page image in SQLite's log (see
        // `Backend::truncate_log`). The log is emptied after each erasure already; this is for
        // an erasure whose truncation readers kept from finishing, and the log's mark (every
        // erasure sets it before it commits; see `Backend::mark_log`).
        if self.backend().log_marked() {
            match self.backend().truncate_log().await {
                Ok(true) => {
                    if let Err(e) = self.backend().clear_log_mark() {
                        tracing::warn!(error = %e, "the next start truncates the log once more");
                    }
                }
                Ok(false) => tracing::warn!(
                    "the database's log could not be truncated at shutdown: readers were busy"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "truncating the database's log at shutdown failed")
                }
            }
        }
        // Nothing more is written: `auditex restore` may replace the SQLite file now.
        self.backend().release_in_use_lock();
    }

    /// Truncates the database's log after an erasure (see `Backend::truncate_log`). When
    /// readers keep it from being truncated now, or it fails, a task tries again every second
    /// for a minute; the shutdown tries once more, as the log's mark (set before the erasure
    /// committed, `Backend::mark_log`) asks.
    pub(crate) async fn truncate_log_after_erasure(&self) {
        match self.backend().truncate_log().await {
            Ok(true) => return,
            Ok(false) => {
                tracing::info!("the log still holds erased pages: readers are busy; retrying")
            }
            Err(e) => {
                tracing::warn!(error = %e, "truncating the log after an erasure failed; retrying")
            }
        }
        let store = self.clone();
        tokio::spawn(async move {
            for _ in 0..60 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if matches!(store.backend().truncate_log().await, Ok(true)) {
                    return;
                }
            }
            tracing::warn!(
                "the database's log could not be truncated after an erasure for a minute; the store's shutdown tries again"
            );
        });
    }

    pub(crate) fn shutdown_signal(&self) -> &tokio::sync::Notify {
        &self.inner.shutdown
    }

    /// The number of records in the tenant's chain.
    pub async fn tree_size(&self, tenant: &TenantId) -> Result<TreeSize, StoreError> {
        let head = self.chain_head(tenant).await?;
        Ok(head.map_or(TreeSize::ZERO, |h| h.seq.tree_size_through()))
    }

    pub(crate) async fn chain_head(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<ChainHead>, StoreError> {
        self.backend().chain_head(tenant).await
    }

    /// One record by sequence number, checked against its stored hash.
    pub async fn record(
        &self,
        tenant: &TenantId,
        seq: Sequence,
    ) -> Result<Option<Record>, StoreError> {
        let row = self.backend().record_by_seq(tenant, seq).await?;
        row.map(RecordRow::into_record).transpose()
    }

    /// The stored hash of record `seq` alone (an index-only read), or `None` when there is no
    /// such record. Not checked against the record's content: what proves anything is the
    /// inclusion proof of this hash against a signed checkpoint, which a changed hash fails.
    pub async fn record_hash(
        &self,
        tenant: &TenantId,
        seq: Sequence,
    ) -> Result<Option<Hash>, StoreError> {
        let hashes = self
            .backend()
            .record_hashes(tenant, seq.get(), seq.get().saturating_add(1))
            .await?;
        hashes
            .first()
            .map(|h| Hash::from_slice(h).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
    }

    /// One record by event id, checked against its stored hash.
    pub async fn record_by_event_id(
        &self,
        tenant: &TenantId,
        event_id: EventId,
    ) -> Result<Option<Record>, StoreError> {
        let rows = self
            .backend()
            .records_by_event_ids(tenant, &[event_id.to_string()])
            .await?;
        rows.into_iter()
            .next()
            .map(RecordRow::into_record)
            .transpose()
    }

    /// Up to `limit` (at most [`RANGE_RECORDS_MAX`]) records from `from` on, in sequence order.
    pub async fn records(
        &self,
        tenant: &TenantId,
        from: Sequence,
        limit: u64,
    ) -> Result<Vec<Record>, StoreError> {
        let limit = limit.min(RANGE_RECORDS_MAX);
        let rows = self.backend().records_range(tenant, from, limit).await?;
        rows.into_iter().map(RecordRow::into_record).collect()
    }

    /// Up to `limit` (at most [`RANGE_RECORDS_MAX`]) records of `event_type` with a sequence
    /// number below `before` (all when `None`), newest first, each checked against its stored
    /// hash. Served by the `records_by_type` index, so it costs the records returned, not the
    /// length of the chain: what listing a tenant's integrity checks needs.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails or a record no longer hashes to its stored hash.
    pub async fn records_of_type(
        &self,
        tenant: &TenantId,
        event_type: EventType,
        before: Option<Sequence>,
        limit: u64,
    ) -> Result<Vec<Record>, StoreError> {
        let limit = limit.min(RANGE_RECORDS_MAX);
        let rows = self
            .backend()
            .records_of_type(tenant, event_type, before, limit)
            .await?;
        rows.into_iter().map(RecordRow::into_record).collect()
    }

    /// The erasable values stored beside record `seq` (those not yet erased).
    ///
    /// # Errors
    /// [`StoreError::ErasureJournal`] while the tenant's erasure journal is not carried out.
    pub async fn erasable_values(
        &self,
        tenant: &TenantId,
        seq: Sequence,
    ) -> Result<BTreeMap<FieldName, ErasableValue>, StoreError> {
        self.erasure_journal().refuse_if_blocked(tenant)?;
        let rows = self.backend().erasable_values(tenant, seq).await?;
        let mut keys = BTreeMap::new();
        let mut out = BTreeMap::new();
        for row in rows {
            let name =
                FieldName::parse(&row.field).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let (salt, plain) = match row.key {
                // Written before data keys existed: sealed under the master key, salt beside.
                None => {
                    let plain = self.inner.master.open(
                        &SealContext::erasable(tenant, seq.get(), &row.field),
                        &row.sealed,
                    )?;
                    let salt: [u8; 32] = row.salt.as_slice().try_into().map_err(|_| {
                        StoreError::Corrupt("erasable salt has the wrong length".into())
                    })?;
                    (salt, zeroize::Zeroizing::new(plain))
                }
                // The key is destroyed: whatever is left cannot be opened and is not served.
                Some((_, None)) => continue,
                Some((key_seq, Some(wrapped))) => {
                    let key_seq = u64::try_from(key_seq)
                        .map_err(|_| StoreError::Corrupt("negative data key number".into()))?;
                    let key = match keys.entry(key_seq) {
                        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::btree_map::Entry::Vacant(e) => {
                            e.insert(shredding::DataKey::unwrap(
                                &self.inner.master,
                                tenant,
                                key_seq,
                                &wrapped,
                            )?)
                        }
                    };
                    key.open_value(tenant, seq.get(), &row.field, &row.sealed)?
                }
            };
            let value =
                serde_json::from_slice(&plain).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            out.insert(name, ErasableValue { salt, value });
        }
        Ok(out)
    }

    /// The fields of record `seq` that were erased, each with the `erasure` record's seq.
    pub async fn erased_fields(
        &self,
        tenant: &TenantId,
        seq: Sequence,
    ) -> Result<BTreeMap<FieldName, u64>, StoreError> {
        self.backend()
            .erased_fields(tenant, seq)
            .await?
            .into_iter()
            .map(|(field, by)| {
                Ok((
                    FieldName::parse(&field).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    u64::try_from(by).map_err(|_| StoreError::Corrupt("negative seq".into()))?,
                ))
            })
            .collect()
    }

    /// The latest published checkpoint.
    pub async fn latest_checkpoint(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.backend().latest_checkpoint(tenant).await
    }

    /// The tenant's latest checkpoint of at least `at_least` records, with its cosignatures, for
    /// a proof: served from memory for up to [`LATEST_CHECKPOINT_KEPT_MS`] (see
    /// `latest_checkpoints.rs`), and read again sooner when the kept one is smaller. Reads that
    /// may go to a read replica neither use nor fill it. `None` when no checkpoint is published;
    /// a smaller one than `at_least` when that is the latest.
    ///
    /// # Errors
    /// A database error.
    pub async fn latest_checkpoint_for_proofs(
        &self,
        tenant: &TenantId,
        at_least: u64,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        let latest = &self.inner.latest_checkpoints;
        let on_primary =
            self.inner.config.read_replicas.is_empty() || read_route() == ReadRoute::Primary;
        if on_primary && let Some(kept) = latest.get(tenant, at_least) {
            return Ok(Some(kept));
        }
        let began = latest.begin();
        let Some(read) = self.latest_checkpoint(tenant).await? else {
            return Ok(None);
        };
        let checkpoint = self.with_cosignatures(tenant, read).await?;
        if on_primary {
            latest.keep(tenant, began, checkpoint.clone());
        }
        Ok(Some(checkpoint))
    }

    /// The checkpoint published at exactly `size`, if any.
    pub async fn checkpoint_at(
        &self,
        tenant: &TenantId,
        size: TreeSize,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.backend().checkpoint_at(tenant, size).await
    }

    /// Published checkpoints with size greater than `after`, smallest first, at most `limit`.
    pub async fn checkpoints(
        &self,
        tenant: &TenantId,
        after: Option<TreeSize>,
        limit: u64,
    ) -> Result<Vec<StoredCheckpoint>, StoreError> {
        self.backend()
            .checkpoints(tenant, after, limit.min(RANGE_RECORDS_MAX))
            .await
    }

    /// Checkpoints of branches abandoned by acknowledged rollbacks with a larger tree size than
    /// `after`, smallest first, each with the sequence number of the `rollback_acknowledged`
    /// record that abandoned it.
    ///
    /// # Errors
    /// A database error.
    pub async fn abandoned_checkpoints(
        &self,
        tenant: &TenantId,
        after: Option<TreeSize>,
        limit: u64,
    ) -> Result<Vec<(u64, StoredCheckpoint)>, StoreError> {
        self.backend()
            .abandoned_checkpoints(tenant, after, limit.min(RANGE_RECORDS_MAX))
            .await
    }

    pub(crate) async fn insert_abandoned_checkpoint(
        &self,
        tenant: &TenantId,
        abandoned_by_seq: u64,
        c: &StoredCheckpoint,
    ) -> Result<(), StoreError> {
        self.backend()
            .insert_abandoned_checkpoint(tenant, abandoned_by_seq, c)
            .await
    }

    /// Publishes a checkpoint now for every tenant whose tree grew (normally done by the
    /// background publisher at least once per [`StoreConfig::checkpoint_interval`]).
    pub async fn publish_checkpoints(&self) -> Result<(), StoreError> {
        checkpointer::publish_all(self).await
    }

    /// Publishes a checkpoint of `tenant`'s whole stored chain unless its latest checkpoint
    /// covers it already, whichever process or node appended the records (`auditex checkpoint`).
    ///
    /// # Errors
    /// As [`Store::publish_checkpoints`].
    pub async fn publish_checkpoint_of(&self, tenant: &TenantId) -> Result<(), StoreError> {
        self.refuse_if_rolled_back(tenant)?;
        checkpointer::publish_stored_of(self, tenant).await
    }

    /// The root of the tenant's tree at `size`, computed from stored tiles.
    ///
    /// # Errors
    /// [`StoreError::OutOfRange`] when `size` exceeds the tree.
    pub async fn root_at(&self, tenant: &TenantId, size: TreeSize) -> Result<Hash, StoreError> {
        self.check_size(tenant, size).await?;
        Ok(self.compact_tree_at(tenant, size).await?.root())
    }

    /// The compact tree (right edge) at `size`, to resume appending.
    pub(crate) async fn compact_tree_at(
        &self,
        tenant: &TenantId,
        size: TreeSize,
    ) -> Result<CompactTree, StoreError> {
        let ids = compact_range_node_ids(size);
        let hashes = self.node_hashes(tenant, &ids, TileReads::FullKept).await?;
        CompactTree::from_parts(size, hashes).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// The RFC 9162 inclusion proof of leaf `index` in the tree of `size`.
    ///
    /// # Errors
    /// [`StoreError::OutOfRange`] when `index >= size` or `size` exceeds the tree.
    pub async fn inclusion_proof(
        &self,
        tenant: &TenantId,
        index: LeafIndex,
        size: TreeSize,
    ) -> Result<Vec<Hash>, StoreError> {
        self.check_size(tenant, size).await?;
        self.inclusion_proof_within(tenant, index, size).await
    }

    /// As [`Store::inclusion_proof`], for a size known to be within the tree (that of a published
    /// checkpoint), without the size check's query: the hot path of proof requests.
    ///
    /// # Errors
    /// [`StoreError::OutOfRange`] when `index >= size`; [`StoreError::Corrupt`] when a tile is
    /// missing (which a size beyond the tree would also cause).
    pub async fn inclusion_proof_within(
        &self,
        tenant: &TenantId,
        index: LeafIndex,
        size: TreeSize,
    ) -> Result<Vec<Hash>, StoreError> {
        let nodes = inclusion_proof_node_ids(index, size)
            .map_err(|e| StoreError::OutOfRange(e.to_string()))?;
        let hashes = self
            .node_hashes(tenant, nodes.ids(), TileReads::AllKept)
            .await?;
        nodes
            .rehash(&hashes)
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// The consistency proof between `size1` and `size2` computed from storage only, never from
    /// the tile cache: what the integrity check uses, so it judges the data as stored now.
    ///
    /// # Errors
    /// As [`Store::consistency_proof`].
    pub(crate) async fn consistency_proof_from_storage(
        &self,
        tenant: &TenantId,
        size1: TreeSize,
        size2: TreeSize,
    ) -> Result<Vec<Hash>, StoreError> {
        self.check_size(tenant, size2).await?;
        let nodes = consistency_proof_node_ids(size1, size2)
            .map_err(|e| StoreError::OutOfRange(e.to_string()))?;
        let hashes = self
            .node_hashes(tenant, nodes.ids(), TileReads::Stored)
            .await?;
        nodes
            .rehash(&hashes)
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// The RFC 9162 consistency proof between trees of `size1` and `size2`.
    ///
    /// # Errors
    /// [`StoreError::OutOfRange`] when `size1 > size2` or `size2` exceeds the tree.
    pub async fn consistency_proof(
        &self,
        tenant: &TenantId,
        size1: TreeSize,
        size2: TreeSize,
    ) -> Result<Vec<Hash>, StoreError> {
        self.check_size(tenant, size2).await?;
        let nodes = consistency_proof_node_ids(size1, size2)
            .map_err(|e| StoreError::OutOfRange(e.to_string()))?;
        let hashes = self
            .node_hashes(tenant, nodes.ids(), TileReads::AllKept)
            .await?;
        nodes
            .rehash(&hashes)
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    async fn check_size(&self, tenant: &TenantId, size: TreeSize) -> Result<(), StoreError> {
        let current = self.tree_size(tenant).await?;
        if size > current {
            return Err(StoreError::OutOfRange(format!(
                "tree size {size} is beyond the current tree of {current} records"
            )));
        }
        Ok(())
    }

    /// The hashes of perfect-subtree nodes, read tile by tile: a node at level `L` is folded from
    /// the at most 128 stored hashes at level `L - L % 8` below it (level 0 being the leaf hashes
    /// of the records). Nodes in the same tile share one range read. A tile above level 0 is
    /// folded once and kept folded: a proof's siblings in a tile cost up to 247 node hashes, and
    /// every proof of the tenant climbs through the same few upper tiles. Level-0 tiles, one per
    /// 256 records, keep only the roots of their blocks of 16 leaves once full (keeping them
    /// folded would double the tile cache): a proof then hashes 22 nodes in its leaf tile.
    async fn node_hashes(
        &self,
        tenant: &TenantId,
        ids: &[NodeId],
        reads: TileReads,
    ) -> Result<Vec<Hash>, StoreError> {
        // Group the ids by (base level, tile index) so each tile is read once, with how many of
        // its hashes the proof needs.
        let mut needs: BTreeMap<(u8, u64), usize> = BTreeMap::new();
        for id in ids {
            let base = id.level() - id.level() % TILE_HEIGHT;
            let first = id.index() << (id.level() - base);
            let end = (first % (1 << TILE_HEIGHT)) + (1u64 << (id.level() - base));
            let need = needs.entry((base, first >> TILE_HEIGHT)).or_default();
            *need = (*need).max(usize::try_from(end).unwrap_or(usize::MAX));
        }
        let mut tiles: BTreeMap<(u8, u64), Arc<[Hash]>> = BTreeMap::new();
        for (&(base, tile), &need) in &needs {
            let hashes = self.tile_hashes(tenant, base, tile, need, reads).await?;
            tiles.insert((base, tile), hashes);
        }
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let base = id.level() - id.level() % TILE_HEIGHT;
            let width = 1u64 << (id.level() - base);
            let first = id.index() << (id.level() - base);
            let tile = &tiles[&(base, first >> TILE_HEIGHT)];
            let start = usize::try_from(first % (1 << TILE_HEIGHT)).unwrap_or(usize::MAX);
            let end = start.saturating_add(usize::try_from(width).unwrap_or(usize::MAX));
            let missing = || {
                StoreError::Corrupt(format!(
                    "Merkle node at level {} index {} is not stored",
                    id.level(),
                    id.index()
                ))
            };
            if base >= TILE_HEIGHT && reads != TileReads::Stored {
                let folded = self.folded_tile(tenant, base, first >> TILE_HEIGHT, tile);
                out.push(folded.node(id.level() - base, start).ok_or_else(missing)?);
            } else if base == 0
                && id.level() >= LEAF_BLOCK_HEIGHT
                && reads != TileReads::Stored
                && tile.len() == 1 << TILE_HEIGHT
            {
                // A node of whole blocks: folded from their roots. `start` and `end` are
                // multiples of the block's width, as the node is at least as high.
                let blocks = self.leaf_blocks(tenant, first >> TILE_HEIGHT, tile);
                let (from, to) = (start >> LEAF_BLOCK_HEIGHT, end >> LEAF_BLOCK_HEIGHT);
                out.push(fold_perfect(
                    blocks.roots.get(from..to).ok_or_else(missing)?,
                ));
            } else {
                out.push(fold_perfect(tile.get(start..end).ok_or_else(missing)?));
            }
        }
        Ok(out)
    }

    /// The stored hashes of tile `tile` whose hashes are Merkle nodes at level `base` (a multiple
    /// of 8; level 0 being the leaf hashes of the records): at least the first `need` when that
    /// many are stored, up to 256 for a full tile, fewer on the right edge.
    ///
    /// The log is append-only, so a tile's stored hashes only ever grow at its end: a full tile
    /// read is kept, and so is a partial one read by [`TileReads::AllKept`] (proofs against one
    /// checkpoint all need the same right edge), which then serves those reads when it holds
    /// the `need` hashes they ask for; a read needing more reads the tile again and keeps the
    /// longer copy.
    pub(crate) async fn tile_hashes(
        &self,
        tenant: &TenantId,
        base: u8,
        tile: u64,
        need: usize,
        reads: TileReads,
    ) -> Result<Arc<[Hash]>, StoreError> {
        let key = (tenant.clone(), base, tile);
        if reads != TileReads::Stored
            && let Some(cached) = self
                .lock_tile_cache()
                .get(&key)
                .filter(|c| {
                    c.len() == 1 << TILE_HEIGHT
                        || (reads == TileReads::AllKept && c.len() >= need.max(1))
                })
                .cloned()
        {
            return Ok(cached);
        }
        let from = tile << TILE_HEIGHT;
        // The last tile of a u64-sized tree ends at 2^64: saturate rather than wrap.
        let to = from.saturating_add(1 << TILE_HEIGHT);
        let hashes: Arc<[Hash]> = if base == 0 {
            let rows = self.backend().record_hashes(tenant, from, to).await?;
            rows.iter()
                .map(|h| Hash::from_slice(h).map(|h| leaf_hash(h.as_bytes())))
                .collect::<Result<_, _>>()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?
        } else {
            let rows = self.backend().merkle_nodes(tenant, base, from, to).await?;
            rows.iter()
                .map(|h| Hash::from_slice(h))
                .collect::<Result<_, _>>()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?
        };
        if reads != TileReads::Stored && !hashes.is_empty() {
            let mut cache = self.lock_tile_cache();
            // Only proofs and served tiles add partial tiles; the publisher, which reads every
            // grown tenant's right edge on every tick, only refreshes one they keep (so the next
            // proofs find it long enough) and would otherwise crowd full tiles out.
            if reads == TileReads::FullKept
                && hashes.len() < 1 << TILE_HEIGHT
                && !cache.contains_key(&key)
            {
                return Ok(hashes);
            }
            if cache.len() >= TILE_CACHE_TILES_MAX && !cache.contains_key(&key) {
                cache.clear();
                // The block roots hold their tiles: emptied with the cache, so that they keep
                // none of the tiles it let go (the lock order is always this one).
                self.lock_leaf_blocks().clear();
            }
            // A reader that started earlier may bring a shorter copy: the longer one stays.
            if cache.get(&key).is_none_or(|c| c.len() < hashes.len()) {
                cache.insert(key, Arc::clone(&hashes));
            }
        }
        Ok(hashes)
    }

    /// Signs a checkpoint for `head` with the tenant's current key and stores it, with what a
    /// publication reads read in one go (`reads`: the publisher does so for every tenant that
    /// grew, on every tick).
    ///
    /// The checkpoint is first recorded in the tenant's log outside the database, which refuses
    /// (and holds the tenant) when it does not extend the checkpoint published last.
    pub(crate) async fn publish_checkpoint_with(
        &self,
        tenant: &TenantId,
        head: TreeHead,
        reads: PublicationReads,
    ) -> Result<StoredCheckpoint, StoreError> {
        self.refuse_if_rolled_back(tenant)?;
        let database = reads
            .head
            .as_ref()
            .map_or(TreeSize::ZERO, |h| h.seq.tree_size_through());
        let (signer, _) = self.current_signer_of(tenant, reads.keys)?;
        let stored = self.sign_checkpoint_with(tenant, head, &signer).await?;
        let written = async {
            rollback::witness(
                self,
                tenant,
                &stored,
                rollback::WitnessMode::Check,
                Some(database),
            )
            .await?;
            self.store_checkpoint(tenant, &stored).await
        }
        .await;
        // Proofs read the new checkpoint from now on (whether or not it was written: a failed
        // write may still have committed).
        self.inner.latest_checkpoints.forget(tenant);
        match &written {
            Ok(()) => self.inner.faults.write_succeeded(),
            Err(StoreError::StorageFull(detail)) => {
                self.inner.faults.storage_full("checkpoint", detail);
            }
            Err(_) => {}
        }
        written?;
        Ok(stored)
    }

    /// Signs a checkpoint for `head` with the tenant's current key, without storing it.
    pub(crate) async fn sign_checkpoint(
        &self,
        tenant: &TenantId,
        head: TreeHead,
    ) -> Result<StoredCheckpoint, StoreError> {
        let (signer, _) = self.current_signer(tenant).await?;
        self.sign_checkpoint_with(tenant, head, &signer).await
    }

    /// Signs a checkpoint for `head` with `signer`.
    async fn sign_checkpoint_with(
        &self,
        tenant: &TenantId,
        head: TreeHead,
        signer: &RecordSigner,
    ) -> Result<StoredCheckpoint, StoreError> {
        let origin = self.origin(tenant).await?;
        let checkpoint = Checkpoint::new(origin.clone(), head.size, head.root)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let note_signer = NoteSigner::new(&origin, signer.signing_key())
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let signed_note = sign_checkpoint(&checkpoint, &[note_signer])
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let stored = StoredCheckpoint {
            size: head.size,
            root: head.root,
            signed_note,
            published_at_us: self.inner.config.clock.now_unix_micros(),
        };
        Ok(stored)
    }

    /// Stores a signed checkpoint (the first of equal size stays).
    pub(crate) async fn store_checkpoint(
        &self,
        tenant: &TenantId,
        stored: &StoredCheckpoint,
    ) -> Result<(), StoreError> {
        self.backend().insert_checkpoint(tenant, stored).await
    }
}

pub use ledger::failure::fork_message;

/// The origin a signed checkpoint note names (its first line).
fn checkpoint_origin(signed_note: &str) -> Result<String, StoreError> {
    let note = ledger::note::Note::parse(signed_note.as_bytes())
        .map_err(|e| StoreError::Corrupt(format!("stored checkpoint: {e}")))?;
    let checkpoint = Checkpoint::parse_body(note.text())
        .map_err(|e| StoreError::Corrupt(format!("stored checkpoint: {e}")))?;
    Ok(checkpoint.origin().to_owned())
}

/// Folds a power-of-two run of sibling hashes into their subtree hash.
fn fold_perfect(hashes: &[Hash]) -> Hash {
    let mut level: Vec<Hash> = hashes.to_vec();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|p| match p {
                [l, r] => node_hash(*l, *r),
                [only] => *only,
                _ => Hash::ZERO,
            })
            .collect();
    }
    level.first().copied().unwrap_or(Hash::ZERO)
}

fn key_interval(row: &KeyRow) -> Result<KeyInterval, StoreError> {
    let corrupt =
        |e: &dyn std::fmt::Display| StoreError::Corrupt(format!("signing key {}: {e}", row.key_id));
    let bytes: [u8; 32] = row
        .public_key
        .as_slice()
        .try_into()
        .map_err(|e| corrupt(&e))?;
    Ok(KeyInterval {
        key_id: KeyId::parse(&row.key_id).map_err(|e| corrupt(&e))?,
        public_key: ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|e| corrupt(&e))?,
        from_seq: u64::try_from(row.from_seq).map_err(|e| corrupt(&e))?,
        until_seq: row
            .until_seq
            .map(u64::try_from)
            .transpose()
            .map_err(|e| corrupt(&e))?,
    })
}

/// Subject indexes group their entries in buckets of `1 << SUBJECT_BUCKET_BITS` sequence
/// numbers, ahead of the subject: the stored values' (`seq >> 12` in SQLite's migration 0026 and
/// PostgreSQL's 0029) and the subjects view's (its `bucket` column, migrations 0027 and 0030). A
/// group's or a view page's new entries then fall in one bucket's few pages, whatever the number
/// of subjects, instead of one page per subject; a subject is found by one probe per bucket.
pub(crate) const SUBJECT_BUCKET_BITS: u32 = 12;

/// The bucket of sequence number `seq` in the subject indexes (see [`SUBJECT_BUCKET_BITS`]).
pub(crate) fn subject_bucket(seq: u64) -> i64 {
    db_int(seq >> SUBJECT_BUCKET_BITS)
}

/// ` INDEXED BY <index>` on SQLite, nothing on PostgreSQL: for a look-up of a list of values
/// (`tenant_id = ? AND <column> IN (…)`) on a table whose primary key starts with `tenant_id`.
/// The ledger file has no statistics (only the views' file is analyzed), and without them
/// SQLite's planner takes the primary key's `tenant_id` prefix over the index for a long `IN`
/// list: every look-up then reads all of the tenant's rows (a group of 4,000 appends naming new
/// subjects spent 60 ms looking up their data keys beside 13,000 of the tenant's).
pub(crate) fn sqlite_index_hint<DB: sqlx::Database>(index: &str) -> String {
    if DB::NAME == <sqlx::Sqlite as sqlx::Database>::NAME {
        format!(" INDEXED BY {index}")
    } else {
        String::new()
    }
}

/// Appends `(v1, v2, …)`, each of `values` bound as text: the list of an `IN`.
pub(crate) fn push_text_list<DB: sqlx::Database>(q: &mut sqlx::QueryBuilder<DB>, values: &[&str])
where
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    q.push("(");
    let mut list = q.separated(", ");
    for v in values {
        list.push_bind((*v).to_owned());
    }
    q.push(")");
}

/// Appends a subquery listing the buckets from `first` up to the last one `push_last` appends
/// (an expression or a bound value, compared with `<`), for a probe of a subject index per
/// bucket: `(WITH RECURSIVE subject_buckets(b) AS (…) SELECT b FROM subject_buckets)`. Both
/// planners probe the index once per listed bucket.
pub(crate) fn push_bucket_series<DB>(
    q: &mut sqlx::QueryBuilder<DB>,
    first: i64,
    push_last: impl FnOnce(&mut sqlx::QueryBuilder<DB>),
) where
    DB: sqlx::Database,
    for<'t> i64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    q.push("(WITH RECURSIVE subject_buckets(b) AS (SELECT CAST(")
        .push_bind(first)
        .push(" AS BIGINT) UNION ALL SELECT b + 1 FROM subject_buckets WHERE b < ");
    push_last(q);
    q.push(") SELECT b FROM subject_buckets)");
}

/// Converts a u64 that the ledger bounds to 2^53 into a database integer.
pub(crate) fn db_int(value: u64) -> i64 {
    // Every persisted quantity is bounded by 2^53 - 1 (see ledger::types), far below i64::MAX.
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Opens (and on SQLite creates) the configured database and applies or checks its migrations.
///
/// # Errors
/// [`StoreError`] when the database cannot be opened, is too old, or its schema is not current.
async fn open_backend(config: &StoreConfig) -> Result<Arc<dyn backend::Backend>, StoreError> {
    Ok(match &config.database {
        DatabaseUrl::Sqlite(_) if !config.read_replicas.is_empty() => {
            return Err(StoreError::InvalidDatabaseUrl(
                "read replicas are PostgreSQL standbys; the SQLite database has none (unset AUDITEX_READ_DATABASE_URLS)".into(),
            ));
        }
        DatabaseUrl::Sqlite(_) if !config.cells.is_empty() => {
            return Err(StoreError::InvalidDatabaseUrl(
                "tenant cells are PostgreSQL clusters; the SQLite database has none (unset AUDITEX_CELLS)".into(),
            ));
        }
        DatabaseUrl::Postgres(_)
            if !config.cells.is_empty() && !config.read_replicas.is_empty() =>
        {
            return Err(StoreError::InvalidDatabaseUrl(
                "read replicas and tenant cells cannot be combined yet: unset AUDITEX_READ_DATABASE_URLS or AUDITEX_CELLS".into(),
            ));
        }
        DatabaseUrl::Sqlite(path) => {
            Arc::new(sqlite::SqliteDb::open(path, config.read_connections).await?)
        }
        DatabaseUrl::Postgres(url) => Arc::new(
            postgres::PgDb::open(
                url,
                config.admin_database.as_deref(),
                config.read_connections,
                &config.read_replicas,
                &config.cells,
                config.replica_lag_max,
            )
            .await?,
        ),
    })
}

/// Applies migrations with `admin_url` (or the database URL on SQLite); returns how many.
///
/// # Errors
/// [`StoreError::Schema`] or [`StoreError::Unavailable`].
async fn migrate_backend(
    database: &DatabaseUrl,
    admin_url: Option<&str>,
) -> Result<usize, StoreError> {
    match database {
        DatabaseUrl::Sqlite(path) => sqlite::SqliteDb::migrate(path).await,
        DatabaseUrl::Postgres(url) => postgres::PgDb::migrate(admin_url.unwrap_or(url)).await,
    }
}

#[cfg(test)]
mod fork_message_tests {
    use super::fork_message;

    #[test]
    fn a_fork_message_never_claims_a_common_prefix_it_did_not_check() {
        let none = fork_message(7944, 0);
        assert!(!none.contains("agree up to size 0"), "{none}");
        assert!(none.contains("was not computed"), "{none}");
        assert!(none.contains("0..=7943"), "{none}");
        let some = fork_message(7944, 5000);
        assert!(
            some.contains("agree through the seen checkpoint of size 5000"),
            "{some}"
        );
        assert!(some.contains("records 5000..=7943"), "{some}");
    }
}

#[cfg(test)]
mod folded_tile_tests {
    use super::*;

    /// Every perfect subtree a proof can ask of a tile, for every length a tile can have, is
    /// the same folded once and kept as folded per proof; and one not wholly in the tile is
    /// not there.
    #[test]
    fn a_folded_tile_gives_what_folding_per_proof_gives() {
        let all: Vec<Hash> = (0..256u32).map(|n| leaf_hash(&n.to_be_bytes())).collect();
        for len in 1..=256usize {
            let hashes: Arc<[Hash]> = all[..len].into();
            let folded = FoldedTile::fold(Arc::clone(&hashes));
            for height in 0..TILE_HEIGHT {
                let width = 1usize << height;
                for start in (0..256).step_by(width) {
                    let expected = hashes.get(start..start + width).map(fold_perfect);
                    assert_eq!(
                        folded.node(height, start),
                        expected,
                        "length {len}, height {height}, start {start}"
                    );
                }
            }
        }
    }

    /// Every node of a full leaf tile a proof takes from the block roots (height 4 to 7) is the
    /// node folded from its leaf hashes; the roots know the leaves they came from.
    #[test]
    fn a_full_leaf_tiles_block_roots_give_what_its_leaves_give() {
        let leaves: Arc<[Hash]> = (0..256u32).map(|n| leaf_hash(&n.to_be_bytes())).collect();
        let blocks = LeafBlocks::fold(&leaves);
        assert_eq!(blocks.roots.len(), 16);
        for height in LEAF_BLOCK_HEIGHT..TILE_HEIGHT {
            let width = 1usize << height;
            for start in (0..256).step_by(width) {
                let end = start + width;
                let from_roots = fold_perfect(
                    &blocks.roots[start >> LEAF_BLOCK_HEIGHT..end >> LEAF_BLOCK_HEIGHT],
                );
                assert_eq!(
                    from_roots,
                    fold_perfect(&leaves[start..end]),
                    "height {height}, start {start}"
                );
            }
        }
        assert!(blocks.folded_from(&leaves));
        let copy: Arc<[Hash]> = leaves.iter().copied().collect();
        assert!(blocks.folded_from(&copy));
        for changed in [0, 100, 255] {
            let mut other = leaves.to_vec();
            other[changed] = leaf_hash(b"another record");
            let other: Arc<[Hash]> = other.into();
            assert!(!blocks.folded_from(&other), "leaf {changed} changed");
        }
    }
}
