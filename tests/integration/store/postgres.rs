//! What only the PostgreSQL backend has: row-level security that fails closed for the
//! application role, and several service instances (several stores, several pools) sharing one
//! database while still building one chain per tenant.

use std::collections::HashSet;

use auditex::store::Store;
use ledger::checkpoint::open_checkpoint;
use ledger::merkle::verify_consistency;
use ledger::note::VerifierKey;
use ledger::types::{Hash, TreeSize};
use sqlx::Connection;

use crate::support::{
    Backend, TestDb, append_many, assert_valid_chain, decision, decisions, decisions_served,
    postgres_tests, read_chain, reference_root, tenant_id,
};

postgres_tests!(
    without_a_tenant_setting_the_application_role_sees_no_rows,
    with_one_tenant_set_the_application_role_cannot_insert_or_read_another_tenants_rows,
    two_stores_appending_concurrently_to_one_tenant_build_one_verifiable_chain,
    the_same_events_sent_to_two_stores_at_once_are_appended_once_and_both_get_the_winners_receipts,
    a_store_resumes_from_the_database_when_another_instance_moved_the_chain,
    the_views_and_their_positions_are_unlogged_and_nothing_else_is,
    a_view_generation_is_a_partition_indexed_once_it_has_caught_up,
    two_instances_finishing_one_rebuild_switch_once,
    the_application_role_reaches_no_other_tenants_accounts_sessions_resets_or_keys,
    the_application_role_cannot_move_view_generations_or_drop_the_active_one,
);

const LEDGER_TABLES: &[&str] = &[
    "records",
    "merkle_nodes",
    "checkpoints",
    "signing_keys",
    "erasable_values",
    "tenant_origins",
];

async fn count(conn: &mut sqlx::PgConnection, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(conn)
        .await
        .unwrap_or_else(|e| panic!("count {table}: {e}"))
}

async fn without_a_tenant_setting_the_application_role_sees_no_rows(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("acme").await;
    append_many(&store, &tenant, 300, 300).await;
    store.publish_checkpoints().await.expect("publish");
    let mut app = sqlx::PgConnection::connect(db.postgres_app_url())
        .await
        .expect("connect as the application role");

    for table in LEDGER_TABLES {
        assert_eq!(
            count(&mut app, table).await,
            0,
            "{table}: no tenant set, no rows (fails closed)"
        );
    }
    // An empty setting counts as none.
    let mut tx = app.begin().await.expect("begin");
    sqlx::query("SELECT set_config('app.tenant_id', '', true)")
        .execute(&mut *tx)
        .await
        .expect("set");
    assert_eq!(count(&mut tx, "records").await, 0);
    tx.rollback().await.expect("rollback");

    // With the tenant set for a transaction the rows are there ...
    let mut tx = app.begin().await.expect("begin");
    sqlx::query("SELECT set_config('app.tenant_id', 'acme', true)")
        .execute(&mut *tx)
        .await
        .expect("set");
    assert_eq!(count(&mut tx, "records").await, 300);
    assert_eq!(count(&mut tx, "merkle_nodes").await, 1);
    assert_eq!(count(&mut tx, "checkpoints").await, 1);
    assert_eq!(count(&mut tx, "signing_keys").await, 1);
    tx.commit().await.expect("commit");
    // ... and the setting ends with the transaction, so a pooled connection carries nothing over.
    assert_eq!(count(&mut app, "records").await, 0);
    // The same with the setting sent in the statement that begins the transaction, as the store
    // does (one round trip for both).
    for commit in [true, false] {
        let mut tx = app
            .begin_with("BEGIN; SELECT set_config('app.tenant_id', 'acme', true)")
            .await
            .expect("begin with the tenant");
        assert_eq!(count(&mut tx, "records").await, 300);
        if commit {
            tx.commit().await.expect("commit");
        } else {
            tx.rollback().await.expect("rollback");
        }
        assert_eq!(
            count(&mut app, "records").await,
            0,
            "nothing carried over (commit: {commit})"
        );
    }
    app.close().await.ok();
}

