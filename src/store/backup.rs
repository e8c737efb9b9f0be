//! Backups of the embedded SQLite database, verified restores, and the ledger verification that
//! both (and a PostgreSQL point-in-time recovery drill) rely on.
//!
//! A backup is `VACUUM INTO` on a reader connection: SQLite copies one read snapshot, so appends
//! carry on while it runs and the copy holds exactly the records committed when it started. It is
//! written under a temporary name (mode 0600: it holds sealed signing keys and personal data),
//! checked with `PRAGMA integrity_check`, fsynced and only then renamed into place. It copies the
//! ledger's file alone: the read-side views (a file of their own, see `sqlite.rs`) are derived
//! from the ledger and rebuilt when a restored database is opened.
//!
//! A restore never replaces a database in use (every open store holds a shared advisory lock on
//! `<database>.lock`; the restore takes it exclusively for the whole swap), and never replaces
//! anything with a copy it has not verified: the backup is copied next to the target, checked
//! with `PRAGMA integrity_check`, opened as a store (migrations applied, nothing published), every
//! tenant's chain verified from the genesis with [`ChainVerifier`], the stored Merkle tree and the
//! latest signed checkpoint compared with the records, and the configured master key tried on
//! every current signing key. Only then is the old database moved aside (kept, never deleted) and
//! the copy renamed into place.
//!
//! PostgreSQL deployments back up with the database's own tools (base backups and WAL archiving,
//! see `docs/OPERATIONS.md` and `scripts/pg-pitr-drill`); [`verify_ledger`] checks the result.

use std::io::Read;
use std::path::{Path, PathBuf};

use ledger::checkpoint::open_checkpoint;
use ledger::merkle::leaf_hash;
use ledger::note::VerifierKey;
use ledger::types::{Sequence, TenantId, TreeSize};
use ledger::verify::{ChainVerifier, LeafRange};
use sha2::Digest;

use super::backend::BackendKind;
use super::sqlite::{self, sibling};
use super::{DatabaseUrl, RANGE_RECORDS_MAX, Store, StoreConfig, StoreError};

/// Records read per page while verifying a chain.
const VERIFY_PAGE_RECORDS: u64 = RANGE_RECORDS_MAX;

/// A backup that was written and checked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupSummary {
    /// Where it is.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// SHA-256 of the file, hex, for the operator's backup register.
    pub sha256: String,
    /// Records per tenant in the backup.
    pub tenants: Vec<TenantRecords>,
}

/// A tenant and its number of records.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TenantRecords {
    /// The tenant.
    pub tenant: String,
    /// Its records.
    pub records: u64,
}

/// What [`verify_ledger`] found for one tenant; only returned when everything verified.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TenantVerification {
    /// The tenant.
    pub tenant: String,
    /// Records in its chain (all verified: links, hashes, signatures, sequence, capture times).
    pub records: u64,
    /// The Merkle root of those records (hex), equal to the stored tree's root.
    pub root: String,
    /// The hash of the last record (hex), absent for an empty chain.
    pub head_hash: Option<String>,
    /// The size of the latest stored checkpoint, whose signature and root were verified.
    pub latest_checkpoint_size: Option<u64>,
    /// Why the tenant is held after a rollback, if it is (see `rollback.rs`).
    pub rollback: Option<String>,
}

/// The result of a whole-ledger verification.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LedgerVerification {
    /// One entry per tenant, sorted.
    pub tenants: Vec<TenantVerification>,
}

/// What a restore did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreReport {
    /// The database that now holds the restored data.
    pub database: PathBuf,
    /// Where the database it replaced was moved (kept, never deleted).
    pub previous: Option<PathBuf>,
    /// SHA-256 of the backup file, hex.
    pub backup_sha256: String,
    /// The verification of the restored copy, made before it was moved into place.
    pub verification: LedgerVerification,
}

fn backup_error(message: impl Into<String>) -> StoreError {
    StoreError::Backup(message.into())
}

fn io(path: &Path, what: &str, e: std::io::Error) -> StoreError {
    backup_error(format!("{what} {}: {e}", path.display()))
}

