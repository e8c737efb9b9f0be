//! Where the projections' state lives: the `proj_*` tables beside the ledger, on both backends,
//! and the queries the API serves from them.
//!
//! [`Store`] implements [`ViewStore`] for the runner of the `projections` crate. The statements
//! both backends run alike are written once, generic over the backend, in `shared`; what one
//! backend does differently is its `Dialect`, beside the functions the store calls on it:
//! `sqlite_views` (SQLite's scalar `min`/`max`, its `INDEXED BY` hints, the chunked purge) and
//! `pg_views` (`LEAST`/`GREATEST`, the partitions of each generation, and plan modes and
//! key-by-key forms for the runner's statements — `generic_plans`, `pg_patch`, the decision
//! facts — which must not depend on statistics that lag behind). `QueryBuilder` writes each
//! backend's placeholders. On PostgreSQL every tenant-scoped statement runs in a transaction
//! that sets the tenant for row-level security, exactly as the ledger's do.

use std::collections::HashMap;

use ledger::record::EventType;
use ledger::types::{EventId, TenantId};
use projections::runner::{ProjectionState, Stuck, TargetPage, ViewStore};
use projections::{DecisionFacts, Event, Views};

use super::backend::{LedgerBackend as _, ViewBackend};
use super::postgres::PgDb;
use super::sqlite::SqliteDb;
pub use super::view_query::{
    APPROVAL_OUTCOMES, CHART_DAYS_MAX, CHART_OUTCOMES_MAX, CHART_VERSIONS_MAX, ChartWindow, DAY_US,
    DashboardCharts, DecisionQuery, ModelCharts, OutcomeDays, OutcomeMix, OversightQuery,
    PAGE_ROWS_DEFAULT, PAGE_ROWS_MAX, Page, SCORE_BINS, ScoreHistogram, VersionDays,
};
use super::{Store, StoreError};

/// Below this many decisions in a decision-time range, a search reads the range by its index
/// and sorts it rather than walking the view in sequence order (see `narrow_decided_range`).
const SORTED_SEARCH_ROWS_MAX: i64 = 50_000;

/// Rows per multi-row INSERT: well under both backends' bind-parameter limits (32766 on
/// SQLite, 65535 on PostgreSQL) for the widest table (21 columns).
const INSERT_CHUNK_ROWS: usize = 500;

/// Rows deleted per transaction when a retired generation is purged, so that the purge never
/// holds the (SQLite) write lock for long.
const PURGE_CHUNK_ROWS: i64 = 5000;

/// The view tables and their key columns after `(generation, tenant_id)`.
const TABLE_KEYS: &[(&str, &str)] = &[
    ("proj_decisions", "seq"),
    ("proj_models", "model_id, model_version"),
    ("proj_model_outcomes", "model_id, model_version, outcome"),
    ("proj_oversight", "seq"),
    ("proj_subjects", "bucket, subject_ref, seq"),
    ("proj_daily", "day, model_id, model_version, outcome"),
];

fn page_of<T>(mut rows: Vec<T>, limit: u32, seq: impl Fn(&T) -> u64) -> Page<T> {
    let limit = limit as usize;
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|r| seq(r).to_string())
    } else {
        None
    };
    Page {
        items: rows,
        next_cursor,
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("projection row: {what}: {e}"))
}

fn event_id(text: &str) -> Result<EventId, StoreError> {
    EventId::parse(text).map_err(|e| corrupt("event id", e))
}

fn uint(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|e| corrupt("negative number", e))
}

type EventTuple = (i64, String, String, i64, String);

fn to_event(t: EventTuple) -> Result<Event, StoreError> {
    let payload: serde_json::Value =
        serde_json::from_str(&t.4).map_err(|e| corrupt("payload", e))?;
    let serde_json::Value::Object(payload) = payload else {
        return Err(corrupt("payload", "not an object"));
    };
    Ok(Event {
        seq: uint(t.0)?,
        event_id: event_id(&t.1)?,
        event_type: EventType::parse(&t.2).map_err(|e| corrupt("event type", e))?,
        captured_at_us: t.3,
        payload,
    })
}

/// Below this many rows a read is parsed where it was fetched.
const BLOCKING_PARSE_ROWS_MIN: usize = 64;

/// Parses a read of records into events: their JSON payloads, thousands at a time while the
/// views catch up, so on the blocking pool rather than on an async worker that serves requests.
async fn to_events(rows: Vec<EventTuple>) -> Result<Vec<Event>, StoreError> {
    if rows.len() < BLOCKING_PARSE_ROWS_MIN {
        return rows.into_iter().map(to_event).collect();
    }
    tokio::task::spawn_blocking(move || rows.into_iter().map(to_event).collect())
        .await
        .map_err(|e| StoreError::Corrupt(format!("parsing records failed: {e}")))?
}

