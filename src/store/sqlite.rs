//! The embedded SQLite backend: the ledger's file and, beside it, the read-side views' file
//! (`<database>-views`), each in WAL mode with `synchronous=FULL` and one writer connection that
//! takes `BEGIN IMMEDIATE`; a pool of readers opens the ledger's file and attaches the views'.
//! [`SqliteDb`] implements the store's [`Backend`] seam: the ledger's statements here, the access
//! tables' in `sqlite/access.rs`, the views' in `views.rs`.
//!
//! `synchronous=FULL` makes every commit fsync the WAL, so an acknowledged record survives a power
//! cut; group commit is what keeps that affordable.
//!
//! SQLite has one write lock per file. The views have a file of their own so that a view page
//! and an appender's group never wait for each other's lock: with one file, the read side held
//! the lock the appenders need for about as long as the ledger did (BENCHMARKS.md, issue 19).
//! The views are derived data: a views file whose ledger is not the one beside it, or is behind
//! it (a restored older copy), is emptied and rebuilt from the ledger when the store opens
//! ([`SqliteDb::open`]).

mod access;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use ledger::record::EventType;
use ledger::types::{Hash, Sequence, TenantId, TreeSize};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite, Transaction};

use super::backend::{AppendTransaction, Backend, BackendKind, LedgerBackend, WitnessRow};
use super::erasure::ErasureScope;
use super::erasure_sql::{ErasureSql, NewDataKeyRow, StoredValueRow, SubjectValueRow};
use super::holds::{HoldChange, HoldRow};
use super::holds_sql::HoldSql;
use super::retention::{RetentionCandidate, RetentionRule};
use super::rows::{KeyTuple, RecordTuple, abandoned_checkpoint, checkpoint, head, key_row, row};
use super::tlog_sql::TlogSql;
use super::{
    ChainHead, KeyRow, NewErasableRow, NewRecordRow, RecordRow, SQLITE_VERSION_MIN, StoreError,
    StoredCheckpoint, db_int,
};

/// How long a connection waits for a lock held by another connection before failing.
const BUSY_TIMEOUT_MS: u64 = 10_000;

/// The writer connection's page cache: 16 MiB (negative: in KiB, as `PRAGMA cache_size` takes
/// it). Neither 128 MiB nor 32 MiB made a measurable difference to ingestion over HTTPS at a
/// million records (`cargo bench --bench load`), and each cost resident memory once the work had
/// filled it: about 80 MB more for 128 MiB, 5–24 MB more for 32 MiB (BENCHMARKS.md). A page
/// missing from this cache is read from the operating system's file cache.
const WRITER_CACHE_PRAGMA: &str = "-16384";

/// The views file's writer's page cache: 4 MiB. A view page's rows fall in few B-tree pages of
/// each view (the views' keys lead with the tenant and a rising sequence number or bucket, or
/// a model, outcome or status with few values). The cache grows only as pages are used
/// (BENCHMARKS.md, issue 19: "The views in a file of their own", for the memory measured).
const VIEWS_WRITER_CACHE_PRAGMA: &str = "-4096";

/// Each reader's page cache for the attached views file: 512 KiB (SQLite's default is 2 MB per
/// database a connection has open, which for eight readers is 16 MB more). Queries of the views
/// read few pages each, and a page missing here is read from the operating system's file cache.
const READER_VIEWS_CACHE_PRAGMA: &str = "PRAGMA views.cache_size = -512";

/// Prepared statements kept per reader connection (sqlx's default is 100). Their hot statements
/// are few (a proof's tile reads); the statements built with a varying number of rows or ids
/// are many, and each kept one holds its compiled program. With 16 instead of 100 (then on the
/// views' writer too), one 30 s load run ended at 139 / 125 MB against 152 / 136 MB, with as
/// many proofs and single appends (BENCHMARKS.md, issue 19: "The views in a file of their own").
const STATEMENTS_KEPT: usize = 16;

/// Prepared statements kept by the views' writer. A page's statements have row counts from a
/// ladder (`store::ladder`): ten texts for each of its six multi-row statements, and its fixed
/// ones, all kept, so that no page compiles its statements again (BENCHMARKS.md,
/// "The canonical writer, and page statements from a ladder of sizes").
const VIEWS_WRITER_STATEMENTS_KEPT: usize = 128;

/// Rows per multi-row INSERT (12 columns each stays well under SQLite's 32,766 parameters).
const INSERT_ROWS_MAX: usize = 1000;

const RECORD_COLUMNS: &str = "tenant_id, seq, event_id, event_type, captured_at_us, prev, hash, key_id, sig, payload, erasable";

#[derive(Clone)]
pub(crate) struct SqliteDb {
    writer: SqlitePool,
    /// The views file's single writer (view pages, rebuilds, stuck marks).
    views_writer: SqlitePool,
    readers: SqlitePool,
    /// The shared advisory lock on `<database>.lock`, held from open until shutdown, so that
    /// `auditex restore` can tell that the database is in use (see [`lock_exclusive`]).
    in_use: std::sync::Arc<std::sync::Mutex<Option<std::fs::File>>>,
    /// `<database>.erased-log`: present while the write-ahead log may hold erased values' old
    /// pages (see [`Backend::mark_log`]).
    log_mark: std::sync::Arc<std::path::PathBuf>,
}

/// The file marking that `database`'s log may hold erased values' old pages.
fn log_mark_path(database: &Path) -> std::path::PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".erased-log");
    std::path::PathBuf::from(name)
}

fn options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        // Freed pages are overwritten with zeros, so an erased value's ciphertext and its
        // destroyed data key do not linger in the file (see `store/erasure.rs`).
        .pragma("secure_delete", "ON")
        .busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))
}

/// Creates the data folder (0700) and the database file (0600) unless they exist, before SQLite
/// opens it: SQLite creates the `-wal` and `-shm` files with the database file's mode, so all
/// three stay private. Existing ones keep their modes (`auditex serve` warns about loose ones).
fn create_private(path: &Path) -> Result<(), StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::file_modes::create_private_dir_all(dir).map_err(|e| {
            StoreError::Schema(format!(
                "cannot create the data folder {}: {e}",
                dir.display()
            ))
        })?;
    }
    crate::file_modes::create_private_file_if_missing(path).map_err(|e| {
        StoreError::Schema(format!(
            "cannot create the database file {}: {e}",
            path.display()
        ))
    })
}

fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let mut parts = text.split('.').map(|p| u32::from_str(p).ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

impl SqliteDb {
    pub(crate) async fn open(path: &Path, read_connections: u32) -> Result<Self, StoreError> {
        create_private(path)?;
        let in_use = lock_shared(path)?;
        let views = views_file_path(path);
        // Each writer's page cache holds the B-tree pages its writes touch (the ledger's:
        // records, their indexes and tiles; the views': the view pages'). A miss on a page being
        // inserted into costs a read and, at commit, a WAL write of the whole page. A cache
        // grows only as pages are used. Temporary storage in memory keeps the statement journal
        // of a multi-row INSERT (the original of every page it changes, kept until the
        // statement ends) out of a temporary file.
        //
        // Neither pool pings a connection before handing it out (sqlx's default): a connection
        // to a local file has no peer to lose, a failed one fails its statement, and the ping is
        // a hand-off to the connection's worker thread and back on every acquire, which for a
        // writer lies between each write and the next.
        let writer = writer_pool(options(path).pragma("cache_size", WRITER_CACHE_PRAGMA)).await?;
        let version: String = sqlx::query_scalar("SELECT sqlite_version()")
            .fetch_one(&writer)
            .await?;
        if parse_version(&version).is_none_or(|v| v < SQLITE_VERSION_MIN) {
            return Err(StoreError::SqliteTooOld { found: version });
        }
        sqlx_macros::migrate!("./migrations/sqlite")
            .run(&writer)
            .await
            .map_err(|e| StoreError::Schema(e.to_string()))?;
        // ATTACH takes the path as text: a path that is not UTF-8 would name another file.
        let Some(attach) = views.to_str().map(str::to_owned) else {
            return Err(StoreError::Schema(format!(
                "the database path {} is not UTF-8; choose a path that is",
                path.display()
            )));
        };
        let views_writer = open_views(&writer, &views).await?;
        // Readers see the views' tables by their names: names not in the ledger's file are
        // found in the attached one (the two share only `_sqlx_migrations` and `sqlite_stat1`,
        // which name the ledger's). A read takes each file's snapshot when it first reads it,
        // so the views a query sees may include records committed after its snapshot of the
        // ledger: committed records all the same, as a view page follows committed records
        // only. A query that joins a view to `records` leaves such a record out.
        let readers = SqlitePoolOptions::new()
            .max_connections(read_connections.max(1))
            .test_before_acquire(false)
            .after_connect(move |conn, _| {
                let views = attach.clone();
                Box::pin(async move {
                    sqlx::query("ATTACH DATABASE ? AS views")
                        .bind(views)
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query(READER_VIEWS_CACHE_PRAGMA).execute(conn).await?;
                    Ok(())
                })
            })
            .connect_with(
                options(path)
                    .read_only(false)
                    .statement_cache_capacity(STATEMENTS_KEPT),
            )
            .await?;
        Ok(SqliteDb {
            readers,
            writer,
            views_writer,
            in_use: std::sync::Arc::new(std::sync::Mutex::new(Some(in_use))),
            log_mark: std::sync::Arc::new(log_mark_path(path)),
        })
    }

    pub(crate) async fn migrate(path: &Path) -> Result<usize, StoreError> {
        create_private(path)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options(path))
            .await?;
        let migrator = sqlx_macros::migrate!("./migrations/sqlite");
        let before: i64 = applied_count(&pool).await;
        migrator
            .run(&pool)
            .await
            .map_err(|e| StoreError::Schema(e.to_string()))?;
        let after: i64 = applied_count(&pool).await;
        let views_path = views_file_path(path);
        let views_before = if views_path.exists() {
            let views = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options(&views_path))
                .await?;
            let n = applied_count(&views).await;
            views.close().await;
            n
        } else {
            0
        };
        let views = open_views(&pool, &views_path).await?;
        let views_after: i64 = applied_count(&views).await;
        views.close().await;
        pool.close().await;
        Ok(usize::try_from(after - before + views_after - views_before).unwrap_or(0))
    }

    /// The views file's single writer connection.
    pub(crate) fn views_writer_pool(&self) -> &SqlitePool {
        &self.views_writer
    }

    /// The reader pool.
    pub(crate) fn reader_pool(&self) -> &SqlitePool {
        &self.readers
    }

    async fn version(&self) -> Result<String, StoreError> {
        Ok(sqlx::query_scalar("SELECT sqlite_version()")
            .fetch_one(&self.readers)
            .await?)
    }
}