/// Runs file work (hashing, copying, fsync, renames) on tokio's blocking threads: a backup can
/// be gigabytes, and an async worker stuck in it would stall every request it serves meanwhile.
async fn blocking<T, F>(work: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| backup_error(format!("a file task failed: {e}")))?
}

fn fsync_dir(path: &Path) -> Result<(), StoreError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, "cannot sync the folder", e))
}

fn sha256_file(path: &Path) -> Result<(String, u64), StoreError> {
    let mut file = std::fs::File::open(path).map_err(|e| io(path, "cannot read", e))?;
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = file
            .read(&mut buffer)
            .map_err(|e| io(path, "cannot read", e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        bytes += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), bytes))
}

/// Creates an empty, private (0600) file for SQLite to write a copy into.
fn create_private_empty(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .map(drop)
        .map_err(|e| io(path, "cannot create", e))
}

/// Makes the checked backup at `temp` the file `dest`: integrity check, fsync, rename, fsync.
async fn finish_backup(temp: &Path, dest: &Path) -> Result<BackupSummary, StoreError> {
    let (problems, sizes) = sqlite::check_file(temp).await?;
    if !problems.is_empty() {
        return Err(backup_error(format!(
            "the backup failed its integrity check: {}",
            problems.join("; ")
        )));
    }
    let (temp, dest) = (temp.to_owned(), dest.to_owned());
    let (dest, sha256, bytes) = blocking(move || {
        std::fs::File::open(&temp)
            .and_then(|f| f.sync_all())
            .map_err(|e| io(&temp, "cannot sync", e))?;
        std::fs::rename(&temp, &dest).map_err(|e| io(&dest, "cannot rename the backup to", e))?;
        fsync_dir(&dest)?;
        let (sha256, bytes) = sha256_file(&dest)?;
        Ok((dest, sha256, bytes))
    })
    .await?;
    Ok(BackupSummary {
        path: dest,
        bytes,
        sha256,
        tenants: sizes
            .into_iter()
            .map(|(tenant, records)| TenantRecords {
                tenant,
                records: u64::try_from(records).unwrap_or(0),
            })
            .collect(),
    })
}

/// Runs `copy` into a private temporary file beside `dest`, then checks and renames it.
async fn backup_with<F, Fut>(dest: &Path, copy: F) -> Result<BackupSummary, StoreError>
where
    F: FnOnce(PathBuf) -> Fut,
    Fut: std::future::Future<Output = Result<(), StoreError>>,
{
    let target = dest.to_owned();
    let temp = blocking(move || {
        let dest = target;
        if dest.exists() {
            return Err(backup_error(format!(
                "{} exists already; a backup never overwrites a file",
                dest.display()
            )));
        }
        if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::file_modes::create_private_dir_all(dir)
                .map_err(|e| io(dir, "cannot create", e))?;
        }
        let temp = sibling(&dest, &format!(".partial-{:016x}", rand::random::<u64>()));
        create_private_empty(&temp)?;
        Ok(temp)
    })
    .await?;
    let result = match copy(temp.clone()).await {
        Ok(()) => finish_backup(&temp, dest).await,
        Err(e) => Err(e),
    };
    if result.is_err() {
        let _ = tokio::fs::remove_file(&temp).await;
    }
    result
}

/// Backs up the SQLite database file at `source` to `dest` while other processes may be
/// appending to it. Needs no master key: the copy holds the signing keys sealed, as the database
/// does, so the master key must be backed up separately.
///
/// # Errors
/// [`StoreError::Backup`] when `dest` exists, the source is missing, or the copy fails its check.
pub async fn backup_sqlite_file(source: &Path, dest: &Path) -> Result<BackupSummary, StoreError> {
    backup_with(dest, |temp| async move {
        sqlite::vacuum_file_into(source, &temp).await
    })
    .await
}

