//! The views' statements that both backends run with the same text and the same binds,
//! written once and generic over the backend. What differs between the backends — a function
//! name, an index hint, a row lock, the statements that only PostgreSQL runs, the follow-up
//! UPDATE of decisions — is a [`Dialect`], implemented in `sqlite_views` and `pg_views`.
//! `QueryBuilder` writes each backend's placeholders.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;

use ledger::types::{EventId, TenantId};
use projections::runner::{ProjectionState, Stuck, TargetPage};
use projections::views::{DecisionPatch, ModelDelta};
use projections::{
    DailyRow, DecisionFacts, DecisionRow, ModelRow, OversightRow, SubjectRow, Views,
};
use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, QueryBuilder, Row, Transaction,
    Type,
};

use super::{
    DECISION_COLUMNS, DecisionQuery, EventTuple, INSERT_CHUNK_ROWS, OversightQuery, PAGE_ROWS_MAX,
    Page, SORTED_SEARCH_ROWS_MAX, corrupt, event_id, page_of, to_event, uint,
};
use crate::store::{StoreError, db_int, ladder, push_bucket_series, subject_bucket};

/// The most buckets of the subjects view one statement of [`Sql::subject_page`] probes. Its
/// runs start at one bucket and double up to this: a page of a subject with records near the
/// cursor is found by a small statement, and a tenant of ten million records (2,442 buckets of
/// 4,096) is crossed in 44 statements. A statement sorts at most its run's entries of the
/// subject.
const SUBJECT_PAGE_BUCKETS_MAX: i64 = 64;

/// What one backend does differently in the statements of [`Sql`].
pub(crate) trait Dialect: Database {
    /// The smaller of two values: SQLite's scalar `min`, PostgreSQL's `LEAST`.
    const LEAST: &'static str;

    /// The larger of two values: SQLite's scalar `max`, PostgreSQL's `GREATEST`.
    const GREATEST: &'static str;

    /// The function and its closing text that take the whole part of a non-negative real as an
    /// integer: SQLite's `CAST(x AS INTEGER)` truncates, PostgreSQL's rounds, so it floors first.
    const FLOOR_INT: (&'static str, &'static str);

    /// What follows `FROM records` in a lookup of records by event id: SQLite is told to take
    /// the event-id index, which its planner otherwise passes over for the primary key.
    const RECORDS_BY_EVENT_ID: &'static str;

    /// What follows the read of the state row that `activate` then updates: PostgreSQL locks
    /// it (SQLite's writer is alone anyway).
    const LOCK_STATE_ROW: &'static str;

    /// Whether a page moves its positions in one statement. Only where one writer commits at a
    /// time (SQLite): on PostgreSQL two runners may commit pages at once, and each transaction
    /// must take the position rows one by one in the lanes' order, (name, generation), so that
    /// two of them never wait for each other's rows; one `UPDATE` takes its rows in the
    /// table's order.
    const POSITIONS_IN_ONE_STATEMENT: bool;

    /// The type of `proj_oversight.decision_known`: SQLite has no boolean and stores 0 or 1.
    type Flag: From<bool>
        + Default
        + PartialEq
        + Send
        + for<'t> Encode<'t, Self>
        + for<'r> Decode<'r, Self>
        + Type<Self>;

