//! The PostgreSQL backend.
//!
//! The service connects as the application role, which may only SELECT and INSERT ledger rows.
//! Every statement that touches tenant data runs inside a transaction that first calls
//! `set_config('app.tenant_id', $tenant, true)`: the `true` makes the setting local to the
//! transaction, so a pooled connection never carries one tenant's setting into another's work,
//! and row-level security (forced, failing closed) filters every row by it. Appends also take a
//! per-tenant transaction-level advisory lock, so several service instances sharing one database
//! still build one linear chain per tenant.
//!
//! [`PgDb`] implements the store's [`Backend`] seam: the ledger's statements here, the access
//! tables' in `postgres/access.rs`, the views' in `views.rs`.

mod access;
pub(crate) mod cells;
mod confirmed;
mod nodes;
pub(crate) mod replicas;

use std::path::Path;

use ledger::record::EventType;
use ledger::types::{Hash, Sequence, TenantId, TreeSize};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

use super::backend::{AppendTransaction, Backend, BackendKind, LedgerBackend, WitnessRow};
use super::erasure::ErasureScope;
use super::erasure_sql::{ErasureSql, NewDataKeyRow, StoredValueRow, SubjectValueRow};
use super::holds::{HoldChange, HoldRow};
use super::holds_sql::HoldSql;
use super::retention::{RetentionCandidate, RetentionRule};
use super::rows::{KeyTuple, RecordTuple, abandoned_checkpoint, checkpoint, head, key_row, row};
use super::tlog_sql::TlogSql;
use super::{
    ChainHead, KeyRow, NewErasableRow, NewRecordRow, PublicationReads, RecordRow, StoreError,
    StoredCheckpoint, db_int,
};

/// How long an operation waits for a database connection before failing (retryably).
const ACQUIRE_TIMEOUT_MS: u64 = 3000;
/// How long opening a store waits for a restarted primary's synchronous standby to confirm it
/// (see `postgres/confirmed.rs`).
const CONFIRM_AT_OPEN: std::time::Duration = std::time::Duration::from_secs(10);
const SELECT_RECORD: &str = "SELECT tenant_id, seq, event_id, event_type, captured_at_us, prev, hash, key_id, sig, payload, erasable FROM records";

#[derive(Clone)]
pub(crate) struct PgDb {
    pool: PgPool,
    primary: std::sync::Arc<nodes::PrimaryState>,
    /// Hot standbys that serve read-only requests (see [`replicas`]); empty without.
    replicas: std::sync::Arc<replicas::Replicas>,
    /// The other clusters tenants' ledgers may live on (see [`cells`]); `None` without.
    cells: Option<std::sync::Arc<cells::Cells>>,
}

impl PgDb {
    /// The home database, with its cells (see [`cells`]): always, cells configured or not, so
    /// that a node never reads a tenant that moved to a cell it does not know from the frozen
    /// copy left here (it refuses to start instead).
    pub(crate) async fn open(
        url: &str,
        admin_url: Option<&str>,
        connections: u32,
        read_replicas: &[String],
        cells: &[(String, String)],
        replica_lag_max: std::time::Duration,
    ) -> Result<Self, StoreError> {
        let mut db =
            PgDb::connect(url, admin_url, connections, read_replicas, replica_lag_max).await?;
        let c = cells::Cells::open(db.pool.clone(), cells, connections, replica_lag_max).await?;
        c.watch();
        db.cells = Some(c);
        Ok(db)
    }

    /// One database, routing nothing: the home database before its cells are added, or a cell.
    async fn connect(
        url: &str,
        admin_url: Option<&str>,
        connections: u32,
        read_replicas: &[String],
        replica_lag_max: std::time::Duration,
    ) -> Result<Self, StoreError> {
        let replicas = std::sync::Arc::new(replicas::Replicas::new(
            read_replicas,
            replica_lag_max,
            connections,
        )?);
        if let Some(admin) = admin_url {
            PgDb::migrate(admin).await?;
        }
        let nodes = nodes::Nodes::parse(url)?;
        let primary = nodes.find_primary().await?;
        let confirmations = confirmed_primary(&nodes, primary).await?;
        let admit = confirmations.clone();
        let pool = PgPoolOptions::new()
            .max_connections(connections.max(2) + 2)
            // While the database is down, fail fast with a retryable error instead of queueing
            // callers for sqlx's default 30 s.
            .acquire_timeout(std::time::Duration::from_millis(ACQUIRE_TIMEOUT_MS))
            .test_before_acquire(false)
            .before_acquire(ping_if_idle)
            // The node may have been demoted since it was chosen, or restarted: never hand out
            // a connection to a standby, nor to a primary whose restart is not confirmed.
            .after_connect(move |conn, _| Box::pin(admit.clone().admit(conn)))
            .connect_with(nodes.options(primary).clone())
            .await?;
        let state = std::sync::Arc::new(nodes::PrimaryState::new(nodes.label(primary)));
        nodes::watch(pool.clone(), nodes, primary, state.clone(), confirmations);
        replicas.clone().watch(pool.clone());
        let db = PgDb {
            pool,
            primary: state,
            replicas,
            cells: None,
        };
        db.check_migrations().await?;
        Ok(db)
    }

