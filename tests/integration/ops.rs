//! Running Auditex like a bank would: online backups under load, verified restores, rollback
//! safety after a restore, secret files and secret-free logs, and the operator documentation
//! checked against the code.
//!
//! Store-level tests call `auditex::store::backup` and `Store::acknowledge_rollback` directly;
//! the command-line tests run the real `auditex` binary, with debug logging, and scan everything it
//! prints for secret material. Everything those processes print also goes to the secret-log scan
//! (`secret_scan`), as do the secrets they create.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use auditex::store::backup::{backup_sqlite_file, restore_sqlite, verify_ledger};
use auditex::store::crypto::MasterKey;
use auditex::store::rollback::{AcknowledgeError, RollbackProblem, latest_published_note};
use auditex::store::{
    AppendError, DatabaseUrl, IntegrityOptions, IntegrityOutcome, Store, StoreConfig, StoreError,
};
use ledger::checkpoint::{Checkpoint, open_checkpoint};
use ledger::note::{Note, VerifierKey};
use ledger::record::EventType;
use ledger::types::{TenantId, TreeSize};
use sqlx::Connection;

use crate::secret_scan;
use crate::support::{
    Backend, TestDb, append_many, assert_valid_chain, backend_tests, decisions, read_chain,
    reference_root, seq, tenant_id,
};

// ---------------------------------------------------------------------------------------------
// Helpers

/// The repository root (where README.md, docs/ and .gitignore are).
fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A store configuration for `db` that keeps published checkpoints in `checkpoint_dir`.
fn config_with_checkpoints(db: &TestDb, checkpoint_dir: &Path) -> StoreConfig {
    let mut config = db.config();
    config.checkpoint_dir = Some(checkpoint_dir.to_owned());
    config
}

/// The tenant's checkpoint verifier keys (every key in its history).
async fn verifier_keys(store: &Store, tenant: &TenantId) -> Vec<VerifierKey> {
    let origin = store.origin(tenant).await.expect("origin");
    store
        .key_history(tenant)
        .await
        .expect("key history")
        .intervals()
        .iter()
        .map(|k| VerifierKey::new(&origin, k.public_key).expect("verifier key"))
        .collect()
}

/// Checks, as an outside verifier would, that the tenant's whole chain verifies and that its
/// latest checkpoint is signed and commits to exactly the first `size` records.
async fn assert_ledger_verifies(store: &Store, tenant: &TenantId) -> Vec<ledger::record::Record> {
    let records = read_chain(store, tenant).await;
    let keys = store.key_history(tenant).await.expect("keys");
    assert_valid_chain(&records, tenant, &keys);
    let latest = store
        .latest_checkpoint(tenant)
        .await
        .expect("read")
        .expect("a checkpoint");
    let opened = open_checkpoint(
        latest.signed_note.as_bytes(),
        &verifier_keys(store, tenant).await,
        Some(&store.origin(tenant).await.expect("origin")),
    )
    .expect("the latest checkpoint's signature verifies");
    let size = usize::try_from(opened.checkpoint().size().get()).expect("fits");
    assert!(size <= records.len());
    let hashes: Vec<_> = records[..size].iter().map(|r| r.hash).collect();
    assert_eq!(
        opened.checkpoint().root(),
        reference_root(&hashes),
        "the checkpoint's Merkle root is the root of the records"
    );
    records
}

/// The size and root of the latest checkpoint published for `tenant`, as the folder `dir` keeps it.
fn file_checkpoint(dir: &Path, tenant: &TenantId) -> Checkpoint {
    let text = latest_published_note(dir, tenant)
        .expect("a readable published-checkpoint log")
        .expect("a checkpoint on file");
    let note = Note::parse(text.as_bytes()).expect("a signed note");
    Checkpoint::parse_body(note.text()).expect("a checkpoint")
}

// ---------------------------------------------------------------------------------------------
// Backups and the restore drill (SQLite; PostgreSQL: scripts/pg-pitr-drill)

/// The restore drill: back up while another task appends, restore into a fresh database, verify
/// the whole chain and the Merkle root against the latest checkpoint, then continue appending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_restores_verifies_and_the_chain_continues() {
    let db = TestDb::new(&Backend::Sqlite).await;
    let work = tempfile::tempdir().expect("tempdir");
    let store = Store::open_with_workers(config_with_checkpoints(&db, &work.path().join("cp-a")))
        .await
        .expect("open");
    let tenant = tenant_id("drill");
    store.create_tenant(&tenant).await.expect("tenant");
    append_many(&store, &tenant, 3000, 500).await;
    store.publish_checkpoints().await.expect("publish");

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, tenant, stop) = (store.clone(), tenant.clone(), stop.clone());
        tokio::spawn(async move {
            let mut appended = 0u64;
            while !stop.load(Ordering::SeqCst) {
                store
                    .append(&tenant, decisions(20))
                    .await
                    .expect("appends continue during the backup");
                appended += 20;
                if appended.is_multiple_of(200) {
                    store.publish_checkpoints().await.expect("publish");
                }
            }
            appended
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = store.tree_size(&tenant).await.expect("size").get();
    // In-process (the store's reader pool) and as `auditex backup` does it (its own connection).
    let backup = work.path().join("backups/drill.db");
    let summary = store.backup(&backup).await.expect("online backup");
    let backup2 = work.path().join("backups/drill-cli.db");
    let summary2 = backup_sqlite_file(db.sqlite_path(), &backup2)
        .await
        .expect("online backup from a separate connection");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let appended = writer.await.expect("writer");
    store.publish_checkpoints().await.expect("publish");
    let after = store.tree_size(&tenant).await.expect("size").get();
    let original = read_chain(&store, &tenant).await;
    store.shutdown().await;

    let in_backup = summary.tenants[0].records;
    assert!(
        appended > 0 && after > in_backup,
        "appends went on after the snapshot"
    );
    assert!(
        (before..=after).contains(&in_backup),
        "the backup holds a snapshot taken during the appends ({before} <= {in_backup} <= {after})"
    );
    assert!(summary2.tenants[0].records >= in_backup);
    assert_eq!(summary.sha256.len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&backup)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(
            mode, 0o600,
            "a backup holds sealed keys and personal data: private"
        );
    }

    // Restore into a fresh deployment (its own data folder and checkpoint folder).
    let fresh = tempfile::tempdir().expect("tempdir");
    let mut config = StoreConfig::new(
        DatabaseUrl::Sqlite(fresh.path().join("auditex.db")),
        db.master_key.clone(),
    );
    config.checkpoint_dir = Some(fresh.path().join("checkpoints"));
    config.checkpoint_interval = Duration::from_secs(3600);
    let report = restore_sqlite(&backup, &config, false)
        .await
        .expect("the restore verifies and completes");
    assert_eq!(report.previous, None);
    assert_eq!(report.verification.tenants.len(), 1);
    let verified = &report.verification.tenants[0];
    assert_eq!(verified.records, in_backup);
    assert!(verified.latest_checkpoint_size.is_some());
    assert_eq!(verified.rollback, None);

    let restored = Store::open_with_workers(config.clone())
        .await
        .expect("open restored");
    assert!(restored.rollback_status().is_clear());
    let records = assert_ledger_verifies(&restored, &tenant).await;
    assert_eq!(records.len() as u64, in_backup);
    for (r, o) in records.iter().zip(&original) {
        assert_eq!(
            r.hash, o.hash,
            "the backup is a prefix of the original chain"
        );
    }

    // The chain continues where the backup ends.
    let receipts = restored
        .append(&tenant, decisions(100))
        .await
        .expect("append after restore");
    assert_eq!(receipts[0].seq, in_backup);
    restored.publish_checkpoints().await.expect("publish");
    let records = assert_ledger_verifies(&restored, &tenant).await;
    assert_eq!(records.len() as u64, in_backup + 100);
    assert_eq!(
        records[usize::try_from(in_backup).expect("fits")].prev,
        original[usize::try_from(in_backup).expect("fits") - 1].hash,
        "the first new record links to the last restored one"
    );
    let full = verify_ledger(&restored).await.expect("whole-ledger check");
    assert_eq!(full.tenants[0].records, in_backup + 100);
    let file = file_checkpoint(config.checkpoint_dir.as_deref().expect("dir"), &tenant);
    assert_eq!(
        file.size().get(),
        in_backup + 100,
        "the published checkpoint is on file"
    );
    restored.shutdown().await;
}

/// Records per append request of the restore drill's load.
const DRILL_BATCH_RECORDS: u64 = 50;