async fn with_one_tenant_set_the_application_role_cannot_insert_or_read_another_tenants_rows(
    backend: Backend,
) {
    let db = TestDb::new(&backend).await;
    let (store, alpha) = db.open_with_tenant("alpha").await;
    let beta = tenant_id("beta");
    store.create_tenant(&beta).await.expect("tenant");
    append_many(&store, &beta, 5, 5).await;
    append_many(&store, &alpha, 2, 2).await;
    let mut app = sqlx::PgConnection::connect(db.postgres_app_url())
        .await
        .expect("connect as the application role");

    let mut tx = app.begin().await.expect("begin");
    sqlx::query("SELECT set_config('app.tenant_id', 'alpha', true)")
        .execute(&mut *tx)
        .await
        .expect("set");
    let beta_rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM records WHERE tenant_id = 'beta'")
            .fetch_one(&mut *tx)
            .await
            .expect("count");
    assert_eq!(beta_rows, 0, "beta's rows are invisible while alpha is set");
    assert_eq!(
        count(&mut tx, "records").await,
        2,
        "only alpha's rows are visible"
    );
    // A well-formed row, wrong only in its tenant.
    let err = sqlx::query(
        "INSERT INTO records (tenant_id, seq, event_id, event_type, captured_at_us, prev, hash,
                              key_id, sig, payload, erasable)
         VALUES ('beta', 1000, '0190a5a4-0000-7000-8000-000000000000', 'decision', 1,
                 decode(repeat('00', 32), 'hex'), decode(repeat('11', 32), 'hex'),
                 '0011223344556677', decode(repeat('22', 64), 'hex'), '{}', '{}')",
    )
    .execute(&mut *tx)
    .await
    .expect_err("a row for another tenant is refused");
    assert!(
        err.to_string().contains("row-level security"),
        "refused by the policy: {err}"
    );
    tx.rollback().await.expect("rollback");

    let mut tx = app.begin().await.expect("begin");
    sqlx::query("SELECT set_config('app.tenant_id', 'alpha', true)")
        .execute(&mut *tx)
        .await
        .expect("set");
    let err = sqlx::query(
        "INSERT INTO checkpoints (tenant_id, tree_size, root, signed_note, published_at_us)
         VALUES ('beta', 999, decode(repeat('00', 32), 'hex'), 'forged', 1)",
    )
    .execute(&mut *tx)
    .await
    .expect_err("a checkpoint for another tenant is refused");
    assert!(err.to_string().contains("row-level security"), "{err}");
    tx.rollback().await.expect("rollback");
    app.close().await.ok();

    assert_eq!(
        read_chain(&store, &beta).await.len(),
        5,
        "beta is untouched"
    );
}

async fn the_same_events_sent_to_two_stores_at_once_are_appended_once_and_both_get_the_winners_receipts(
    backend: Backend,
) {
    const ROUNDS: usize = 25;
    const SHARED: usize = 6;
    let db = TestDb::new(&backend).await;
    let (first, tenant) = db.open_with_tenant("acme").await;
    // A second service node: its own pool and appender, the same database.
    let second = db.open().await;
    let mut unique = 0;
    for round in 0..ROUNDS {
        // A client retrying on another node: the same events (identical content) at both.
        let shared: Vec<_> = (0..SHARED).map(|_| decision("approved")).collect();
        let mut tasks = Vec::new();
        for store in [&first, &second] {
            let (node, t, batch) = (store.clone(), tenant.clone(), shared.clone());
            tasks.push(tokio::spawn(async move { node.append(&t, batch).await }));
            // Other requests in the same groups must commit whatever happens to the shared ones.
            let (node, t) = (store.clone(), tenant.clone());
            tasks.push(tokio::spawn(async move {
                node.append(&t, vec![decision("denied")]).await
            }));
            unique += 1;
        }
        let mut results = Vec::new();
        for task in tasks {
            results.push(
                task.await
                    .expect("task")
                    .unwrap_or_else(|e| panic!("round {round}: every append succeeds, got {e}")),
            );
        }
        let (a, b) = (&results[0], &results[2]);
        for (x, y) in a.iter().zip(b) {
            assert_eq!(
                (x.event_id, x.seq, x.hash),
                (y.event_id, y.seq, y.hash),
                "round {round}: both nodes answer one event with one receipt"
            );
            assert!(
                x.duplicate || y.duplicate,
                "round {round}: the loser's receipt says duplicate"
            );
        }
    }
    let chain = read_chain(&first, &tenant).await;
    assert_eq!(
        chain.len(),
        ROUNDS * SHARED + unique,
        "each shared event once, each unique one once"
    );
    let ids: HashSet<_> = chain.iter().map(|r| r.event_id).collect();
    assert_eq!(ids.len(), chain.len(), "no event id twice");
    let keys = first.key_history(&tenant).await.expect("keys");
    assert_valid_chain(&chain, &tenant, &keys);
}

