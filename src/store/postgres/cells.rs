//! Tenant cells: a tenant's ledger and views on another PostgreSQL cluster than the home
//! database, and moving a tenant from one cell to another (docs/OPERATIONS.md, "Tenant cells").
//!
//! The home database (`AUDITEX_DATABASE_URL`) keeps every tenant's access state — API keys,
//! portal accounts, sessions, integrity runs — and the placement table saying on which cell each
//! tenant's ledger (records, tiles, checkpoints, keys, personal data) and views live; a tenant
//! without a placement lives on the home database itself. Every node asks four times a second
//! whether a placement changed and routes each tenant's ledger and view statements to its cell
//! ([`PgDb::ledger_db`]); access statements always go to the home database.
//!
//! The views' global state (which generation of each projection is active or building) is the
//! home database's; each cell holds a copy, written after every change of it, so a tenant's
//! view rows can live beside its ledger and be queried in one transaction with it.
//!
//! A move copies the bulk of the tenant from one snapshot while its writes go on
//! ([`PgDb::precopy_to`]); once the store has checked that copy on the target, it fences the
//! source (migration 0028: every write of the tenant there is refused, by a trigger, from then
//! on), waits for the writes already under way, copies the rest, compares every table, and
//! switches the placement ([`PgDb::fence_and_switch`]); the store lifts the target's fence once
//! every node has had time to learn the new placement ([`crate::store::Store::move_tenant`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use futures_util::TryStreamExt;
use ledger::types::TenantId;
use sqlx::postgres::PgPool;
use sqlx::{Postgres, Transaction};

use super::PgDb;
use crate::store::StoreError;
use crate::store::cells::{HOME, MoveCopied, MovePrecopy};

/// How often every node asks whether a placement changed (and reads them all if one did).
pub(crate) const REFRESH_EVERY: Duration = Duration::from_millis(250);

/// The start of a move's target fence's reason; the source cell's name follows.
const ARRIVING_FROM: &str = "arriving from cell ";

/// The start of a moved tenant's fence on the cell it left; the new cell's name follows.
const MOVED_TO: &str = "moved to cell ";

/// The tables of a tenant's personal data: sealed values and the keys that open them.
const PERSONAL: &[&str] = &["erasable_values", "data_keys"];

/// Every how many placement reads the views' state is copied to the cells again (every 5 s).
const MIRROR_EVERY_TICKS: u64 = 20;

/// How long a move waits for writes that were under way when the source was fenced.
const IN_FLIGHT_WAIT_MAX: Duration = Duration::from_secs(30);

/// Rows per statement when copying a tenant.
const COPY_BATCH_ROWS: usize = 1_000;

/// Every table holding a tenant's ledger or views, in an order that respects their foreign keys.
/// The access tables (API keys, users, sessions, …) are not here: they stay on the home database.
pub(crate) const TENANT_TABLES: &[&str] = &[
    "tenants",
    "signing_keys",
    "tenant_origins",
    "records",
    "merkle_nodes",
    "checkpoints",
    "abandoned_checkpoints",
    "checkpoint_cosignatures",
    "tenant_witnesses",
    "tenant_tile_access",
    "data_keys",
    "erasable_values",
    "erased_values",
    "erasures",
    "erasure_reapplications",
    "reerased_values",
    "legal_holds",
    "retention_rules",
    "projection_positions",
    "proj_decisions",
    "proj_models",
    "proj_model_outcomes",
    "proj_oversight",
    "proj_subjects",
    "proj_daily",
];

/// The cells of one node and where each tenant lives.
pub(crate) struct Cells {
    /// The home database's pool, where the placements are read.
    home: PgPool,
    /// Every configured cell but the home database, by name.
    cells: Vec<(String, PgDb)>,
    /// Tenant id → cell name, for tenants placed elsewhere than the home database.
    placement: RwLock<HashMap<String, String>>,
    /// The placement table's stamp when it was read last (see migration 0028).
    stamp: std::sync::Mutex<String>,
}