/// The restore drill as an operator runs it, with real processes only: `auditex serve` takes
/// appends over HTTPS while `auditex backup` copies the database; the backup is restored into a
/// fresh database of the same deployment, whose published checkpoints are newer, so the tenant is
/// held until `auditex rollback acknowledge`; the service's full integrity check passes and an
/// export verifies offline with `auditex verify`; then appends continue through the service and a
/// new export verifies as an extension of the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_restore_drill_with_real_processes_verifies_everything_and_the_chain_continues() {
    let db = TestDb::new(&Backend::Sqlite).await;
    let mut cli = Cli::new(&db);
    let tenant = "drill";
    cli.ok(&["tenant", "create", tenant]);
    let key = cli
        .ok_revealing(&["apikey", "create", "--tenant", tenant, "--role", "ingest"])
        .trim()
        .to_owned();
    secret_scan::register_api_key(&key);

    // 1. Back up under load.
    let mut service = Service::start(&cli, &[]);
    let client = https_client(&cli);
    let load = Load::start(&client, &service, &key);
    load.wait_for(500).await;
    let before = load.acknowledged();
    let backup = cli.dir.path().join("backups/drill.db");
    let summary =
        tokio::task::block_in_place(|| cli.ok(&["backup", backup.to_str().expect("utf-8")]));
    let after = load.acknowledged();
    let summary: serde_json::Value = serde_json::from_str(&summary).expect("backup summary");
    let in_backup = summary["tenants"][0]["records"].as_u64().expect("records");
    assert!(
        before <= in_backup && in_backup <= after + DRILL_BATCH_RECORDS,
        "the backup is a snapshot taken during the appends ({before} <= {in_backup} <= {after} + \
         one batch in flight)"
    );
    load.wait_for(in_backup + 200).await;
    let total = load.stop().await;
    cli.transcript.push_str(&service.stop());
    let original = cli.export(tenant, "original.jsonl");
    let original = export_records(&original);
    assert_eq!(
        original.len() as u64,
        total,
        "every acknowledged append is in the final checkpoint"
    );
    assert!(total > in_backup, "appends went on after the backup");

    // 2. Restore into a fresh database of the same deployment (same master key, same published
    //    checkpoints kept outside the database).
    let restored = cli.dir.path().join("restored/auditex.db");
    std::fs::create_dir_all(restored.parent().expect("parent")).expect("mkdir");
    cli.database_url = format!("sqlite:{}", restored.display());
    let (ok, out, stderr) = cli.run(&["restore", backup.to_str().expect("utf-8")], None);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("HELD"),
        "the restore warns of the rollback: {stderr}"
    );
    let report: serde_json::Value = serde_json::from_str(&out).expect("restore report");
    assert_eq!(report["verification"]["tenants"][0]["records"], in_backup);

    // 3. The service on the restored database holds the tenant until the rollback is
    //    acknowledged, which becomes record `in_backup`, linked to the restored head.
    let mut service = Service::start(&cli, &[]);
    let held = post_batch(&client, &service.url, &key, 1).await;
    assert_eq!(held.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    let (ok, status, _) = cli.run(&["rollback", "status"], None);
    assert!(!ok && status.contains("\"behind\""), "{status}");
    let ack = cli.ok(&[
        "rollback",
        "acknowledge",
        "--tenant",
        tenant,
        "--operator",
        "drill-operator",
        "--reason",
        "quarterly restore drill",
    ]);
    let ack: serde_json::Value = serde_json::from_str(&ack).expect("receipt");
    assert_eq!(ack["seq"], in_backup);

    // 4. The full integrity check (the service's own, run through the library: there is no
    //    command for it) passes and is filed in the ledger.
    let mut config = StoreConfig::new(DatabaseUrl::Sqlite(restored.clone()), cli.master_key());
    config.checkpoint_dir = Some(cli.dir.path().join("data/checkpoints"));
    config.checkpoint_interval = Duration::from_secs(3600);
    let store = Store::open_with_workers(config)
        .await
        .expect("open the restored database");
    assert!(store.rollback_status().is_clear(), "acknowledged");
    let drill = tenant_id(tenant);
    let integrity = store
        .check_integrity(&drill, IntegrityOptions::default())
        .await
        .expect("the integrity check runs");
    assert_eq!(integrity.outcome, IntegrityOutcome::Passed, "{integrity:?}");
    assert_eq!(integrity.records_checked, in_backup + 1);
    let filed = store
        .append_integrity_check(&drill, &integrity)
        .await
        .expect("the result is filed");
    assert_eq!(filed.seq, in_backup + 1);
    store.shutdown().await;
    drop(store);

    // 5. Everything verifies: in place, and offline from an export with the exported keys.
    let note = cli.ok(&["checkpoint", "--tenant", tenant]);
    assert!(
        note.contains(&format!("\n{}\n", in_backup + 2)),
        "a checkpoint of everything restored and recorded since: {note}"
    );
    let verified: serde_json::Value =
        serde_json::from_str(&cli.ok(&["restore", "--verify-only"])).expect("json");
    assert_eq!(verified["tenants"][0]["records"], in_backup + 2);
    let first = cli.export(tenant, "restored.jsonl");
    let (code, verdict) = cli.verify_export(tenant, &first, None);
    assert_eq!(code, 0, "{verdict}");
    assert_eq!(verdict["verified"], true);
    assert_eq!(verdict["records"], in_backup + 2);
    let restored_records = export_records(&first);
    let cut = usize::try_from(in_backup).expect("fits");
    for (r, o) in restored_records[..cut].iter().zip(&original) {
        assert_eq!(
            r["hash"], o["hash"],
            "the backup is a prefix of the original chain"
        );
    }
    assert_eq!(restored_records[cut]["event_type"], "rollback_acknowledged");
    assert_eq!(
        restored_records[cut]["prev"],
        original[cut - 1]["hash"],
        "the acknowledgement links to the last restored record"
    );
    assert_eq!(restored_records[cut + 1]["event_type"], "integrity_check");
    // Whoever holds a checkpoint published before the restore sees the rollback.
    let (code, verdict) =
        cli.verify_export(tenant, &first, Some(&cli.dir.path().join("original.jsonl")));
    assert_eq!(
        (code, &verdict["failure"]["kind"]),
        (1, &serde_json::json!("rolled_back")),
        "a checkpoint seen before the restore is not extended: {verdict}"
    );

    // 6. Appending continues through the running service (it resumes from the records the
    //    command line and the integrity check added), and a new export extends the first.
    let deadline = Instant::now() + Duration::from_secs(10);
    let receipts = loop {
        let resp = post_batch(&client, &service.url, &key, 100).await;
        if resp.status() == reqwest::StatusCode::OK {
            break resp.json::<serde_json::Value>().await.expect("receipts");
        }
        // The service notices the acknowledgement within one checkpoint interval.
        assert!(
            resp.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE && Instant::now() < deadline,
            "append after the acknowledgement: {}",
            resp.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let seqs: Vec<u64> = receipts["receipts"]
        .as_array()
        .expect("receipts")
        .iter()
        .map(|r| r["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, (in_backup + 2..in_backup + 102).collect::<Vec<_>>());
    cli.transcript.push_str(&service.stop());
    let second = cli.export(tenant, "continued.jsonl");
    let (code, verdict) = cli.verify_export(tenant, &second, Some(&first));
    assert_eq!(code, 0, "the new export extends the first: {verdict}");
    assert_eq!(verdict["records"], in_backup + 102);
    let continued = export_records(&second);
    assert_eq!(
        continued[cut + 2]["prev"],
        restored_records[cut + 1]["hash"],
        "the first new record links to the head before it"
    );

    for (i, key) in private_signing_keys(&db, &cli.master_key(), tenant)
        .await
        .iter()
        .enumerate()
    {
        secret_scan::register_bytes(&format!("private signing key {i}"), key);
    }
    let secret_part = key.split('_').nth(2).expect("secret part");
    assert!(
        !cli.transcript.contains(secret_part) && !cli.transcript.contains(&cli.key_hex),
        "the processes printed a secret"
    );
}

/// A client that trusts exactly the service's self-signed certificate.
fn https_client(cli: &Cli) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls = cli.dir.path().join("data/tls");
    secret_scan::register_pem_file("TLS private key", &tls.join("tls-key.pem"));
    let pem = std::fs::read(tls.join("tls-cert.pem")).expect("the generated certificate");
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("certificate")])
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// Appends `records` synthetic decisions in one request.
async fn post_batch(
    client: &reqwest::Client,
    service_url: &str,
    key: &str,
    records: u64,
) -> reqwest::Response {
    let batch: Vec<serde_json::Value> = (0..records)
        .map(|n| {
            serde_json::json!({
                "event_id": uuid::Uuid::now_v7().to_string(),
                "event_type": "decision",
                "payload": auditex::cli::synthetic_decision(n),
            })
        })
        .collect();
    // The certificate names `localhost`; the service printed its IP address.
    let url = format!(
        "{}/v1/records/batch",
        service_url.replace("127.0.0.1", "localhost")
    );
    client
        .post(url)
        .bearer_auth(key)
        .json(&serde_json::json!({ "records": batch }))
        .send()
        .await
        .expect("append request")
}

/// A pipeline appending batches to the service, one request at a time, until stopped.
struct Load {
    acknowledged: Arc<std::sync::atomic::AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    fn start(client: &reqwest::Client, service: &Service, key: &str) -> Load {
        let acknowledged = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let (client, key) = (client.clone(), key.to_owned());
            let url = service.url.clone();
            let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let resp = post_batch(&client, &url, &key, DRILL_BATCH_RECORDS).await;
                    match resp.status().as_u16() {
                        200 => {
                            acknowledged.fetch_add(DRILL_BATCH_RECORDS, Ordering::SeqCst);
                        }
                        // Rate limit or full queue: nothing was written; back off as told.
                        429 | 503 => tokio::time::sleep(Duration::from_millis(50)).await,
                        other => panic!(
                            "append failed with {other}: {}",
                            resp.text().await.unwrap_or_default()
                        ),
                    }
                }
            })
        };
        Load {
            acknowledged,
            stop,
            task,
        }
    }

    /// Records acknowledged (committed) so far.
    fn acknowledged(&self) -> u64 {
        self.acknowledged.load(Ordering::SeqCst)
    }

    /// Waits until at least `records` are acknowledged.
    async fn wait_for(&self, records: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.acknowledged() < records {
            assert!(
                !self.task.is_finished() && Instant::now() < deadline,
                "the load stalled at {} of {records} records",
                self.acknowledged()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops after the request in flight; returns the records acknowledged.
    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        let acknowledged = self.acknowledged.clone();
        self.task.await.expect("the load task");
        acknowledged.load(Ordering::SeqCst)
    }
}

/// Resident memory of process `pid`, KiB (Linux).
fn rss_kib_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Memory budgets of the flood test, bytes: request bodies held at once, and estimated bytes
/// waiting in the append queues (one tenant, so its limit is the total's).
const FLOOD_BODIES_BYTES: u64 = 16 * 1024 * 1024;
const FLOOD_QUEUE_BYTES: u64 = 16 * 1024 * 1024;

/// Far more than the service can take, from another process over HTTPS: 96 clients send
/// 1000-record batches of about 3 MB each, without pause, for eight seconds, to `auditex serve`
/// with 16 MiB budgets for request bodies and queued records. Required: the excess is shed with
/// 503 and Retry-After (nothing waits unbounded), the server's resident memory stays under a
/// ceiling derived from the budgets, and every acknowledged record is in the ledger. Without the
/// budgets the same flood holds every body at once (96 × 3 MB, several times that once parsed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_large_batches_over_https_is_shed_with_retry_after_under_a_memory_ceiling() {
    const CLIENTS: usize = 96;
    const RECORDS: usize = 1000;
    let padding = "x".repeat(2600);
    let db = TestDb::new(&Backend::Sqlite).await;
    let mut cli = Cli::new(&db);
    let tenant = "flood";
    cli.ok(&["tenant", "create", tenant]);
    let key = cli
        .ok_revealing(&["apikey", "create", "--tenant", tenant, "--role", "ingest"])
        .trim()
        .to_owned();
    secret_scan::register_api_key(&key);
    let (bodies, queue) = (
        FLOOD_BODIES_BYTES.to_string(),
        FLOOD_QUEUE_BYTES.to_string(),
    );
    let mut service = Service::start(
        &cli,
        &[
            "--request-bodies-bytes-max",
            &bodies,
            "--append-queue-bytes-max",
            &queue,
            "--append-queue-total-bytes-max",
            &queue,
            "--rate-per-second",
            "1000",
            "--rate-burst",
            "10000",
        ],
    );
    let pid = service.child.id();
    let client = https_client(&cli);
    let url = format!(
        "{}/v1/records/batch",
        service.url.replace("127.0.0.1", "localhost")
    );
    // Warm up (TLS, the tenant's appender, the views) before the baseline is read.
    assert_eq!(
        post_batch(&client, &service.url, &key, 10).await.status(),
        200
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib_of(pid);
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(before));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                peak.fetch_max(rss_kib_of(pid), Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let until = Instant::now() + Duration::from_secs(8);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (client, url, key) = (client.clone(), url.clone(), key.clone());
            let padding = padding.clone();
            tokio::spawn(async move {
                let (mut acknowledged, mut shed, mut latencies) = (0u64, 0u64, Vec::new());
                while Instant::now() < until {
                    // Written as text, not through `serde_json::Value`: the clients must offer
                    // load faster than the server takes it, on the same two cores.
                    let mut body = String::with_capacity(RECORDS * 3000);
                    body.push_str("{\"records\":[");
                    for n in 0..RECORDS {
                        if n > 0 {
                            body.push(',');
                        }
                        body.push_str(&format!(
                            "{{\"event_id\":\"{}\",\"event_type\":\"decision\",\"payload\":{{\
                             \"model_id\":\"credit-model\",\"model_version\":\"1.4.0\",\
                             \"input_commitment\":\"{n:064x}\",\"outcome\":\"approved\",\
                             \"subject_ref\":\"subject-{c}-{n}\",\"decided_at\":\"2026-11-29T08:00:00Z\",\"oversight_mode\":\"human_on_the_loop\",\
                             \"explanation\":\"{padding}\"}}}}",
                            uuid::Uuid::now_v7()
                        ));
                    }
                    body.push_str("]}");
                    let sent = Instant::now();
                    let resp = client
                        .post(&url)
                        .bearer_auth(&key)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .expect("append request");
                    match resp.status().as_u16() {
                        200 => {
                            latencies.push(sent.elapsed());
                            acknowledged += RECORDS as u64;
                        }
                        503 => {
                            let retry_after = resp
                                .headers()
                                .get("retry-after")
                                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                            assert!(
                                retry_after.is_some_and(|s| s >= 1),
                                "a shed request is told when to retry"
                            );
                            let problem: serde_json::Value = resp.json().await.expect("problem");
                            assert_eq!(problem["status"], 503);
                            shed += 1;
                        }
                        other => panic!(
                            "append answered {other}: {:.300}",
                            resp.text().await.unwrap_or_default()
                        ),
                    }
                }
                (acknowledged, shed, latencies)
            })
        })
        .collect();
    let (mut acknowledged, mut shed, mut latencies) = (0u64, 0u64, Vec::new());
    for c in clients {
        let (a, s, l) = c.await.expect("client");
        acknowledged += a;
        shed += s;
        latencies.extend(l);
    }
    // The clients' connections (and the buffers the server keeps for them) close.
    drop(client);
    // Long enough for the service to notice the load has passed (it looks every 5 s).
    tokio::time::sleep(Duration::from_secs(12)).await;
    stop.store(true, Ordering::SeqCst);
    sampler.await.expect("sampler");
    let after = rss_kib_of(pid);
    let peak = peak.load(Ordering::SeqCst);
    latencies.sort();
    let p = |q: f64| {
        latencies
            .get(((latencies.len().saturating_sub(1)) as f64 * q) as usize)
            .copied()
            .unwrap_or_default()
    };
    println!(
        "flood over HTTPS: {acknowledged} records acknowledged in {} requests, {shed} requests \
         shed; accepted latency p50 {:?} p99 {:?}; server RSS before {before} KiB, peak {peak} \
         KiB, 12 s after {after} KiB",
        latencies.len(),
        p(0.5),
        p(0.99)
    );
    cli.transcript.push_str(&service.stop());
    assert!(shed > 0, "a flood beyond the budgets is shed");
    assert!(
        acknowledged > 0,
        "the service kept appending during the flood"
    );
    // The ceiling: what the budgets admit (bodies as received, then parsed into records,
    // then queued), allowing ten bytes of heap per budgeted byte for parsing, hashing and
    // allocator slack, over the warm baseline.
    let ceiling_kib = before + 10 * (FLOOD_BODIES_BYTES + FLOOD_QUEUE_BYTES) / 1024;
    assert!(
        peak < ceiling_kib,
        "the server's resident memory peaked at {peak} KiB, over its ceiling of {ceiling_kib} KiB"
    );
    let records = export_records(&cli.export(tenant, "flood.jsonl"));
    assert_eq!(
        records.len() as u64,
        10 + acknowledged,
        "every acknowledged record is in the ledger, and nothing else"
    );
}

