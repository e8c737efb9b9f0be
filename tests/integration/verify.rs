//! Evidence and its verification, end to end: random untampered ledgers pass the service's
//! integrity check and `auditex verify` (the real binary) on their export, bundles and proof
//! files; the parallel export verifier agrees with the sequential reference on randomly damaged
//! exports; exit codes tell "tampered" from "could not read"; consistency, progress,
//! cancellation and the integrity-check record.
//!
//! The helpers here (a ledger built with a known master key, the binary run against it) are
//! shared with `tamper.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use auditex::store::crypto::MasterKey;
use auditex::store::{
    CancelFlag, DatabaseUrl, IntegrityOptions, IntegrityOutcome, IntegrityProgress, Store,
    StoreConfig,
};
use auditex::verify_cli::export::{ExportCheckError, ExportOptions, verify_export};
use ledger::draft::prepare_client_draft;
use ledger::export::ExportVerifier;
use ledger::note::VerifierKey;
use ledger::types::{Sequence, TenantId};
use rand::RngExt;
use serde_json::{Value, json};

use crate::support::{Backend, TestDb, backend_tests, decision_payload, new_event_id, tenant_id};

/// The `auditex` binary pointed at a test database, with a master key in a file.
pub struct Bin {
    pub dir: tempfile::TempDir,
    database_url: String,
    key_file: PathBuf,
    key_hex: String,
}

impl Bin {
    pub fn new(db: &TestDb) -> Bin {
        let dir = tempfile::tempdir().expect("temporary folder");
        let key_hex = hex::encode(rand::random::<[u8; 32]>());
        let key_file = dir.path().join("master.key");
        std::fs::write(&key_file, &key_hex).expect("write key file");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600))
                .expect("chmod key file");
        }
        let database_url = match &db.database {
            DatabaseUrl::Sqlite(path) => format!("sqlite:{}", path.display()),
            DatabaseUrl::Postgres(url) => url.clone(),
        };
        Bin {
            dir,
            database_url,
            key_file,
            key_hex,
        }
    }

    /// The master key, for tests that play an attacker who has stolen it.
    pub fn master_key(&self) -> MasterKey {
        MasterKey::from_hex(&self.key_hex, "test").expect("key")
    }

    /// A store configuration with this master key; checkpoints only on demand.
    pub fn store_config(&self, db: &TestDb) -> StoreConfig {
        let mut config = StoreConfig::new(db.database.clone(), self.master_key());
        config.checkpoint_interval = std::time::Duration::from_secs(3600);
        config
    }

    pub async fn open(&self, db: &TestDb) -> Store {
        Store::open_with_workers(self.store_config(db))
            .await
            .expect("store opens")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_auditex"));
        cmd.args(args)
            .env("AUDITEX_DATABASE_URL", &self.database_url)
            .env("AUDITEX_MASTER_KEY_FILE", &self.key_file)
            .env("AUDITEX_DATA_DIR", self.dir.path().join("data"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run auditex")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `auditex key history` into a file.
    pub fn key_history(&self, tenant: &TenantId) -> PathBuf {
        let out = self.run(&["key", "history", "--tenant", tenant.as_str()]);
        assert!(out.status.success(), "key history: {}", stderr(&out));
        let path = self.path(&format!("history-{}.json", rand::random::<u32>()));
        std::fs::write(&path, &out.stdout).expect("write history");
        path
    }

    /// `auditex export` into a fresh file; returns its path and whether the exporter noticed
    /// damage (a non-zero exit after writing).
    pub fn export(&self, tenant: &TenantId, from_seq: u64) -> (PathBuf, bool) {
        let path = self.path(&format!("export-{}.jsonl", rand::random::<u32>()));
        let out = self.run(&[
            "export",
            "--tenant",
            tenant.as_str(),
            "--from-seq",
            &from_seq.to_string(),
            "--output",
            path.to_str().expect("utf-8 path"),
        ]);
        assert!(
            path.exists(),
            "the export was not written: {}",
            stderr(&out)
        );
        (path, !out.status.success())
    }

    /// `auditex verify ARGS --json`: the exit code and the JSON printed.
    pub fn verify(&self, args: &[&str]) -> (i32, Value) {
        let mut all = vec!["verify"];
        all.extend_from_slice(args);
        all.push("--json");
        let out = self.run(&all);
        let code = out.status.code().expect("exit code");
        let value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "verify printed no JSON ({e}): {}{}",
                String::from_utf8_lossy(&out.stdout),
                stderr(&out)
            )
        });
        (code, value)
    }
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// A decision draft with an erasable field, or a follow-up of `decision`.
fn event(n: u64, decision: Option<&str>) -> ledger::draft::ClientDraft {
    let id = new_event_id();
    match decision {
        Some(d) if n.is_multiple_of(2) => prepare_client_draft(
            &id,
            "human_review",
            &json!({ "decision_id": d, "reviewer": "analyst-7", "action": "confirmed" }),
            &BTreeMap::new(),
            rand::random,
        ),
        Some(d) => prepare_client_draft(
            &id,
            "contest",
            &json!({ "decision_id": d, "channel": "letter" }),
            &BTreeMap::new(),
            rand::random,
        ),
        None => {
            let mut erasable = BTreeMap::new();
            if n.is_multiple_of(3) {
                erasable.insert("applicant_name".to_owned(), json!(format!("Applicant {n}")));
            }
            prepare_client_draft(
                &id,
                "decision",
                &decision_payload(&format!("outcome-{n}")),
                &erasable,
                rand::random,
            )
        }
    }
    .expect("valid draft")
}