    pub(crate) async fn migrate(admin_url: &str) -> Result<usize, StoreError> {
        let nodes = nodes::Nodes::parse(admin_url)?;
        let primary = nodes.find_primary().await?;
        // A restarted primary may show a migration's row that only it holds (see
        // `postgres/confirmed.rs`): skipping that migration would lose it in a failover.
        let confirmations = confirmed_primary(&nodes, primary).await?;
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .after_connect(move |conn, _| Box::pin(confirmations.clone().admit(conn)))
            .connect_with(nodes.options(primary).clone())
            .await?;
        let before = applied_count(&pool).await;
        sqlx_macros::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Schema(e.to_string()))?;
        // The application role must be able to see which migrations ran (readiness checks).
        sqlx::query("GRANT SELECT ON _sqlx_migrations TO auditex_app")
            .execute(&pool)
            .await?;
        let after = applied_count(&pool).await;
        pool.close().await;
        Ok(usize::try_from(after - before).unwrap_or(0))
    }

    /// Refuses to run against a schema older than this build's migrations.
    async fn check_migrations(&self) -> Result<(), StoreError> {
        let latest = sqlx_macros::migrate!("./migrations/postgres")
            .iter()
            .map(|m| m.version)
            .max()
            .unwrap_or(0);
        let applied: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| StoreError::Schema(format!("cannot read the migration table ({e}); run `auditex migrate` with the schema owner's URL")))?;
        if applied.unwrap_or(0) < latest {
            return Err(StoreError::Schema(format!(
                "the database schema is at version {} but this build needs {latest}; run `auditex migrate` with the schema owner's URL",
                applied.unwrap_or(0)
            )));
        }
        Ok(())
    }

    /// A transaction scoped to `tenant` for row-level security.
    ///
    /// `BEGIN` and the tenant's setting go to the server as one statement, in one round trip:
    /// every tenant's read is a transaction of its own, which takes three round trips this way
    /// instead of four (a checkpoint round of 1,000 tenants went from 827 to 696 ms, see
    /// BENCHMARKS.md, "Checkpoints with 10,000 tenants"). The
    /// setting is `set_config(…, true)`, local to the transaction, never a plain `SET`, which
    /// would outlive it on the pooled connection. The simple-query protocol that sends custom
    /// `BEGIN` statements takes no parameters, so the tenant id is written into it as a literal:
    /// safe because a tenant id holds only lowercase letters, digits and hyphens (checked by
    /// [`TenantId::parse`] and again here), nothing that could end the string.
    pub(crate) async fn tenant_tx(
        &self,
        tenant: &TenantId,
    ) -> Result<Transaction<'static, Postgres>, StoreError> {
        let begin = begin_for(tenant)?;
        Ok(self.pool.begin_with(sqlx::AssertSqlSafe(begin)).await?)
    }

    /// A transaction scoped to `tenant` for a read: on the read replica of the current request
    /// when it is a read-only request and a replica is in reads, else on the primary (see
    /// [`replicas`]). Only statements that read go through here.
    pub(crate) async fn read_tx(
        &self,
        tenant: &TenantId,
    ) -> Result<Transaction<'static, Postgres>, StoreError> {
        let db = self.ledger_db(tenant)?;
        if !std::ptr::eq(db, self) {
            return Box::pin(db.read_tx(tenant)).await;
        }
        let begin = begin_for(tenant)?;
        if let Some(tx) = self.replicas.begin(&begin).await {
            return Ok(tx);
        }
        Ok(self.pool.begin_with(sqlx::AssertSqlSafe(begin)).await?)
    }

    /// A transaction scoped to `tenant` on the database holding its ledger and views: its cell
    /// (see [`cells`]), or this database. Every statement on the tenant's ledger or views goes
    /// through here or [`PgDb::read_tx`]; [`PgDb::tenant_tx`] is for the access tables, which
    /// stay on the home database.
    pub(crate) async fn ledger_tx(
        &self,
        tenant: &TenantId,
    ) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.ledger_db(tenant)?.tenant_tx(tenant).await
    }

    /// Runs one statement in a transaction scoped to `tenant`; returns how many rows it changed.
    pub(crate) async fn execute_for(
        &self,
        tenant: &TenantId,
        statement: sqlx::query::Query<'static, Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.tenant_tx(tenant).await?;
        let changed = statement.execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(changed)
    }

    /// The connection pool (tenants' statements go through [`PgDb::tenant_tx`]).
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Confirmations for the primary `nodes[primary]`, its current life confirmed: said plainly here
/// rather than as a pool's time-out, since a primary that restarted waits for its synchronous
/// standby before anything is read there (see `postgres/confirmed.rs`).
async fn confirmed_primary(
    nodes: &nodes::Nodes,
    primary: usize,
) -> Result<std::sync::Arc<confirmed::Confirmations>, StoreError> {
    let confirmations =
        confirmed::Confirmations::new(nodes.options(primary).clone(), nodes.label(primary));
    confirmations
        .confirm_target(CONFIRM_AT_OPEN)
        .await
        .map_err(StoreError::NotPrimary)?;
    Ok(confirmations)
}

/// Ends a transaction that only read. It has nothing to commit: dropping it queues its `ROLLBACK`,
/// which the pool sends (and waits for) when it takes the connection back, after the caller has
/// its answer, so a read costs the caller one round trip fewer than a `COMMIT` would.
fn end_read(tx: Transaction<'static, Postgres>) {
    drop(tx);
}

