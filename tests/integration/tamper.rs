//! Tampering that bypasses the application and the database's own protections, and its
//! detection. Each test builds a ledger, then changes the database directly — on SQLite through a
//! raw connection after dropping the append-only triggers, on PostgreSQL as the schema owner
//! with the tables' triggers disabled (`ALTER TABLE … DISABLE TRIGGER USER`; the test owner is
//! not a superuser, but owning the tables is all an insider needs) — and checks that both the
//! service's integrity check and `auditex verify` on a fresh export (the real binary) detect it
//! and name the first affected sequence number.

use std::path::PathBuf;

use auditex::store::rollback::RollbackProblem;
use auditex::store::{IntegrityFailureKind, IntegrityOptions, IntegrityOutcome, Store};
use ed25519_dalek::SigningKey;
use ledger::checkpoint::{Checkpoint, sign_checkpoint};
use ledger::keys::{KeyId, RecordSigner};
use ledger::merkle::{leaf_hash, verify_inclusion};
use ledger::note::NoteSigner;
use ledger::record::Record;
use ledger::types::{Hash, LeafIndex, Sequence, TenantId, TreeSize};
use serde_json::Value;
use sqlx::{AssertSqlSafe, Connection};

use crate::support::{Backend, TestDb, backend_tests, tenant_id};
use crate::verify::{Bin, path_str};

const TENANT: &str = "acme-bank";

/// A raw connection that bypasses the append-only protections.
enum Raw {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Raw {
    async fn connect(db: &TestDb) -> Raw {
        if db.is_postgres() {
            let mut c = sqlx::PgConnection::connect(db.postgres_owner_url())
                .await
                .expect("connect as the owner");
            for table in ["records", "checkpoints", "merkle_nodes"] {
                sqlx::query(AssertSqlSafe(format!(
                    "ALTER TABLE {table} DISABLE TRIGGER USER"
                )))
                .execute(&mut c)
                .await
                .expect("the owner disables the append-only triggers");
            }
            sqlx::query("SELECT set_config('app.tenant_id', $1, false)")
                .bind(TENANT)
                .execute(&mut c)
                .await
                .expect("set the tenant for row-level security");
            Raw::Postgres(c)
        } else {
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(db.sqlite_path())
                .foreign_keys(false);
            let mut c = sqlx::SqliteConnection::connect_with(&options)
                .await
                .expect("raw SQLite connection");
            for trigger in [
                "records_no_update",
                "records_no_delete",
                "checkpoints_no_update",
                "checkpoints_no_delete",
            ] {
                sqlx::query(AssertSqlSafe(format!("DROP TRIGGER {trigger}")))
                    .execute(&mut c)
                    .await
                    .expect("drop trigger");
            }
            Raw::Sqlite(c)
        }
    }

    /// A byte-string literal in this dialect.
    fn blob(&self, bytes: &[u8]) -> String {
        match self {
            Raw::Sqlite(_) => format!("X'{}'", hex::encode(bytes)),
            Raw::Postgres(_) => format!("'\\x{}'::bytea", hex::encode(bytes)),
        }
    }