#[async_trait::async_trait]
impl Backend for SqliteDb {
    fn kind(&self) -> BackendKind {
        BackendKind::Sqlite
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.readers).await?;
        Ok(())
    }

    async fn sqlite_version(&self) -> Option<String> {
        self.version().await.ok()
    }

    /// Writes a consistent copy of the database to `dest` (which must not exist or be empty)
    /// with `VACUUM INTO` on a reader connection: it reads one snapshot, so appends carry on.
    async fn vacuum_into(&self, dest: &Path) -> Result<(), StoreError> {
        vacuum_into(&self.readers, dest).await
    }

    /// Closes the three pools; SQLite checkpoints each WAL when the last connection closes.
    async fn close(&self) {
        self.writer.close().await;
        self.views_writer.close().await;
        self.readers.close().await;
        self.release_in_use_lock();
    }

    async fn truncate_log(&self) -> Result<bool, StoreError> {
        // TRUNCATE waits (up to the busy timeout) for readers of older snapshots, copies every
        // frame into the file (whose freed pages `secure_delete` has zeroed) and empties the log.
        let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&self.writer)
            .await?;
        Ok(busy == 0)
    }

    fn mark_log(&self) -> Result<(), StoreError> {
        let cannot = |e: std::io::Error| {
            StoreError::Backup(format!("cannot write {}: {e}", self.log_mark.display()))
        };
        if self.log_mark.exists() {
            return Ok(());
        }
        crate::file_modes::create_private_file_if_missing(&self.log_mark).map_err(cannot)?;
        // The folder's entry must be on disk before the erasure commits, or a crash could keep
        // the erasure and lose the mark.
        if let Some(dir) = self.log_mark.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(cannot)?;
        }
        Ok(())
    }

    fn log_marked(&self) -> bool {
        self.log_mark.exists()
    }

    fn clear_log_mark(&self) -> Result<(), StoreError> {
        match std::fs::remove_file(&*self.log_mark) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::Backup(format!(
                "cannot remove {}: {e}",
                self.log_mark.display()
            ))),
            _ => Ok(()),
        }
    }

    /// Gives up the in-use lock: the store has shut down and writes nothing more.
    fn release_in_use_lock(&self) {
        self.in_use.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

#[async_trait::async_trait]
impl LedgerBackend for SqliteDb {
    async fn create_tenant(
        &self,
        tenant: &TenantId,
        origin: &str,
        key: &KeyRow,
        now_us: u64,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM tenants WHERE tenant_id = ?")
            .bind(tenant.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Err(StoreError::TenantExists(tenant.to_string()));
        }
        sqlx::query("INSERT INTO tenants (tenant_id, created_at_us) VALUES (?, ?)")
            .bind(tenant.as_str())
            .bind(db_int(now_us))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO signing_keys (tenant_id, key_id, public_key, sealed_secret, from_seq, until_seq, created_at_us)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(tenant.as_str())
        .bind(&key.key_id)
        .bind(&key.public_key)
        .bind(&key.sealed_secret)
        .bind(key.from_seq)
        .bind(key.until_seq)
        .bind(db_int(now_us))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO tenant_origins (tenant_id, origin, recorded_at_us) VALUES (?, ?, ?)",
        )
        .bind(tenant.as_str())
        .bind(origin)
        .bind(db_int(now_us))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn tenants(&self) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT tenant_id FROM tenants ORDER BY tenant_id")
                .fetch_all(&self.readers)
                .await?,
        )
    }

    async fn tenant_exists(&self, tenant: &TenantId) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM tenants WHERE tenant_id = ?")
            .bind(tenant.as_str())
            .fetch_optional(&self.readers)
            .await?;
        Ok(found.is_some())
    }

    async fn keys(&self, tenant: &TenantId) -> Result<Vec<KeyRow>, StoreError> {
        let rows: Vec<KeyTuple> = sqlx::query_as(
            "SELECT key_id, public_key, sealed_secret, from_seq, until_seq FROM signing_keys
             WHERE tenant_id = ? ORDER BY from_seq",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.readers)
        .await?;
        Ok(rows.into_iter().map(key_row).collect())
    }

    async fn chain_head(&self, tenant: &TenantId) -> Result<Option<ChainHead>, StoreError> {
        let t: Option<(i64, Vec<u8>, i64)> = sqlx::query_as(
            "SELECT seq, hash, captured_at_us FROM records WHERE tenant_id = ? ORDER BY seq DESC LIMIT 1",
        )
        .bind(tenant.as_str())
        .fetch_optional(&self.readers)
        .await?;
        t.map(head).transpose()
    }

    async fn record_by_seq(
        &self,
        tenant: &TenantId,
        seq: Sequence,
    ) -> Result<Option<RecordRow>, StoreError> {
        let t: Option<RecordTuple> = sqlx::query_as(
            "SELECT tenant_id, seq, event_id, event_type, captured_at_us, prev, hash, key_id, sig, payload, erasable
             FROM records WHERE tenant_id = ? AND seq = ?",
        )
        .bind(tenant.as_str())
        .bind(db_int(seq.get()))
        .fetch_optional(&self.readers)
        .await?;
        Ok(t.map(row))
    }

    async fn records_by_event_ids(
        &self,
        tenant: &TenantId,
        ids: &[String],
    ) -> Result<Vec<RecordRow>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT tenant_id, seq, event_id, event_type, captured_at_us, prev, hash, key_id, sig, payload, erasable
             FROM records INDEXED BY records_by_event_id WHERE tenant_id = ",
        );
        q.push_bind(tenant.as_str()).push(" AND event_id IN (");
        let mut sep = q.separated(", ");
        for id in ids {
            sep.push_bind(id.as_str());
        }
        q.push(")");
        let rows: Vec<RecordTuple> = q.build_query_as().fetch_all(&self.readers).await?;
        Ok(rows.into_iter().map(row).collect())
    }

    async fn records_range(
        &self,
        tenant: &TenantId,
        from: Sequence,
        limit: u64,
    ) -> Result<Vec<RecordRow>, StoreError> {
        let rows: Vec<RecordTuple> = sqlx::query_as(
            "SELECT tenant_id, seq, event_id, event_type, captured_at_us, prev, hash, key_id, sig, payload, erasable
             FROM records WHERE tenant_id = ? AND seq >= ? ORDER BY seq LIMIT ?",
        )
        .bind(tenant.as_str())
        .bind(db_int(from.get()))
        .bind(db_int(limit))
        .fetch_all(&self.readers)
        .await?;
        Ok(rows.into_iter().map(row).collect())
    }

    async fn records_of_type(
        &self,
        tenant: &TenantId,
        event_type: EventType,
        before: Option<Sequence>,
        limit: u64,
    ) -> Result<Vec<RecordRow>, StoreError> {
        // Named index: walked backwards from `before`, it reads only the rows returned.
        let rows: Vec<RecordTuple> = sqlx::query_as(
            "SELECT tenant_id, seq, event_id, event_type, captured_at_us, prev, hash, key_id, sig, payload, erasable
             FROM records INDEXED BY records_by_type
             WHERE tenant_id = ? AND event_type = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
        )
        .bind(tenant.as_str())
        .bind(event_type.as_str())
        .bind(before.map_or(i64::MAX, |s| db_int(s.get())))
        .bind(db_int(limit))
        .fetch_all(&self.readers)
        .await?;
        Ok(rows.into_iter().map(row).collect())
    }

    async fn erasable_values(
        &self,
        tenant: &TenantId,
        seq: Sequence,
    ) -> Result<Vec<StoredValueRow>, StoreError> {
        let mut conn = self.readers.acquire().await?;
        ErasureSql::<Sqlite>::values(&mut conn, tenant, db_int(seq.get())).await
    }

    async fn erased_fields(
        &self,
        tenant: &TenantId,
        seq: Sequence,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let mut conn = self.readers.acquire().await?;
        ErasureSql::<Sqlite>::erased(&mut conn, tenant, db_int(seq.get())).await
    }

    async fn subject_values(
        &self,
        tenant: &TenantId,
        subject: &str,
    ) -> Result<Vec<SubjectValueRow>, StoreError> {
        let mut conn = self.readers.acquire().await?;
        ErasureSql::<Sqlite>::subject_values(&mut conn, tenant, subject).await
    }

    async fn latest_subject_erasure(
        &self,
        tenant: &TenantId,
        subject: &str,
    ) -> Result<Option<i64>, StoreError> {
        let mut conn = self.readers.acquire().await?;
        ErasureSql::<Sqlite>::latest_subject_erasure(&mut conn, tenant, subject).await
    }

    async fn erasures_after(
        &self,
        tenant: &TenantId,
        after: Option<i64>,
        limit: u64,
    ) -> Result<Vec<i64>, StoreError> {
        let mut conn = self.readers.acquire().await?;
        ErasureSql::<Sqlite>::erasures_after(&mut conn, tenant, after, limit).await
    }

    async fn reapplied_erasures(
        &self,
        tenant: &TenantId,
        after: Option<(i64, Vec<u8>)>,
        limit: u64,
    ) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        let mut conn = self.readers.acquire().await?;
        ErasureSql::<Sqlite>::reapplied_erasures(&mut conn, tenant, after, limit).await
    }

    async fn reerased_count(
        &self,
        tenant: &TenantId,
        scope: Option<&ErasureScope>,
    ) -> Result<u64, StoreError> {
        let mut conn = self.readers.acquire().await?;
        ErasureSql::<Sqlite>::reerased_count(&mut conn, tenant, scope).await
    }

    async fn reerased_records(
        &self,
        tenant: &TenantId,
        scope: &ErasureScope,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let mut conn = self.readers.acquire().await?;
        ErasureSql::<Sqlite>::reerased_records(&mut conn, tenant, scope).await
    }

    async fn active_holds(
        &self,
        tenant: &TenantId,
        subjects: &[&str],
    ) -> Result<Vec<HoldRow>, StoreError> {
        let mut conn = self.readers.acquire().await?;
        HoldSql::<Sqlite>::active(&mut conn, tenant, subjects).await
    }

    async fn subject_holds(
        &self,
        tenant: &TenantId,
        subject: &str,
    ) -> Result<Vec<HoldRow>, StoreError> {
        let mut conn = self.readers.acquire().await?;
        HoldSql::<Sqlite>::of_subject(&mut conn, tenant, subject).await
    }

    async fn retention_policy(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<(RetentionRule, i64)>, StoreError> {
        let mut conn = self.readers.acquire().await?;
        HoldSql::<Sqlite>::policy(&mut conn, tenant).await
    }

    async fn retention_candidates(
        &self,
        tenant: &TenantId,
        after: i64,
        limit: u64,
    ) -> Result<Vec<RetentionCandidate>, StoreError> {
        let mut conn = self.readers.acquire().await?;
        HoldSql::<Sqlite>::candidates(&mut conn, tenant, after, limit).await
    }

    async fn latest_checkpoint(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        let t: Option<(i64, Vec<u8>, String, i64)> = sqlx::query_as(
            "SELECT tree_size, root, signed_note, published_at_us FROM checkpoints
             WHERE tenant_id = ? ORDER BY tree_size DESC LIMIT 1",
        )
        .bind(tenant.as_str())
        .fetch_optional(&self.readers)
        .await?;
        t.map(checkpoint).transpose()
    }

    async fn checkpoint_at(
        &self,
        tenant: &TenantId,
        size: TreeSize,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        let t: Option<(i64, Vec<u8>, String, i64)> = sqlx::query_as(
            "SELECT tree_size, root, signed_note, published_at_us FROM checkpoints
             WHERE tenant_id = ? AND tree_size = ?",
        )
        .bind(tenant.as_str())
        .bind(db_int(size.get()))
        .fetch_optional(&self.readers)
        .await?;
        t.map(checkpoint).transpose()
    }

    async fn checkpoints(
        &self,
        tenant: &TenantId,
        after: Option<TreeSize>,
        limit: u64,
    ) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let rows: Vec<(i64, Vec<u8>, String, i64)> = sqlx::query_as(
            "SELECT tree_size, root, signed_note, published_at_us FROM checkpoints
             WHERE tenant_id = ? AND tree_size > ? ORDER BY tree_size LIMIT ?",
        )
        .bind(tenant.as_str())
        .bind(after.map_or(-1, |s| db_int(s.get())))
        .bind(db_int(limit))
        .fetch_all(&self.readers)
        .await?;
        rows.into_iter().map(checkpoint).collect()
    }

    async fn tenant_origin(&self, tenant: &TenantId) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT origin FROM tenant_origins WHERE tenant_id = ?")
                .bind(tenant.as_str())
                .fetch_optional(&self.readers)
                .await?,
        )
    }

    async fn record_tenant_origin(
        &self,
        tenant: &TenantId,
        origin: &str,
        now_us: u64,
    ) -> Result<(), StoreError> {
        // Written once: a concurrent first use that recorded it already wins.
        sqlx::query(
            "INSERT INTO tenant_origins (tenant_id, origin, recorded_at_us) VALUES (?, ?, ?)
             ON CONFLICT (tenant_id) DO NOTHING",
        )
        .bind(tenant.as_str())
        .bind(origin)
        .bind(db_int(now_us))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn witnesses(&self, tenant: &TenantId) -> Result<Vec<WitnessRow>, StoreError> {
        let mut conn = self.readers.acquire().await?;
        TlogSql::<Sqlite>::witnesses(&mut conn, tenant).await
    }

    async fn put_witness(
        &self,
        tenant: &TenantId,
        w: &WitnessRow,
        now_us: u64,
    ) -> Result<(), StoreError> {
        let mut conn = self.writer.acquire().await?;
        TlogSql::<Sqlite>::put_witness(&mut conn, tenant, w, now_us).await
    }

    async fn remove_witness(&self, tenant: &TenantId, name: &str) -> Result<bool, StoreError> {
        let mut conn = self.writer.acquire().await?;
        TlogSql::<Sqlite>::remove_witness(&mut conn, tenant, name).await
    }

    async fn record_cosignature(
        &self,
        tenant: &TenantId,
        size: u64,
        root: &[u8],
        witness: &str,
        line: &str,
        cosigned_at: u64,
    ) -> Result<(), StoreError> {
        let mut conn = self.writer.acquire().await?;
        TlogSql::<Sqlite>::record_cosignature(
            &mut conn,
            tenant,
            size,
            root,
            witness,
            line,
            cosigned_at,
        )
        .await
    }

    async fn cosignatures(
        &self,
        tenant: &TenantId,
        size: u64,
        root: &[u8],
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut conn = self.readers.acquire().await?;
        TlogSql::<Sqlite>::cosignatures(&mut conn, tenant, size, root).await
    }

    async fn last_cosigned(
        &self,
        tenant: &TenantId,
        witness: &str,
    ) -> Result<Option<u64>, StoreError> {
        let mut conn = self.readers.acquire().await?;
        TlogSql::<Sqlite>::last_cosigned(&mut conn, tenant, witness).await
    }

    async fn tiles_public(&self, tenant: &TenantId) -> Result<bool, StoreError> {
        let mut conn = self.readers.acquire().await?;
        TlogSql::<Sqlite>::tiles_public(&mut conn, tenant).await
    }

    async fn set_tiles_public(
        &self,
        tenant: &TenantId,
        public: bool,
        now_us: u64,
    ) -> Result<(), StoreError> {
        let mut conn = self.writer.acquire().await?;
        TlogSql::<Sqlite>::set_tiles_public(&mut conn, tenant, public, now_us).await
    }

    async fn abandoned_checkpoints(
        &self,
        tenant: &TenantId,
        after: Option<TreeSize>,
        limit: u64,
    ) -> Result<Vec<(u64, StoredCheckpoint)>, StoreError> {
        let rows: Vec<(i64, i64, Vec<u8>, String, i64)> = sqlx::query_as(
            "SELECT abandoned_by_seq, tree_size, root, signed_note, published_at_us
             FROM abandoned_checkpoints WHERE tenant_id = ? AND tree_size > ?
             ORDER BY tree_size, abandoned_by_seq LIMIT ?",
        )
        .bind(tenant.as_str())
        .bind(after.map_or(-1, |s| db_int(s.get())))
        .bind(db_int(limit))
        .fetch_all(&self.readers)
        .await?;
        rows.into_iter().map(abandoned_checkpoint).collect()
    }

    async fn insert_abandoned_checkpoint(
        &self,
        tenant: &TenantId,
        abandoned_by_seq: u64,
        c: &StoredCheckpoint,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO abandoned_checkpoints
                 (tenant_id, abandoned_by_seq, tree_size, root, signed_note, published_at_us)
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(tenant.as_str())
        .bind(db_int(abandoned_by_seq))
        .bind(db_int(c.size.get()))
        .bind(c.root.as_bytes().as_slice())
        .bind(&c.signed_note)
        .bind(db_int(c.published_at_us))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn insert_checkpoint(
        &self,
        tenant: &TenantId,
        c: &StoredCheckpoint,
    ) -> Result<(), StoreError> {
        // Two publishers may sign the same size; the tree is deterministic, so the first stays.
        sqlx::query(
            "INSERT INTO checkpoints (tenant_id, tree_size, root, signed_note, published_at_us)
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant_id, tree_size) DO NOTHING",
        )
        .bind(tenant.as_str())
        .bind(db_int(c.size.get()))
        .bind(c.root.as_bytes().as_slice())
        .bind(&c.signed_note)
        .bind(db_int(c.published_at_us))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn record_hashes(
        &self,
        tenant: &TenantId,
        from: u64,
        to: u64,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let joined: Tile = sqlx::query_as(
            "SELECT group_concat(hash, x'' ORDER BY seq), count(*), count(*) FILTER (WHERE length(hash) <> 32) FROM records INDEXED BY records_leaf_hashes WHERE tenant_id = ? AND seq >= ? AND seq < ?",
        )
        .bind(tenant.as_str())
        .bind(db_int(from))
        .bind(db_int(to))
        .fetch_one(&self.readers)
        .await?;
        split_hashes(joined, "records")
    }

    async fn merkle_nodes(
        &self,
        tenant: &TenantId,
        level: u8,
        from: u64,
        to: u64,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let joined: Tile = sqlx::query_as(
            "SELECT group_concat(hash, x'' ORDER BY idx), count(*), count(*) FILTER (WHERE length(hash) <> 32) FROM merkle_nodes WHERE tenant_id = ? AND level = ? AND idx >= ? AND idx < ?",
        )
        .bind(tenant.as_str())
        .bind(i64::from(level))
        .bind(db_int(from))
        .bind(db_int(to))
        .fetch_one(&self.readers)
        .await?;
        split_hashes(joined, "merkle_nodes")
    }

    async fn begin_append(
        &self,
        _tenant: &TenantId,
    ) -> Result<Box<dyn AppendTransaction>, StoreError> {
        // IMMEDIATE takes the write lock now, so the head read below cannot go stale.
        Ok(Box::new(SqliteAppend(
            self.writer.begin_with("BEGIN IMMEDIATE").await?,
        )))
    }

    async fn data_key_count(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        let mut conn = self.readers.acquire().await?;
        ErasureSql::<Sqlite>::key_count(&mut conn, tenant).await
    }

    async fn data_key_page(
        &self,
        tenant: &TenantId,
        after: i64,
        limit: u64,
    ) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        let mut conn = self.readers.acquire().await?;
        ErasureSql::<Sqlite>::key_page(&mut conn, tenant, after, limit).await
    }

    async fn rewrap_data_key(
        &self,
        tenant: &TenantId,
        r: &super::reseal::Resealed,
    ) -> Result<bool, StoreError> {
        let mut conn = self.writer.acquire().await?;
        ErasureSql::<Sqlite>::rewrap(&mut conn, tenant, r.seq, &r.old, &r.new).await
    }

    /// Counts the tenant's values sealed under the master key directly (for progress).
    async fn erasable_count(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM erasable_values WHERE tenant_id = ? AND key_seq IS NULL",
        )
        .bind(tenant.as_str())
        .fetch_one(&self.readers)
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Up to `limit` sealed erasable values after `(seq, field)`, in key order.
    async fn erasable_sealed_page(
        &self,
        tenant: &TenantId,
        after: &(i64, String),
        limit: u64,
    ) -> Result<Vec<(i64, String, Vec<u8>)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT seq, field, sealed FROM erasable_values
             WHERE tenant_id = ? AND key_seq IS NULL AND (seq > ? OR (seq = ? AND field > ?))
             ORDER BY seq, field LIMIT ?",
        )
        .bind(tenant.as_str())
        .bind(after.0)
        .bind(after.0)
        .bind(&after.1)
        .bind(db_int(limit))
        .fetch_all(&self.readers)
        .await?)
    }

    /// Replaces sealed values in one transaction, each only if it is still the value read (a
    /// value erased or re-sealed meanwhile is left alone); returns how many were replaced.
    async fn reseal_erasable(
        &self,
        tenant: &TenantId,
        rows: &[super::reseal::Resealed],
    ) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let mut n = 0;
        for r in rows {
            n += sqlx::query(
                "UPDATE erasable_values SET sealed = ?
                 WHERE tenant_id = ? AND seq = ? AND field = ? AND sealed = ?",
            )
            .bind(&r.new)
            .bind(tenant.as_str())
            .bind(r.seq)
            .bind(&r.item)
            .bind(&r.old)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Replaces a sealed signing key if it is still the value read; returns whether it did.
    async fn reseal_signing_key(
        &self,
        tenant: &TenantId,
        r: &super::reseal::Resealed,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE signing_keys SET sealed_secret = ?
             WHERE tenant_id = ? AND key_id = ? AND sealed_secret = ?",
        )
        .bind(&r.new)
        .bind(tenant.as_str())
        .bind(&r.item)
        .bind(&r.old)
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(done == 1)
    }
}

