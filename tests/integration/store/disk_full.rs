//! A full disk under an SQLite database: the store names the fault, refuses writes cleanly, keeps
//! its writer usable, and recovers by itself as soon as space is freed, losing nothing that was
//! acknowledged. The database lives on a small tmpfs the test mounts (the tests run as root in
//! CI); where mounting is impossible the test says so and skips. PostgreSQL's disk-full SQLSTATE
//! is mapped to the same error by the shared classification (unit-tested in `store::faults`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use auditex::store::crypto::MasterKey;
use auditex::store::{AppendError, DatabaseUrl, Receipt, Store, StoreConfig, StoreError};

use crate::support::{decisions, read_chain, tenant_id};

/// The size of the file system the database fills.
const TMPFS_SIZE: &str = "16m";

/// A tmpfs mounted for one test, unmounted when dropped.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn mount() -> Option<SmallFs> {
        let dir = tempfile::tempdir().expect("temporary folder");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={TMPFS_SIZE}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            crate::skip::TMPFS_MOUNT.skip(&format!("cannot mount a {TMPFS_SIZE} tmpfs"));
            return None;
        }
        Some(SmallFs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills the file system holding `path` with a ballast file, to the last block.
fn fill(path: &Path) -> PathBuf {
    let ballast = path.join("ballast");
    let mut file = std::fs::File::create(&ballast).expect("ballast");
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    while file.write_all(&chunk[..512]).is_ok() {}
    let _ = file.sync_all();
    ballast
}

fn master_key() -> MasterKey {
    let bytes: [u8; 32] = rand::random();
    crate::secret_scan::register_bytes("disk-full test master key", &bytes);
    MasterKey::from_hex(&hex::encode(bytes), "test").expect("64 hex digits")
}

fn assert_storage_full(result: Result<Vec<Receipt>, AppendError>, when: &str) {
    match result {
        Err(ref e @ AppendError::Store(StoreError::StorageFull(ref detail))) => {
            assert!(e.is_retryable(), "{when}: storage full is retryable");
            assert!(detail.contains("full"), "{when}: {detail}");
        }
        other => panic!("{when}: expected StorageFull, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_disk_fills_writes_are_refused_as_storage_full_and_succeed_again_once_space_is_freed()
 {
    let Some(fs) = SmallFs::mount() else {
        return;
    };
    let database = DatabaseUrl::Sqlite(fs.path().join("ledger.db"));
    Store::migrate(&database, None).await.expect("migrate");
    let mut config = StoreConfig::new(database, master_key());
    config.checkpoint_interval = Duration::from_secs(3600);
    config.checkpoint_dir = Some(fs.path().join("checkpoints"));
    let store = Store::open_with_workers(config).await.expect("open");
    let tenant = tenant_id("acme");
    store.create_tenant(&tenant).await.expect("tenant");
    let mut acknowledged: Vec<Receipt> =
        store.append(&tenant, decisions(50)).await.expect("append");
    store.publish_checkpoints().await.expect("checkpoint");

    let ballast = fill(fs.path());
    // Append until the database can grow no more (the WAL may have room left at first).
    let mut failure = None;
    for _ in 0..200 {
        match store.append(&tenant, decisions(200)).await {
            Ok(r) => acknowledged.extend(r),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    assert_storage_full(
        failure.map_or(Ok(Vec::new()), Err),
        "the first append that finds no space",
    );
    assert!(store.fault_status().storage_full, "readiness reports it");
    // The writer is not left inside a transaction: the next write fails for the same, named
    // reason, not "database unavailable".
    assert_storage_full(
        store.append(&tenant, decisions(200)).await,
        "an append while still full",
    );
    // The published-checkpoint file cannot be written either, and says why.
    match store.publish_checkpoints().await {
        Err(StoreError::StorageFull(detail)) => {
            assert!(detail.contains("checkpoint"), "{detail}");
        }
        Ok(()) => {} // a checkpoint of the acknowledged tree may already exist; nothing to write.
        Err(other) => panic!("expected StorageFull from the checkpoint file, got {other:?}"),
    }
    let status = store.fault_status();
    assert!(status.storage_full_errors >= 2, "{status:?}");

    // Space comes back: the next append succeeds without a restart.
    std::fs::remove_file(&ballast).expect("free space");
    let after = store
        .append(&tenant, decisions(10))
        .await
        .expect("appends succeed again once space is freed");
    acknowledged.extend(after);
    assert!(!store.fault_status().storage_full);
    store
        .publish_checkpoints()
        .await
        .expect("checkpoints are published again");

    // Nothing acknowledged was lost: every receipt reads back as what was acknowledged, in one
    // gap-free chain.
    let chain = read_chain(&store, &tenant).await;
    assert_eq!(chain.len(), acknowledged.len());
    for receipt in &acknowledged {
        let record = &chain[usize::try_from(receipt.seq).expect("small")];
        assert_eq!(record.event_id, receipt.event_id);
        assert_eq!(record.hash, receipt.hash);
    }
    store.shutdown().await;
}
