//! Checkpoint publication with many tenants (issue 22): "a signed checkpoint at least once a
//! second" must hold for every tenant that appended, however many tenants the service holds.
//!
//! On each backend: `AUDITEX_BENCH_TENANTS` tenants (default 10,000), of which
//! `AUDITEX_BENCH_ACTIVE` (default 1,000, spread over the others) append one record each per
//! round; then one publication round (`Store::publish_checkpoints`, what the publisher runs every
//! tick) is timed: for each active tenant a checkpoint signed, recorded in its published-checkpoint
//! file outside the database (the rollback protection, as in production) and stored. Median of
//! `AUDITEX_BENCH_ROUNDS` rounds (default 5). The store has `AUDITEX_BENCH_READ_CONNECTIONS` read
//! connections (default 32, so a round publishes 16 tenants at once; the service's default is 8,
//! which publishes 4 at once).
//!
//! Baseline, same run: the same number of single-row INSERTs each committed on its own (one
//! durable commit per active tenant, done one after another) on the same database engine, which
//! is what a publisher visiting the tenants one at a time cannot beat.
//!
//! Run: `cargo bench --bench checkpoints` (SQLite), with `AUDITEX_BENCH_POSTGRES_ADMIN_URL` and
//! `AUDITEX_BENCH_POSTGRES_APP_URL` set to include PostgreSQL.

use std::time::{Duration, Instant};

#[path = "support/settings.rs"]
mod settings;
use settings::{env_u64, median};

use auditex::store::crypto::MasterKey;
use auditex::store::{DatabaseUrl, Store, StoreConfig};
use futures_util::StreamExt;
use ledger::draft::prepare_client_draft;
use ledger::types::TenantId;
use sqlx::Connection;

/// `count` single-row INSERTs on SQLite, each its own durable transaction (WAL, synchronous FULL).
async fn raw_commits_sqlite(path: &std::path::Path, count: u64) -> Duration {
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Full);
    let mut conn = sqlx::SqliteConnection::connect_with(&opts)
        .await
        .expect("raw db");
    sqlx::query("CREATE TABLE raw_commits (tenant_id TEXT, size INTEGER, note TEXT)")
        .execute(&mut conn)
        .await
        .expect("table");
    let started = Instant::now();
    for i in 0..count {
        sqlx::query("INSERT INTO raw_commits VALUES ($1, $2, $3)")
            .bind(format!("t{i}"))
            .bind(i64::try_from(i).unwrap_or(0))
            .bind("x".repeat(200))
            .execute(&mut conn)
            .await
            .expect("insert");
    }
    started.elapsed()
}

/// The same on PostgreSQL (default durability: `synchronous_commit` on). An ordinary table, not
/// a temporary one: a transaction that writes only temporary tables writes no WAL, so its commit
/// waits for no flush and would make the baseline too fast.
async fn raw_commits_postgres(url: &str, count: u64) -> Duration {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::query("DROP TABLE IF EXISTS raw_commits")
        .execute(&mut conn)
        .await
        .expect("drop");
    sqlx::query("CREATE TABLE raw_commits (tenant_id TEXT, size BIGINT, note TEXT)")
        .execute(&mut conn)
        .await
        .expect("table");
    let started = Instant::now();
    for i in 0..count {
        sqlx::query("INSERT INTO raw_commits VALUES ($1, $2, $3)")
            .bind(format!("t{i}"))
            .bind(i64::try_from(i).unwrap_or(0))
            .bind("x".repeat(200))
            .execute(&mut conn)
            .await
            .expect("insert");
    }
    let elapsed = started.elapsed();
    sqlx::query("DROP TABLE raw_commits")
        .execute(&mut conn)
        .await
        .expect("drop");
    elapsed
}

