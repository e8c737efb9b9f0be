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

#[path = "support/raw_insert.rs"]
mod raw_insert;
use raw_insert::{rate, raw_insert_postgres, raw_insert_sqlite};

fn decision(n: u64) -> ClientDraft {
    let payload = auditex::cli::synthetic_decision(n);
    let id = uuid::Uuid::now_v7().to_string();
    prepare_client_draft(&id, "decision", &payload, &BTreeMap::new(), rand::random).expect("valid")
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
    let store = Store::open_with_workers(config).await.expect("open store");
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