async fn two_stores_appending_concurrently_to_one_tenant_build_one_verifiable_chain(
    backend: Backend,
) {
    const TASKS_PER_STORE: usize = 32;
    const APPENDS_EACH: usize = 5;
    let db = TestDb::new(&backend).await;
    let (first, tenant) = db.open_with_tenant("acme").await;
    // A second service instance: its own pool, its own appender, the same database.
    let second = db.open().await;

    let mut tasks = Vec::new();
    for store in [&first, &second] {
        for i in 0..TASKS_PER_STORE {
            let store = store.clone();
            let tenant = tenant.clone();
            tasks.push(tokio::spawn(async move {
                let mut receipts = Vec::new();
                for j in 0..APPENDS_EACH {
                    // Mostly single appends, some small batches.
                    let batch = if (i + j) % 4 == 0 {
                        decisions(3)
                    } else {
                        vec![decision("approved")]
                    };
                    receipts.extend(store.append(&tenant, batch).await.expect("append"));
                }
                receipts
            }));
        }
    }
    let mut receipts = Vec::new();
    for task in tasks {
        receipts.extend(task.await.expect("task"));
    }

    let chain = read_chain(&first, &tenant).await;
    assert_eq!(receipts.len(), chain.len(), "one record per receipt");
    let seqs: HashSet<u64> = receipts.iter().map(|r| r.seq).collect();
    assert_eq!(
        seqs.len(),
        receipts.len(),
        "no sequence number was handed out twice"
    );
    let keys = first.key_history(&tenant).await.expect("keys");
    assert_valid_chain(&chain, &tenant, &keys);
    for r in &receipts {
        let record = &chain[usize::try_from(r.seq).expect("fits")];
        assert_eq!((record.event_id, record.hash), (r.event_id, r.hash));
    }
    let hashes: Vec<Hash> = chain.iter().map(|r| r.hash).collect();
    let size = TreeSize::new(u64::try_from(chain.len()).expect("fits"));
    let root = reference_root(&hashes);
    assert_eq!(first.root_at(&tenant, size).await.expect("root"), root);
    assert_eq!(second.root_at(&tenant, size).await.expect("root"), root);

    // Both instances publish; every checkpoint verifies and all are consistent with the tree.
    first.publish_checkpoints().await.expect("publish");
    second.publish_checkpoints().await.expect("publish");
    let origin = first.origin(&tenant).await.expect("origin");
    let vkey = VerifierKey::new(&origin, keys.intervals()[0].public_key).expect("vkey");
    let checkpoints = first
        .checkpoints(&tenant, None, 100)
        .await
        .expect("history");
    assert!(!checkpoints.is_empty());
    for c in &checkpoints {
        open_checkpoint(
            c.signed_note.as_bytes(),
            std::slice::from_ref(&vkey),
            Some(&origin),
        )
        .expect("checkpoint verifies");
        let n = usize::try_from(c.size.get()).expect("fits");
        assert_eq!(
            c.root,
            reference_root(&hashes[..n]),
            "checkpoint at {}",
            c.size
        );
        let proof = first
            .consistency_proof(&tenant, c.size, size)
            .await
            .expect("proof");
        verify_consistency(c.size, size, &proof, c.root, root).expect("consistent");
    }
}

async fn a_store_resumes_from_the_database_when_another_instance_moved_the_chain(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (first, tenant) = db.open_with_tenant("acme").await;
    let second: Store = db.open().await;

    append_many(&first, &tenant, 3, 3).await;
    append_many(&second, &tenant, 2, 2).await;
    // `first` still holds seq 2 as its head; it must notice seq 4 in the database.
    let resumed = first.append(&tenant, decisions(2)).await.expect("append");
    let rotated = second.rotate_key(&tenant).await.expect("rotate");
    // `first` must also pick up the key that `second` rotated to.
    let after_rotation = first.append(&tenant, decisions(1)).await.expect("append");

    assert_eq!(resumed[0].seq, 5);
    assert_eq!(after_rotation[0].seq, 8);
    assert_eq!(after_rotation[0].key_id, rotated.key_id);
    let chain = read_chain(&first, &tenant).await;
    assert_eq!(chain.len(), 9);
    assert_eq!(chain[5].prev, chain[4].hash, "the link crosses instances");
    assert_valid_chain(
        &chain,
        &tenant,
        &first.key_history(&tenant).await.expect("keys"),
    );
    let hashes: Vec<Hash> = chain.iter().map(|r| r.hash).collect();
    assert_eq!(
        first
            .root_at(&tenant, TreeSize::new(9))
            .await
            .expect("root"),
        reference_root(&hashes)
    );
}

