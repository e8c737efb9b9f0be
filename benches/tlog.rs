//! The transparency-log benchmark (issue 21), measured from outside over HTTPS against the release
//! binaries, beside same-run baselines:
//!
//! - **witness**: `auditex witness serve` alone, 16 connections posting `add-checkpoint` for
//!   `AUDITEX_TLOG_SECONDS` (default 20) over 64 logs (each request a full decision: the log's
//!   signature, the consistency rule, a cosignature, a durable state update); the rate per core,
//!   beside raw Ed25519 verify-and-sign on one core;
//! - **tiles against JSON proofs**: `auditex serve` (SQLite, read side on) with a tree of
//!   `AUDITEX_TLOG_TREE` records (default 1,000,000): JSON inclusion proofs of random records and
//!   full tiles at random positions, each from 8 connections for the same time; the ratio;
//! - **time to a cosigned checkpoint**: with three witness processes on loopback configured for
//!   the tenant, under half the ingestion rate measured while growing the tree, four appenders
//!   each append one record and poll `GET /v1/checkpoints/latest` until a checkpoint covering it
//!   carries valid cosignatures of all three; p50 / p99.
//!
//! Run: `cargo bench --bench tlog`. Every loop is bounded in time.

use std::io::BufRead as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use auditex::store::DatabaseUrl;
use ed25519_dalek::{Signer, SigningKey, Verifier};
use ledger::checkpoint::Checkpoint;
use ledger::cosignature::{WitnessKey, verify_cosignatures};
use ledger::merkle::TileId;
use ledger::note::{Note, NoteSigner, VerifierKey, sign_note};
use ledger::types::{Hash, TreeSize};

#[path = "support/served.rs"]
mod served;
use served::{Served, serve_with, views_caught_up};
#[path = "support/client.rs"]
mod client;
#[path = "support/settings.rs"]
#[allow(dead_code)]
mod settings;
use client::{Bodies, batched_until, closed_loop, percentile, post};
use settings::env_u64;

/// `auditex witness serve` as a process of its own.
struct WitnessProcess {
    _dir: tempfile::TempDir,
    child: std::process::Child,
    url: String,
    vkey: WitnessKey,
    pem: String,
}

impl Drop for WitnessProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn witness(name: &str, logs: &[String]) -> WitnessProcess {
    let dir = tempfile::tempdir().expect("tempdir");
    // The witness is the same binary the service runs: the one a user builds.
    let bin = served::binary();
    let out = std::process::Command::new(&bin)
        .args(["witness", "init", "--name", name, "--dir"])
        .arg(dir.path())
        .output()
        .expect("witness init");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut cmd = std::process::Command::new(&bin);
    cmd.args([
        "witness",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--rate-per-second",
        "1000000",
        "--rate-burst",
        "1000000",
        "--dir",
    ])
    .arg(dir.path())
    .env_remove("RUST_LOG")
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::null());
    for l in logs {
        cmd.args(["--log", l]);
    }
    let mut child = cmd.spawn().expect("witness serve");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut url = None;
    let vkey = loop {
        let line = lines
            .next()
            .expect("the witness prints its key")
            .expect("line");
        if let Some(rest) = line.split("listening on ").nth(1) {
            url = rest
                .split(' ')
                .next()
                .map(|u| u.replace("127.0.0.1", "localhost"));
        }
        if let Some(k) = line.strip_prefix("witness key: ") {
            break WitnessKey::parse(k).expect("vkey");
        }
    };
    std::thread::spawn(move || for _ in lines.by_ref() {});
    let pem = std::fs::read_to_string(dir.path().join("tls/tls-cert.pem")).expect("cert");
    WitnessProcess {
        _dir: dir,
        child,
        url: url.expect("address"),
        vkey,
        pem,
    }
}

fn client_for(pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).expect("pem")])
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// Raw Ed25519 on one core: verify one signature and make one, as a cosignature costs.
fn raw_verify_and_sign_one_core(count: u64) -> f64 {
    let key = SigningKey::from_bytes(&[3; 32]);
    let public = key.verifying_key();
    let message = [7u8; 120];
    let signature = key.sign(&message);
    let start = Instant::now();
    for _ in 0..count {
        std::hint::black_box(public.verify(&message, &signature).is_ok());
        std::hint::black_box(key.sign(&message));
    }
    count as f64 / start.elapsed().as_secs_f64()
}