impl Store {
    /// Backs up this store's SQLite database to `dest` through a reader connection, while
    /// appends continue.
    ///
    /// # Errors
    /// [`StoreError::Backup`] on PostgreSQL (use base backups and WAL archiving), when `dest`
    /// exists, or when the copy fails its check.
    pub async fn backup(&self, dest: &Path) -> Result<BackupSummary, StoreError> {
        // Refused before anything is written.
        if self.backend().kind() == BackendKind::Postgres {
            return Err(backup_error(
                "PostgreSQL is backed up with pg_basebackup and WAL archiving (see docs/OPERATIONS.md)",
            ));
        }
        backup_with(dest, |temp| async move {
            self.backend().vacuum_into(&temp).await
        })
        .await
    }
}

/// Verifies every tenant's ledger in `store`: the whole chain from the genesis (sequence numbers,
/// links, record hashes, signatures under the key history, capture times), the stored Merkle root
/// against the records, the latest stored checkpoint's signature and root, and that the
/// configured master key opens the current signing key. Each tenant's rollback status is that
/// of the store.
///
/// # Errors
/// [`StoreError::Corrupt`] naming the tenant and the first problem, or a database error.
pub async fn verify_ledger(store: &Store) -> Result<LedgerVerification, StoreError> {
    verify_ledger_with(store, store.rollback_status()).await
}

async fn verify_ledger_with(
    store: &Store,
    rollback: super::rollback::RollbackStatus,
) -> Result<LedgerVerification, StoreError> {
    let mut tenants = Vec::new();
    for tenant in store.tenants().await? {
        let mut report = verify_tenant(store, &tenant).await?;
        report.rollback = rollback.problem(&tenant).map(ToString::to_string);
        tenants.push(report);
    }
    Ok(LedgerVerification { tenants })
}

async fn verify_tenant(store: &Store, tenant: &TenantId) -> Result<TenantVerification, StoreError> {
    let corrupt = |what: String| StoreError::Corrupt(format!("tenant {tenant}: {what}"));
    let ring = store.key_history(tenant).await?;
    store
        .current_signer(tenant)
        .await
        .map_err(|e| corrupt(format!("the configured master key cannot open the current signing key ({e}); restore the master key this database was written with")))?;
    let size = store.tree_size(tenant).await?;
    let latest = store.latest_checkpoint(tenant).await?;
    if let Some(c) = &latest
        && c.size > size
    {
        return Err(corrupt(format!(
            "the latest checkpoint covers {} records but the chain has {size}",
            c.size
        )));
    }
    let mut verifier = ChainVerifier::new(tenant.clone(), ring.clone());
    let mut leaves = LeafRange::new(0);
    let mut checkpoint_root = None;
    let mut head_hash = None;
    let mut next = 0u64;
    while next < size.get() {
        let from = Sequence::new(next).map_err(|e| corrupt(e.to_string()))?;
        let page = store.records(tenant, from, VERIFY_PAGE_RECORDS).await?;
        if page.is_empty() {
            return Err(corrupt(format!(
                "records stop at {next}, but the chain head is at {}",
                size.get() - 1
            )));
        }
        for record in &page {
            verifier
                .push(record)
                .map_err(|e| corrupt(format!("the chain does not verify: {e}")))?;
            leaves.push_leaf(leaf_hash(record.hash.as_bytes()));
            if latest
                .as_ref()
                .is_some_and(|c| c.size.get() == leaves.end())
            {
                checkpoint_root = leaves.root();
            }
            head_hash = Some(record.hash.to_hex());
        }
        next += page.len() as u64;
    }
    let summary = verifier
        .finish()
        .map_err(|e| corrupt(format!("the chain does not verify: {e}")))?;
    let computed = summary
        .root()
        .ok_or_else(|| corrupt("the verified chain has no root".into()))?;
    let stored = store.root_at(tenant, summary.size()).await?;
    if stored != computed {
        return Err(corrupt(format!(
            "the stored Merkle tree's root {stored} differs from the records' root {computed}"
        )));
    }
    if let Some(c) = &latest {
        let origin = store.origin(tenant).await?;
        let keys: Vec<VerifierKey> = ring
            .intervals()
            .iter()
            .filter_map(|k| VerifierKey::new(&origin, k.public_key).ok())
            .collect();
        let opened = open_checkpoint(c.signed_note.as_bytes(), &keys, Some(&origin))
            .map_err(|e| corrupt(format!("the latest checkpoint does not verify: {e}")))?;
        let expected = if c.size == TreeSize::ZERO {
            LeafRange::new(0).root()
        } else {
            checkpoint_root
        };
        if opened.checkpoint().size() != c.size || Some(opened.checkpoint().root()) != expected {
            return Err(corrupt(format!(
                "the latest checkpoint (size {}) does not match the records",
                c.size
            )));
        }
    }
    Ok(TenantVerification {
        tenant: tenant.to_string(),
        records: summary.size().get(),
        root: computed.to_hex(),
        head_hash,
        latest_checkpoint_size: latest.map(|c| c.size.get()),
        rollback: None,
    })
}