impl Cells {
    /// Connects to every cell, reads the placements and copies the views' state to the cells.
    pub(crate) async fn open(
        home: PgPool,
        specs: &[(String, String)],
        connections: u32,
        replica_lag_max: Duration,
    ) -> Result<Arc<Cells>, StoreError> {
        let mut cells = Vec::with_capacity(specs.len());
        let mut seen = Vec::new();
        if !specs.is_empty() {
            seen.push((HOME.to_owned(), database_identity(&home).await?));
        }
        for (name, url) in specs {
            let db = PgDb::connect(url, None, connections, &[], replica_lag_max)
                .await
                .map_err(|e| StoreError::Cells(format!("cell {name}: {e}")))?;
            // Two names for one database would let a move copy a tenant onto itself.
            let identity = database_identity(db.pool()).await?;
            if let Some((other, _)) = seen.iter().find(|(_, i)| *i == identity) {
                return Err(StoreError::Cells(format!(
                    "cell {name} is the same database as cell {other}: every cell must be a \
                     database of its own (AUDITEX_CELLS)"
                )));
            }
            seen.push((name.clone(), identity));
            cells.push((name.clone(), db));
        }
        let cells = Arc::new(Cells {
            home,
            cells,
            placement: RwLock::new(HashMap::new()),
            stamp: std::sync::Mutex::new(String::new()),
        });
        cells.refresh().await?;
        let mut unknown: Vec<String> = cells
            .placement
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .filter(|c| cells.named(c).is_none())
            .cloned()
            .collect();
        unknown.sort();
        unknown.dedup();
        if !unknown.is_empty() {
            return Err(StoreError::Cells(format!(
                "tenants are placed on cell(s) {} of which this node knows nothing: list every \
                 cell in AUDITEX_CELLS (NAME=postgres://…), as on the other nodes",
                unknown.join(", ")
            )));
        }
        cells.mirror_views().await?;
        Ok(cells)
    }

