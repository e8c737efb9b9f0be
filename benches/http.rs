//! Load harness for the HTTPS API: the real TLS server (in process, on loopback, embedded SQLite)
//! driven by real HTTP clients, beside the store-level rate measured in the same run.
//!
//! - `store_batched`: `Store::append` directly, 1000-record batches from 4 submitters (baseline);
//! - `https_batched`: `POST /v1/records/batch`, 1000 records per request, 4 connections;
//! - `https_single_64`: `POST /v1/records`, one record per request, 64 concurrent connections;
//! - `inclusion_proof`: `GET /v1/proofs/inclusion` at a tree of `AUDITEX_BENCH_PROOF_TREE` records
//!   (default 1,000,000), from one connection (the latency of a proof) and from eight (throughput,
//!   where queueing adds to the latency).
//!
//! Run: `cargo bench --bench http`. Every request loop is bounded in count and time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auditex::auth::Role;
use auditex::http::{HttpConfig, TlsMode};
use auditex::server::Application;
use auditex::store::crypto::MasterKey;
use auditex::store::{DatabaseUrl, Store, StoreConfig};
use ledger::draft::prepare_client_draft;
use ledger::types::TenantId;
use serde_json::{Value, json};

#[path = "support/settings.rs"]
#[allow(dead_code)]
mod settings;
use settings::env_u64;