/// The records of an export file (without its header and end lines).
fn export_records(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).expect("export");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 2, "an export has a header and an end line");
    lines[1..lines.len() - 1]
        .iter()
        .map(|l| serde_json::from_str(l).expect("a record"))
        .collect()
}

/// `auditex apikey rate` and `apikey create --rate-per-second` set a key's own rate, shown by
/// `apikey list`; `default` clears it. A rate out of range, a word, and another tenant's or an
/// unknown key are refused with what is wrong, and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_own_rate_is_set_from_the_command_line_and_bad_rates_change_nothing() {
    let db = TestDb::new(&Backend::Sqlite).await;
    let mut cli = Cli::new(&db);
    cli.ok(&["tenant", "create", "ratebank"]);
    cli.ok(&["tenant", "create", "otherbank"]);
    let rate_of = |cli: &mut Cli, tenant: &str| -> Vec<serde_json::Value> {
        cli.ok(&["apikey", "list", "--tenant", tenant])
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json line"))
            .map(|k| k["rate_per_second"].clone())
            .collect()
    };
    for bad in ["0", "100001"] {
        let (ok, _, stderr) = cli.run(
            &[
                "apikey",
                "create",
                "--tenant",
                "ratebank",
                "--role",
                "ingest",
                "--rate-per-second",
                bad,
            ],
            None,
        );
        assert!(!ok, "rate {bad} is refused");
        assert!(
            stderr.contains(&format!(
                "between 1 and 100000 requests a second, not {bad}"
            )),
            "{stderr}"
        );
    }
    assert!(
        rate_of(&mut cli, "ratebank").is_empty(),
        "no key was created"
    );

    let key = cli
        .ok_revealing(&[
            "apikey",
            "create",
            "--tenant",
            "ratebank",
            "--role",
            "ingest",
            "--rate-per-second",
            "500",
        ])
        .trim()
        .to_owned();
    secret_scan::register_api_key(&key);
    let id = key[4..20].to_owned();
    assert_eq!(rate_of(&mut cli, "ratebank"), [serde_json::json!(500)]);

    for (args, says) in [
        (
            vec!["--tenant", "ratebank", id.as_str(), "0"],
            "between 1 and 100000",
        ),
        (
            vec!["--tenant", "ratebank", id.as_str(), "fast"],
            "not `fast`",
        ),
        (
            vec!["--tenant", "otherbank", id.as_str(), "10"],
            "otherbank has no active key",
        ),
        (
            vec!["--tenant", "ratebank", "0123456789abcdef", "10"],
            "has no active key",
        ),
    ] {
        let mut all = vec!["apikey", "rate"];
        all.extend(args);
        let (ok, _, stderr) = cli.run(&all, None);
        assert!(!ok, "{all:?} is refused");
        assert!(stderr.contains(says), "{all:?}: {stderr}");
    }
    assert_eq!(
        rate_of(&mut cli, "ratebank"),
        [serde_json::json!(500)],
        "unchanged"
    );

    let out = cli.ok(&["apikey", "rate", "--tenant", "ratebank", &id, "2500"]);
    assert!(out.contains("2500 requests a second"), "{out}");
    assert_eq!(rate_of(&mut cli, "ratebank"), [serde_json::json!(2500)]);
    cli.ok(&["apikey", "rate", "--tenant", "ratebank", &id, "default"]);
    assert_eq!(rate_of(&mut cli, "ratebank"), [serde_json::Value::Null]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_backup_is_refused_and_the_target_is_left_untouched() {
    let db = TestDb::new(&Backend::Sqlite).await;
    let work = tempfile::tempdir().expect("tempdir");
    let (store, tenant) = db.open_with_tenant("tamper").await;
    append_many(&store, &tenant, 50, 50).await;
    store.publish_checkpoints().await.expect("publish");
    let backup = work.path().join("tamper.db");
    store.backup(&backup).await.expect("backup");
    assert!(
        store.backup(&backup).await.is_err(),
        "a backup never overwrites a file"
    );
    store.shutdown().await;

    // Someone with file access rewrites record 7 in the backup, bypassing the triggers.
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", backup.display()))
        .await
        .expect("open the backup");
    sqlx::query("DROP TRIGGER records_no_update")
        .execute(&mut conn)
        .await
        .expect("drop trigger");
    let changed = sqlx::query(
        "UPDATE records SET payload = replace(payload, '0.72', '0.27') WHERE seq = 7 AND payload LIKE '%0.72%'",
    )
    .execute(&mut conn)
    .await
    .expect("tamper");
    assert_eq!(
        changed.rows_affected(),
        1,
        "the score of record 7 was rewritten"
    );
    conn.close().await.expect("close");

    let target = work.path().join("live/auditex.db");
    std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
    std::fs::write(&target, b"the current database").expect("write");
    let mut config = StoreConfig::new(DatabaseUrl::Sqlite(target.clone()), db.master_key.clone());
    config.checkpoint_dir = Some(work.path().join("checkpoints"));
    let err = restore_sqlite(&backup, &config, true)
        .await
        .expect_err("a tampered backup must not be restored");
    assert!(
        matches!(err, StoreError::Corrupt(_)) && err.to_string().contains("record 7"),
        "the error names the tampered record: {err}"
    );
    assert_eq!(
        std::fs::read(&target).expect("read"),
        b"the current database",
        "the target is untouched"
    );
    let leftovers: Vec<_> = std::fs::read_dir(target.parent().expect("parent"))
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("restore"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary copies are removed: {leftovers:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Rollback safety

/// Restores an old backup over a database whose later checkpoints were already published: the
/// tenant is held (no checkpoint, no append) until an operator acknowledges, which is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_an_old_backup_holds_the_tenant_until_the_rollback_is_acknowledged() {
    let db = TestDb::new(&Backend::Sqlite).await;
    let work = tempfile::tempdir().expect("tempdir");
    let checkpoints = work.path().join("checkpoints");
    let config = config_with_checkpoints(&db, &checkpoints);
    let store = Store::open_with_workers(config.clone())
        .await
        .expect("open");
    let tenant = tenant_id("rolled");
    store.create_tenant(&tenant).await.expect("tenant");
    append_many(&store, &tenant, 100, 50).await;
    store.publish_checkpoints().await.expect("publish");
    assert_eq!(file_checkpoint(&checkpoints, &tenant).size().get(), 100);
    let backup = work.path().join("old.db");
    store.backup(&backup).await.expect("backup");
    append_many(&store, &tenant, 50, 50).await;
    store.publish_checkpoints().await.expect("publish");
    let published = file_checkpoint(&checkpoints, &tenant);
    assert_eq!(
        published.size().get(),
        150,
        "the log follows every publication"
    );

    let err = restore_sqlite(&backup, &config, true)
        .await
        .expect_err("a database in use is never replaced");
    assert!(err.to_string().contains("in use"), "{err}");
    store.shutdown().await;
    drop(store);
    let err = restore_sqlite(&backup, &config, false)
        .await
        .expect_err("an existing database is replaced only with --force");
    assert!(err.to_string().contains("--force"), "{err}");

    let report = restore_sqlite(&backup, &config, true)
        .await
        .expect("restore");
    let previous = report.previous.expect("the replaced database is kept");
    assert!(previous.exists());
    assert!(
        report.verification.tenants[0]
            .rollback
            .as_deref()
            .is_some_and(|r| r.contains("150")),
        "the restore report says the tenant will be held: {:?}",
        report.verification.tenants[0]
    );

    // Restart on the restored database: held.
    let store = Store::open_with_workers(config.clone())
        .await
        .expect("open");
    let status = store.rollback_status();
    assert_eq!(
        status.problem(&tenant),
        Some(&RollbackProblem::Behind {
            witnessed: TreeSize::new(150),
            witnessed_root: published.root(),
            database: TreeSize::new(100),
        })
    );
    let refused = store
        .append(&tenant, decisions(1))
        .await
        .expect_err("appends are refused while held");
    assert!(
        matches!(
            refused,
            AppendError::Store(StoreError::RollbackUnacknowledged { .. })
        ),
        "{refused}"
    );
    assert!(!refused.is_retryable());
    assert!(
        store.rotate_key(&tenant).await.is_err(),
        "no rotation either"
    );
    store
        .publish_checkpoints()
        .await
        .expect("publishing skips held tenants");
    assert_eq!(
        store
            .latest_checkpoint(&tenant)
            .await
            .expect("read")
            .expect("the backup's checkpoint")
            .size
            .get(),
        100,
        "no checkpoint was signed for the rolled-back tree"
    );
    assert_eq!(
        file_checkpoint(&checkpoints, &tenant).size().get(),
        150,
        "the log still holds what was published"
    );
    assert!(matches!(
        store.acknowledge_rollback(&tenant, "", "x").await,
        Err(AcknowledgeError::Invalid(_))
    ));

    // The operator acknowledges: recorded in the ledger, published, released.
    let receipt = store
        .acknowledge_rollback(
            &tenant,
            "alice.ops",
            "restored backup of 02:00 after disk failure",
        )
        .await
        .expect("acknowledged");
    assert_eq!(
        receipt.seq, 100,
        "the acknowledgement is the first record after the rollback"
    );
    let record = store
        .record(&tenant, seq(100))
        .await
        .expect("read")
        .expect("the acknowledgement record");
    assert_eq!(record.event_type, EventType::RollbackAcknowledged);
    let payload: serde_json::Value =
        serde_json::from_str(record.payload.as_str()).expect("payload");
    assert_eq!(payload["operator"], "alice.ops");
    assert_eq!(
        payload["reason"],
        "restored backup of 02:00 after disk failure"
    );
    assert_eq!(payload["problem"], "behind");
    assert_eq!(payload["published_size"], 150);
    assert_eq!(payload["published_root"], published.root().to_hex());
    assert_eq!(payload["database_size"], 100);
    assert!(store.rollback_status().is_clear());
    assert_eq!(
        file_checkpoint(&checkpoints, &tenant).size().get(),
        101,
        "the log's latest is the acknowledged tree"
    );
    assert!(matches!(
        store
            .acknowledge_rollback(&tenant, "alice.ops", "again")
            .await,
        Err(AcknowledgeError::NothingToAcknowledge(_))
    ));

    append_many(&store, &tenant, 30, 30).await;
    store.publish_checkpoints().await.expect("publish");
    let records = assert_ledger_verifies(&store, &tenant).await;
    assert_eq!(records.len(), 131);
    store.shutdown().await;
    let reopened = Store::open_with_workers(config).await.expect("reopen");
    assert!(
        reopened.rollback_status().is_clear(),
        "clear after a restart"
    );
    reopened.shutdown().await;
}

/// A database whose tree differs from the published checkpoint at the same size (a fork) is held
/// too, on both backends.
async fn a_database_that_forks_from_the_published_checkpoint_is_held(backend: Backend) {
    let checkpoints = tempfile::tempdir().expect("tempdir");
    let a = TestDb::new(&backend).await;
    let b = TestDb::new(&backend).await;
    let tenant = tenant_id("forked");
    let store = Store::open_with_workers(config_with_checkpoints(&a, checkpoints.path()))
        .await
        .expect("open a");
    store.create_tenant(&tenant).await.expect("tenant");
    append_many(&store, &tenant, 10, 10).await;
    store.publish_checkpoints().await.expect("publish");
    store.shutdown().await;
    // Another database with the same tenant and as many records, but other ones.
    let other = b.open().await;
    other.create_tenant(&tenant).await.expect("tenant");
    append_many(&other, &tenant, 12, 12).await;
    other.shutdown().await;

    let store = Store::open_with_workers(config_with_checkpoints(&b, checkpoints.path()))
        .await
        .expect("open b against a's published checkpoint");
    match store.rollback_status().problem(&tenant) {
        Some(RollbackProblem::Forked { size, .. }) => assert_eq!(size.get(), 10),
        other => panic!("expected a fork, got {other:?}"),
    }
    assert!(store.append(&tenant, decisions(1)).await.is_err());
    let receipt = store
        .acknowledge_rollback(&tenant, "bob", "database rebuilt from the DR site")
        .await
        .expect("acknowledged");
    assert_eq!(receipt.seq, 12);
    assert!(store.rollback_status().is_clear());
    assert_ledger_verifies(&store, &tenant).await;
    store.shutdown().await;
}

backend_tests!(a_database_that_forks_from_the_published_checkpoint_is_held);

/// An export written by a process configured with another origin still names the origin the
/// tenant was created under, which is the one its checkpoints are signed with: the evidence
/// verifies with the tenant's own verifier keys, on both backends.
async fn an_export_under_another_configured_origin_names_the_tenants_own_origin(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let tenant = tenant_id("originated");
    let mut config = db.config();
    config.service_origin = "ledger.bank.example/audit".to_owned();
    let store = Store::open_with_workers(config).await.expect("open");
    store.create_tenant(&tenant).await.expect("tenant");
    append_many(&store, &tenant, 5, 5).await;
    store.publish_checkpoints().await.expect("publish");
    store.shutdown().await;

    // Another process, without the setting (the default origin) or with another one.
    for other in ["auditex.local/ledger", "elsewhere.example/x"] {
        let mut config = db.config();
        config.service_origin = other.to_owned();
        let store = Store::open_with_workers(config).await.expect("reopen");
        assert_eq!(
            store.origin(&tenant).await.expect("origin"),
            "ledger.bank.example/audit/originated"
        );
        let mut out = Vec::new();
        store.export(&tenant, 0, &mut out).await.expect("export");
        let text = String::from_utf8(out).expect("utf-8");
        let header: serde_json::Value =
            serde_json::from_str(text.lines().next().expect("header")).expect("json");
        assert_eq!(header["origin"], "ledger.bank.example/audit/originated");
        let vkeys = header["verifier_keys"].as_array().expect("verifier keys");
        assert_eq!(vkeys.len(), 1);
        assert!(
            vkeys[0]
                .as_str()
                .expect("vkey")
                .starts_with("ledger.bank.example/audit/originated+"),
            "{vkeys:?}"
        );
        let keys = verifier_keys(&store, &tenant).await;
        let note = header["checkpoint"].as_str().expect("checkpoint");
        open_checkpoint(
            note.as_bytes(),
            &keys,
            Some(&store.origin(&tenant).await.expect("o")),
        )
        .expect("the checkpoint opens with the exported origin's keys");
        store.shutdown().await;
    }
}

backend_tests!(an_export_under_another_configured_origin_names_the_tenants_own_origin);

/// `auditex key history` and `auditex export`, run without the origin the tenant was created
/// under (the default) or with another one, print the tenant's own origin.
async fn the_key_history_and_export_commands_print_the_tenants_own_origin(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let mut cli = Cli::new(&db);
    let tenant = tenant_id("cli-origin");
    let mut config = db.config();
    config.master_key = cli.master_key();
    config.service_origin = "ledger.bank.example/audit".to_owned();
    let store = Store::open_with_workers(config).await.expect("open");
    store.create_tenant(&tenant).await.expect("tenant");
    append_many(&store, &tenant, 3, 3).await;
    store.publish_checkpoints().await.expect("publish");
    store.shutdown().await;
    let expected = "ledger.bank.example/audit/cli-origin";
    for extra in [&[][..], &["--origin", "elsewhere.example/x"][..]] {
        let mut args = vec!["key", "history", "--tenant", "cli-origin"];
        args.extend_from_slice(extra);
        let history: serde_json::Value =
            serde_json::from_str(&cli.ok(&args)).expect("key history json");
        assert_eq!(history["origin"], expected, "{history:#}");
        let vkey = history["keys"][0]["verifier_key"].as_str().expect("vkey");
        assert!(vkey.starts_with(&format!("{expected}+")), "{vkey}");
        let mut args = vec!["export", "--tenant", "cli-origin"];
        args.extend_from_slice(extra);
        let export = cli.ok(&args);
        let header: serde_json::Value =
            serde_json::from_str(export.lines().next().expect("header")).expect("json");
        assert_eq!(header["origin"], expected, "{header:#}");
    }
}

backend_tests!(the_key_history_and_export_commands_print_the_tenants_own_origin);

/// After a database that fell behind the published checkpoints is acknowledged, the checkpoints
/// of the abandoned branch are still listed (marked with the acknowledgement's seq) and the
/// acknowledgement names the abandoned sequence numbers, on both backends.
async fn an_acknowledged_rollback_keeps_the_abandoned_checkpoints_and_names_the_abandoned_seqs(
    backend: Backend,
) {
    let checkpoints = tempfile::tempdir().expect("tempdir");
    let a = TestDb::new(&backend).await;
    let b = TestDb::new(&backend).await;
    let tenant = tenant_id("abandoned");
    let store = Store::open_with_workers(config_with_checkpoints(&a, checkpoints.path()))
        .await
        .expect("open a");
    store.create_tenant(&tenant).await.expect("tenant");
    append_many(&store, &tenant, 5, 5).await;
    store.publish_checkpoints().await.expect("publish 5");
    append_many(&store, &tenant, 5, 5).await;
    store.publish_checkpoints().await.expect("publish 10");
    store.shutdown().await;
    // The "restored" database holds 3 records only.
    let other = b.open().await;
    other.create_tenant(&tenant).await.expect("tenant");
    append_many(&other, &tenant, 3, 3).await;
    other.shutdown().await;

    let store = Store::open_with_workers(config_with_checkpoints(&b, checkpoints.path()))
        .await
        .expect("open b");
    assert!(matches!(
        store.rollback_status().problem(&tenant),
        Some(RollbackProblem::Behind { .. })
    ));
    let receipt = store
        .acknowledge_rollback(&tenant, "carol", "restored the volume")
        .await
        .expect("acknowledged");
    assert_eq!(receipt.seq, 3);
    let abandoned = store
        .abandoned_checkpoints(&tenant, None, 100)
        .await
        .expect("abandoned");
    let sizes: Vec<(u64, u64)> = abandoned
        .iter()
        .map(|(by, c)| (*by, c.size.get()))
        .collect();
    assert_eq!(
        sizes,
        vec![(3, 5), (3, 10)],
        "both published checkpoints are kept"
    );
    let current: Vec<u64> = store
        .checkpoints(&tenant, None, 100)
        .await
        .expect("current")
        .iter()
        .map(|c| c.size.get())
        .collect();
    assert_eq!(
        current,
        vec![3, 4],
        "the restored database's own checkpoint and the new one"
    );
    let ack = store
        .record(&tenant, seq(3))
        .await
        .expect("read")
        .expect("the acknowledgement");
    assert_eq!(ack.event_type, EventType::RollbackAcknowledged);
    let payload: serde_json::Value = serde_json::from_str(ack.payload.as_str()).expect("payload");
    assert_eq!(payload["abandoned_from_seq"], 3);
    assert_eq!(payload["abandoned_until_seq"], 10);
    store.shutdown().await;

    // Reopened, nothing is held and nothing is recorded twice.
    let store = Store::open_with_workers(config_with_checkpoints(&b, checkpoints.path()))
        .await
        .expect("reopen b");
    assert!(store.rollback_status().is_clear());
    assert_eq!(
        store
            .abandoned_checkpoints(&tenant, None, 100)
            .await
            .expect("abandoned")
            .len(),
        2
    );
    store.shutdown().await;
}

backend_tests!(
    an_acknowledged_rollback_keeps_the_abandoned_checkpoints_and_names_the_abandoned_seqs
);

/// A tenant `name` with `records` records, published with the folder `checkpoints` in an SQLite
/// database that is then closed and dropped.
async fn published_in_another_database(checkpoints: &Path, name: &str, records: usize) -> TenantId {
    let db = TestDb::new(&Backend::Sqlite).await;
    let store = Store::open_with_workers(config_with_checkpoints(&db, checkpoints))
        .await
        .expect("open");
    let tenant = tenant_id(name);
    store.create_tenant(&tenant).await.expect("tenant");
    append_many(&store, &tenant, records, records).await;
    store.publish_checkpoints().await.expect("publish");
    store.shutdown().await;
    tenant
}

/// A new SQLite database opened with the folder `checkpoints` (as after a restore that lost
/// everything the folder knows of).
async fn open_a_new_database(checkpoints: &Path) -> (TestDb, Store) {
    let db = TestDb::new(&Backend::Sqlite).await;
    let store = Store::open_with_workers(config_with_checkpoints(&db, checkpoints))
        .await
        .expect("open");
    (db, store)
}

/// A folder from a deployment that kept only the latest checkpoint in `<tenant>.checkpoint`
/// still protects after an upgrade: a restored database behind it is held, and the file is
/// moved into the published-checkpoint log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_deployment_s_checkpoint_file_still_holds_a_rolled_back_tenant() {
    let checkpoints = tempfile::tempdir().expect("tempdir");
    let tenant = published_in_another_database(checkpoints.path(), "upgraded", 8).await;
    let note = latest_published_note(checkpoints.path(), &tenant)
        .expect("readable")
        .expect("published");
    let log = auditex::store::rollback::history_file(checkpoints.path(), &tenant);
    let legacy = auditex::store::rollback::checkpoint_file(checkpoints.path(), &tenant);
    std::fs::remove_file(&log).expect("the older layout had no log");
    std::fs::write(&legacy, &note).expect("the older layout's file");

    let (_b, store) = open_a_new_database(checkpoints.path()).await;
    assert!(matches!(
        store.rollback_status().problem(&tenant),
        Some(RollbackProblem::Behind { witnessed, .. }) if witnessed.get() == 8
    ));
    assert!(!legacy.exists(), "the older file is retired");
    assert_eq!(
        file_checkpoint(checkpoints.path(), &tenant).size().get(),
        8,
        "its checkpoint is in the log"
    );
    store.shutdown().await;
}

/// A tenant whose database lost it entirely (restored from before it was created) is held, and
/// can be acknowledged once it exists again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_missing_from_a_restored_database_is_held() {
    let checkpoints = tempfile::tempdir().expect("tempdir");
    let tenant = published_in_another_database(checkpoints.path(), "vanished", 5).await;
    let (_b, store) = open_a_new_database(checkpoints.path()).await;
    assert!(matches!(
        store.rollback_status().problem(&tenant),
        Some(RollbackProblem::Behind { database, .. }) if database.get() == 0
    ));
    assert!(matches!(
        store.acknowledge_rollback(&tenant, "carol", "lost").await,
        Err(AcknowledgeError::UnknownTenant(_))
    ));
    store.create_tenant(&tenant).await.expect("recreate");
    let receipt = store
        .acknowledge_rollback(&tenant, "carol", "tenant recreated after restore")
        .await
        .expect("acknowledged");
    assert_eq!(
        receipt.seq, 0,
        "the new chain starts with the acknowledgement"
    );
    store.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// The command line: secrets, backup/restore/rollback end to end, and what the service logs

/// Where a spawned `auditex` finds its data and keys.
struct Cli {
    dir: tempfile::TempDir,
    database_url: String,
    admin_url: Option<String>,
    key_hex: String,
    /// Everything every command printed (stdout and stderr), for the secret scan.
    transcript: String,
}

impl Cli {
    fn new(db: &TestDb) -> Cli {
        let dir = tempfile::tempdir().expect("tempdir");
        let key_bytes: [u8; 32] = rand::random();
        secret_scan::register_bytes("master key of a spawned auditex", &key_bytes);
        let key_hex = hex::encode(key_bytes);
        let key_file = dir.path().join("secrets/master.key");
        std::fs::create_dir_all(key_file.parent().expect("parent")).expect("mkdir");
        write_private(&key_file, &key_hex);
        let (database_url, admin_url) = match &db.database {
            DatabaseUrl::Sqlite(path) => (format!("sqlite:{}", path.display()), None),
            DatabaseUrl::Postgres(url) => (url.clone(), Some(db.postgres_owner_url().to_owned())),
        };
        Cli {
            dir,
            database_url,
            admin_url,
            key_hex,
            transcript: String::new(),
        }
    }

    fn key_file(&self) -> PathBuf {
        self.dir.path().join("secrets/master.key")
    }

    fn master_key(&self) -> MasterKey {
        MasterKey::from_hex(&self.key_hex, "test").expect("key")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_auditex"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AUDITEX_DATABASE_URL", &self.database_url)
            .env("AUDITEX_MASTER_KEY_FILE", self.key_file())
            .env("AUDITEX_DATA_DIR", self.dir.path().join("data"))
            .env("AUDITEX_CHECKPOINT_INTERVAL_MS", "200")
            .env("USER", "ops-test")
            // Everything the service logs, at debug level and above.
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null());
        if let Some(admin) = &self.admin_url {
            cmd.env("AUDITEX_ADMIN_DATABASE_URL", admin);
        }
        cmd
    }

    /// Runs a command to completion, recording its output; returns (success, stdout, stderr).
    fn run(&mut self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        let mut cmd = self.command(args);
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn auditex");
        if let Some(text) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(text.as_bytes())
                .expect("write stdin");
        }
        let out = child.wait_with_output().expect("wait");
        let label = format!("auditex-{}", args.first().copied().unwrap_or_default());
        secret_scan::record_output(&label, &[&out.stdout[..], &out.stderr[..]].concat());
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        self.transcript
            .push_str(&format!("$ auditex {}\n{stdout}{stderr}", args.join(" ")));
        (out.status.success(), stdout, stderr)
    }

    fn ok(&mut self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.run(args, None);
        assert!(ok, "auditex {args:?} failed:\n{stdout}\n{stderr}");
        stdout
    }

    /// Runs a command whose job is to print a secret once (`apikey create`): its standard
    /// output is returned but kept out of the transcript and the scanned logs, which would
    /// otherwise rightly report it; its standard error is scanned like any other.
    fn ok_revealing(&mut self, args: &[&str]) -> String {
        let out = self.command(args).output().expect("spawn auditex");
        secret_scan::record_output(
            &format!(
                "auditex-{}-stderr",
                args.first().copied().unwrap_or_default()
            ),
            &out.stderr,
        );
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        self.transcript.push_str(&format!(
            "$ auditex {}\n<stdout not shown>\n{stderr}",
            args.join(" ")
        ));
        assert!(out.status.success(), "auditex {args:?} failed:\n{stderr}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `auditex export --tenant T` into a new file of this folder.
    fn export(&mut self, tenant: &str, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        self.ok(&[
            "export",
            "--tenant",
            tenant,
            "--output",
            path.to_str().expect("utf-8"),
        ]);
        path
    }

    /// `auditex verify export FILE --key-history … [--checkpoint SEEN] --json`: the exit code
    /// and the JSON verdict. The key history is exported afresh, as a regulator would get it.
    fn verify_export(
        &mut self,
        tenant: &str,
        export: &Path,
        seen: Option<&Path>,
    ) -> (i32, serde_json::Value) {
        let history = self
            .dir
            .path()
            .join(format!("keys-{}.json", rand::random::<u32>()));
        let keys = self.ok(&["key", "history", "--tenant", tenant]);
        std::fs::write(&history, keys).expect("write the key history");
        let mut args = vec![
            "verify",
            "export",
            export.to_str().expect("utf-8"),
            "--key-history",
            history.to_str().expect("utf-8"),
            "--json",
        ];
        if let Some(seen) = seen {
            args.extend(["--checkpoint", seen.to_str().expect("utf-8")]);
        }
        let out = self.command(&args).output().expect("spawn auditex verify");
        secret_scan::record_output(
            "auditex-verify",
            &[&out.stdout[..], &out.stderr[..]].concat(),
        );
        let verdict = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "verify printed no JSON ({e}): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().expect("an exit code"), verdict)
    }
}

/// A running `auditex serve`. What it prints is copied, while it runs, to the secret scan's logs
/// and kept for the test; it is killed if the test fails before stopping it.
struct Service {
    child: std::process::Child,
    /// Where it listens, as it printed it (`https://127.0.0.1:PORT`).
    url: String,
    output: Vec<std::thread::JoinHandle<String>>,
}

impl Service {
    /// Starts `auditex serve --listen 127.0.0.1:0 ARGS` and waits until it says where it listens.
    fn start(cli: &Cli, args: &[&str]) -> Service {
        let mut all = vec!["serve", "--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let mut child = cli
            .command(&all)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn auditex serve");
        let (lines, printed) = std::sync::mpsc::channel();
        let stdout = copy_output(
            "auditex-serve-stdout",
            child.stdout.take().expect("stdout"),
            Some(lines),
        );
        let stderr = copy_output(
            "auditex-serve-stderr",
            child.stderr.take().expect("stderr"),
            None,
        );
        let mut service = Service {
            child,
            url: String::new(),
            output: vec![stdout, stderr],
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while service.url.is_empty() {
            let line: String = printed
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("the service did not start: {}", service.stop()));
            if let Some(rest) = line.split(" listening on ").nth(1) {
                service.url = rest
                    .split_whitespace()
                    .next()
                    .expect("an address")
                    .to_owned();
            }
        }
        service
    }

    /// Stops it as systemd would (SIGTERM: it drains queued appends and publishes final
    /// checkpoints) and returns everything it printed.
    fn stop(&mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().expect("serve stops");
        let printed: String = self
            .output
            .drain(..)
            .map(|t| t.join().expect("output copier"))
            .collect();
        assert!(status.success(), "serve ended with {status}:\n{printed}");
        printed
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // Only matters when the test failed before `stop`; a reaped child is not signalled.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies a child's output, line by line, to a new log of the secret scan and, when given, to
/// `lines`; returns everything copied once the child closes it.
fn copy_output(
    label: &str,
    from: impl std::io::Read + Send + 'static,
    lines: Option<std::sync::mpsc::Sender<String>>,
) -> std::thread::JoinHandle<String> {
    let (mut file, path) = secret_scan::output_file(label);
    std::thread::spawn(move || {
        use std::io::Write;
        let mut reader = BufReader::new(from);
        let mut all = String::new();
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            file.write_all(&line)
                .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            let text = String::from_utf8_lossy(&line).into_owned();
            if let Some(lines) = &lines {
                let _ = lines.send(text.clone());
            }
            all.push_str(&text);
            line.clear();
        }
        all
    })
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
}

#[cfg(unix)]
fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The service refuses to start with a master key file that group or others can read, naming
/// the file and the fix; with mode 0600 it starts.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_refuses_to_start_with_a_readable_master_key_file() {
    let db = TestDb::new(&Backend::Sqlite).await;
    let mut cli = Cli::new(&db);
    let key_file = cli.key_file();
    for mode in [0o644, 0o640, 0o604] {
        chmod(&key_file, mode);
        let (ok, _, stderr) = cli.run(&["serve", "--listen", "127.0.0.1:0"], None);
        assert!(!ok, "serve must refuse a key file of mode {mode:o}");
        assert!(
            stderr.contains(&key_file.display().to_string())
                && stderr.contains(&format!("chmod 600 {}", key_file.display()))
                && stderr.contains("AUDITEX_MASTER_KEY_FILE"),
            "the error names the setting, the file and the fix: {stderr}"
        );
        let (ok, _, _) = cli.run(&["tenant", "list"], None);
        assert!(!ok, "every command refuses it");
    }
    chmod(&key_file, 0o600);
    cli.ok(&["tenant", "list"]);

    // The generated key of the embedded default is checked the same way.
    let data = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_auditex"))
            .args(args)
            .env_clear()
            .env("AUDITEX_DATA_DIR", data.path())
            .env("RUST_LOG", "warn")
            .output()
            .expect("run")
    };
    let production = Command::new(env!("CARGO_BIN_EXE_auditex"))
        .args(["tenant", "list"])
        .env_clear()
        .env("AUDITEX_DATA_DIR", data.path())
        .env("AUDITEX_PRODUCTION", "true")
        .output()
        .expect("run");
    assert!(
        !production.status.success(),
        "production mode never generates a master key"
    );
    assert!(String::from_utf8_lossy(&production.stderr).contains("AUDITEX_MASTER_KEY_FILE"));
    assert!(!data.path().join("master.key").exists());
    assert!(
        run(&["tenant", "list"]).status.success(),
        "generates data/master.key"
    );
    let generated = data.path().join("master.key");
    chmod(&generated, 0o644);
    let out = run(&["tenant", "list"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));
}

/// Secret material that must never appear in anything the service prints.
struct Secrets(Vec<(String, String)>);

impl Secrets {
    /// Key material in every form a log could show it; registered with the suite-wide scan too.
    fn add(&mut self, what: &str, bytes: &[u8]) {
        secret_scan::register_bytes(what, bytes);
        for (form, text) in secret_scan::encodings(bytes) {
            self.0.push((format!("{what} ({form})"), text));
        }
    }

    fn add_text(&mut self, what: &str, text: &str) {
        if !text.is_empty() {
            self.0.push((what.to_owned(), text.to_owned()));
        }
    }

    /// The first secret found in `transcript` (by description, never the secret itself).
    fn found_in(&self, transcript: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(_, needle)| transcript.contains(needle.as_str()))
            .map(|(what, _)| what.as_str())
    }
}