const DECISION_COLUMNS: &str = "event_id, seq, model_id, model_version, outcome, current_outcome, score, subject_ref, decided_at_us, captured_at_us, oversight_mode, status, reviews, overrides, contests, explanation_requests, submissions, last_reviewer, last_event_seq";

mod charts_sql;
mod shared;

pub(crate) mod pg_views;
pub(crate) mod sqlite_views;

use pg_views::pg_drop_generation;
use shared::Sql;
use sqlite_views::sqlite_purge_chunk;
use sqlx::{Postgres, Sqlite};

impl From<projections::runner::FoldPanicked> for StoreError {
    fn from(e: projections::runner::FoldPanicked) -> Self {
        StoreError::ProjectionPanicked(e.to_string())
    }
}

// The views behind the storage seam: each backend opens the transaction a view statement runs in
// and calls its own module of view SQL (`sqlite_views`, `pg_views`).

type SqliteTx = sqlx::Transaction<'static, sqlx::Sqlite>;
type PgTx = sqlx::Transaction<'static, sqlx::Postgres>;

impl SqliteDb {
    /// A transaction for view statements: `BEGIN IMMEDIATE` on the views file's single writer
    /// for a write (the write lock is taken up front, so it cannot fail half-way for a busy
    /// database; it is the views file's lock, not the ledger's), a read transaction on the
    /// reader pool otherwise.
    async fn view_tx(&self, write: bool) -> Result<SqliteTx, StoreError> {
        Ok(if write {
            self.views_writer_pool()
                .begin_with("BEGIN IMMEDIATE")
                .await?
        } else {
            self.reader_pool().begin().await?
        })
    }
}

impl PgDb {
    /// A transaction for view statements, with the tenant set for row-level security when the
    /// statements touch a tenant's rows. A tenant's view rows live beside its ledger, on its
    /// cell (`postgres/cells.rs`); the projections' state is the home database's, copied to
    /// every cell.
    async fn view_tx(&self, tenant: Option<&TenantId>) -> Result<PgTx, StoreError> {
        match tenant {
            Some(t) => self.ledger_tx(t).await,
            None => Ok(self.pool().begin().await?),
        }
    }
}