/// Migrations 0008 and 0011: the views' partitions and the positions that account for them are
/// unlogged, so a crash of the database server empties both together (the runner then applies
/// every chain again); the ledger and the projections' state stay logged, so nothing
/// acknowledged is lost.
async fn the_views_and_their_positions_are_unlogged_and_nothing_else_is(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("bank-a").await;
    append_many(&store, &tenant, 20, 10).await;
    // Creates generation 1 of every view; a rebuild adds generation 2 of one.
    ::projections::runner::catch_up(&store)
        .await
        .expect("catch up");
    let version = ::projections::by_name("models").expect("models").version();
    ::projections::runner::ViewStore::start_rebuild(&store, "models", version)
        .await
        .expect("start rebuild");
    let mut app = sqlx::PgConnection::connect(db.postgres_app_url())
        .await
        .expect("connect as the application role");
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.relname::text, c.relpersistence::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND c.relkind = 'r' ORDER BY 1",
    )
    .fetch_all(&mut app)
    .await
    .expect("tables");
    let unlogged: Vec<&str> = tables
        .iter()
        .filter(|(_, p)| p == "u")
        .map(|(t, _)| t.as_str())
        .collect();
    assert_eq!(
        unlogged,
        [
            "proj_daily_g1",
            "proj_decisions_g1",
            "proj_model_outcomes_g1",
            "proj_model_outcomes_g2",
            "proj_models_g1",
            "proj_models_g2",
            "proj_oversight_g1",
            "proj_subjects_g1",
            "projection_positions",
        ],
        "exactly the views' partitions and their positions are unlogged"
    );
    for table in LEDGER_TABLES.iter().chain(&["projection_state", "tenants"]) {
        assert!(
            tables.iter().any(|(t, p)| t == table && p == "p"),
            "{table} is logged: {tables:?}"
        );
    }
    app.close().await.ok();
    store.shutdown().await;
}

/// The index names of `table`, sorted.
async fn indexes_of(c: &mut sqlx::PgConnection, table: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes \
         WHERE schemaname = current_schema() AND tablename = $1 ORDER BY 1",
    )
    .bind(table)
    .fetch_all(c)
    .await
    .expect("indexes")
}