/// Pings a pooled connection before handing it out only when it sat idle for more than
/// [`PING_IF_IDLE_FOR`]: the pool pings every connection it takes back already, so one used a
/// moment ago is known to be alive, and pinging it again would add a round trip to every
/// transaction. A connection that died in between fails its statement as "database
/// unavailable", which callers retry.
pub(crate) fn ping_if_idle(
    conn: &mut sqlx::PgConnection,
    meta: sqlx::pool::PoolConnectionMetadata,
) -> futures_util::future::BoxFuture<'_, Result<bool, sqlx::Error>> {
    Box::pin(async move {
        if meta.idle_for > PING_IF_IDLE_FOR {
            sqlx::Connection::ping(conn).await?;
        }
        Ok(true)
    })
}

/// See [`ping_if_idle`].
const PING_IF_IDLE_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// The statement that begins a transaction scoped to `tenant` (see [`PgDb::tenant_tx`]).
fn begin_for(tenant: &TenantId) -> Result<String, StoreError> {
    let id = tenant.as_str();
    if !id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(StoreError::Corrupt(format!(
            "tenant id {id:?} has characters a tenant id never has"
        )));
    }
    Ok(format!(
        "BEGIN; SELECT set_config('app.tenant_id', '{id}', true)"
    ))
}

#[async_trait::async_trait]
impl Backend for PgDb {
    fn primary(&self) -> Option<super::backend::PrimaryInfo> {
        Some(self.primary.info())
    }

    fn read_replicas(&self) -> Vec<super::backend::ReplicaInfo> {
        self.replicas.info()
    }

    fn kind(&self) -> BackendKind {
        BackendKind::Postgres
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn sqlite_version(&self) -> Option<String> {
        None
    }

    async fn vacuum_into(&self, _dest: &Path) -> Result<(), StoreError> {
        Err(StoreError::Backup(
            "a PostgreSQL database is not copied to a file; use pg_basebackup and WAL archiving"
                .into(),
        ))
    }

    /// Nothing marks a PostgreSQL database as in use by this process.
    fn release_in_use_lock(&self) {}

    /// Closes the connection pool.
    async fn close(&self) {
        self.pool.close().await;
    }

    fn cell_names(&self) -> Vec<String> {
        self.cell_list()
    }

    async fn placement(&self, tenant: &TenantId) -> Result<String, StoreError> {
        self.stored_placement(tenant).await
    }

    async fn move_precopy(
        &self,
        tenant: &TenantId,
        to: &str,
        now_us: u64,
        progress: &(dyn for<'p> Fn(&'p str, u64) + Send + Sync),
    ) -> Result<crate::store::cells::MovePrecopy, StoreError> {
        self.precopy_to(tenant, to, now_us, progress).await
    }

    async fn move_fenced(
        &self,
        tenant: &TenantId,
        to: &str,
        now_us: u64,
        pre: &crate::store::cells::MovePrecopy,
        progress: &(dyn for<'p> Fn(&'p str, u64) + Send + Sync),
    ) -> Result<crate::store::MoveCopied, StoreError> {
        self.fence_and_switch(tenant, to, now_us, pre, progress)
            .await
    }

    async fn drop_personal_copy(&self, tenant: &TenantId, cell: &str) -> Result<(), StoreError> {
        PgDb::drop_personal_copy(self, tenant, cell).await
    }

    async fn move_finish(&self, tenant: &TenantId, to: &str) -> Result<(), StoreError> {
        self.lift_target_fence(tenant, to).await
    }
}