#[async_trait::async_trait]
impl ViewBackend for SqliteDb {
    async fn view_states(&self) -> Result<Vec<ProjectionState>, StoreError> {
        let mut tx = self.view_tx(false).await?;
        let out = Sql::<Sqlite>::states(&mut tx).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn ensure_view(&self, name: &str, version: u32) -> Result<(), StoreError> {
        let mut tx = self.view_tx(true).await?;
        Sql::<Sqlite>::ensure(&mut tx, name, version).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn start_rebuild(
        &self,
        name: &str,
        version: u32,
    ) -> Result<(i64, Option<i64>), StoreError> {
        let mut tx = self.view_tx(true).await?;
        let out = Sql::<Sqlite>::start_rebuild(&mut tx, name, version).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn activate(&self, name: &str, generation: i64) -> Result<Option<i64>, StoreError> {
        let mut tx = self.view_tx(true).await?;
        let out = Sql::<Sqlite>::activate(&mut tx, name, generation).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Every generation shares the tables on SQLite, whose views file has one writer: the rows
    /// go in chunks, so that pages are never held up for long.
    async fn purge_generation(
        &self,
        _name: &str,
        generation: i64,
        tables: &[&str],
        tenants: &[TenantId],
    ) -> Result<(), StoreError> {
        for tenant in tenants {
            for table in tables {
                let Some((_, keys)) = TABLE_KEYS.iter().find(|(t, _)| t == table) else {
                    continue;
                };
                loop {
                    let mut tx = self.view_tx(true).await?;
                    let deleted = sqlite_purge_chunk(
                        &mut tx,
                        (table, keys),
                        generation,
                        tenant,
                        PURGE_CHUNK_ROWS,
                    )
                    .await?;
                    tx.commit().await?;
                    if deleted == 0 {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    async fn purge_positions(
        &self,
        tenant: &TenantId,
        name: &str,
        generation: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.view_tx(true).await?;
        Sql::<Sqlite>::purge_positions(&mut tx, name, generation, tenant).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn positions(
        &self,
        tenant: &TenantId,
    ) -> Result<HashMap<(String, i64), u64>, StoreError> {
        let mut tx = self.view_tx(false).await?;
        let out = Sql::<Sqlite>::positions(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn stuck(&self, tenant: &TenantId) -> Result<Vec<Stuck>, StoreError> {
        let mut tx = self.view_tx(false).await?;
        let out = Sql::<Sqlite>::stuck(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn mark_stuck(
        &self,
        tenant: &TenantId,
        name: &str,
        generation: i64,
        seq: u64,
        error: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.view_tx(true).await?;
        Sql::<Sqlite>::mark_stuck(&mut tx, tenant, name, generation, seq, error).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn clear_stuck(&self, tenant: &TenantId, name: Option<&str>) -> Result<u64, StoreError> {
        let mut tx = self.view_tx(true).await?;
        let out = Sql::<Sqlite>::clear_stuck(&mut tx, tenant, name).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn events(
        &self,
        tenant: &TenantId,
        from: u64,
        limit: u64,
    ) -> Result<Vec<Event>, StoreError> {
        let mut tx = self.view_tx(false).await?;
        let rows = Sql::<Sqlite>::event_rows(&mut tx, tenant, from, limit).await?;
        tx.commit().await?;
        // Parsed once the read transaction is over, so that it does not wait for the parse.
        to_events(rows).await
    }

    async fn facts(
        &self,
        tenant: &TenantId,
        ids: &[EventId],
    ) -> Result<Vec<(EventId, DecisionFacts)>, StoreError> {
        let mut tx = self.view_tx(false).await?;
        let out = Sql::<Sqlite>::facts(&mut tx, tenant, ids).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// SQLite builds no per-generation indexes.
    async fn index_generation(&self, _name: &str, _generation: i64) -> Result<bool, StoreError> {
        Ok(false)
    }

    async fn optimize(&self) -> Result<(), StoreError> {
        let mut tx = self.view_tx(true).await?;
        sqlite_views::optimize(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// SQLite's statistics are counts, stale as soon as a view grows: every 100,000 records.
    fn optimize_every(&self) -> u64 {
        projections::runner::OPTIMIZE_EVERY_RECORDS
    }

    /// SQLite's views file has one writer.
    fn commit_lanes(&self) -> usize {
        1
    }

    async fn commit_pages(
        &self,
        tenant: &TenantId,
        pages: &[TargetPage],
    ) -> Result<bool, StoreError> {
        // Where the views will stand, and the hash the ledger stores for the last record they
        // will have applied: kept beside them, so that views built from another chain are
        // found when the store opens (`sqlite::open_views`).
        let to = pages.iter().map(|p| p.to).max().unwrap_or(0);
        let last_hash = match to.checked_sub(1) {
            Some(last) => Some(
                self.record_hashes(tenant, last, to)
                    .await?
                    .pop()
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!(
                            "record {last} of {tenant} is missing from the ledger"
                        ))
                    })?,
            ),
            None => None,
        };
        let started = std::time::Instant::now();
        let mut tx = self.view_tx(true).await?;
        let locked = started.elapsed();
        // A moved position must roll back what earlier pages of the same batch wrote.
        if Sql::<Sqlite>::commit(&mut tx, tenant, pages).await? {
            if let Some(hash) = &last_hash {
                super::sqlite::move_view_anchor(&mut tx, tenant, to, hash).await?;
            }
            tx.commit().await?;
            // How long a page waits for and holds the views file's one writer.
            tracing::debug!(
                tenant = %tenant,
                records = pages.iter().map(|p| p.to - p.from).max().unwrap_or(0),
                lock_us = u64::try_from(locked.as_micros()).unwrap_or(u64::MAX),
                held_us = u64::try_from((started.elapsed() - locked).as_micros()).unwrap_or(u64::MAX),
                "view pages written"
            );
            Ok(true)
        } else {
            tx.rollback().await?;
            Ok(false)
        }
    }

    async fn search_decisions(
        &self,
        tenant: &TenantId,
        query: &DecisionQuery,
    ) -> Result<Page<projections::DecisionRow>, StoreError> {
        let mut tx = self.view_tx(false).await?;
        let g = active_of(
            Sql::<Sqlite>::active(&mut tx, "decisions").await?,
            "decisions",
        )?;
        let out = Sql::<Sqlite>::search(&mut tx, g, tenant, query).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn decision_view(
        &self,
        tenant: &TenantId,
        id: EventId,
    ) -> Result<Option<(projections::DecisionRow, Vec<projections::OversightRow>)>, StoreError>
    {
        let mut tx = self.view_tx(false).await?;
        let g = active_of(
            Sql::<Sqlite>::active(&mut tx, "decisions").await?,
            "decisions",
        )?;
        let out = match Sql::<Sqlite>::decision_by_id(&mut tx, g, tenant, id).await? {
            None => None,
            Some(row) => {
                let o = active_of(
                    Sql::<Sqlite>::active(&mut tx, "oversight").await?,
                    "oversight",
                )?;
                let f = actions_of(id);
                let page = Sql::<Sqlite>::oversight_actions(&mut tx, o, tenant, &f).await?;
                Some((row, oldest_first(page)))
            }
        };
        tx.commit().await?;
        Ok(out)
    }

    async fn model_inventory(
        &self,
        tenant: &TenantId,
        model_id: Option<&str>,
    ) -> Result<Vec<projections::ModelRow>, StoreError> {
        let mut tx = self.view_tx(false).await?;
        let g = active_of(Sql::<Sqlite>::active(&mut tx, "models").await?, "models")?;
        let out = Sql::<Sqlite>::models(&mut tx, g, tenant, model_id).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn oversight_actions(
        &self,
        tenant: &TenantId,
        query: &OversightQuery,
    ) -> Result<Page<projections::OversightRow>, StoreError> {
        let mut tx = self.view_tx(false).await?;
        let g = active_of(
            Sql::<Sqlite>::active(&mut tx, "oversight").await?,
            "oversight",
        )?;
        let out = Sql::<Sqlite>::oversight_actions(&mut tx, g, tenant, query).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn subject_records(
        &self,
        tenant: &TenantId,
        subject_ref: &str,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Page<projections::SubjectRow>, StoreError> {
        let mut tx = self.view_tx(false).await?;
        let g = active_of(
            Sql::<Sqlite>::active(&mut tx, "subjects").await?,
            "subjects",
        )?;
        let out =
            Sql::<Sqlite>::subject_page(&mut tx, g, tenant, subject_ref, after, limit).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn daily_volumes(
        &self,
        tenant: &TenantId,
        from: &str,
        until: &str,
        model_id: Option<&str>,
    ) -> Result<Vec<projections::DailyRow>, StoreError> {
        let mut tx = self.view_tx(false).await?;
        let g = active_of(Sql::<Sqlite>::active(&mut tx, "daily").await?, "daily")?;
        let out = Sql::<Sqlite>::daily(&mut tx, g, tenant, from, until, model_id).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn dashboard_charts(
        &self,
        tenant: &TenantId,
        window: &ChartWindow,
    ) -> Result<DashboardCharts, StoreError> {
        let mut tx = self.view_tx(false).await?;
        let out = Sql::<Sqlite>::dashboard_charts(&mut tx, tenant, window).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn model_charts(
        &self,
        tenant: &TenantId,
        version: (&str, &str),
        window: &ChartWindow,
    ) -> Result<ModelCharts, StoreError> {
        let mut tx = self.view_tx(false).await?;
        let out = Sql::<Sqlite>::model_charts(&mut tx, tenant, version, window).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn dump_views(&self, tenant: &TenantId) -> Result<Views, StoreError> {
        let mut tx = self.view_tx(false).await?;
        let out = Sql::<Sqlite>::dump(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(out)
    }
}

#[async_trait::async_trait]
impl ViewBackend for PgDb {
    async fn view_states(&self) -> Result<Vec<ProjectionState>, StoreError> {
        let mut tx = self.view_tx(None).await?;
        let out = Sql::<Postgres>::states(&mut tx).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn ensure_view(&self, name: &str, version: u32) -> Result<(), StoreError> {
        let mut tx = self.view_tx(None).await?;
        Sql::<Postgres>::ensure(&mut tx, name, version).await?;
        tx.commit().await?;
        self.mirror_views().await
    }

    async fn start_rebuild(
        &self,
        name: &str,
        version: u32,
    ) -> Result<(i64, Option<i64>), StoreError> {
        let mut tx = self.view_tx(None).await?;
        let out = Sql::<Postgres>::start_rebuild(&mut tx, name, version).await?;
        tx.commit().await?;
        self.mirror_views().await?;
        Ok(out)
    }

    async fn activate(&self, name: &str, generation: i64) -> Result<Option<i64>, StoreError> {
        let mut tx = self.view_tx(None).await?;
        let out = Sql::<Postgres>::activate(&mut tx, name, generation).await?;
        tx.commit().await?;
        self.mirror_views().await?;
        Ok(out)
    }

    /// PostgreSQL keeps each generation in partitions of its own: they are dropped, every
    /// tenant's rows at once.
    async fn purge_generation(
        &self,
        name: &str,
        generation: i64,
        _tables: &[&str],
        _tenants: &[TenantId],
    ) -> Result<(), StoreError> {
        for db in self.every_cell() {
            let mut tx = db.view_tx(None).await?;
            pg_drop_generation(&mut tx, name, generation).await?;
            tx.commit().await?;
        }
        Ok(())
    }

    async fn purge_positions(
        &self,
        tenant: &TenantId,
        name: &str,
        generation: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.view_tx(Some(tenant)).await?;
        Sql::<Postgres>::purge_positions(&mut tx, name, generation, tenant).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn positions(
        &self,
        tenant: &TenantId,
    ) -> Result<HashMap<(String, i64), u64>, StoreError> {
        let mut tx = self.view_tx(Some(tenant)).await?;
        let out = Sql::<Postgres>::positions(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn stuck(&self, tenant: &TenantId) -> Result<Vec<Stuck>, StoreError> {
        let mut tx = self.view_tx(Some(tenant)).await?;
        let out = Sql::<Postgres>::stuck(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn mark_stuck(
        &self,
        tenant: &TenantId,
        name: &str,
        generation: i64,
        seq: u64,
        error: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.view_tx(Some(tenant)).await?;
        Sql::<Postgres>::mark_stuck(&mut tx, tenant, name, generation, seq, error).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn clear_stuck(&self, tenant: &TenantId, name: Option<&str>) -> Result<u64, StoreError> {
        let mut tx = self.view_tx(Some(tenant)).await?;
        let out = Sql::<Postgres>::clear_stuck(&mut tx, tenant, name).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn events(
        &self,
        tenant: &TenantId,
        from: u64,
        limit: u64,
    ) -> Result<Vec<Event>, StoreError> {
        let mut tx = self.view_tx(Some(tenant)).await?;
        let rows = Sql::<Postgres>::event_rows(&mut tx, tenant, from, limit).await?;
        tx.commit().await?;
        // Parsed once the read transaction is over, so that it does not wait for the parse.
        to_events(rows).await
    }

    async fn facts(
        &self,
        tenant: &TenantId,
        ids: &[EventId],
    ) -> Result<Vec<(EventId, DecisionFacts)>, StoreError> {
        let mut tx = self.view_tx(Some(tenant)).await?;
        let out = Sql::<Postgres>::facts(&mut tx, tenant, ids).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn index_generation(&self, name: &str, generation: i64) -> Result<bool, StoreError> {
        let mut built = false;
        for db in self.every_cell() {
            let mut tx = db.view_tx(None).await?;
            built |= pg_views::index_generation(&mut tx, name, generation).await?;
            tx.commit().await?;
        }
        Ok(built)
    }

    async fn optimize(&self) -> Result<(), StoreError> {
        for db in self.every_cell() {
            let mut tx = db.view_tx(None).await?;
            pg_views::optimize(&mut tx).await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// PostgreSQL scales its row estimates by a table's current size, and an `ANALYZE` there
    /// keeps a backend busy for seconds at millions of rows, beside the runner on the same
    /// cores: every 1,000,000 records, besides the refresh after a rebuild.
    fn optimize_every(&self) -> u64 {
        10 * projections::runner::OPTIMIZE_EVERY_RECORDS
    }

    /// PostgreSQL runs each transaction in a backend process of its own: two lanes let a page's
    /// decisions and the rest of its views be written on both cores.
    fn commit_lanes(&self) -> usize {
        2
    }

    async fn commit_pages(
        &self,
        tenant: &TenantId,
        pages: &[TargetPage],
    ) -> Result<bool, StoreError> {
        let mut tx = self.view_tx(Some(tenant)).await?;
        pg_views::page_settings(&mut tx).await?;
        // A moved position must roll back what earlier pages of the same batch wrote.
        if Sql::<Postgres>::commit(&mut tx, tenant, pages).await? {
            tx.commit().await?;
            Ok(true)
        } else {
            tx.rollback().await?;
            Ok(false)
        }
    }

    async fn search_decisions(
        &self,
        tenant: &TenantId,
        query: &DecisionQuery,
    ) -> Result<Page<projections::DecisionRow>, StoreError> {
        let mut tx = self.view_tx(Some(tenant)).await?;
        let g = active_of(
            Sql::<Postgres>::active(&mut tx, "decisions").await?,
            "decisions",
        )?;
        let out = Sql::<Postgres>::search(&mut tx, g, tenant, query).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn decision_view(
        &self,
        tenant: &TenantId,
        id: EventId,
    ) -> Result<Option<(projections::DecisionRow, Vec<projections::OversightRow>)>, StoreError>
    {
        let mut tx = self.view_tx(Some(tenant)).await?;
        let g = active_of(
            Sql::<Postgres>::active(&mut tx, "decisions").await?,
            "decisions",
        )?;
        let out = match Sql::<Postgres>::decision_by_id(&mut tx, g, tenant, id).await? {
            None => None,
            Some(row) => {
                let o = active_of(
                    Sql::<Postgres>::active(&mut tx, "oversight").await?,
                    "oversight",
                )?;
                let f = actions_of(id);
                let page = Sql::<Postgres>::oversight_actions(&mut tx, o, tenant, &f).await?;
                Some((row, oldest_first(page)))
            }
        };
        tx.commit().await?;
        Ok(out)
    }

    async fn model_inventory(
        &self,
        tenant: &TenantId,
        model_id: Option<&str>,
    ) -> Result<Vec<projections::ModelRow>, StoreError> {
        let mut tx = self.view_tx(Some(tenant)).await?;
        let g = active_of(Sql::<Postgres>::active(&mut tx, "models").await?, "models")?;
        let out = Sql::<Postgres>::models(&mut tx, g, tenant, model_id).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn oversight_actions(
        &self,
        tenant: &TenantId,
        query: &OversightQuery,
    ) -> Result<Page<projections::OversightRow>, StoreError> {
        let mut tx = self.view_tx(Some(tenant)).await?;
        let g = active_of(
            Sql::<Postgres>::active(&mut tx, "oversight").await?,
            "oversight",
        )?;
        let out = Sql::<Postgres>::oversight_actions(&mut tx, g, tenant, query).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn subject_records(
        &self,
        tenant: &TenantId,
        subject_ref: &str,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Page<projections::SubjectRow>, StoreError> {
        let mut tx = self.view_tx(Some(tenant)).await?;
        let g = active_of(
            Sql::<Postgres>::active(&mut tx, "subjects").await?,
            "subjects",
        )?;
        let out =
            Sql::<Postgres>::subject_page(&mut tx, g, tenant, subject_ref, after, limit).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn daily_volumes(
        &self,
        tenant: &TenantId,
        from: &str,
        until: &str,
        model_id: Option<&str>,
    ) -> Result<Vec<projections::DailyRow>, StoreError> {
        let mut tx = self.view_tx(Some(tenant)).await?;
        let g = active_of(Sql::<Postgres>::active(&mut tx, "daily").await?, "daily")?;
        let out = Sql::<Postgres>::daily(&mut tx, g, tenant, from, until, model_id).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn dashboard_charts(
        &self,
        tenant: &TenantId,
        window: &ChartWindow,
    ) -> Result<DashboardCharts, StoreError> {
        let mut tx = self.view_tx(Some(tenant)).await?;
        let out = Sql::<Postgres>::dashboard_charts(&mut tx, tenant, window).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn model_charts(
        &self,
        tenant: &TenantId,
        version: (&str, &str),
        window: &ChartWindow,
    ) -> Result<ModelCharts, StoreError> {
        let mut tx = self.view_tx(Some(tenant)).await?;
        let out = Sql::<Postgres>::model_charts(&mut tx, tenant, version, window).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn dump_views(&self, tenant: &TenantId) -> Result<Views, StoreError> {
        let mut tx = self.view_tx(Some(tenant)).await?;
        let out = Sql::<Postgres>::dump(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(out)
    }
}

/// The active generation of a view, or the error of a query whose view has no state yet.
fn active_of(active: Option<i64>, name: &str) -> Result<i64, StoreError> {
    active.ok_or_else(|| {
        StoreError::ViewNotReady(format!(
            "the {name} view has not been built yet; the service builds it on startup"
        ))
    })
}

/// The query of every oversight action on one decision (at most a page).
fn actions_of(id: EventId) -> OversightQuery {
    OversightQuery {
        decision_id: Some(id),
        limit: PAGE_ROWS_MAX,
        ..OversightQuery::default()
    }
}

/// A page of oversight actions (newest first) as a list, oldest first.
fn oldest_first(page: Page<projections::OversightRow>) -> Vec<projections::OversightRow> {
    let mut actions = page.items;
    actions.reverse();
    actions
}

impl ViewStore for Store {
    type Error = StoreError;

    async fn states(&self) -> Result<Vec<ProjectionState>, StoreError> {
        self.backend().view_states().await
    }

    async fn ensure(&self, name: &str, version: u32) -> Result<(), StoreError> {
        self.backend().ensure_view(name, version).await
    }

    async fn start_rebuild(&self, name: &str, version: u32) -> Result<i64, StoreError> {
        let (generation, unfinished) = self.backend().start_rebuild(name, version).await?;
        // An unfinished building generation is abandoned: delete what it wrote.
        if let Some(old) = unfinished {
            self.purge(name, old).await?;
        }
        Ok(generation)
    }

    async fn activate(&self, name: &str, generation: i64) -> Result<Option<i64>, StoreError> {
        self.backend().activate(name, generation).await
    }

    async fn purge(&self, name: &str, generation: i64) -> Result<(), StoreError> {
        let Some(projection) = projections::by_name(name) else {
            return Ok(());
        };
        let tenants = self.tenants().await?;
        self.backend()
            .purge_generation(name, generation, projection.tables(), &tenants)
            .await?;
        for tenant in &tenants {
            self.backend()
                .purge_positions(tenant, name, generation)
                .await?;
        }
        Ok(())
    }

    async fn tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        Store::tenants(self).await
    }

    async fn chain_length(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        Ok(self.tree_size(tenant).await?.get())
    }

    async fn positions(
        &self,
        tenant: &TenantId,
    ) -> Result<HashMap<(String, i64), u64>, StoreError> {
        self.backend().positions(tenant).await
    }

    async fn stuck(&self, tenant: &TenantId) -> Result<Vec<Stuck>, StoreError> {
        self.backend().stuck(tenant).await
    }

    async fn mark_stuck(
        &self,
        tenant: &TenantId,
        name: &str,
        generation: i64,
        seq: u64,
        error: &str,
    ) -> Result<(), StoreError> {
        self.backend()
            .mark_stuck(tenant, name, generation, seq, error)
            .await
    }

    async fn events(
        &self,
        tenant: &TenantId,
        from: u64,
        limit: u64,
    ) -> Result<Vec<Event>, StoreError> {
        self.backend().events(tenant, from, limit).await
    }

    async fn facts(
        &self,
        tenant: &TenantId,
        ids: Vec<EventId>,
    ) -> Result<Vec<(EventId, DecisionFacts)>, StoreError> {
        self.backend().facts(tenant, &ids).await
    }

    async fn index_generation(&self, name: &str, generation: i64) -> Result<bool, StoreError> {
        self.backend().index_generation(name, generation).await
    }

    async fn optimize(&self) -> Result<(), StoreError> {
        self.backend().optimize().await
    }

    fn optimize_every(&self) -> u64 {
        self.backend().optimize_every()
    }

    fn commit_lanes(&self) -> usize {
        self.backend().commit_lanes()
    }

    async fn commit(&self, tenant: &TenantId, pages: Vec<TargetPage>) -> Result<bool, StoreError> {
        self.backend().commit_pages(tenant, &pages).await
    }
}

impl Store {
    /// Every stuck projection generation of every tenant (or of `tenant`), for
    /// `auditex projections stuck`.
    ///
    /// # Errors
    /// A database error.
    pub async fn stuck_projections(
        &self,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<Stuck>, StoreError> {
        let tenants = match tenant {
            Some(t) => vec![t.clone()],
            None => self.tenants().await?,
        };
        let mut all = Vec::new();
        for tenant in &tenants {
            all.extend(ViewStore::stuck(self, tenant).await?);
        }
        Ok(all)
    }

    /// Clears the stuck marks of every tenant (or of `tenant`) and projection (or of `name`),
    /// so that the runner tries those records again; how many marks it cleared.
    ///
    /// # Errors
    /// A database error.
    pub async fn clear_stuck(
        &self,
        tenant: Option<&TenantId>,
        name: Option<&str>,
    ) -> Result<u64, StoreError> {
        let tenants = match tenant {
            Some(t) => vec![t.clone()],
            None => self.tenants().await?,
        };
        let mut cleared = 0;
        for tenant in &tenants {
            cleared += self.backend().clear_stuck(tenant, name).await?;
        }
        Ok(cleared)
    }

    /// Searches the decisions view.
    ///
    /// # Errors
    /// A database error, or [`StoreError::ViewNotReady`] before the view exists.
    pub async fn search_decisions(
        &self,
        tenant: &TenantId,
        query: &DecisionQuery,
    ) -> Result<Page<projections::DecisionRow>, StoreError> {
        self.backend().search_decisions(tenant, query).await
    }

    /// One decision of the decisions view, with its oversight actions (oldest first).
    ///
    /// # Errors
    /// A database error, or [`StoreError::ViewNotReady`] before the views exist.
    pub async fn decision_view(
        &self,
        tenant: &TenantId,
        id: EventId,
    ) -> Result<Option<(projections::DecisionRow, Vec<projections::OversightRow>)>, StoreError>
    {
        self.backend().decision_view(tenant, id).await
    }

    /// The model inventory, optionally of one model id.
    ///
    /// # Errors
    /// A database error, or [`StoreError::ViewNotReady`] before the view exists.
    pub async fn model_inventory(
        &self,
        tenant: &TenantId,
        model_id: Option<&str>,
    ) -> Result<Vec<projections::ModelRow>, StoreError> {
        self.backend().model_inventory(tenant, model_id).await
    }

    /// Oversight actions, newest first.
    ///
    /// # Errors
    /// A database error, or [`StoreError::ViewNotReady`] before the view exists.
    pub async fn oversight_actions(
        &self,
        tenant: &TenantId,
        query: &OversightQuery,
    ) -> Result<Page<projections::OversightRow>, StoreError> {
        self.backend().oversight_actions(tenant, query).await
    }

    /// Every record concerning a subject, oldest first.
    ///
    /// # Errors
    /// A database error, or [`StoreError::ViewNotReady`] before the view exists.
    pub async fn subject_records(
        &self,
        tenant: &TenantId,
        subject_ref: &str,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Page<projections::SubjectRow>, StoreError> {
        self.backend()
            .subject_records(tenant, subject_ref, after, limit)
            .await
    }

    /// Daily volumes between two days (inclusive, `YYYY-MM-DD`).
    ///
    /// # Errors
    /// A database error, or [`StoreError::ViewNotReady`] before the view exists.
    pub async fn daily_volumes(
        &self,
        tenant: &TenantId,
        from: &str,
        until: &str,
        model_id: Option<&str>,
    ) -> Result<Vec<projections::DailyRow>, StoreError> {
        self.backend()
            .daily_volumes(tenant, from, until, model_id)
            .await
    }

    /// What the dashboard's charts show over `window`: decisions per day by outcome, the
    /// busiest model versions' decisions and approvals per day, overrides per day.
    ///
    /// # Errors
    /// A database error, or [`StoreError::ViewNotReady`] before the views exist.
    pub async fn dashboard_charts(
        &self,
        tenant: &TenantId,
        window: &ChartWindow,
    ) -> Result<DashboardCharts, StoreError> {
        self.backend().dashboard_charts(tenant, window).await
    }

    /// What a model version's charts show over `window`: decisions per day by outcome, those
    /// overridden since, and the histogram of their scores.
    ///
    /// # Errors
    /// A database error, or [`StoreError::ViewNotReady`] before the views exist.
    pub async fn model_charts(
        &self,
        tenant: &TenantId,
        model_id: &str,
        model_version: &str,
        window: &ChartWindow,
    ) -> Result<ModelCharts, StoreError> {
        self.backend()
            .model_charts(tenant, (model_id, model_version), window)
            .await
    }

    /// Every row of every view of a tenant (tests compare it with a recomputation).
    ///
    /// # Errors
    /// A database error.
    pub async fn dump_views(&self, tenant: &TenantId) -> Result<Views, StoreError> {
        self.backend().dump_views(tenant).await
    }
}

/// One projection's state for one tenant (the API's `/v1/projections` and the portal's
/// dashboard show it).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProjectionStatus {
    /// Name.
    pub name: String,
    /// The version this build maintains.
    pub version: u32,
    /// The generation queries read.
    pub active_generation: i64,
    /// The version that built it.
    pub active_version: u32,
    /// Records of the tenant's chain not yet applied.
    pub lag_records: u64,
    /// Age of the oldest record not yet applied, in seconds.
    pub lag_seconds: f64,
    /// A rebuild in progress: records applied of records to apply.
    pub rebuilding: Option<String>,
    /// 1 when this projection is stuck for the tenant, else 0.
    pub stuck_tenants: u64,
    /// The sequence number of the record the projection is stuck at.
    pub stuck_at_seq: Option<u64>,
}

impl Store {
    /// The views' state for one tenant: how far behind its ledger each one is, and any rebuild.
    ///
    /// # Errors
    /// A database error.
    pub async fn projection_status(
        &self,
        tenant: &ledger::types::TenantId,
    ) -> Result<Vec<ProjectionStatus>, StoreError> {
        let store = self;
        use projections::runner::ViewStore;
        let states = store.states().await?;
        let length = store.chain_length(tenant).await?;
        let positions = store.positions(tenant).await?;
        let at = |name: &str, generation: i64| {
            positions
                .get(&(name.to_owned(), generation))
                .copied()
                .unwrap_or(0)
        };
        let stuck = store.stuck(tenant).await?;
        let mut out = Vec::new();
        for s in states {
            let applied = at(&s.name, s.active_generation);
            let stuck_at_seq = stuck
                .iter()
                .find(|m| m.name == s.name && m.generation == s.active_generation)
                .map(|m| m.seq);
            let lag_seconds = match ledger::types::Sequence::new(applied) {
                Ok(seq) if applied < length => store.record(tenant, seq).await?.map_or(0.0, |r| {
                    let now = u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap_or(0);
                    now.saturating_sub(r.captured_at_us.unix_micros()) as f64 / 1e6
                }),
                _ => 0.0,
            };
            out.push(ProjectionStatus {
                version: projections::by_name(&s.name).map_or(0, |p| p.version()),
                active_generation: s.active_generation,
                active_version: s.active_version,
                lag_records: length.saturating_sub(applied),
                lag_seconds,
                rebuilding: s.building.map(|(g, _)| {
                    format!(
                        "generation {g}: {} of {length} records",
                        at(&s.name, g).min(length)
                    )
                }),
                stuck_tenants: u64::from(stuck_at_seq.is_some()),
                stuck_at_seq,
                name: s.name,
            });
        }
        Ok(out)
    }
}