/// Reads and unseals every signing key of `tenant`, as only the service itself can.
async fn private_signing_keys(db: &TestDb, master: &MasterKey, tenant: &str) -> Vec<Vec<u8>> {
    let rows: Vec<(String, Vec<u8>)> = match &db.database {
        DatabaseUrl::Sqlite(path) => {
            let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", path.display()))
                .await
                .expect("open");
            sqlx::query_as("SELECT key_id, sealed_secret FROM signing_keys WHERE tenant_id = ?")
                .bind(tenant)
                .fetch_all(&mut conn)
                .await
                .expect("keys")
        }
        DatabaseUrl::Postgres(_) => {
            let mut conn = sqlx::PgConnection::connect(db.postgres_owner_url())
                .await
                .expect("connect");
            let mut tx = conn.begin().await.expect("begin");
            sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
                .bind(tenant)
                .execute(&mut *tx)
                .await
                .expect("tenant");
            let rows = sqlx::query_as(
                "SELECT key_id, sealed_secret FROM signing_keys WHERE tenant_id = $1",
            )
            .bind(tenant)
            .fetch_all(&mut *tx)
            .await
            .expect("keys");
            tx.commit().await.expect("commit");
            rows
        }
    };
    assert!(!rows.is_empty());
    rows.into_iter()
        .map(|(key_id, sealed)| {
            auditex::store::crypto::MasterKeys::from(master.clone())
                .open(
                    &auditex::store::crypto::SealContext::signing_key(
                        &ledger::types::TenantId::parse(tenant).expect("tenant"),
                        ledger::keys::KeyId::parse(&key_id).expect("key id"),
                    ),
                    &sealed,
                )
                .expect("the master key opens the signing key")
        })
        .collect()
}