/// What a random ledger holds.
pub struct Built {
    pub records: u64,
    /// Sizes of the checkpoints published, in order.
    pub checkpoints: Vec<u64>,
    /// Event ids of decisions.
    pub decisions: Vec<String>,
}

/// Appends `records` records in random batches, publishing a checkpoint after some batches and
/// at the end, rotating the key now and then, and linking follow-ups to earlier decisions.
pub async fn build_random(
    store: &Store,
    tenant: &TenantId,
    records: u64,
    rotations: bool,
) -> Built {
    let mut rng = rand::rng();
    let mut built = Built {
        records: 0,
        checkpoints: Vec::new(),
        decisions: Vec::new(),
    };
    while built.records < records {
        let batch = rng.random_range(1..=40u64).min(records - built.records);
        let mut drafts = Vec::new();
        for i in 0..batch {
            let n = built.records + i;
            let follow_up = !built.decisions.is_empty() && rng.random_range(0..4) == 0;
            let draft = if follow_up {
                let d = &built.decisions[rng.random_range(0..built.decisions.len())];
                event(n, Some(d))
            } else {
                let d = event(n, None);
                built.decisions.push(d.draft().event_id.to_string());
                d
            };
            drafts.push(draft);
        }
        store.append(tenant, drafts).await.expect("append");
        built.records += batch;
        if rotations && rng.random_range(0..12) == 0 && built.records < records {
            store.rotate_key(tenant).await.expect("rotate");
            built.records += 1;
        }
        if rng.random_range(0..3) == 0 {
            publish(store, tenant, &mut built).await;
        }
    }
    publish(store, tenant, &mut built).await;
    built
}

async fn publish(store: &Store, tenant: &TenantId, built: &mut Built) {
    store.publish_checkpoints().await.expect("publish");
    let latest = store
        .latest_checkpoint(tenant)
        .await
        .expect("latest")
        .expect("a checkpoint")
        .size
        .get();
    if built.checkpoints.last() != Some(&latest) {
        built.checkpoints.push(latest);
    }
}