async fn witness_rate(seconds: u64) {
    let logs: Vec<(SigningKey, String)> = (0..64u8)
        .map(|i| {
            (
                SigningKey::from_bytes(&[i.wrapping_add(10); 32]),
                format!("bench.example/log{i}"),
            )
        })
        .collect();
    let vkeys: Vec<String> = logs
        .iter()
        .map(|(k, o)| {
            VerifierKey::new(o, k.verifying_key())
                .expect("vkey")
                .to_string()
        })
        .collect();
    let w = witness("bench.example/witness", &vkeys);
    let client = client_for(&w.pem);
    // Each log at size 1000 with a fixed root; every request re-submits it from 1000.
    let root = Hash::from_bytes([9; 32]);
    let checkpoints: Vec<String> = logs
        .iter()
        .map(|(k, o)| {
            let body = Checkpoint::new(o.clone(), TreeSize::new(1000), root)
                .expect("cp")
                .to_body();
            sign_note(&body, &[NoteSigner::new(o, k).expect("signer")]).expect("note")
        })
        .collect();
    for c in &checkpoints {
        let r = client
            .post(format!("{}/add-checkpoint", w.url))
            .body(format!("old 0\n\n{c}"))
            .send()
            .await
            .expect("request");
        assert!(r.status().is_success(), "{}", r.status());
    }
    let checkpoints = Arc::new(checkpoints);
    // The 16 connections take the logs' checkpoints in turn.
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let url = w.url.clone();
    let (rate, mut latencies) = closed_loop(16, Duration::from_secs(seconds), move || {
        let (client, url, checkpoints) = (client.clone(), url.clone(), checkpoints.clone());
        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        async move {
            let body = format!("old 1000\n\n{}", checkpoints[i % checkpoints.len()]);
            let r = client
                .post(format!("{url}/add-checkpoint"))
                .body(body)
                .send()
                .await
                .expect("request");
            assert!(r.status().is_success(), "{}", r.status());
            r.bytes().await.expect("body");
        }
    })
    .await;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let raw = raw_verify_and_sign_one_core(20_000);
    println!(
        "| witness | add-checkpoint, 16 connections, 64 logs, {seconds} s | {rate:.0} req/s ({:.0} per core) | p50 {:.1} ms, p99 {:.1} ms; {:.3} of raw verify+sign on one core ({raw:.0}/s) |",
        rate / cores,
        percentile(&mut latencies, 50.0),
        percentile(&mut latencies, 99.0),
        rate / cores / raw
    );
}

/// GETs `path` from 8 connections for `seconds`; the rate and latencies.
async fn get_rate(
    served: &Arc<Served>,
    key: &str,
    seconds: u64,
    path: impl Fn() -> String + Send + Sync + 'static,
) -> (f64, Vec<f64>) {
    let (served, key, path) = (served.clone(), key.to_owned(), Arc::new(path));
    closed_loop(8, Duration::from_secs(seconds), move || {
        let (served, key, path) = (served.clone(), key.clone(), path.clone());
        async move {
            let p = path();
            let mut request = served.client.get(format!("{}{p}", served.url));
            if !key.is_empty() {
                request = request.bearer_auth(&key);
            }
            let r = request.send().await.expect("request");
            assert!(r.status().is_success(), "{p}: {}", r.status());
            r.bytes().await.expect("body");
        }
    })
    .await
}

async fn latest_note(served: &Served, key: &str) -> String {
    served
        .client
        .get(format!("{}/v1/checkpoints/latest", served.url))
        .bearer_auth(key)
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("text")
}