/// Whether the writer connection may go back to the pool: it must not be inside a transaction.
///
/// A transaction dropped without commit is rolled back by a command queued on the connection;
/// the ping waits for it. When that rollback fails, as it does after SQLite has already rolled
/// the transaction back itself (which it may do on `SQLITE_FULL` or an I/O error, and then
/// `ROLLBACK` answers "no transaction is active"), the connection still counts itself inside a
/// transaction and would refuse every later `BEGIN`. Such a connection is in doubt: the pool
/// closes it (closing rolls back whatever SQLite still holds) and opens a fresh one for the next
/// write, so one failed write never leaves the single writer unusable.
///
/// A queued rollback keeps the connection's transaction depth above zero until the worker has
/// run it, so a connection that counts no transaction has none pending either and needs no
/// ping of its own. That is every committed write, and a writer is the one connection every
/// write to its file waits for (every append and checkpoint; every view page): each ping is a
/// hand-off to its worker thread and back between one write and the next (sqlx pings every
/// connection it takes back once more, after this check).
async fn writer_is_clean(conn: &mut sqlx::SqliteConnection) -> Result<bool, sqlx::Error> {
    use sqlx::Connection as _;
    if !conn.is_in_transaction() {
        return Ok(true);
    }
    conn.ping().await?;
    if conn.is_in_transaction() {
        tracing::warn!("the writer connection was left inside a transaction; replacing it");
        return Ok(false);
    }
    Ok(true)
}