/// `auditex append` refuses a record holding U+0000 with its pointer and writes nothing; the
/// stuck-projection commands answer on a healthy database.
async fn cli_append_refuses_nul_and_projection_commands_report_nothing_stuck(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let mut cli = Cli::new(&db);
    cli.ok(&["tenant", "create", "acme"]);
    let mut payload = auditex::cli::synthetic_decision(7);
    payload["subject_ref"] = serde_json::json!("x\u{0}y");
    let event = serde_json::json!({
        "event_id": uuid::Uuid::now_v7().to_string(),
        "event_type": "decision",
        "payload": payload,
    });
    let (ok, _, stderr) = cli.run(&["append", "--tenant", "acme"], Some(&format!("{event}\n")));
    assert!(!ok, "a NUL is refused");
    assert!(stderr.contains("/payload/subject_ref"), "{stderr}");
    let store = db.open().await;
    assert_eq!(
        store
            .tree_size(&crate::support::tenant_id("acme"))
            .await
            .expect("size")
            .get(),
        0
    );
    store.shutdown().await;
    assert!(
        cli.ok(&["projections", "stuck"])
            .contains("no projection is stuck")
    );
    let out = cli.ok(&["projections", "retry", "--tenant", "acme", "decisions"]);
    assert!(out.contains("cleared 0 stuck mark(s)"), "{out}");
    let (ok, _, stderr) = cli.run(&["projections", "retry", "nonsense"], None);
    assert!(
        !ok && stderr.contains("no projection is called"),
        "{stderr}"
    );
}