async fn service(seconds: u64, tree: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let tenant = format!("tlog-{}", std::process::id());
    let witnesses: std::sync::Mutex<Vec<WitnessProcess>> = std::sync::Mutex::new(Vec::new());
    let (served, keys) = serve_with(
        &DatabaseUrl::Sqlite(dir.path().join("tlog.db")),
        None,
        &[&tenant],
        &[
            ("AUDITEX_RATE_PER_SECOND", "100000"),
            ("AUDITEX_RATE_BURST", "100000"),
            ("AUDITEX_INGEST_RATE_PER_SECOND", "100000"),
        ],
        |run| {
            let history: serde_json::Value =
                serde_json::from_str(&run(&["key", "history", "--tenant", &tenant])).expect("json");
            let log = history["keys"][0]["verifier_key"]
                .as_str()
                .expect("vkey")
                .to_owned();
            // Public, so that tiles can also be measured as an anonymous client fetches them.
            run(&["tenant", "tiles", &tenant, "public"]);
            let mut list = witnesses.lock().expect("lock");
            for i in 0..3 {
                let w = witness(&format!("bench.example/w{i}"), std::slice::from_ref(&log));
                let pem = dir.path().join(format!("w{i}.pem"));
                std::fs::write(&pem, &w.pem).expect("pem");
                run(&[
                    "tenant",
                    "witness",
                    "add",
                    &tenant,
                    "--vkey",
                    &w.vkey.to_string(),
                    "--url",
                    &w.url,
                    "--ca-cert",
                    pem.to_str().expect("utf-8"),
                ]);
                list.push(w);
            }
        },
    );
    let witnesses = witnesses.into_inner().expect("lock");
    let served = Arc::new(served);
    let (ingest, read) = (keys[0].clone(), keys[1].clone());
    let bodies = Bodies::new();
    let origin_path = {
        let note = loop {
            post(&served, &ingest, "/v1/records", bodies.single()).await;
            let n = latest_note(&served, &read).await;
            if n.contains('\n') && !n.starts_with('{') {
                break n;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let origin = note.lines().next().expect("origin").to_owned();
        format!("/{}/", origin.split_once('/').expect("a path").1)
    };

    // Grow the tree; its rate is the ingestion rate the half load is taken from.
    let never = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let grown = batched_until(&served, &ingest, &bodies, &never, None, Some(tree)).await;
    let max_rate = grown as f64 / start.elapsed().as_secs_f64();
    views_caught_up(&served, &read).await;
    let size = loop {
        let n = latest_note(&served, &read).await;
        let s: u64 = n.lines().nth(1).and_then(|l| l.parse().ok()).unwrap_or(0);
        if s >= tree {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "| service | tree grown to {size} records at {max_rate:.0} rec/s (batched, 4 connections) | | |"
    );

    // JSON proofs and full tiles, each from 8 connections, nothing else running.
    let (proofs, mut proof_ms) = get_rate(&served, &read, seconds, move || {
        format!("/v1/proofs/inclusion?seq={}", rand::random::<u64>() % size)
    })
    .await;
    let full_tiles = size / 256;
    let tile_path = move |prefix: &str| {
        let index = rand::random::<u64>() % full_tiles;
        let path = TileId::new(0, index)
            .expect("tile")
            .path(256)
            .expect("path");
        format!("{prefix}{path}")
    };
    let prefix = origin_path.clone();
    let (tiles, mut tile_ms) = get_rate(&served, &read, seconds, move || tile_path(&prefix)).await;
    let prefix = origin_path.clone();
    let (anonymous, mut anonymous_ms) =
        get_rate(&served, "", seconds, move || tile_path(&prefix)).await;
    println!(
        "| service | JSON inclusion proofs at {size} records, 8 connections | {proofs:.0} proofs/s | p50 {:.1} ms, p99 {:.1} ms |",
        percentile(&mut proof_ms, 50.0),
        percentile(&mut proof_ms, 99.0)
    );
    println!(
        "| service | full level-0 tiles, 8 connections | {tiles:.0} tiles/s | p50 {:.1} ms, p99 {:.1} ms; {:.1}× the JSON proofs |",
        percentile(&mut tile_ms, 50.0),
        percentile(&mut tile_ms, 99.0),
        tiles / proofs
    );
    println!(
        "| service | full level-0 tiles of a public log, no key, 8 connections | {anonymous:.0} tiles/s | p50 {:.1} ms, p99 {:.1} ms; {:.1}× the JSON proofs |",
        percentile(&mut anonymous_ms, 50.0),
        percentile(&mut anonymous_ms, 99.0),
        anonymous / proofs
    );

    // Time to a checkpoint cosigned by all three witnesses, under half load.
    let wkeys: Vec<WitnessKey> = witnesses.iter().map(|w| w.vkey.clone()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let half = {
        let (served, key, bodies, stop) =
            (served.clone(), ingest.clone(), bodies.clone(), stop.clone());
        tokio::spawn(async move {
            batched_until(&served, &key, &bodies, &stop, Some(max_rate / 2.0), None).await
        })
    };
    let window = Duration::from_secs(seconds.max(10));
    let mut probers = Vec::new();
    for _ in 0..4 {
        let (served, ingest, read, bodies, wkeys) = (
            served.clone(),
            ingest.clone(),
            read.clone(),
            bodies.clone(),
            wkeys.clone(),
        );
        probers.push(tokio::spawn(async move {
            let deadline = Instant::now() + window;
            let mut waits = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let receipt = post(&served, &ingest, "/v1/records", bodies.single()).await;
                let seq = receipt["seq"].as_u64().expect("seq");
                loop {
                    let note = latest_note(&served, &read).await;
                    let size: u64 = note
                        .lines()
                        .nth(1)
                        .and_then(|l| l.parse().ok())
                        .unwrap_or(0);
                    if size > seq
                        && let Ok(n) = Note::parse(note.as_bytes())
                        && verify_cosignatures(&n, &wkeys).len() == wkeys.len()
                    {
                        break;
                    }
                    assert!(
                        t.elapsed() < Duration::from_secs(120),
                        "record {seq} not cosigned"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                waits.push(t.elapsed().as_secs_f64() * 1000.0);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            waits
        }));
    }
    let mut waits = Vec::new();
    for p in probers {
        waits.extend(p.await.expect("prober"));
    }
    stop.store(true, Ordering::Relaxed);
    let ingested = half.await.expect("half load");
    println!(
        "| service | append → checkpoint cosigned by 3 witnesses, under half load ({:.0} rec/s) | p50 {:.0} ms, p99 {:.0} ms | {} appends, {ingested} records of load |",
        max_rate / 2.0,
        percentile(&mut waits, 50.0),
        percentile(&mut waits, 99.0),
        waits.len()
    );
    drop(witnesses);
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let seconds = env_u64("AUDITEX_TLOG_SECONDS", 20);
        let tree = env_u64("AUDITEX_TLOG_TREE", 1_000_000);
        println!(
            "cores: {}",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        println!("| part | measurement | result | detail |");
        println!("|---|---|---|---|");
        witness_rate(seconds).await;
        service(seconds, tree).await;
    });
}
