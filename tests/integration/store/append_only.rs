//! Append-only, enforced by the database itself: raw SQL that would change or remove ledger rows
//! is refused even on a connection the application could open. On SQLite the triggers refuse; on
//! PostgreSQL the application role lacks the privileges, and the triggers refuse even the owner.

use std::time::Duration;

use auditex::store::{Store, StoreError};
use ledger::types::{TenantId, TreeSize};
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

use crate::support::{
    Backend, TestDb, append_many, assert_valid_chain, backend_tests, read_chain, reference_root,
};

backend_tests!(
    ledger_rows_cannot_be_updated_deleted_or_truncated_with_raw_sql,
    a_record_changed_behind_the_stores_back_is_reported_corrupt_when_read,
);

/// Statements that must all be refused, on the tables that must never change.
const UPDATES_AND_DELETES: &[&str] = &[
    "UPDATE records SET payload = '{}' WHERE tenant_id = 'acme' AND seq = 0",
    "UPDATE records SET seq = seq + 1000 WHERE tenant_id = 'acme'",
    "DELETE FROM records WHERE tenant_id = 'acme' AND seq = 299",
    "DELETE FROM records",
    "UPDATE merkle_nodes SET idx = idx + 1 WHERE tenant_id = 'acme'",
    "DELETE FROM merkle_nodes",
    "UPDATE checkpoints SET tree_size = 1 WHERE tenant_id = 'acme'",
    "DELETE FROM checkpoints",
];

/// A tenant with enough records for a stored level-8 Merkle node, and a checkpoint, so that every
/// table has rows for the statements above to hit.
async fn ledger_with_rows(db: &TestDb) -> (Store, TenantId) {
    let (store, tenant) = db.open_with_tenant("acme").await;
    append_many(&store, &tenant, 300, 300).await;
    store.publish_checkpoints().await.expect("publish");
    (store, tenant)
}

async fn ledger_rows_cannot_be_updated_deleted_or_truncated_with_raw_sql(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = ledger_with_rows(&db).await;
    let root = store
        .root_at(&tenant, TreeSize::new(300))
        .await
        .expect("root");

    if db.is_postgres() {
        refused_on_postgres(&db).await;
    } else {
        refused_on_sqlite(&db).await;
    }

    // Everything is as it was.
    let chain = read_chain(&store, &tenant).await;
    assert_eq!(chain.len(), 300);
    assert_valid_chain(
        &chain,
        &tenant,
        &store.key_history(&tenant).await.expect("keys"),
    );
    let hashes: Vec<_> = chain.iter().map(|r| r.hash).collect();
    assert_eq!(root, reference_root(&hashes));
    assert_eq!(
        store
            .root_at(&tenant, TreeSize::new(300))
            .await
            .expect("root"),
        root
    );
    let latest = store
        .latest_checkpoint(&tenant)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!((latest.size, latest.root), (TreeSize::new(300), root));
}

async fn refused_on_sqlite(db: &TestDb) {
    // Any process that can open the file gets an ordinary connection like the service's own.
    let options = SqliteConnectOptions::new()
        .filename(db.sqlite_path())
        .busy_timeout(Duration::from_secs(10));
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .expect("open the database file");
    for sql in UPDATES_AND_DELETES {
        let err = sqlx::query(*sql).execute(&mut conn).await.expect_err(sql);
        assert!(
            err.to_string().contains("append-only"),
            "{sql}: refused by the append-only trigger, not by accident: {err}"
        );
    }
    conn.close().await.ok();
}