/// A sibling of `path` named `<file name><suffix>` (SQLite's own `-wal` and `-shm`, the lock
/// file, the views' file, a backup's temporary copy).
pub(crate) fn sibling(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// The views' file beside the ledger's database file: `<database>-views`.
pub(crate) fn views_file_path(database: &Path) -> std::path::PathBuf {
    sibling(database, "-views")
}

/// A single-writer pool with `options` (the ledger's file or the views'), its statement journal
/// in memory.
async fn writer_pool(options: SqliteConnectOptions) -> Result<SqlitePool, sqlx::Error> {
    SqlitePoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .after_release(|conn, _| Box::pin(writer_is_clean(conn)))
        .connect_with(options.pragma("temp_store", "memory"))
        .await
}

/// Anchors checked per statement when the store opens (three bound values each).
const ANCHORS_PER_STATEMENT: usize = 300;

/// The views' tables, emptied together when the views file cannot be served beside its ledger.
const VIEW_TABLES: [&str; 9] = [
    "proj_decisions",
    "proj_models",
    "proj_model_outcomes",
    "proj_oversight",
    "proj_subjects",
    "proj_daily",
    "projection_positions",
    "projection_state",
    "view_anchors",
];

/// The views file's writer with its migrations applied, not yet checked against a ledger.
///
/// The views hold no erasable value (the projections never receive one), so their freed pages
/// are not overwritten (`secure_delete` off): a view page's updates and a reset of the views then
/// write only what they change.
async fn views_pool(views: &Path) -> Result<SqlitePool, StoreError> {
    create_private(views)?;
    let pool = writer_pool(
        options(views)
            .pragma("secure_delete", "OFF")
            .pragma("cache_size", VIEWS_WRITER_CACHE_PRAGMA)
            .statement_cache_capacity(VIEWS_WRITER_STATEMENTS_KEPT),
    )
    .await
    .map_err(|e| unusable_views(views, &e))?;
    sqlx_macros::migrate!("./migrations/sqlite-views")
        .run(&pool)
        .await
        .map_err(|e| unusable_views(views, &e))?;
    Ok(pool)
}

/// A views file that cannot be opened or migrated (damaged, or made by a newer build) is not
/// removed while another process might hold it: the operator is told how to rebuild it.
fn unusable_views(views: &Path, e: &dyn std::fmt::Display) -> StoreError {
    StoreError::Schema(format!(
        "the read-side views file {} cannot be used ({e}); it holds only data derived from the \
         ledger: with every process of the service stopped, remove it and its -wal and -shm \
         files, and the views are rebuilt from the ledger on the next start",
        views.display()
    ))
}

/// Opens the views file beside the ledger whose writer is `ledger` and makes sure its views were
/// built from a prefix of that ledger's chains; otherwise it empties every view, in one
/// transaction, and the projection runner rebuilds them from the ledger. Views of another
/// database (a file copied into place), ahead of this one (an older copy of the ledger restored),
/// or of another history (a copy restored, appended to, then replaced by a newer one) would
/// answer queries with records the ledger does not hold.
///
/// The check and the reset run under the views file's write lock, so a second process opening
/// the same files meanwhile waits and then finds the views empty (nothing to reset). Nothing is
/// removed from the file system: another process may have the file open.
async fn open_views(ledger: &SqlitePool, views: &Path) -> Result<SqlitePool, StoreError> {
    let pool = views_pool(views).await?;
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    if let Some(why) = views_stale(ledger, &mut tx).await? {
        tracing::warn!(
            views = %views.display(),
            "the read-side views {why}; emptying them, the views are rebuilt from the ledger"
        );
        for table in VIEW_TABLES {
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(pool)
}

/// Why the views cannot be served beside the ledger, if they cannot: for each tenant, the record
/// the views applied last must be the ledger's record at that sequence number, hash for hash
/// (each view page records it in `view_anchors`, see `commit_pages`), and no view may stand
/// past it.
async fn views_stale(
    ledger: &SqlitePool,
    views: &mut Transaction<'static, Sqlite>,
) -> Result<Option<String>, StoreError> {
    let positions: Vec<(String, i64, Option<i64>)> = sqlx::query_as(
        "SELECT p.tenant_id, MAX(p.next_seq), a.next_seq
         FROM projection_positions p LEFT JOIN view_anchors a ON a.tenant_id = p.tenant_id
         GROUP BY p.tenant_id",
    )
    .fetch_all(&mut **views)
    .await?;
    let anchors: Vec<(String, i64, Vec<u8>)> =
        sqlx::query_as("SELECT tenant_id, next_seq, last_hash FROM view_anchors")
            .fetch_all(&mut **views)
            .await?;
    for (tenant, position, anchor) in &positions {
        if *position > anchor.unwrap_or(0) {
            return Ok(Some(format!(
                "of tenant {tenant} stand at record {position} with no record of the chain they \
                 were built from"
            )));
        }
    }
    // One statement per chunk of anchors, not one per tenant: every store and command that
    // opens the database runs this, and a node may hold thousands of tenants.
    for chunk in anchors.chunks(ANCHORS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new("WITH anchors (tenant_id, seq, hash) AS (VALUES ");
        let mut rows = q.separated(", ");
        for (tenant, next, hash) in chunk {
            rows.push("(")
                .push_bind_unseparated(tenant.as_str())
                .push_unseparated(", ")
                .push_bind_unseparated(next - 1)
                .push_unseparated(", ")
                .push_bind_unseparated(hash.as_slice())
                .push_unseparated(")");
        }
        q.push(
            ") SELECT a.tenant_id, a.seq, r.hash IS NULL FROM anchors a LEFT JOIN records r \
             ON r.tenant_id = a.tenant_id AND r.seq = a.seq \
             WHERE r.hash IS NULL OR r.hash <> a.hash LIMIT 1",
        );
        let differing: Option<(String, i64, bool)> =
            q.build_query_as().fetch_optional(ledger).await?;
        match differing {
            Some((tenant, last, true)) => {
                return Ok(Some(format!(
                    "of tenant {tenant} hold {} records, more than its ledger beside them",
                    last + 1
                )));
            }
            Some((tenant, last, false)) => {
                return Ok(Some(format!(
                    "of tenant {tenant} were built from another chain (record {last} differs)"
                )));
            }
            None => {}
        }
    }
    Ok(None)
}

/// Records in the views file where the views of `tenant` now stand: `next_seq` records applied,
/// the last of which the ledger stores with `last_hash` (only ever forward: a new generation
/// being rebuilt stands behind the views already served).
pub(crate) async fn move_view_anchor(
    tx: &mut Transaction<'static, Sqlite>,
    tenant: &TenantId,
    next_seq: u64,
    last_hash: &[u8],
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO view_anchors (tenant_id, next_seq, last_hash) VALUES (?, ?, ?)
         ON CONFLICT (tenant_id) DO UPDATE SET next_seq = excluded.next_seq,
             last_hash = excluded.last_hash
         WHERE excluded.next_seq > view_anchors.next_seq",
    )
    .bind(tenant.as_str())
    .bind(db_int(next_seq))
    .bind(last_hash)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn applied_count(pool: &SqlitePool) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
        .unwrap_or(0)
}

/// A tile's hashes read as one row: `group_concat` of the hashes in order, how many rows, and
/// how many of them are not 32 bytes long.
type Tile = (Option<Vec<u8>>, i64, i64);

/// The hashes of a tile read as one row (see [`Tile`]), split back into hashes. One row instead
/// of up to 256: each row of a query crosses from sqlx's SQLite worker thread to the caller on
/// its own, and for a proof's right-edge tiles those hand-offs cost more than the reads (see
/// BENCHMARKS.md, proofs).
fn split_hashes((joined, rows, odd): Tile, table: &str) -> Result<Vec<Vec<u8>>, StoreError> {
    let joined = joined.unwrap_or_default();
    if odd != 0 || i64::try_from(joined.len()).ok() != rows.checked_mul(32) {
        return Err(StoreError::Corrupt(format!(
            "{odd} of {rows} hashes read from {table} are not 32 bytes long"
        )));
    }
    Ok(joined.chunks(32).map(<[u8]>::to_vec).collect())
}

/// One group commit's transaction, on the writer connection under `BEGIN IMMEDIATE`.
struct SqliteAppend(Transaction<'static, Sqlite>);

#[async_trait::async_trait]
impl AppendTransaction for SqliteAppend {
    async fn chain_head(&mut self, tenant: &TenantId) -> Result<Option<ChainHead>, StoreError> {
        let t: Option<(i64, Vec<u8>, i64)> = sqlx::query_as(
            "SELECT seq, hash, captured_at_us FROM records WHERE tenant_id = ? ORDER BY seq DESC LIMIT 1",
        )
        .bind(tenant.as_str())
        .fetch_optional(&mut *self.0)
        .await?;
        t.map(head).transpose()
    }

    async fn insert(
        &mut self,
        tenant: &TenantId,
        rows: &[NewRecordRow<'_>],
        erasable: &[NewErasableRow],
        keys: &[NewDataKeyRow],
        nodes: &[(u8, u64, Hash)],
    ) -> Result<(), StoreError> {
        let tx = &mut self.0;
        for chunk in rows.chunks(INSERT_ROWS_MAX) {
            let mut q =
                QueryBuilder::<Sqlite>::new(format!("INSERT INTO records ({RECORD_COLUMNS}) "));
            q.push_values(chunk, |mut b, r| {
                b.push_bind(tenant.as_str())
                    .push_bind(db_int(r.record.seq.get()))
                    .push_bind(r.record.event_id.to_string())
                    .push_bind(r.record.event_type.as_str())
                    .push_bind(db_int(r.record.captured_at_us.unix_micros()))
                    .push_bind(r.record.prev.as_bytes().to_vec())
                    .push_bind(r.record.hash.as_bytes().to_vec())
                    .push_bind(r.record.key_id.to_hex())
                    .push_bind(r.record.sig.to_bytes().to_vec())
                    .push_bind(r.payload)
                    .push_bind(r.erasable.as_str());
            });
            q.build().execute(&mut **tx).await?;
        }
        for chunk in erasable.chunks(INSERT_ROWS_MAX) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO erasable_values (tenant_id, seq, field, salt, sealed, subject_ref, key_seq) ",
            );
            q.push_values(chunk, |mut b, e| {
                b.push_bind(tenant.as_str())
                    .push_bind(e.seq)
                    .push_bind(e.field.as_str())
                    .push_bind(e.salt.as_slice())
                    .push_bind(e.sealed.as_slice())
                    .push_bind(e.subject_ref.as_deref())
                    .push_bind(e.key_seq);
            });
            q.build().execute(&mut **tx).await?;
        }
        ErasureSql::<Sqlite>::insert_keys(&mut **tx, tenant, keys).await?;
        for chunk in nodes.chunks(INSERT_ROWS_MAX) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO merkle_nodes (tenant_id, level, idx, hash) ",
            );
            q.push_values(chunk, |mut b, (level, idx, hash)| {
                b.push_bind(tenant.as_str())
                    .push_bind(i64::from(*level))
                    .push_bind(db_int(*idx))
                    .push_bind(hash.as_bytes().to_vec());
            });
            q.build().execute(&mut **tx).await?;
        }
        Ok(())
    }

    async fn subject_keys(
        &mut self,
        tenant: &TenantId,
        subjects: &[&str],
    ) -> Result<std::collections::BTreeMap<String, (i64, Vec<u8>)>, StoreError> {
        ErasureSql::<Sqlite>::subject_keys(&mut *self.0, tenant, subjects).await
    }

    async fn erase(&mut self, tenant: &TenantId, scope: &ErasureScope) -> Result<u64, StoreError> {
        ErasureSql::<Sqlite>::erase(&mut *self.0, tenant, scope).await
    }

    async fn active_holds(
        &mut self,
        tenant: &TenantId,
        subjects: &[&str],
    ) -> Result<Vec<HoldRow>, StoreError> {
        HoldSql::<Sqlite>::active(&mut *self.0, tenant, subjects).await
    }

    async fn apply_holds(
        &mut self,
        tenant: &TenantId,
        changes: &[HoldChange],
    ) -> Result<(), StoreError> {
        HoldSql::<Sqlite>::apply(&mut *self.0, tenant, changes).await
    }

    async fn replace_retention_policy(
        &mut self,
        tenant: &TenantId,
        policy_seq: u64,
        rules: &[RetentionRule],
    ) -> Result<(), StoreError> {
        HoldSql::<Sqlite>::replace_policy(&mut *self.0, tenant, policy_seq, rules).await
    }

    async fn rotate_key(
        &mut self,
        tenant: &TenantId,
        old_key_id: &str,
        new_key: &KeyRow,
        now_us: u64,
    ) -> Result<(), StoreError> {
        let tx = &mut self.0;
        let until_seq = new_key.from_seq;
        let done = sqlx::query(
            "UPDATE signing_keys SET until_seq = ? WHERE tenant_id = ? AND key_id = ? AND until_seq IS NULL",
        )
        .bind(until_seq)
        .bind(tenant.as_str())
        .bind(old_key_id)
        .execute(&mut **tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::Corrupt(format!(
                "key {old_key_id} is not the current key"
            )));
        }
        sqlx::query(
            "INSERT INTO signing_keys (tenant_id, key_id, public_key, sealed_secret, from_seq, until_seq, created_at_us)
             VALUES (?, ?, ?, ?, ?, NULL, ?)",
        )
        .bind(tenant.as_str())
        .bind(&new_key.key_id)
        .bind(&new_key.public_key)
        .bind(&new_key.sealed_secret)
        .bind(new_key.from_seq)
        .bind(db_int(now_us))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.0.commit().await?;
        Ok(())
    }
}

