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
use serde::Serialize;

use super::{Db, Store, StoreError};

/// Most rows one search page returns.
pub const PAGE_ROWS_MAX: u32 = 500;

/// Rows one page returns when the caller does not say.
pub const PAGE_ROWS_DEFAULT: u32 = 50;

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
    ("proj_subjects", "subject_ref, seq"),
    ("proj_daily", "day, model_id, model_version, outcome"),
];

/// A search over the decisions view. Every filter is optional; results come in sequence order
/// (newest first unless `ascending`), and `after` is the cursor: the last sequence number of the
/// previous page.
#[derive(Debug, Clone, Default)]
pub struct DecisionQuery {
    /// Model id.
    pub model_id: Option<String>,
    /// Model version.
    pub model_version: Option<String>,
    /// Outcome in force (after overrides).
    pub outcome: Option<String>,
    /// The model's own outcome.
    pub model_outcome: Option<String>,
    /// Status.
    pub status: Option<String>,
    /// Subject reference.
    pub subject_ref: Option<String>,
    /// Decided at or after (µs).
    pub decided_from: Option<i64>,
    /// Decided before (µs).
    pub decided_until: Option<i64>,
    /// Captured at or after (µs).
    pub captured_from: Option<i64>,
    /// Captured before (µs).
    pub captured_until: Option<i64>,
    /// Score at least.
    pub score_min: Option<f64>,
    /// Score at most.
    pub score_max: Option<f64>,
    /// Oldest first.
    pub ascending: bool,
    /// Cursor.
    pub after: Option<u64>,
    /// Page size (1..=[`PAGE_ROWS_MAX`]).
    pub limit: u32,
}

/// A filter over the oversight actions.
#[derive(Debug, Clone, Default)]
pub struct OversightQuery {
    /// Only actions on this decision.
    pub decision_id: Option<EventId>,
    /// Only actions by this person.
    pub actor: Option<String>,
    /// Only this kind (`human_review`, `override`, `contest`, `explanation_request`).
    pub event_type: Option<String>,
    /// Cursor: last sequence number of the previous page (newest first).
    pub after: Option<u64>,
    /// Page size.
    pub limit: u32,
}

/// One page of rows and the cursor of the next page, if there is one.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    /// The rows.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

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

const DECISION_COLUMNS: &str = "event_id, seq, model_id, model_version, outcome, current_outcome, score, subject_ref, decided_at_us, captured_at_us, oversight_mode, status, reviews, overrides, contests, explanation_requests, submissions, last_reviewer, last_event_seq";

mod shared;

pub(crate) mod pg_views;
pub(crate) mod sqlite_views;

use pg_views::pg_drop_generation;
use sqlite_views::sqlite_purge_chunk;

/// Runs `$body` in a transaction on whichever backend is in use: on SQLite a read transaction on
/// the reader pool, or `BEGIN IMMEDIATE` on the single writer; on PostgreSQL a transaction with
/// the tenant set for row-level security when one is given.
macro_rules! in_tx {
    ($store:expr, $tenant:expr, $write:expr, |$tx:ident, $m:ident| $body:expr) => {
        match $store.db() {
            Db::Sqlite(b) => {
                let mut $tx = if $write {
                    b.writer_pool().begin_with("BEGIN IMMEDIATE").await?
                } else {
                    b.reader_pool().begin().await?
                };
                use sqlite_views as $m;
                let out = $body;
                $tx.commit().await?;
                out
            }
            Db::Postgres(b) => {
                let mut $tx = b.pool().begin().await?;
                let tenant: Option<&TenantId> = $tenant;
                if let Some(t) = tenant {
                    super::postgres::set_tenant(&mut $tx, t).await?;
                }
                use pg_views as $m;
                let out = $body;
                $tx.commit().await?;
                out
            }
        }
    };
}

