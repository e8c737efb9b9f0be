//! The projection SQL of PostgreSQL: `LEAST`/`GREATEST`, the partitions each generation of a
//! view keeps (created, indexed once caught up and dropped when retired by the `views_*`
//! functions of migration `0011`), and for the runner's statements plan modes and key-by-key forms
//! (`generic_plans`, the lateral lookup of decision facts, the follow-up UPDATE by arrays),
//! which must not depend on statistics that lag behind. The statements both backends share are
//! `shared::Sql`'s, which the store calls as `Sql::<Postgres>`; this file holds what only
//! PostgreSQL does. Every statement runs in a transaction that has set the tenant for row-level
//! security where the statement is tenant-scoped.

use std::sync::LazyLock;

use ledger::types::{EventId, TenantId};
use projections::views::DecisionPatch;
use sqlx::{Postgres, QueryBuilder, Transaction};

use super::shared::{Dialect, PATCH_ASSIGNMENTS, PATCH_LAST_EVENT_SEQ};
use crate::store::{StoreError, db_int};

type Tx = Transaction<'static, Postgres>;

/// The follow-up UPDATE of decisions (see [`pg_patch`]), built once.
static PATCH: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE proj_decisions SET {PATCH_ASSIGNMENTS}{}{PATCH_LAST_EVENT_SEQ}\
         FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], \
         $7::text[], $8::text[], $9::text[], $10::int8[]) \
         AS p (seq, reviews, overrides, contests, explanation_requests, submissions, status, \
         current_outcome, last_reviewer, last_event_seq) \
         WHERE proj_decisions.generation = $11 AND proj_decisions.tenant_id = $12 \
         AND proj_decisions.seq = ANY($1) AND proj_decisions.seq = p.seq",
        <Postgres as Dialect>::GREATEST
    )
});

impl Dialect for Postgres {
    const LEAST: &'static str = "LEAST";
    const GREATEST: &'static str = "GREATEST";
    const FLOOR_INT: (&'static str, &'static str) = ("CAST(FLOOR(", ") AS BIGINT)");
    const RECORDS_BY_EVENT_ID: &'static str = "";
    const POSITIONS_IN_ONE_STATEMENT: bool = false;
    const LOCK_STATE_ROW: &'static str = " FOR UPDATE";
    type Flag = bool;

