//! The projection SQL of SQLite: its scalar `min`/`max`, the `INDEXED BY` hint that keeps its
//! planner on the ledger's event-id index, the follow-up UPDATE of decisions as one statement
//! per 500 patches, and the purge of a retired generation in chunks (every generation shares
//! the tables). The statements both backends share are
//! `shared::Sql`'s, which the store calls as `Sql::<Sqlite>`; this file holds what only SQLite
//! does.

use ledger::types::{EventId, TenantId};
use projections::views::DecisionPatch;
use sqlx::{QueryBuilder, Sqlite, Transaction};

use super::INSERT_CHUNK_ROWS;
use super::shared::{Dialect, PATCH_ASSIGNMENTS, PATCH_LAST_EVENT_SEQ};
use crate::store::{StoreError, db_int};

type Tx = Transaction<'static, Sqlite>;

impl Dialect for Sqlite {
    const LEAST: &'static str = "min";
    const GREATEST: &'static str = "max";
    const FLOOR_INT: (&'static str, &'static str) = ("CAST(", " AS INTEGER)");
    const RECORDS_BY_EVENT_ID: &'static str = " INDEXED BY records_by_event_id";
    const POSITIONS_IN_ONE_STATEMENT: bool = true;
    const LOCK_STATE_ROW: &'static str = "";
    type Flag = i64;

    /// The generations share the tables.
    async fn add_active_generation(_: &mut Tx, _: &str) -> Result<(), StoreError> {
        Ok(())
    }

    async fn add_building_generation(_: &mut Tx, _: &str, _: i64) -> Result<(), StoreError> {
        Ok(())
    }

    /// SQLite keeps every index from the start, its generations sharing the tables.
    async fn index_generation(_: &mut Tx, _: &str, _: i64) -> Result<bool, StoreError> {
        Ok(false)
    }

    /// SQLite plans each statement as it prepares it.
    async fn generic_plans(_: &mut Tx) -> Result<(), StoreError> {
        Ok(())
    }

    /// No condition on the event type (`DecisionFacts::of` keeps decisions only), so that the
    /// event-id index is the one cheap way to these rows.
    fn records_by_event_id(tenant: &TenantId, ids: &[EventId]) -> QueryBuilder<Sqlite> {
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "SELECT seq, event_id, event_type, captured_at_us, payload FROM records{} WHERE tenant_id = ",
            Self::RECORDS_BY_EVENT_ID
        ));
        q.push_bind(tenant.as_str().to_owned())
            .push(" AND event_id IN (");
        let mut sep = q.separated(", ");
        // A list of a length from the ladder (`store::ladder`), so that the readers keep a few
        // texts of this statement: a repeated id in `IN (…)` finds its record once.
        for id in crate::store::ladder::padded(ids, INSERT_CHUNK_ROWS) {
            sep.push_bind(id.to_string());
        }
        q.push(")");
        q
    }

    fn rows_affected(result: &sqlx::sqlite::SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    /// See [`sqlite_patch`].
    async fn patch(
        tx: &mut Tx,
        g: i64,
        t: &str,
        patches: &[&DecisionPatch],
    ) -> Result<(), StoreError> {
        sqlite_patch(tx, g, t, patches).await
    }
}

/// One UPDATE per chunk of at most 500 decisions (lengths from `store::ladder`), joined to a
/// `VALUES` list by the decision's sequence number (its row's primary key; a page names each
/// decision once).
async fn sqlite_patch(
    tx: &mut Tx,
    g: i64,
    t: &str,
    patches: &[&DecisionPatch],
) -> Result<(), StoreError> {
    for chunk in crate::store::ladder::chunks(patches, INSERT_CHUNK_ROWS) {
        let mut q = QueryBuilder::<Sqlite>::new(
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
        q.push(") UPDATE proj_decisions SET ")
            .push(PATCH_ASSIGNMENTS)
            .push(<Sqlite as Dialect>::GREATEST)
            .push(PATCH_LAST_EVENT_SEQ)
            .push("FROM p WHERE proj_decisions.generation = ")
            .push_bind(g)
            .push(" AND proj_decisions.tenant_id = ")
            .push_bind(t.to_owned())
            .push(" AND proj_decisions.seq = p.seq");
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Deletes up to `limit` rows of a retired generation from `table` for `tenant` (every
/// generation shares the tables); returns how many went.
pub(crate) async fn sqlite_purge_chunk(
    tx: &mut Tx,
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

/// Refreshes the planner's statistics of the view tables (sampled, so it stays cheap at
/// millions of rows). Without them SQLite walks the primary key for every filtered search.
pub(crate) async fn optimize(tx: &mut Tx) -> Result<(), StoreError> {
    for sql in [
        "PRAGMA analysis_limit = 1000",
        "ANALYZE proj_decisions",
        "ANALYZE proj_subjects",
        "ANALYZE proj_oversight",
    ] {
        sqlx::query(sql).execute(&mut **tx).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use sqlx::{QueryBuilder, Sqlite};

    use super::super::shared::{Dialect, PATCH_ASSIGNMENTS, PATCH_LAST_EVENT_SEQ};

    #[test]
    fn the_follow_up_update_takes_the_greater_sequence_number_by_sqlites_max() {
        let mut q = QueryBuilder::<Sqlite>::new("");
        q.push(PATCH_ASSIGNMENTS)
            .push(<Sqlite as Dialect>::GREATEST)
            .push(PATCH_LAST_EVENT_SEQ)
            .push("FROM p");
        let sql = q.into_string();
        assert!(sql.starts_with("reviews = proj_decisions.reviews + p.reviews, overrides = "));
        assert!(sql.ends_with(
            ", last_event_seq = max(proj_decisions.last_event_seq, p.last_event_seq) FROM p"
        ));
        // One assignment per column a patch changes.
        assert_eq!(sql.matches(" = ").count(), 9);
    }

    #[test]
    fn a_lookup_by_event_id_names_the_event_id_index_and_binds_the_tenant_then_each_id() {
        let tenant = ledger::types::TenantId::parse("acme").expect("a valid tenant id");
        let ids = [
            "01890a5d-ac96-774b-bcce-b302099a8057",
            "01890a5d-ac96-774b-bcce-b302099a8058",
        ]
        .map(|id| ledger::types::EventId::parse(id).expect("a valid UUIDv7"));
        let q = <Sqlite as Dialect>::records_by_event_id(&tenant, &ids);
        assert_eq!(
            q.into_string(),
            "SELECT seq, event_id, event_type, captured_at_us, payload FROM records \
             INDEXED BY records_by_event_id WHERE tenant_id = ? AND event_id IN (?, ?)"
        );
    }
}