    /// Reads the placements again whenever they changed, asking every [`REFRESH_EVERY`], until
    /// the store closes.
    pub(crate) fn watch(self: &Arc<Self>) {
        let weak: Weak<Cells> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick: u64 = 0;
            let mut failing = false;
            loop {
                tokio::time::sleep(REFRESH_EVERY).await;
                let Some(cells) = weak.upgrade() else { return };
                if cells.home.is_closed() {
                    return;
                }
                match cells.refresh_if_changed().await {
                    // The old placements stay in use: a tenant that moved meanwhile is fenced
                    // where this node still sends it, so its writes are refused, never lost.
                    // Said once per outage, not four times a second.
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "could not read the tenant placements; keeping the last ones");
                    }
                    Err(_) => {}
                    Ok(()) if failing => {
                        failing = false;
                        tracing::info!("the tenant placements are read again");
                    }
                    Ok(()) => {}
                }
                // The views' state again now and then: a copy that failed after a change on
                // the home database (a cell briefly down) is made good.
                tick += 1;
                if tick.is_multiple_of(MIRROR_EVERY_TICKS)
                    && let Err(e) = cells.mirror_views().await
                {
                    tracing::warn!(error = %e, "could not copy the views' state to the cells");
                }
            }
        });
    }

    /// Reads every placement again if the placement table changed since the last read.
    async fn refresh_if_changed(&self) -> Result<(), StoreError> {
        let stamp = self.stamp().await?;
        let unchanged = *self
            .stamp
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            == stamp;
        if unchanged {
            return Ok(());
        }
        self.load(stamp).await
    }

    /// Reads every placement from the home database.
    pub(crate) async fn refresh(&self) -> Result<(), StoreError> {
        let stamp = self.stamp().await?;
        self.load(stamp).await
    }

    /// The placement table's stamp: it changes with every committed change (migration 0028).
    async fn stamp(&self) -> Result<String, StoreError> {
        Ok(sqlx::query_scalar("SELECT tenant_placement_stamp()")
            .fetch_one(&self.home)
            .await?)
    }

    /// Reads every placement, remembering `stamp`, read before them: a change made meanwhile is
    /// read again next time.
    async fn load(&self, stamp: String) -> Result<(), StoreError> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT tenant_id, cell FROM tenant_placement_list()")
                .fetch_all(&self.home)
                .await?;
        let map: HashMap<String, String> = rows.into_iter().filter(|(_, c)| c != HOME).collect();
        *self
            .placement
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = map;
        *self
            .stamp
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = stamp;
        Ok(())
    }

    /// The cell holding `tenant`'s ledger; `None` for the home database.
    pub(crate) fn place(&self, tenant: &TenantId) -> Result<Option<&PgDb>, StoreError> {
        let map = self
            .placement
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match map.get(tenant.as_str()) {
            None => Ok(None),
            Some(name) => self.named(name).map(Some).ok_or_else(|| {
                StoreError::Cells(format!(
                    "tenant {tenant} is placed on cell {name}, which this node is not configured \
                     with (add it to AUDITEX_CELLS)"
                ))
            }),
        }
    }

    /// The cell of that name (never the home database).
    pub(crate) fn named(&self, name: &str) -> Option<&PgDb> {
        self.cells.iter().find(|(n, _)| n == name).map(|(_, db)| db)
    }

    /// Every cell but the home database.
    pub(crate) fn all(&self) -> impl Iterator<Item = &PgDb> {
        self.cells.iter().map(|(_, db)| db)
    }

    /// The configured cells' names, the home database first.
    pub(crate) fn names(&self) -> Vec<String> {
        std::iter::once(HOME.to_owned())
            .chain(self.cells.iter().map(|(n, _)| n.clone()))
            .collect()
    }

    /// Copies the home database's projection state (every projection's active and building
    /// generation) to every cell, with the partitions those generations need there.
    pub(crate) async fn mirror_views(&self) -> Result<(), StoreError> {
        if self.cells.is_empty() {
            return Ok(());
        }
        type StateRow = (String, i64, i32, Option<i64>, Option<i32>, i64);
        let states: Vec<StateRow> = sqlx::query_as(
            "SELECT name, active_generation, active_version, building_generation, building_version, next_generation FROM projection_state",
        )
        .fetch_all(&self.home)
        .await?;
        for db in self.all() {
            let mut tx = db.pool().begin().await?;
            for (name, active, active_v, building, building_v, next) in &states {
                let applied = sqlx::query_scalar::<_, String>(
                    "INSERT INTO projection_state (name, active_generation, active_version, building_generation, building_version, next_generation)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (name) DO UPDATE SET active_generation = EXCLUDED.active_generation,
                         active_version = EXCLUDED.active_version, building_generation = EXCLUDED.building_generation,
                         building_version = EXCLUDED.building_version, next_generation = EXCLUDED.next_generation
                     WHERE (projection_state.next_generation, projection_state.active_generation)
                           < (EXCLUDED.next_generation, EXCLUDED.active_generation)
                     RETURNING name",
                )
                .bind(name)
                .bind(active)
                .bind(active_v)
                .bind(building)
                .bind(building_v)
                .bind(next)
                .fetch_optional(&mut *tx)
                .await?;
                // Only ever forward: a copy read before a later change (another node's) must
                // not put an older state back, nor recreate a purged generation's partitions.
                if applied.is_none() {
                    continue;
                }
                sqlx::query("SELECT views_add_generation($1, $2, true)")
                    .bind(name)
                    .bind(active)
                    .execute(&mut *tx)
                    .await?;
                if let Some(b) = building {
                    sqlx::query("SELECT views_add_generation($1, $2, false)")
                        .bind(name)
                        .bind(b)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
        }
        Ok(())
    }
}

impl PgDb {
    /// The database holding `tenant`'s ledger and views: its cell, or this (home) database.
    pub(crate) fn ledger_db(&self, tenant: &TenantId) -> Result<&PgDb, StoreError> {
        match &self.cells {
            None => Ok(self),
            Some(cells) => {
                // A move checking its copy reads the tenant on the target, before the switch.
                let checking = crate::store::cells::READ_ON
                    .try_with(|(t, cell)| (t == tenant.as_str()).then(|| cell.clone()))
                    .ok()
                    .flatten();
                match checking {
                    Some(cell) => self.cell_db(&cell),
                    None => Ok(cells.place(tenant)?.unwrap_or(self)),
                }
            }
        }
    }

    /// This database and every cell: where statements on every tenant's views go.
    pub(crate) fn every_cell(&self) -> Vec<&PgDb> {
        let mut out = vec![self];
        if let Some(cells) = &self.cells {
            out.extend(cells.all());
        }
        out
    }

    /// Copies the projections' state to every cell after a change of it (nothing without cells).
    pub(crate) async fn mirror_views(&self) -> Result<(), StoreError> {
        match &self.cells {
            Some(cells) => cells.mirror_views().await,
            None => Ok(()),
        }
    }

    /// The configured cells (see [`Cells`]): the home database has them (none configured is an
    /// empty list), a cell's own `PgDb` does not.
    fn cells(&self) -> Result<&Arc<Cells>, StoreError> {
        self.cells.as_ref().ok_or_else(|| {
            StoreError::Cells("a cell's database routes no tenant: ask the home database".into())
        })
    }

    /// The database of the cell named `name` (`home` for this one).
    fn cell_db(&self, name: &str) -> Result<&PgDb, StoreError> {
        if name == HOME {
            return Ok(self);
        }
        self.cells()?.named(name).ok_or_else(|| {
            StoreError::Cells(format!(
                "no cell named {name} is configured (cells: {})",
                self.cells()
                    .map(|c| c.names().join(", "))
                    .unwrap_or_default()
            ))
        })
    }

    /// The cell `tenant` is placed on, read from the placement table (not from this node's
    /// copy of it).
    pub(crate) async fn stored_placement(&self, tenant: &TenantId) -> Result<String, StoreError> {
        let mut tx = self.tenant_tx(tenant).await?;
        let cell: Option<String> =
            sqlx::query_scalar("SELECT cell FROM tenant_placements WHERE tenant_id = $1")
                .bind(tenant.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(cell.unwrap_or_else(|| HOME.to_owned()))
    }

    /// The first half of a move of `tenant` to the cell `to` (this must be the home database):
    /// takes the move's lock, fences the target, copies the bulk from one snapshot while the
    /// tenant's writes go on, and compares the snapshot's append-only rows. The result holds
    /// the lock until it is dropped; [`PgDb::fence_and_switch`] is the second half.
    pub(crate) async fn precopy_to(
        &self,
        tenant: &TenantId,
        to: &str,
        now_us: u64,
        progress: &(dyn for<'p> Fn(&'p str, u64) + Send + Sync),
    ) -> Result<MovePrecopy, StoreError> {
        self.cells()?;
        if !crate::store::backend::LedgerBackend::tenant_exists(self, tenant).await? {
            return Err(StoreError::UnknownTenant);
        }
        // One move of a tenant at a time, across every process: a session lock on the home
        // database, held by a connection of its own and released when it closes (when the
        // move ends, or the process dies).
        let mut lock = self.pool().acquire().await?;
        // A move that just ended closed its lock's connection, and the server releases the lock
        // once it has seen that close, a moment later: a move started right after (a rerun, or
        // the next command of a script) tries for a second before calling the lock taken.
        let mut locked = false;
        for attempt in 0..MOVE_LOCK_TRIES {
            if attempt > 0 {
                tokio::time::sleep(MOVE_LOCK_RETRY).await;
            }
            locked = sqlx::query_scalar(
                "SELECT pg_try_advisory_lock(hashtextextended('auditex:move:' || $1, 0))",
            )
            .bind(tenant.as_str())
            .fetch_one(&mut *lock)
            .await?;
            if locked {
                break;
            }
        }
        let guard: Box<dyn std::any::Any + Send + Sync> =
            Box::new(MoveLock(std::sync::Mutex::new(Some(lock))));
        if !locked {
            return Err(StoreError::Cells(format!(
                "another move of tenant {tenant} is under way"
            )));
        }
        let from = self.stored_placement(tenant).await?;
        if from == to {
            // A move interrupted after its switch: the target is still fenced as arriving from
            // the source. It is finished (checked, then unfenced) rather than refused.
            let fence = fence_reason(self.cell_db(to)?, tenant).await?;
            if let Some(source) = fence.as_deref().and_then(|f| f.strip_prefix(ARRIVING_FROM)) {
                return Ok(MovePrecopy {
                    from: source.to_owned(),
                    resumed_after_switch: true,
                    guard: Some(guard),
                    ..MovePrecopy::default()
                });
            }
            // A move killed after it resumed writes but before it emptied the old copy of
            // personal data: run again, it does that now.
            let left = format!("{MOVED_TO}{to}");
            for name in self.cell_list() {
                let db = self.cell_db(&name)?;
                if name != to && fence_reason(db, tenant).await?.as_deref() == Some(left.as_str()) {
                    clear_on_target(db, tenant, PERSONAL).await?;
                }
            }
            return Err(StoreError::Cells(format!(
                "tenant {tenant} is already on cell {to}"
            )));
        }
        let source = self.cell_db(&from)?;
        let target = self.cell_db(to)?;
        // A target that holds rows of the tenant is refused, unless they are an earlier,
        // interrupted copy from this same source (still fenced as arriving from it): rows left
        // from an earlier placement could hold values erased since.
        let arriving = format!("{ARRIVING_FROM}{from}");
        let target_fence = fence_reason(target, tenant).await?;
        let target_rows = ledger_rows(target, tenant).await?;
        if target_rows > 0 && target_fence.as_deref() != Some(arriving.as_str()) {
            return Err(StoreError::Cells(format!(
                "cell {to} already holds {target_rows} ledger rows of tenant {tenant} from an \
                 earlier placement; a tenant cannot move back onto an old copy of itself"
            )));
        }
        fence(target, tenant, &arriving, now_us).await?;
        let started = std::time::Instant::now();
        let mut pre = precopy((source, &from), (target, to), tenant, progress).await?;
        pre.from = from;
        pre.precopy = started.elapsed();
        pre.guard = Some(guard);
        Ok(pre)
    }

    /// The second half of a move (after [`PgDb::precopy_to`] and the check of the snapshot's
    /// copy): fences the source, waits for the writes under way, copies what came after the
    /// snapshot, compares every table, and switches the placement. The target stays fenced
    /// until [`PgDb::lift_target_fence`]; on any error before the switch the source is unfenced
    /// again and the placement is unchanged.
    pub(crate) async fn fence_and_switch(
        &self,
        tenant: &TenantId,
        to: &str,
        now_us: u64,
        pre: &MovePrecopy,
        progress: &(dyn for<'p> Fn(&'p str, u64) + Send + Sync),
    ) -> Result<MoveCopied, StoreError> {
        let cells = self.cells()?;
        let from = pre.from.clone();
        let source = self.cell_db(&from)?;
        let target = self.cell_db(to)?;
        // The source: no write of the tenant lands there from the fence on.
        let fenced = std::time::Instant::now();
        fence_source(source, tenant, &format!("{MOVED_TO}{to}"), now_us).await?;
        let copied = async {
            let mut out = MoveCopied {
                from: from.clone(),
                tables: Vec::new(),
                resumed_after_switch: false,
                precopy: pre.precopy,
                fenced_copy: Duration::ZERO,
            };
            // An erasure since the snapshot deleted values and keys of the pre-copy: those two
            // tables are copied again whole.
            let mut tx = source.tenant_tx(tenant).await?;
            let erased_since: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM records WHERE tenant_id = $1 AND seq >= $2 AND event_type = 'erasure')
                     OR (SELECT count(*) FROM erasure_reapplications WHERE tenant_id = $1) <> $3",
            )
            .bind(tenant.as_str())
            .bind(pre.next_seq)
            .bind(pre.reapplications)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            // Rows an earlier attempt left of tables whose rows are deleted on the source (a
            // witness removed, retention rules replaced) go first.
            clear_on_target(target, tenant, REPLACED_WHOLE).await?;
            if erased_since {
                clear_on_target(target, tenant, PERSONAL).await?;
            }
            for table in TENANT_TABLES {
                if is_view(table) {
                    // Copied in the snapshot; the runner on the new cell folds the rest.
                    if let Some((_, n)) = pre.views.iter().find(|(t, n)| t == table && *n > 0) {
                        out.tables.push(((*table).to_owned(), *n));
                    }
                    continue;
                }
                // Only what the snapshot did not hold, for what it copied.
                let since = match *table {
                    "records" => format!(" AND seq >= {}", pre.next_seq),
                    "checkpoints" => format!(" AND tree_size > {}", pre.checkpoint_max),
                    "erasable_values" if !erased_since => format!(" AND seq >= {}", pre.next_seq),
                    "data_keys" if !erased_since => format!(" AND key_seq >= {}", pre.next_seq),
                    _ => String::new(),
                };
                let mut from_tx = source.tenant_tx(tenant).await?;
                let filter = format!("{}{since}", rows_filter(table));
                copy_rows(&mut from_tx, target, tenant, table, &filter, &|n| {
                    progress(table, n);
                })
                .await?;
                from_tx.commit().await?;
                // Every row compared: the append-only tables' rows the snapshot held were
                // compared before the fence (they cannot change), the rest now.
                let compared = match *table {
                    "records" | "checkpoints" => since.as_str(),
                    _ => "",
                };
                let rows = compare(
                    (source, &from),
                    (target, to),
                    tenant,
                    table,
                    &format!("{}{compared}", rows_filter(table)),
                )
                .await?;
                let rows = match *table {
                    "records" => rows + pre.next_seq,
                    "checkpoints" => rows + pre.checkpoints,
                    _ => rows,
                };
                if rows > 0 {
                    out.tables
                        .push(((*table).to_owned(), u64::try_from(rows).unwrap_or(0)));
                }
            }
            Ok(out)
        }
        .await;
        let mut copied = match copied {
            Ok(c) => c,
            Err(e) => {
                // The tenant stays where it was and writes resume there; the target's copy keeps
                // no personal data (erasures on the source would never reach it).
                if let Err(u) = clear_on_target(target, tenant, PERSONAL).await {
                    tracing::error!(error = %u, %tenant, cell = %to, "could not delete the personal data of a failed move's copy");
                }
                if let Err(u) = unfence(source, tenant).await {
                    tracing::error!(error = %u, %tenant, cell = %from, "could not lift the fence after a failed move; lift it with `auditex tenant move` again or by hand");
                }
                return Err(e);
            }
        };
        let mut tx = self.tenant_tx(tenant).await?;
        sqlx::query(
            "INSERT INTO tenant_placements (tenant_id, cell, placed_at_us) VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id) DO UPDATE SET cell = EXCLUDED.cell, placed_at_us = EXCLUDED.placed_at_us,
                 version = nextval('tenant_placement_versions')",
        )
        .bind(tenant.as_str())
        .bind(to)
        .bind(crate::store::db_int(now_us))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        cells.refresh().await?;
        copied.fenced_copy = fenced.elapsed();
        Ok(copied)
    }

    /// Deletes the personal data (sealed values and their keys) of `tenant`'s copy on `cell`,
    /// which must not be the cell it lives on: the frozen copy a move left behind, or a copy a
    /// failed move made. Its records keep only their salted commitments, which reveal nothing.
    pub(crate) async fn drop_personal_copy(
        &self,
        tenant: &TenantId,
        cell: &str,
    ) -> Result<(), StoreError> {
        if self.stored_placement(tenant).await? == cell {
            return Err(StoreError::Cells(format!(
                "tenant {tenant} lives on cell {cell}: its personal data there is not a copy"
            )));
        }
        clear_on_target(self.cell_db(cell)?, tenant, PERSONAL).await
    }

    /// Lifts the target's fence: the tenant's writes go to its new cell from now on.
    pub(crate) async fn lift_target_fence(
        &self,
        tenant: &TenantId,
        to: &str,
    ) -> Result<(), StoreError> {
        unfence(self.cell_db(to)?, tenant).await
    }

    /// The configured cells' names, the home database first.
    pub(crate) fn cell_list(&self) -> Vec<String> {
        self.cells
            .as_ref()
            .map_or_else(|| vec![HOME.to_owned()], |c| c.names())
    }
}

