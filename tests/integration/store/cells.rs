//! Tenant cells on PostgreSQL: a tenant's ledger and views moved to another database, every
//! node routing by the placement, the source fenced for good, and the views carried along.

use auditex::store::{Store, StoreError};
use sqlx::Connection;

use crate::support::{
    Backend, TestDb, append_many, assert_valid_chain, decisions, decisions_served, postgres_tests,
    read_chain, tenant_id,
};

postgres_tests!(a_moved_tenant_keeps_one_chain_its_views_and_its_checkpoints_on_its_new_cell);

/// A store of the home database `home` with `cell` configured as the cell `b`.
async fn open_with_cell(home: &TestDb, cell: &TestDb) -> Store {
    let mut config = home.config();
    config.cells = vec![("b".to_owned(), cell.postgres_app_url().to_owned())];
    Store::open_with_workers(config)
        .await
        .expect("the store opens with a cell")
}

async fn rows_of(url: &str, tenant: &str) -> i64 {
    let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
    let mut tx = c.begin().await.expect("begin");
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant)
        .execute(&mut *tx)
        .await
        .expect("tenant set");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM records WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_one(&mut *tx)
        .await
        .expect("count");
    n
}

async fn a_moved_tenant_keeps_one_chain_its_views_and_its_checkpoints_on_its_new_cell(
    backend: Backend,
) {
    let home = TestDb::new(&backend).await;
    let cell = TestDb::new(&backend).await;
    let store = open_with_cell(&home, &cell).await;
    let tenant = tenant_id("acme");
    let other = tenant_id("other");
    store.create_tenant(&tenant).await.expect("tenant");
    store.create_tenant(&other).await.expect("tenant");
    append_many(&store, &tenant, 250, 100).await;
    append_many(&store, &other, 20, 20).await;
    store.publish_checkpoints().await.expect("publish");
    store
        .views_runner()
        .clone()
        .catch_up(&store)
        .await
        .expect("views");
    assert_eq!(decisions_served(&store, &tenant).await, 250);
    assert_eq!(store.placement(&tenant).await.expect("placement"), "home");

    let report = store
        .move_tenant(&tenant, "b", &|_, _| {})
        .await
        .expect("the move succeeds");
    assert_eq!(report.copied.from, "home");
    assert!(
        report
            .copied
            .tables
            .iter()
            .any(|(t, n)| t == "records" && *n == 250),
        "{:?}",
        report.copied.tables
    );
    assert!(report.check.checkpoints_checked >= 1);
    assert_eq!(store.placement(&tenant).await.expect("placement"), "b");
    assert_eq!(store.placement(&other).await.expect("placement"), "home");

    // Appends continue the same chain on the new cell; the views were carried along.
    append_many(&store, &tenant, 30, 30).await;
    store.publish_checkpoints().await.expect("publish");
    store
        .views_runner()
        .clone()
        .catch_up(&store)
        .await
        .expect("views");
    assert_eq!(decisions_served(&store, &tenant).await, 280);
    let chain = read_chain(&store, &tenant).await;
    assert_eq!(chain.len(), 280);
    let keys = store.key_history(&tenant).await.expect("keys");
    assert_valid_chain(&chain, &tenant, &keys);
    let checkpoints = store
        .checkpoints(&tenant, None, 100)
        .await
        .expect("history");
    assert!(checkpoints.iter().any(|c| c.size.get() == 250));
    assert!(checkpoints.iter().any(|c| c.size.get() == 280));
    assert_eq!(
        rows_of(home.postgres_app_url(), "acme").await,
        250,
        "the source is frozen"
    );
    assert_eq!(rows_of(cell.postgres_app_url(), "acme").await, 280);
    assert_eq!(
        rows_of(cell.postgres_app_url(), "other").await,
        0,
        "only the moved tenant"
    );

    // A second node with the same cells routes the same way.
    let second = open_with_cell(&home, &cell).await;
    append_many(&second, &tenant, 5, 5).await;
    assert_eq!(read_chain(&store, &tenant).await.len(), 285);

    // A node that does not know of the move (no cells configured) finds the source fenced:
    // its write is refused, retryably, and nothing lands there.
    let stale = home.open().await;
    let refused = stale.append(&tenant, decisions(1)).await;
    let err = refused.expect_err("the fenced source refuses the append");
    assert!(
        err.to_string().contains("fenced") || err.to_string().contains("moved"),
        "{err}"
    );
    assert_eq!(rows_of(home.postgres_app_url(), "acme").await, 250);

    // Back onto the old copy: refused, and the tenant stays writable where it is.
    match store.move_tenant(&tenant, "home", &|_, _| {}).await {
        Err(StoreError::Cells(why)) => assert!(why.contains("earlier placement"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    match store.move_tenant(&tenant, "nowhere", &|_, _| {}).await {
        Err(StoreError::Cells(why)) => assert!(why.contains("no cell named"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    append_many(&store, &tenant, 1, 1).await;
    assert_eq!(read_chain(&store, &tenant).await.len(), 286);
    let report = store
        .check_integrity(&tenant, auditex::store::IntegrityOptions::default())
        .await
        .expect("check");
    assert_eq!(report.outcome, auditex::store::IntegrityOutcome::Passed);
}