/// Runs the operator's commands end to end with debug logging — tenant, appends (with personal
/// data), key rotation, checkpoints, backup, restore of an older backup, the rollback refusal and
/// its acknowledgement, in-place verification, and the service itself — then scans everything
/// printed for the master key, the private signing keys, database passwords and personal data.
async fn operator_commands_work_end_to_end_and_log_no_secrets(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let mut cli = Cli::new(&db);
    let sqlite = !db.is_postgres();
    cli.ok(&["tenant", "create", "acme"]);
    let personal = "Jane Q. Doe, born 1970-01-01";
    let event = serde_json::json!({
        "event_id": uuid::Uuid::now_v7().to_string(),
        "event_type": "decision",
        "payload": auditex::cli::synthetic_decision(7),
        "erasable": { "applicant_name": personal },
    });
    let (ok, _, stderr) = cli.run(&["append", "--tenant", "acme"], Some(&format!("{event}\n")));
    assert!(ok, "{stderr}");
    cli.ok(&["append", "--tenant", "acme", "--generate", "40"]);
    cli.ok(&["key", "rotate", "--tenant", "acme"]);
    cli.ok(&["append", "--tenant", "acme", "--generate", "20"]);
    let note = cli.ok(&["checkpoint", "--tenant", "acme"]);
    assert!(
        note.contains("\n62\n"),
        "a checkpoint of 62 records: {note}"
    );

    if sqlite {
        let backup = cli.dir.path().join("backups/acme-1.db");
        let out = cli.ok(&["backup", backup.to_str().expect("utf-8")]);
        let summary: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(summary["tenants"][0]["records"], 62);
        let (ok, _, stderr) = cli.run(&["backup", backup.to_str().expect("utf-8")], None);
        assert!(!ok && stderr.contains("exists"), "{stderr}");
        cli.ok(&["append", "--tenant", "acme", "--generate", "10"]);
        cli.ok(&["checkpoint", "--tenant", "acme"]);
        let (ok, _, stderr) = cli.run(&["restore", backup.to_str().expect("utf-8")], None);
        assert!(!ok && stderr.contains("--force"), "{stderr}");
        let (ok, out, stderr) = cli.run(
            &["restore", "--force", backup.to_str().expect("utf-8")],
            None,
        );
        assert!(ok, "{stderr}");
        assert!(
            stderr.contains("HELD"),
            "the restore warns of the rollback: {stderr}"
        );
        let report: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(report["verification"]["tenants"][0]["records"], 62);

        let (ok, out, _) = cli.run(&["rollback", "status"], None);
        assert!(!ok, "status fails while a tenant is held");
        assert!(out.contains("\"behind\""), "{out}");
        let (ok, _, stderr) = cli.run(&["append", "--tenant", "acme", "--generate", "1"], None);
        assert!(!ok && stderr.contains("rollback acknowledge"), "{stderr}");
        let (ok, _, stderr) = cli.run(&["checkpoint", "--tenant", "acme"], None);
        assert!(
            !ok && stderr.contains("no checkpoint is published"),
            "{stderr}"
        );
        let out = cli.ok(&[
            "rollback",
            "acknowledge",
            "--tenant",
            "acme",
            "--reason",
            "restore drill",
        ]);
        let receipt: serde_json::Value = serde_json::from_str(&out).expect("receipt");
        assert_eq!(receipt["seq"], 62);
        cli.ok(&["rollback", "status"]);
        cli.ok(&["append", "--tenant", "acme", "--generate", "5"]);
    }
    let out = cli.ok(&["restore", "--verify-only"]);
    let verified: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        verified["tenants"][0]["records"],
        if sqlite { 68 } else { 62 }
    );

    // The service itself, briefly (plain HTTP on loopback for the test), stopped with SIGTERM.
    let mut serve = Service::start(&cli, &["--dev-plain-http"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let printed = serve.stop();
    cli.transcript.push_str(&printed);
    assert!(printed.contains("Ctrl-C"), "the service started: {printed}");

    assert!(
        cli.transcript.contains("DEBUG"),
        "the scan covers debug logging"
    );
    let mut secrets = Secrets(Vec::new());
    secrets.add("the master key", &hex::decode(&cli.key_hex).expect("hex"));
    for (i, key) in private_signing_keys(&db, &cli.master_key(), "acme")
        .await
        .iter()
        .enumerate()
    {
        secrets.add(&format!("private signing key {i}"), key);
    }
    for url in std::iter::once(&cli.database_url).chain(cli.admin_url.as_ref()) {
        if let Ok(parsed) = url::Url::parse(url)
            && let Some(password) = parsed.password()
        {
            secrets.add_text("a database password", password);
        }
    }
    secrets.add_text("personal data from an erasable field", personal);
    secret_scan::register("personal data from an erasable field", personal);
    assert!(
        secrets.0.len() >= 13,
        "the scan has the keys, passwords and personal data"
    );
    let found = secrets.found_in(&cli.transcript);
    assert!(found.is_none(), "the service printed a secret: {found:?}");
    // The scan itself works: a planted master key is found.
    let planted = format!("{}\nkey={}\n", cli.transcript, cli.key_hex.to_uppercase());
    assert_eq!(secrets.found_in(&planted), Some("the master key (HEX)"));
}

backend_tests!(
    operator_commands_work_end_to_end_and_log_no_secrets,
    cli_append_refuses_nul_and_projection_commands_report_nothing_stuck,
);

// ---------------------------------------------------------------------------------------------
// Documentation and repository hygiene, checked against the code

/// Every environment variable a command accepts.
fn settings() -> BTreeMap<String, String> {
    fn walk(cmd: &clap::Command, out: &mut BTreeMap<String, String>) {
        for arg in cmd.get_arguments() {
            if let Some(env) = arg.get_env() {
                out.insert(
                    env.to_string_lossy().into_owned(),
                    arg.get_long().unwrap_or_default().to_owned(),
                );
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, out);
        }
    }
    use clap::CommandFactory;
    let mut out = BTreeMap::new();
    walk(&auditex::cli::Cli::command(), &mut out);
    out
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_configuration_reference_documents_every_setting_and_nothing_else() {
    let docs = read("docs/OPERATIONS.md");
    let start = docs
        .find("<!-- settings:begin -->")
        .expect("the settings table is marked");
    let end = docs.find("<!-- settings:end -->").expect("end marker");
    let table = &docs[start..end];
    let settings = settings();
    assert!(settings.len() >= 10, "{settings:?}");
    for (env, flag) in &settings {
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("| `{env}`")))
            .unwrap_or_else(|| panic!("docs/OPERATIONS.md does not document {env}"));
        assert!(
            row.contains(&format!("`--{flag}`")),
            "the row of {env} names its flag --{flag}: {row}"
        );
    }
    // Read by the binary before the command line is parsed (logging), not flags.
    let main = read("src/main.rs");
    for line in table.lines().filter(|l| l.starts_with("| `AUDITEX_")) {
        let env = line
            .trim_start_matches("| `")
            .split('`')
            .next()
            .expect("a name");
        assert!(
            settings.contains_key(env) || main.contains(&format!("\"{env}\"")),
            "docs/OPERATIONS.md documents {env}, which nothing reads"
        );
    }
    for env in main
        .split('"')
        .filter(|w| w.starts_with("AUDITEX_") && !w.contains(' '))
    {
        assert!(
            table.contains(&format!("| `{env}`")),
            "docs/OPERATIONS.md does not document {env} (read in src/main.rs)"
        );
    }
}