/// Which database a pool reaches: its cluster's system identifier and the database's name.
async fn database_identity(pool: &PgPool) -> Result<String, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT system_identifier::text || '/' || current_database() FROM pg_control_system()",
    )
    .fetch_one(pool)
    .await?)
}

/// Why `tenant` is fenced on `db`, if it is.
async fn fence_reason(db: &PgDb, tenant: &TenantId) -> Result<Option<String>, StoreError> {
    let mut tx = db.tenant_tx(tenant).await?;
    let why = sqlx::query_scalar("SELECT reason FROM tenant_fences WHERE tenant_id = $1")
        .bind(tenant.as_str())
        .fetch_optional(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(why)
}

/// Rows of the tenant's chain and keys on `db`.
async fn ledger_rows(db: &PgDb, tenant: &TenantId) -> Result<i64, StoreError> {
    let mut tx = db.tenant_tx(tenant).await?;
    let n: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM records WHERE tenant_id = $1) + (SELECT count(*) FROM signing_keys WHERE tenant_id = $1)",
    )
    .bind(tenant.as_str())
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(n)
}

/// The statement that fences `tenant` (keeping an existing fence's reason).
fn fence_row(
    tenant: &TenantId,
    reason: &str,
    now_us: u64,
) -> sqlx::query::Query<'static, Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(
        "INSERT INTO tenant_fences (tenant_id, reason, fenced_at_us) VALUES ($1, $2, $3) ON CONFLICT (tenant_id) DO NOTHING",
    )
    .bind(tenant.as_str().to_owned())
    .bind(reason.to_owned())
    .bind(crate::store::db_int(now_us))
}