/// Migration 0011: each generation of a view is a partition of its own. A generation fills with
/// only the keys writing needs: the first one of a view (which serves as it fills) gets its
/// secondary indexes once it has caught up, a rebuild's when it takes over, and the generation
/// it replaces is dropped. The
/// application role reaches the partitions only through the views' tables (and their
/// row-level security), and the functions that do the DDL refuse what they are not for.
async fn a_view_generation_is_a_partition_indexed_once_it_has_caught_up(backend: Backend) {
    use ::projections::runner::{self, ViewStore};
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("bank-a").await;
    append_many(&store, &tenant, 120, 40).await;
    let mut app = sqlx::PgConnection::connect(db.postgres_app_url())
        .await
        .expect("connect as the application role");
    runner::prepare(&store)
        .await
        .expect("create the views' states");
    assert_eq!(
        indexes_of(&mut app, "proj_decisions_g1").await,
        ["proj_decisions_g1_pkey"],
        "the first generation fills with its key only"
    );
    // Caught up, it gets the rest.
    runner::catch_up(&store).await.expect("catch up");
    let indexed = |g: u32| {
        vec![
            format!("proj_decisions_g{g}_by_decided"),
            format!("proj_decisions_g{g}_by_model"),
            format!("proj_decisions_g{g}_by_outcome"),
            format!("proj_decisions_g{g}_by_status"),
            format!("proj_decisions_g{g}_pkey"),
        ]
    };
    assert_eq!(indexes_of(&mut app, "proj_decisions_g1").await, indexed(1));
    assert_eq!(
        indexes_of(&mut app, "proj_subjects_g1").await,
        ["proj_subjects_g1_key"]
    );

    for name in ["decisions", "subjects"] {
        let version = ::projections::by_name(name).expect("projection").version();
        assert_eq!(
            store.start_rebuild(name, version).await.expect("rebuild"),
            2
        );
    }
    assert_eq!(
        indexes_of(&mut app, "proj_decisions_g2").await,
        ["proj_decisions_g2_pkey"],
        "a generation being built has only its key"
    );
    assert!(indexes_of(&mut app, "proj_subjects_g2").await.is_empty());

    // The runner builds it, indexes it, switches, and drops generation 1.
    runner::catch_up(&store).await.expect("catch up");
    assert_eq!(indexes_of(&mut app, "proj_decisions_g2").await, indexed(2));
    assert_eq!(
        indexes_of(&mut app, "proj_subjects_g2").await,
        ["proj_subjects_g2_key"]
    );
    let gone: Option<String> = sqlx::query_scalar("SELECT to_regclass('proj_decisions_g1')::text")
        .fetch_one(&mut app)
        .await
        .expect("to_regclass");
    assert_eq!(gone, None, "the retired generation is dropped");
    assert_eq!(
        decisions_served(&store, &tenant).await,
        120,
        "the new generation serves every decision"
    );

    // Not through the partition itself, not even with the tenant set.
    let mut tx = app.begin().await.expect("begin");
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant.as_str())
        .execute(&mut *tx)
        .await
        .expect("set tenant");
    let denied = sqlx::query("SELECT count(*) FROM proj_decisions_g2")
        .execute(&mut *tx)
        .await
        .expect_err("the partition is not granted");
    assert!(denied.to_string().contains("permission denied"), "{denied}");
    tx.rollback().await.ok();

    for (sql, expected) in [
        ("SELECT views_drop_generation('decisions', 2)", "in use"),
        (
            "SELECT views_add_generation('records', 9, true)",
            "unknown projection",
        ),
    ] {
        let e = sqlx::query(sql)
            .execute(&mut app)
            .await
            .expect_err("refused");
        assert!(e.to_string().contains(expected), "{sql}: {e}");
    }
    // Autovacuum, off while the partitions filled, is back on.
    let options: Option<Vec<String>> =
        sqlx::query_scalar("SELECT reloptions::text[] FROM pg_class WHERE relname = $1")
            .bind("proj_decisions_g2")
            .fetch_one(&mut app)
            .await
            .expect("reloptions");
    assert_eq!(options, Some(vec!["autovacuum_enabled=true".to_owned()]));
    // An indexed generation, and a retired one that another instance dropped, have nothing
    // left to index: no index is built, so the runner refreshes no statistics for them.
    for generation in [2, 1] {
        let built: bool = sqlx::query_scalar("SELECT views_index_generation('decisions', $1)")
            .bind(generation)
            .fetch_one(&mut app)
            .await
            .expect("nothing to do");
        assert!(!built, "generation {generation}");
    }
    assert_eq!(indexes_of(&mut app, "proj_decisions_g2").await, indexed(2));
    app.close().await.ok();
    store.shutdown().await;
}

/// Two service instances sharing the database catch up and finish the same rebuild at once: one
/// builds the indexes and switches, the other waits on the projection's state row and then finds
/// the generation no longer building. Neither fails, and the new generation serves everything.
async fn two_instances_finishing_one_rebuild_switch_once(backend: Backend) {
    use ::projections::runner::{self, ViewStore};
    let db = TestDb::new(&backend).await;
    let (first, tenant) = db.open_with_tenant("bank-a").await;
    append_many(&first, &tenant, 300, 50).await;
    runner::catch_up(&first).await.expect("catch up");
    let second = db.open().await;
    let mut rebuilt = Vec::new();
    for name in ["decisions", "subjects", "models"] {
        let version = ::projections::by_name(name).expect("projection").version();
        rebuilt.push((
            name,
            first.start_rebuild(name, version).await.expect("rebuild"),
        ));
    }
    for _ in 0..3 {
        let (a, b) = tokio::join!(runner::catch_up(&first), runner::catch_up(&second));
        a.expect("first instance");
        b.expect("second instance");
    }
    let states = first.states().await.expect("states");
    for (name, generation) in rebuilt {
        let state = states.iter().find(|s| s.name == name).expect("state");
        assert_eq!(state.active_generation, generation, "{name}");
        assert_eq!(state.building, None, "{name}");
    }
    assert_eq!(decisions_served(&first, &tenant).await, 300);
    let mut app = sqlx::PgConnection::connect(db.postgres_app_url())
        .await
        .expect("connect as the application role");
    let left: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         JOIN pg_class p ON p.oid = i.inhparent \
         WHERE p.relname IN ('proj_decisions', 'proj_subjects', 'proj_models') ORDER BY 1",
    )
    .fetch_all(&mut app)
    .await
    .expect("partitions");
    assert_eq!(
        left,
        ["proj_decisions_g2", "proj_models_g2", "proj_subjects_g2"],
        "one generation each, the old one dropped"
    );
    app.close().await.ok();
    second.shutdown().await;
    first.shutdown().await;
}