#[test]
fn the_example_service_unit_uses_only_real_settings_and_commands() {
    let docs = read("docs/OPERATIONS.md");
    let start = docs
        .find("```ini\n[Unit]")
        .expect("the unit is in the docs");
    let unit = &docs[start + 7..];
    let unit = &unit[..unit.find("```").expect("end of the unit")];
    let settings = settings();
    let mut environment = 0;
    for line in unit.lines() {
        if let Some(rest) = line.strip_prefix("Environment=") {
            let name = rest.split('=').next().expect("name");
            assert!(
                settings.contains_key(name) || name == "RUST_LOG",
                "the unit sets {name}, which is not a setting"
            );
            environment += 1;
        }
        if let Some(exec) = line.strip_prefix("ExecStart=") {
            let mut words = exec.split_whitespace();
            assert!(words.next().is_some_and(|b| b.ends_with("/auditex")));
            assert_eq!(words.next(), Some("serve"));
        }
    }
    assert!(environment >= 3);
    for needle in [
        "NoNewPrivileges=yes",
        "UMask=0077",
        "ProtectSystem=strict",
        "LoadCredential=",
    ] {
        assert!(
            unit.contains(needle),
            "the unit hardens the service: {needle}"
        );
    }
    // Where systemd is installed, let it check the unit too.
    if let Ok(out) = Command::new("systemd-analyze").arg("--version").output()
        && out.status.success()
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("auditex.service");
        std::fs::write(&path, unit).expect("write");
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&path)
            .output()
            .expect("systemd-analyze");
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(
            !text.contains("Unknown key") && !text.contains("Unknown section"),
            "{text}"
        );
    }
}

