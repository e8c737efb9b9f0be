//! Running Auditex like a bank would: online backups under load, verified restores, rollback
//! safety after a restore, secret files and secret-free logs, and the operator documentation
//! checked against the code.
//!
//! Store-level tests call `auditex::store::backup` and `Store::acknowledge_rollback` directly;
//! the command-line tests run the real `auditex` binary, with debug logging, and scan everything it
//! prints for secret material.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use auditex::store::backup::{backup_sqlite_file, restore_sqlite, verify_ledger};
use auditex::store::crypto::MasterKey;
use auditex::store::rollback::{AcknowledgeError, RollbackProblem, checkpoint_file};
use auditex::store::{AppendError, DatabaseUrl, Store, StoreConfig, StoreError};
use ledger::checkpoint::{Checkpoint, open_checkpoint};
use ledger::note::{Note, VerifierKey};
use ledger::record::EventType;
use ledger::types::{TenantId, TreeSize};
use sqlx::Connection;

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
    let origin = store.origin(tenant);
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
        Some(&store.origin(tenant)),
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

/// The size and root in a checkpoint file.
fn file_checkpoint(path: &Path) -> Checkpoint {
    let bytes = std::fs::read(path).expect("checkpoint file");
    let note = Note::parse(&bytes).expect("a signed note");
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
    let store = Store::open(config_with_checkpoints(&db, &work.path().join("cp-a")))
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

    let restored = Store::open(config.clone()).await.expect("open restored");
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
    let file = file_checkpoint(&checkpoint_file(
        config.checkpoint_dir.as_deref().expect("dir"),
        &tenant,
    ));
    assert_eq!(
        file.size().get(),
        in_backup + 100,
        "the published checkpoint is on file"
    );
    restored.shutdown().await;
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
    let store = Store::open(config.clone()).await.expect("open");
    let tenant = tenant_id("rolled");
    store.create_tenant(&tenant).await.expect("tenant");
    append_many(&store, &tenant, 100, 50).await;
    store.publish_checkpoints().await.expect("publish");
    let file = checkpoint_file(&checkpoints, &tenant);
    assert_eq!(file_checkpoint(&file).size().get(), 100);
    let backup = work.path().join("old.db");
    store.backup(&backup).await.expect("backup");
    append_many(&store, &tenant, 50, 50).await;
    store.publish_checkpoints().await.expect("publish");
    let published = file_checkpoint(&file);
    assert_eq!(
        published.size().get(),
        150,
        "the file follows every publication"
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
    let store = Store::open(config.clone()).await.expect("open");
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
        file_checkpoint(&file).size().get(),
        150,
        "the file still holds what was published"
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
        file_checkpoint(&file).size().get(),
        101,
        "the file is reset"
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
    let reopened = Store::open(config).await.expect("reopen");
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
    let store = Store::open(config_with_checkpoints(&a, checkpoints.path()))
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

    let store = Store::open(config_with_checkpoints(&b, checkpoints.path()))
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

/// A tenant whose database lost it entirely (restored from before it was created) is held, and
/// can be acknowledged once it exists again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_missing_from_a_restored_database_is_held() {
    let checkpoints = tempfile::tempdir().expect("tempdir");
    let a = TestDb::new(&Backend::Sqlite).await;
    let store = Store::open(config_with_checkpoints(&a, checkpoints.path()))
        .await
        .expect("open");
    let tenant = tenant_id("vanished");
    store.create_tenant(&tenant).await.expect("tenant");
    append_many(&store, &tenant, 5, 5).await;
    store.publish_checkpoints().await.expect("publish");
    store.shutdown().await;

    let b = TestDb::new(&Backend::Sqlite).await;
    let store = Store::open(config_with_checkpoints(&b, checkpoints.path()))
        .await
        .expect("open");
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
        let key_hex = hex::encode(rand::random::<[u8; 32]>());
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
    fn add(&mut self, what: &str, bytes: &[u8]) {
        use base64::Engine;
        let hex = hex::encode(bytes);
        self.0.push((format!("{what} (hex)"), hex.clone()));
        self.0.push((format!("{what} (HEX)"), hex.to_uppercase()));
        for engine in [
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ] {
            let text = engine.encode(bytes);
            // Base64 of a prefix-aligned slice, so a longer encoded blob still matches.
            self.0.push((
                format!("{what} (base64)"),
                text[..text.len() - 4].to_owned(),
            ));
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
            master
                .open(&format!("auditex/signing-key/{tenant}/{key_id}"), &sealed)
                .expect("the master key opens the signing key")
        })
        .collect()
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
    let mut serve = cli
        .command(&["serve", "--listen", "127.0.0.1:0", "--dev-plain-http"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let stdout = serve.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut printed = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match lines.next() {
            Some(Ok(line)) => {
                printed.push_str(&line);
                printed.push('\n');
                if line.contains("Ctrl-C") {
                    break;
                }
            }
            _ => break,
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status();
    let out = serve.wait_with_output().expect("serve stops");
    cli.transcript.push_str(&printed);
    cli.transcript
        .push_str(&String::from_utf8_lossy(&out.stdout));
    cli.transcript
        .push_str(&String::from_utf8_lossy(&out.stderr));
    assert!(
        printed.contains("Ctrl-C"),
        "the service started: {printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );

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

backend_tests!(operator_commands_work_end_to_end_and_log_no_secrets);

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