impl From<projections::runner::FoldPanicked> for StoreError {
    fn from(e: projections::runner::FoldPanicked) -> Self {
        StoreError::ProjectionPanicked(e.to_string())
    }
}

impl ViewStore for Store {
    type Error = StoreError;

    async fn states(&self) -> Result<Vec<ProjectionState>, StoreError> {
        Ok(in_tx!(self, None, false, |tx, m| m::states(&mut tx).await?))
    }

    async fn ensure(&self, name: &str, version: u32) -> Result<(), StoreError> {
        in_tx!(self, None, true, |tx, m| m::ensure(&mut tx, name, version)
            .await?);
        Ok(())
    }

    async fn start_rebuild(&self, name: &str, version: u32) -> Result<i64, StoreError> {
        let (generation, unfinished) = in_tx!(self, None, true, |tx, m| m::start_rebuild(
            &mut tx, name, version
        )
        .await?);
        // An unfinished building generation is abandoned: delete what it wrote.
        if let Some(old) = unfinished {
            self.purge(name, old).await?;
        }
        Ok(generation)
    }

    async fn activate(&self, name: &str, generation: i64) -> Result<Option<i64>, StoreError> {
        Ok(in_tx!(self, None, true, |tx, m| m::activate(
            &mut tx, name, generation
        )
        .await?))
    }

