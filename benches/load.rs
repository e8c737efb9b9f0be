//! The black-box load benchmark (issue 19): the release `auditex serve` started as a user starts
//! it (a process of its own, default log level, its read side and checkpointing running), driven
//! over HTTPS from this process with unique event ids, on each backend, beside same-run
//! baselines:
//!
//! - **baselines**: raw batched inserts into an unconstrained table (`support/raw_insert.rs`,
//!   what the database alone does) and raw Ed25519 signing on all cores;
//! - **batched**: `POST /v1/records/batch` (1000 records per request, 4 connections) for
//!   `AUDITEX_LOAD_SECONDS` (default 60), the views' lag sampled every 250 ms; then the time the
//!   views take to catch up and the rate at which they do;
//! - **single**: `POST /v1/records`, one record per request, 64 connections, for a third of that
//!   time: rate and latency percentiles (the per-key rate limit is lifted to its maximum, as an
//!   operator would for one pipeline);
//! - with both: the cores the server process and this process (the load generator) used during
//!   the phase, from their CPU time in `/proc` (whether the machine was saturated);
//! - **time to proof**: under half of the measured batched rate, one record appended every 100
//!   ms and `GET /v1/proofs/inclusion` polled every 20 ms until it answers with a proof against a
//!   signed checkpoint (four such appenders at once);
//! - **proofs**: inclusion proofs of random records from 8 connections, idle for 5 s (the
//!   proof path alone) and then under the same half load, at the tree the run has built
//!   (`AUDITEX_LOAD_PROOF_TREE` appends more first, default 1,000,000 records);
//! - **memory**: the server's resident set after the work and after 10 s idle.
//!
//! Run: `cargo bench --bench load` (SQLite), with `AUDITEX_BENCH_POSTGRES_ADMIN_URL` and
//! `AUDITEX_BENCH_POSTGRES_APP_URL` set to include PostgreSQL (`AUDITEX_BENCH_BACKENDS=postgres`
//! runs only that one). Every loop is bounded in time.
//!
//! For a profile or a comparison: `AUDITEX_BENCH_SERVER_RUST_LOG` sets the service's log filter
//! and `AUDITEX_BENCH_SERVER_LOG` names a file its log is written to (the appender's and the
//! views' debug lines say how long each group and view page waited for and held the database).
//! The service is the binary a user builds (`cargo build --release --bin auditex`, run by the bench
//! first), not the one cargo builds beside a bench with the dev-dependencies' features
//! (`support/served.rs`, `binary`); `AUDITEX_BENCH_BINARY` runs another build's `auditex`
//! instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use auditex::store::DatabaseUrl;

#[path = "support/raw_insert.rs"]
mod raw_insert;
#[path = "support/served.rs"]
mod served;
use served::{Served, serve, views_caught_up};
#[path = "support/client.rs"]
mod client;
#[path = "support/settings.rs"]
#[allow(dead_code)]
mod settings;
use client::{
    Bodies, CpuMark, batched_until, closed_loop, lag, percentile, post, raw_sign_all_cores, rss_mb,
};
use settings::env_u64;