    /// Makes room for the active generation of a projection that `ensure` has just created.
    fn add_active_generation(
        tx: &mut Transaction<'static, Self>,
        name: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Makes room for the generation that `start_rebuild` has just started.
    fn add_building_generation(
        tx: &mut Transaction<'static, Self>,
        name: &str,
        generation: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Builds the indexes a generation lacks; whether it built any.
    fn index_generation(
        tx: &mut Transaction<'static, Self>,
        name: &str,
        generation: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Sets how the transaction's statements are planned before the runner reads the ledger.
    fn generic_plans(
        tx: &mut Transaction<'static, Self>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The tenant's records with one of `ids` (at most [`INSERT_CHUNK_ROWS`]), as
    /// `seq, event_id, event_type, captured_at_us, payload`.
    fn records_by_event_id(tenant: &TenantId, ids: &[EventId]) -> QueryBuilder<Self>;

    /// How many rows a statement changed (each backend's result has its own method).
    fn rows_affected(result: &Self::QueryResult) -> u64;

    /// Applies the follow-ups of a page to decisions written by earlier pages.
    fn patch(
        tx: &mut Transaction<'static, Self>,
        g: i64,
        t: &str,
        patches: &[&DecisionPatch],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The assignments of the follow-up UPDATE of decisions: [`DecisionPatch::apply_to`] in SQL,
/// from a patch row `p`, up to the larger of two sequence numbers, which the backend writes
/// with its [`Dialect::GREATEST`].
pub(super) const PATCH_ASSIGNMENTS: &str = "reviews = proj_decisions.reviews + p.reviews, \
     overrides = proj_decisions.overrides + p.overrides, \
     contests = proj_decisions.contests + p.contests, \
     explanation_requests = proj_decisions.explanation_requests + p.explanation_requests, \
     submissions = proj_decisions.submissions + p.submissions, \
     status = COALESCE(p.status, proj_decisions.status), \
     current_outcome = COALESCE(p.current_outcome, proj_decisions.current_outcome), \
     last_reviewer = COALESCE(p.last_reviewer, proj_decisions.last_reviewer), \
     last_event_seq = ";

/// The arguments of [`PATCH_ASSIGNMENTS`]'s last assignment.
pub(super) const PATCH_LAST_EVENT_SEQ: &str = "(proj_decisions.last_event_seq, p.last_event_seq) ";

const STATES: &str =
    "SELECT name, active_generation, active_version, building_generation, building_version
                     FROM projection_state ORDER BY name";

/// A row of [`STATES`]: name, active generation and version, building generation and version.
type StateTuple = (String, i64, i32, Option<i64>, Option<i32>);

const OVERSIGHT_COLUMNS: &str =
    "seq, event_id, event_type, decision_id, decision_known, actor, action, reason, captured_at_us";

const MODEL_COLUMNS: &str = "model_id, model_version, first_seen_us, last_seen_us, decisions, reviews, overrides, contests, status, validation_ref, validated_at_us, approval_ref, approved_at_us, findings, last_change_seq";

/// What an upsert of a model row does with a row already there, after `first_seen_us` and
/// `last_seen_us` (see `upsert_model`).
const MODEL_UPSERT_REST: &str = "decisions = proj_models.decisions + excluded.decisions, \
     reviews = proj_models.reviews + excluded.reviews, \
     overrides = proj_models.overrides + excluded.overrides, \
     contests = proj_models.contests + excluded.contests, \
     findings = proj_models.findings + excluded.findings, \
     validation_ref = CASE WHEN excluded.validated_at_us IS NULL THEN proj_models.validation_ref ELSE excluded.validation_ref END, \
     validated_at_us = COALESCE(excluded.validated_at_us, proj_models.validated_at_us), \
     approval_ref = CASE WHEN excluded.approved_at_us IS NULL THEN proj_models.approval_ref ELSE excluded.approval_ref END, \
     approved_at_us = COALESCE(excluded.approved_at_us, proj_models.approved_at_us), \
     last_change_seq = COALESCE(excluded.last_change_seq, proj_models.last_change_seq), \
     status = CASE WHEN ";

/// The projection statements of backend `DB`; `sqlite_views` and `pg_views` give them their
/// concrete signatures.
pub(crate) struct Sql<DB>(PhantomData<DB>);

impl<DB> Sql<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'t> String: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> i32: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> f64: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> bool: Encode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Option<i64>: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Option<f64>: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
{
    fn decision(r: &DB::Row) -> Result<DecisionRow, StoreError> {
        Ok(DecisionRow {
            event_id: event_id(&r.try_get::<String, _>(0)?)?,
            seq: uint(r.try_get(1)?)?,
            model_id: r.try_get(2)?,
            model_version: r.try_get(3)?,
            outcome: r.try_get(4)?,
            current_outcome: r.try_get(5)?,
            score: r.try_get(6)?,
            subject_ref: r.try_get(7)?,
            decided_at_us: r.try_get(8)?,
            captured_at_us: r.try_get(9)?,
            oversight_mode: r.try_get(10)?,
            status: r.try_get(11)?,
            reviews: r.try_get(12)?,
            overrides: r.try_get(13)?,
            contests: r.try_get(14)?,
            explanation_requests: r.try_get(15)?,
            submissions: r.try_get(16)?,
            last_reviewer: r.try_get(17)?,
            last_event_seq: uint(r.try_get(18)?)?,
        })
    }

    fn oversight(r: &DB::Row) -> Result<OversightRow, StoreError> {
        let known: DB::Flag = r.try_get(4)?;
        Ok(OversightRow {
            seq: uint(r.try_get(0)?)?,
            event_id: event_id(&r.try_get::<String, _>(1)?)?,
            event_type: r.try_get(2)?,
            decision_id: event_id(&r.try_get::<String, _>(3)?)?,
            decision_known: known != DB::Flag::default(),
            actor: r.try_get(5)?,
            action: r.try_get(6)?,
            reason: r.try_get(7)?,
            captured_at_us: r.try_get(8)?,
        })
    }

    /// The subject entries of generation `g` of a tenant, with what the ledger's row of each
    /// record adds (the table keeps only what locates the record: see migration `0006`); the
    /// caller adds conditions. The ledger row is matched to the bound tenant rather than to the
    /// entry's column, whose collation differs on PostgreSQL (migration `0007`) and would keep
    /// the planner from the ledger's key.
    fn subject_select(g: i64, tenant: &TenantId) -> QueryBuilder<DB> {
        let mut q = QueryBuilder::<DB>::new(
            "SELECT s.subject_ref, s.seq, r.event_id, r.event_type, s.decision_id, r.captured_at_us FROM proj_subjects s JOIN records r ON r.seq = s.seq AND r.tenant_id = ",
        );
        q.push_bind(tenant.as_str().to_owned())
            .push(" WHERE s.generation = ")
            .push_bind(g)
            .push(" AND s.tenant_id = ")
            .push_bind(tenant.as_str().to_owned());
        q
    }

    fn subject(r: &DB::Row) -> Result<SubjectRow, StoreError> {
        let decision: Option<String> = r.try_get(4)?;
        Ok(SubjectRow {
            subject_ref: r.try_get(0)?,
            seq: uint(r.try_get(1)?)?,
            event_id: event_id(&r.try_get::<String, _>(2)?)?,
            event_type: r.try_get(3)?,
            decision_id: decision.as_deref().map(event_id).transpose()?,
            captured_at_us: r.try_get(5)?,
        })
    }

    fn model(r: &DB::Row) -> Result<ModelRow, StoreError> {
        let last_change: Option<i64> = r.try_get(14)?;
        Ok(ModelRow {
            model_id: r.try_get(0)?,
            model_version: r.try_get(1)?,
            first_seen_us: r.try_get(2)?,
            last_seen_us: r.try_get(3)?,
            decisions: r.try_get(4)?,
            reviews: r.try_get(5)?,
            overrides: r.try_get(6)?,
            contests: r.try_get(7)?,
            status: r.try_get(8)?,
            validation_ref: r.try_get(9)?,
            validated_at_us: r.try_get(10)?,
            approval_ref: r.try_get(11)?,
            approved_at_us: r.try_get(12)?,
            findings: r.try_get(13)?,
            last_change_seq: last_change.map(uint).transpose()?,
            outcomes: Default::default(),
        })
    }

    pub(super) async fn states(
        tx: &mut Transaction<'static, DB>,
    ) -> Result<Vec<ProjectionState>, StoreError> {
        let rows: Vec<StateTuple> = sqlx::query_as(STATES).fetch_all(&mut **tx).await?;
        rows.into_iter()
            .map(|(name, generation, version, building, building_version)| {
                Ok(ProjectionState {
                    name,
                    active_generation: generation,
                    active_version: u32::try_from(version).map_err(|e| corrupt("version", e))?,
                    building: match (building, building_version) {
                        (Some(g), Some(v)) => {
                            Some((g, u32::try_from(v).map_err(|e| corrupt("version", e))?))
                        }
                        _ => None,
                    },
                })
            })
            .collect()
    }

    pub(super) async fn ensure(
        tx: &mut Transaction<'static, DB>,
        name: &str,
        version: u32,
    ) -> Result<(), StoreError> {
        let mut q = QueryBuilder::<DB>::new(
            "INSERT INTO projection_state (name, active_generation, active_version, next_generation) VALUES (",
        );
        q.push_bind(name.to_owned())
            .push(", 1, ")
            .push_bind(i32::try_from(version).unwrap_or(i32::MAX))
            .push(", 2) ON CONFLICT (name) DO NOTHING");
        q.build().execute(&mut **tx).await?;
        DB::add_active_generation(tx, name).await
    }

    pub(super) async fn start_rebuild(
        tx: &mut Transaction<'static, DB>,
        name: &str,
        version: u32,
    ) -> Result<(i64, Option<i64>), StoreError> {
        let mut q = QueryBuilder::<DB>::new(
            "SELECT next_generation, building_generation FROM projection_state WHERE name = ",
        );
        q.push_bind(name.to_owned());
        let (generation, previous): (i64, Option<i64>) =
            q.build_query_as().fetch_one(&mut **tx).await?;
        let mut q = QueryBuilder::<DB>::new("UPDATE projection_state SET building_generation = ");
        q.push_bind(generation)
            .push(", building_version = ")
            .push_bind(i32::try_from(version).unwrap_or(i32::MAX))
            .push(", next_generation = ")
            .push_bind(generation + 1)
            .push(" WHERE name = ")
            .push_bind(name.to_owned());
        q.build().execute(&mut **tx).await?;
        DB::add_building_generation(tx, name, generation).await?;
        Ok((generation, previous))
    }

    /// The state row is read with [`Dialect::LOCK_STATE_ROW`]: another process finishing or
    /// restarting the same rebuild waits until this transaction is over, and then finds
    /// `building_generation` changed. `start_rebuild` takes the row first too, so the two never
    /// wait on each other's advisory lock.
    pub(super) async fn activate(
        tx: &mut Transaction<'static, DB>,
        name: &str,
        generation: i64,
    ) -> Result<Option<i64>, StoreError> {
        let mut q =
            QueryBuilder::<DB>::new("SELECT active_generation FROM projection_state WHERE name = ");
        q.push_bind(name.to_owned())
            .push(" AND building_generation = ")
            .push_bind(generation)
            .push(DB::LOCK_STATE_ROW);
        let old: Option<i64> = q.build_query_scalar().fetch_optional(&mut **tx).await?;
        let Some(old) = old else {
            return Ok(None);
        };
        // Built by sorting each partition once, in the transaction that lets queries at it.
        DB::index_generation(tx, name, generation).await?;
        let mut q = QueryBuilder::<DB>::new(
            "UPDATE projection_state SET active_generation = building_generation, active_version = building_version, building_generation = NULL, building_version = NULL WHERE name = ",
        );
        q.push_bind(name.to_owned())
            .push(" AND building_generation = ")
            .push_bind(generation);
        if DB::rows_affected(&q.build().execute(&mut **tx).await?) != 1 {
            return Ok(None);
        }
        Ok(Some(old))
    }

    pub(super) async fn purge_positions(
        tx: &mut Transaction<'static, DB>,
        name: &str,
        generation: i64,
        tenant: &TenantId,
    ) -> Result<(), StoreError> {
        let mut q = QueryBuilder::<DB>::new("DELETE FROM projection_positions WHERE name = ");
        q.push_bind(name.to_owned())
            .push(" AND generation = ")
            .push_bind(generation)
            .push(" AND tenant_id = ")
            .push_bind(tenant.as_str().to_owned());
        q.build().execute(&mut **tx).await?;
        Ok(())
    }

    pub(super) async fn positions(
        tx: &mut Transaction<'static, DB>,
        tenant: &TenantId,
    ) -> Result<HashMap<(String, i64), u64>, StoreError> {
        let mut q = QueryBuilder::<DB>::new(
            "SELECT name, generation, next_seq FROM projection_positions WHERE tenant_id = ",
        );
        q.push_bind(tenant.as_str().to_owned());
        let rows: Vec<(String, i64, i64)> = q.build_query_as().fetch_all(&mut **tx).await?;
        rows.into_iter()
            .map(|(name, generation, next)| Ok(((name, generation), uint(next)?)))
            .collect()
    }

    pub(super) async fn stuck(
        tx: &mut Transaction<'static, DB>,
        tenant: &TenantId,
    ) -> Result<Vec<Stuck>, StoreError> {
        let mut q = QueryBuilder::<DB>::new(
            "SELECT name, generation, next_seq, stuck_error, stuck_since_us FROM projection_positions WHERE stuck_error IS NOT NULL AND tenant_id = ",
        );
        q.push_bind(tenant.as_str().to_owned())
            .push(" ORDER BY name, generation");
        let rows: Vec<(String, i64, i64, String, Option<i64>)> =
            q.build_query_as().fetch_all(&mut **tx).await?;
        rows.into_iter()
            .map(|(name, generation, next, error, since)| {
                Ok(Stuck {
                    tenant: tenant.as_str().to_owned(),
                    name,
                    generation,
                    seq: uint(next)?,
                    error,
                    since_us: since.unwrap_or(0),
                })
            })
            .collect()
    }

    /// Marks a position stuck, if it still is `seq` (a row is created at 0 for a generation
    /// that has applied nothing yet).
    pub(super) async fn mark_stuck(
        tx: &mut Transaction<'static, DB>,
        tenant: &TenantId,
        name: &str,
        generation: i64,
        seq: u64,
        error: &str,
    ) -> Result<(), StoreError> {
        let mut q = QueryBuilder::<DB>::new(
            "INSERT INTO projection_positions (name, generation, tenant_id, next_seq, stuck_error, stuck_since_us) VALUES (",
        );
        let mut sep = q.separated(", ");
        sep.push_bind(name.to_owned());
        sep.push_bind(generation);
        sep.push_bind(tenant.as_str().to_owned());
        sep.push_bind(db_int(seq));
        sep.push_bind(error.to_owned());
        sep.push_bind(chrono::Utc::now().timestamp_micros());
        q.push(") ON CONFLICT (name, generation, tenant_id) DO UPDATE SET stuck_error = excluded.stuck_error, stuck_since_us = excluded.stuck_since_us WHERE projection_positions.next_seq = excluded.next_seq");
        q.build().execute(&mut **tx).await?;
        Ok(())
    }

    /// Clears the tenant's stuck marks (of `name` only, if given); how many it cleared.
    pub(super) async fn clear_stuck(
        tx: &mut Transaction<'static, DB>,
        tenant: &TenantId,
        name: Option<&str>,
    ) -> Result<u64, StoreError> {
        let mut q = QueryBuilder::<DB>::new(
            "UPDATE projection_positions SET stuck_error = NULL, stuck_since_us = NULL WHERE stuck_error IS NOT NULL AND tenant_id = ",
        );
        q.push_bind(tenant.as_str().to_owned());
        if let Some(name) = name {
            q.push(" AND name = ").push_bind(name.to_owned());
        }
        Ok(DB::rows_affected(&q.build().execute(&mut **tx).await?))
    }

    /// Up to `limit` of the tenant's records from `from`, as read (see `to_events`).
    pub(super) async fn event_rows(
        tx: &mut Transaction<'static, DB>,
        tenant: &TenantId,
        from: u64,
        limit: u64,
    ) -> Result<Vec<EventTuple>, StoreError> {
        DB::generic_plans(tx).await?;
        let mut q = QueryBuilder::<DB>::new(
            "SELECT seq, event_id, event_type, captured_at_us, payload FROM records WHERE tenant_id = ",
        );
        q.push_bind(tenant.as_str().to_owned())
            .push(" AND seq >= ")
            .push_bind(db_int(from))
            .push(" ORDER BY seq LIMIT ")
            .push_bind(db_int(limit));
        Ok(q.build_query_as().fetch_all(&mut **tx).await?)
    }

    pub(super) async fn facts(
        tx: &mut Transaction<'static, DB>,
        tenant: &TenantId,
        ids: &[EventId],
    ) -> Result<Vec<(EventId, DecisionFacts)>, StoreError> {
        DB::generic_plans(tx).await?;
        let mut out = Vec::new();
        for chunk in ids.chunks(INSERT_CHUNK_ROWS) {
            let mut q = DB::records_by_event_id(tenant, chunk);
            let rows: Vec<EventTuple> = q.build_query_as().fetch_all(&mut **tx).await?;
            for row in rows {
                let event = to_event(row)?;
                if let Some(f) = DecisionFacts::of(&event) {
                    out.push((event.event_id, f));
                }
            }
        }
        Ok(out)
    }

    /// Moves every position of `pages` that is past its first record from `from` to `to`, in
    /// one statement; `false` when any of them no longer holds its `from`.
    ///
    /// One statement instead of one per view where the dialect allows it
    /// ([`Dialect::POSITIONS_IN_ONE_STATEMENT`]): on SQLite each statement is a hand-off to the
    /// connection's worker thread while the transaction holds the views file's one writer.
    async fn move_positions(
        tx: &mut Transaction<'static, DB>,
        tenant: &TenantId,
        pages: &[&TargetPage],
    ) -> Result<bool, StoreError> {
        if pages.is_empty() {
            return Ok(true);
        }
        let mut q = QueryBuilder::<DB>::new("UPDATE projection_positions SET next_seq = CASE");
        for page in pages {
            q.push(" WHEN name = ")
                .push_bind(page.name.to_owned())
                .push(" AND generation = ")
                .push_bind(page.generation)
                .push(" THEN ")
                .push_bind(db_int(page.to));
        }
        // A row the CASE does not name is not selected by the filter below; ELSE keeps the
        // expression total all the same.
        q.push(" ELSE next_seq END WHERE tenant_id = ")
            .push_bind(tenant.as_str().to_owned())
            .push(" AND (");
        for (i, page) in pages.iter().enumerate() {
            if i > 0 {
                q.push(" OR ");
            }
            q.push("(name = ")
                .push_bind(page.name.to_owned())
                .push(" AND generation = ")
                .push_bind(page.generation)
                .push(" AND next_seq = ")
                .push_bind(db_int(page.from))
                .push(")");
        }
        q.push(")");
        // (name, generation, tenant_id) is the table's key: each page matches at most one row.
        let moved = DB::rows_affected(&q.build().execute(&mut **tx).await?);
        Ok(usize::try_from(moved).is_ok_and(|n| n == pages.len()))
    }

    /// Writes the position of a generation's first page (`from` 0); `false` when a position
    /// past 0 exists already.
    async fn write_first_position(
        tx: &mut Transaction<'static, DB>,
        tenant: &TenantId,
        page: &TargetPage,
    ) -> Result<bool, StoreError> {
        let mut q = QueryBuilder::<DB>::new(
            "INSERT INTO projection_positions (name, generation, tenant_id, next_seq) VALUES (",
        );
        let mut sep = q.separated(", ");
        sep.push_bind(page.name.to_owned());
        sep.push_bind(page.generation);
        sep.push_bind(tenant.as_str().to_owned());
        sep.push_bind(db_int(page.to));
        // A row at 0 exists when the generation was marked stuck at its first record and
        // then retried.
        q.push(") ON CONFLICT (name, generation, tenant_id) DO UPDATE SET next_seq = excluded.next_seq WHERE projection_positions.next_seq = 0");
        Ok(DB::rows_affected(&q.build().execute(&mut **tx).await?) == 1)
    }

    /// Writes the pages; `false` (the caller rolls back) when a position moved.
    pub(super) async fn commit(
        tx: &mut Transaction<'static, DB>,
        tenant: &TenantId,
        pages: &[TargetPage],
    ) -> Result<bool, StoreError> {
        let t = tenant.as_str();
        if DB::POSITIONS_IN_ONE_STATEMENT {
            let (first, later): (Vec<&TargetPage>, Vec<&TargetPage>) =
                pages.iter().partition(|p| p.from == 0);
            if !Self::move_positions(tx, tenant, &later).await? {
                return Ok(false);
            }
            for page in first {
                if !Self::write_first_position(tx, tenant, page).await? {
                    return Ok(false);
                }
            }
        } else {
            for page in pages {
                let moved = if page.from == 0 {
                    Self::write_first_position(tx, tenant, page).await?
                } else {
                    Self::move_positions(tx, tenant, &[page]).await?
                };
                if !moved {
                    return Ok(false);
                }
            }
        }
        for page in pages {
            let g = page.generation;
            let c = &page.changes;
            let inserts: Vec<&DecisionRow> = c.decision_inserts.values().collect();
            for chunk in ladder::chunks(&inserts, INSERT_CHUNK_ROWS) {
                let mut q = QueryBuilder::<DB>::new(format!(
                    "INSERT INTO proj_decisions (generation, tenant_id, {DECISION_COLUMNS}) "
                ));
                q.push_values(chunk, |mut b, r| {
                    b.push_bind(g)
                        .push_bind(t.to_owned())
                        .push_bind(r.event_id.to_string())
                        .push_bind(db_int(r.seq))
                        .push_bind(r.model_id.clone())
                        .push_bind(r.model_version.clone())
                        .push_bind(r.outcome.clone())
                        .push_bind(r.current_outcome.clone())
                        .push_bind(r.score)
                        .push_bind(r.subject_ref.clone())
                        .push_bind(r.decided_at_us)
                        .push_bind(r.captured_at_us)
                        .push_bind(r.oversight_mode.clone())
                        .push_bind(r.status.clone())
                        .push_bind(r.reviews)
                        .push_bind(r.overrides)
                        .push_bind(r.contests)
                        .push_bind(r.explanation_requests)
                        .push_bind(r.submissions)
                        .push_bind(r.last_reviewer.clone())
                        .push_bind(db_int(r.last_event_seq));
                });
                q.build().execute(&mut **tx).await?;
            }
            let patches: Vec<&DecisionPatch> = c.decision_patches.values().collect();
            DB::patch(tx, g, t, &patches).await?;
            for ((model_id, version), d) in &c.models {
                Self::upsert_model(tx, g, t, model_id, version, d).await?;
            }
            let outcomes: Vec<_> = c.model_outcomes.iter().collect();
            for chunk in ladder::chunks(&outcomes, INSERT_CHUNK_ROWS) {
                let mut q = QueryBuilder::<DB>::new(
                    "INSERT INTO proj_model_outcomes (generation, tenant_id, model_id, model_version, outcome, decisions) ",
                );
                q.push_values(chunk, |mut b, ((model_id, version, outcome), n)| {
                    b.push_bind(g)
                        .push_bind(t.to_owned())
                        .push_bind(model_id.clone())
                        .push_bind(version.clone())
                        .push_bind(outcome.clone())
                        .push_bind(**n);
                });
                q.push(" ON CONFLICT (generation, tenant_id, model_id, model_version, outcome) DO UPDATE SET decisions = proj_model_outcomes.decisions + excluded.decisions");
                q.build().execute(&mut **tx).await?;
            }
            for chunk in ladder::chunks(&c.oversight, INSERT_CHUNK_ROWS) {
                let mut q = QueryBuilder::<DB>::new(format!(
                    "INSERT INTO proj_oversight (generation, tenant_id, {OVERSIGHT_COLUMNS}) "
                ));
                q.push_values(chunk, |mut b, r| {
                    b.push_bind(g)
                        .push_bind(t.to_owned())
                        .push_bind(db_int(r.seq))
                        .push_bind(r.event_id.to_string())
                        .push_bind(r.event_type.clone())
                        .push_bind(r.decision_id.to_string())
                        .push_bind(DB::Flag::from(r.decision_known))
                        .push_bind(r.actor.clone())
                        .push_bind(r.action.clone())
                        .push_bind(r.reason.clone())
                        .push_bind(r.captured_at_us);
                });
                q.build().execute(&mut **tx).await?;
            }
            for chunk in ladder::chunks(&c.subjects, INSERT_CHUNK_ROWS) {
                let mut q = QueryBuilder::<DB>::new(
                    "INSERT INTO proj_subjects (generation, tenant_id, bucket, subject_ref, seq, decision_id) ",
                );
                q.push_values(chunk, |mut b, r| {
                    b.push_bind(g)
                        .push_bind(t.to_owned())
                        .push_bind(subject_bucket(r.seq))
                        .push_bind(r.subject_ref.clone())
                        .push_bind(db_int(r.seq))
                        .push_bind(r.decision_id.map(|d| d.to_string()));
                });
                q.build().execute(&mut **tx).await?;
            }
            let daily: Vec<_> = c.daily.iter().collect();
            for chunk in ladder::chunks(&daily, INSERT_CHUNK_ROWS) {
                let mut q = QueryBuilder::<DB>::new(
                    "INSERT INTO proj_daily (generation, tenant_id, day, model_id, model_version, outcome, decisions) ",
                );
                q.push_values(chunk, |mut b, ((day, model_id, version, outcome), n)| {
                    b.push_bind(g)
                        .push_bind(t.to_owned())
                        .push_bind(day.clone())
                        .push_bind(model_id.clone())
                        .push_bind(version.clone())
                        .push_bind(outcome.clone())
                        .push_bind(**n);
                });
                q.push(" ON CONFLICT (generation, tenant_id, day, model_id, model_version, outcome) DO UPDATE SET decisions = proj_daily.decisions + excluded.decisions");
                q.build().execute(&mut **tx).await?;
            }
        }
        Ok(true)
    }

    async fn upsert_model(
        tx: &mut Transaction<'static, DB>,
        g: i64,
        t: &str,
        model_id: &str,
        version: &str,
        d: &ModelDelta,
    ) -> Result<(), StoreError> {
        let mut q = QueryBuilder::<DB>::new(format!(
            "INSERT INTO proj_models (generation, tenant_id, {MODEL_COLUMNS}) VALUES ("
        ));
        let (validation_ref, validated_at) = d
            .validation
            .clone()
            .map_or((None, None), |(r, at)| (r, Some(at)));
        let (approval_ref, approved_at) = d
            .approval
            .clone()
            .map_or((None, None), |(r, at)| (r, Some(at)));
        let mut sep = q.separated(", ");
        sep.push_bind(g);
        sep.push_bind(t.to_owned());
        sep.push_bind(model_id.to_owned());
        sep.push_bind(version.to_owned());
        sep.push_bind(d.first_seen_us);
        sep.push_bind(d.last_seen_us);
        sep.push_bind(d.decisions);
        sep.push_bind(d.reviews);
        sep.push_bind(d.overrides);
        sep.push_bind(d.contests);
        sep.push_bind(
            d.status
                .clone()
                .unwrap_or_else(|| "unregistered".to_owned()),
        );
        sep.push_bind(validation_ref);
        sep.push_bind(validated_at);
        sep.push_bind(approval_ref);
        sep.push_bind(approved_at);
        sep.push_bind(d.findings);
        sep.push_bind(d.last_change_seq.map(db_int));
        q.push(") ON CONFLICT (generation, tenant_id, model_id, model_version) DO UPDATE SET first_seen_us = COALESCE(")
            .push(DB::LEAST)
            .push("(proj_models.first_seen_us, excluded.first_seen_us), proj_models.first_seen_us, excluded.first_seen_us), last_seen_us = COALESCE(")
            .push(DB::GREATEST)
            .push("(proj_models.last_seen_us, excluded.last_seen_us), proj_models.last_seen_us, excluded.last_seen_us), ")
            .push(MODEL_UPSERT_REST);
        q.push_bind(d.status.is_some())
            .push(" THEN excluded.status ELSE proj_models.status END");
        q.build().execute(&mut **tx).await?;
        Ok(())
    }

    /// The active generation of a projection (`None` before it first ran).
    pub(super) async fn active(
        tx: &mut Transaction<'static, DB>,
        name: &str,
    ) -> Result<Option<i64>, StoreError> {
        let mut q =
            QueryBuilder::<DB>::new("SELECT active_generation FROM projection_state WHERE name = ");
        q.push_bind(name.to_owned());
        Ok(q.build_query_scalar().fetch_optional(&mut **tx).await?)
    }

    pub(super) async fn search(
        tx: &mut Transaction<'static, DB>,
        g: i64,
        tenant: &TenantId,
        f: &DecisionQuery,
    ) -> Result<Page<DecisionRow>, StoreError> {
        let mut q = QueryBuilder::<DB>::new(format!(
            "SELECT {DECISION_COLUMNS} FROM proj_decisions WHERE generation = "
        ));
        q.push_bind(g)
            .push(" AND tenant_id = ")
            .push_bind(tenant.as_str().to_owned());
        // A subject's decisions are found through the subject index (the subjects view), which
        // lists each decision's sequence number under its subject and bucket: the decisions
        // view has no index of its own by subject, whose random-order inserts would cost a page
        // write each. One probe per bucket, from the first to the last the index holds, or
        // only those on the cursor's side.
        if let Some(subject) = &f.subject_ref
            && let Some(subjects) = Self::active(tx, "subjects").await?
        {
            let first = match f.after {
                Some(after) if f.ascending => subject_bucket(after.saturating_add(1)),
                _ => 0,
            };
            q.push(" AND seq IN (SELECT seq FROM proj_subjects WHERE generation = ")
                .push_bind(subjects)
                .push(" AND tenant_id = ")
                .push_bind(tenant.as_str().to_owned())
                .push(" AND subject_ref = ")
                .push_bind(subject.clone())
                .push(" AND bucket IN ");
            push_bucket_series(&mut q, first, |q| match f.after {
                Some(after) if !f.ascending => {
                    q.push_bind(subject_bucket(after));
                }
                _ => {
                    q.push("(");
                    Self::push_last_bucket(q, subjects, tenant);
                    q.push(")");
                }
            });
            q.push(")");
        }
        let text = [
            ("model_id", &f.model_id),
            ("model_version", &f.model_version),
            ("current_outcome", &f.outcome),
            ("outcome", &f.model_outcome),
            ("status", &f.status),
            ("subject_ref", &f.subject_ref),
        ];
        for (column, value) in text {
            if let Some(v) = value {
                q.push(format!(" AND {column} = ")).push_bind(v.clone());
            }
        }
        // Capture time never decreases along a chain, so a capture-time range is a range of
        // sequence numbers, which every index of the view ends in (or starts with, for the
        // primary key). The time conditions stay as well.
        if let Some(from) = f.captured_from {
            q.push(" AND seq >= ")
                .push_bind(Self::first_captured_at_or_after(tx, tenant, from).await?);
        }
        if let Some(until) = f.captured_until {
            q.push(" AND seq < ")
                .push_bind(Self::first_captured_at_or_after(tx, tenant, until).await?);
        }
        let ranges = [
            ("decided_at_us >= ", f.decided_from),
            ("decided_at_us < ", f.decided_until),
            ("captured_at_us >= ", f.captured_from),
            ("captured_at_us < ", f.captured_until),
        ];
        for (condition, value) in ranges {
            if let Some(v) = value {
                q.push(format!(" AND {condition}")).push_bind(v);
            }
        }
        if let Some(v) = f.score_min {
            q.push(" AND score >= ").push_bind(v);
        }
        if let Some(v) = f.score_max {
            q.push(" AND score <= ").push_bind(v);
        }
        if let Some(after) = f.after {
            q.push(if f.ascending {
                " AND seq > "
            } else {
                " AND seq < "
            })
            .push_bind(db_int(after));
        }
        // Ordered by `seq + 0` (the same order), the query cannot walk the primary key and must
        // find its rows by its filters, then sort them: see `narrow_decided_range`.
        let key = if Self::narrow_decided_range(tx, g, tenant, f).await? {
            "seq + 0"
        } else {
            "seq"
        };
        q.push(format!(
            " ORDER BY {key} {} LIMIT ",
            if f.ascending { "ASC" } else { "DESC" }
        ))
        .push_bind(i64::from(f.limit) + 1);
        let rows = q.build().fetch_all(&mut **tx).await?;
        let rows = rows
            .iter()
            .map(Self::decision)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page_of(rows, f.limit, |r| r.seq))
    }

    /// Whether the search has a decision-time range that holds fewer than
    /// [`SORTED_SEARCH_ROWS_MAX`] decisions. Decision times are not ordered along the chain, so
    /// the rows of such a range lie anywhere in sequence order; a planner that walks the
    /// primary key in order and filters (to stop after `limit` rows) reads the whole view when
    /// the range is old — it cannot know where the rows are. For a narrow range it is cheaper
    /// to read the range from the decision-time index (`proj_decisions_by_decided`; on
    /// PostgreSQL each partition's `…_by_decided`) and sort, which the caller then forces.
    /// Counting stops at the threshold, so this costs at most that many index entries.
    async fn narrow_decided_range(
        tx: &mut Transaction<'static, DB>,
        g: i64,
        tenant: &TenantId,
        f: &DecisionQuery,
    ) -> Result<bool, StoreError> {
        if f.decided_from.is_none() && f.decided_until.is_none() {
            return Ok(false);
        }
        let mut q = QueryBuilder::<DB>::new(
            "SELECT COUNT(*) FROM (SELECT 1 FROM proj_decisions WHERE generation = ",
        );
        q.push_bind(g)
            .push(" AND tenant_id = ")
            .push_bind(tenant.as_str().to_owned());
        if let Some(from) = f.decided_from {
            q.push(" AND decided_at_us >= ").push_bind(from);
        }
        if let Some(until) = f.decided_until {
            q.push(" AND decided_at_us < ").push_bind(until);
        }
        q.push(" LIMIT ")
            .push_bind(SORTED_SEARCH_ROWS_MAX)
            .push(") n");
        let rows: i64 = q.build_query_scalar().fetch_one(&mut **tx).await?;
        Ok(rows < SORTED_SEARCH_ROWS_MAX)
    }

    /// The first sequence number of the tenant's chain captured at or after `at_us` (the
    /// chain's length if none): a binary search over the ledger's primary key, since capture
    /// time never decreases along a chain. Records appended meanwhile come after the length
    /// read first, so they cannot move the answer.
    pub(super) async fn first_captured_at_or_after(
        tx: &mut Transaction<'static, DB>,
        tenant: &TenantId,
        at_us: i64,
    ) -> Result<i64, StoreError> {
        let mut q = QueryBuilder::<DB>::new(
            "SELECT COALESCE(MAX(seq) + 1, 0) FROM records WHERE tenant_id = ",
        );
        q.push_bind(tenant.as_str().to_owned());
        let (mut low, mut high): (i64, i64) =
            (0, q.build_query_scalar().fetch_one(&mut **tx).await?);
        while low < high {
            let mid = low + (high - low) / 2;
            let mut q =
                QueryBuilder::<DB>::new("SELECT captured_at_us FROM records WHERE tenant_id = ");
            q.push_bind(tenant.as_str().to_owned())
                .push(" AND seq = ")
                .push_bind(mid);
            let captured: i64 = q.build_query_scalar().fetch_one(&mut **tx).await?;
            if captured < at_us {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        Ok(low)
    }

    pub(super) async fn decision_by_id(
        tx: &mut Transaction<'static, DB>,
        g: i64,
        tenant: &TenantId,
        id: EventId,
    ) -> Result<Option<DecisionRow>, StoreError> {
        let mut q = QueryBuilder::<DB>::new(format!(
            "SELECT {DECISION_COLUMNS} FROM proj_decisions WHERE generation = "
        ));
        // The ledger's event-id index gives the sequence number, the view's key (the view keeps
        // no index by event id).
        q.push_bind(g)
            .push(" AND tenant_id = ")
            .push_bind(tenant.as_str().to_owned())
            .push(" AND seq = (SELECT seq FROM records")
            .push(DB::RECORDS_BY_EVENT_ID)
            .push(" WHERE tenant_id = ")
            .push_bind(tenant.as_str().to_owned())
            .push(" AND event_id = ")
            .push_bind(id.to_string())
            .push(")");
        q.build()
            .fetch_optional(&mut **tx)
            .await?
            .as_ref()
            .map(Self::decision)
            .transpose()
    }

    pub(super) async fn models(
        tx: &mut Transaction<'static, DB>,
        g: i64,
        tenant: &TenantId,
        model_id: Option<&str>,
    ) -> Result<Vec<ModelRow>, StoreError> {
        let mut q = QueryBuilder::<DB>::new(format!(
            "SELECT {MODEL_COLUMNS} FROM proj_models WHERE generation = "
        ));
        q.push_bind(g)
            .push(" AND tenant_id = ")
            .push_bind(tenant.as_str().to_owned());
        if let Some(m) = model_id {
            q.push(" AND model_id = ").push_bind(m.to_owned());
        }
        q.push(" ORDER BY model_id, model_version");
        let rows = q.build().fetch_all(&mut **tx).await?;
        let mut models = rows
            .iter()
            .map(Self::model)
            .collect::<Result<Vec<_>, _>>()?;
        let mut q = QueryBuilder::<DB>::new(
            "SELECT model_id, model_version, outcome, decisions FROM proj_model_outcomes WHERE generation = ",
        );
        q.push_bind(g)
            .push(" AND tenant_id = ")
            .push_bind(tenant.as_str().to_owned());
        if let Some(m) = model_id {
            q.push(" AND model_id = ").push_bind(m.to_owned());
        }
        let outcomes: Vec<(String, String, String, i64)> =
            q.build_query_as().fetch_all(&mut **tx).await?;
        let mut by_model: HashMap<(String, String), Vec<(String, i64)>> = HashMap::new();
        for (m, v, o, n) in outcomes {
            by_model.entry((m, v)).or_default().push((o, n));
        }
        for row in &mut models {
            if let Some(list) = by_model.remove(&(row.model_id.clone(), row.model_version.clone()))
            {
                row.outcomes = list.into_iter().collect();
            }
        }
        Ok(models)
    }

    pub(super) async fn oversight_actions(
        tx: &mut Transaction<'static, DB>,
        g: i64,
        tenant: &TenantId,
        f: &OversightQuery,
    ) -> Result<Page<OversightRow>, StoreError> {
        let mut q = QueryBuilder::<DB>::new(format!(
            "SELECT {OVERSIGHT_COLUMNS} FROM proj_oversight WHERE generation = "
        ));
        q.push_bind(g)
            .push(" AND tenant_id = ")
            .push_bind(tenant.as_str().to_owned());
        if let Some(d) = f.decision_id {
            q.push(" AND decision_id = ").push_bind(d.to_string());
        }
        if let Some(a) = &f.actor {
            q.push(" AND actor = ").push_bind(a.clone());
        }
        if let Some(e) = &f.event_type {
            q.push(" AND event_type = ").push_bind(e.clone());
        }
        if let Some(a) = &f.action {
            q.push(" AND action = ").push_bind(a.clone());
        }
        if let Some(after) = f.after {
            q.push(" AND seq < ").push_bind(db_int(after));
        }
        q.push(" ORDER BY seq DESC LIMIT ")
            .push_bind(i64::from(f.limit) + 1);
        let rows = q.build().fetch_all(&mut **tx).await?;
        let rows = rows
            .iter()
            .map(Self::oversight)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page_of(rows, f.limit, |r| r.seq))
    }

    /// Appends the statement of the last bucket the subjects view's generation `g` holds for
    /// the tenant (NULL when it holds nothing): one descent of its key.
    fn push_last_bucket(q: &mut QueryBuilder<DB>, g: i64, tenant: &TenantId) {
        q.push("SELECT MAX(bucket) FROM proj_subjects WHERE generation = ")
            .push_bind(g)
            .push(" AND tenant_id = ")
            .push_bind(tenant.as_str().to_owned());
    }

    pub(super) async fn subject_page(
        tx: &mut Transaction<'static, DB>,
        g: i64,
        tenant: &TenantId,
        subject_ref: &str,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Page<SubjectRow>, StoreError> {
        let mut q = QueryBuilder::<DB>::new("");
        Self::push_last_bucket(&mut q, g, tenant);
        let last: Option<i64> = q.build_query_scalar().fetch_one(&mut **tx).await?;
        let want = usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        let mut rows = Vec::new();
        // The entries lead with their bucket of sequence numbers (migrations 0027 and 0030):
        // the subject is probed in each bucket, a run of buckets per statement, in order, until
        // the page is full. A run's rows are sorted by sequence number, and the buckets' order
        // is the sequence numbers' order, so the runs' rows concatenate in order. On PostgreSQL
        // each statement may see a later snapshot; a generation's entries are only ever added
        // in sequence order, at its last bucket or beyond, so the buckets already read do not
        // change behind the page.
        let mut from = subject_bucket(after.map_or(0, |a| a.saturating_add(1)));
        let mut run = 1;
        while let Some(last) = last
            && from <= last
            && rows.len() < want
        {
            let mut q = Self::subject_select(g, tenant);
            q.push(" AND s.subject_ref = ")
                .push_bind(subject_ref.to_owned())
                .push(" AND s.bucket IN (");
            let mut list = q.separated(", ");
            for b in from..from.saturating_add(run) {
                list.push_bind(b);
            }
            q.push(")");
            // The cursor's bound is written `+s.seq` so that it stays a filter on the entries
            // probed: as a plain column bound, SQLite carries it across the join to `r.seq`
            // and plans a scan of the tenant's records after the cursor, probing the subject
            // for each.
            if let Some(after) = after {
                q.push(" AND +s.seq > ").push_bind(db_int(after));
            }
            q.push(" ORDER BY s.seq LIMIT ")
                .push_bind(i64::try_from(want - rows.len()).unwrap_or(i64::MAX));
            for r in q.build().fetch_all(&mut **tx).await? {
                rows.push(Self::subject(&r)?);
            }
            from = from.saturating_add(run);
            run = (run * 2).min(SUBJECT_PAGE_BUCKETS_MAX);
        }
        Ok(page_of(rows, limit, |r| r.seq))
    }

    pub(super) async fn daily(
        tx: &mut Transaction<'static, DB>,
        g: i64,
        tenant: &TenantId,
        from: &str,
        until: &str,
        model_id: Option<&str>,
    ) -> Result<Vec<DailyRow>, StoreError> {
        let mut q = QueryBuilder::<DB>::new(
            "SELECT day, model_id, model_version, outcome, decisions FROM proj_daily WHERE generation = ",
        );
        q.push_bind(g)
            .push(" AND tenant_id = ")
            .push_bind(tenant.as_str().to_owned())
            .push(" AND day >= ")
            .push_bind(from.to_owned())
            .push(" AND day <= ")
            .push_bind(until.to_owned());
        if let Some(m) = model_id {
            q.push(" AND model_id = ").push_bind(m.to_owned());
        }
        q.push(" ORDER BY day, model_id, model_version, outcome");
        let rows: Vec<(String, String, String, String, i64)> =
            q.build_query_as().fetch_all(&mut **tx).await?;
        Ok(rows
            .into_iter()
            .map(
                |(day, model_id, model_version, outcome, decisions)| DailyRow {
                    day,
                    model_id,
                    model_version,
                    outcome,
                    decisions,
                },
            )
            .collect())
    }

    /// Every row of every view of one tenant, in the active generations.
    pub(super) async fn dump(
        tx: &mut Transaction<'static, DB>,
        tenant: &TenantId,
    ) -> Result<Views, StoreError> {
        let mut views = Views::default();
        let all = u32::MAX - 1;
        if let Some(g) = Self::active(tx, "decisions").await? {
            let mut after = None;
            loop {
                let f = DecisionQuery {
                    ascending: true,
                    after,
                    limit: PAGE_ROWS_MAX,
                    ..DecisionQuery::default()
                };
                let page = Self::search(tx, g, tenant, &f).await?;
                after = page.items.last().map(|r| r.seq);
                views.decisions.extend(page.items);
                if page.next_cursor.is_none() {
                    break;
                }
            }
        }
        if let Some(g) = Self::active(tx, "models").await? {
            views.models = Self::models(tx, g, tenant, None).await?;
        }
        if let Some(g) = Self::active(tx, "oversight").await? {
            let f = OversightQuery {
                limit: all,
                ..OversightQuery::default()
            };
            views.oversight = Self::oversight_actions(tx, g, tenant, &f).await?.items;
        }
        if let Some(g) = Self::active(tx, "subjects").await? {
            let mut q = Self::subject_select(g, tenant);
            let rows = q.build().fetch_all(&mut **tx).await?;
            views.subjects = rows
                .iter()
                .map(Self::subject)
                .collect::<Result<Vec<_>, _>>()?;
        }
        if let Some(g) = Self::active(tx, "daily").await? {
            views.daily = Self::daily(tx, g, tenant, "0000", "9999", None).await?;
        }
        views.sort();
        Ok(views)
    }
}