async fn untampered_ledgers_verify_in_the_service_and_offline(backend: Backend) {
    let mut rng = rand::rng();
    for round in 0..3 {
        let db = TestDb::new(&backend).await;
        let bin = Bin::new(&db);
        let store = bin.open(&db).await;
        let tenant = tenant_id(&format!("bank-{round}"));
        store.create_tenant(&tenant).await.expect("tenant");
        let records = rng.random_range(1..400u64);
        let built = build_random(&store, &tenant, records, true).await;
        let total = store.tree_size(&tenant).await.expect("size").get();

        let (sender, receiver) = tokio::sync::watch::channel(IntegrityProgress::default());
        let report = store
            .check_integrity(
                &tenant,
                IntegrityOptions {
                    progress: Some(sender),
                    ..IntegrityOptions::default()
                },
            )
            .await
            .expect("integrity check runs");
        assert_eq!(report.outcome, IntegrityOutcome::Passed, "{report:?}");
        assert_eq!(report.first_failure, None);
        assert_eq!(report.records_checked, total);
        // Every published checkpoint is compared: those published after batches and any a key
        // rotation publishes for the old key.
        let published = store
            .checkpoints(&tenant, None, 10_000)
            .await
            .expect("checkpoints");
        assert!(published.len() >= built.checkpoints.len());
        assert_eq!(report.checkpoints_checked, published.len() as u64);
        let last = *receiver.borrow();
        assert!(last.done && last.checked == total, "{last:?}");

        let receipt = store
            .append_integrity_check(&tenant, &report)
            .await
            .expect("the report is filed");
        let filed = store
            .record(&tenant, Sequence::new(receipt.seq).expect("seq"))
            .await
            .expect("read")
            .expect("the record exists");
        let payload = filed.payload.to_value().expect("payload");
        assert_eq!(filed.event_type.as_str(), "integrity_check");
        assert_eq!(payload["outcome"], "passed");
        assert_eq!(payload["records_checked"], total);
        store.publish_checkpoints().await.expect("publish");
        store.shutdown().await;

        let history = bin.key_history(&tenant);
        let (export, damaged) = bin.export(&tenant, 0);
        assert!(!damaged);
        let (code, out) = bin.verify(&[
            "export",
            path_str(&export),
            "--key-history",
            path_str(&history),
        ]);
        assert_eq!(code, 0, "{out}");
        assert_eq!(out["verified"], true);
        assert_eq!(out["records"], total + 1);

        // A suffix export proves its range through the last record's inclusion proof.
        let from = rng.random_range(0..=total);
        let (suffix, _) = bin.export(&tenant, from);
        let (code, out) = bin.verify(&[
            "export",
            path_str(&suffix),
            "--key-history",
            path_str(&history),
        ]);
        assert_eq!(code, 0, "suffix from {from}: {out}");

        let decision = &built.decisions[rng.random_range(0..built.decisions.len())];
        let bundle = bin.path("bundle.json");
        let out = bin.run(&[
            "bundle",
            "--tenant",
            tenant.as_str(),
            "--decision",
            decision,
            "--output",
            path_str(&bundle),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let (code, out) = bin.verify(&[path_str(&bundle), "--key-history", path_str(&history)]);
        assert_eq!(code, 0, "{out}");
        assert_eq!(out["evidence"], "bundle");

        let seq = rng.random_range(0..total);
        let proof = bin.path("proof.txt");
        let out = bin.run(&[
            "proof",
            "--tenant",
            tenant.as_str(),
            "--seq",
            &seq.to_string(),
            "--output",
            path_str(&proof),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let (code, out) = bin.verify(&[path_str(&proof), "--key-history", path_str(&history)]);
        assert_eq!(code, 0, "record {seq}: {out}");
        assert_eq!(out["evidence"], "tlog-proof");
    }
}

async fn exit_codes_tell_tampered_from_unreadable(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let bin = Bin::new(&db);
    let store = bin.open(&db).await;
    let tenant = tenant_id("acme-bank");
    store.create_tenant(&tenant).await.expect("tenant");
    build_random(&store, &tenant, 50, false).await;
    store.shutdown().await;
    let history = bin.key_history(&tenant);
    let (export, _) = bin.export(&tenant, 0);
    let h = path_str(&history);

    let (code, out) = bin.verify(&["export", path_str(&export), "--key-history", h]);
    assert_eq!((code, &out["verified"]), (0, &json!(true)));

    // Could not read: a missing file, no trusted key.
    let (code, out) = bin.verify(&["export", "/nonexistent/export.jsonl", "--key-history", h]);
    assert_eq!(code, 2, "{out}");
    assert_eq!(out["error"], "could not read input");
    let (code, out) = bin.verify(&["export", path_str(&export)]);
    assert_eq!(code, 2, "{out}");
    // Read, but not evidence of the kind asked for: not verified (a changed byte can make an
    // export into "another kind" of file).
    let (code, out) = bin.verify(&["export", h, "--key-history", h]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out["failure"]["kind"], "malformed_header");
    let (code, out) = bin.verify(&[h, "--key-history", h]);
    assert_eq!(code, 1, "a key history is not evidence: {out}");
    assert_eq!(out["failure"]["kind"], "not_evidence");

    // Verification failed: a key of another log is not trusted.
    let stranger = VerifierKey::new(
        "auditex.local/ledger/acme-bank",
        ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key(),
    )
    .expect("vkey")
    .to_string();
    let (code, out) = bin.verify(&["export", path_str(&export), "--key", &stranger]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out["failure"]["kind"], "checkpoint_not_trusted");

    // Verification failed: one changed byte in record 17's payload, named with its event id.
    let text = std::fs::read_to_string(&export).expect("read");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let record: Value = serde_json::from_str(&lines[18]).expect("record 17");
    lines[18] = lines[18].replacen("outcome-", "outcomE-", 1);
    if lines[18] == text.lines().nth(18).unwrap_or_default() {
        lines[18] = lines[18].replacen("analyst-7", "analyst-8", 1);
        lines[18] = lines[18].replacen("\"letter\"", "\"letteR\"", 1);
    }
    let tampered = bin.path("tampered.jsonl");
    std::fs::write(&tampered, lines.join("\n") + "\n").expect("write");
    let (code, out) = bin.verify(&["export", path_str(&tampered), "--key-history", h]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out["failure"]["kind"], "hash_mismatch");
    assert_eq!(out["failure"]["seq"], 17);
    assert_eq!(out["failure"]["line"], 19);
    assert_eq!(out["failure"]["event_id"], record["event_id"]);
    assert!(out["failure"]["expected"].is_string() && out["failure"]["found"].is_string());

    // The human summary names the record too.
    let out = bin.run(&["verify", "export", path_str(&tampered), "--key-history", h]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("FAILED at record 17"), "{text}");
}

async fn consistency_accepts_growth_and_rejects_rollback_and_fork(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let bin = Bin::new(&db);
    let store = bin.open(&db).await;
    let tenant = tenant_id("acme-bank");
    store.create_tenant(&tenant).await.expect("tenant");
    build_random(&store, &tenant, 100, false).await;
    let old = store
        .latest_checkpoint(&tenant)
        .await
        .expect("cp")
        .expect("cp");
    build_random(&store, &tenant, 77, false).await;
    let new = store
        .latest_checkpoint(&tenant)
        .await
        .expect("cp")
        .expect("cp");
    store.shutdown().await;
    let history = bin.key_history(&tenant);
    let h = path_str(&history);
    let old_path = bin.path("old.checkpoint");
    let new_path = bin.path("new.checkpoint");
    std::fs::write(&old_path, &old.signed_note).expect("write");
    std::fs::write(&new_path, &new.signed_note).expect("write");
    let proof = bin.path("consistency.txt");
    let out = bin.run(&[
        "proof",
        "--tenant",
        tenant.as_str(),
        "--old-size",
        &old.size.to_string(),
        "--output",
        path_str(&proof),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    let args = |o: &Path, n: &Path, p: &Path| {
        vec![
            "consistency".to_owned(),
            "--old".into(),
            path_str(o).into(),
            "--new".into(),
            path_str(n).into(),
            "--proof".into(),
            path_str(p).into(),
            "--key-history".into(),
            h.into(),
        ]
    };
    let run = |a: Vec<String>| {
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        bin.verify(&refs)
    };
    let (code, out) = run(args(&old_path, &new_path, &proof));
    assert_eq!(code, 0, "{out}");
    // The proof can also come from an export from record 0.
    let (export, _) = bin.export(&tenant, 0);
    let (code, out) = run(args(&old_path, &new_path, &export));
    assert_eq!(code, 0, "{out}");
    // Swapped: the newer tree is smaller, a rollback.
    let (code, out) = run(args(&new_path, &old_path, &proof));
    assert_eq!(code, 1, "{out}");
    assert_eq!(out["failure"]["kind"], "rolled_back");
    // A wrong proof hash.
    let mut doc: Value =
        serde_json::from_slice(&std::fs::read(&proof).expect("read")).expect("json");
    let last = doc["proof"]
        .as_array()
        .and_then(|a| a.last())
        .and_then(Value::as_str)
        .expect("a hash")
        .to_owned();
    let flipped = format!(
        "{}{}",
        if last.starts_with('0') { "1" } else { "0" },
        &last[1..]
    );
    let n = doc["proof"].as_array().map_or(0, Vec::len);
    doc["proof"][n - 1] = Value::String(flipped);
    let bad = bin.path("bad-consistency.json");
    std::fs::write(&bad, doc.to_string()).expect("write");
    let (code, out) = run(args(&old_path, &new_path, &bad));
    assert_eq!(code, 1, "{out}");
    assert_eq!(out["failure"]["kind"], "inconsistent");
}

async fn a_check_reports_progress_and_can_be_cancelled(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let bin = Bin::new(&db);
    let store = bin.open(&db).await;
    let tenant = tenant_id("acme-bank");
    store.create_tenant(&tenant).await.expect("tenant");
    crate::support::append_many(&store, &tenant, 9000, 1000).await;
    store.publish_checkpoints().await.expect("publish");

    let cancel = CancelFlag::new();
    cancel.cancel();
    let report = store
        .check_integrity(
            &tenant,
            IntegrityOptions {
                cancel: cancel.clone(),
                ..IntegrityOptions::default()
            },
        )
        .await
        .expect("runs");
    assert_eq!(report.outcome, IntegrityOutcome::Cancelled);
    assert!(report.records_checked < 9000);
    let receipt = store
        .append_integrity_check(&tenant, &report)
        .await
        .expect("a cancelled check is filed too");
    let filed = store
        .record(&tenant, Sequence::new(receipt.seq).expect("seq"))
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        filed.payload.to_value().expect("payload")["outcome"],
        "cancelled"
    );

    // Cancelling from the progress callback stops the check part-way.
    let (sender, mut receiver) = tokio::sync::watch::channel(IntegrityProgress::default());
    let cancel = CancelFlag::new();
    let watcher = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while receiver.changed().await.is_ok() {
                let p = *receiver.borrow();
                seen.push(p);
                if p.checked > 0 {
                    cancel.cancel();
                }
            }
            seen
        })
    };
    let report = store
        .check_integrity(
            &tenant,
            IntegrityOptions {
                cancel,
                progress: Some(sender),
                ..IntegrityOptions::default()
            },
        )
        .await
        .expect("runs");
    let seen = watcher.await.expect("watcher");
    assert_eq!(report.outcome, IntegrityOutcome::Cancelled, "{report:?}");
    assert!(report.records_checked > 0 && report.records_checked < 9001);
    let last = seen.last().expect("progress was reported");
    assert!(last.done);
    assert_eq!(last.total, 9001);
    assert!(
        seen.iter()
            .any(|p| p.checked > 0 && p.records_per_second > 0.0)
    );
}

/// Damages an export text at random: a byte changed, a line dropped, duplicated or moved, or
/// the file cut short.
fn damage(text: &str, rng: &mut impl rand::Rng) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let n = lines.len();
    match rng.random_range(0..6) {
        0 => {
            let i = rng.random_range(0..n);
            let mut bytes = lines[i].clone().into_bytes();
            if !bytes.is_empty() {
                let j = rng.random_range(0..bytes.len());
                bytes[j] = b"0123456789abcdef\"{}:,x"[rng.random_range(0..22)];
            }
            lines[i] = String::from_utf8_lossy(&bytes).into_owned();
        }
        1 if n > 2 => {
            lines.remove(rng.random_range(1..n));
        }
        2 => {
            let i = rng.random_range(0..n);
            let l = lines[i].clone();
            lines.insert(i, l);
        }
        3 if n > 3 => {
            let i = rng.random_range(1..n - 1);
            let j = rng.random_range(1..n - 1);
            lines.swap(i, j);
        }
        4 => {
            lines.truncate(rng.random_range(0..n));
        }
        _ => {
            let i = rng.random_range(1..n);
            lines.insert(i, String::new());
        }
    }
    lines.join("\n") + "\n"
}

/// The sequential reference on `text`.
fn sequential(text: &str, trusted: &[VerifierKey]) -> Result<(), ledger::export::ExportError> {
    let mut v = ExportVerifier::new(trusted);
    for line in text.lines() {
        if v.push_line(line).is_err() {
            break;
        }
    }
    v.finish().map(|_| ())
}

/// The parallel verifier on `text`, cut into chunks of `chunk` records.
fn parallel(
    text: &str,
    trusted: &[VerifierKey],
    chunk: usize,
) -> Result<(), Option<ledger::export::ExportError>> {
    let options = ExportOptions {
        trusted,
        history: None,
        seen: &[],
        chunk_records: chunk,
    };
    match verify_export(text.as_bytes(), &options, &mut |_| {}, &|_| {}) {
        Ok(_) => Ok(()),
        Err(ExportCheckError::Failed { error, .. }) => Err(Some(error)),
        Err(_) => Err(None),
    }
}

async fn the_parallel_verifier_agrees_with_the_sequential_one(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let bin = Bin::new(&db);
    let store = bin.open(&db).await;
    let tenant = tenant_id("acme-bank");
    store.create_tenant(&tenant).await.expect("tenant");
    build_random(&store, &tenant, 120, true).await;
    let origin = store.origin(&tenant).await.expect("origin");
    let trusted: Vec<VerifierKey> = store
        .key_history(&tenant)
        .await
        .expect("keys")
        .intervals()
        .iter()
        .map(|k| VerifierKey::new(&origin, k.public_key).expect("vkey"))
        .collect();
    let mut texts = Vec::new();
    for from in [0, 37] {
        let mut out = Vec::new();
        store.export(&tenant, from, &mut out).await.expect("export");
        texts.push(String::from_utf8(out).expect("utf-8"));
    }
    store.shutdown().await;
    // Trailers that only a strict reading refuses, and refuses at its own place: both verifiers
    // read the trailer with the one strict reader, so both give the same error.
    let trailer_at = texts[0].trim_end().rfind('\n').expect("a trailer line") + 1;
    let (records, trailer) = texts[0].split_at(trailer_at);
    let proof_at = trailer.find("\"inclusion_proof\":[\"").expect("a proof") + 20;
    for bad in [
        trailer.replacen("{\"end\":{", "{\"end\":{\"records\":0,", 1),
        format!("{}{}", &trailer[..proof_at], &trailer[proof_at + 1..]),
    ] {
        let text = format!("{records}{bad}");
        let expected = sequential(&text, &trusted);
        assert!(expected.is_err(), "{bad}");
        for chunk in [1, 3, 64] {
            assert_eq!(
                parallel(&text, &trusted, chunk).err().flatten(),
                expected.clone().err(),
                "{bad}"
            );
        }
    }
    let mut rng = rand::rng();
    let mut failures = 0;
    // AUDITEX_TEST_DAMAGE_ROUNDS raises the number of damaged exports for a longer search.
    let rounds: usize = std::env::var("AUDITEX_TEST_DAMAGE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    for round in 0..rounds {
        let text = if round < 2 {
            texts[round].clone()
        } else {
            damage(&texts[round % 2], &mut rng)
        };
        let expected = sequential(&text, &trusted);
        for chunk in [1, 3, 64] {
            let got = parallel(&text, &trusted, chunk);
            match (&expected, got) {
                (Ok(()), Ok(())) => {}
                (Err(e), Err(Some(g))) => assert_eq!(&g, e, "chunk {chunk}:\n{text}"),
                // The parallel verifier refuses a header that is not an export at all before
                // judging it; the sequential one calls that a malformed header.
                (Err(e), Err(None)) => assert_eq!(e.line, 1, "chunk {chunk}: {e}"),
                (e, g) => panic!("chunk {chunk}: sequential {e:?}, parallel {g:?}\n{text}"),
            }
        }
        failures += usize::from(expected.is_err());
    }
    assert!(
        failures > 250,
        "most damaged exports must fail ({failures})"
    );
}

/// Writes `bytes` to a fresh file of the test folder.
fn write_file(bin: &Bin, name: &str, bytes: &[u8]) -> PathBuf {
    let path = bin.path(&format!("{}-{name}", rand::random::<u32>()));
    std::fs::write(&path, bytes).expect("write");
    path
}

/// Every tampered input of every `verify` subcommand exits 1 ("verification failed"); only a file
/// that cannot be opened, or an unusable command line, exits 2.
async fn every_tampered_input_exits_1_and_only_an_unreadable_file_exits_2(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let bin = Bin::new(&db);
    let store = bin.open(&db).await;
    let tenant = tenant_id("acme-bank");
    store.create_tenant(&tenant).await.expect("tenant");
    let built = build_random(&store, &tenant, 40, false).await;
    let old = store
        .latest_checkpoint(&tenant)
        .await
        .expect("cp")
        .expect("cp");
    build_random(&store, &tenant, 20, false).await;
    let new = store
        .latest_checkpoint(&tenant)
        .await
        .expect("cp")
        .expect("cp");
    store.shutdown().await;
    let history = bin.key_history(&tenant);
    let h = path_str(&history);
    let (export, _) = bin.export(&tenant, 0);
    let export_text = std::fs::read_to_string(&export).expect("read");
    let t = tenant.as_str();
    let produce = |args: &[&str], name: &str| {
        let path = bin.path(name);
        let mut all = args.to_vec();
        all.extend_from_slice(&["--tenant", t, "--output", path_str(&path)]);
        let out = bin.run(&all);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        std::fs::read(&path).expect("read")
    };
    let bundle = produce(
        &["bundle", "--decision", &built.decisions[0]],
        "bundle.json",
    );
    let proof = produce(&["proof", "--seq", "3"], "proof.txt");
    let consistency = produce(
        &["proof", "--old-size", &old.size.to_string()],
        "consistency.json",
    );
    // No consistency proof from a size at which no checkpoint was published: no one could
    // verify it.
    let unpublished = (1..old.size.get())
        .find(|s| !built.checkpoints.contains(s))
        .expect("a size without a checkpoint");
    let out = bin.run(&[
        "proof",
        "--tenant",
        t,
        "--old-size",
        &unpublished.to_string(),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!(
            "--old-size: no checkpoint was published at tree size {unpublished}"
        )),
        "{}",
        stderr(&out)
    );
    let old_note = old.signed_note.clone();
    let new_note = new.signed_note.clone();

    // Damage that keeps the file readable. Each entry: what, the damaged bytes.
    let note_damage = |note: &str| -> Vec<(&'static str, Vec<u8>)> {
        vec![
            (
                "no final newline",
                note.trim_end_matches('\n').as_bytes().to_vec(),
            ),
            ("one more final newline", format!("{note}\n").into_bytes()),
            (
                "CR LF line endings",
                note.replace('\n', "\r\n").into_bytes(),
            ),
            (
                "an extension line",
                note.replacen("\n\n", "\nextra\n\n", 1).into_bytes(),
            ),
            ("a leading blank line", format!("\n{note}").into_bytes()),
            ("not UTF-8", {
                let mut b = note.as_bytes().to_vec();
                b[0] = 0xff;
                b
            }),
            ("empty", Vec::new()),
        ]
    };
    let mut cases: Vec<(String, Vec<String>)> = Vec::new();
    let arg = |p: &Path| p.to_str().expect("utf-8").to_owned();
    let (old_file, new_file, proof_file) = (
        write_file(&bin, "old.cp", old_note.as_bytes()),
        write_file(&bin, "new.cp", new_note.as_bytes()),
        write_file(&bin, "c.json", &consistency),
    );
    let consistency_args = |o: &Path, n: &Path, p: &Path| {
        vec![
            "consistency".to_owned(),
            "--old".into(),
            arg(o),
            "--new".into(),
            arg(n),
            "--proof".into(),
            arg(p),
        ]
    };
    for (what, bytes) in note_damage(&new_note) {
        let damaged = write_file(&bin, "new.cp", &bytes);
        cases.push((
            format!("consistency, newer checkpoint: {what}"),
            consistency_args(&old_file, &damaged, &proof_file),
        ));
        cases.push((
            format!("export --checkpoint: {what}"),
            vec![
                "export".into(),
                arg(&export),
                "--checkpoint".into(),
                arg(&damaged),
            ],
        ));
    }
    let consistency_text = String::from_utf8(consistency.clone()).expect("utf-8");
    let proof_damage: Vec<(&str, String)> = vec![
        (
            "the old one-hash-per-line form",
            serde_json::from_str::<Value>(&consistency_text).expect("json")["proof"]
                .as_array()
                .expect("proof")
                .iter()
                .map(|h| format!("{}\n", h.as_str().expect("hex")))
                .collect(),
        ),
        (
            "an unknown member",
            consistency_text.replacen('{', "{\"note\":1,", 1),
        ),
        (
            "a duplicate member",
            consistency_text.replacen('{', &format!("{{\"from\":{},", old.size), 1),
        ),
        (
            "a fractional size",
            consistency_text.replacen(
                &format!("\"from\":{}", old.size),
                &format!("\"from\":{}.0", old.size),
                1,
            ),
        ),
        ("upper-case hex", {
            let doc: Value = serde_json::from_str(&consistency_text).expect("json");
            let first = doc["proof"][0].as_str().expect("hex").to_owned();
            consistency_text.replacen(&first, &first.to_uppercase(), 1)
        }),
        (
            "truncated",
            consistency_text[..consistency_text.len() / 2].to_owned(),
        ),
        ("not a proof at all", "hello\n".into()),
    ];
    for (what, text) in proof_damage {
        let damaged = write_file(&bin, "c.json", text.as_bytes());
        cases.push((
            format!("consistency proof: {what}"),
            consistency_args(&old_file, &new_file, &damaged),
        ));
    }
    let proof_text = String::from_utf8(proof.clone()).expect("utf-8");
    for (what, text) in [
        (
            "header line changed",
            proof_text.replacen("tlog-proof@v1", "tlog-proof@v2", 1),
        ),
        (
            "the checkpoint's final newline dropped",
            proof_text.trim_end_matches('\n').to_owned(),
        ),
        ("CR LF line endings", proof_text.replace('\n', "\r\n")),
        ("a blank line first", format!("\n{proof_text}")),
        ("a checkpoint alone", new_note.clone()),
        ("empty", String::new()),
    ] {
        let damaged = write_file(&bin, "proof.txt", text.as_bytes());
        cases.push((
            format!("proof: {what}"),
            vec!["proof".into(), arg(&damaged)],
        ));
        cases.push((format!("any kind, proof: {what}"), vec![arg(&damaged)]));
    }
    let bundle_text = String::from_utf8(bundle.clone()).expect("utf-8");
    for (what, text) in [
        (
            "format changed",
            bundle_text.replacen("custody-bundle/v1", "custody-bundle/v2", 1),
        ),
        ("truncated", bundle_text[..bundle_text.len() / 2].to_owned()),
        ("not JSON", format!("x{bundle_text}")),
        ("empty", String::new()),
    ] {
        let damaged = write_file(&bin, "bundle.json", text.as_bytes());
        cases.push((
            format!("bundle: {what}"),
            vec!["bundle".into(), arg(&damaged)],
        ));
    }
    for (what, text) in [
        (
            "format changed",
            export_text.replacen("export/v1", "export/v2", 1),
        ),
        ("header not JSON", format!("x{export_text}")),
        ("CR LF line endings", export_text.replace('\n', "\r\n")),
        (
            "a blank line after the header",
            export_text.replacen('\n', "\n\n", 1),
        ),
        (
            "no final newline",
            export_text.trim_end_matches('\n').to_owned(),
        ),
        ("empty", String::new()),
        (
            "a key history",
            std::fs::read_to_string(&history).expect("read"),
        ),
    ] {
        let damaged = write_file(&bin, "export.jsonl", text.as_bytes());
        cases.push((
            format!("export: {what}"),
            vec!["export".into(), arg(&damaged)],
        ));
    }
    let mut wrong = Vec::new();
    for (what, mut args) in cases {
        args.extend(["--key-history".to_owned(), h.to_owned()]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out) = bin.verify(&refs);
        if code != 1 {
            wrong.push(format!("{what}: exit {code}: {out}"));
        }
    }
    assert!(wrong.is_empty(), "not exit 1:\n{}", wrong.join("\n"));

    // Exit 2: a file that cannot be opened, in every position.
    let absent = bin.path("absent");
    let unreadable: Vec<Vec<String>> = vec![
        vec!["export".into(), arg(&absent)],
        vec!["bundle".into(), arg(&absent)],
        vec!["proof".into(), arg(&absent)],
        vec![arg(&absent)],
        consistency_args(&absent, &new_file, &proof_file),
        consistency_args(&old_file, &absent, &proof_file),
        consistency_args(&old_file, &new_file, &absent),
        vec![
            "export".into(),
            arg(&export),
            "--checkpoint".into(),
            arg(&absent),
        ],
    ];
    for mut args in unreadable {
        args.extend(["--key-history".to_owned(), h.to_owned()]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out) = bin.verify(&refs);
        assert_eq!(code, 2, "{args:?}: {out}");
    }
    // And the untampered evidence verifies, so the cases above failed for their damage.
    for args in [
        consistency_args(&old_file, &new_file, &proof_file),
        vec![
            "export".into(),
            arg(&export),
            "--checkpoint".into(),
            arg(&old_file),
        ],
    ] {
        let mut args = args;
        args.extend(["--key-history".to_owned(), h.to_owned()]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out) = bin.verify(&refs);
        assert_eq!(code, 0, "{args:?}: {out}");
    }
}

/// `verify consistency` enforces checkpoint key intervals (FORMAT.md section 9): a retired key
/// that signs a checkpoint of a size past its `until_seq` is rejected, whatever the proof.
#[test]
fn a_retired_key_cannot_vouch_for_a_later_tree_size_in_verify_consistency() {
    use ledger::checkpoint::{Checkpoint, sign_checkpoint};
    use ledger::keys::{KeyHistory, KeyId, KeyInterval, KeyRing};
    use ledger::merkle::{leaf_hash, node_hash};
    use ledger::note::NoteSigner;
    use ledger::types::{Hash, TreeSize};

    let dir = tempfile::tempdir().expect("tempdir");
    let origin = "auditex.test/ledger/acme-bank";
    let retired = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let current = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
    let interval = |k: &ed25519_dalek::SigningKey, from_seq, until_seq| KeyInterval {
        key_id: KeyId::of(&k.verifying_key()),
        public_key: k.verifying_key(),
        from_seq,
        until_seq,
    };
    // The retired key signed record 0 and checkpoints of sizes 0 and 1; the current key from 1.
    let ring = KeyRing::new(vec![
        interval(&retired, 0, Some(1)),
        interval(&current, 1, None),
    ])
    .expect("ring");
    let history = dir.path().join("history.json");
    std::fs::write(
        &history,
        serde_json::to_string(&KeyHistory::of(origin, &ring).expect("history")).expect("json"),
    )
    .expect("write");
    let (l0, l1) = (
        leaf_hash(Hash::from_bytes([1; 32]).as_bytes()),
        leaf_hash(Hash::from_bytes([2; 32]).as_bytes()),
    );
    let note = |size: u64, root: Hash, key: &ed25519_dalek::SigningKey| {
        let c = Checkpoint::new(origin, TreeSize::new(size), root).expect("checkpoint");
        sign_checkpoint(&c, &[NoteSigner::new(origin, key).expect("signer")]).expect("sign")
    };
    let run = |new_key: &ed25519_dalek::SigningKey| {
        let old_note = note(1, l0, &retired);
        let new_note = note(2, node_hash(l0, l1), new_key);
        let proof = ledger::consistency_file::ConsistencyProofFile::new(
            1,
            2,
            vec![l1],
            old_note.clone(),
            new_note.clone(),
        );
        let paths = [
            ("old", old_note),
            ("new", new_note),
            ("proof", proof.to_json()),
        ]
        .map(|(name, text)| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).expect("write");
            p
        });
        let out = Command::new(env!("CARGO_BIN_EXE_auditex"))
            .args(["verify", "consistency", "--old"])
            .arg(&paths[0])
            .arg("--new")
            .arg(&paths[1])
            .arg("--proof")
            .arg(&paths[2])
            .arg("--key-history")
            .arg(&history)
            .arg("--json")
            .output()
            .expect("run auditex verify");
        let value: Value = serde_json::from_slice(&out.stdout).expect("json");
        (out.status.code(), value)
    };
    let (code, out) = run(&current);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = run(&retired);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(out["failure"]["kind"], "checkpoint_key_outside_interval");
    assert!(
        out["failure"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("the new checkpoint (size 2)")),
        "{out}"
    );
}

