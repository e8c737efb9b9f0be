//! Tenant cells on PostgreSQL: a tenant's ledger and views moved to another database, every
//! node routing by the placement, the source fenced for good, and the views carried along.

use std::collections::BTreeMap;

use auditex::store::holds::PlaceHold;
use auditex::store::retention::RetentionRule;
use auditex::store::subjects::{ErasureError, SubjectErasure};
use auditex::store::{Store, StoreError};
use ledger::draft::{ClientDraft, prepare_client_draft};
use serde_json::json;
use sqlx::Connection;

use crate::support::{
    Backend, TestDb, append_many, assert_valid_chain, decision_payload, decisions_served,
    new_event_id, postgres_tests, read_chain, tenant_id,
};

postgres_tests!(
    a_moved_tenant_keeps_one_chain_its_views_and_its_checkpoints_on_its_new_cell,
    a_cell_naming_the_home_database_is_refused_at_start,
    appends_and_an_erasure_made_while_the_move_copies_are_on_the_new_cell,
);

/// A store of the home database `home` with `cell` configured as the cell `b`.
async fn open_with_cell(home: &TestDb, cell: &TestDb) -> Store {
    let mut config = home.config();
    config.cells = vec![("b".to_owned(), cell.postgres_app_url().to_owned())];
    Store::open_with_workers(config)
        .await
        .expect("the store opens with a cell")
}

/// A decision about `subject` with an erasable name.
fn about(subject: &str, name: &str) -> ClientDraft {
    let mut payload = decision_payload("approved");
    payload["subject_ref"] = json!(subject);
    let fields: BTreeMap<String, serde_json::Value> =
        [("name".to_owned(), json!(name))].into_iter().collect();
    prepare_client_draft(&new_event_id(), "decision", &payload, &fields, rand::random)
        .unwrap_or_else(|errors| panic!("the test draft is valid: {errors:?}"))
}

fn whole(subject: &str) -> SubjectErasure {
    SubjectErasure {
        subject_ref: subject.to_owned(),
        event_ids: None,
        fields: None,
        reason: "the person asked".to_owned(),
        legal_basis: "GDPR Art. 17(1)(a)".to_owned(),
    }
}

/// Waits until the store's views have applied every record.
async fn caught_up(store: &Store) {
    store
        .views_runner()
        .clone()
        .catch_up(store)
        .await
        .expect("views");
}

async fn rows_of(url: &str, tenant: &str) -> i64 {
    count_of(url, tenant, "records").await
}