    async fn exec(&mut self, sql: &str) {
        let result = match self {
            Raw::Sqlite(c) => sqlx::query(AssertSqlSafe(sql.to_owned()))
                .execute(c)
                .await
                .map(|_| ()),
            Raw::Postgres(c) => sqlx::query(AssertSqlSafe(sql.to_owned()))
                .execute(c)
                .await
                .map(|_| ()),
        };
        result.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn text(&mut self, sql: &str) -> String {
        let result = match self {
            Raw::Sqlite(c) => {
                sqlx::query_scalar(AssertSqlSafe(sql.to_owned()))
                    .fetch_one(c)
                    .await
            }
            Raw::Postgres(c) => {
                sqlx::query_scalar(AssertSqlSafe(sql.to_owned()))
                    .fetch_one(c)
                    .await
            }
        };
        result.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn bytes(&mut self, sql: &str) -> Vec<u8> {
        let result = match self {
            Raw::Sqlite(c) => {
                sqlx::query_scalar(AssertSqlSafe(sql.to_owned()))
                    .fetch_one(c)
                    .await
            }
            Raw::Postgres(c) => {
                sqlx::query_scalar(AssertSqlSafe(sql.to_owned()))
                    .fetch_one(c)
                    .await
            }
        };
        result.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Moves records `from..` up by `by` places (two steps, so that no key collides).
    async fn shift(&mut self, from: u64, by: i64) {
        const AWAY: i64 = 1_000_000_000;
        self.exec(&format!(
            "UPDATE records SET seq = seq + {AWAY} WHERE tenant_id = '{TENANT}' AND seq >= {from}"
        ))
        .await;
        self.exec(&format!(
            "UPDATE records SET seq = seq - {AWAY} + ({by}) WHERE tenant_id = '{TENANT}' AND seq >= {AWAY}"
        ))
        .await;
    }

    /// Overwrites the row of `record.seq` with `record`'s fields.
    async fn write_record(&mut self, record: &Record) {
        let seq = record.seq.get();
        self.exec(&format!(
            "DELETE FROM records WHERE tenant_id = '{TENANT}' AND seq = {seq}"
        ))
        .await;
        let sql = format!(
            "INSERT INTO records (tenant_id, seq, event_id, event_type, captured_at_us, prev, hash, key_id, sig, payload, erasable)
             VALUES ('{TENANT}', {seq}, '{}', '{}', {}, {}, {}, '{}', {}, '{}', '{}')",
            record.event_id,
            record.event_type.as_str(),
            record.captured_at_us.unix_micros(),
            self.blob(record.prev.as_bytes()),
            self.blob(record.hash.as_bytes()),
            record.key_id,
            self.blob(&record.sig.to_bytes()),
            record.payload.as_str().replace('\'', "''"),
            serde_json::to_string(&record.erasable).expect("json"),
        );
        self.exec(&sql).await;
    }

    /// The tenant's private signing key `key_id`, opened with the stolen master key.
    async fn signing_key(&mut self, bin: &Bin, key_id: KeyId) -> SigningKey {
        let sealed = self
            .bytes(&format!(
                "SELECT sealed_secret FROM signing_keys WHERE tenant_id = '{TENANT}' AND key_id = '{key_id}'"
            ))
            .await;
        let secret = auditex::store::crypto::MasterKeys::from(bin.master_key())
            .open(
                &auditex::store::crypto::SealContext::signing_key(
                    &TenantId::parse(TENANT).expect("tenant"),
                    key_id,
                ),
                &sealed,
            )
            .expect("the master key opens the signing key");
        SigningKey::from_bytes(&secret.try_into().expect("32 bytes"))
    }
}

/// A ledger of `records` records with checkpoints published after each `every` records, and
/// everything needed to tamper with it and check it.
struct Ledger {
    db: TestDb,
    bin: Bin,
    store: Store,
    tenant: TenantId,
    /// The key history printed before tampering (what a regulator already holds).
    history: PathBuf,
}

async fn ledger(backend: &Backend, records: u64, every: u64, rotate_at: Option<u64>) -> Ledger {
    let db = TestDb::new(backend).await;
    let bin = Bin::new(&db);
    let store = bin.open(&db).await;
    let tenant = tenant_id(TENANT);
    store.create_tenant(&tenant).await.expect("tenant");
    let mut written = 0;
    while written < records {
        if rotate_at == Some(written) {
            store.rotate_key(&tenant).await.expect("rotate");
            written += 1;
            continue;
        }
        let n = every.min(records - written);
        store
            .append(
                &tenant,
                crate::support::decisions(usize::try_from(n).expect("fits")),
            )
            .await
            .expect("append");
        written += n;
        store.publish_checkpoints().await.expect("publish");
    }
    let history = bin.key_history(&tenant);
    Ledger {
        db,
        bin,
        store,
        tenant,
        history,
    }
}

impl Ledger {
    async fn raw(&self) -> Raw {
        Raw::connect(&self.db).await
    }

    async fn record(&self, seq: u64) -> Record {
        self.store
            .record(&self.tenant, Sequence::new(seq).expect("seq"))
            .await
            .expect("read")
            .expect("exists")
    }

    async fn latest_note(&self) -> String {
        self.store
            .latest_checkpoint(&self.tenant)
            .await
            .expect("latest")
            .expect("a checkpoint")
            .signed_note
    }

    /// Runs the service's check (with `seen` checkpoints) and asserts that it fails at `seq`.
    async fn assert_check_fails(&self, seen: &[String], seq: u64, kinds: &[IntegrityFailureKind]) {
        let report = self
            .store
            .check_integrity(
                &self.tenant,
                IntegrityOptions {
                    seen_checkpoints: seen.to_vec(),
                    ..IntegrityOptions::default()
                },
            )
            .await
            .expect("the check runs");
        assert_eq!(report.outcome, IntegrityOutcome::Failed, "{report:#?}");
        let failure = report.first_failure.expect("a failure");
        assert_eq!(failure.seq, seq, "{failure:#?}");
        assert!(kinds.contains(&failure.kind), "{failure:#?}");
    }

    /// Exports with the binary and verifies the export with the binary; asserts that
    /// verification fails (exit code 1) at `seq` with one of `kinds`.
    fn assert_export_fails(&self, seen: &[String], seq: u64, kinds: &[&str]) -> Value {
        let (export, _) = self.bin.export(&self.tenant, 0);
        let mut args = vec![
            "export".to_owned(),
            path_str(&export).to_owned(),
            "--key-history".into(),
            path_str(&self.history).into(),
        ];
        for (i, note) in seen.iter().enumerate() {
            let path = self.bin.path(&format!("seen-{i}.checkpoint"));
            std::fs::write(&path, note).expect("write checkpoint");
            args.push("--checkpoint".into());
            args.push(path_str(&path).into());
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out) = self.bin.verify(&refs);
        assert_eq!(code, 1, "{out:#}");
        assert_eq!(out["failure"]["seq"], seq, "{out:#}");
        let kind = out["failure"]["kind"].as_str().expect("kind");
        assert!(kinds.contains(&kind), "{out:#}");
        out
    }
}

use IntegrityFailureKind as K;

async fn a_changed_payload_byte_is_detected(backend: Backend) {
    let l = ledger(&backend, 60, 20, None).await;
    let event_id = l.record(33).await.event_id;
    let mut raw = l.raw().await;
    let payload = raw
        .text(&format!(
            "SELECT payload FROM records WHERE tenant_id = '{TENANT}' AND seq = 33"
        ))
        .await;
    let changed = payload.replacen("outcome-", "outcomf-", 1);
    assert_ne!(changed, payload);
    raw.exec(&format!(
        "UPDATE records SET payload = '{changed}' WHERE tenant_id = '{TENANT}' AND seq = 33"
    ))
    .await;
    l.assert_check_fails(&[], 33, &[K::HashMismatch]).await;
    let out = l.assert_export_fails(&[], 33, &["hash_mismatch"]);
    assert_eq!(out["failure"]["event_id"], event_id.to_string());
}

async fn a_changed_capture_time_is_detected(backend: Backend) {
    let l = ledger(&backend, 60, 20, None).await;
    let mut raw = l.raw().await;
    raw.exec(&format!(
        "UPDATE records SET captured_at_us = captured_at_us + 1 WHERE tenant_id = '{TENANT}' AND seq = 7"
    ))
    .await;
    l.assert_check_fails(&[], 7, &[K::HashMismatch]).await;
    l.assert_export_fails(&[], 7, &["hash_mismatch"]);
}

async fn two_swapped_records_are_detected(backend: Backend) {
    let l = ledger(&backend, 60, 20, None).await;
    let mut raw = l.raw().await;
    for (from, to) in [(12, 1_000_000_000), (41, 12), (1_000_000_000, 41)] {
        raw.exec(&format!(
            "UPDATE records SET seq = {to} WHERE tenant_id = '{TENANT}' AND seq = {from}"
        ))
        .await;
    }
    l.assert_check_fails(&[], 12, &[K::BrokenLink]).await;
    l.assert_export_fails(&[], 12, &["broken_link"]);
}

async fn a_deleted_middle_record_is_detected(backend: Backend) {
    let l = ledger(&backend, 60, 20, None).await;
    let mut raw = l.raw().await;
    raw.exec(&format!(
        "DELETE FROM records WHERE tenant_id = '{TENANT}' AND seq = 25"
    ))
    .await;
    l.assert_check_fails(&[], 25, &[K::Gap]).await;
    l.assert_export_fails(&[], 25, &["gap"]);
}

async fn a_deleted_tail_after_a_checkpoint_is_detected(backend: Backend) {
    let l = ledger(&backend, 60, 20, None).await;
    let mut raw = l.raw().await;
    raw.exec(&format!(
        "DELETE FROM records WHERE tenant_id = '{TENANT}' AND seq >= 52"
    ))
    .await;
    l.assert_check_fails(&[], 52, &[K::MissingRecords]).await;
    l.assert_export_fails(&[], 52, &["missing_records"]);
}

async fn an_inserted_forged_record_is_detected(backend: Backend) {
    let l = ledger(&backend, 60, 20, None).await;
    let before = l.record(29).await;
    let mut forged = l.record(30).await;
    let mut raw = l.raw().await;
    raw.shift(30, 1).await;
    // A plausible record at 30: linked to 29, captured at its time, hashed correctly, under the
    // tenant's key id, but signed by a key the forger made up.
    forged.event_id = ledger::types::EventId::parse(&uuid::Uuid::now_v7().to_string()).expect("id");
    forged.prev = before.hash;
    forged.captured_at_us = before.captured_at_us;
    forged.hash = forged.compute_hash();
    forged.sig = RecordSigner::new(SigningKey::from_bytes(&[7; 32])).sign_hash(&forged.hash);
    raw.write_record(&forged).await;
    l.assert_check_fails(&[], 30, &[K::BadSignature]).await;
    l.assert_export_fails(&[], 30, &["bad_signature"]);
}

async fn a_replaced_signature_is_detected(backend: Backend) {
    let l = ledger(&backend, 60, 20, None).await;
    let other = l.record(3).await;
    let mut raw = l.raw().await;
    let sig = raw.blob(&other.sig.to_bytes());
    raw.exec(&format!(
        "UPDATE records SET sig = {sig} WHERE tenant_id = '{TENANT}' AND seq = 44"
    ))
    .await;
    l.assert_check_fails(&[], 44, &[K::BadSignature]).await;
    l.assert_export_fails(&[], 44, &["bad_signature"]);
}

async fn a_record_re_signed_with_another_key_is_detected(backend: Backend) {
    // The key rotates at 20; the retired key (stolen, say, from an old backup) re-signs record
    // 40 after its content was changed. Hash and signature are consistent, but the key was no
    // longer valid at 40.
    let l = ledger(&backend, 60, 10, Some(20)).await;
    let mut record = l.record(40).await;
    let old_key = l.record(0).await.key_id;
    assert_ne!(record.key_id, old_key);
    let mut raw = l.raw().await;
    let signer = RecordSigner::new(raw.signing_key(&l.bin, old_key).await);
    record.payload = ledger::record::Payload::from_json(&record.payload.as_str().replacen(
        "outcome-",
        "approved-",
        1,
    ))
    .expect("payload");
    record.key_id = old_key;
    record.hash = record.compute_hash();
    record.sig = signer.sign_hash(&record.hash);
    raw.write_record(&record).await;
    l.assert_check_fails(&[], 40, &[K::KeyNotValid]).await;
    l.assert_export_fails(&[], 40, &["key_not_valid"]);
}

async fn a_checkpoint_whose_root_does_not_match_is_detected(backend: Backend) {
    // With the tenant's own key (the master key was stolen), a checkpoint of size 60 that
    // commits to another tree is signed and published; the records are untouched.
    let l = ledger(&backend, 60, 20, None).await;
    l.store
        .append(&l.tenant, crate::support::decisions(5))
        .await
        .expect("append");
    let key_id = l.record(0).await.key_id;
    let mut raw = l.raw().await;
    let key = raw.signing_key(&l.bin, key_id).await;
    let origin = l.store.origin(&l.tenant).await.expect("origin");
    let wrong_root = Hash::from_bytes([0x42; 32]);
    let checkpoint = Checkpoint::new(origin.clone(), TreeSize::new(65), wrong_root).expect("cp");
    let note = sign_checkpoint(
        &checkpoint,
        &[NoteSigner::new(&origin, &key).expect("signer")],
    )
    .expect("sign");
    raw.exec(&format!(
        "INSERT INTO checkpoints (tenant_id, tree_size, root, signed_note, published_at_us) VALUES ('{TENANT}', 65, {}, '{note}', 1)",
        raw.blob(wrong_root.as_bytes())
    ))
    .await;
    l.assert_check_fails(&[], 64, &[K::CheckpointRootMismatch])
        .await;
    l.assert_export_fails(&[], 64, &["inclusion_proof", "checkpoint_root_mismatch"]);
}

async fn a_rolled_back_checkpoint_is_detected(backend: Backend) {
    // A regulator saved the checkpoint of size 60. The database is then rolled back to 40:
    // records and checkpoints after it removed, consistently. Nothing inside the database shows
    // it; the saved checkpoint does.
    let l = ledger(&backend, 60, 20, None).await;
    let saved = l.latest_note().await;
    let mut raw = l.raw().await;
    raw.exec(&format!(
        "DELETE FROM records WHERE tenant_id = '{TENANT}' AND seq >= 40"
    ))
    .await;
    raw.exec(&format!(
        "DELETE FROM checkpoints WHERE tenant_id = '{TENANT}' AND tree_size > 40"
    ))
    .await;
    // Without the saved checkpoint the rolled-back ledger is self-consistent.
    let report = l
        .store
        .check_integrity(&l.tenant, IntegrityOptions::default())
        .await
        .expect("runs");
    assert_eq!(report.outcome, IntegrityOutcome::Passed, "{report:#?}");
    l.assert_check_fails(std::slice::from_ref(&saved), 40, &[K::RolledBack])
        .await;
    l.assert_export_fails(&[saved], 40, &["rolled_back"]);
}

async fn a_fork_is_detected(backend: Backend) {
    // A regulator saved the checkpoints of sizes 40 and 60. The database is rolled back to 40
    // and the service, restarted on it, appends 20 other records and publishes a checkpoint of
    // size 60 again: validly signed, with another root.
    let l = ledger(&backend, 60, 20, None).await;
    let at_40 = l
        .store
        .checkpoint_at(&l.tenant, TreeSize::new(40))
        .await
        .expect("read")
        .expect("published")
        .signed_note;
    let at_60 = l.latest_note().await;
    l.store.shutdown().await;
    let mut raw = l.raw().await;
    raw.exec(&format!(
        "DELETE FROM records WHERE tenant_id = '{TENANT}' AND seq >= 40"
    ))
    .await;
    raw.exec(&format!(
        "DELETE FROM checkpoints WHERE tenant_id = '{TENANT}' AND tree_size > 40"
    ))
    .await;
    let store = l.bin.open(&l.db).await;
    store
        .append(&l.tenant, crate::support::decisions(20))
        .await
        .expect("append on the rolled-back database");
    store.publish_checkpoints().await.expect("publish");
    let forked = store
        .latest_checkpoint(&l.tenant)
        .await
        .expect("read")
        .expect("cp");
    assert_eq!(forked.size.get(), 60);
    assert_ne!(forked.signed_note, at_60);
    let l = Ledger { store, ..l };
    let seen = [at_40, at_60];
    l.assert_check_fails(&seen, 40, &[K::Fork]).await;
    let out = l.assert_export_fails(&seen, 40, &["fork"]);
    // The message reports what was checked: agreement through the seen checkpoint of size 40,
    // and a parting point somewhere after it that was not computed.
    let message = out["failure"]["message"].as_str().expect("message");
    assert!(message.contains("records 40..=59"), "{message}");
    assert!(message.contains("not computed"), "{message}");
    // With only the forked checkpoint seen, no common prefix is claimed.
    let out = l.assert_export_fails(&seen[1..], 0, &["fork"]);
    let message = out["failure"]["message"].as_str().expect("message");
    assert!(!message.contains("up to size 0"), "{message}");
    assert!(
        message.contains("records 0..=59) was not computed"),
        "{message}"
    );
}

backend_tests!(
    a_changed_payload_byte_is_detected,
    a_changed_capture_time_is_detected,
    two_swapped_records_are_detected,
    a_deleted_middle_record_is_detected,
    a_deleted_tail_after_a_checkpoint_is_detected,
    an_inserted_forged_record_is_detected,
    a_replaced_signature_is_detected,
    a_record_re_signed_with_another_key_is_detected,
    a_checkpoint_whose_root_does_not_match_is_detected,
    a_rolled_back_checkpoint_is_detected,
    a_fork_is_detected,
);

/// A store with its workers running and rollback protection on (published checkpoints kept in
/// a folder of their own, returned so that it lives as long as the store), with [`TENANT`]
/// created.
async fn running_store_with_rollback_protection(
    db: &TestDb,
) -> (Store, TenantId, tempfile::TempDir) {
    let bin = Bin::new(db);
    let checkpoints = tempfile::tempdir().expect("tempdir");
    let mut config = bin.store_config(db);
    config.checkpoint_dir = Some(checkpoints.path().to_owned());
    let store = Store::open_with_workers(config).await.expect("open");
    let tenant = tenant_id(TENANT);
    store.create_tenant(&tenant).await.expect("tenant");
    (store, tenant, checkpoints)
}

/// A recent record's hash changed in place under a running store, inside the tree the last
/// published checkpoint covers: the next publication must not sign over it, on both backends.
async fn a_published_record_changed_under_a_running_store_holds_the_next_publication(
    backend: Backend,
) {
    let db = TestDb::new(&backend).await;
    let (store, tenant, _checkpoints) = running_store_with_rollback_protection(&db).await;
    store
        .append(&tenant, crate::support::decisions(60))
        .await
        .expect("append");
    store.publish_checkpoints().await.expect("publish");
    // A proof keeps the right edge's partial tile (60 leaves), which must not stand in for the
    // stored tree when the next checkpoint is compared and signed.
    store
        .inclusion_proof(&tenant, LeafIndex::new(0), TreeSize::new(60))
        .await
        .expect("proof");
    let mut raw = Raw::connect(&db).await;
    let forged = raw.blob(&[0x5a; 32]);
    raw.exec(&format!(
        "UPDATE records SET hash = {forged} WHERE tenant_id = '{TENANT}' AND seq = 55"
    ))
    .await;
    store
        .append(&tenant, crate::support::decisions(1))
        .await
        .expect("append");
    let _ = store.publish_checkpoints().await;
    let latest = store
        .latest_checkpoint(&tenant)
        .await
        .expect("latest")
        .expect("a checkpoint");
    assert_eq!(
        latest.size.get(),
        60,
        "a checkpoint was signed over the changed record: {:?}",
        store.rollback_status()
    );
    assert!(store.rollback_status().problem(&tenant).is_some());
    assert!(
        matches!(
            store.rollback_status().problem(&tenant),
            Some(RollbackProblem::Forked { size, .. }) if size.get() == 60
        ),
        "{:?}",
        store.rollback_status()
    );
    store.shutdown().await;
}

/// A running store whose database is rolled back under it (records past 280 of 300 gone, as a
/// point-in-time recovery leaves it), then acknowledged and appended to again: the proofs it
/// serves afterwards are of the new tree, not of tiles it kept from the old one, on both
/// backends.
async fn proofs_after_an_acknowledged_rollback_under_a_running_store_are_of_the_new_tree(
    backend: Backend,
) {
    let db = TestDb::new(&backend).await;
    let (store, tenant, _checkpoints) = running_store_with_rollback_protection(&db).await;
    store
        .append(&tenant, crate::support::decisions(300))
        .await
        .expect("append");
    store.publish_checkpoints().await.expect("publish");
    // Leaf 0's proof at 300 keeps the partial second tile: leaves 256..300 of the old tree.
    store
        .inclusion_proof(&tenant, LeafIndex::new(0), TreeSize::new(300))
        .await
        .expect("proof");
    let mut raw = Raw::connect(&db).await;
    raw.exec(&format!(
        "DELETE FROM records WHERE tenant_id = '{TENANT}' AND seq >= 280"
    ))
    .await;
    raw.exec(&format!(
        "DELETE FROM checkpoints WHERE tenant_id = '{TENANT}' AND tree_size > 280"
    ))
    .await;
    // Publishing from what is stored (`auditex checkpoint`) finds the database behind the log.
    assert!(store.publish_checkpoint_of(&tenant).await.is_err());
    assert!(
        matches!(
            store.rollback_status().problem(&tenant),
            Some(RollbackProblem::Behind { .. })
        ),
        "{:?}",
        store.rollback_status()
    );
    let receipt = store
        .acknowledge_rollback(&tenant, "bob", "restored to the last good backup")
        .await
        .expect("acknowledged");
    assert_eq!(receipt.seq, 280);
    store
        .append(&tenant, crate::support::decisions(19))
        .await
        .expect("append");
    let hashes = crate::support::chain_hashes(&store, &tenant).await;
    assert_eq!(hashes.len(), 300);
    let root = crate::support::reference_root(&hashes);
    for index in [0, 255, 256, 279, 280, 299] {
        let proof = store
            .inclusion_proof(&tenant, LeafIndex::new(index), TreeSize::new(300))
            .await
            .expect("proof");
        let leaf = leaf_hash(hashes[usize::try_from(index).expect("fits")].as_bytes());
        verify_inclusion(
            leaf,
            LeafIndex::new(index),
            TreeSize::new(300),
            &proof,
            root,
        )
        .unwrap_or_else(|e| panic!("inclusion of {index} in the new tree: {e}"));
    }
    store.shutdown().await;
}

backend_tests!(
    a_published_record_changed_under_a_running_store_holds_the_next_publication,
    proofs_after_an_acknowledged_rollback_under_a_running_store_are_of_the_new_tree,
);