// ---- Backups, restores and the in-use lock (see `backup.rs`). ----

async fn vacuum_into(pool: &SqlitePool, dest: &Path) -> Result<(), StoreError> {
    let dest = dest
        .to_str()
        .ok_or_else(|| StoreError::Backup(format!("{} is not UTF-8", dest.display())))?;
    sqlx::query("VACUUM INTO ?")
        .bind(dest)
        .execute(pool)
        .await
        .map_err(|e| StoreError::Backup(format!("VACUUM INTO {dest} failed: {e}")))?;
    Ok(())
}

/// `VACUUM INTO` from a database file this process has not opened as a store (the
/// `auditex backup` command, which needs no master key).
pub(crate) async fn vacuum_file_into(source: &Path, dest: &Path) -> Result<(), StoreError> {
    if !source.exists() {
        return Err(StoreError::Backup(format!(
            "there is no database at {}",
            source.display()
        )));
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options(source).create_if_missing(false))
        .await?;
    let result = vacuum_into(&pool, dest).await;
    pool.close().await;
    result
}

/// What `PRAGMA integrity_check` and `PRAGMA foreign_key_check` find wrong in the database file
/// at `path` (empty when it is sound), and the number of records per tenant.
pub(crate) async fn check_file(
    path: &Path,
) -> Result<(Vec<String>, Vec<(String, i64)>), StoreError> {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(path)
                .read_only(true)
                .busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS)),
        )
        .await?;
    let mut problems: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&pool)
        .await?;
    problems.retain(|p| p != "ok");
    let foreign: Vec<(String, i64)> =
        sqlx::query_as("SELECT \"table\", rowid FROM pragma_foreign_key_check")
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
    problems.extend(
        foreign
            .into_iter()
            .map(|(table, row)| format!("{table} row {row} violates a foreign key")),
    );
    let sizes = if problems.is_empty() {
        sqlx::query_as(
            "SELECT t.tenant_id, COALESCE((SELECT MAX(seq) + 1 FROM records r WHERE r.tenant_id = t.tenant_id), 0)
             FROM tenants t ORDER BY t.tenant_id",
        )
        .fetch_all(&pool)
        .await?
    } else {
        Vec::new()
    };
    pool.close().await;
    Ok((problems, sizes))
}