async fn run_backend(name: &str, database: DatabaseUrl, admin: Option<String>, raw: Duration) {
    let tenants = env_u64("AUDITEX_BENCH_TENANTS", 10_000);
    let active = env_u64("AUDITEX_BENCH_ACTIVE", 1_000).min(tenants).max(1);
    let rounds = env_u64("AUDITEX_BENCH_ROUNDS", 5).max(1);
    let files = tempfile::tempdir().expect("tempdir");
    let mut config = StoreConfig::new(database, MasterKey::generate());
    config.admin_database = admin;
    config.checkpoint_dir = Some(files.path().to_path_buf());
    // Only the rounds below publish.
    config.publish_in_background = false;
    // A round publishes half as many tenants at once as there are read connections (at most
    // 16): 32 gives 16; the service's default of 8 gives 4.
    let read_connections = env_u64("AUDITEX_BENCH_READ_CONNECTIONS", 32).max(1);
    config.read_connections = u32::try_from(read_connections).unwrap_or(u32::MAX);
    let store = Store::open_with_workers(config).await.expect("open store");
    let run = std::process::id();
    let ids: Vec<TenantId> = (0..tenants)
        .map(|i| TenantId::parse(&format!("c{run}-{i}")).expect("tenant id"))
        .collect();
    let started = Instant::now();
    let created = futures_util::stream::iter(ids.iter().cloned())
        .map(|t| {
            let store = store.clone();
            async move { store.create_tenant(&t).await.expect("create tenant") }
        })
        .buffer_unordered(8)
        .count()
        .await;
    eprintln!(
        "{name}: {created} tenants created in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let stride = usize::try_from(tenants / active).unwrap_or(1).max(1);
    let busy: Vec<TenantId> = ids
        .iter()
        .step_by(stride)
        .take(usize::try_from(active).unwrap_or(1))
        .cloned()
        .collect();
    let mut times = Vec::new();
    for round in 0..rounds {
        futures_util::stream::iter(busy.iter().cloned())
            .map(|t| {
                let store = store.clone();
                async move {
                    let id = uuid::Uuid::now_v7().to_string();
                    let payload = auditex::cli::synthetic_decision(round);
                    let draft = prepare_client_draft(
                        &id,
                        "decision",
                        &payload,
                        &Default::default(),
                        rand::random,
                    )
                    .expect("draft");
                    store.append(&t, vec![draft]).await.expect("append");
                }
            })
            .buffer_unordered(64)
            .count()
            .await;
        let started = Instant::now();
        store.publish_checkpoints().await.expect("publish");
        let took = started.elapsed();
        eprintln!(
            "{name}: round {round}: {} checkpoints in {:.0} ms",
            busy.len(),
            took.as_secs_f64() * 1000.0
        );
        times.push(took);
    }
    // Every active tenant got its checkpoint in every round.
    for t in &busy {
        let latest = store
            .latest_checkpoint(t)
            .await
            .expect("latest")
            .expect("a checkpoint");
        assert_eq!(latest.size.get(), rounds, "{t}: one checkpoint per round");
    }
    let round = median(times);
    println!(
        "| {name} | one publication round: {} of {tenants} tenants appended, {read_connections} read connections | {:.0} ms | {:.0} ms ({} single-row commits one after another) | {:.2} | ≤ 1000 ms: {} |",
        busy.len(),
        round.as_secs_f64() * 1000.0,
        raw.as_secs_f64() * 1000.0,
        busy.len(),
        round.as_secs_f64() / raw.as_secs_f64(),
        if round <= Duration::from_secs(1) {
            "met"
        } else {
            "**not met**"
        }
    );
    store.shutdown().await;
}

fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let active = env_u64("AUDITEX_BENCH_ACTIVE", 1_000).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        println!(
            "cores: {}",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        println!("| backend | measurement | median | baseline (same run) | ratio | target |");
        println!("|---|---|---|---|---|---|");
        let dir = tempfile::tempdir().expect("tempdir");
        let raw = raw_commits_sqlite(&dir.path().join("raw.db"), active).await;
        run_backend("SQLite", DatabaseUrl::Sqlite(dir.path().join("bench.db")), None, raw).await;
        if let (Ok(admin), Ok(app)) = (
            std::env::var("AUDITEX_BENCH_POSTGRES_ADMIN_URL"),
            std::env::var("AUDITEX_BENCH_POSTGRES_APP_URL"),
        ) {
            let raw = raw_commits_postgres(&admin, active).await;
            run_backend("PostgreSQL", DatabaseUrl::Postgres(app), Some(admin), raw).await;
        } else {
            println!("(PostgreSQL skipped: set AUDITEX_BENCH_POSTGRES_ADMIN_URL and AUDITEX_BENCH_POSTGRES_APP_URL)");
        }
    });
}
