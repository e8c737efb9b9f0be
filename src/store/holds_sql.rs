//! The statements of legal holds and retention, written once for both backends and generic over
//! the database (`QueryBuilder` writes each backend's placeholders), like `erasure_sql.rs`. They
//! run on a connection the caller has scoped to the tenant: the appender's transaction (which
//! holds the tenant's write lock), or a reader.

use std::marker::PhantomData;

use ledger::types::TenantId;
use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, QueryBuilder, Row, Type,
};

use super::holds::{HoldChange, HoldRow};
use super::retention::{RetentionCandidate, RetentionRule};
use super::{StoreError, db_int, push_text_list, sqlite_index_hint};

/// Rows per `IN (…)` list, well under both databases' parameter limits.
const ROWS_PER_STATEMENT: usize = 500;

/// The columns of a hold, in [`HoldSql::hold_row`]'s order.
const HOLD_COLUMNS: &str = "hold_seq, subject_ref, decision_id, reason, reference, placed_at_us, \
                            lifted_seq, lifted_reason, lifted_at_us";

/// The statements, for one database.
pub(crate) struct HoldSql<DB>(PhantomData<DB>);

impl<DB> HoldSql<DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'t> String: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Option<i64>: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
{
    fn hold_row(row: &DB::Row) -> Result<HoldRow, StoreError> {
        Ok(HoldRow {
            hold_seq: row.try_get(0)?,
            subject_ref: row.try_get(1)?,
            decision_id: row.try_get(2)?,
            reason: row.try_get(3)?,
            reference: row.try_get(4)?,
            placed_at_us: row.try_get(5)?,
            lifted_seq: row.try_get(6)?,
            lifted_reason: row.try_get(7)?,
            lifted_at_us: row.try_get(8)?,
        })
    }

    /// The look-up of `subjects`' active holds (one chunk of them).
    pub(crate) fn active_query(tenant: &TenantId, subjects: &[&str]) -> QueryBuilder<DB> {
        let mut q = QueryBuilder::<DB>::new(format!(
            "SELECT {HOLD_COLUMNS} FROM legal_holds{} WHERE tenant_id = ",
            sqlite_index_hint::<DB>("legal_holds_by_subject")
        ));
        q.push_bind(tenant.as_str().to_owned());
        q.push(" AND lifted_seq IS NULL AND subject_ref IN ");
        push_text_list(&mut q, subjects);
        q.push(" ORDER BY hold_seq");
        q
    }

    /// The active holds of `subjects`, oldest first.
    pub(crate) async fn active(
        conn: &mut DB::Connection,
        tenant: &TenantId,
        subjects: &[&str],
    ) -> Result<Vec<HoldRow>, StoreError> {
        let mut out = Vec::new();
        for chunk in subjects.chunks(ROWS_PER_STATEMENT) {
            let mut q = Self::active_query(tenant, chunk);
            for row in q.build().fetch_all(&mut *conn).await? {
                out.push(Self::hold_row(&row)?);
            }
        }
        out.sort_by_key(|h| h.hold_seq);
        Ok(out)
    }

    /// Every hold of `subject`, active or lifted, oldest first.
    pub(crate) async fn of_subject(
        conn: &mut DB::Connection,
        tenant: &TenantId,
        subject: &str,
    ) -> Result<Vec<HoldRow>, StoreError> {
        let mut q = QueryBuilder::<DB>::new(format!(
            "SELECT {HOLD_COLUMNS} FROM legal_holds WHERE tenant_id = "
        ));
        q.push_bind(tenant.as_str().to_owned());
        q.push(" AND subject_ref = ");
        q.push_bind(subject.to_owned());
        q.push(" ORDER BY hold_seq");
        q.build()
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(Self::hold_row)
            .collect()
    }