/// The advisory lock file beside an SQLite database.
pub(crate) fn lock_file_path(database: &Path) -> std::path::PathBuf {
    sibling(database, ".lock")
}

fn open_lock_file(database: &Path) -> Result<std::fs::File, StoreError> {
    let path = lock_file_path(database);
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(&path).map_err(|e| {
        StoreError::Backup(format!("cannot open the lock file {}: {e}", path.display()))
    })
}

/// Takes the lock that every open store holds: shared, so several processes may share the file,
/// but never while a restore holds it exclusively.
fn lock_shared(database: &Path) -> Result<std::fs::File, StoreError> {
    let file = open_lock_file(database)?;
    #[cfg(unix)]
    {
        use rustix::fs::{FlockOperation, flock};
        if let Err(e) = flock(&file, FlockOperation::NonBlockingLockShared) {
            return Err(StoreError::Backup(format!(
                "the database {} is being restored (its lock file is held: {e}); start again when \
                 `auditex restore` has finished",
                database.display()
            )));
        }
    }
    Ok(file)
}

/// Takes the lock exclusively, or returns `None` when a store (in any process) has the database
/// open. Released when the returned file is dropped.
pub(crate) fn lock_exclusive(database: &Path) -> Result<Option<std::fs::File>, StoreError> {
    let file = open_lock_file(database)?;
    #[cfg(unix)]
    {
        use rustix::fs::{FlockOperation, flock};
        if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
            return Ok(None);
        }
    }
    Ok(Some(file))
}