/// Fences `tenant` on `db` (keeping an existing fence's reason).
async fn fence(db: &PgDb, tenant: &TenantId, reason: &str, now_us: u64) -> Result<(), StoreError> {
    db.execute_for(tenant, fence_row(tenant, reason, now_us))
        .await
        .map(drop)
}

/// Lifts `tenant`'s fence on `db`.
async fn unfence(db: &PgDb, tenant: &TenantId) -> Result<(), StoreError> {
    let lift = sqlx::query("DELETE FROM tenant_fences WHERE tenant_id = $1")
        .bind(tenant.as_str().to_owned());
    db.execute_for(tenant, lift).await.map(drop)
}

/// Fences the source of a move and waits until no write of the tenant can still land there:
/// the fence is inserted under the tenant's append lock (so the group commit holding it has
/// committed, and every later one sees the fence), and every transaction that was writing when
/// the fence committed has ended (a write that began before it, and did not see it, is among
/// them; see migration 0028).
async fn fence_source(
    db: &PgDb,
    tenant: &TenantId,
    reason: &str,
    now_us: u64,
) -> Result<(), StoreError> {
    let mut tx = db.tenant_tx(tenant).await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('auditex:append:' || $1, 0))")
        .bind(tenant.as_str())
        .execute(&mut *tx)
        .await?;
    fence_row(tenant, reason, now_us).execute(&mut *tx).await?;
    tx.commit().await?;
    let writing: Result<Vec<String>, sqlx::Error> =
        sqlx::query_scalar("SELECT x::text FROM pg_snapshot_xip(pg_current_snapshot()) AS x")
            .fetch_all(db.pool())
            .await;
    let waited = match writing {
        Ok(writing) => wait_for(db, &writing).await,
        Err(e) => Err(e.into()),
    };
    if let Err(e) = waited {
        unfence(db, tenant).await?;
        return Err(e);
    }
    Ok(())
}