/// The tenant tables outside the ledger and the views, each under forced row-level security.
const ACCOUNT_TABLES: &[&str] = &[
    "tenants",
    "users",
    "sessions",
    "password_resets",
    "api_keys",
    "oversight_settings",
];

/// Runs `sql` as the application role with `tenant` set (or none) and returns the rows it
/// changed, or the error; always rolled back.
async fn as_app(
    app: &mut sqlx::PgConnection,
    tenant: Option<&str>,
    sql: &str,
) -> Result<u64, String> {
    let mut tx = app.begin().await.expect("begin");
    if let Some(t) = tenant {
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(t)
            .execute(&mut *tx)
            .await
            .expect("set");
    }
    let done = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut *tx)
        .await
        .map(|r| r.rows_affected())
        .map_err(|e| e.to_string());
    tx.rollback().await.ok();
    done
}

async fn the_application_role_reaches_no_other_tenants_accounts_sessions_resets_or_keys(
    backend: Backend,
) {
    use auditex::auth::Role;
    use auditex::store::users::{PortalRole, Session};

    let db = TestDb::new(&backend).await;
    let (store, alpha) = db.open_with_tenant("alpha").await;
    let beta = tenant_id("beta");
    store.create_tenant(&beta).await.expect("tenant");
    let now = store.now_us();
    let mut keys = Vec::new();
    for (i, tenant) in [&alpha, &beta].into_iter().enumerate() {
        // The same email in both tenants: two accounts.
        let user = store
            .create_user(
                tenant,
                "same@bank.test",
                PortalRole::Admin,
                "$argon2id$x",
                None,
                now,
            )
            .await
            .expect("user");
        let byte = u8::try_from(i).expect("small");
        store
            .create_session(&Session {
                id_hash: vec![byte; 32],
                user_id: user.user_id.clone(),
                tenant: tenant.clone(),
                created_at_us: now,
                last_seen_us: now,
                expires_at_us: now + 1_000_000_000,
                ended_at_us: None,
                client: "test".into(),
            })
            .await
            .expect("session");
        store
            .create_password_reset(
                tenant,
                &user.user_id,
                &[byte + 10; 32],
                now,
                now + 1_000_000_000,
            )
            .await
            .expect("reset");
        store
            .set_oversight_settings(
                tenant,
                auditex::store::oversight::OversightSettings::default(),
                "same@bank.test",
            )
            .await
            .expect("oversight settings");
        keys.push(
            store
                .create_api_key(tenant, Role::Ingest, "k", None)
                .await
                .expect("key"),
        );
    }
    let alpha_key = &keys[0];
    let mut app = sqlx::PgConnection::connect(db.postgres_app_url())
        .await
        .expect("connect as the application role");

    for table in ACCOUNT_TABLES {
        assert_eq!(
            count(&mut app, table).await,
            0,
            "{table}: no tenant set, no rows"
        );
        let mut tx = app.begin().await.expect("begin");
        sqlx::query("SELECT set_config('app.tenant_id', 'alpha', true)")
            .execute(&mut *tx)
            .await
            .expect("set");
        assert_eq!(
            count(&mut tx, table).await,
            1,
            "{table}: alpha sees its own row only"
        );
        let foreign: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {table} WHERE tenant_id = 'beta'"
        )))
        .fetch_one(&mut *tx)
        .await
        .expect("count");
        assert_eq!(foreign, 0, "{table}: nothing of beta");
        tx.rollback().await.ok();
    }

    // Writes aimed at beta, with alpha set or with no tenant set: nothing changes.
    for tenant in [Some("alpha"), None] {
        for sql in [
            "UPDATE users SET role = 'admin', password_hash = 'x' WHERE tenant_id = 'beta'",
            "UPDATE sessions SET ended_at_us = 1 WHERE tenant_id = 'beta'",
            "UPDATE password_resets SET used_at_us = 1 WHERE tenant_id = 'beta'",
            "UPDATE api_keys SET revoked_at_us = 1 WHERE tenant_id = 'beta'",
            "UPDATE oversight_settings SET four_eyes = false WHERE tenant_id = 'beta'",
        ] {
            assert_eq!(
                as_app(&mut app, tenant, sql).await,
                Ok(0),
                "{tenant:?}: {sql}"
            );
        }
        for sql in [
            // Inserting a row of another tenant: refused by the policy.
            "INSERT INTO api_keys (key_id, tenant_id, role, secret_hash, label, created_at_us) VALUES ('x', 'beta', 'read', decode(repeat('00', 32), 'hex'), 'x', 0)",
            "INSERT INTO tenants (tenant_id, created_at_us) VALUES ('gamma', 0)",
            // Moving a row to another tenant, or deleting: no such privilege.
            "UPDATE users SET tenant_id = 'beta'",
            "UPDATE sessions SET user_id = 'x'",
            "DELETE FROM users",
            "DELETE FROM sessions",
            "DELETE FROM password_resets",
            "DELETE FROM api_keys",
            "DELETE FROM tenants",
            "INSERT INTO oversight_settings VALUES ('beta', true, 1, 1, 1, 0, 'x')",
            "UPDATE oversight_settings SET tenant_id = 'beta'",
            "DELETE FROM oversight_settings",
        ] {
            let result = as_app(&mut app, tenant, sql).await;
            assert!(
                result.is_err(),
                "{tenant:?}: {sql} must fail, got {result:?}"
            );
        }
    }

    // The look-ups made before the tenant is known return one row for the exact secret-derived
    // key and nothing for anything else.
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM session_for_id_hash($1)")
        .bind(vec![1u8; 32])
        .fetch_one(&mut app)
        .await
        .expect("session look-up");
    assert_eq!(sessions, 1);
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM api_key_for_secret($1, $2)")
        .bind(alpha_key.id().as_str())
        .bind(vec![0u8; 32])
        .fetch_one(&mut app)
        .await
        .expect("key look-up");
    assert_eq!(keys, 0, "a key id without its secret finds nothing");
    let tenants: Vec<String> = sqlx::query_scalar("SELECT t FROM tenant_ids() AS t")
        .fetch_all(&mut app)
        .await
        .expect("tenant ids");
    assert_eq!(tenants, ["alpha", "beta"]);
    app.close().await.ok();
}