    /// Queries read the generation as it fills, but the runner indexes it only once it has
    /// caught up (`index_generation`), as it does a rebuild's: the first catch-up over an
    /// existing ledger is as long as a rebuild.
    async fn add_active_generation(tx: &mut Tx, name: &str) -> Result<(), StoreError> {
        sqlx::query("SELECT views_add_generation(name, active_generation, false) FROM projection_state WHERE name = $1")
            .bind(name)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Nothing queries a generation being built: its secondary indexes wait until it has
    /// caught up (`activate`).
    async fn add_building_generation(
        tx: &mut Tx,
        name: &str,
        generation: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("SELECT views_add_generation($1, $2, false)")
            .bind(name)
            .bind(generation)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    async fn index_generation(
        tx: &mut Tx,
        name: &str,
        generation: i64,
    ) -> Result<bool, StoreError> {
        let mut q = QueryBuilder::<Postgres>::new("SELECT views_index_generation(");
        q.push_bind(name.to_owned())
            .push(", ")
            .push_bind(generation)
            .push(")");
        Ok(q.build_query_scalar().fetch_one(&mut **tx).await?)
    }

    /// Makes the transaction's prepared statements plan generically, without looking at their
    /// values. The runner's reads of the ledger (records, and decision facts) go by key;
    /// statistics lag behind a table that grows by millions of rows between two runs of
    /// autovacuum, and a plan from the values (a range past the last analysed row, taken for
    /// empty) then walked a whole table instead.
    async fn generic_plans(tx: &mut Tx) -> Result<(), StoreError> {
        sqlx::query("SET LOCAL plan_cache_mode = force_generic_plan")
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// One lookup per id, forced by a lateral subquery that cannot be flattened (`OFFSET 0`).
    /// With an `IN` list and no statistics yet for a freshly loaded ledger, it walked every
    /// decision through another index, comparing each with the whole list. No condition on the
    /// event type (`DecisionFacts::of` keeps decisions only), so that the event-id index is the
    /// one cheap way to these rows.
    fn records_by_event_id(tenant: &TenantId, ids: &[EventId]) -> QueryBuilder<Postgres> {
        let mut q = QueryBuilder::<Postgres>::new(
            "SELECT r.seq, r.event_id, r.event_type, r.captured_at_us, r.payload FROM (VALUES ",
        );
        let mut sep = q.separated(", ");
        for id in ids {
            sep.push("(")
                .push_bind_unseparated(id.to_string())
                .push_unseparated(")");
        }
        q.push(") AS i (id) CROSS JOIN LATERAL (SELECT seq, event_id, event_type, captured_at_us, payload FROM records WHERE tenant_id = ")
            .push_bind(tenant.as_str().to_owned())
            .push(" AND event_id = i.id OFFSET 0) AS r");
        q
    }

    fn rows_affected(result: &sqlx::postgres::PgQueryResult) -> u64 {
        result.rows_affected()
    }

    /// See [`pg_patch`].
    async fn patch(
        tx: &mut Tx,
        g: i64,
        t: &str,
        patches: &[&DecisionPatch],
    ) -> Result<(), StoreError> {
        pg_patch(tx, g, t, patches).await
    }
}

/// One UPDATE for the whole page, its patches passed as arrays and joined by the decision's
/// sequence number, which also selects the rows (`seq = ANY($1)`) so that they are found by
/// primary-key lookups. The page transaction plans it with its values
/// (`plan_cache_mode = force_custom_plan`): the generation's partition is chosen while
/// planning, and the planner sees how many keys it looks up and how large the partition is
/// now. A generic plan, cached by the connection, was made once, when a new generation's
/// partition was nearly empty: it hashed the whole partition for every page (40 s for one
/// statement at 300,000 records). Planned with its values on the single table the views
/// were before partitioning, the planner had taken a new generation for empty from
/// statistics of the old one and read all of it through another index.
async fn pg_patch(
    tx: &mut Tx,
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
    sqlx::query(sqlx::AssertSqlSafe(PATCH.as_str()))
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

/// Drops a retired generation's partitions, every tenant's rows at once.
pub(crate) async fn pg_drop_generation(
    tx: &mut Tx,
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

/// Refreshes the planner's statistics of the view tables (sampled, so it stays cheap at
/// millions of rows); without them PostgreSQL takes a new generation for empty. Only the owner
/// may ANALYZE: `analyze_views()` (migrations 0010 and 0011) does it for the service role, on
/// the active generations' partitions.
pub(crate) async fn optimize(tx: &mut Tx) -> Result<(), StoreError> {
    sqlx::query("SELECT analyze_views()")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Builds the indexes a generation's partitions lack (SQLite keeps every index from the start,
/// its generations sharing the tables); whether it built any.
pub(crate) async fn index_generation(
    tx: &mut Tx,
    name: &str,
    generation: i64,
) -> Result<bool, StoreError> {
    <Postgres as Dialect>::index_generation(tx, name, generation).await
}

/// Settings of a transaction that commits the runner's pages.
pub(crate) async fn page_settings(tx: &mut Tx) -> Result<(), StoreError> {
    // A page need not wait for its WAL flush: a page lost in a crash is applied again from
    // the position committed with it, and nothing acknowledged to a client depends on it.
    // (The ledger's own commits stay synchronous.)
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(&mut **tx)
        .await?;
    // The follow-up UPDATE is planned with its page's values (see `pg_patch`).
    sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::PATCH;

    #[test]
    fn the_follow_up_update_takes_the_greater_sequence_number_and_binds_twelve_arrays_and_keys() {
        assert!(PATCH.starts_with(
            "UPDATE proj_decisions SET reviews = proj_decisions.reviews + p.reviews, "
        ));
        assert!(PATCH.contains(
            "last_event_seq = GREATEST(proj_decisions.last_event_seq, p.last_event_seq) \
             FROM unnest($1::int8[], "
        ));
        for n in 1..=12 {
            assert!(PATCH.contains(&format!("${n}")), "placeholder ${n} missing");
        }
        assert!(!PATCH.contains("$13"));
        assert!(
            !PATCH.contains("  "),
            "no doubled spaces: {}",
            PATCH.as_str()
        );
    }
}