#[async_trait::async_trait]
impl LedgerBackend for PgDb {
    async fn create_tenant(
        &self,
        tenant: &TenantId,
        origin: &str,
        key: &KeyRow,
        now_us: u64,
    ) -> Result<(), StoreError> {
        let mut tx = self.ledger_tx(tenant).await?;
        let inserted = sqlx::query(
            "INSERT INTO tenants (tenant_id, created_at_us) VALUES ($1, $2) ON CONFLICT (tenant_id) DO NOTHING",
        )
        .bind(tenant.as_str())
        .bind(db_int(now_us))
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::TenantExists(tenant.to_string()));
        }
        sqlx::query(
            "INSERT INTO signing_keys (tenant_id, key_id, public_key, sealed_secret, from_seq, until_seq, created_at_us)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
            "INSERT INTO tenant_origins (tenant_id, origin, recorded_at_us) VALUES ($1, $2, $3)",
        )
        .bind(tenant.as_str())
        .bind(origin)
        .bind(db_int(now_us))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every tenant's id, through the owner's `tenant_ids()`: the tenants table itself shows the
    /// application role only the tenant of its transaction.
    async fn tenants(&self) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT tenant_id FROM tenant_ids() AS t(tenant_id)")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn tenant_exists(&self, tenant: &TenantId) -> Result<bool, StoreError> {
        let mut tx = self.ledger_tx(tenant).await?;
        let found: Option<i64> =
            sqlx::query_scalar("SELECT 1::BIGINT FROM tenants WHERE tenant_id = $1")
                .bind(tenant.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(found.is_some())
    }

    async fn keys(&self, tenant: &TenantId) -> Result<Vec<KeyRow>, StoreError> {
        let mut tx = self.read_tx(tenant).await?;
        let keys = keys_in(&mut tx, tenant).await?;
        end_read(tx);
        Ok(keys)
    }

    async fn chain_head(&self, tenant: &TenantId) -> Result<Option<ChainHead>, StoreError> {
        let mut tx = self.ledger_tx(tenant).await?;
        let h = chain_head_in(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(h)
    }

    async fn publication_reads(&self, tenant: &TenantId) -> Result<PublicationReads, StoreError> {
        let mut tx = self.ledger_tx(tenant).await?;
        let latest: Option<i64> =
            sqlx::query_scalar("SELECT max(tree_size) FROM checkpoints WHERE tenant_id = $1")
                .bind(tenant.as_str())
                .fetch_one(&mut *tx)
                .await?;
        let keys = keys_in(&mut tx, tenant).await?;
        let head = chain_head_in(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(PublicationReads {
            latest_checkpoint: latest.map(|s| TreeSize::new(u64::try_from(s).unwrap_or(0))),
            keys,
            head,
        })
    }

    async fn record_by_seq(
        &self,
        tenant: &TenantId,
        seq: Sequence,
    ) -> Result<Option<RecordRow>, StoreError> {
        let mut tx = self.read_tx(tenant).await?;
        let t: Option<RecordTuple> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{SELECT_RECORD} WHERE tenant_id = $1 AND seq = $2"
        )))
        .bind(tenant.as_str())
        .bind(db_int(seq.get()))
        .fetch_optional(&mut *tx)
        .await?;
        end_read(tx);
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
        let mut tx = self.read_tx(tenant).await?;
        let rows: Vec<RecordTuple> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{SELECT_RECORD} WHERE tenant_id = $1 AND event_id = ANY($2)"
        )))
        .bind(tenant.as_str())
        .bind(ids)
        .fetch_all(&mut *tx)
        .await?;
        end_read(tx);
        Ok(rows.into_iter().map(row).collect())
    }

    async fn records_range(
        &self,
        tenant: &TenantId,
        from: Sequence,
        limit: u64,
    ) -> Result<Vec<RecordRow>, StoreError> {
        let mut tx = self.read_tx(tenant).await?;
        let rows: Vec<RecordTuple> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{SELECT_RECORD} WHERE tenant_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3"
        )))
        .bind(tenant.as_str())
        .bind(db_int(from.get()))
        .bind(db_int(limit))
        .fetch_all(&mut *tx)
        .await?;
        end_read(tx);
        Ok(rows.into_iter().map(row).collect())
    }

    async fn records_of_type(
        &self,
        tenant: &TenantId,
        event_type: EventType,
        before: Option<Sequence>,
        limit: u64,
    ) -> Result<Vec<RecordRow>, StoreError> {
        let mut tx = self.read_tx(tenant).await?;
        // Served by records_by_type (tenant_id, event_type, seq), read backwards from `before`.
        let rows: Vec<RecordTuple> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{SELECT_RECORD} WHERE tenant_id = $1 AND event_type = $2 AND seq < $3 ORDER BY seq DESC LIMIT $4"
        )))
        .bind(tenant.as_str())
        .bind(event_type.as_str())
        .bind(before.map_or(i64::MAX, |s| db_int(s.get())))
        .bind(db_int(limit))
        .fetch_all(&mut *tx)
        .await?;
        end_read(tx);
        Ok(rows.into_iter().map(row).collect())
    }

    /// On the primary even for a read-only request: personal data and whether it was erased are
    /// never read on a replica, whose lag could serve a value for a moment after its erasure
    /// was acknowledged.
    async fn erasable_values(
        &self,
        tenant: &TenantId,
        seq: Sequence,
    ) -> Result<Vec<StoredValueRow>, StoreError> {
        let mut tx = self.ledger_tx(tenant).await?;
        let rows = ErasureSql::<Postgres>::values(&mut tx, tenant, db_int(seq.get())).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// On the primary, as [`Self::erasable_values`], so that the two agree.
    async fn erased_fields(
        &self,
        tenant: &TenantId,
        seq: Sequence,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let mut tx = self.ledger_tx(tenant).await?;
        let rows = ErasureSql::<Postgres>::erased(&mut tx, tenant, db_int(seq.get())).await?;
        tx.commit().await?;
        Ok(rows)
    }

    async fn subject_values(
        &self,
        tenant: &TenantId,
        subject: &str,
    ) -> Result<Vec<SubjectValueRow>, StoreError> {
        let mut tx = self.ledger_tx(tenant).await?;
        let rows = ErasureSql::<Postgres>::subject_values(&mut tx, tenant, subject).await?;
        tx.commit().await?;
        Ok(rows)
    }

    async fn latest_subject_erasure(
        &self,
        tenant: &TenantId,
        subject: &str,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = self.ledger_tx(tenant).await?;
        let seq = ErasureSql::<Postgres>::latest_subject_erasure(&mut tx, tenant, subject).await?;
        tx.commit().await?;
        Ok(seq)
    }

    async fn erasures_after(
        &self,
        tenant: &TenantId,
        after: Option<i64>,
        limit: u64,
    ) -> Result<Vec<i64>, StoreError> {
        let mut tx = self.ledger_tx(tenant).await?;
        let rows = ErasureSql::<Postgres>::erasures_after(&mut tx, tenant, after, limit).await?;
        tx.commit().await?;
        Ok(rows)
    }

    async fn reapplied_erasures(
        &self,
        tenant: &TenantId,
        after: Option<(i64, Vec<u8>)>,
        limit: u64,
    ) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        let mut tx = self.ledger_tx(tenant).await?;
        let rows =
            ErasureSql::<Postgres>::reapplied_erasures(&mut tx, tenant, after, limit).await?;
        tx.commit().await?;
        Ok(rows)
    }

    async fn reerased_count(
        &self,
        tenant: &TenantId,
        scope: Option<&ErasureScope>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.ledger_tx(tenant).await?;
        let n = ErasureSql::<Postgres>::reerased_count(&mut tx, tenant, scope).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn reerased_records(
        &self,
        tenant: &TenantId,
        scope: &ErasureScope,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let mut tx = self.ledger_tx(tenant).await?;
        let rows = ErasureSql::<Postgres>::reerased_records(&mut tx, tenant, scope).await?;
        tx.commit().await?;
        Ok(rows)
    }

    async fn active_holds(
        &self,
        tenant: &TenantId,
        subjects: &[&str],
    ) -> Result<Vec<HoldRow>, StoreError> {
        let mut tx = self.ledger_tx(tenant).await?;
        let rows = HoldSql::<Postgres>::active(&mut tx, tenant, subjects).await?;
        tx.commit().await?;
        Ok(rows)
    }

    async fn subject_holds(
        &self,
        tenant: &TenantId,
        subject: &str,
    ) -> Result<Vec<HoldRow>, StoreError> {
        let mut tx = self.ledger_tx(tenant).await?;
        let rows = HoldSql::<Postgres>::of_subject(&mut tx, tenant, subject).await?;
        tx.commit().await?;
        Ok(rows)
    }

    async fn retention_policy(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<(RetentionRule, i64)>, StoreError> {
        let mut tx = self.ledger_tx(tenant).await?;
        let rows = HoldSql::<Postgres>::policy(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(rows)
    }

    async fn retention_candidates(
        &self,
        tenant: &TenantId,
        after: i64,
        limit: u64,
    ) -> Result<Vec<RetentionCandidate>, StoreError> {
        let mut tx = self.ledger_tx(tenant).await?;
        let rows = HoldSql::<Postgres>::candidates(&mut tx, tenant, after, limit).await?;
        tx.commit().await?;
        Ok(rows)
    }

    async fn latest_checkpoint(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        let mut tx = self.read_tx(tenant).await?;
        let t: Option<(i64, Vec<u8>, String, i64)> = sqlx::query_as(
            "SELECT tree_size, root, signed_note, published_at_us FROM checkpoints
             WHERE tenant_id = $1 ORDER BY tree_size DESC LIMIT 1",
        )
        .bind(tenant.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        end_read(tx);
        t.map(checkpoint).transpose()
    }

    async fn checkpoint_at(
        &self,
        tenant: &TenantId,
        size: TreeSize,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        let mut tx = self.read_tx(tenant).await?;
        let t: Option<(i64, Vec<u8>, String, i64)> = sqlx::query_as(
            "SELECT tree_size, root, signed_note, published_at_us FROM checkpoints
             WHERE tenant_id = $1 AND tree_size = $2",
        )
        .bind(tenant.as_str())
        .bind(db_int(size.get()))
        .fetch_optional(&mut *tx)
        .await?;
        end_read(tx);
        t.map(checkpoint).transpose()
    }

    async fn checkpoints(
        &self,
        tenant: &TenantId,
        after: Option<TreeSize>,
        limit: u64,
    ) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let mut tx = self.read_tx(tenant).await?;
        let rows: Vec<(i64, Vec<u8>, String, i64)> = sqlx::query_as(
            "SELECT tree_size, root, signed_note, published_at_us FROM checkpoints
             WHERE tenant_id = $1 AND tree_size > $2 ORDER BY tree_size LIMIT $3",
        )
        .bind(tenant.as_str())
        .bind(after.map_or(-1, |s| db_int(s.get())))
        .bind(db_int(limit))
        .fetch_all(&mut *tx)
        .await?;
        end_read(tx);
        rows.into_iter().map(checkpoint).collect()
    }

    /// On the primary: an origin is written once and cached by the store, so a replica saves
    /// nothing, and a replica that has not yet replayed a new tenant's origin would send the
    /// store down its path for tenants without one, which writes.
    async fn tenant_origin(&self, tenant: &TenantId) -> Result<Option<String>, StoreError> {
        let mut tx = self.ledger_tx(tenant).await?;
        let origin = sqlx::query_scalar("SELECT origin FROM tenant_origins WHERE tenant_id = $1")
            .bind(tenant.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(origin)
    }

    async fn record_tenant_origin(
        &self,
        tenant: &TenantId,
        origin: &str,
        now_us: u64,
    ) -> Result<(), StoreError> {
        // Written once: a concurrent first use (another instance) that recorded it already wins.
        let mut tx = self.ledger_tx(tenant).await?;
        sqlx::query(
            "INSERT INTO tenant_origins (tenant_id, origin, recorded_at_us) VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id) DO NOTHING",
        )
        .bind(tenant.as_str())
        .bind(origin)
        .bind(db_int(now_us))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn witnesses(&self, tenant: &TenantId) -> Result<Vec<WitnessRow>, StoreError> {
        let mut tx = self.ledger_tx(tenant).await?;
        let out = TlogSql::<Postgres>::witnesses(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn put_witness(
        &self,
        tenant: &TenantId,
        w: &WitnessRow,
        now_us: u64,
    ) -> Result<(), StoreError> {
        let mut tx = self.ledger_tx(tenant).await?;
        let out = TlogSql::<Postgres>::put_witness(&mut tx, tenant, w, now_us).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn remove_witness(&self, tenant: &TenantId, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.ledger_tx(tenant).await?;
        let out = TlogSql::<Postgres>::remove_witness(&mut tx, tenant, name).await?;
        tx.commit().await?;
        Ok(out)
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
        let mut tx = self.ledger_tx(tenant).await?;
        let out = TlogSql::<Postgres>::record_cosignature(
            &mut tx,
            tenant,
            size,
            root,
            witness,
            line,
            cosigned_at,
        )
        .await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn cosignatures(
        &self,
        tenant: &TenantId,
        size: u64,
        root: &[u8],
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut tx = self.read_tx(tenant).await?;
        let out = TlogSql::<Postgres>::cosignatures(&mut tx, tenant, size, root).await?;
        end_read(tx);
        Ok(out)
    }

    async fn last_cosigned(
        &self,
        tenant: &TenantId,
        witness: &str,
    ) -> Result<Option<u64>, StoreError> {
        let mut tx = self.ledger_tx(tenant).await?;
        let out = TlogSql::<Postgres>::last_cosigned(&mut tx, tenant, witness).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// On the primary: who may read the tiles is access control, never decided by a lagging
    /// replica.
    async fn tiles_public(&self, tenant: &TenantId) -> Result<bool, StoreError> {
        let mut tx = self.ledger_tx(tenant).await?;
        let out = TlogSql::<Postgres>::tiles_public(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn set_tiles_public(
        &self,
        tenant: &TenantId,
        public: bool,
        now_us: u64,
    ) -> Result<(), StoreError> {
        let mut tx = self.ledger_tx(tenant).await?;
        let out = TlogSql::<Postgres>::set_tiles_public(&mut tx, tenant, public, now_us).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn abandoned_checkpoints(
        &self,
        tenant: &TenantId,
        after: Option<TreeSize>,
        limit: u64,
    ) -> Result<Vec<(u64, StoredCheckpoint)>, StoreError> {
        let mut tx = self.read_tx(tenant).await?;
        let rows: Vec<(i64, i64, Vec<u8>, String, i64)> = sqlx::query_as(
            "SELECT abandoned_by_seq, tree_size, root, signed_note, published_at_us
             FROM abandoned_checkpoints WHERE tenant_id = $1 AND tree_size > $2
             ORDER BY tree_size, abandoned_by_seq LIMIT $3",
        )
        .bind(tenant.as_str())
        .bind(after.map_or(-1, |s| db_int(s.get())))
        .bind(db_int(limit))
        .fetch_all(&mut *tx)
        .await?;
        end_read(tx);
        rows.into_iter().map(abandoned_checkpoint).collect()
    }

    async fn insert_abandoned_checkpoint(
        &self,
        tenant: &TenantId,
        abandoned_by_seq: u64,
        c: &StoredCheckpoint,
    ) -> Result<(), StoreError> {
        let mut tx = self.ledger_tx(tenant).await?;
        sqlx::query(
            "INSERT INTO abandoned_checkpoints
                 (tenant_id, abandoned_by_seq, tree_size, root, signed_note, published_at_us)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(tenant.as_str())
        .bind(db_int(abandoned_by_seq))
        .bind(db_int(c.size.get()))
        .bind(c.root.as_bytes().as_slice())
        .bind(&c.signed_note)
        .bind(db_int(c.published_at_us))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_checkpoint(
        &self,
        tenant: &TenantId,
        c: &StoredCheckpoint,
    ) -> Result<(), StoreError> {
        let mut tx = self.ledger_tx(tenant).await?;
        // Checkpoints of a tenant are stored one at a time, under its append lock, and never
        // below a larger one: a checkpoint signed before another node stored a larger one is
        // not stored after it (it would add nothing, and a tenant move copies the checkpoints
        // above the largest of its snapshot). Two instances may sign the same size; the tree is
        // deterministic, so the first stays.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('auditex:append:' || $1, 0))")
            .bind(tenant.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO checkpoints (tenant_id, tree_size, root, signed_note, published_at_us)
             SELECT $1, $2, $3, $4, $5
             WHERE NOT EXISTS (SELECT 1 FROM checkpoints WHERE tenant_id = $1 AND tree_size > $2)
             ON CONFLICT (tenant_id, tree_size) DO NOTHING",
        )
        .bind(tenant.as_str())
        .bind(db_int(c.size.get()))
        .bind(c.root.as_bytes().as_slice())
        .bind(&c.signed_note)
        .bind(db_int(c.published_at_us))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn record_hashes(
        &self,
        tenant: &TenantId,
        from: u64,
        to: u64,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut tx = self.read_tx(tenant).await?;
        let rows = sqlx::query_scalar(
            "SELECT hash FROM records WHERE tenant_id = $1 AND seq >= $2 AND seq < $3 ORDER BY seq",
        )
        .bind(tenant.as_str())
        .bind(db_int(from))
        .bind(db_int(to))
        .fetch_all(&mut *tx)
        .await?;
        end_read(tx);
        Ok(rows)
    }

    async fn merkle_nodes(
        &self,
        tenant: &TenantId,
        level: u8,
        from: u64,
        to: u64,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut tx = self.read_tx(tenant).await?;
        let rows = sqlx::query_scalar(
            "SELECT hash FROM merkle_nodes WHERE tenant_id = $1 AND level = $2 AND idx >= $3 AND idx < $4 ORDER BY idx",
        )
        .bind(tenant.as_str())
        .bind(i16::from(level))
        .bind(db_int(from))
        .bind(db_int(to))
        .fetch_all(&mut *tx)
        .await?;
        end_read(tx);
        Ok(rows)
    }

    async fn begin_append(
        &self,
        tenant: &TenantId,
    ) -> Result<Box<dyn AppendTransaction>, StoreError> {
        let mut tx = self.ledger_tx(tenant).await?;
        // One writer per tenant across every service instance sharing this database.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('auditex:append:' || $1, 0))")
            .bind(tenant.as_str())
            .execute(&mut *tx)
            .await?;
        Ok(Box::new(PgAppend(tx)))
    }

    async fn data_key_count(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        let mut tx = self.ledger_tx(tenant).await?;
        let n = ErasureSql::<Postgres>::key_count(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn data_key_page(
        &self,
        tenant: &TenantId,
        after: i64,
        limit: u64,
    ) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        let mut tx = self.ledger_tx(tenant).await?;
        let rows = ErasureSql::<Postgres>::key_page(&mut tx, tenant, after, limit).await?;
        tx.commit().await?;
        Ok(rows)
    }

    async fn rewrap_data_key(
        &self,
        tenant: &TenantId,
        r: &super::reseal::Resealed,
    ) -> Result<bool, StoreError> {
        let mut tx = self.ledger_tx(tenant).await?;
        let done = ErasureSql::<Postgres>::rewrap(&mut tx, tenant, r.seq, &r.old, &r.new).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Counts the tenant's values sealed under the master key directly (for progress).
    async fn erasable_count(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        let mut tx = self.ledger_tx(tenant).await?;
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM erasable_values WHERE tenant_id = $1 AND key_seq IS NULL",
        )
        .bind(tenant.as_str())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Up to `limit` sealed erasable values after `(seq, field)`, in key order.
    async fn erasable_sealed_page(
        &self,
        tenant: &TenantId,
        after: &(i64, String),
        limit: u64,
    ) -> Result<Vec<(i64, String, Vec<u8>)>, StoreError> {
        let mut tx = self.ledger_tx(tenant).await?;
        let rows = sqlx::query_as(
            "SELECT seq, field, sealed FROM erasable_values
             WHERE tenant_id = $1 AND key_seq IS NULL AND (seq, field) > ($2, $3)
             ORDER BY seq, field LIMIT $4",
        )
        .bind(tenant.as_str())
        .bind(after.0)
        .bind(&after.1)
        .bind(db_int(limit))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Replaces sealed values in one transaction, each only if it is still the value read (a
    /// value erased or re-sealed meanwhile is left alone); returns how many were replaced.
    async fn reseal_erasable(
        &self,
        tenant: &TenantId,
        rows: &[super::reseal::Resealed],
    ) -> Result<u64, StoreError> {
        let mut tx = self.ledger_tx(tenant).await?;
        let mut n = 0;
        for r in rows {
            n += sqlx::query(
                "UPDATE erasable_values SET sealed = $1
                 WHERE tenant_id = $2 AND seq = $3 AND field = $4 AND sealed = $5",
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
        let mut tx = self.ledger_tx(tenant).await?;
        let done = sqlx::query(
            "UPDATE signing_keys SET sealed_secret = $1
             WHERE tenant_id = $2 AND key_id = $3 AND sealed_secret = $4",
        )
        .bind(&r.new)
        .bind(tenant.as_str())
        .bind(&r.item)
        .bind(&r.old)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(done == 1)
    }
}

async fn applied_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
        .unwrap_or(0)
}

async fn keys_in(
    tx: &mut Transaction<'static, Postgres>,
    tenant: &TenantId,
) -> Result<Vec<KeyRow>, StoreError> {
    let rows: Vec<KeyTuple> = sqlx::query_as(
        "SELECT key_id, public_key, sealed_secret, from_seq, until_seq FROM signing_keys
         WHERE tenant_id = $1 ORDER BY from_seq",
    )
    .bind(tenant.as_str())
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(key_row).collect())
}

async fn chain_head_in(
    tx: &mut Transaction<'static, Postgres>,
    tenant: &TenantId,
) -> Result<Option<ChainHead>, StoreError> {
    let t: Option<(i64, Vec<u8>, i64)> = sqlx::query_as(
        "SELECT seq, hash, captured_at_us FROM records WHERE tenant_id = $1 ORDER BY seq DESC LIMIT 1",
    )
    .bind(tenant.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    t.map(head).transpose()
}

/// One group commit's transaction, scoped to its tenant and holding the tenant's advisory lock.
struct PgAppend(Transaction<'static, Postgres>);

#[async_trait::async_trait]
impl AppendTransaction for PgAppend {
    async fn chain_head(&mut self, tenant: &TenantId) -> Result<Option<ChainHead>, StoreError> {
        chain_head_in(&mut self.0, tenant).await
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
        // One statement per table however large the group: arrays bound as parameters and UNNESTed.
        let seqs: Vec<i64> = rows.iter().map(|r| db_int(r.record.seq.get())).collect();
        let event_ids: Vec<String> = rows.iter().map(|r| r.record.event_id.to_string()).collect();
        let event_types: Vec<&str> = rows.iter().map(|r| r.record.event_type.as_str()).collect();
        let times: Vec<i64> = rows
            .iter()
            .map(|r| db_int(r.record.captured_at_us.unix_micros()))
            .collect();
        let prevs: Vec<Vec<u8>> = rows
            .iter()
            .map(|r| r.record.prev.as_bytes().to_vec())
            .collect();
        let hashes: Vec<Vec<u8>> = rows
            .iter()
            .map(|r| r.record.hash.as_bytes().to_vec())
            .collect();
        let key_ids: Vec<String> = rows.iter().map(|r| r.record.key_id.to_hex()).collect();
        let sigs: Vec<Vec<u8>> = rows
            .iter()
            .map(|r| r.record.sig.to_bytes().to_vec())
            .collect();
        let payloads: Vec<&str> = rows.iter().map(|r| r.payload).collect();
        let erasables: Vec<&str> = rows.iter().map(|r| r.erasable.as_str()).collect();
        sqlx::query(
            "INSERT INTO records (tenant_id, seq, event_id, event_type, captured_at_us, prev, hash, key_id, sig, payload, erasable)
             SELECT $1, * FROM UNNEST($2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[], $6::BYTEA[], $7::BYTEA[], $8::TEXT[], $9::BYTEA[], $10::TEXT[], $11::TEXT[])",
        )
        .bind(tenant.as_str())
        .bind(&seqs)
        .bind(&event_ids)
        .bind(&event_types)
        .bind(&times)
        .bind(&prevs)
        .bind(&hashes)
        .bind(&key_ids)
        .bind(&sigs)
        .bind(&payloads)
        .bind(&erasables)
        .execute(&mut **tx)
        .await?;
        if !erasable.is_empty() {
            let seqs: Vec<i64> = erasable.iter().map(|e| e.seq).collect();
            let fields: Vec<&str> = erasable.iter().map(|e| e.field.as_str()).collect();
            let salts: Vec<&[u8]> = erasable.iter().map(|e| e.salt.as_slice()).collect();
            let sealed: Vec<&[u8]> = erasable.iter().map(|e| e.sealed.as_slice()).collect();
            let subjects: Vec<Option<&str>> =
                erasable.iter().map(|e| e.subject_ref.as_deref()).collect();
            let key_seqs: Vec<i64> = erasable.iter().map(|e| e.key_seq).collect();
            sqlx::query(
                "INSERT INTO erasable_values (tenant_id, seq, field, salt, sealed, subject_ref, key_seq)
                 SELECT $1, * FROM UNNEST($2::BIGINT[], $3::TEXT[], $4::BYTEA[], $5::BYTEA[], $6::TEXT[], $7::BIGINT[])",
            )
            .bind(tenant.as_str())
            .bind(&seqs)
            .bind(&fields)
            .bind(&salts)
            .bind(&sealed)
            .bind(&subjects)
            .bind(&key_seqs)
            .execute(&mut **tx)
            .await?;
        }
        ErasureSql::<Postgres>::insert_keys(&mut **tx, tenant, keys).await?;
        if !nodes.is_empty() {
            let levels: Vec<i16> = nodes.iter().map(|n| i16::from(n.0)).collect();
            let idxs: Vec<i64> = nodes.iter().map(|n| db_int(n.1)).collect();
            let hashes: Vec<Vec<u8>> = nodes.iter().map(|n| n.2.as_bytes().to_vec()).collect();
            sqlx::query(
                "INSERT INTO merkle_nodes (tenant_id, level, idx, hash)
                 SELECT $1, * FROM UNNEST($2::SMALLINT[], $3::BIGINT[], $4::BYTEA[])",
            )
            .bind(tenant.as_str())
            .bind(&levels)
            .bind(&idxs)
            .bind(&hashes)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    async fn subject_keys(
        &mut self,
        tenant: &TenantId,
        subjects: &[&str],
    ) -> Result<std::collections::BTreeMap<String, (i64, Vec<u8>)>, StoreError> {
        ErasureSql::<Postgres>::subject_keys(&mut *self.0, tenant, subjects).await
    }

    async fn erase(&mut self, tenant: &TenantId, scope: &ErasureScope) -> Result<u64, StoreError> {
        ErasureSql::<Postgres>::erase(&mut *self.0, tenant, scope).await
    }

    async fn active_holds(
        &mut self,
        tenant: &TenantId,
        subjects: &[&str],
    ) -> Result<Vec<HoldRow>, StoreError> {
        HoldSql::<Postgres>::active(&mut *self.0, tenant, subjects).await
    }

    async fn apply_holds(
        &mut self,
        tenant: &TenantId,
        changes: &[HoldChange],
    ) -> Result<(), StoreError> {
        HoldSql::<Postgres>::apply(&mut *self.0, tenant, changes).await
    }

    async fn replace_retention_policy(
        &mut self,
        tenant: &TenantId,
        policy_seq: u64,
        rules: &[RetentionRule],
    ) -> Result<(), StoreError> {
        HoldSql::<Postgres>::replace_policy(&mut *self.0, tenant, policy_seq, rules).await
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
            "UPDATE signing_keys SET until_seq = $1 WHERE tenant_id = $2 AND key_id = $3 AND until_seq IS NULL",
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
             VALUES ($1, $2, $3, $4, $5, NULL, $6)",
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
