//! Where the projections' state lives: the `proj_*` tables beside the ledger, on both backends,
//! and the queries the API serves from them.
//!
//! [`Store`] implements [`ViewStore`] for the runner of the `projections` crate. The SQL is
//! written once, in a macro expanded for each backend: the statements are the same but for
//! `min`/`max` (SQLite's scalar functions; `LEAST`/`GREATEST` on PostgreSQL), SQLite's
//! `INDEXED BY` hints, and on PostgreSQL plan modes and key-by-key forms for the runner's
//! statements (`generic_plans`, `pg_patch`, the decision facts), which must not depend on
//! statistics that lag behind; `QueryBuilder` writes each backend's placeholders. On PostgreSQL
//! every tenant-scoped statement runs in a transaction that sets the tenant for row-level
//! security, exactly as the ledger's do.

use std::collections::HashMap;

use ledger::record::EventType;
use ledger::types::{EventId, TenantId};
use projections::runner::{ProjectionState, Stuck, TargetPage, ViewStore};
use projections::views::DecisionPatch;
use projections::{DecisionFacts, Event, Views};
use serde::Serialize;

use super::backend::ViewBackend;
use super::postgres::PgDb;
use super::sqlite::SqliteDb;
use super::{Store, StoreError, db_int};

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

macro_rules! views_backend {
    ($module:ident, $Db:ty, $MIN:literal, $MAX:literal, $BY_EVENT:literal, $known:ty, $PATCH:path, $POSTGRES:literal) => {
        /// The projection SQL for one backend (see the module header).
        pub(crate) mod $module {
            use super::*;
            use sqlx::{QueryBuilder, Row, Transaction};
            use projections::views::{DecisionPatch, ModelDelta};
            use projections::{DailyRow, DecisionRow, ModelRow, OversightRow, SubjectRow};

            type Tx = Transaction<'static, $Db>;

            fn decision(r: &<$Db as sqlx::Database>::Row) -> Result<DecisionRow, StoreError> {
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

            const OVERSIGHT_COLUMNS: &str = "seq, event_id, event_type, decision_id, decision_known, actor, action, reason, captured_at_us";

            fn oversight(r: &<$Db as sqlx::Database>::Row) -> Result<OversightRow, StoreError> {
                let known: $known = r.try_get(4)?;
                Ok(OversightRow {
                    seq: uint(r.try_get(0)?)?,
                    event_id: event_id(&r.try_get::<String, _>(1)?)?,
                    event_type: r.try_get(2)?,
                    decision_id: event_id(&r.try_get::<String, _>(3)?)?,
                    decision_known: known != <$known>::default(),
                    actor: r.try_get(5)?,
                    action: r.try_get(6)?,
                    reason: r.try_get(7)?,
                    captured_at_us: r.try_get(8)?,
                })
            }

            /// The subject entries of generation `g` of a tenant, with what the ledger's row of
            /// each record adds (the table keeps only what locates the record: see migration
            /// `0006`); the caller adds conditions. The ledger row is matched to the bound
            /// tenant rather than to the entry's column, whose collation differs on
            /// PostgreSQL (migration `0007`) and would keep the planner from the ledger's key.
            fn subject_select(g: i64, tenant: &TenantId) -> QueryBuilder<$Db> {
                let mut q = QueryBuilder::<$Db>::new(
                    "SELECT s.subject_ref, s.seq, r.event_id, r.event_type, s.decision_id, r.captured_at_us FROM proj_subjects s JOIN records r ON r.seq = s.seq AND r.tenant_id = ",
                );
                q.push_bind(tenant.as_str().to_owned())
                    .push(" WHERE s.generation = ")
                    .push_bind(g)
                    .push(" AND s.tenant_id = ")
                    .push_bind(tenant.as_str().to_owned());
                q
            }

            fn subject(r: &<$Db as sqlx::Database>::Row) -> Result<SubjectRow, StoreError> {
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

            const MODEL_COLUMNS: &str = "model_id, model_version, first_seen_us, last_seen_us, decisions, reviews, overrides, contests, status, validation_ref, validated_at_us, approval_ref, approved_at_us, findings, last_change_seq";

            fn model(r: &<$Db as sqlx::Database>::Row) -> Result<ModelRow, StoreError> {
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

            pub(crate) async fn states(tx: &mut Tx) -> Result<Vec<ProjectionState>, StoreError> {
                let rows: Vec<(String, i64, i32, Option<i64>, Option<i32>)> = sqlx::query_as(
                    "SELECT name, active_generation, active_version, building_generation, building_version
                     FROM projection_state ORDER BY name",
                )
                .fetch_all(&mut **tx)
                .await?;
                rows.into_iter()
                    .map(|(name, generation, version, building, building_version)| {
                        Ok(ProjectionState {
                            name,
                            active_generation: generation,
                            active_version: u32::try_from(version)
                                .map_err(|e| corrupt("version", e))?,
                            building: match (building, building_version) {
                                (Some(g), Some(v)) => Some((
                                    g,
                                    u32::try_from(v).map_err(|e| corrupt("version", e))?,
                                )),
                                _ => None,
                            },
                        })
                    })
                    .collect()
            }

            pub(crate) async fn ensure(tx: &mut Tx, name: &str, version: u32) -> Result<(), StoreError> {
                let mut q = QueryBuilder::<$Db>::new(
                    "INSERT INTO projection_state (name, active_generation, active_version, next_generation) VALUES (",
                );
                q.push_bind(name.to_owned())
                    .push(", 1, ")
                    .push_bind(i32::try_from(version).unwrap_or(i32::MAX))
                    .push(", 2) ON CONFLICT (name) DO NOTHING");
                q.build().execute(&mut **tx).await?;
                if $POSTGRES {
                    // Queries read it as it fills, but the runner indexes it only once it has
                    // caught up (`index_generation`), as it does a rebuild's: the first catch-up
                    // over an existing ledger is as long as a rebuild.
                    sqlx::query("SELECT views_add_generation(name, active_generation, false) FROM projection_state WHERE name = $1")
                        .bind(name)
                        .execute(&mut **tx)
                        .await?;
                }
                Ok(())
            }

            pub(crate) async fn start_rebuild(tx: &mut Tx, name: &str, version: u32) -> Result<(i64, Option<i64>), StoreError> {
                let mut q = QueryBuilder::<$Db>::new(
                    "SELECT next_generation, building_generation FROM projection_state WHERE name = ",
                );
                q.push_bind(name.to_owned());
                let (generation, previous): (i64, Option<i64>) =
                    q.build_query_as().fetch_one(&mut **tx).await?;
                let mut q = QueryBuilder::<$Db>::new("UPDATE projection_state SET building_generation = ");
                q.push_bind(generation)
                    .push(", building_version = ")
                    .push_bind(i32::try_from(version).unwrap_or(i32::MAX))
                    .push(", next_generation = ")
                    .push_bind(generation + 1)
                    .push(" WHERE name = ")
                    .push_bind(name.to_owned());
                q.build().execute(&mut **tx).await?;
                if $POSTGRES {
                    // Nothing queries a generation being built: its secondary indexes wait
                    // until it has caught up (`activate`).
                    sqlx::query("SELECT views_add_generation($1, $2, false)")
                        .bind(name)
                        .bind(generation)
                        .execute(&mut **tx)
                        .await?;
                }
                Ok((generation, previous))
            }

            /// Builds the indexes a generation's partitions lack (PostgreSQL; SQLite keeps every
            /// index from the start, its generations sharing the tables); whether it built any.
            pub(crate) async fn index_generation(tx: &mut Tx, name: &str, generation: i64) -> Result<bool, StoreError> {
                if !$POSTGRES {
                    return Ok(false);
                }
                let mut q = QueryBuilder::<$Db>::new("SELECT views_index_generation(");
                q.push_bind(name.to_owned()).push(", ").push_bind(generation).push(")");
                Ok(q.build_query_scalar().fetch_one(&mut **tx).await?)
            }

            /// The state row is locked first (on PostgreSQL; SQLite's writer is alone anyway):
            /// another process finishing or restarting the same rebuild waits until this
            /// transaction is over, and then finds `building_generation` changed. `start_rebuild`
            /// takes the row first too, so the two never wait on each other's advisory lock.
            pub(crate) async fn activate(tx: &mut Tx, name: &str, generation: i64) -> Result<Option<i64>, StoreError> {
                let mut q = QueryBuilder::<$Db>::new(
                    "SELECT active_generation FROM projection_state WHERE name = ",
                );
                q.push_bind(name.to_owned())
                    .push(" AND building_generation = ")
                    .push_bind(generation);
                if $POSTGRES {
                    q.push(" FOR UPDATE");
                }
                let old: Option<i64> = q.build_query_scalar().fetch_optional(&mut **tx).await?;
                let Some(old) = old else {
                    return Ok(None);
                };
                // Built by sorting each partition once, in the transaction that lets queries at
                // it.
                index_generation(tx, name, generation).await?;
                let mut q = QueryBuilder::<$Db>::new(
                    "UPDATE projection_state SET active_generation = building_generation, active_version = building_version, building_generation = NULL, building_version = NULL WHERE name = ",
                );
                q.push_bind(name.to_owned())
                    .push(" AND building_generation = ")
                    .push_bind(generation);
                if q.build().execute(&mut **tx).await?.rows_affected() != 1 {
                    return Ok(None);
                }
                Ok(Some(old))
            }

            pub(crate) async fn purge_positions(tx: &mut Tx, name: &str, generation: i64, tenant: &TenantId) -> Result<(), StoreError> {
                let mut q = QueryBuilder::<$Db>::new("DELETE FROM projection_positions WHERE name = ");
                q.push_bind(name.to_owned())
                    .push(" AND generation = ")
                    .push_bind(generation)
                    .push(" AND tenant_id = ")
                    .push_bind(tenant.as_str().to_owned());
                q.build().execute(&mut **tx).await?;
                Ok(())
            }

            pub(crate) async fn positions(tx: &mut Tx, tenant: &TenantId) -> Result<HashMap<(String, i64), u64>, StoreError> {
                let mut q = QueryBuilder::<$Db>::new(
                    "SELECT name, generation, next_seq FROM projection_positions WHERE tenant_id = ",
                );
                q.push_bind(tenant.as_str().to_owned());
                let rows: Vec<(String, i64, i64)> = q.build_query_as().fetch_all(&mut **tx).await?;
                rows.into_iter()
                    .map(|(name, generation, next)| Ok(((name, generation), uint(next)?)))
                    .collect()
            }

            pub(crate) async fn stuck(tx: &mut Tx, tenant: &TenantId) -> Result<Vec<Stuck>, StoreError> {
                let mut q = QueryBuilder::<$Db>::new(
                    "SELECT name, generation, next_seq, stuck_error, stuck_since_us FROM projection_positions WHERE stuck_error IS NOT NULL AND tenant_id = ",
                );
                q.push_bind(tenant.as_str().to_owned()).push(" ORDER BY name, generation");
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

            /// Marks a position stuck, if it still is `seq` (a row is created at 0 for a
            /// generation that has applied nothing yet).
            pub(crate) async fn mark_stuck(tx: &mut Tx, tenant: &TenantId, name: &str, generation: i64, seq: u64, error: &str) -> Result<(), StoreError> {
                let mut q = QueryBuilder::<$Db>::new(
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
            pub(crate) async fn clear_stuck(tx: &mut Tx, tenant: &TenantId, name: Option<&str>) -> Result<u64, StoreError> {
                let mut q = QueryBuilder::<$Db>::new(
                    "UPDATE projection_positions SET stuck_error = NULL, stuck_since_us = NULL WHERE stuck_error IS NOT NULL AND tenant_id = ",
                );
                q.push_bind(tenant.as_str().to_owned());
                if let Some(name) = name {
                    q.push(" AND name = ").push_bind(name.to_owned());
                }
                Ok(q.build().execute(&mut **tx).await?.rows_affected())
            }

            /// Makes the transaction's prepared statements plan generically (PostgreSQL),
            /// without looking at their values. The runner's reads of the ledger (records, and
            /// decision facts) go by key; statistics lag behind a table that grows by millions
            /// of rows between two runs of autovacuum, and a plan from the values (a range past
            /// the last analysed row, taken for empty) then walked a whole table instead.
            pub(crate) async fn generic_plans(tx: &mut Tx) -> Result<(), StoreError> {
                if $POSTGRES {
                    sqlx::query("SET LOCAL plan_cache_mode = force_generic_plan").execute(&mut **tx).await?;
                }
                Ok(())
            }

            pub(crate) async fn events(tx: &mut Tx, tenant: &TenantId, from: u64, limit: u64) -> Result<Vec<Event>, StoreError> {
                generic_plans(tx).await?;
                let mut q = QueryBuilder::<$Db>::new(
                    "SELECT seq, event_id, event_type, captured_at_us, payload FROM records WHERE tenant_id = ",
                );
                q.push_bind(tenant.as_str().to_owned())
                    .push(" AND seq >= ")
                    .push_bind(db_int(from))
                    .push(" ORDER BY seq LIMIT ")
                    .push_bind(db_int(limit));
                let rows: Vec<EventTuple> = q.build_query_as().fetch_all(&mut **tx).await?;
                rows.into_iter().map(to_event).collect()
            }

            pub(crate) async fn facts(tx: &mut Tx, tenant: &TenantId, ids: &[EventId]) -> Result<Vec<(EventId, DecisionFacts)>, StoreError> {
                generic_plans(tx).await?;
                let mut out = Vec::new();
                for chunk in ids.chunks(INSERT_CHUNK_ROWS) {
                    // No condition on the event type (`DecisionFacts::of` keeps decisions only),
                    // so that the event-id index is the one cheap way to these rows.
                    let mut q;
                    if $POSTGRES {
                        // PostgreSQL: one lookup per id, forced by a lateral subquery that
                        // cannot be flattened (`OFFSET 0`). With an `IN` list and no statistics
                        // yet for a freshly loaded ledger, it walked every decision through
                        // another index, comparing each with the whole list.
                        q = QueryBuilder::<$Db>::new("SELECT r.seq, r.event_id, r.event_type, r.captured_at_us, r.payload FROM (VALUES ");
                        let mut sep = q.separated(", ");
                        for id in chunk {
                            sep.push("(").push_bind_unseparated(id.to_string()).push_unseparated(")");
                        }
                        q.push(") AS i (id) CROSS JOIN LATERAL (SELECT seq, event_id, event_type, captured_at_us, payload FROM records WHERE tenant_id = ")
                            .push_bind(tenant.as_str().to_owned())
                            .push(" AND event_id = i.id OFFSET 0) AS r");
                    } else {
                        q = QueryBuilder::<$Db>::new(concat!(
                            "SELECT seq, event_id, event_type, captured_at_us, payload FROM records",
                            $BY_EVENT,
                            " WHERE tenant_id = "
                        ));
                        q.push_bind(tenant.as_str().to_owned()).push(" AND event_id IN (");
                        let mut sep = q.separated(", ");
                        for id in chunk {
                            sep.push_bind(id.to_string());
                        }
                        q.push(")");
                    }
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

            /// Moves one position from `from` to `to`; `false` when it no longer holds `from`.
            async fn move_position(tx: &mut Tx, tenant: &TenantId, page: &TargetPage) -> Result<bool, StoreError> {
                let mut q;
                if page.from == 0 {
                    q = QueryBuilder::<$Db>::new(
                        "INSERT INTO projection_positions (name, generation, tenant_id, next_seq) VALUES (",
                    );
                    let mut sep = q.separated(", ");
                    sep.push_bind(page.name.to_owned());
                    sep.push_bind(page.generation);
                    sep.push_bind(tenant.as_str().to_owned());
                    sep.push_bind(db_int(page.to));
                    // A row at 0 exists when the generation was marked stuck at its first
                    // record and then retried.
                    q.push(") ON CONFLICT (name, generation, tenant_id) DO UPDATE SET next_seq = excluded.next_seq WHERE projection_positions.next_seq = 0");
                } else {
                    q = QueryBuilder::<$Db>::new("UPDATE projection_positions SET next_seq = ");
                    q.push_bind(db_int(page.to))
                        .push(" WHERE name = ")
                        .push_bind(page.name.to_owned())
                        .push(" AND generation = ")
                        .push_bind(page.generation)
                        .push(" AND tenant_id = ")
                        .push_bind(tenant.as_str().to_owned())
                        .push(" AND next_seq = ")
                        .push_bind(db_int(page.from));
                }
                Ok(q.build().execute(&mut **tx).await?.rows_affected() == 1)
            }

            /// Writes the pages; `false` (the caller rolls back) when a position moved.
            pub(crate) async fn commit(tx: &mut Tx, tenant: &TenantId, pages: &[TargetPage]) -> Result<bool, StoreError> {
                let t = tenant.as_str();
                for page in pages {
                    if !move_position(tx, tenant, page).await? {
                        return Ok(false);
                    }
                    let g = page.generation;
                    let c = &page.changes;
                    let inserts: Vec<&DecisionRow> = c.decision_inserts.values().collect();
                    for chunk in inserts.chunks(INSERT_CHUNK_ROWS) {
                        let mut q = QueryBuilder::<$Db>::new(format!(
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
                    $PATCH(tx, g, t, &patches).await?;
                    for ((model_id, version), d) in &c.models {
                        upsert_model(tx, g, t, model_id, version, d).await?;
                    }
                    let outcomes: Vec<_> = c.model_outcomes.iter().collect();
                    for chunk in outcomes.chunks(INSERT_CHUNK_ROWS) {
                        let mut q = QueryBuilder::<$Db>::new(
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
                    for chunk in c.oversight.chunks(INSERT_CHUNK_ROWS) {
                        let mut q = QueryBuilder::<$Db>::new(format!(
                            "INSERT INTO proj_oversight (generation, tenant_id, {OVERSIGHT_COLUMNS}) "
                        ));
                        q.push_values(chunk, |mut b, r| {
                            b.push_bind(g)
                                .push_bind(t.to_owned())
                                .push_bind(db_int(r.seq))
                                .push_bind(r.event_id.to_string())
                                .push_bind(r.event_type.clone())
                                .push_bind(r.decision_id.to_string())
                                .push_bind(<$known>::from(r.decision_known))
                                .push_bind(r.actor.clone())
                                .push_bind(r.action.clone())
                                .push_bind(r.reason.clone())
                                .push_bind(r.captured_at_us);
                        });
                        q.build().execute(&mut **tx).await?;
                    }
                    for chunk in c.subjects.chunks(INSERT_CHUNK_ROWS) {
                        let mut q = QueryBuilder::<$Db>::new(
                            "INSERT INTO proj_subjects (generation, tenant_id, subject_ref, seq, decision_id) ",
                        );
                        q.push_values(chunk, |mut b, r| {
                            b.push_bind(g)
                                .push_bind(t.to_owned())
                                .push_bind(r.subject_ref.clone())
                                .push_bind(db_int(r.seq))
                                .push_bind(r.decision_id.map(|d| d.to_string()));
                        });
                        q.build().execute(&mut **tx).await?;
                    }
                    let daily: Vec<_> = c.daily.iter().collect();
                    for chunk in daily.chunks(INSERT_CHUNK_ROWS) {
                        let mut q = QueryBuilder::<$Db>::new(
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

            async fn upsert_model(tx: &mut Tx, g: i64, t: &str, model_id: &str, version: &str, d: &ModelDelta) -> Result<(), StoreError> {
                let mut q = QueryBuilder::<$Db>::new(format!(
                    "INSERT INTO proj_models (generation, tenant_id, {MODEL_COLUMNS}) VALUES ("
                ));
                let (validation_ref, validated_at) = d.validation.clone().map_or((None, None), |(r, at)| (r, Some(at)));
                let (approval_ref, approved_at) = d.approval.clone().map_or((None, None), |(r, at)| (r, Some(at)));
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
                sep.push_bind(d.status.clone().unwrap_or_else(|| "unregistered".to_owned()));
                sep.push_bind(validation_ref);
                sep.push_bind(validated_at);
                sep.push_bind(approval_ref);
                sep.push_bind(approved_at);
                sep.push_bind(d.findings);
                sep.push_bind(d.last_change_seq.map(db_int));
                q.push(concat!(
                    ") ON CONFLICT (generation, tenant_id, model_id, model_version) DO UPDATE SET ",
                    "first_seen_us = COALESCE(", $MIN, "(proj_models.first_seen_us, excluded.first_seen_us), proj_models.first_seen_us, excluded.first_seen_us), ",
                    "last_seen_us = COALESCE(", $MAX, "(proj_models.last_seen_us, excluded.last_seen_us), proj_models.last_seen_us, excluded.last_seen_us), ",
                    "decisions = proj_models.decisions + excluded.decisions, ",
                    "reviews = proj_models.reviews + excluded.reviews, ",
                    "overrides = proj_models.overrides + excluded.overrides, ",
                    "contests = proj_models.contests + excluded.contests, ",
                    "findings = proj_models.findings + excluded.findings, ",
                    "validation_ref = CASE WHEN excluded.validated_at_us IS NULL THEN proj_models.validation_ref ELSE excluded.validation_ref END, ",
                    "validated_at_us = COALESCE(excluded.validated_at_us, proj_models.validated_at_us), ",
                    "approval_ref = CASE WHEN excluded.approved_at_us IS NULL THEN proj_models.approval_ref ELSE excluded.approval_ref END, ",
                    "approved_at_us = COALESCE(excluded.approved_at_us, proj_models.approved_at_us), ",
                    "last_change_seq = COALESCE(excluded.last_change_seq, proj_models.last_change_seq), ",
                    "status = CASE WHEN "
                ));
                q.push_bind(d.status.is_some())
                    .push(" THEN excluded.status ELSE proj_models.status END");
                q.build().execute(&mut **tx).await?;
                Ok(())
            }

            /// Refreshes the planner's statistics of the view tables (sampled, so it stays cheap
            /// at millions of rows). Without them SQLite walks the primary key for every
            /// filtered search, and PostgreSQL takes a new generation for empty. On PostgreSQL
            /// only the owner may ANALYZE: `analyze_views()` (migrations 0010 and 0011) does it
            /// for the service role, on the active generations' partitions.
            pub(crate) async fn optimize(tx: &mut Tx) -> Result<(), StoreError> {
                if $POSTGRES {
                    sqlx::query("SELECT analyze_views()").execute(&mut **tx).await?;
                    return Ok(());
                }
                for sql in ["PRAGMA analysis_limit = 1000", "ANALYZE proj_decisions", "ANALYZE proj_subjects", "ANALYZE proj_oversight"] {
                    sqlx::query(sql).execute(&mut **tx).await?;
                }
                Ok(())
            }

            /// The active generation of a projection (`None` before it first ran).
            pub(crate) async fn active(tx: &mut Tx, name: &str) -> Result<Option<i64>, StoreError> {
                let mut q = QueryBuilder::<$Db>::new("SELECT active_generation FROM projection_state WHERE name = ");
                q.push_bind(name.to_owned());
                Ok(q.build_query_scalar().fetch_optional(&mut **tx).await?)
            }

            pub(crate) async fn search(tx: &mut Tx, g: i64, tenant: &TenantId, f: &DecisionQuery) -> Result<Page<DecisionRow>, StoreError> {
                let mut q = QueryBuilder::<$Db>::new(format!(
                    "SELECT {DECISION_COLUMNS} FROM proj_decisions WHERE generation = "
                ));
                q.push_bind(g).push(" AND tenant_id = ").push_bind(tenant.as_str().to_owned());
                // A subject's decisions are found through the subject index (the subjects view),
                // which lists each decision's sequence number under its subject: the decisions
                // view has no index of its own by subject, whose random-order inserts would cost
                // a page write each.
                if let Some(subject) = &f.subject_ref
                    && let Some(subjects) = active(tx, "subjects").await?
                {
                    q.push(" AND seq IN (SELECT seq FROM proj_subjects WHERE generation = ")
                        .push_bind(subjects)
                        .push(" AND tenant_id = ")
                        .push_bind(tenant.as_str().to_owned())
                        .push(" AND subject_ref = ")
                        .push_bind(subject.clone())
                        .push(")");
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
                // Capture time never decreases along a chain, so a capture-time range is a range
                // of sequence numbers, which every index of the view ends in (or starts with,
                // for the primary key). The time conditions stay as well.
                if let Some(from) = f.captured_from {
                    q.push(" AND seq >= ").push_bind(first_captured_at_or_after(tx, tenant, from).await?);
                }
                if let Some(until) = f.captured_until {
                    q.push(" AND seq < ").push_bind(first_captured_at_or_after(tx, tenant, until).await?);
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
                    q.push(if f.ascending { " AND seq > " } else { " AND seq < " })
                        .push_bind(db_int(after));
                }
                // Ordered by `seq + 0` (the same order), the query cannot walk the primary key
                // and must find its rows by its filters, then sort them: see
                // `narrow_decided_range`.
                let key = if narrow_decided_range(tx, g, tenant, f).await? { "seq + 0" } else { "seq" };
                q.push(format!(" ORDER BY {key} {} LIMIT ", if f.ascending { "ASC" } else { "DESC" }))
                    .push_bind(i64::from(f.limit) + 1);
                let rows = q.build().fetch_all(&mut **tx).await?;
                let rows = rows.iter().map(decision).collect::<Result<Vec<_>, _>>()?;
                Ok(page_of(rows, f.limit, |r| r.seq))
            }

            /// Whether the search has a decision-time range that holds fewer than
            /// [`SORTED_SEARCH_ROWS_MAX`] decisions. Decision times are not ordered along the
            /// chain, so the rows of such a range lie anywhere in sequence order; a planner that
            /// walks the primary key in order and filters (to stop after `limit` rows) reads
            /// the whole view when the range is old — it cannot know where the rows are. For a
            /// narrow range it is cheaper to read the range from the decision-time index
            /// (`proj_decisions_by_decided`; on PostgreSQL each partition's `…_by_decided`) and
            /// sort, which the caller then forces. Counting stops at the threshold, so
            /// this costs at most that many index entries.
            async fn narrow_decided_range(tx: &mut Tx, g: i64, tenant: &TenantId, f: &DecisionQuery) -> Result<bool, StoreError> {
                if f.decided_from.is_none() && f.decided_until.is_none() {
                    return Ok(false);
                }
                let mut q = QueryBuilder::<$Db>::new("SELECT COUNT(*) FROM (SELECT 1 FROM proj_decisions WHERE generation = ");
                q.push_bind(g).push(" AND tenant_id = ").push_bind(tenant.as_str().to_owned());
                if let Some(from) = f.decided_from {
                    q.push(" AND decided_at_us >= ").push_bind(from);
                }
                if let Some(until) = f.decided_until {
                    q.push(" AND decided_at_us < ").push_bind(until);
                }
                q.push(" LIMIT ").push_bind(SORTED_SEARCH_ROWS_MAX).push(") n");
                let rows: i64 = q.build_query_scalar().fetch_one(&mut **tx).await?;
                Ok(rows < SORTED_SEARCH_ROWS_MAX)
            }

            /// The first sequence number of the tenant's chain captured at or after `at_us`
            /// (the chain's length if none): a binary search over the ledger's primary key,
            /// since capture time never decreases along a chain. Records appended meanwhile
            /// come after the length read first, so they cannot move the answer.
            async fn first_captured_at_or_after(tx: &mut Tx, tenant: &TenantId, at_us: i64) -> Result<i64, StoreError> {
                let mut q = QueryBuilder::<$Db>::new("SELECT COALESCE(MAX(seq) + 1, 0) FROM records WHERE tenant_id = ");
                q.push_bind(tenant.as_str().to_owned());
                let (mut low, mut high): (i64, i64) = (0, q.build_query_scalar().fetch_one(&mut **tx).await?);
                while low < high {
                    let mid = low + (high - low) / 2;
                    let mut q = QueryBuilder::<$Db>::new("SELECT captured_at_us FROM records WHERE tenant_id = ");
                    q.push_bind(tenant.as_str().to_owned()).push(" AND seq = ").push_bind(mid);
                    let captured: i64 = q.build_query_scalar().fetch_one(&mut **tx).await?;
                    if captured < at_us {
                        low = mid + 1;
                    } else {
                        high = mid;
                    }
                }
                Ok(low)
            }

            pub(crate) async fn decision_by_id(tx: &mut Tx, g: i64, tenant: &TenantId, id: EventId) -> Result<Option<DecisionRow>, StoreError> {
                let mut q = QueryBuilder::<$Db>::new(format!(
                    "SELECT {DECISION_COLUMNS} FROM proj_decisions WHERE generation = "
                ));
                // The ledger's event-id index gives the sequence number, the view's key (the
                // view keeps no index by event id).
                q.push_bind(g)
                    .push(" AND tenant_id = ")
                    .push_bind(tenant.as_str().to_owned())
                    .push(concat!(" AND seq = (SELECT seq FROM records", $BY_EVENT, " WHERE tenant_id = "))
                    .push_bind(tenant.as_str().to_owned())
                    .push(" AND event_id = ")
                    .push_bind(id.to_string())
                    .push(")");
                q.build().fetch_optional(&mut **tx).await?.as_ref().map(decision).transpose()
            }

            pub(crate) async fn models(tx: &mut Tx, g: i64, tenant: &TenantId, model_id: Option<&str>) -> Result<Vec<ModelRow>, StoreError> {
                let mut q = QueryBuilder::<$Db>::new(format!(
                    "SELECT {MODEL_COLUMNS} FROM proj_models WHERE generation = "
                ));
                q.push_bind(g).push(" AND tenant_id = ").push_bind(tenant.as_str().to_owned());
                if let Some(m) = model_id {
                    q.push(" AND model_id = ").push_bind(m.to_owned());
                }
                q.push(" ORDER BY model_id, model_version");
                let rows = q.build().fetch_all(&mut **tx).await?;
                let mut models = rows.iter().map(model).collect::<Result<Vec<_>, _>>()?;
                let mut q = QueryBuilder::<$Db>::new(
                    "SELECT model_id, model_version, outcome, decisions FROM proj_model_outcomes WHERE generation = ",
                );
                q.push_bind(g).push(" AND tenant_id = ").push_bind(tenant.as_str().to_owned());
                if let Some(m) = model_id {
                    q.push(" AND model_id = ").push_bind(m.to_owned());
                }
                let outcomes: Vec<(String, String, String, i64)> = q.build_query_as().fetch_all(&mut **tx).await?;
                let mut by_model: HashMap<(String, String), Vec<(String, i64)>> = HashMap::new();
                for (m, v, o, n) in outcomes {
                    by_model.entry((m, v)).or_default().push((o, n));
                }
                for row in &mut models {
                    if let Some(list) = by_model.remove(&(row.model_id.clone(), row.model_version.clone())) {
                        row.outcomes = list.into_iter().collect();
                    }
                }
                Ok(models)
            }

            pub(crate) async fn oversight_actions(tx: &mut Tx, g: i64, tenant: &TenantId, f: &OversightQuery) -> Result<Page<OversightRow>, StoreError> {
                let mut q = QueryBuilder::<$Db>::new(format!(
                    "SELECT {OVERSIGHT_COLUMNS} FROM proj_oversight WHERE generation = "
                ));
                q.push_bind(g).push(" AND tenant_id = ").push_bind(tenant.as_str().to_owned());
                if let Some(d) = f.decision_id {
                    q.push(" AND decision_id = ").push_bind(d.to_string());
                }
                if let Some(a) = &f.actor {
                    q.push(" AND actor = ").push_bind(a.clone());
                }
                if let Some(e) = &f.event_type {
                    q.push(" AND event_type = ").push_bind(e.clone());
                }
                if let Some(after) = f.after {
                    q.push(" AND seq < ").push_bind(db_int(after));
                }
                q.push(" ORDER BY seq DESC LIMIT ").push_bind(i64::from(f.limit) + 1);
                let rows = q.build().fetch_all(&mut **tx).await?;
                let rows = rows.iter().map(oversight).collect::<Result<Vec<_>, _>>()?;
                Ok(page_of(rows, f.limit, |r| r.seq))
            }

            pub(crate) async fn subject_page(tx: &mut Tx, g: i64, tenant: &TenantId, subject_ref: &str, after: Option<u64>, limit: u32) -> Result<Page<SubjectRow>, StoreError> {
                let mut q = subject_select(g, tenant);
                q.push(" AND s.subject_ref = ")
                    .push_bind(subject_ref.to_owned());
                if let Some(after) = after {
                    q.push(" AND s.seq > ").push_bind(db_int(after));
                }
                q.push(" ORDER BY s.seq LIMIT ").push_bind(i64::from(limit) + 1);
                let rows = q.build().fetch_all(&mut **tx).await?;
                let rows = rows.iter().map(subject).collect::<Result<Vec<_>, _>>()?;
                Ok(page_of(rows, limit, |r| r.seq))
            }

            pub(crate) async fn daily(tx: &mut Tx, g: i64, tenant: &TenantId, from: &str, until: &str, model_id: Option<&str>) -> Result<Vec<DailyRow>, StoreError> {
                let mut q = QueryBuilder::<$Db>::new(
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
                let rows: Vec<(String, String, String, String, i64)> = q.build_query_as().fetch_all(&mut **tx).await?;
                Ok(rows
                    .into_iter()
                    .map(|(day, model_id, model_version, outcome, decisions)| DailyRow {
                        day,
                        model_id,
                        model_version,
                        outcome,
                        decisions,
                    })
                    .collect())
            }

            /// Every row of every view of one tenant, in the active generations.
            pub(crate) async fn dump(tx: &mut Tx, tenant: &TenantId) -> Result<Views, StoreError> {
                let mut views = Views::default();
                let all = u32::MAX - 1;
                if let Some(g) = active(tx, "decisions").await? {
                    let mut after = None;
                    loop {
                        let page = search(tx, g, tenant, &DecisionQuery { ascending: true, after, limit: PAGE_ROWS_MAX, ..DecisionQuery::default() }).await?;
                        after = page.items.last().map(|r| r.seq);
                        views.decisions.extend(page.items);
                        if page.next_cursor.is_none() {
                            break;
                        }
                    }
                }
                if let Some(g) = active(tx, "models").await? {
                    views.models = models(tx, g, tenant, None).await?;
                }
                if let Some(g) = active(tx, "oversight").await? {
                    let f = OversightQuery { limit: all, ..OversightQuery::default() };
                    views.oversight = oversight_actions(tx, g, tenant, &f).await?.items;
                }
                if let Some(g) = active(tx, "subjects").await? {
                    let mut q = subject_select(g, tenant);
                    let rows = q.build().fetch_all(&mut **tx).await?;
                    views.subjects = rows.iter().map(subject).collect::<Result<Vec<_>, _>>()?;
                }
                if let Some(g) = active(tx, "daily").await? {
                    views.daily = daily(tx, g, tenant, "0000", "9999", None).await?;
                }
                views.sort();
                Ok(views)
            }
        }
    };
}

views_backend!(
    sqlite_views,
    sqlx::Sqlite,
    "min",
    "max",
    " INDEXED BY records_by_event_id",
    i64,
    sqlite_patch,
    false
);
views_backend!(
    pg_views,
    sqlx::Postgres,
    "LEAST",
    "GREATEST",
    "",
    bool,
    pg_patch,
    true
);

/// Deletes up to `limit` rows of a retired generation from `table` for `tenant` (SQLite, where
/// every generation shares the tables); returns how many went.
async fn sqlite_purge_chunk(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    (table, keys): (&str, &str),
    generation: i64,
    tenant: &TenantId,
    limit: i64,
) -> Result<u64, StoreError> {
    // `table` and `keys` come from `TABLE_KEYS`, never from input.
    let deleted = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {table} WHERE generation = ?1 AND tenant_id = ?2 AND ({keys}) IN \
         (SELECT {keys} FROM {table} WHERE generation = ?1 AND tenant_id = ?2 LIMIT ?3)"
    )))
    .bind(generation)
    .bind(tenant.as_str())
    .bind(limit)
    .execute(&mut **tx)
    .await?;
    Ok(deleted.rows_affected())
}

/// Drops a retired generation's partitions (PostgreSQL), every tenant's rows at once.
async fn pg_drop_generation(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    name: &str,
    generation: i64,
) -> Result<(), StoreError> {
    sqlx::query("SELECT views_drop_generation($1, $2)")
        .bind(name)
        .bind(generation)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The assignments of the follow-up UPDATE: [`DecisionPatch::apply_to`] in SQL, from a patch
/// row `p` (the larger of two sequence numbers by `max`, SQLite's or PostgreSQL's `GREATEST`).
macro_rules! patch_assignments {
    ($MAX:literal) => {
        concat!(
            "reviews = proj_decisions.reviews + p.reviews, ",
            "overrides = proj_decisions.overrides + p.overrides, ",
            "contests = proj_decisions.contests + p.contests, ",
            "explanation_requests = proj_decisions.explanation_requests + p.explanation_requests, ",
            "submissions = proj_decisions.submissions + p.submissions, ",
            "status = COALESCE(p.status, proj_decisions.status), ",
            "current_outcome = COALESCE(p.current_outcome, proj_decisions.current_outcome), ",
            "last_reviewer = COALESCE(p.last_reviewer, proj_decisions.last_reviewer), ",
            "last_event_seq = ",
            $MAX,
            "(proj_decisions.last_event_seq, p.last_event_seq) "
        )
    };
}

/// Follow-ups to decisions of earlier pages on SQLite: one UPDATE per 500 decisions, joined to
/// a `VALUES` list by the decision's sequence number (its row's primary key; a page names each
/// decision once).
async fn sqlite_patch(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    g: i64,
    t: &str,
    patches: &[&DecisionPatch],
) -> Result<(), StoreError> {
    for chunk in patches.chunks(INSERT_CHUNK_ROWS) {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "WITH p (seq, reviews, overrides, contests, explanation_requests, submissions, status, current_outcome, last_reviewer, last_event_seq) AS (",
        );
        q.push_values(chunk, |mut b, p| {
            b.push_bind(db_int(p.decision_seq))
                .push_bind(p.reviews)
                .push_bind(p.overrides)
                .push_bind(p.contests)
                .push_bind(p.explanation_requests)
                .push_bind(p.submissions)
                .push_bind(p.status.clone())
                .push_bind(p.current_outcome.clone())
                .push_bind(p.last_reviewer.clone())
                .push_bind(db_int(p.last_event_seq));
        });
        q.push(concat!(
            ") UPDATE proj_decisions SET ",
            patch_assignments!("max"),
            "FROM p WHERE proj_decisions.generation = "
        ))
        .push_bind(g)
        .push(" AND proj_decisions.tenant_id = ")
        .push_bind(t.to_owned())
        .push(" AND proj_decisions.seq = p.seq");
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Follow-ups to decisions of earlier pages on PostgreSQL: one UPDATE for the whole page, its
/// patches passed as arrays and joined by the decision's sequence number, which also selects the
/// rows (`seq = ANY($1)`) so that they are found by primary-key lookups. The page transaction
/// plans it with its values (`plan_cache_mode = force_custom_plan`): the generation's partition
/// is chosen while planning, and the planner sees how many keys it looks up and how large the
/// partition is now. A generic plan, cached by the connection, was made once, when a new
/// generation's partition was nearly empty: it hashed the whole partition for every page (40 s
/// for one statement at 300,000 records). Planned with its values on the single table the views
/// were before partitioning, the planner had taken a new generation for empty from statistics
/// of the old one and read all of it through another index.
async fn pg_patch(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    g: i64,
    t: &str,
    patches: &[&DecisionPatch],
) -> Result<(), StoreError> {
    if patches.is_empty() {
        return Ok(());
    }
    let column =
        |f: &dyn Fn(&DecisionPatch) -> i64| patches.iter().map(|p| f(p)).collect::<Vec<i64>>();
    let text = |f: &dyn Fn(&DecisionPatch) -> Option<String>| {
        patches
            .iter()
            .map(|p| f(p))
            .collect::<Vec<Option<String>>>()
    };
    sqlx::query(concat!(
        "UPDATE proj_decisions SET ",
        patch_assignments!("GREATEST"),
        "FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], ",
        "$7::text[], $8::text[], $9::text[], $10::int8[]) ",
        "AS p (seq, reviews, overrides, contests, explanation_requests, submissions, status, ",
        "current_outcome, last_reviewer, last_event_seq) ",
        "WHERE proj_decisions.generation = $11 AND proj_decisions.tenant_id = $12 ",
        "AND proj_decisions.seq = ANY($1) AND proj_decisions.seq = p.seq"
    ))
    .bind(column(&|p| db_int(p.decision_seq)))
    .bind(column(&|p| p.reviews))
    .bind(column(&|p| p.overrides))
    .bind(column(&|p| p.contests))
    .bind(column(&|p| p.explanation_requests))
    .bind(column(&|p| p.submissions))
    .bind(text(&|p| p.status.clone()))
    .bind(text(&|p| p.current_outcome.clone()))
    .bind(text(&|p| p.last_reviewer.clone()))
    .bind(column(&|p| db_int(p.last_event_seq)))
    .bind(g)
    .bind(t)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

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
    /// A transaction for view statements: `BEGIN IMMEDIATE` on the single writer for a write
    /// (the write lock is taken up front, so it cannot fail half-way for a busy database), a read
    /// transaction on the reader pool otherwise.
    async fn view_tx(&self, write: bool) -> Result<SqliteTx, StoreError> {
        Ok(if write {
            self.writer_pool().begin_with("BEGIN IMMEDIATE").await?
        } else {
            self.reader_pool().begin().await?
        })
    }
}

impl PgDb {
    /// A transaction for view statements, with the tenant set for row-level security when the
    /// statements touch a tenant's rows.
    async fn view_tx(&self, tenant: Option<&TenantId>) -> Result<PgTx, StoreError> {
        match tenant {
            Some(t) => self.tenant_tx(t).await,
            None => Ok(self.pool().begin().await?),
        }
    }
}

#[async_trait::async_trait]
impl ViewBackend for SqliteDb {
    async fn view_states(&self) -> Result<Vec<ProjectionState>, StoreError> {
        let mut tx = self.view_tx(false).await?;
        let out = sqlite_views::states(&mut tx).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn ensure_view(&self, name: &str, version: u32) -> Result<(), StoreError> {
        let mut tx = self.view_tx(true).await?;
        sqlite_views::ensure(&mut tx, name, version).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn start_rebuild(
        &self,
        name: &str,
        version: u32,
    ) -> Result<(i64, Option<i64>), StoreError> {
        let mut tx = self.view_tx(true).await?;
        let out = sqlite_views::start_rebuild(&mut tx, name, version).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn activate(&self, name: &str, generation: i64) -> Result<Option<i64>, StoreError> {
        let mut tx = self.view_tx(true).await?;
        let out = sqlite_views::activate(&mut tx, name, generation).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Every generation shares the tables on SQLite, which has one writer: the rows go in
    /// chunks, so that appends and pages are never held up for long.
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
        sqlite_views::purge_positions(&mut tx, name, generation, tenant).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn positions(
        &self,
        tenant: &TenantId,
    ) -> Result<HashMap<(String, i64), u64>, StoreError> {
        let mut tx = self.view_tx(false).await?;
        let out = sqlite_views::positions(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn stuck(&self, tenant: &TenantId) -> Result<Vec<Stuck>, StoreError> {
        let mut tx = self.view_tx(false).await?;
        let out = sqlite_views::stuck(&mut tx, tenant).await?;
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
        sqlite_views::mark_stuck(&mut tx, tenant, name, generation, seq, error).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn clear_stuck(&self, tenant: &TenantId, name: Option<&str>) -> Result<u64, StoreError> {
        let mut tx = self.view_tx(true).await?;
        let out = sqlite_views::clear_stuck(&mut tx, tenant, name).await?;
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
        let out = sqlite_views::events(&mut tx, tenant, from, limit).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn facts(
        &self,
        tenant: &TenantId,
        ids: &[EventId],
    ) -> Result<Vec<(EventId, DecisionFacts)>, StoreError> {
        let mut tx = self.view_tx(false).await?;
        let out = sqlite_views::facts(&mut tx, tenant, ids).await?;
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

    /// SQLite has one writer.
    fn commit_lanes(&self) -> usize {
        1
    }

    async fn commit_pages(
        &self,
        tenant: &TenantId,
        pages: &[TargetPage],
    ) -> Result<bool, StoreError> {
        let mut tx = self.view_tx(true).await?;
        // A moved position must roll back what earlier pages of the same batch wrote.
        if sqlite_views::commit(&mut tx, tenant, pages).await? {
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
        let mut tx = self.view_tx(false).await?;
        let g = active_of(
            sqlite_views::active(&mut tx, "decisions").await?,
            "decisions",
        )?;
        let out = sqlite_views::search(&mut tx, g, tenant, query).await?;
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
            sqlite_views::active(&mut tx, "decisions").await?,
            "decisions",
        )?;
        let out = match sqlite_views::decision_by_id(&mut tx, g, tenant, id).await? {
            None => None,
            Some(row) => {
                let o = active_of(
                    sqlite_views::active(&mut tx, "oversight").await?,
                    "oversight",
                )?;
                let f = actions_of(id);
                let page = sqlite_views::oversight_actions(&mut tx, o, tenant, &f).await?;
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
        let g = active_of(sqlite_views::active(&mut tx, "models").await?, "models")?;
        let out = sqlite_views::models(&mut tx, g, tenant, model_id).await?;
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
            sqlite_views::active(&mut tx, "oversight").await?,
            "oversight",
        )?;
        let out = sqlite_views::oversight_actions(&mut tx, g, tenant, query).await?;
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
        let g = active_of(sqlite_views::active(&mut tx, "subjects").await?, "subjects")?;
        let out = sqlite_views::subject_page(&mut tx, g, tenant, subject_ref, after, limit).await?;
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
        let g = active_of(sqlite_views::active(&mut tx, "daily").await?, "daily")?;
        let out = sqlite_views::daily(&mut tx, g, tenant, from, until, model_id).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn dump_views(&self, tenant: &TenantId) -> Result<Views, StoreError> {
        let mut tx = self.view_tx(false).await?;
        let out = sqlite_views::dump(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(out)
    }
}

#[async_trait::async_trait]
impl ViewBackend for PgDb {
    async fn view_states(&self) -> Result<Vec<ProjectionState>, StoreError> {
        let mut tx = self.view_tx(None).await?;
        let out = pg_views::states(&mut tx).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn ensure_view(&self, name: &str, version: u32) -> Result<(), StoreError> {
        let mut tx = self.view_tx(None).await?;
        pg_views::ensure(&mut tx, name, version).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn start_rebuild(
        &self,
        name: &str,
        version: u32,
    ) -> Result<(i64, Option<i64>), StoreError> {
        let mut tx = self.view_tx(None).await?;
        let out = pg_views::start_rebuild(&mut tx, name, version).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn activate(&self, name: &str, generation: i64) -> Result<Option<i64>, StoreError> {
        let mut tx = self.view_tx(None).await?;
        let out = pg_views::activate(&mut tx, name, generation).await?;
        tx.commit().await?;
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
        let mut tx = self.view_tx(None).await?;
        pg_drop_generation(&mut tx, name, generation).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn purge_positions(
        &self,
        tenant: &TenantId,
        name: &str,
        generation: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.view_tx(Some(tenant)).await?;
        pg_views::purge_positions(&mut tx, name, generation, tenant).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn positions(
        &self,
        tenant: &TenantId,
    ) -> Result<HashMap<(String, i64), u64>, StoreError> {
        let mut tx = self.view_tx(Some(tenant)).await?;
        let out = pg_views::positions(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn stuck(&self, tenant: &TenantId) -> Result<Vec<Stuck>, StoreError> {
        let mut tx = self.view_tx(Some(tenant)).await?;
        let out = pg_views::stuck(&mut tx, tenant).await?;
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
        pg_views::mark_stuck(&mut tx, tenant, name, generation, seq, error).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn clear_stuck(&self, tenant: &TenantId, name: Option<&str>) -> Result<u64, StoreError> {
        let mut tx = self.view_tx(Some(tenant)).await?;
        let out = pg_views::clear_stuck(&mut tx, tenant, name).await?;
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
        let out = pg_views::events(&mut tx, tenant, from, limit).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn facts(
        &self,
        tenant: &TenantId,
        ids: &[EventId],
    ) -> Result<Vec<(EventId, DecisionFacts)>, StoreError> {
        let mut tx = self.view_tx(Some(tenant)).await?;
        let out = pg_views::facts(&mut tx, tenant, ids).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn index_generation(&self, name: &str, generation: i64) -> Result<bool, StoreError> {
        let mut tx = self.view_tx(None).await?;
        let out = pg_views::index_generation(&mut tx, name, generation).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn optimize(&self) -> Result<(), StoreError> {
        let mut tx = self.view_tx(None).await?;
        pg_views::optimize(&mut tx).await?;
        tx.commit().await?;
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
        // A page need not wait for its WAL flush: a page lost in a crash is applied again from
        // the position committed with it, and nothing acknowledged to a client depends on it.
        // (The ledger's own commits stay synchronous.)
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut *tx)
            .await?;
        // The follow-up UPDATE is planned with its page's values (see `pg_patch`).
        sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan")
            .execute(&mut *tx)
            .await?;
        // A moved position must roll back what earlier pages of the same batch wrote.
        if pg_views::commit(&mut tx, tenant, pages).await? {
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
        let g = active_of(pg_views::active(&mut tx, "decisions").await?, "decisions")?;
        let out = pg_views::search(&mut tx, g, tenant, query).await?;
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
        let g = active_of(pg_views::active(&mut tx, "decisions").await?, "decisions")?;
        let out = match pg_views::decision_by_id(&mut tx, g, tenant, id).await? {
            None => None,
            Some(row) => {
                let o = active_of(pg_views::active(&mut tx, "oversight").await?, "oversight")?;
                let f = actions_of(id);
                let page = pg_views::oversight_actions(&mut tx, o, tenant, &f).await?;
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
        let g = active_of(pg_views::active(&mut tx, "models").await?, "models")?;
        let out = pg_views::models(&mut tx, g, tenant, model_id).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn oversight_actions(
        &self,
        tenant: &TenantId,
        query: &OversightQuery,
    ) -> Result<Page<projections::OversightRow>, StoreError> {
        let mut tx = self.view_tx(Some(tenant)).await?;
        let g = active_of(pg_views::active(&mut tx, "oversight").await?, "oversight")?;
        let out = pg_views::oversight_actions(&mut tx, g, tenant, query).await?;
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
        let g = active_of(pg_views::active(&mut tx, "subjects").await?, "subjects")?;
        let out = pg_views::subject_page(&mut tx, g, tenant, subject_ref, after, limit).await?;
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
        let g = active_of(pg_views::active(&mut tx, "daily").await?, "daily")?;
        let out = pg_views::daily(&mut tx, g, tenant, from, until, model_id).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn dump_views(&self, tenant: &TenantId) -> Result<Views, StoreError> {
        let mut tx = self.view_tx(Some(tenant)).await?;
        let out = pg_views::dump(&mut tx, tenant).await?;
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
