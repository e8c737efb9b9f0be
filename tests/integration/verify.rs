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
        Store::open(self.store_config(db))
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

    // Could not read: a missing file, a file of another kind, no trusted key.
    let (code, out) = bin.verify(&["export", "/nonexistent/export.jsonl", "--key-history", h]);
    assert_eq!(code, 2, "{out}");
    assert_eq!(out["error"], "could not read input");
    let (code, _) = bin.verify(&["export", h, "--key-history", h]);
    assert_eq!(code, 2);
    let (code, out) = bin.verify(&["export", path_str(&export)]);
    assert_eq!(code, 2, "{out}");
    let (code, _) = bin.verify(&[h, "--key-history", h]);
    assert_eq!(code, 2, "a key history is not evidence");

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
    let text = std::fs::read_to_string(&proof).expect("read");
    let bad = bin.path("bad-consistency.txt");
    let last = text.lines().last().expect("a hash").to_owned();
    let flipped = format!(
        "{}{}",
        if last.starts_with('0') { "1" } else { "0" },
        &last[1..]
    );
    std::fs::write(&bad, text.replace(&last, &flipped)).expect("write");
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

backend_tests!(
    untampered_ledgers_verify_in_the_service_and_offline,
    exit_codes_tell_tampered_from_unreadable,
    consistency_accepts_growth_and_rejects_rollback_and_fork,
    a_check_reports_progress_and_can_be_cancelled,
    the_parallel_verifier_agrees_with_the_sequential_one,
);