#[test]
fn the_security_policy_and_the_help_name_the_same_contact() {
    let contact = auditex::config::SECURITY_CONTACT;
    let policy = read("SECURITY.md");
    assert!(policy.contains(contact));
    assert!(
        policy.contains("24 hours"),
        "reports are acknowledged within 24 hours"
    );
    assert!(
        policy.to_lowercase().contains("safe harbo"),
        "good-faith research is protected"
    );
    assert!(policy.contains("## Scope"));
    assert!(read("docs/OPERATIONS.md").contains(contact));
    let help = Command::new(env!("CARGO_BIN_EXE_auditex"))
        .arg("--help")
        .output()
        .expect("help");
    assert!(String::from_utf8_lossy(&help.stdout).contains(contact));
}

#[test]
fn the_repository_ignores_the_data_folder_and_every_key_file() {
    let root = repo_root();
    for path in [
        "data/auditex.db",
        "data/auditex.db-wal",
        "data/master.key",
        "data/checkpoints/acme.checkpoint",
        "data/tls/key.pem",
        "master.key",
        "tls.key",
        "server.pem",
        "secrets/session.key",
        "auditex.env",
        ".env",
        "backups/auditex-2026-11-29.db",
    ] {
        let status = Command::new("git")
            .args(["check-ignore", "-q", "--no-index", path])
            .current_dir(&root)
            .status()
            .expect("git");
        assert!(status.success(), ".gitignore does not cover {path}");
    }
    let tracked = Command::new("git")
        .args([
            "ls-files", "*.key", "*.pem", "*.p12", "*.pfx", ".env", "*.env",
        ])
        .current_dir(&root)
        .output()
        .expect("git ls-files");
    assert!(
        tracked.stdout.is_empty(),
        "key files are tracked: {}",
        String::from_utf8_lossy(&tracked.stdout)
    );
}