    /// Places or lifts holds, in chain order, inside the caller's transaction.
    pub(crate) async fn apply(
        conn: &mut DB::Connection,
        tenant: &TenantId,
        changes: &[HoldChange],
    ) -> Result<(), StoreError> {
        for change in changes {
            let mut q;
            match change {
                HoldChange::Placed {
                    seq,
                    subject_ref,
                    decision_id,
                    reason,
                    reference,
                    at_us,
                } => {
                    q = QueryBuilder::<DB>::new(format!(
                        "INSERT INTO legal_holds (tenant_id, {HOLD_COLUMNS}) VALUES ("
                    ));
                    let mut values = q.separated(", ");
                    values
                        .push_bind(tenant.as_str().to_owned())
                        .push_bind(db_int(*seq))
                        .push_bind(subject_ref.clone())
                        .push_bind(decision_id.clone())
                        .push_bind(reason.clone())
                        .push_bind(reference.clone())
                        .push_bind(db_int(*at_us))
                        .push_bind(None::<i64>)
                        .push_bind(None::<String>)
                        .push_bind(None::<i64>);
                    q.push(")");
                }
                HoldChange::Lifted {
                    seq,
                    hold_seq,
                    subject_ref,
                    reason,
                    at_us,
                } => {
                    q = QueryBuilder::<DB>::new("UPDATE legal_holds SET lifted_seq = ");
                    q.push_bind(db_int(*seq));
                    q.push(", lifted_reason = ");
                    q.push_bind(reason.clone());
                    q.push(", lifted_at_us = ");
                    q.push_bind(db_int(*at_us));
                    q.push(" WHERE tenant_id = ");
                    q.push_bind(tenant.as_str().to_owned());
                    q.push(" AND hold_seq = ");
                    q.push_bind(db_int(*hold_seq));
                    q.push(" AND subject_ref = ");
                    q.push_bind(subject_ref.clone());
                    q.push(" AND lifted_seq IS NULL");
                }
            }
            q.build().execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Replaces the tenant's retention policy inside the caller's transaction.
    pub(crate) async fn replace_policy(
        conn: &mut DB::Connection,
        tenant: &TenantId,
        policy_seq: u64,
        rules: &[RetentionRule],
    ) -> Result<(), StoreError> {
        let mut q = QueryBuilder::<DB>::new("DELETE FROM retention_rules WHERE tenant_id = ");
        q.push_bind(tenant.as_str().to_owned());
        q.build().execute(&mut *conn).await?;
        if rules.is_empty() {
            return Ok(());
        }
        let mut q = QueryBuilder::<DB>::new(
            "INSERT INTO retention_rules (tenant_id, position, event_type, model_id, erase_after_days, policy_seq) ",
        );
        q.push_values(rules.iter().enumerate(), |mut b, (position, rule)| {
            b.push_bind(tenant.as_str().to_owned())
                .push_bind(i64::try_from(position).unwrap_or(i64::MAX))
                .push_bind(rule.event_type.clone())
                .push_bind(rule.model_id.clone())
                .push_bind(db_int(rule.erase_after_days))
                .push_bind(db_int(policy_seq));
        });
        q.build().execute(&mut *conn).await?;
        Ok(())
    }

    /// The tenant's retention rules in order, with the seq of the record that set them.
    pub(crate) async fn policy(
        conn: &mut DB::Connection,
        tenant: &TenantId,
    ) -> Result<Vec<(RetentionRule, i64)>, StoreError> {
        let mut q = QueryBuilder::<DB>::new(
            "SELECT event_type, model_id, erase_after_days, policy_seq FROM retention_rules WHERE tenant_id = ",
        );
        q.push_bind(tenant.as_str().to_owned());
        q.push(" ORDER BY position");
        q.build()
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|row| {
                let days: i64 = row.try_get(2)?;
                Ok((
                    RetentionRule {
                        event_type: row.try_get(0)?,
                        model_id: row.try_get(1)?,
                        erase_after_days: u64::try_from(days).unwrap_or(0),
                    },
                    row.try_get(3)?,
                ))
            })
            .collect()
    }

    /// Records with stored erasable values of a known subject, numbered above `after`, in
    /// order, each once; at most `limit` values are read per call (so a page may hold fewer
    /// records; page on the last seq). No time filter: capture times grow with `seq`, so the
    /// caller stops at the first record too young, and the scan walks only the primary key.
    pub(crate) async fn candidates(
        conn: &mut DB::Connection,
        tenant: &TenantId,
        after: i64,
        limit: u64,
    ) -> Result<Vec<RetentionCandidate>, StoreError> {
        // Driven by the stored values (the personal data still held), in key order: erased
        // values are gone from the table, so each run reads only what may still expire.
        let mut q = QueryBuilder::<DB>::new(
            "SELECT v.seq, r.event_id, r.event_type, r.captured_at_us, r.payload, v.subject_ref
               FROM erasable_values v
               JOIN records r ON r.tenant_id = v.tenant_id AND r.seq = v.seq
              WHERE v.tenant_id = ",
        );
        q.push_bind(tenant.as_str().to_owned());
        q.push(" AND v.seq > ");
        q.push_bind(after);
        q.push(" AND v.subject_ref IS NOT NULL ORDER BY v.seq LIMIT ");
        q.push_bind(db_int(limit));
        let mut out: Vec<RetentionCandidate> = Vec::new();
        for row in q.build().fetch_all(&mut *conn).await? {
            let seq: i64 = row.try_get(0)?;
            // One row per value: a record with several fields comes once.
            if out.last().is_some_and(|c| c.seq == seq) {
                continue;
            }
            let captured: i64 = row.try_get(3)?;
            out.push(RetentionCandidate {
                seq,
                event_id: row.try_get(1)?,
                event_type: row.try_get(2)?,
                captured_at_us: u64::try_from(captured).unwrap_or(0),
                payload: row.try_get(4)?,
                subject_ref: row.try_get(5)?,
            });
        }
        Ok(out)
    }
}
