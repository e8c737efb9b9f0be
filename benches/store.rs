//! Store throughput on each backend, beside the raw ceilings measured in the same run:
//!
//! - `raw_insert`: plain batched INSERTs of identical 11-column rows into an unconstrained table
//!   (no hashing, no signing, no triggers) — what the database alone can do;
//! - `raw_sign`: Ed25519 signatures of 32-byte messages per second on one core;
//! - `batched`: sealed and committed appends through `Store::append`, 1000-record requests from
//!   4 concurrent submitters;
//! - `single_64`: one-record appends from 64 concurrent callers (group commit at work).
//!
//! Run: `cargo bench --bench store` (SQLite), with `AUDITEX_BENCH_POSTGRES_ADMIN_URL` and
//! `AUDITEX_BENCH_POSTGRES_APP_URL` set to include PostgreSQL; `AUDITEX_BENCH_RECORDS` sets the
//! record count, `AUDITEX_SOAK_SECS` adds a soak that samples the process's resident memory.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auditex::store::crypto::MasterKey;
use auditex::store::{DatabaseUrl, Store, StoreConfig};
use ed25519_dalek::{Signer, SigningKey};
use ledger::draft::{ClientDraft, prepare_client_draft};
use ledger::types::TenantId;
use sqlx::Connection;

fn decision(n: u64) -> ClientDraft {
    let payload = auditex::cli::synthetic_decision(n);
    let id = uuid::Uuid::now_v7().to_string();
    prepare_client_draft(&id, "decision", &payload, &BTreeMap::new(), rand::random).expect("valid")
}

fn rate(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn raw_sign_rate(count: u64) -> f64 {
    let key = SigningKey::from_bytes(&[3; 32]);
    let start = Instant::now();
    for i in 0..count {
        let mut m = [0u8; 32];
        m[..8].copy_from_slice(&i.to_le_bytes());
        std::hint::black_box(key.sign(&m));
    }
    rate(count, start.elapsed())
}

const RAW_TABLE: &str = "CREATE TABLE raw_bench (tenant_id TEXT, seq BIGINT, event_id TEXT, event_type TEXT, \
     captured_at_us BIGINT, prev BLOB, hash BLOB, key_id TEXT, sig BLOB, payload TEXT, erasable TEXT)";

async fn raw_insert_sqlite(path: &std::path::Path, count: u64) -> f64 {
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Full);
    let mut conn = sqlx::SqliteConnection::connect_with(&opts)
        .await
        .expect("connect");
    sqlx::query(RAW_TABLE)
        .execute(&mut conn)
        .await
        .expect("table");
    let payload = auditex::cli::synthetic_decision(1).to_string();
    let start = Instant::now();
    let mut seq = 0u64;
    while seq < count {
        let mut tx = conn.begin().await.expect("begin");
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO raw_bench (tenant_id, seq, event_id, event_type, captured_at_us, prev, hash, key_id, sig, payload, erasable) ",
        );
        let n = 1000.min(count - seq);
        q.push_values(0..n, |mut b, i| {
            b.push_bind("bench")
                .push_bind((seq + i) as i64)
                .push_bind("01936f5e-7a2b-7c3d-8e4f-a1b2c3d4e5f6")
                .push_bind("decision")
                .push_bind(1_795_000_000_000_000i64)
                .push_bind(vec![0u8; 32])
                .push_bind(vec![1u8; 32])
                .push_bind("f5774d3226013b9b")
                .push_bind(vec![2u8; 64])
                .push_bind(payload.as_str())
                .push_bind("{}");
        });
        q.build().execute(&mut *tx).await.expect("insert");
        tx.commit().await.expect("commit");
        seq += n;
    }
    rate(count, start.elapsed())
}

async fn raw_insert_postgres(url: &str, count: u64) -> f64 {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::query("DROP TABLE IF EXISTS raw_bench")
        .execute(&mut conn)
        .await
        .expect("drop");
    sqlx::query(sqlx::AssertSqlSafe(RAW_TABLE.replace("BLOB", "BYTEA")))
        .execute(&mut conn)
        .await
        .expect("table");
    let payload = auditex::cli::synthetic_decision(1).to_string();
    let start = Instant::now();
    let mut seq = 0u64;
    while seq < count {
        let n = 1000.min(count - seq);
        let seqs: Vec<i64> = (seq..seq + n).map(|s| s as i64).collect();
        let mut tx = conn.begin().await.expect("begin");
        sqlx::query(
            "INSERT INTO raw_bench SELECT 'bench', s, '01936f5e-7a2b-7c3d-8e4f-a1b2c3d4e5f6', 'decision', 1795000000000000, \
             $2, $3, 'f5774d3226013b9b', $4, $1, '{}' FROM UNNEST($5::BIGINT[]) AS s",
        )
        .bind(payload.as_str())
        .bind(vec![0u8; 32])
        .bind(vec![1u8; 32])
        .bind(vec![2u8; 64])
        .bind(&seqs)
        .execute(&mut *tx)
        .await
        .expect("insert");
        tx.commit().await.expect("commit");
        seq += n;
    }
    rate(count, start.elapsed())
}