/// Waits until none of the transactions `writing` (ids as text) is in progress.
async fn wait_for(db: &PgDb, writing: &[String]) -> Result<(), StoreError> {
    let started = std::time::Instant::now();
    loop {
        let still: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM unnest($1::xid8[]) AS x WHERE pg_xact_status(x) = 'in progress'",
        )
        .bind(writing)
        .fetch_one(db.pool())
        .await?;
        if still == 0 {
            return Ok(());
        }
        if started.elapsed() > IN_FLIGHT_WAIT_MAX {
            return Err(StoreError::Cells(format!(
                "{still} transaction(s) that were under way when the tenant was fenced did not \
                 end within {} s; nothing was moved",
                IN_FLIGHT_WAIT_MAX.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Copies `tenant`'s rows of `table` read in `from` (a transaction on the source) to `target`,
/// those matching `filter` too (rows already on the target are kept: an interrupted copy
/// resumes); returns how many rows were read.
async fn copy_rows(
    from: &mut Transaction<'static, Postgres>,
    target: &PgDb,
    tenant: &TenantId,
    table: &str,
    filter: &str,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<u64, StoreError> {
    // Each row as JSON, which `json_populate_recordset` turns back into the same row type on
    // the target: every column, whatever the table, with the database's own text forms.
    let select =
        format!("SELECT row_to_json(t)::text FROM {table} AS t WHERE tenant_id = $1{filter}");
    // The rows that may change once written take the source's columns again (a key's end and
    // sealing, a hold's lifting, who may read the tiles); the rest never change once written, or
    // are deleted on the target and copied again whole (`REPLACED_WHOLE`).
    let conflict = match table {
        "signing_keys" => {
            "ON CONFLICT (tenant_id, key_id) DO UPDATE SET until_seq = EXCLUDED.until_seq, sealed_secret = EXCLUDED.sealed_secret"
        }
        "legal_holds" => {
            "ON CONFLICT (tenant_id, hold_seq) DO UPDATE SET lifted_seq = EXCLUDED.lifted_seq, lifted_reason = EXCLUDED.lifted_reason, lifted_at_us = EXCLUDED.lifted_at_us"
        }
        "tenant_tile_access" => {
            "ON CONFLICT (tenant_id) DO UPDATE SET public = EXCLUDED.public, changed_at_us = EXCLUDED.changed_at_us"
        }
        _ => "ON CONFLICT DO NOTHING",
    };
    let insert = format!(
        "INSERT INTO {table} SELECT * FROM json_populate_recordset(NULL::{table}, $1::json) {conflict}"
    );
    let mut rows = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(select))
        .bind(tenant.as_str())
        .fetch(&mut **from);
    let mut batch: Vec<String> = Vec::with_capacity(COPY_BATCH_ROWS);
    let mut total = 0u64;
    loop {
        let row = rows.try_next().await?;
        let done = row.is_none();
        if let Some(r) = row {
            batch.push(r);
        }
        if batch.len() >= COPY_BATCH_ROWS || (done && !batch.is_empty()) {
            let json = format!("[{}]", batch.join(","));
            let mut to = past_fence(target, tenant).await?;
            sqlx::query(sqlx::AssertSqlSafe(insert.clone()))
                .bind(json)
                .execute(&mut *to)
                .await?;
            to.commit().await?;
            total += batch.len() as u64;
            batch.clear();
            progress(total);
        }
        if done {
            break;
        }
    }
    Ok(total)
}

/// A transaction of `tenant` on a move's target that writes past its fence (migration 0028).
async fn past_fence(
    target: &PgDb,
    tenant: &TenantId,
) -> Result<Transaction<'static, Postgres>, StoreError> {
    let mut to = target.tenant_tx(tenant).await?;
    sqlx::query("SELECT set_config('app.move_copy', 'on', true)")
        .execute(&mut *to)
        .await?;
    Ok(to)
}

/// Deletes `tenant`'s rows of `tables` on a move's target (rows an earlier, interrupted copy may
/// have left, which the copy about to be made replaces).
async fn clear_on_target(
    target: &PgDb,
    tenant: &TenantId,
    tables: &[&str],
) -> Result<(), StoreError> {
    let mut to = past_fence(target, tenant).await?;
    for table in tables {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE tenant_id = $1"
        )))
        .bind(tenant.as_str())
        .execute(&mut *to)
        .await?;
    }
    to.commit().await?;
    Ok(())
}

/// The tables whose rows the service deletes as well as writes (besides the personal data and
/// the views): a move deletes the tenant's rows of them on the target before copying them.
const REPLACED_WHOLE: &[&str] = &["tenant_witnesses", "retention_rules", "reerased_values"];

/// Whether `table` is one of the views (derived from the ledger, re-folded by the runner).
fn is_view(table: &str) -> bool {
    table == "projection_positions" || table.starts_with("proj_")
}

/// The append-only bulk of a tenant's ledger and what checking it needs (the signing keys, the
/// origin): copied before the source is fenced, with the personal data and the views.
const PRECOPIED_LEDGER: &[&str] = &[
    "tenants",
    "signing_keys",
    "tenant_origins",
    "records",
    "merkle_nodes",
    "checkpoints",
];

/// The tables a move copies before it fences the source, from one snapshot, in
/// [`TENANT_TABLES`]' order: the append-only bulk of the ledger, the personal data and its keys,
/// and the views with their positions.
fn precopied() -> impl Iterator<Item = &'static str> {
    TENANT_TABLES
        .iter()
        .copied()
        .filter(|t| PRECOPIED_LEDGER.contains(t) || PERSONAL.contains(t) || is_view(t))
}