fn event(n: u64) -> Value {
    json!({
        "event_id": uuid::Uuid::now_v7().to_string(),
        "event_type": "decision",
        "payload": auditex::cli::synthetic_decision(n),
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn store_batched(store: &Store, tenant: &TenantId, count: u64) -> f64 {
    let batches: Vec<Vec<_>> = (0..count)
        .map(|n| {
            prepare_client_draft(
                &uuid::Uuid::now_v7().to_string(),
                "decision",
                &auditex::cli::synthetic_decision(n),
                &BTreeMap::new(),
                rand::random,
            )
            .expect("draft")
        })
        .collect::<Vec<_>>()
        .chunks(1000)
        .map(<[_]>::to_vec)
        .collect();
    let queue = Arc::new(std::sync::Mutex::new(batches));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (store, tenant, queue) = (store.clone(), tenant.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().expect("queue").pop();
                let Some(b) = next else { break };
                store.append(&tenant, b).await.expect("append");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    count as f64 / start.elapsed().as_secs_f64()
}

fn client(pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).expect("cert")])
        .http1_only()
        .pool_max_idle_per_host(128)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

async fn https_batched(c: &reqwest::Client, base: &str, key: &str, count: u64) -> f64 {
    let bodies: Vec<Value> = (0..count / 1000)
        .map(|b| json!({"records": (0..1000).map(|i| event(b * 1000 + i)).collect::<Vec<_>>()}))
        .collect();
    let queue = Arc::new(std::sync::Mutex::new(bodies));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (c, url, key, queue) = (
            c.clone(),
            format!("{base}/v1/records/batch"),
            key.to_owned(),
            queue.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().expect("queue").pop();
                let Some(body) = next else { break };
                let resp = c
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&body)
                    .send()
                    .await
                    .expect("send");
                assert_eq!(
                    resp.status(),
                    200,
                    "{}",
                    resp.text().await.unwrap_or_default()
                );
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    (count / 1000 * 1000) as f64 / start.elapsed().as_secs_f64()
}

async fn https_single(
    c: &reqwest::Client,
    base: &str,
    key: &str,
    per_client: u64,
    clients: u64,
) -> (f64, Vec<Duration>) {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..clients {
        let (c, url, key) = (c.clone(), format!("{base}/v1/records"), key.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_client as usize);
            for i in 0..per_client {
                let body = event(k * per_client + i);
                let t = Instant::now();
                let resp = c
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&body)
                    .send()
                    .await
                    .expect("send");
                assert_eq!(resp.status(), 201);
                let _ = resp.bytes().await;
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    let rate = all.len() as f64 / start.elapsed().as_secs_f64();
    all.sort();
    (rate, all)
}

async fn proofs(
    c: &reqwest::Client,
    base: &str,
    key: &str,
    size: u64,
    requests: u64,
    connections: u64,
) -> (f64, Vec<Duration>) {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..connections {
        let (c, base, key) = (c.clone(), base.to_owned(), key.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for i in 0..requests / connections {
                let seq = (k * 7_919 + i * 104_729) % size;
                let t = Instant::now();
                let resp = c
                    .get(format!("{base}/v1/proofs/inclusion?seq={seq}"))
                    .bearer_auth(&key)
                    .send()
                    .await
                    .expect("send");
                assert_eq!(resp.status(), 200);
                let _ = resp.bytes().await;
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    let rate = all.len() as f64 / start.elapsed().as_secs_f64();
    all.sort();
    (rate, all)
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let records = env_u64("AUDITEX_BENCH_RECORDS", 100_000);
    let proof_tree = env_u64("AUDITEX_BENCH_PROOF_TREE", 1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_with_workers(StoreConfig::new(DatabaseUrl::Sqlite(dir.path().join("http.db")), MasterKey::generate()))
            .await
            .expect("store");
        let tenant = TenantId::parse("bench").expect("tenant");
        store.create_tenant(&tenant).await.expect("tenant");
        let ingest = store.create_api_key(&tenant, Role::Ingest, "bench", None).await.expect("key").reveal();
        let verify = store.create_api_key(&tenant, Role::Verify, "bench", None).await.expect("key").reveal();
        let config = HttpConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            tls: TlsMode::SelfSigned(dir.path().join("tls")),
            rate_per_second: 1000,
            rate_burst: 1_000_000,
            ingest_rate_per_second: auditex::config::RATE_PER_SECOND_MAX,
            request_bodies_bytes_max: auditex::app::bodies::REQUEST_BODIES_BYTES_MAX,
        };
        let app = Application::build(store.clone(), &config).await.expect("server");
        let pem = app.tls_certificate_pem().expect("pem").to_owned();
        let base = format!("https://localhost:{}", app.port());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        let c = client(&pem);

        let base_rate = store_batched(&store, &tenant, records).await;
        let batched = https_batched(&c, &base, &ingest, records).await;
        let (single, lat) = https_single(&c, &base, &ingest, records / 64 / 2, 64).await;
        println!("| measurement | rate | ratio to store-level batched appends (same run) | latency |");
        println!("|---|---|---|---|");
        println!("| store-level batched appends (baseline) | {base_rate:.0} rec/s | 1.00 | — |");
        println!("| HTTPS batched ingestion (1000/request, 4 connections) | {batched:.0} rec/s | {:.2} | — |", batched / base_rate);
        println!(
            "| HTTPS single appends, 64 connections | {single:.0} rec/s | {:.2} | p50 {:.1} ms, p99 {:.1} ms |",
            single / base_rate,
            percentile(&lat, 0.5).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3
        );

        // Grow the tree to the proof size through the store, then measure proofs over HTTPS.
        let have = store.tree_size(&tenant).await.expect("size").get();
        if proof_tree > have {
            store_batched(&store, &tenant, (proof_tree - have).div_ceil(1000) * 1000).await;
        }
        store.publish_checkpoints().await.expect("checkpoint");
        let size = store.tree_size(&tenant).await.expect("size").get();
        for connections in [1u64, 8] {
            let (rate, lat) = proofs(&c, &base, &verify, size, 4000, connections).await;
            println!(
                "| HTTPS inclusion proofs at {size} records, {connections} connection(s) | {rate:.0} proofs/s | — | p50 {:.2} ms, p99 {:.2} ms |",
                percentile(&lat, 0.5).as_secs_f64() * 1e3,
                percentile(&lat, 0.99).as_secs_f64() * 1e3
            );
        }
        let _ = stop.send(());
        let _ = server.await;
    });
}