async fn batched(store: &Store, tenant: &TenantId, count: u64) -> f64 {
    const SUBMITTERS: u64 = 4;
    let batches: Vec<Vec<ClientDraft>> = (0..count)
        .map(decision)
        .collect::<Vec<_>>()
        .chunks(1000)
        .map(<[ClientDraft]>::to_vec)
        .collect();
    let queue = Arc::new(std::sync::Mutex::new(batches));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..SUBMITTERS {
        let (store, tenant, queue) = (store.clone(), tenant.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().expect("queue").pop();
                let Some(batch) = next else { break };
                store.append(&tenant, batch).await.expect("append");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    rate(count, start.elapsed())
}

async fn single_concurrent(
    store: &Store,
    tenant: &TenantId,
    count: u64,
    callers: u64,
) -> (f64, Vec<Duration>) {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..callers {
        let (store, tenant) = (store.clone(), tenant.clone());
        let per = count / callers;
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per as usize);
            for i in 0..per {
                let d = decision(c * per + i);
                let t = Instant::now();
                loop {
                    match store.append(&tenant, vec![d.clone()]).await {
                        Ok(_) => break,
                        Err(e) if e.is_retryable() => {
                            tokio::time::sleep(Duration::from_millis(5)).await
                        }
                        Err(e) => panic!("append failed: {e}"),
                    }
                }
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    let r = rate((count / callers) * callers, start.elapsed());
    all.sort();
    (r, all)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

async fn run_backend(
    name: &str,
    database: DatabaseUrl,
    admin: Option<String>,
    raw: f64,
    sign: f64,
    count: u64,
) {
    let mut config = StoreConfig::new(database, MasterKey::generate());
    config.admin_database = admin;
    let store = Store::open(config).await.expect("open store");
    let tenant = TenantId::parse(&format!("bench-{}", std::process::id())).expect("tenant");
    store.create_tenant(&tenant).await.expect("tenant");
    let b = batched(&store, &tenant, count).await;
    let (s, lat) = single_concurrent(&store, &tenant, count / 2, 64).await;
    println!("| {name} | raw insert | {raw:>10.0} rec/s | 1.00 |");
    println!("| {name} | raw Ed25519 sign (1 core) | {sign:>10.0} sig/s | — |");
    println!(
        "| {name} | batched appends | {b:>10.0} rec/s | {:.2} of raw insert, {:.2} of raw sign |",
        b / raw,
        b / sign
    );
    println!(
        "| {name} | single appends, 64 callers | {s:>10.0} rec/s | {:.2} of raw insert, {:.2} of raw sign; p50 {:?} p99 {:?} |",
        s / raw,
        s / sign,
        percentile(&lat, 0.50),
        percentile(&lat, 0.99)
    );
    if let Some(secs) = std::env::var("AUDITEX_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        let end = Instant::now() + Duration::from_secs(secs);
        let mut n = 0u64;
        let mut next_sample = Instant::now();
        while Instant::now() < end {
            let (_, _) = single_concurrent(&store, &tenant, 6400, 64).await;
            batched(&store, &tenant, 10_000).await;
            n += 16_400;
            if Instant::now() >= next_sample {
                println!("soak {name}: {n} records, RSS {} KiB", rss_kib());
                next_sample = Instant::now() + Duration::from_secs(30);
            }
        }
        println!("soak {name}: done, {n} records, RSS {} KiB", rss_kib());
    }
    store.shutdown().await;
}

fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    // `cargo bench` passes --bench; this harness has no filters of its own.
    let count: u64 = std::env::var("AUDITEX_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        println!("records per measurement: {count}; cores: {}", std::thread::available_parallelism().map_or(1, |n| n.get()));
        println!("| backend | measurement | rate | ratio |");
        println!("|---|---|---|---|");
        let dir = tempfile::tempdir().expect("tempdir");
        let sign = raw_sign_rate(20_000);
        let raw = raw_insert_sqlite(&dir.path().join("raw.db"), count).await;
        run_backend("SQLite", DatabaseUrl::Sqlite(dir.path().join("bench.db")), None, raw, sign, count).await;
        if let (Ok(admin), Ok(app)) = (
            std::env::var("AUDITEX_BENCH_POSTGRES_ADMIN_URL"),
            std::env::var("AUDITEX_BENCH_POSTGRES_APP_URL"),
        ) {
            let raw = raw_insert_postgres(&admin, count).await;
            let sign = raw_sign_rate(20_000);
            run_backend("PostgreSQL", DatabaseUrl::Postgres(app), Some(admin), raw, sign, count).await;
        } else {
            println!("(PostgreSQL skipped: set AUDITEX_BENCH_POSTGRES_ADMIN_URL and AUDITEX_BENCH_POSTGRES_APP_URL)");
        }
    });
}
