//! The statements of the transparency-log settings — who may read a tenant's tiles, its witnesses
//! and the cosignatures they returned — written once for both backends and generic over the
//! database, like `holds_sql.rs`. They run on a connection the caller has scoped to the tenant.

use std::marker::PhantomData;

use ledger::types::TenantId;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::backend::WitnessRow;
use super::{StoreError, db_int};

/// The statements, for one database.
pub(crate) struct TlogSql<DB>(PhantomData<DB>);

impl<DB> TlogSql<DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'t> String: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> bool: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Option<i64>: Decode<'t, DB> + Type<DB>,
{
    /// Whether the tenant's tiled log is public (`false` without a setting).
    pub(crate) async fn tiles_public(
        conn: &mut DB::Connection,
        tenant: &TenantId,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT public FROM tenant_tile_access WHERE tenant_id = $1")
            .bind(tenant.as_str().to_owned())
            .fetch_optional(&mut *conn)
            .await?;
        Ok(match row {
            Some(r) => r.try_get::<bool, _>(0)?,
            None => false,
        })
    }

    /// Sets the tenant's tile access.
    pub(crate) async fn set_tiles_public(
        conn: &mut DB::Connection,
        tenant: &TenantId,
        public: bool,
        now_us: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tenant_tile_access (tenant_id, public, changed_at_us) VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id) DO UPDATE SET public = excluded.public,
                                                   changed_at_us = excluded.changed_at_us",
        )
        .bind(tenant.as_str().to_owned())
        .bind(public)
        .bind(db_int(now_us))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// The tenant's witnesses, by name.
    pub(crate) async fn witnesses(
        conn: &mut DB::Connection,
        tenant: &TenantId,
    ) -> Result<Vec<WitnessRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, vkey, url, ca_pem FROM tenant_witnesses WHERE tenant_id = $1 ORDER BY name",
        )
        .bind(tenant.as_str().to_owned())
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(WitnessRow {
                    name: r.try_get(0)?,
                    vkey: r.try_get(1)?,
                    url: r.try_get(2)?,
                    ca_pem: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Adds a witness, or replaces the one of the same name.
    pub(crate) async fn put_witness(
        conn: &mut DB::Connection,
        tenant: &TenantId,
        w: &WitnessRow,
        now_us: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tenant_witnesses (tenant_id, name, vkey, url, ca_pem, added_at_us)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (tenant_id, name) DO UPDATE SET vkey = excluded.vkey, url = excluded.url,
                 ca_pem = excluded.ca_pem, added_at_us = excluded.added_at_us",
        )
        .bind(tenant.as_str().to_owned())
        .bind(w.name.clone())
        .bind(w.vkey.clone())
        .bind(w.url.clone())
        .bind(w.ca_pem.clone())
        .bind(db_int(now_us))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Removes the witness named `name`; whether there was one.
    pub(crate) async fn remove_witness(
        conn: &mut DB::Connection,
        tenant: &TenantId,
        name: &str,
    ) -> Result<bool, StoreError> {
        let removed = sqlx::query(
            "DELETE FROM tenant_witnesses WHERE tenant_id = $1 AND name = $2 RETURNING name",
        )
        .bind(tenant.as_str().to_owned())
        .bind(name.to_owned())
        .fetch_optional(&mut *conn)
        .await?;
        Ok(removed.is_some())
    }

    /// Stores a verified cosignature line (a repeat is ignored).
    pub(crate) async fn record_cosignature(
        conn: &mut DB::Connection,
        tenant: &TenantId,
        size: u64,
        root: &[u8],
        witness: &str,
        line: &str,
        cosigned_at: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO checkpoint_cosignatures (tenant_id, tree_size, root, witness, line, cosigned_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(tenant.as_str().to_owned())
        .bind(db_int(size))
        .bind(root.to_vec())
        .bind(witness.to_owned())
        .bind(line.to_owned())
        .bind(db_int(cosigned_at))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// The cosignature lines on the checkpoint of `size` and `root`: (witness, line).
    pub(crate) async fn cosignatures(
        conn: &mut DB::Connection,
        tenant: &TenantId,
        size: u64,
        root: &[u8],
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT witness, line FROM checkpoint_cosignatures
             WHERE tenant_id = $1 AND tree_size = $2 AND root = $3 ORDER BY witness",
        )
        .bind(tenant.as_str().to_owned())
        .bind(db_int(size))
        .bind(root.to_vec())
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// The largest tree size `witness` cosigned.
    pub(crate) async fn last_cosigned(
        conn: &mut DB::Connection,
        tenant: &TenantId,
        witness: &str,
    ) -> Result<Option<u64>, StoreError> {
        let row = sqlx::query(
            "SELECT max(tree_size) FROM checkpoint_cosignatures WHERE tenant_id = $1 AND witness = $2",
        )
        .bind(tenant.as_str().to_owned())
        .bind(witness.to_owned())
        .fetch_one(&mut *conn)
        .await?;
        let size: Option<i64> = row.try_get(0)?;
        Ok(size.and_then(|s| u64::try_from(s).ok()))
    }
}