#[cfg(test)]
mod tests {
    use sqlx::{Connection, QueryBuilder, Row, Sqlite, SqliteConnection};

    use super::super::erasure_sql::ErasureSql;
    use super::super::holds_sql::HoldSql;

    /// SQLite's plan for `q`, one line per step.
    async fn plan(conn: &mut SqliteConnection, q: &mut QueryBuilder<Sqlite>) -> String {
        let sql = format!("EXPLAIN QUERY PLAN {}", q.sql().as_str());
        let binds = sql.matches('?').count();
        let mut explain = sqlx::query(sqlx::AssertSqlSafe(sql));
        // The plan does not depend on the values bound; NULL stands for each.
        for _ in 0..binds {
            explain = explain.bind(None::<String>);
        }
        let rows = explain.fetch_all(&mut *conn).await.expect("the plan");
        rows.iter()
            .map(|r| r.get::<String, _>(3))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The look-ups of a list of subjects' data keys and holds probe the subject index once per
    /// subject rather than reading every row of the tenant (the ledger file has no statistics, and
    /// without the hint SQLite's planner takes the primary key's `tenant_id` prefix).
    #[tokio::test]
    async fn a_lookup_of_many_subjects_searches_the_subject_index() {
        let mut conn = SqliteConnection::connect("sqlite::memory:")
            .await
            .expect("an in-memory database");
        sqlx_macros::migrate!("./migrations/sqlite")
            .run(&mut conn)
            .await
            .expect("the ledger's migrations");
        let tenant = ledger::types::TenantId::parse("acme").expect("a valid tenant id");
        let subjects: Vec<String> = (0..500).map(|n| format!("subject-{n}")).collect();
        let subjects: Vec<&str> = subjects.iter().map(String::as_str).collect();

        let mut keys = ErasureSql::<Sqlite>::subject_keys_query(&tenant, &subjects);
        let keys = plan(&mut conn, &mut keys).await;
        assert!(
            keys.contains("USING INDEX data_keys_by_subject (tenant_id=? AND subject_ref=?)"),
            "{keys}"
        );
        let mut holds = HoldSql::<Sqlite>::active_query(&tenant, &subjects);
        let holds = plan(&mut conn, &mut holds).await;
        assert!(
            holds.contains("USING INDEX legal_holds_by_subject (tenant_id=? AND subject_ref=?)"),
            "{holds}"
        );
    }
}
