//! The statements of crypto-shredding and erasure, written once for both backends and generic
//! over the database (`QueryBuilder` writes each backend's placeholders). They run on a
//! connection the caller has scoped to the tenant: the appender's transaction (which holds the
//! tenant's write lock), or a reader.

use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;

use ledger::types::TenantId;
use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, QueryBuilder, Row, Type,
};

use super::erasure::ErasureScope;
use super::{
    SUBJECT_BUCKET_BITS, StoreError, db_int, push_bucket_series, push_text_list, sqlite_index_hint,
};

/// Rows per multi-row statement, well under both databases' parameter limits.
const ROWS_PER_STATEMENT: usize = 500;

/// The last bucket a subject's values are looked for in.
enum LastBucket<'a> {
    /// The bucket of this sequence number (an erasure covers the values before it).
    OfSeq(i64),
    /// The bucket of the tenant's newest stored value.
    OfStored(&'a TenantId),
}

/// A data key to store: the sequence number of the record that created it, its subject (none
/// for a key of one record) and its bytes wrapped under the master key.
#[derive(Debug, Clone)]
pub(crate) struct NewDataKeyRow {
    pub key_seq: i64,
    pub subject_ref: Option<String>,
    pub wrapped: Vec<u8>,
}

/// A stored erasable value as read back: field, salt (empty when it is inside the ciphertext),
/// sealed bytes, and the data key that sealed it (`None` for a value sealed under the master key
/// directly), wrapped.
#[derive(Debug, Clone)]
pub(crate) struct StoredValueRow {
    pub field: String,
    pub salt: Vec<u8>,
    pub sealed: Vec<u8>,
    pub key: Option<(i64, Option<Vec<u8>>)>,
}

/// A value concerning a subject, stored or erased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubjectValueRow {
    pub seq: i64,
    pub event_id: String,
    pub field: String,
    /// The erasure record that erased it; `None` while it is stored.
    pub erasure_seq: Option<i64>,
}