async fn refused_on_postgres(db: &TestDb) {
    let mut app = sqlx::PgConnection::connect(db.postgres_app_url())
        .await
        .expect("connect as the application role");
    let truncates = [
        "TRUNCATE records",
        "TRUNCATE records CASCADE",
        "TRUNCATE merkle_nodes",
        "TRUNCATE checkpoints",
    ];
    // The application role lacks UPDATE, DELETE and TRUNCATE; the tenant is set as the service
    // sets it, so row-level security would let the statements see the rows.
    for sql in UPDATES_AND_DELETES.iter().chain(&truncates) {
        let err = in_tenant_tx(&mut app, "acme", sql).await.expect_err(sql);
        assert!(
            err.to_string().contains("permission denied"),
            "{sql}: the application role is refused by privileges: {err}"
        );
    }
    // Nor may it switch the triggers off or change the schema.
    for sql in [
        "ALTER TABLE records DISABLE TRIGGER records_append_only",
        "ALTER TABLE records NO FORCE ROW LEVEL SECURITY",
        "DROP TRIGGER records_append_only ON records",
    ] {
        let err = in_tenant_tx(&mut app, "acme", sql).await.expect_err(sql);
        assert!(err.to_string().contains("must be owner"), "{sql}: {err}");
    }
    app.close().await.ok();

    // The owner holds every privilege, and the triggers still refuse.
    let mut owner = sqlx::PgConnection::connect(db.postgres_owner_url())
        .await
        .expect("connect as the owner");
    let owner_truncates = [
        "TRUNCATE records CASCADE",
        "TRUNCATE merkle_nodes",
        "TRUNCATE checkpoints",
    ];
    for sql in UPDATES_AND_DELETES.iter().chain(&owner_truncates) {
        let err = in_tenant_tx(&mut owner, "acme", sql).await.expect_err(sql);
        assert!(
            err.to_string().contains("append-only"),
            "{sql}: the owner is refused by the trigger: {err}"
        );
    }
    in_tenant_tx(&mut owner, "acme", "TRUNCATE records")
        .await
        .expect_err("plain TRUNCATE of records is refused as well");
    owner.close().await.ok();
}

async fn a_record_changed_behind_the_stores_back_is_reported_corrupt_when_read(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("acme").await;
    append_many(&store, &tenant, 3, 3).await;
    let victim = store
        .record(&tenant, crate::support::seq(1))
        .await
        .expect("read")
        .expect("exists");

    // Someone with full control of the database switches the guard off and edits a payload.
    let forge = "UPDATE records SET payload = '{\"outcome\":\"forged\"}' WHERE tenant_id = 'acme' AND seq = 1";
    if db.is_postgres() {
        let mut owner = sqlx::PgConnection::connect(db.postgres_owner_url())
            .await
            .expect("connect as the owner");
        sqlx::query("ALTER TABLE records DISABLE TRIGGER records_append_only")
            .execute(&mut owner)
            .await
            .expect("the owner may disable the trigger");
        assert_eq!(
            in_tenant_tx(&mut owner, "acme", forge)
                .await
                .expect("forged"),
            1
        );
        owner.close().await.ok();
    } else {
        let options = SqliteConnectOptions::new().filename(db.sqlite_path());
        let mut conn = SqliteConnection::connect_with(&options)
            .await
            .expect("open the database file");
        sqlx::query("DROP TRIGGER records_no_update")
            .execute(&mut conn)
            .await
            .expect("drop the trigger");
        assert_eq!(
            sqlx::query(forge)
                .execute(&mut conn)
                .await
                .expect("forged")
                .rows_affected(),
            1
        );
        conn.close().await.ok();
    }

    // Every read checks the record against its stored hash, so the change cannot pass unnoticed.
    let corrupt = |what: &str, r: Result<(), StoreError>| {
        assert!(
            matches!(&r, Err(StoreError::Corrupt(m)) if m.contains("record 1")),
            "{what}: expected Corrupt naming record 1, got {r:?}"
        );
    };
    corrupt(
        "by seq",
        store
            .record(&tenant, crate::support::seq(1))
            .await
            .map(drop),
    );
    corrupt(
        "by event id",
        store
            .record_by_event_id(&tenant, victim.event_id)
            .await
            .map(drop),
    );
    corrupt(
        "range",
        store
            .records(&tenant, crate::support::seq(0), 10)
            .await
            .map(drop),
    );
    store
        .record(&tenant, crate::support::seq(2))
        .await
        .expect("other records still read")
        .expect("exists");
}

/// Runs `sql` in a transaction scoped to `tenant` the way the service scopes its own, and rolls
/// back on failure.
async fn in_tenant_tx(
    conn: &mut sqlx::PgConnection,
    tenant: &str,
    sql: &'static str,
) -> Result<u64, sqlx::Error> {
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
    let done = sqlx::query(sql).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}