    async fn purge(&self, name: &str, generation: i64) -> Result<(), StoreError> {
        let Some(projection) = projections::by_name(name) else {
            return Ok(());
        };
        let tenants = self.tenants().await?;
        match self.db() {
            // PostgreSQL keeps each generation in partitions of its own: they are dropped.
            Db::Postgres(b) => {
                let mut tx = b.pool().begin().await?;
                pg_drop_generation(&mut tx, name, generation).await?;
                tx.commit().await?;
            }
            // SQLite has one writer: the purge goes in chunks so that appends and pages are
            // never held up for long.
            Db::Sqlite(b) => {
                for tenant in &tenants {
                    for table in projection.tables() {
                        let Some((_, keys)) = TABLE_KEYS.iter().find(|(t, _)| t == table) else {
                            continue;
                        };
                        loop {
                            let mut tx = b.writer_pool().begin_with("BEGIN IMMEDIATE").await?;
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
            }
        }
        for tenant in &tenants {
            in_tx!(self, Some(tenant), true, |tx, m| m::purge_positions(
                &mut tx, name, generation, tenant
            )
            .await?);
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
        Ok(in_tx!(self, Some(tenant), false, |tx, m| m::positions(
            &mut tx, tenant
        )
        .await?))
    }

    async fn stuck(&self, tenant: &TenantId) -> Result<Vec<Stuck>, StoreError> {
        Ok(in_tx!(self, Some(tenant), false, |tx, m| m::stuck(
            &mut tx, tenant
        )
        .await?))
    }

    async fn mark_stuck(
        &self,
        tenant: &TenantId,
        name: &str,
        generation: i64,
        seq: u64,
        error: &str,
    ) -> Result<(), StoreError> {
        in_tx!(self, Some(tenant), true, |tx, m| m::mark_stuck(
            &mut tx, tenant, name, generation, seq, error
        )
        .await?);
        Ok(())
    }

    async fn events(
        &self,
        tenant: &TenantId,
        from: u64,
        limit: u64,
    ) -> Result<Vec<Event>, StoreError> {
        Ok(in_tx!(self, Some(tenant), false, |tx, m| m::events(
            &mut tx, tenant, from, limit
        )
        .await?))
    }

    async fn facts(
        &self,
        tenant: &TenantId,
        ids: Vec<EventId>,
    ) -> Result<Vec<(EventId, DecisionFacts)>, StoreError> {
        Ok(in_tx!(self, Some(tenant), false, |tx, m| m::facts(
            &mut tx, tenant, &ids
        )
        .await?))
    }

    async fn index_generation(&self, name: &str, generation: i64) -> Result<bool, StoreError> {
        if let Db::Sqlite(_) = self.db() {
            return Ok(false);
        }
        Ok(in_tx!(self, None, true, |tx, m| m::index_generation(
            &mut tx, name, generation
        )
        .await?))
    }

    async fn optimize(&self) -> Result<(), StoreError> {
        in_tx!(self, None, true, |tx, m| m::optimize(&mut tx).await?);
        Ok(())
    }

    /// SQLite's statistics are counts, stale as soon as a view grows: every 100,000 records.
    /// PostgreSQL scales its row estimates by a table's current size, and an `ANALYZE` there
    /// keeps a backend busy for seconds at millions of rows, beside the runner on the same
    /// cores: every 1,000,000 records, besides the refresh after a rebuild.
    fn optimize_every(&self) -> u64 {
        match self.db() {
            Db::Sqlite(_) => projections::runner::OPTIMIZE_EVERY_RECORDS,
            Db::Postgres(_) => 10 * projections::runner::OPTIMIZE_EVERY_RECORDS,
        }
    }

    /// PostgreSQL runs each transaction in a backend process of its own: two lanes let a page's
    /// decisions and the rest of its views be written on both cores. SQLite has one writer.
    fn commit_lanes(&self) -> usize {
        match self.db() {
            Db::Sqlite(_) => 1,
            Db::Postgres(_) => 2,
        }
    }

    async fn commit(&self, tenant: &TenantId, pages: Vec<TargetPage>) -> Result<bool, StoreError> {
        // Written out rather than with `in_tx!`: a moved position must roll back what earlier
        // pages of the same batch wrote.
        macro_rules! run {
            ($tx:ident, $m:ident) => {{
                if $m::commit(&mut $tx, tenant, &pages).await? {
                    $tx.commit().await?;
                    Ok(true)
                } else {
                    $tx.rollback().await?;
                    Ok(false)
                }
            }};
        }
        match self.db() {
            Db::Sqlite(b) => {
                let mut tx = b.writer_pool().begin_with("BEGIN IMMEDIATE").await?;
                run!(tx, sqlite_views)
            }
            Db::Postgres(b) => {
                let mut tx = b.pool().begin().await?;
                super::postgres::set_tenant(&mut tx, tenant).await?;
                // A page need not wait for its WAL flush: a page lost in a crash is applied
                // again from the position committed with it, and nothing acknowledged to a
                // client depends on it. (The ledger's own commits stay synchronous.)
                sqlx::query("SET LOCAL synchronous_commit = off")
                    .execute(&mut *tx)
                    .await?;
                // The follow-up UPDATE is planned with its page's values (see `pg_patch`).
                sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan")
                    .execute(&mut *tx)
                    .await?;
                run!(tx, pg_views)
            }
        }
    }
}

/// The error of a query whose view has no state yet.
fn unavailable(name: &str) -> StoreError {
    StoreError::ViewNotReady(format!(
        "the {name} view has not been built yet; the service builds it on startup"
    ))
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
            cleared += in_tx!(self, Some(tenant), true, |tx, m| m::clear_stuck(
                &mut tx, tenant, name
            )
            .await?);
        }
        Ok(cleared)
    }

    /// Searches the decisions view.
    ///
    /// # Errors
    /// A database error, or [`StoreError::OutOfRange`] before the view exists.
    pub async fn search_decisions(
        &self,
        tenant: &TenantId,
        query: &DecisionQuery,
    ) -> Result<Page<projections::DecisionRow>, StoreError> {
        Ok(in_tx!(self, Some(tenant), false, |tx, m| {
            let g = m::active(&mut tx, "decisions")
                .await?
                .ok_or_else(|| unavailable("decisions"))?;
            m::search(&mut tx, g, tenant, query).await?
        }))
    }

    /// One decision of the decisions view, with its oversight actions (oldest first).
    ///
    /// # Errors
    /// A database error, or [`StoreError::OutOfRange`] before the views exist.
    pub async fn decision_view(
        &self,
        tenant: &TenantId,
        id: EventId,
    ) -> Result<Option<(projections::DecisionRow, Vec<projections::OversightRow>)>, StoreError>
    {
        Ok(in_tx!(self, Some(tenant), false, |tx, m| {
            let g = m::active(&mut tx, "decisions")
                .await?
                .ok_or_else(|| unavailable("decisions"))?;
            match m::decision_by_id(&mut tx, g, tenant, id).await? {
                None => None,
                Some(row) => {
                    let o = m::active(&mut tx, "oversight")
                        .await?
                        .ok_or_else(|| unavailable("oversight"))?;
                    let f = OversightQuery {
                        decision_id: Some(id),
                        limit: PAGE_ROWS_MAX,
                        ..OversightQuery::default()
                    };
                    let mut actions = m::oversight_actions(&mut tx, o, tenant, &f).await?.items;
                    actions.reverse();
                    Some((row, actions))
                }
            }
        }))
    }

    /// The model inventory, optionally of one model id.
    ///
    /// # Errors
    /// A database error, or [`StoreError::OutOfRange`] before the view exists.
    pub async fn model_inventory(
        &self,
        tenant: &TenantId,
        model_id: Option<&str>,
    ) -> Result<Vec<projections::ModelRow>, StoreError> {
        Ok(in_tx!(self, Some(tenant), false, |tx, m| {
            let g = m::active(&mut tx, "models")
                .await?
                .ok_or_else(|| unavailable("models"))?;
            m::models(&mut tx, g, tenant, model_id).await?
        }))
    }

    /// Oversight actions, newest first.
    ///
    /// # Errors
    /// A database error, or [`StoreError::OutOfRange`] before the view exists.
    pub async fn oversight_actions(
        &self,
        tenant: &TenantId,
        query: &OversightQuery,
    ) -> Result<Page<projections::OversightRow>, StoreError> {
        Ok(in_tx!(self, Some(tenant), false, |tx, m| {
            let g = m::active(&mut tx, "oversight")
                .await?
                .ok_or_else(|| unavailable("oversight"))?;
            m::oversight_actions(&mut tx, g, tenant, query).await?
        }))
    }

    /// Every record concerning a subject, oldest first.
    ///
    /// # Errors
    /// A database error, or [`StoreError::OutOfRange`] before the view exists.
    pub async fn subject_records(
        &self,
        tenant: &TenantId,
        subject_ref: &str,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Page<projections::SubjectRow>, StoreError> {
        Ok(in_tx!(self, Some(tenant), false, |tx, m| {
            let g = m::active(&mut tx, "subjects")
                .await?
                .ok_or_else(|| unavailable("subjects"))?;
            m::subject_page(&mut tx, g, tenant, subject_ref, after, limit).await?
        }))
    }

    /// Daily volumes between two days (inclusive, `YYYY-MM-DD`).
    ///
    /// # Errors
    /// A database error, or [`StoreError::OutOfRange`] before the view exists.
    pub async fn daily_volumes(
        &self,
        tenant: &TenantId,
        from: &str,
        until: &str,
        model_id: Option<&str>,
    ) -> Result<Vec<projections::DailyRow>, StoreError> {
        Ok(in_tx!(self, Some(tenant), false, |tx, m| {
            let g = m::active(&mut tx, "daily")
                .await?
                .ok_or_else(|| unavailable("daily"))?;
            m::daily(&mut tx, g, tenant, from, until, model_id).await?
        }))
    }

    /// Every row of every view of a tenant (tests compare it with a recomputation).
    ///
    /// # Errors
    /// A database error.
    pub async fn dump_views(&self, tenant: &TenantId) -> Result<Views, StoreError> {
        Ok(in_tx!(self, Some(tenant), false, |tx, m| m::dump(
            &mut tx, tenant
        )
        .await?))
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