/// A decision with an erasable applicant name and an `erasure` record of that name: `auditex
/// verify` accepts the decision's bundle with the name marked erased by that record (held in the
/// bundle with its inclusion proof), reports which record erased it, and rejects a mark naming
/// the decision itself or the held review.
async fn a_bundle_marking_a_field_erased_verifies_offline_and_names_the_erasure(backend: Backend) {
    use ledger::bundle::ErasedField;
    use ledger::record::FieldName;
    use ledger::types::EventId;

    let db = TestDb::new(&backend).await;
    let bin = Bin::new(&db);
    let store = bin.open(&db).await;
    let tenant = tenant_id("acme-bank");
    store.create_tenant(&tenant).await.expect("tenant");
    let decision_id = new_event_id();
    let erasable = BTreeMap::from([("applicant_name".to_owned(), json!("Jane Q. Doe"))]);
    let drafts = vec![
        prepare_client_draft(
            &decision_id,
            "decision",
            &decision_payload("approved"),
            &erasable,
            rand::random,
        ),
        prepare_client_draft(
            &new_event_id(),
            "human_review",
            &json!({ "decision_id": decision_id, "reviewer": "analyst-7", "action": "confirmed" }),
            &BTreeMap::new(),
            rand::random,
        ),
        prepare_client_draft(
            &new_event_id(),
            "erasure",
            &json!({
                "subject_ref": "subj-4711",
                "reason": "erasure requested by the data subject",
                "event_ids": [decision_id],
                "fields": ["applicant_name"],
            }),
            &BTreeMap::new(),
            rand::random,
        ),
        // Another subject's whole-subject erasure: it names no records, so it erased nothing of
        // this decision and cannot prove a mark on it.
        prepare_client_draft(
            &new_event_id(),
            "erasure",
            &json!({"subject_ref": "subj-other", "reason": "erasure requested"}),
            &BTreeMap::new(),
            rand::random,
        ),
    ]
    .into_iter()
    .collect::<Result<Vec<_>, _>>()
    .expect("valid drafts");
    let receipts = store.append(&tenant, drafts).await.expect("append");
    let (decision_seq, review_seq, erasure_seq, other_seq) = (
        receipts[0].seq,
        receipts[1].seq,
        receipts[2].seq,
        receipts[3].seq,
    );
    store.publish_checkpoints().await.expect("publish");
    let other_record = store
        .record(&tenant, Sequence::new(other_seq).expect("seq"))
        .await
        .expect("read")
        .expect("the other subject's erasure");
    let bundle = store
        .custody_bundle(&tenant, EventId::parse(&decision_id).expect("event id"))
        .await
        .expect("bundle");
    let size = ledger::types::TreeSize::new(other_seq + 1);
    let other_entry = ledger::bundle::BundleEntry {
        inclusion_proof: store
            .inclusion_proof(&tenant, other_record.seq.leaf_index(), size)
            .await
            .expect("proof"),
        record: other_record,
        erasable_values: None,
        erased: None,
    };
    store.shutdown().await;
    let applicant = FieldName::parse("applicant_name").expect("name");
    // The store itself marks the field erased, withholds nothing else, and holds the erasure
    // record that proves the mark.
    assert_eq!(bundle.entries[0].erasable_values, None);
    assert_eq!(
        bundle.entries[0].erased,
        Some(BTreeMap::from([(
            applicant.clone(),
            ErasedField {
                erasure_seq: Sequence::new(erasure_seq).expect("seq"),
            },
        )]))
    );
    assert_eq!(
        bundle
            .entries
            .iter()
            .map(|e| e.record.seq.get())
            .collect::<Vec<_>>(),
        vec![decision_seq, review_seq, erasure_seq]
    );
    assert!(!bundle.to_json().contains("Jane Q. Doe"));
    let as_served = bin.path("bundle-as-served.json");
    std::fs::write(&as_served, bundle.to_json()).expect("write bundle");
    let history = bin.key_history(&tenant);
    let (code, out) = bin.verify(&[
        "bundle",
        path_str(&as_served),
        "--key-history",
        path_str(&history),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out["proven"]
            .to_string()
            .contains(&format!("1 erased (applicant_name by seq {erasure_seq})")),
        "{out}"
    );
    let marked = |erasure_seq: u64| {
        let mut b = bundle.clone();
        b.entries[0].erasable_values = None;
        b.entries[0].erased = Some(BTreeMap::from([(
            applicant.clone(),
            ErasedField {
                erasure_seq: Sequence::new(erasure_seq).expect("seq"),
            },
        )]));
        let path = bin.path(&format!("bundle-{erasure_seq}.json"));
        std::fs::write(&path, b.to_json()).expect("write bundle");
        path
    };
    let history = bin.key_history(&tenant);
    let h = path_str(&history);

    let good = marked(erasure_seq);
    let (code, out) = bin.verify(&["bundle", path_str(&good), "--key-history", h]);
    assert_eq!(code, 0, "{out}");
    let proven: Vec<&str> = out["proven"]
        .as_array()
        .expect("proven")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        proven.contains(&format!(
            "record {decision_seq} (decision {decision_id}); erasable values: 0 matched their commitments, 0 absent (withheld), 1 erased (applicant_name by seq {erasure_seq})"
        ).as_str()),
        "{out}"
    );

    // Another subject's erasure, held in the bundle, named for this decision's field.
    let mut b = bundle.clone();
    b.entries[0].erasable_values = None;
    b.entries[0].erased = Some(BTreeMap::from([(
        applicant.clone(),
        ErasedField {
            erasure_seq: Sequence::new(other_seq).expect("seq"),
        },
    )]));
    b.entries.retain(|e| e.record.seq.get() != erasure_seq);
    b.entries.push(other_entry);
    let forged = bin.path("bundle-other-subject.json");
    std::fs::write(&forged, b.to_json()).expect("write bundle");
    let (code, out) = bin.verify(&["bundle", path_str(&forged), "--key-history", h]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out["failure"]["seq"], other_seq, "{out}");
    assert!(
        out["failure"]["message"].as_str().is_some_and(|m| m.contains(&format!(
            "is named as the erasure of field applicant_name of record {decision_seq}, but its subject_ref do not include it"
        ))),
        "{out}"
    );

    for (named, failing_seq, message) in [
        (
            decision_seq,
            decision_seq,
            format!(
                "record {decision_seq}: field applicant_name is marked erased by record {decision_seq}, which does not come after it"
            ),
        ),
        (
            review_seq,
            review_seq,
            format!(
                "is named as the erasure of field applicant_name of record {decision_seq}, but is a human_review event"
            ),
        ),
    ] {
        let bad = marked(named);
        let (code, out) = bin.verify(&["bundle", path_str(&bad), "--key-history", h]);
        assert_eq!(code, 1, "{out}");
        assert_eq!(out["failure"]["kind"], "erased_field", "{out}");
        assert_eq!(out["failure"]["seq"], failing_seq, "{out}");
        assert!(
            out["failure"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(&message)),
            "{out}"
        );
    }
}

backend_tests!(
    a_bundle_marking_a_field_erased_verifies_offline_and_names_the_erasure,
    every_tampered_input_exits_1_and_only_an_unreadable_file_exits_2,
    untampered_ledgers_verify_in_the_service_and_offline,
    exit_codes_tell_tampered_from_unreadable,
    consistency_accepts_growth_and_rejects_rollback_and_fork,
    a_check_reports_progress_and_can_be_cancelled,
    the_parallel_verifier_agrees_with_the_sequential_one,
);