async fn count_of(url: &str, tenant: &str, table: &str) -> i64 {
    let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
    let mut tx = c.begin().await.expect("begin");
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant)
        .execute(&mut *tx)
        .await
        .expect("tenant set");
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {table} WHERE tenant_id = $1"
    )))
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
    // A second node, running through the move: it must follow the new placement by itself.
    let second = open_with_cell(&home, &cell).await;
    let tenant = tenant_id("acme");
    let other = tenant_id("other");
    store.create_tenant(&tenant).await.expect("tenant");
    store.create_tenant(&other).await.expect("tenant");
    append_many(&store, &tenant, 250, 100).await;
    append_many(&store, &other, 20, 20).await;
    // Personal data, an erasure, a hold, a retention policy, public tiles: every table a move
    // carries has rows.
    let alice = store
        .append(
            &tenant,
            vec![
                about("alice", "Alice-Plaintext-1"),
                about("alice", "Alice-Plaintext-2"),
            ],
        )
        .await
        .expect("alice");
    store
        .append(&tenant, vec![about("bob", "Bob-Plaintext-1")])
        .await
        .expect("bob");
    store
        .erase_subject(&tenant, whole("bob"))
        .await
        .expect("bob erased");
    store
        .place_hold(
            &tenant,
            PlaceHold {
                subject_ref: "alice".into(),
                decision_id: None,
                reason: "litigation".into(),
                reference: None,
            },
        )
        .await
        .expect("hold");
    store
        .set_retention_policy(
            &tenant,
            vec![RetentionRule::parse("event_type=decision,days=365").expect("rule")],
            "dpo@acme.test",
            None,
        )
        .await
        .expect("policy");
    store.set_tiles_public(&tenant, true).await.expect("public");
    let before = store.tree_size(&tenant).await.expect("size").get();
    store.publish_checkpoints().await.expect("publish");
    caught_up(&store).await;
    let served = decisions_served(&store, &tenant).await;
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
            .any(|(t, n)| t == "records" && *n == before),
        "{:?}",
        report.copied.tables
    );
    assert!(report.check.checkpoints_checked >= 1);
    assert_eq!(store.placement(&tenant).await.expect("placement"), "b");
    assert_eq!(store.placement(&other).await.expect("placement"), "home");
    for table in [
        "erasable_values",
        "data_keys",
        "erased_values",
        "erasures",
        "legal_holds",
        "retention_rules",
        "tenant_tile_access",
        "proj_decisions",
        "projection_positions",
    ] {
        assert!(
            report
                .copied
                .tables
                .iter()
                .any(|(t, n)| t == table && *n > 0),
            "{table} was carried: {:?}",
            report.copied.tables
        );
    }
    // Alice's values read on the new cell; Bob's stay erased; the hold still holds.
    let values = store
        .erasable_values(&tenant, crate::support::seq(alice[0].seq))
        .await
        .expect("values");
    assert_eq!(values.len(), 1, "{values:?}");
    assert!(store.tiles_public(&tenant).await.expect("tiles"));
    match store.erase_subject(&tenant, whole("alice")).await {
        Err(ErasureError::Held { .. }) => {}
        other => panic!("the hold moved with the tenant: {other:?}"),
    }

    // Appends continue the same chain on the new cell; the views were carried along.
    append_many(&store, &tenant, 30, 30).await;
    store.publish_checkpoints().await.expect("publish");
    caught_up(&store).await;
    assert_eq!(decisions_served(&store, &tenant).await, served + 30);
    let chain = read_chain(&store, &tenant).await;
    let after = usize::try_from(before).expect("fits") + 30;
    assert_eq!(chain.len(), after);
    let keys = store.key_history(&tenant).await.expect("keys");
    assert_valid_chain(&chain, &tenant, &keys);
    let checkpoints = store
        .checkpoints(&tenant, None, 100)
        .await
        .expect("history");
    assert!(checkpoints.iter().any(|c| c.size.get() == before));
    assert!(checkpoints.iter().any(|c| c.size.get() == before + 30));
    let before_i = i64::try_from(before).expect("fits");
    assert_eq!(
        rows_of(home.postgres_app_url(), "acme").await,
        before_i,
        "the source is frozen"
    );
    assert_eq!(
        rows_of(cell.postgres_app_url(), "acme").await,
        before_i + 30
    );
    assert_eq!(
        rows_of(cell.postgres_app_url(), "other").await,
        0,
        "only the moved tenant"
    );

    // The second node, opened before the move, appends on the new cell.
    append_many(&second, &tenant, 5, 5).await;
    assert_eq!(read_chain(&store, &tenant).await.len(), after + 5);

    // A node that does not know the cell refuses to start rather than read the frozen copy.
    match Store::open(home.config()).await {
        Err(StoreError::Cells(why)) => assert!(why.contains("cell(s) b"), "{why}"),
        other => panic!("a node without the cell opened: {:?}", other.map(|_| ())),
    }
    // Whatever writes to the old copy (a node that has not yet read the new placement) is
    // refused by the database itself, retryably.
    let mut c = sqlx::PgConnection::connect(home.postgres_app_url())
        .await
        .expect("connect");
    let mut tx = c.begin().await.expect("begin");
    sqlx::query("SELECT set_config('app.tenant_id', 'acme', true)")
        .execute(&mut *tx)
        .await
        .expect("tenant set");
    let refused = sqlx::query(
        "INSERT INTO checkpoints (tenant_id, tree_size, root, signed_note, published_at_us) VALUES ('acme', 999999, decode(repeat('00', 32), 'hex'), 'x', 1)",
    )
    .execute(&mut *tx)
    .await
    .expect_err("the fence refuses the write");
    let refused = StoreError::from(refused);
    assert!(
        matches!(refused, StoreError::TenantFenced(_)),
        "{refused:?}"
    );
    assert!(refused.is_retryable());
    drop(tx);
    assert_eq!(rows_of(home.postgres_app_url(), "acme").await, before_i);
    // The frozen copy keeps its records but none of the personal data.
    assert_eq!(
        count_of(home.postgres_app_url(), "acme", "erasable_values").await,
        0
    );
    assert_eq!(
        count_of(home.postgres_app_url(), "acme", "data_keys").await,
        0
    );
    // Had the move been killed before it emptied the old copy (a key left there, written past
    // the fence as the move's own copy would be), running it again empties it.
    let mut tx = c.begin().await.expect("begin");
    sqlx::query(
        "SELECT set_config('app.tenant_id', 'acme', true), set_config('app.move_copy', 'on', true)",
    )
    .execute(&mut *tx)
    .await
    .expect("settings");
    sqlx::query(
        "INSERT INTO data_keys (tenant_id, key_seq, subject_ref, wrapped) VALUES ('acme', 999999, 'left', decode('00', 'hex'))",
    )
    .execute(&mut *tx)
    .await
    .expect("a key left behind");
    tx.commit().await.expect("commit");
    assert_eq!(
        count_of(home.postgres_app_url(), "acme", "data_keys").await,
        1
    );
    match store.move_tenant(&tenant, "b", &|_, _| {}).await {
        Err(StoreError::Cells(why)) => assert!(why.contains("already on cell b"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        count_of(home.postgres_app_url(), "acme", "data_keys").await,
        0,
        "the rerun emptied the old copy"
    );
    assert!(count_of(cell.postgres_app_url(), "acme", "erasable_values").await > 0);

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
    assert_eq!(read_chain(&store, &tenant).await.len(), after + 6);
    let report = store
        .check_integrity(&tenant, auditex::store::IntegrityOptions::default())
        .await
        .expect("check");
    assert_eq!(report.outcome, auditex::store::IntegrityOutcome::Passed);
}

async fn a_cell_naming_the_home_database_is_refused_at_start(backend: Backend) {
    let home = TestDb::new(&backend).await;
    let mut config = home.config();
    config.cells = vec![("b".to_owned(), home.postgres_app_url().to_owned())];
    match Store::open(config).await {
        Err(StoreError::Cells(why)) => assert!(why.contains("same database"), "{why}"),
        other => panic!(
            "a cell naming the home database opened: {:?}",
            other.map(|_| ())
        ),
    }
}

async fn appends_and_an_erasure_made_while_the_move_copies_are_on_the_new_cell(backend: Backend) {
    let home = TestDb::new(&backend).await;
    let cell = TestDb::new(&backend).await;
    let store = open_with_cell(&home, &cell).await;
    let tenant = tenant_id("acme");
    store.create_tenant(&tenant).await.expect("tenant");
    append_many(&store, &tenant, 120, 60).await;
    let carol = store
        .append(
            &tenant,
            vec![
                about("carol", "Carol-Plaintext-1"),
                about("carol", "Carol-Plaintext-2"),
            ],
        )
        .await
        .expect("carol");
    let dave = store
        .append(&tenant, vec![about("dave", "Dave-Plaintext-1")])
        .await
        .expect("dave");
    store.publish_checkpoints().await.expect("publish");
    caught_up(&store).await;
    let before = store.tree_size(&tenant).await.expect("size").get();

    // While the copy made before the fence runs (its last table), another node appends and
    // erases Carol: the snapshot holds her values, the source no longer does.
    let other = open_with_cell(&home, &cell).await;
    let handle = tokio::runtime::Handle::current();
    let done = std::sync::atomic::AtomicBool::new(false);
    let during = |table: &str, _rows: u64| {
        if table != "proj_daily" || done.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        tokio::task::block_in_place(|| {
            handle.block_on(async {
                append_many(&other, &tenant, 7, 7).await;
                other
                    .erase_subject(&tenant, whole("carol"))
                    .await
                    .expect("carol erased");
            });
        });
    };
    let report = store
        .move_tenant(&tenant, "b", &during)
        .await
        .expect("the move succeeds");
    assert!(
        done.load(std::sync::atomic::Ordering::SeqCst),
        "the hook ran"
    );
    assert!(report.copied.precopy > std::time::Duration::ZERO);
    assert_eq!(store.placement(&tenant).await.expect("placement"), "b");

    // Everything appended during the copy is on the new cell, Carol's values are gone there,
    // Dave's are not, and the views catch up from the snapshot's positions.
    let chain = read_chain(&store, &tenant).await;
    assert_eq!(
        chain.len(),
        usize::try_from(before).expect("fits") + 8,
        "7 appends and the erasure"
    );
    let keys = store.key_history(&tenant).await.expect("keys");
    assert_valid_chain(&chain, &tenant, &keys);
    for r in &carol {
        let values = store
            .erasable_values(&tenant, crate::support::seq(r.seq))
            .await
            .expect("values");
        assert!(
            values.is_empty(),
            "Carol's value at {} came back: {values:?}",
            r.seq
        );
    }
    let kept = store
        .erasable_values(&tenant, crate::support::seq(dave[0].seq))
        .await
        .expect("values");
    assert_eq!(kept.len(), 1);
    caught_up(&store).await;
    let served = decisions_served(&store, &tenant).await;
    assert_eq!(
        served,
        120 + 3 + 7,
        "every decision in the views on the new cell"
    );
    let report = store
        .check_integrity(&tenant, auditex::store::IntegrityOptions::default())
        .await
        .expect("check");
    assert_eq!(report.outcome, auditex::store::IntegrityOutcome::Passed);
}