async fn run_backend(name: &str, database: DatabaseUrl, admin: Option<&str>, raw_insert: f64) {
    let seconds = env_u64("AUDITEX_LOAD_SECONDS", 60);
    let proof_tree = env_u64("AUDITEX_LOAD_PROOF_TREE", 1_000_000);
    // A database kept between runs (PostgreSQL) gets a new tenant each run.
    let tenant = format!("load-{}", std::process::id());
    let (served, keys) = serve(
        &database,
        admin,
        &[&tenant],
        &[
            ("AUDITEX_RATE_PER_SECOND", "100000"),
            ("AUDITEX_RATE_BURST", "100000"),
            ("AUDITEX_INGEST_RATE_PER_SECOND", "100000"),
        ],
    );
    let pid = served.child.id();
    let served = Arc::new(served);
    let (ingest, read) = (keys[0].clone(), keys[1].clone());
    let bodies = Bodies::new();
    let row = |what: &str, value: String, ratio: String| {
        println!("| {name} | {what} | {value} | {ratio} |");
    };

    // Batched, sustained, the views' lag sampled.
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (served, read, stop) = (served.clone(), read.clone(), stop.clone());
        tokio::spawn(async move {
            let mut lags = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                lags.push(lag(&served, &read).await.1);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            lags
        })
    };
    let timer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            stop.store(true, Ordering::Relaxed);
        })
    };
    let start = Instant::now();
    let cpu = CpuMark::now(pid);
    let appended = batched_until(&served, &ingest, &bodies, &stop, None, None).await;
    let elapsed = start.elapsed().as_secs_f64();
    let batched_cores = cpu.cores_used();
    timer.await.expect("timer");
    let mut lags = sampler.await.expect("sampler");
    let batched = appended as f64 / elapsed;
    let (behind, _) = lag(&served, &read).await;
    let catch_up = Instant::now();
    views_caught_up(&served, &read).await;
    let caught_up_s = catch_up.elapsed().as_secs_f64();
    row(
        &format!("HTTPS batched ingestion, 1000/request, 4 connections, {seconds} s"),
        format!("{batched:.0} rec/s"),
        format!(
            "{:.3} of raw inserts; {batched_cores}",
            batched / raw_insert
        ),
    );
    row(
        "views' lag during it (p50 / p99 / max)",
        format!(
            "{:.2} / {:.2} / {:.2} s",
            percentile(&mut lags, 50.0),
            percentile(&mut lags, 99.0),
            percentile(&mut lags, 100.0)
        ),
        String::new(),
    );
    row(
        "views' catch-up after it",
        format!(
            "{behind} records in {caught_up_s:.1} s ({:.0} rec/s)",
            behind as f64 / caught_up_s.max(0.001)
        ),
        String::new(),
    );

    // Single appends, 64 connections.
    let single_seconds = (seconds / 3).max(5);
    let cpu = CpuMark::now(pid);
    let (single, mut latencies) = closed_loop(64, Duration::from_secs(single_seconds), {
        let (served, key, bodies) = (served.clone(), ingest.clone(), bodies.clone());
        move || {
            let (served, key, bodies) = (served.clone(), key.clone(), bodies.clone());
            async move {
                post(&served, &key, "/v1/records", bodies.single()).await;
            }
        }
    })
    .await;
    row(
        "HTTPS single appends, 64 connections",
        format!("{single:.0} rec/s"),
        format!(
            "p50 {:.1} ms, p99 {:.1} ms, max {:.0} ms; {}",
            percentile(&mut latencies, 50.0),
            percentile(&mut latencies, 99.0),
            percentile(&mut latencies, 100.0),
            cpu.cores_used()
        ),
    );
    views_caught_up(&served, &read).await;

    // Grow the tree for the proofs.
    let size = checkpoint_size(&served, &read).await;
    if size < proof_tree {
        let never = Arc::new(AtomicBool::new(false));
        batched_until(
            &served,
            &ingest,
            &bodies,
            &never,
            None,
            Some(proof_tree - size),
        )
        .await;
    }
    views_caught_up(&served, &read).await;
    let size = wait_for_checkpoint(&served, &read, proof_tree.max(size)).await;

    // Idle first: what a proof costs the service itself, without ingestion competing for the
    // cores (the figure under half load below adds that competition).
    let (idle_rate, mut idle) = proof_latencies(&served, &read, size, Duration::from_secs(5)).await;
    row(
        &format!("inclusion proofs at {size} records, 8 connections, idle"),
        format!("{idle_rate:.0} proofs/s"),
        p50_p99(&mut idle),
    );

    // Under half load: time to a proof, and proof latency from 8 connections.
    let stop = Arc::new(AtomicBool::new(false));
    let half = {
        let (served, key, bodies, stop) =
            (served.clone(), ingest.clone(), bodies.clone(), stop.clone());
        tokio::spawn(async move {
            batched_until(&served, &key, &bodies, &stop, Some(batched / 2.0), None).await
        })
    };
    let window = Duration::from_secs((seconds / 3).max(5));
    // Four appenders, each appending one record and polling for its proof, then pausing 100 ms.
    let mut probers = Vec::new();
    for _ in 0..4 {
        let (served, ingest, read, bodies) =
            (served.clone(), ingest.clone(), read.clone(), bodies.clone());
        probers.push(tokio::spawn(async move {
            let deadline = Instant::now() + window;
            let mut waits = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let receipt = post(&served, &ingest, "/v1/records", bodies.single()).await;
                let seq = receipt["seq"].as_u64().expect("seq");
                loop {
                    let resp = get_inclusion_proof(&served, &read, seq).await;
                    if resp.status().is_success() {
                        break;
                    }
                    assert!(
                        t.elapsed() < Duration::from_secs(60),
                        "no proof of {seq} after a minute"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                waits.push(t.elapsed().as_secs_f64() * 1000.0);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            waits
        }));
    }
    let (proof_rate, mut proofs) = proof_latencies(&served, &read, size, window).await;
    let mut waits = Vec::new();
    for p in probers {
        waits.extend(p.await.expect("prober"));
    }
    stop.store(true, Ordering::Relaxed);
    half.await.expect("half load");
    row(
        "time from append to a proof against a signed checkpoint, under half load (p50 / p99)",
        format!(
            "{:.0} / {:.0} ms",
            percentile(&mut waits, 50.0),
            percentile(&mut waits, 99.0)
        ),
        format!("{} appends", waits.len()),
    );
    row(
        &format!("inclusion proofs at {size} records, 8 connections, under half load"),
        format!("{proof_rate:.0} proofs/s"),
        p50_p99(&mut proofs),
    );

    views_caught_up(&served, &read).await;
    let busy = rss_mb(pid);
    tokio::time::sleep(Duration::from_secs(10)).await;
    row(
        "server resident memory after the work / after 10 s idle",
        format!("{busy:.0} / {:.0} MB", rss_mb(pid)),
        String::new(),
    );
}

/// Inclusion proofs of random records below `size` from 8 connections for `window`: the rate
/// and each proof's latency in milliseconds.
async fn proof_latencies(
    served: &Arc<Served>,
    read: &str,
    size: u64,
    window: Duration,
) -> (f64, Vec<f64>) {
    let (served, read) = (served.clone(), read.to_owned());
    closed_loop(8, window, move || {
        let (served, read) = (served.clone(), read.clone());
        async move {
            let seq = rand::random::<u64>() % size;
            let resp = get_inclusion_proof(&served, &read, seq).await;
            assert!(
                resp.status().is_success(),
                "proof of {seq}: {}",
                resp.status()
            );
            resp.bytes().await.expect("body");
        }
    })
    .await
}

/// `GET /v1/proofs/inclusion?seq=SEQ` with the `read` key: the response, whatever its status.
async fn get_inclusion_proof(served: &Served, read: &str, seq: u64) -> reqwest::Response {
    served
        .client
        .get(format!("{}/v1/proofs/inclusion?seq={seq}", served.url))
        .bearer_auth(read)
        .send()
        .await
        .expect("request")
}

/// "p50 … ms, p99 … ms" of latencies in milliseconds.
fn p50_p99(latencies: &mut [f64]) -> String {
    format!(
        "p50 {:.1} ms, p99 {:.1} ms",
        percentile(latencies, 50.0),
        percentile(latencies, 99.0)
    )
}

/// The latest checkpoint's tree size (the second line of the signed note).
async fn checkpoint_size(served: &Served, read: &str) -> u64 {
    let resp = served
        .client
        .get(format!("{}/v1/checkpoints/latest", served.url))
        .bearer_auth(read)
        .send()
        .await
        .expect("request");
    if !resp.status().is_success() {
        return 0;
    }
    let note = resp.text().await.expect("checkpoint");
    note.lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .unwrap_or(0)
}

/// Waits (at most a minute) for a checkpoint of at least `size` records; its size.
async fn wait_for_checkpoint(served: &Served, read: &str, size: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = checkpoint_size(served, read).await;
        if got >= size || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        println!(
            "cores: {}; raw Ed25519 signing on all cores: {:.0} signatures/s",
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            raw_sign_all_cores(200_000)
        );
        println!("| backend | measurement | result | detail |");
        println!("|---|---|---|---|");
        let backends = std::env::var("AUDITEX_BENCH_BACKENDS")
            .unwrap_or_else(|_| "sqlite,postgres".into());
        let dir = tempfile::tempdir().expect("tempdir");
        if backends.contains("sqlite") {
            let raw = raw_insert::raw_insert_sqlite(&dir.path().join("raw.db"), 200_000).await;
            println!("| SQLite | raw batched inserts (baseline) | {raw:.0} rows/s | 1.00 |");
            run_backend(
                "SQLite",
                DatabaseUrl::Sqlite(dir.path().join("load.db")),
                None,
                raw,
            )
            .await;
        }
        if !backends.contains("postgres") {
            return;
        }
        if let (Ok(admin), Ok(app)) = (
            std::env::var("AUDITEX_BENCH_POSTGRES_ADMIN_URL"),
            std::env::var("AUDITEX_BENCH_POSTGRES_APP_URL"),
        ) {
            let raw = raw_insert::raw_insert_postgres(&admin, 200_000).await;
            println!("| PostgreSQL | raw batched inserts (baseline) | {raw:.0} rows/s | 1.00 |");
            run_backend("PostgreSQL", DatabaseUrl::Postgres(app), Some(&admin), raw).await;
        } else {
            println!(
                "(PostgreSQL skipped: set AUDITEX_BENCH_POSTGRES_ADMIN_URL and AUDITEX_BENCH_POSTGRES_APP_URL)"
            );
        }
    });
}