/// The SQLite files that belong to a database: the file, its WAL and its shared-memory index.
fn database_files(path: &Path) -> [PathBuf; 3] {
    [
        path.to_owned(),
        sibling(path, "-wal"),
        sibling(path, "-shm"),
    ]
}

/// Restores the SQLite database that `config` names from `backup` (see the module docs).
///
/// `force` is needed when a database exists at the target; it is moved aside to
/// `<database>.before-restore-<UTC time>`, never deleted. A database in use is never replaced.
///
/// # Errors
/// [`StoreError::Backup`] when the target is PostgreSQL, in use, exists without `force`, or the
/// backup is missing; [`StoreError::Corrupt`] when the backup fails verification. The target is
/// untouched in every error case.
pub async fn restore_sqlite(
    backup: &Path,
    config: &StoreConfig,
    force: bool,
) -> Result<RestoreReport, StoreError> {
    let DatabaseUrl::Sqlite(target) = &config.database else {
        return Err(backup_error(
            "restore replaces an SQLite database; PostgreSQL is restored with point-in-time \
             recovery (see docs/OPERATIONS.md and scripts/pg-pitr-drill)",
        ));
    };
    let (backup, target) = (backup.to_owned(), target.clone());
    // `_lock` is held until the new database is in place: no store can open the target meanwhile.
    let (_lock, exists, backup_sha256, temp) = blocking({
        let (backup, target) = (backup.clone(), target.clone());
        move || {
            if !backup.is_file() {
                return Err(backup_error(format!(
                    "there is no backup file at {}",
                    backup.display()
                )));
            }
            if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
                crate::file_modes::create_private_dir_all(dir)
                    .map_err(|e| io(dir, "cannot create", e))?;
            }
            let Some(lock) = sqlite::lock_exclusive(&target)? else {
                return Err(backup_error(format!(
                    "the database {} is in use (a running `auditex serve` or another command has \
                     it open); stop it first. A database in use is never replaced, even with \
                     --force",
                    target.display()
                )));
            };
            let exists = target.exists();
            if exists && !force {
                return Err(backup_error(format!(
                    "a database exists at {}; pass --force to replace it (it is kept as \
                     {}.before-restore-<time>, not deleted)",
                    target.display(),
                    target.display()
                )));
            }
            let (backup_sha256, _) = sha256_file(&backup)?;

            // 1. A private copy next to the target, so the final step is a rename on one file
            //    system.
            let temp = sibling(&target, &format!(".restore-{:016x}", rand::random::<u64>()));
            create_private_empty(&temp)?;
            Ok((lock, exists, backup_sha256, temp))
        }
    })
    .await?;
    let verified = async {
        blocking({
            let (backup, temp) = (backup.clone(), temp.clone());
            move || {
                // Copied by content into the private file: `std::fs::copy` would give the
                // restored database the backup file's mode, whatever that is.
                let mut from =
                    std::fs::File::open(&backup).map_err(|e| io(&backup, "cannot read", e))?;
                let mut to = std::fs::OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(&temp)
                    .map_err(|e| io(&temp, "cannot write", e))?;
                std::io::copy(&mut from, &mut to)
                    .map_err(|e| io(&temp, "cannot copy the backup to", e))?;
                to.sync_all().map_err(|e| io(&temp, "cannot sync", e))
            }
        })
        .await?;
        // 2. SQLite's own check of every page and index.
        let (problems, _) = sqlite::check_file(&temp).await?;
        if !problems.is_empty() {
            return Err(StoreError::Corrupt(format!(
                "the backup failed its integrity check: {}",
                problems.join("; ")
            )));
        }
        // 3. Open it as the service would (migrations apply), but publish and write nothing, and
        //    verify the ledger; say which tenants the checkpoint files will hold.
        let mut check = config.clone();
        check.database = DatabaseUrl::Sqlite(temp.clone());
        check.publish_in_background = false;
        check.checkpoint_dir = None;
        let store = Store::open_with_workers(check).await?;
        let verification = async {
            let rollback = match &config.checkpoint_dir {
                Some(dir) => super::rollback::predict(&store, dir).await?,
                None => super::rollback::RollbackStatus::default(),
            };
            verify_ledger_with(&store, rollback).await
        }
        .await;
        store.close_database().await;
        drop(store);
        verification
    }
    .await;
    let verification = match verified {
        Ok(v) => v,
        Err(e) => {
            let _ = blocking(move || {
                remove_database_files(&temp);
                Ok(())
            })
            .await;
            return Err(e);
        }
    };

    // 4. Move the old database aside, then the verified copy into place.
    let previous = blocking({
        let target = target.clone();
        move || {
            let mut previous = None;
            if exists {
                let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
                let aside = sibling(&target, &format!(".before-restore-{stamp}"));
                let [db, wal, shm] = database_files(&target);
                let [aside_db, aside_wal, _] = database_files(&aside);
                std::fs::rename(&db, &aside_db)
                    .map_err(|e| io(&aside_db, "cannot move aside to", e))?;
                if wal.exists() {
                    std::fs::rename(&wal, &aside_wal)
                        .map_err(|e| io(&aside_wal, "cannot move aside to", e))?;
                }
                let _ = std::fs::remove_file(shm);
                previous = Some(aside_db);
            }
            let [temp_db, temp_wal, temp_shm] = database_files(&temp);
            let [_, target_wal, _] = database_files(&target);
            std::fs::rename(&temp_db, &target)
                .map_err(|e| io(&target, "cannot move the restored copy to", e))?;
            if temp_wal.exists() {
                std::fs::rename(&temp_wal, &target_wal)
                    .map_err(|e| io(&target_wal, "cannot move the restored WAL to", e))?;
            }
            let _ = std::fs::remove_file(temp_shm);
            let _ = std::fs::remove_file(sqlite::lock_file_path(&temp));
            // The check's views of the copy are not kept; the target's own views file stays
            // beside it, and the store that opens the restored database keeps it only if it
            // was built from this ledger and is not ahead of it (`SqliteDb::open`).
            remove_views_files(&temp);
            fsync_dir(&target)?;
            Ok(previous)
        }
    })
    .await?;
    Ok(RestoreReport {
        database: target,
        previous,
        backup_sha256,
        verification,
    })
}

/// Removes a database's files, its views' files and its lock file, as far as they exist (a
/// failed restore's copy).
fn remove_database_files(path: &Path) {
    for f in database_files(path) {
        let _ = std::fs::remove_file(f);
    }
    remove_views_files(path);
    let _ = std::fs::remove_file(sqlite::lock_file_path(path));
}

/// Removes the views' files beside a database (derived data: the views are rebuilt from the
/// ledger when a store opens it).
fn remove_views_files(path: &Path) {
    for f in database_files(&sqlite::views_file_path(path)) {
        let _ = std::fs::remove_file(f);
    }
}

impl Store {
    /// Closes the database connections (the handle is unusable afterwards). Used before a file
    /// that a store had open is renamed.
    pub(crate) async fn close_database(&self) {
        self.backend().close().await;
    }
}
