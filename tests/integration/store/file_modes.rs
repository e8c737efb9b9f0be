//! What a fresh embedded store leaves on disk is owner-only: the data folder 0700, the database
//! and its `-wal` and `-shm` files 0600, the published-checkpoint folder 0700 and its files 0600.

#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use auditex::store::{DatabaseUrl, Store, StoreConfig};

use auditex::store::crypto::MasterKey;

use crate::support::{decisions, tenant_id};

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_store_creates_its_folders_0700_and_its_database_wal_shm_and_checkpoints_0600() {
    let root = tempfile::tempdir().expect("temporary folder");
    let data = root.path().join("data");
    let checkpoints = root.path().join("witness").join("checkpoints");
    let db = data.join("auditex.db");
    let mut config = StoreConfig::new(DatabaseUrl::Sqlite(db.clone()), MasterKey::generate());
    config.checkpoint_dir = Some(checkpoints.clone());
    let store = Store::open_with_workers(config)
        .await
        .expect("the store opens");
    let tenant = tenant_id("acme");
    store.create_tenant(&tenant).await.expect("tenant");
    store.append(&tenant, decisions(3)).await.expect("append");
    store.publish_checkpoints().await.expect("publish");

    assert_eq!(mode_of(&data), 0o700, "the data folder");
    for name in [
        "auditex.db",
        "auditex.db-wal",
        "auditex.db-shm",
        "auditex.db-views",
        "auditex.db-views-wal",
        "auditex.db-views-shm",
    ] {
        assert_eq!(mode_of(&data.join(name)), 0o600, "{name}");
    }
    assert_eq!(mode_of(&checkpoints), 0o700, "the checkpoint folder");
    assert_eq!(
        mode_of(&root.path().join("witness")),
        0o700,
        "and its parent"
    );
    let files: Vec<_> = std::fs::read_dir(&checkpoints)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .collect();
    assert!(!files.is_empty(), "a checkpoint was published to a file");
    for file in &files {
        assert_eq!(mode_of(file), 0o600, "{}", file.display());
    }
    assert_eq!(
        auditex::file_modes::loose_modes(&[data.clone(), checkpoints.clone()]),
        [],
        "nothing to warn about on a fresh store"
    );
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_world_readable_database_keeps_its_mode_and_is_reported() {
    let root = tempfile::tempdir().expect("temporary folder");
    let data = root.path().join("data");
    let db = data.join("auditex.db");
    {
        let store = Store::open_with_workers(StoreConfig::new(
            DatabaseUrl::Sqlite(db.clone()),
            MasterKey::generate(),
        ))
        .await
        .expect("the store opens");
        store.shutdown().await;
    }
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let store = Store::open_with_workers(StoreConfig::new(
        DatabaseUrl::Sqlite(db.clone()),
        MasterKey::generate(),
    ))
    .await
    .expect("the store opens again");
    assert_eq!(
        mode_of(&db),
        0o644,
        "an existing file is never changed silently"
    );
    let found = auditex::file_modes::loose_modes(std::slice::from_ref(&data));
    let reported: Vec<(&Path, u32)> = found.iter().map(|l| (l.path.as_path(), l.mode)).collect();
    assert!(reported.contains(&(db.as_path(), 0o644)), "{found:?}");
    store.shutdown().await;
}