/// How often, and how far apart, a move tries to take the tenant's move lock (see
/// `precopy_to`).
const MOVE_LOCK_TRIES: u32 = 10;
const MOVE_LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(100);

/// The move's lock: a connection of its own holding the session lock, closed (never returned
/// to the pool, where the lock would outlive the move) when the move ends.
struct MoveLock(std::sync::Mutex<Option<sqlx::pool::PoolConnection<Postgres>>>);

impl Drop for MoveLock {
    fn drop(&mut self) {
        let conn = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(conn) = conn {
            drop(conn.detach());
        }
    }
}

/// The copy made while the source still takes writes: one repeatable-read snapshot of the
/// tenant's append-only tables, personal data and views (rows and positions of one moment, so
/// the views on the target are exactly those of a prefix of the chain, which the runner
/// continues from). Rows an earlier attempt left on the target for the mutable tables are
/// deleted first.
async fn precopy(
    (source, from): (&PgDb, &str),
    (target, to): (&PgDb, &str),
    tenant: &TenantId,
    progress: &(dyn for<'p> Fn(&'p str, u64) + Send + Sync),
) -> Result<MovePrecopy, StoreError> {
    let mutable: Vec<&str> = precopied()
        .filter(|t| is_view(t) || PERSONAL.contains(t))
        .collect();
    clear_on_target(target, tenant, &mutable).await?;
    let begin = super::begin_for(tenant)?.replacen(
        "BEGIN;",
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;",
        1,
    );
    let mut snap = source.pool().begin_with(sqlx::AssertSqlSafe(begin)).await?;
    let (next_seq, checkpoint_max, reapplications): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT COALESCE(max(seq) + 1, 0) FROM records WHERE tenant_id = $1),
                (SELECT COALESCE(max(tree_size), -1) FROM checkpoints WHERE tenant_id = $1),
                (SELECT count(*) FROM erasure_reapplications WHERE tenant_id = $1)",
    )
    .bind(tenant.as_str())
    .fetch_one(&mut *snap)
    .await?;
    let mut views = Vec::new();
    for table in precopied() {
        let n = copy_rows(&mut snap, target, tenant, table, rows_filter(table), &|n| {
            progress(table, n);
        })
        .await?;
        if is_view(table) {
            views.push((table.to_owned(), n));
        }
    }
    snap.commit().await?;
    // The append-only rows the snapshot held cannot change: compared now, before the fence.
    let ends = (source, from);
    let copy = (target, to);
    compare(
        ends,
        copy,
        tenant,
        "records",
        &format!(" AND seq < {next_seq}"),
    )
    .await?;
    let checkpoints = compare(
        ends,
        copy,
        tenant,
        "checkpoints",
        &format!(" AND tree_size <= {checkpoint_max}"),
    )
    .await?;
    Ok(MovePrecopy {
        next_seq,
        checkpoint_max,
        reapplications,
        checkpoints,
        views,
        ..MovePrecopy::default()
    })
}