async fn the_application_role_cannot_move_view_generations_or_drop_the_active_one(
    backend: Backend,
) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("acme").await;
    append_many(&store, &tenant, 3, 3).await;
    ::projections::runner::prepare(&store)
        .await
        .expect("states");
    ::projections::runner::catch_up(&store)
        .await
        .expect("catch up");
    let mut app = sqlx::PgConnection::connect(db.postgres_app_url())
        .await
        .expect("connect as the application role");
    let active: i64 = sqlx::query_scalar(
        "SELECT active_generation FROM projection_state WHERE name = 'decisions'",
    )
    .fetch_one(&mut app)
    .await
    .expect("state");
    for sql in [
        "UPDATE projection_state SET active_generation = active_generation + 100 WHERE name = 'decisions'",
        "UPDATE projection_state SET building_generation = active_generation WHERE name = 'decisions'",
        "UPDATE projection_state SET next_generation = 1 WHERE name = 'decisions'",
        "INSERT INTO projection_state (name, active_generation, active_version, next_generation) VALUES ('x', 7, 1, 8)",
    ] {
        let result = as_app(&mut app, None, sql).await;
        assert!(result.is_err(), "{sql} must fail, got {result:?}");
    }
    for generation in [active, -1, 0, i64::MAX] {
        let result = as_app(
            &mut app,
            None,
            &format!("SELECT views_drop_generation('decisions', {generation})"),
        )
        .await;
        assert!(
            result.is_err(),
            "dropping generation {generation} must fail"
        );
        if generation != active {
            let result = as_app(
                &mut app,
                None,
                &format!("SELECT views_add_generation('decisions', {generation}, false)"),
            )
            .await;
            assert!(result.is_err(), "adding generation {generation} must fail");
        }
    }
    assert_eq!(
        decisions_served(&store, &tenant).await,
        3,
        "the views still serve"
    );
    app.close().await.ok();
}