/// Runs `q` and reads each row's first two columns.
async fn pairs<DB, A, B>(
    q: &mut QueryBuilder<DB>,
    conn: &mut DB::Connection,
) -> Result<Vec<(A, B)>, StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'t> A: Decode<'t, DB> + Type<DB>,
    for<'t> B: Decode<'t, DB> + Type<DB>,
{
    q.build()
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

/// The statements, for one database.
pub(crate) struct ErasureSql<DB>(PhantomData<DB>);

impl<DB> ErasureSql<DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'t> String: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Option<i64>: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Option<Vec<u8>>: Decode<'t, DB> + Type<DB>,
{
    /// Stores new data keys.
    pub(crate) async fn insert_keys(
        conn: &mut DB::Connection,
        tenant: &TenantId,
        keys: &[NewDataKeyRow],
    ) -> Result<(), StoreError> {
        for chunk in keys.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<DB>::new(
                "INSERT INTO data_keys (tenant_id, key_seq, subject_ref, wrapped) ",
            );
            q.push_values(chunk, |mut b, k| {
                b.push_bind(tenant.as_str().to_owned())
                    .push_bind(k.key_seq)
                    .push_bind(k.subject_ref.clone())
                    .push_bind(k.wrapped.clone());
            });
            q.build().execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// The look-up of `subjects`' data keys (one chunk of them).
    pub(crate) fn subject_keys_query(tenant: &TenantId, subjects: &[&str]) -> QueryBuilder<DB> {
        let mut q = QueryBuilder::<DB>::new(format!(
            "SELECT subject_ref, key_seq, wrapped FROM data_keys{} WHERE tenant_id = ",
            sqlite_index_hint::<DB>("data_keys_by_subject")
        ));
        q.push_bind(tenant.as_str().to_owned());
        q.push(" AND subject_ref IN ");
        push_text_list(&mut q, subjects);
        q
    }

    /// The newest data key of each of `subjects` that has one: subject → (key number, wrapped).
    pub(crate) async fn subject_keys(
        conn: &mut DB::Connection,
        tenant: &TenantId,
        subjects: &[&str],
    ) -> Result<BTreeMap<String, (i64, Vec<u8>)>, StoreError> {
        let mut out: BTreeMap<String, (i64, Vec<u8>)> = BTreeMap::new();
        for chunk in subjects.chunks(ROWS_PER_STATEMENT) {
            let mut q = Self::subject_keys_query(tenant, chunk);
            for row in q.build().fetch_all(&mut *conn).await? {
                let subject: String = row.try_get(0)?;
                let key_seq: i64 = row.try_get(1)?;
                let wrapped: Vec<u8> = row.try_get(2)?;
                // A subject's newest key is the one its new values use (an older one can only
                // remain while values sealed under it do).
                if out.get(&subject).is_none_or(|(k, _)| *k < key_seq) {
                    out.insert(subject, (key_seq, wrapped));
                }
            }
        }
        Ok(out)
    }

    /// The values stored beside record `seq`, with the wrapped data key of each.
    pub(crate) async fn values(
        conn: &mut DB::Connection,
        tenant: &TenantId,
        seq: i64,
    ) -> Result<Vec<StoredValueRow>, StoreError> {
        let mut q = QueryBuilder::<DB>::new(
            "SELECT v.field, v.salt, v.sealed, v.key_seq, k.wrapped FROM erasable_values v
             LEFT JOIN data_keys k ON k.tenant_id = v.tenant_id AND k.key_seq = v.key_seq
             WHERE v.tenant_id = ",
        );
        q.push_bind(tenant.as_str().to_owned());
        q.push(" AND v.seq = ");
        q.push_bind(seq);
        q.push(" ORDER BY v.field");
        q.build()
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|row| {
                let key_seq: Option<i64> = row.try_get(3)?;
                let wrapped: Option<Vec<u8>> = row.try_get(4)?;
                Ok(StoredValueRow {
                    field: row.try_get(0)?,
                    salt: row.try_get(1)?,
                    sealed: row.try_get(2)?,
                    key: key_seq.map(|k| (k, wrapped)),
                })
            })
            .collect()
    }

    /// The fields of record `seq` that were erased, each with the erasure record's seq.
    pub(crate) async fn erased(
        conn: &mut DB::Connection,
        tenant: &TenantId,
        seq: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let mut q = QueryBuilder::<DB>::new(
            "SELECT field, erasure_seq FROM erased_values WHERE tenant_id = ",
        );
        q.push_bind(tenant.as_str().to_owned());
        q.push(" AND seq = ");
        q.push_bind(seq);
        q.push(" ORDER BY field");
        pairs(&mut q, conn).await
    }

    /// The sequence number of `subject`'s latest erasure record, if it has one.
    pub(crate) async fn latest_subject_erasure(
        conn: &mut DB::Connection,
        tenant: &TenantId,
        subject: &str,
    ) -> Result<Option<i64>, StoreError> {
        let mut q = QueryBuilder::<DB>::new("SELECT seq FROM erasures WHERE tenant_id = ");
        q.push_bind(tenant.as_str().to_owned());
        q.push(" AND subject_ref = ");
        q.push_bind(subject.to_owned());
        q.push(" ORDER BY seq DESC LIMIT 1");
        q.build()
            .fetch_optional(&mut *conn)
            .await?
            .map(|row| Ok(row.try_get(0)?))
            .transpose()
    }

    /// The sequence numbers of the tenant's erasure records after `after` (all with `None`), in
    /// order, at most `limit`.
    pub(crate) async fn erasures_after(
        conn: &mut DB::Connection,
        tenant: &TenantId,
        after: Option<i64>,
        limit: u64,
    ) -> Result<Vec<i64>, StoreError> {
        let mut q = QueryBuilder::<DB>::new("SELECT seq FROM erasures WHERE tenant_id = ");
        q.push_bind(tenant.as_str().to_owned());
        q.push(" AND seq > ");
        q.push_bind(after.unwrap_or(-1));
        q.push(" ORDER BY seq LIMIT ");
        q.push_bind(db_int(limit));
        q.build()
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|row| Ok(row.try_get(0)?))
            .collect()
    }

    /// The journaled erasures this database carried out again: `(seq, record hash)`, in order,
    /// at most `limit` after `after` (all with `None`).
    pub(crate) async fn reapplied_erasures(
        conn: &mut DB::Connection,
        tenant: &TenantId,
        after: Option<(i64, Vec<u8>)>,
        limit: u64,
    ) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        let mut q = QueryBuilder::<DB>::new(
            "SELECT seq, record_hash FROM erasure_reapplications WHERE tenant_id = ",
        );
        q.push_bind(tenant.as_str().to_owned());
        if let Some((seq, hash)) = after {
            q.push(" AND (seq > ");
            q.push_bind(seq);
            q.push(" OR (seq = ");
            q.push_bind(seq);
            q.push(" AND record_hash > ");
            q.push_bind(hash);
            q.push("))");
        }
        q.push(" ORDER BY seq, record_hash LIMIT ");
        q.push_bind(db_int(limit));
        pairs(&mut q, conn).await
    }

    /// Every value concerning `subject`, stored or erased: `(seq, event id, field, erasure seq
    /// when erased)`, in order.
    pub(crate) async fn subject_values(
        conn: &mut DB::Connection,
        tenant: &TenantId,
        subject: &str,
    ) -> Result<Vec<SubjectValueRow>, StoreError> {
        // The values first, then their records' event ids by lists of sequence numbers: a join
        // left to PostgreSQL's planner probed the records once per value through an index that
        // does not lead with `seq`, when its statistics had not yet seen a large subject
        // appended just before (50 s instead of 0.1 s for a subject of 10,000 records).
        let mut q = QueryBuilder::<DB>::new(
            "SELECT seq, field, erasure_seq FROM (
                 SELECT seq, field, NULL AS erasure_seq FROM erasable_values
                  WHERE tenant_id = ",
        );
        q.push_bind(tenant.as_str().to_owned());
        Self::push_subject(&mut q, subject, LastBucket::OfStored(tenant));
        q.push(" UNION ALL SELECT seq, field, erasure_seq FROM erased_values WHERE tenant_id = ");
        q.push_bind(tenant.as_str().to_owned());
        q.push(" AND subject_ref = ");
        q.push_bind(subject.to_owned());
        q.push(") v ORDER BY seq, field");
        let values: Vec<(i64, String, Option<i64>)> = q
            .build()
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
            .collect::<Result<_, StoreError>>()?;
        let seqs: Vec<i64> = values
            .iter()
            .map(|(seq, _, _)| *seq)
            .collect::<BTreeSet<i64>>()
            .into_iter()
            .collect();
        let mut event_ids: BTreeMap<i64, String> = BTreeMap::new();
        for chunk in seqs.chunks(ROWS_PER_STATEMENT) {
            let mut q =
                QueryBuilder::<DB>::new("SELECT seq, event_id FROM records WHERE tenant_id = ");
            q.push_bind(tenant.as_str().to_owned());
            q.push(" AND seq IN (");
            let mut list = q.separated(", ");
            for seq in chunk {
                list.push_bind(*seq);
            }
            q.push(")");
            for row in q.build().fetch_all(&mut *conn).await? {
                event_ids.insert(row.try_get(0)?, row.try_get(1)?);
            }
        }
        values
            .into_iter()
            .map(|(seq, field, erasure_seq)| {
                let event_id = event_ids.get(&seq).cloned().ok_or_else(|| {
                    StoreError::Corrupt(format!("erasable value of missing record {seq}"))
                })?;
                Ok(SubjectValueRow {
                    seq,
                    event_id,
                    field,
                    erasure_seq,
                })
            })
            .collect()
    }

    /// Appends `AND …` selecting the stored values of `subject` (of the tenant already named)
    /// through the subject index, which leads with the value's bucket of sequence numbers
    /// (`seq >> 12`, migration 0026 on SQLite, 0029 on PostgreSQL): one probe per bucket, from
    /// the first to `last`. The bucket expression is written as the index names it, so that
    /// both planners match it.
    fn push_subject(q: &mut QueryBuilder<DB>, subject: &str, last: LastBucket<'_>) {
        q.push(" AND subject_ref = ");
        q.push_bind(subject.to_owned());
        q.push(format!(" AND (seq >> {SUBJECT_BUCKET_BITS}) IN "));
        push_bucket_series(q, 0, |q| match last {
            LastBucket::OfSeq(seq) => {
                q.push_bind(seq >> SUBJECT_BUCKET_BITS);
            }
            LastBucket::OfStored(tenant) => {
                q.push("(SELECT MAX(seq) FROM erasable_values WHERE tenant_id = ");
                q.push_bind(tenant.as_str().to_owned());
                q.push(format!(") >> {SUBJECT_BUCKET_BITS}"));
            }
        });
    }

    /// Appends `WHERE …` selecting the stored values `scope` erases.
    fn push_scope(q: &mut QueryBuilder<DB>, tenant: &TenantId, scope: &ErasureScope) {
        q.push(" WHERE tenant_id = ");
        q.push_bind(tenant.as_str().to_owned());
        // An erasure covers only what came before it in the chain.
        q.push(" AND seq < ");
        q.push_bind(db_int(scope.erasure_seq));
        match &scope.event_ids {
            // Named records: the subject's, and records that name no subject at all (whose
            // values can be erased only by naming them).
            Some(ids) => {
                q.push(" AND (subject_ref = ");
                q.push_bind(scope.subject_ref.clone());
                q.push(" OR subject_ref IS NULL) AND seq IN (SELECT seq FROM records WHERE tenant_id = ");
                q.push_bind(tenant.as_str().to_owned());
                q.push(" AND event_id IN (");
                if ids.is_empty() {
                    q.push("NULL");
                }
                let mut list = q.separated(", ");
                for id in ids {
                    list.push_bind(id.clone());
                }
                q.push("))");
            }
            None => Self::push_subject(
                q,
                &scope.subject_ref,
                LastBucket::OfSeq(db_int(scope.erasure_seq)),
            ),
        }
        if let Some(fields) = &scope.fields {
            q.push(" AND field IN (");
            if fields.is_empty() {
                q.push("NULL");
            }
            let mut list = q.separated(", ");
            for f in fields {
                list.push_bind(f.clone());
            }
            q.push(")");
        }
    }

    /// Carries out `scope` inside the caller's transaction: deletes the sealed values it covers,
    /// records each as erased by the erasure, destroys every data key no remaining value uses,
    /// and lists the erasure by subject. Returns how many values were erased. Running it again
    /// erases nothing more.
    ///
    /// An erasure carried out again from the journal (`scope.reapplied`) is not in this chain,
    /// and its number may name another record here: its values wait in `reerased_values`,
    /// neither listed under it nor as an erasure of the subject, until an erasure record of this
    /// chain covers them. Every erasure of the chain takes the waiting values its scope covers
    /// (migration 0029 on SQLite, 0031 on PostgreSQL).
    pub(crate) async fn erase(
        conn: &mut DB::Connection,
        tenant: &TenantId,
        scope: &ErasureScope,
    ) -> Result<u64, StoreError> {
        let marks = if scope.reapplied.is_some() {
            "reerased_values (tenant_id, seq, field, subject_ref, erasure_hash) "
        } else {
            "erased_values (tenant_id, seq, field, erasure_seq, subject_ref) "
        };
        let mut q =
            QueryBuilder::<DB>::new("SELECT seq, field, key_seq, subject_ref FROM erasable_values");
        Self::push_scope(&mut q, tenant, scope);
        let found: Vec<(i64, String, Option<i64>, Option<String>)> = q
            .build()
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|row| {
                Ok((
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                ))
            })
            .collect::<Result<_, StoreError>>()?;
        if !found.is_empty() {
            let mut q = QueryBuilder::<DB>::new("DELETE FROM erasable_values");
            Self::push_scope(&mut q, tenant, scope);
            q.build().execute(&mut *conn).await?;
            for chunk in found.chunks(ROWS_PER_STATEMENT) {
                let mut q = QueryBuilder::<DB>::new(format!("INSERT INTO {marks}"));
                q.push_values(chunk, |mut b, (seq, field, _, subject)| {
                    b.push_bind(tenant.as_str().to_owned())
                        .push_bind(*seq)
                        .push_bind(field.clone());
                    if scope.reapplied.is_none() {
                        b.push_bind(db_int(scope.erasure_seq));
                    }
                    b.push_bind(subject.clone());
                    if let Some(hash) = &scope.reapplied {
                        b.push_bind(hash.as_bytes().to_vec());
                    }
                });
                q.push(" ON CONFLICT DO NOTHING");
                q.build().execute(&mut *conn).await?;
            }
            let keys: BTreeSet<i64> = found.iter().filter_map(|(_, _, k, _)| *k).collect();
            let keys: Vec<i64> = keys.into_iter().collect();
            for chunk in keys.chunks(ROWS_PER_STATEMENT) {
                let mut q = QueryBuilder::<DB>::new("DELETE FROM data_keys WHERE tenant_id = ");
                q.push_bind(tenant.as_str().to_owned());
                q.push(" AND key_seq IN (");
                let mut list = q.separated(", ");
                for k in chunk {
                    list.push_bind(*k);
                }
                q.push(
                    ") AND NOT EXISTS (SELECT 1 FROM erasable_values v
                       WHERE v.tenant_id = data_keys.tenant_id AND v.key_seq = data_keys.key_seq)",
                );
                q.build().execute(&mut *conn).await?;
            }
        }
        let mut erased = u64::try_from(found.len()).unwrap_or(u64::MAX);
        if let Some(hash) = &scope.reapplied {
            let mut q = QueryBuilder::<DB>::new(
                "INSERT INTO erasure_reapplications (tenant_id, seq, record_hash) VALUES (",
            );
            q.push_bind(tenant.as_str().to_owned());
            q.push(", ");
            q.push_bind(db_int(scope.erasure_seq));
            q.push(", ");
            q.push_bind(hash.as_bytes().to_vec());
            q.push(") ON CONFLICT DO NOTHING");
            q.build().execute(&mut *conn).await?;
            return Ok(erased);
        }
        // Values an erasure carried out again from the journal erased, which this one covers:
        // from now on they are erased by this record.
        let taken = Self::reerased_count(conn, tenant, Some(scope)).await?;
        if taken > 0 {
            let mut q = QueryBuilder::<DB>::new(
                "INSERT INTO erased_values (tenant_id, seq, field, erasure_seq, subject_ref)
                 SELECT tenant_id, seq, field, ",
            );
            q.push_bind(db_int(scope.erasure_seq));
            q.push(", subject_ref FROM reerased_values");
            Self::push_scope(&mut q, tenant, scope);
            q.push(" ON CONFLICT DO NOTHING");
            q.build().execute(&mut *conn).await?;
            let mut q = QueryBuilder::<DB>::new("DELETE FROM reerased_values");
            Self::push_scope(&mut q, tenant, scope);
            q.build().execute(&mut *conn).await?;
            erased = erased.saturating_add(taken);
        }
        let mut q = QueryBuilder::<DB>::new(
            "INSERT INTO erasures (tenant_id, seq, subject_ref, erased) VALUES (",
        );
        q.push_bind(tenant.as_str().to_owned());
        q.push(", ");
        q.push_bind(db_int(scope.erasure_seq));
        q.push(", ");
        q.push_bind(scope.subject_ref.clone());
        q.push(", ");
        q.push_bind(db_int(erased));
        q.push(") ON CONFLICT DO NOTHING");
        q.build().execute(&mut *conn).await?;
        Ok(erased)
    }

    /// The records (sequence number and event id, in chain order) with values waiting in
    /// `reerased_values` that `scope` covers and that the lost erasure `scope.reapplied` erased
    /// again (or that no one erasure is recorded for: rows from before migration 0030 on
    /// SQLite, 0032 on PostgreSQL): what a restatement of that erasure names.
    pub(crate) async fn reerased_records(
        conn: &mut DB::Connection,
        tenant: &TenantId,
        scope: &ErasureScope,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let mut q = QueryBuilder::<DB>::new("SELECT seq, event_id FROM records WHERE tenant_id = ");
        q.push_bind(tenant.as_str().to_owned());
        q.push(" AND seq IN (SELECT seq FROM reerased_values");
        Self::push_scope(&mut q, tenant, scope);
        if let Some(hash) = &scope.reapplied {
            q.push(" AND (erasure_hash = ");
            q.push_bind(hash.as_bytes().to_vec());
            q.push(" OR erasure_hash IS NULL)");
        }
        q.push(") ORDER BY seq");
        pairs(&mut q, conn).await
    }

    /// How many values wait in `reerased_values` for an erasure record (all of the tenant's
    /// with `None`, else those `scope` covers).
    pub(crate) async fn reerased_count(
        conn: &mut DB::Connection,
        tenant: &TenantId,
        scope: Option<&ErasureScope>,
    ) -> Result<u64, StoreError> {
        let mut q = QueryBuilder::<DB>::new("SELECT COUNT(*) FROM reerased_values");
        match scope {
            Some(scope) => Self::push_scope(&mut q, tenant, scope),
            None => {
                q.push(" WHERE tenant_id = ");
                q.push_bind(tenant.as_str().to_owned());
            }
        }
        let n: i64 = q.build().fetch_one(&mut *conn).await?.try_get(0)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

impl<DB> ErasureSql<DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'t> String: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
{
    /// Counts the tenant's data keys (re-wrapping progress).
    pub(crate) async fn key_count(
        conn: &mut DB::Connection,
        tenant: &TenantId,
    ) -> Result<u64, StoreError> {
        let mut q = QueryBuilder::<DB>::new("SELECT COUNT(*) FROM data_keys WHERE tenant_id = ");
        q.push_bind(tenant.as_str().to_owned());
        let n: i64 = q.build().fetch_one(&mut *conn).await?.try_get(0)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Up to `limit` wrapped data keys numbered above `after`, in order.
    pub(crate) async fn key_page(
        conn: &mut DB::Connection,
        tenant: &TenantId,
        after: i64,
        limit: u64,
    ) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        let mut q =
            QueryBuilder::<DB>::new("SELECT key_seq, wrapped FROM data_keys WHERE tenant_id = ");
        q.push_bind(tenant.as_str().to_owned());
        q.push(" AND key_seq > ");
        q.push_bind(after);
        q.push(" ORDER BY key_seq LIMIT ");
        q.push_bind(db_int(limit));
        pairs(&mut q, conn).await
    }

    /// Replaces a wrapped key if it is still the bytes read (a key destroyed or re-wrapped
    /// meanwhile is left alone); returns whether it did.
    pub(crate) async fn rewrap(
        conn: &mut DB::Connection,
        tenant: &TenantId,
        key_seq: i64,
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, StoreError> {
        let mut q = QueryBuilder::<DB>::new("UPDATE data_keys SET wrapped = ");
        q.push_bind(new.to_vec());
        q.push(" WHERE tenant_id = ");
        q.push_bind(tenant.as_str().to_owned());
        q.push(" AND key_seq = ");
        q.push_bind(key_seq);
        q.push(" AND wrapped = ");
        q.push_bind(old.to_vec());
        q.push(" RETURNING key_seq");
        Ok(q.build().fetch_optional(&mut *conn).await?.is_some())
    }
}