/// Compares `tenant`'s rows of `table` matching `filter` on the source and the target (both read
/// at once); an error naming both sides when they differ.
async fn compare(
    (source, from): (&PgDb, &str),
    (target, to): (&PgDb, &str),
    tenant: &TenantId,
    table: &str,
    filter: &str,
) -> Result<i64, StoreError> {
    let (a, b) = tokio::try_join!(
        digest(source, tenant, table, filter),
        digest(target, tenant, table, filter)
    )?;
    if a != b {
        return Err(StoreError::Cells(format!(
            "the copy of {table} differs from its source ({} rows and digest {} on cell {from}, \
             {} rows and digest {} on cell {to}); the tenant stays on cell {from}",
            a.0, a.1, b.0, b.1
        )));
    }
    Ok(a.0)
}

/// Which of a table's rows a move copies besides the tenant's: of the views, only the
/// generations in use (a retired one's rows, not yet purged, have no partition on the target).
fn rows_filter(table: &str) -> &'static str {
    if table.starts_with("proj_") {
        " AND generation IN (SELECT active_generation FROM projection_state UNION ALL SELECT building_generation FROM projection_state WHERE building_generation IS NOT NULL)"
    } else {
        ""
    }
}

/// The number of `tenant`'s rows in `table` on `db` and a digest of their contents: the sums of
/// the two halves of each row's MD5 (of its JSON), exact as numerics, so that neither the rows'
/// order nor the table's size matters (no row list is built). It finds a row copied wrongly,
/// lost or extra, which is what it is for; the chain's integrity is checked cryptographically
/// afterwards ([`crate::store::Store::move_tenant`]).
async fn digest(
    db: &PgDb,
    tenant: &TenantId,
    table: &str,
    filter: &str,
) -> Result<(i64, String), StoreError> {
    let mut tx = db.tenant_tx(tenant).await?;
    let q = format!(
        "SELECT count(*), COALESCE(sum(('x' || substr(h, 1, 16))::bit(64)::bigint::numeric), 0)::text || '/' || COALESCE(sum(('x' || substr(h, 17, 16))::bit(64)::bigint::numeric), 0)::text
         FROM (SELECT md5(row_to_json(t)::text) AS h FROM {table} AS t WHERE tenant_id = $1{filter}) AS d"
    );
    let out: (i64, String) = sqlx::query_as(sqlx::AssertSqlSafe(q))
        .bind(tenant.as_str())
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(out)
}
