//! Rollback safety: the service must never sign a checkpoint that contradicts one it published
//! before.
//!
//! A restored backup (or a PostgreSQL point-in-time recovery) is older than the checkpoints the
//! world has already seen. Signing a checkpoint for the restored, shorter tree would put two
//! signed, inconsistent statements about the same log into circulation: a fork. So the store keeps
//! every checkpoint it publishes for each tenant *outside* the database as well, in the log
//! `<checkpoint dir>/<tenant>.published` (one JSON object per line: `published_at_us`,
//! `signed_note`), appended and fsynced *before* the checkpoint is stored, so no checkpoint can be
//! served that the log does not cover. Its last complete line is the latest published checkpoint.
//! An append, not a replaced file: replacing a file atomically allocates an inode and syncs the
//! folder on every publication, which with a thousand tenants publishing each second was most of
//! a round's time. Deployments from before the log kept the latest checkpoint alone in
//! `<tenant>.checkpoint`; it is read while the log has no line, and removed once it has.
//!
//! When the store opens, and before every publication, each tenant's tree is compared with the
//! latest checkpoint on file. If the database holds fewer records than that checkpoint, or its
//! root at that size differs (a fork), the tenant is *held*: no checkpoint is published and
//! appends are refused (see [`StoreError::RollbackUnacknowledged`]) until an operator acknowledges
//! the rollback with [`Store::acknowledge_rollback`] (`auditex rollback acknowledge`). That
//! appends a `rollback_acknowledged` record naming the operator, the reason and both tree states,
//! publishes a checkpoint for the new tree and appends it to the log, making it the latest.
//! Appends are refused rather than allowed while a tenant is held because every record appended
//! then would take a sequence number that receipts issued before the rollback may already name
//! with other content; refusing keeps the operator's other option open (recovering the missing
//! records from a newer backup) and makes the acknowledgement the first record after the rollback
//! point.
//!
//! The log keeps every checkpoint, not only the latest, because a restored database has lost the
//! checkpoints it published after the backup was taken. The acknowledgement moves every
//! checkpoint of that log which the current tree does not extend into the database's abandoned
//! checkpoints, marked with the acknowledgement's sequence number, so the checkpoint history still
//! holds every checkpoint ever published. The acknowledgement record itself names the abandoned
//! sequence numbers, so a client holding a receipt for one of them can learn it was rolled back.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use ledger::checkpoint::Checkpoint;
use ledger::note::Note;
use ledger::record::EventType;
use ledger::types::{Hash, TenantId, TreeSize};

use super::{AppendError, Receipt, Store, StoreError, StoredCheckpoint, TreeHead};

/// File name extension of the latest-checkpoint files of deployments from before the log.
pub const CHECKPOINT_FILE_EXTENSION: &str = "checkpoint";

/// File name extension of the log of every checkpoint published, kept outside the database.
pub const HISTORY_FILE_EXTENSION: &str = "published";

/// Why a tenant's checkpoints are held back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackProblem {
    /// The database holds fewer records than the checkpoint published last.
    Behind {
        /// The size of the latest checkpoint on file.
        witnessed: TreeSize,
        /// Its root.
        witnessed_root: Hash,
        /// The number of records in the database.
        database: TreeSize,
    },
    /// The database's tree at the published size has another root: a fork.
    Forked {
        /// The size of the latest checkpoint on file.
        size: TreeSize,
        /// Its root.
        witnessed_root: Hash,
        /// The database's root at that size.
        database_root: Hash,
    },
    /// The latest checkpoint on file cannot be read or parsed, so nothing can be compared.
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
}

impl RollbackProblem {
    /// A short name for reports: `behind`, `forked` or `unreadable`.
    pub fn kind(&self) -> &'static str {
        match self {
            RollbackProblem::Behind { .. } => "behind",
            RollbackProblem::Forked { .. } => "forked",
            RollbackProblem::Unreadable { .. } => "unreadable",
        }
    }
}

impl fmt::Display for RollbackProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RollbackProblem::Behind {
                witnessed,
                database,
                ..
            } => write!(
                f,
                "the database holds {database} records but a checkpoint of {witnessed} records was \
                 published (the database was rolled back, e.g. restored from an older backup)"
            ),
            RollbackProblem::Forked {
                size,
                witnessed_root,
                database_root,
            } => write!(
                f,
                "the database's tree of {size} records has root {database_root}, but the published \
                 checkpoint of that size has root {witnessed_root} (a fork)"
            ),
            RollbackProblem::Unreadable { path, problem } => write!(
                f,
                "the published-checkpoint file {} cannot be used: {problem}",
                path.display()
            ),
        }
    }
}

/// The tenants whose checkpoints are held back because their database is behind (or forks from)
/// the checkpoint published last. Empty when all is well; a readiness check reports not ready
/// while it is not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollbackStatus {
    held: BTreeMap<TenantId, RollbackProblem>,
}

impl RollbackStatus {
    /// True when no tenant is held.
    pub fn is_clear(&self) -> bool {
        self.held.is_empty()
    }

    /// The held tenants and why, sorted by tenant.
    pub fn held(&self) -> &BTreeMap<TenantId, RollbackProblem> {
        &self.held
    }

    /// Why `tenant` is held, if it is.
    pub fn problem(&self, tenant: &TenantId) -> Option<&RollbackProblem> {
        self.held.get(tenant)
    }
}

/// Why a rollback acknowledgement was refused.
#[derive(Debug, thiserror::Error)]
pub enum AcknowledgeError {
    /// The tenant is not held: there is nothing to acknowledge.
    #[error("tenant {0} has no unacknowledged rollback")]
    NothingToAcknowledge(String),
    /// The tenant is not in the database (restored from before it was created). Create it first;
    /// its new chain then starts with the acknowledgement.
    #[error(
        "tenant {0} does not exist in this database; create it (`auditex tenant create {0}`), then acknowledge"
    )]
    UnknownTenant(String),
    /// Operator or reason missing or invalid.
    #[error("{0}")]
    Invalid(String),
    /// The acknowledgement record could not be appended.
    #[error(transparent)]
    Append(#[from] AppendError),
    /// Publishing the new checkpoint or logging it failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A checkpoint as far as rollback checks care: its size and root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Witnessed {
    size: TreeSize,
    root: Hash,
}

/// How a publication treats the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WitnessMode {
    /// The new checkpoint must be consistent with the one witnessed last.
    Check,
    /// An acknowledged rollback: the new checkpoint becomes the latest whatever the log held.
    Reset,
}

/// What was witnessed for one tenant, behind its own lock.
type WitnessSlot = std::sync::Arc<tokio::sync::Mutex<Option<Witnessed>>>;

/// The store's rollback state: where the files live, what was witnessed, who is held.
pub(crate) struct Guard {
    dir: Option<PathBuf>,
    /// What this process last wrote or read, per tenant, each behind a lock of its own held
    /// across the log's append: publications of one tenant are checked and written one at a
    /// time, while other tenants' logs are written at the same time (a lock over all tenants
    /// made every tick wait for one fsync per tenant in turn).
    witnessed: std::sync::Mutex<HashMap<TenantId, WitnessSlot>>,
    held: std::sync::Mutex<BTreeMap<TenantId, RollbackProblem>>,
}

impl Guard {
    /// Whether rollbacks are guarded against (a checkpoint folder, and the guard not turned
    /// off, as the evidence commands do).
    pub(crate) fn is_on(&self) -> bool {
        self.dir.is_some()
    }

    pub(crate) fn new(dir: Option<PathBuf>) -> Guard {
        Guard {
            dir,
            witnessed: std::sync::Mutex::new(HashMap::new()),
            held: std::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// The lock of what was witnessed for `tenant` (made on first use).
    fn slot(&self, tenant: &TenantId) -> WitnessSlot {
        self.witnessed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(tenant.clone())
            .or_default()
            .clone()
    }

    fn lock_held(&self) -> std::sync::MutexGuard<'_, BTreeMap<TenantId, RollbackProblem>> {
        // The map stays consistent even if a holder panicked.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Why `tenant` is held, if it is.
    pub(crate) fn problem(&self, tenant: &TenantId) -> Option<RollbackProblem> {
        self.lock_held().get(tenant).cloned()
    }

    pub(crate) fn status(&self) -> RollbackStatus {
        RollbackStatus {
            held: self.lock_held().clone(),
        }
    }

    fn hold(&self, tenant: &TenantId, problem: RollbackProblem) {
        let mut held = self.lock_held();
        if held.get(tenant) != Some(&problem) {
            tracing::error!(
                tenant = %tenant,
                problem = problem.kind(),
                "ROLLBACK DETECTED for tenant {tenant}: {problem}. No checkpoint will be published \
                 and appends are refused for this tenant until an operator runs \
                 `auditex rollback acknowledge --tenant {tenant} --reason \"...\"`"
            );
        }
        held.insert(tenant.clone(), problem);
    }

    /// The published-checkpoint log of `tenant`, when rollback protection is on.
    fn log(&self, tenant: &TenantId) -> Option<PathBuf> {
        self.dir.as_deref().map(|d| history_file(d, tenant))
    }
}

/// Where deployments from before the log kept the latest checkpoint of `tenant` in `dir` (read
/// while the log has no line; see the module documentation).
pub fn checkpoint_file(dir: &Path, tenant: &TenantId) -> PathBuf {
    dir.join(format!("{}.{CHECKPOINT_FILE_EXTENSION}", tenant.as_str()))
}

/// The log of every checkpoint published for `tenant` in `dir`; its last complete line is the
/// latest.
pub fn history_file(dir: &Path, tenant: &TenantId) -> PathBuf {
    dir.join(format!("{}.{HISTORY_FILE_EXTENSION}", tenant.as_str()))
}

/// The signed note of the latest checkpoint published for `tenant` according to `dir`: the last
/// complete line of its log, or while the log has none, the file of a deployment from before
/// the log. `Ok(None)` when there is neither; an error (which holds the tenant) when the last
/// complete line, or that file, cannot be read.
pub fn latest_published_note(dir: &Path, tenant: &TenantId) -> Result<Option<String>, String> {
    let log = history_file(dir, tenant);
    if let Some(line) = last_complete_line(&log).map_err(|e| format!("{}: {e}", log.display()))? {
        let entry: HistoryLine = serde_json::from_str(&line)
            .map_err(|e| format!("{}: the last line is not a checkpoint: {e}", log.display()))?;
        return Ok(Some(entry.signed_note));
    }
    let legacy = checkpoint_file(dir, tenant);
    match std::fs::read(&legacy) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|e| format!("{}: {e}", legacy.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", legacy.display())),
    }
}

/// The size and root of the latest checkpoint on file for `tenant` (see
/// [`latest_published_note`]).
fn read_latest(dir: &Path, tenant: &TenantId) -> Result<Option<Witnessed>, String> {
    let Some(note) = latest_published_note(dir, tenant)? else {
        return Ok(None);
    };
    let c = parse_stored(note, 0)?;
    Ok(Some(Witnessed {
        size: c.size,
        root: c.root,
    }))
}

/// The last non-empty line of the file at `path` that ends with a newline, read from the end so
/// that a long log costs no more than a short one. Bytes after the last newline are a write a
/// crash cut short: never synced whole, so never acknowledged, and passed over.
fn last_complete_line(path: &Path) -> std::io::Result<Option<String>> {
    last_complete_line_reading(path, 4096)
}

/// [`last_complete_line`], reading `window` bytes from the end first.
fn last_complete_line_reading(path: &Path, window: u64) -> std::io::Result<Option<String>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let mut window = window.max(1);
    loop {
        let start = len.saturating_sub(window);
        file.seek(SeekFrom::Start(start))?;
        let mut tail = Vec::new();
        Read::by_ref(&mut file)
            .take(len - start)
            .read_to_end(&mut tail)?;
        // The complete lines end at the last newline; trailing empty lines are skipped.
        let end = tail
            .iter()
            .rposition(|&b| b == b'\n')
            .and_then(|last_newline| tail[..last_newline].iter().rposition(|&b| b != b'\n'))
            .map(|last_byte| last_byte + 1);
        let found = match end {
            Some(end) => match tail[..end].iter().rposition(|&b| b == b'\n') {
                Some(newline) => Some(&tail[newline + 1..end]),
                None if start == 0 => Some(&tail[..end]),
                None => None,
            },
            None if start == 0 => return Ok(None),
            None => None,
        };
        if let Some(line) = found {
            return String::from_utf8(line.to_vec())
                .map(Some)
                .map_err(std::io::Error::other);
        }
        // The window began inside the line: read a larger one.
        window = window.saturating_mul(2);
    }
}

/// One line of the published-checkpoint log.
#[derive(serde::Serialize, serde::Deserialize)]
struct HistoryLine {
    published_at_us: u64,
    signed_note: String,
}

/// Appends `checkpoint` to the log at `path` and fsyncs it, and the folder too when the log is
/// new (so that its name survives a power cut). When the log does not end with a newline (a line
/// a crash cut short), one is written first, so that the cut line stays a line of its own, passed
/// over when read, instead of swallowing this checkpoint.
fn append_history(path: &Path, checkpoint: &StoredCheckpoint) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let entry = serde_json::to_string(&HistoryLine {
        published_at_us: checkpoint.published_at_us,
        signed_note: checkpoint.signed_note.clone(),
    })
    .map_err(std::io::Error::other)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let new = !path.exists();
    if new {
        crate::file_modes::create_private_dir_all(dir)?;
    }
    let mut file = crate::file_modes::private_file_options()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    let len = file.metadata()?.len();
    let mut last = [b'\n'];
    if len > 0 {
        file.read_exact_at(&mut last, len - 1)?;
    }
    let mut line = String::with_capacity(entry.len() + 2);
    if last[0] != b'\n' {
        line.push('\n');
    }
    line.push_str(&entry);
    line.push('\n');
    file.write_all(line.as_bytes())?;
    file.sync_data()?;
    if new {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Moves the checkpoint file of a deployment from before the log into the log (when the log has
/// no line yet), then removes the file, so that the log alone says what was published. A file
/// that cannot be read is left where it is: [`read_latest`] reports it while the log is empty.
fn retire_legacy_file(dir: &Path, tenant: &TenantId) -> Result<(), StoreError> {
    let legacy = checkpoint_file(dir, tenant);
    let Ok(note) = std::fs::read_to_string(&legacy) else {
        return Ok(());
    };
    let Ok(mut checkpoint) = parse_stored(note, 0) else {
        return Ok(());
    };
    let log = history_file(dir, tenant);
    if last_complete_line(&log)
        .map_err(|e| io_error(&log, e))?
        .is_none()
    {
        checkpoint.published_at_us = modified_us(&legacy);
        append_history(&log, &checkpoint).map_err(|e| write_error(&log, &e))?;
    }
    std::fs::remove_file(&legacy).map_err(|e| io_error(&legacy, e))?;
    tracing::info!(tenant = %tenant, path = %legacy.display(),
        "the latest published checkpoint is kept in the published-checkpoint log now; removed the older file");
    Ok(())
}

/// When `path` was last modified, in microseconds since the epoch (0 when unknown).
fn modified_us(path: &Path) -> u64 {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Parses a signed checkpoint note into a stored checkpoint.
fn parse_stored(signed_note: String, published_at_us: u64) -> Result<StoredCheckpoint, String> {
    let note = Note::parse(signed_note.as_bytes()).map_err(|e| e.to_string())?;
    let checkpoint = Checkpoint::parse_body(note.text()).map_err(|e| e.to_string())?;
    Ok(StoredCheckpoint {
        size: checkpoint.size(),
        root: checkpoint.root(),
        signed_note,
        published_at_us,
    })
}

/// Every checkpoint the folder knows was published for `tenant`: the log's lines and the latest
/// file (which a deployment from before the log has alone; its modification time stands in for
/// the publication time). Lines that cannot be read (a write torn by a crash) are skipped with a
/// warning.
fn published_in_folder(dir: &Path, tenant: &TenantId) -> Vec<StoredCheckpoint> {
    let mut out = Vec::new();
    let log = history_file(dir, tenant);
    match std::fs::read_to_string(&log) {
        Ok(text) => {
            for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
                match serde_json::from_str::<HistoryLine>(line)
                    .map_err(|e| e.to_string())
                    .and_then(|h| parse_stored(h.signed_note, h.published_at_us))
                {
                    Ok(c) => out.push(c),
                    Err(e) => tracing::warn!(path = %log.display(), line = i + 1,
                        "skipping an unreadable line of the published-checkpoint log: {e}"),
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(path = %log.display(), "cannot read the published-checkpoint log: {e}")
        }
    }
    let file = checkpoint_file(dir, tenant);
    if let Ok(note) = std::fs::read_to_string(&file)
        && let Ok(c) = parse_stored(note, modified_us(&file))
    {
        out.push(c);
    }
    out
}

fn io_error(path: &Path, e: impl fmt::Display) -> StoreError {
    StoreError::Witness(format!("published-checkpoint file {}: {e}", path.display()))
}

/// A failed write of a checkpoint file: a full file system is reported as storage full, like
/// the database's.
fn write_error(path: &Path, e: &std::io::Error) -> StoreError {
    if super::faults::is_storage_full_io(e) {
        StoreError::StorageFull(format!("published-checkpoint file {}: {e}", path.display()))
    } else {
        io_error(path, e)
    }
}

/// Compares the database's tree of `tenant` with a witnessed checkpoint.
async fn compare(
    store: &Store,
    tenant: &TenantId,
    witnessed: Witnessed,
) -> Result<Option<RollbackProblem>, StoreError> {
    // A tenant the database does not hold has no records: its size is zero.
    let database = store.tree_size(tenant).await?;
    compare_at(store, tenant, witnessed, database).await
}

/// [`compare`] with the database's tree size of `tenant` already read.
async fn compare_at(
    store: &Store,
    tenant: &TenantId,
    witnessed: Witnessed,
    database: TreeSize,
) -> Result<Option<RollbackProblem>, StoreError> {
    if database < witnessed.size {
        return Ok(Some(RollbackProblem::Behind {
            witnessed: witnessed.size,
            witnessed_root: witnessed.root,
            database,
        }));
    }
    if witnessed.size == TreeSize::ZERO {
        return Ok(None);
    }
    // Within the tree, as just read: the root needs no second look at its size (this runs
    // before every publication, and each read is a transaction of its own).
    let root = store.compact_tree_at(tenant, witnessed.size).await?.root();
    if root != witnessed.root {
        return Ok(Some(RollbackProblem::Forked {
            size: witnessed.size,
            witnessed_root: witnessed.root,
            database_root: root,
        }));
    }
    Ok(None)
}

/// Tenants named by published-checkpoint logs (or older checkpoint files) in `dir`.
fn tenants_with_files(dir: &Path) -> Result<Vec<TenantId>, StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| io_error(dir, e))?.path();
        let extension = path.extension().and_then(|e| e.to_str());
        if extension != Some(HISTORY_FILE_EXTENSION) && extension != Some(CHECKPOINT_FILE_EXTENSION)
        {
            continue;
        }
        match path
            .file_stem()
            .and_then(|s| s.to_str())
            .map(TenantId::parse)
        {
            Some(Ok(t)) => out.push(t),
            _ => tracing::warn!(path = %path.display(), "ignoring a file that names no tenant"),
        }
    }
    Ok(out)
}

/// Every tenant in the database or named by a file in `dir`.
async fn tenants_to_check(store: &Store, dir: &Path) -> Result<Vec<TenantId>, StoreError> {
    let mut tenants = store.tenants().await?;
    let mut seen: std::collections::HashSet<TenantId> = tenants.iter().cloned().collect();
    for t in tenants_with_files(dir)? {
        if seen.insert(t.clone()) {
            tenants.push(t);
        }
    }
    Ok(tenants)
}

/// Checks every tenant (in the database or named by a file) against the latest checkpoint on
/// file, holds the tenants that are behind or forked, and starts a log for tenants that have
/// checkpoints but none on file yet (a deployment that predates the files). Runs when the store
/// opens, before the checkpoint publisher starts.
pub(crate) async fn check_on_open(store: &Store) -> Result<(), StoreError> {
    let guard = store.rollback_guard();
    let Some(dir) = guard.dir.clone() else {
        if store.config().publish_in_background {
            tracing::warn!(
                "no checkpoint folder is configured: rollback protection is off (set AUDITEX_CHECKPOINT_DIR)"
            );
        }
        return Ok(());
    };
    crate::file_modes::create_private_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
    // Tenants side by side, as a publication round does: one after another, ten thousand
    // tenants' reads and first log writes made the store take minutes to open.
    let at_once = super::publish_concurrency(store.config().read_connections);
    let results: Vec<Result<(), StoreError>> =
        futures_util::stream::iter(tenants_to_check(store, &dir).await?)
            .map(|tenant| check_tenant_on_open(store, &dir, tenant))
            .buffer_unordered(at_once)
            .collect()
            .await;
    results.into_iter().collect()
}

/// [`check_on_open`] of one tenant.
async fn check_tenant_on_open(
    store: &Store,
    dir: &Path,
    tenant: TenantId,
) -> Result<(), StoreError> {
    let guard = store.rollback_guard();
    let slot = guard.slot(&tenant);
    let mut witnessed = slot.lock().await;
    retire_legacy_file(dir, &tenant)?;
    let path = history_file(dir, &tenant);
    match read_latest(dir, &tenant) {
        Err(problem) => {
            store.hold_for_rollback(&tenant, RollbackProblem::Unreadable { path, problem })
        }
        Ok(Some(w)) => match compare(store, &tenant, w).await? {
            Some(problem) => store.hold_for_rollback(&tenant, problem),
            None => {
                *witnessed = Some(w);
            }
        },
        Ok(None) => {
            if let Some(latest) = store.latest_checkpoint(&tenant).await? {
                let (log, logged) = (path.clone(), latest.clone());
                tokio::task::spawn_blocking(move || {
                    append_history(&log, &logged).map_err(|e| write_error(&log, &e))
                })
                .await
                .map_err(|e| io_error(&path, e))??;
                tracing::info!(tenant = %tenant, size = latest.size.get(), path = %path.display(),
                    "recorded the latest published checkpoint outside the database");
                *witnessed = Some(Witnessed {
                    size: latest.size,
                    root: latest.root,
                });
            }
        }
    }
    Ok(())
}

/// What [`check_on_open`] would hold if `store`'s database were opened with the checkpoint files
/// in `dir`, without writing or holding anything: a restore reports it before the swap.
pub(crate) async fn predict(store: &Store, dir: &Path) -> Result<RollbackStatus, StoreError> {
    let mut held = BTreeMap::new();
    for tenant in tenants_to_check(store, dir).await? {
        let problem = match read_latest(dir, &tenant) {
            Err(problem) => Some(RollbackProblem::Unreadable {
                path: history_file(dir, &tenant),
                problem,
            }),
            Ok(Some(w)) => compare(store, &tenant, w).await?,
            Ok(None) => None,
        };
        if let Some(problem) = problem {
            held.insert(tenant, problem);
        }
    }
    Ok(RollbackStatus { held })
}

/// Re-reads the logs of held tenants and releases those that are consistent again (another
/// process, such as `auditex rollback acknowledge`, logged a checkpoint of the new tree after
/// appending the acknowledgement). Called by the checkpoint publisher on every tick.
pub(crate) async fn recheck_held(store: &Store) -> Result<(), StoreError> {
    let guard = store.rollback_guard();
    let held: Vec<TenantId> = guard.lock_held().keys().cloned().collect();
    if held.is_empty() {
        return Ok(());
    }
    for tenant in held {
        let Some(dir) = guard.dir.as_deref() else {
            continue;
        };
        let slot = guard.slot(&tenant);
        let mut witnessed = slot.lock().await;
        let Ok(Some(w)) = read_latest(dir, &tenant) else {
            continue;
        };
        if compare(store, &tenant, w).await?.is_none() {
            store.release_rollback_hold(&tenant);
            *witnessed = Some(w);
            tracing::info!(tenant = %tenant, size = w.size.get(),
                "the rollback was acknowledged elsewhere; publishing checkpoints again");
        }
    }
    Ok(())
}

/// Records `checkpoint` in the tenant's log before it is stored. With [`WitnessMode::Check`]
/// the checkpoint must extend the one witnessed last; if it does not, the tenant is held and
/// [`StoreError::RollbackUnacknowledged`] returned. `database` is the tenant's tree size when the
/// caller has just read it (else it is read here when needed).
pub(crate) async fn witness(
    store: &Store,
    tenant: &TenantId,
    checkpoint: &StoredCheckpoint,
    mode: WitnessMode,
    database: Option<TreeSize>,
) -> Result<(), StoreError> {
    let guard = store.rollback_guard();
    let (Some(dir), Some(path)) = (guard.dir.as_deref(), guard.log(tenant)) else {
        return Ok(());
    };
    let new = Witnessed {
        size: checkpoint.size,
        root: checkpoint.root,
    };
    let slot = guard.slot(tenant);
    let mut witnessed = slot.lock().await;
    if mode == WitnessMode::Check {
        if let Some(problem) = guard.problem(tenant) {
            return Err(StoreError::RollbackUnacknowledged {
                tenant: tenant.to_string(),
                problem,
            });
        }
        if let Some(last) = *witnessed {
            let problem = if new.size < last.size {
                Some(RollbackProblem::Behind {
                    witnessed: last.size,
                    witnessed_root: last.root,
                    database: new.size,
                })
            } else if new.size == last.size {
                (new.root != last.root).then_some(RollbackProblem::Forked {
                    size: last.size,
                    witnessed_root: last.root,
                    database_root: new.root,
                })
            } else {
                match database {
                    Some(size) => compare_at(store, tenant, last, size).await?,
                    None => compare(store, tenant, last).await?,
                }
            };
            if let Some(problem) = problem {
                store.hold_for_rollback(tenant, problem.clone());
                return Err(StoreError::RollbackUnacknowledged {
                    tenant: tenant.to_string(),
                    problem,
                });
            }
            if new == last {
                return Ok(());
            }
        }
        // Another process sharing this folder (a second instance on the same PostgreSQL) may
        // have logged a larger checkpoint meanwhile; never move the log's latest backwards.
        if let Ok(Some(on_disk)) = read_latest(dir, tenant)
            && on_disk.size >= new.size
        {
            return Ok(());
        }
    }
    let log = path.clone();
    let logged = checkpoint.clone();
    tokio::task::spawn_blocking(move || {
        append_history(&log, &logged).map_err(|e| write_error(&log, &e))
    })
    .await
    .map_err(|e| io_error(&path, e))??;
    *witnessed = Some(new);
    Ok(())
}

impl Store {
    /// Holds `tenant` for `problem`, and forgets the Merkle tiles kept for it: they were read from
    /// a tree the database no longer extends (a kept tile is only right while the stored tree
    /// grows at its end), and the roots the appender resumes from and proofs must not use them.
    fn hold_for_rollback(&self, tenant: &TenantId, problem: RollbackProblem) {
        self.rollback_guard().hold(tenant, problem);
        self.forget_tiles(tenant);
    }

    /// Releases `tenant` once its tree is consistent with the published log again, forgetting
    /// its kept tiles once more: a proof may have kept one read before the hold.
    fn release_rollback_hold(&self, tenant: &TenantId) {
        // Forgotten first: nothing kept can be served between the release and the forget.
        self.forget_tiles(tenant);
        self.rollback_guard().lock_held().remove(tenant);
    }

    /// The tenants held because their database is behind (or forks from) the checkpoint published
    /// last, and why. Clear when rollback protection is off or all is well.
    pub fn rollback_status(&self) -> RollbackStatus {
        self.rollback_guard().status()
    }

    /// Refuses work that would extend a held tenant's chain.
    pub(crate) fn refuse_if_rolled_back(&self, tenant: &TenantId) -> Result<(), StoreError> {
        // A tenant whose erasure journal was not carried out must not grow either.
        self.erasure_journal().refuse_if_blocked(tenant)?;
        match self.rollback_guard().problem(tenant) {
            Some(problem) => Err(StoreError::RollbackUnacknowledged {
                tenant: tenant.to_string(),
                problem,
            }),
            None => Ok(()),
        }
    }

    /// Acknowledges a detected rollback of `tenant`: appends a `rollback_acknowledged` record
    /// (operator, reason, the published and the database tree states), publishes a checkpoint of
    /// the resulting tree, resets the checkpoint file to it and releases the tenant.
    ///
    /// # Errors
    /// [`AcknowledgeError`]: nothing to acknowledge, unknown tenant, empty operator or reason, or
    /// the append or publication failed (the tenant then stays held).
    pub async fn acknowledge_rollback(
        &self,
        tenant: &TenantId,
        operator: &str,
        reason: &str,
    ) -> Result<Receipt, AcknowledgeError> {
        let Some(problem) = self.rollback_guard().problem(tenant) else {
            return Err(AcknowledgeError::NothingToAcknowledge(tenant.to_string()));
        };
        if operator.trim().is_empty() || reason.trim().is_empty() {
            return Err(AcknowledgeError::Invalid(
                "an acknowledgement needs the operator's name and a reason".into(),
            ));
        }
        if !self.tenant_exists(tenant).await? {
            return Err(AcknowledgeError::UnknownTenant(tenant.to_string()));
        }
        let database = self.tree_size(tenant).await?;
        let abandoned = self.abandoned_in_folder(tenant, database).await?;
        let mut payload = serde_json::json!({
            "operator": operator.trim(),
            "reason": reason.trim(),
            "problem": problem.kind(),
            "database_size": database.get(),
        });
        match &problem {
            RollbackProblem::Behind {
                witnessed,
                witnessed_root,
                ..
            } => {
                payload["published_size"] = witnessed.get().into();
                payload["published_root"] = witnessed_root.to_hex().into();
                // Receipts naming these sequence numbers were issued for records this database
                // no longer holds; the numbers are taken again from here on.
                payload["abandoned_from_seq"] = database.get().into();
                payload["abandoned_until_seq"] = witnessed.get().into();
            }
            RollbackProblem::Forked {
                size,
                witnessed_root,
                database_root,
            } => {
                payload["published_size"] = size.get().into();
                payload["published_root"] = witnessed_root.to_hex().into();
                payload["database_root_at_published_size"] = database_root.to_hex().into();
                // Where the two trees part is not known (the published tree's records are gone),
                // so every number below the published size may have named other content.
                payload["abandoned_until_seq"] = size.get().into();
            }
            RollbackProblem::Unreadable { path, problem } => {
                payload["file"] = path.display().to_string().into();
                payload["file_problem"] = problem.clone().into();
            }
        }
        let draft = super::ServiceDraft::prepare(
            &uuid::Uuid::now_v7().to_string(),
            EventType::RollbackAcknowledged,
            &payload,
        )
        .map_err(|e| AcknowledgeError::Invalid(e.to_string()))?;
        // Straight to the appender: `Store::append` refuses held tenants, and this record is the
        // one that may (and must) come first after the rollback point.
        let receipt = self
            .appender(tenant)
            .await?
            .submit(vec![draft.into_prepared()])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::Corrupt("the acknowledgement got no receipt".into()))?;
        for c in &abandoned {
            self.insert_abandoned_checkpoint(tenant, receipt.seq, c)
                .await?;
        }
        let size = self.tree_size(tenant).await?;
        let head = TreeHead {
            size,
            root: self.root_at(tenant, size).await?,
        };
        let checkpoint = self.sign_checkpoint(tenant, head).await?;
        witness(self, tenant, &checkpoint, WitnessMode::Reset, None).await?;
        self.store_checkpoint(tenant, &checkpoint).await?;
        self.release_rollback_hold(tenant);
        tracing::warn!(
            tenant = %tenant,
            operator = operator.trim(),
            seq = receipt.seq,
            abandoned_checkpoints = abandoned.len(),
            "rollback acknowledged and recorded in the ledger; publishing checkpoints again"
        );
        // Erasures the restore removed from the chain, carried out again when the store
        // opened, get records of this chain now that it may grow (`erasure.rs`). One that
        // fails is tried again at the next start; its values stay erased meanwhile.
        if let Err(e) = self.restate_reerased(tenant).await {
            tracing::error!(tenant = %tenant, error = %e,
                "cannot restate the erasures the restore removed from the chain; their values stay erased and are withheld; tried again at the next start");
        }
        Ok(receipt)
    }
}

impl Store {
    /// The checkpoints the folder knows were published for `tenant` that its tree of `database`
    /// records does not extend (larger than it, or another root at their size), without those
    /// an earlier acknowledgement recorded already.
    async fn abandoned_in_folder(
        &self,
        tenant: &TenantId,
        database: TreeSize,
    ) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let Some(dir) = self.rollback_guard().dir.clone() else {
            return Ok(Vec::new());
        };
        let known: Vec<(TreeSize, Hash)> = self
            .abandoned_checkpoints(tenant, None, u64::MAX)
            .await?
            .into_iter()
            .map(|(_, c)| (c.size, c.root))
            .collect();
        let mut out: Vec<StoredCheckpoint> = Vec::new();
        for c in published_in_folder(&dir, tenant) {
            let duplicate = known.contains(&(c.size, c.root))
                || out.iter().any(|o| o.size == c.size && o.root == c.root);
            if duplicate {
                continue;
            }
            let extended = c.size <= database
                && (c.size == TreeSize::ZERO || self.root_at(tenant, c.size).await? == c.root);
            if !extended {
                out.push(c);
            }
        }
        out.sort_by_key(|c| c.size);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A checkpoint of `size` for `acme`, signed with a fixed key, its root made of `size`.
    fn checkpoint_of(size: u64) -> StoredCheckpoint {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let origin = "auditex.test/ledger/acme";
        let signer = ledger::note::NoteSigner::new(origin, &key).expect("signer");
        let root = Hash::from_bytes([u8::try_from(size % 256).expect("small"); 32]);
        let checkpoint =
            Checkpoint::new(origin.to_owned(), TreeSize::new(size), root).expect("checkpoint");
        let note = ledger::checkpoint::sign_checkpoint(&checkpoint, std::slice::from_ref(&signer))
            .expect("sign");
        parse_stored(note, size).expect("parse")
    }

    /// Appends `bytes` to the log as they are (a write cut short, or damage).
    fn append_raw(log: &Path, bytes: &[u8]) {
        std::fs::OpenOptions::new()
            .append(true)
            .open(log)
            .expect("open")
            .write_all(bytes)
            .expect("write");
    }

    fn latest_size(dir: &Path, tenant: &TenantId) -> Option<u64> {
        read_latest(dir, tenant)
            .expect("readable")
            .map(|w| w.size.get())
    }

    #[test]
    fn the_latest_checkpoint_is_the_log_s_last_complete_line_whatever_its_length() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tenant = TenantId::parse("acme").expect("tenant");
        let log = history_file(dir.path(), &tenant);
        assert_eq!(read_latest(dir.path(), &tenant), Ok(None));
        for size in 1..=40u64 {
            append_history(&log, &checkpoint_of(size)).expect("append");
            assert_eq!(latest_size(dir.path(), &tenant), Some(size));
            let last = last_complete_line(&log).expect("read").expect("a line");
            // Windows smaller than a line, so that the read from the end has to grow.
            for window in [1, 7, 100, 333] {
                assert_eq!(
                    last_complete_line_reading(&log, window).expect("read"),
                    Some(last.clone())
                );
            }
        }
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 1, "the log is the only file: {names:?}");
        assert_eq!(published_in_folder(dir.path(), &tenant).len(), 40);
    }

    #[test]
    fn a_line_cut_short_by_a_crash_is_passed_over_and_does_not_swallow_the_next() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tenant = TenantId::parse("acme").expect("tenant");
        let log = history_file(dir.path(), &tenant);
        append_history(&log, &checkpoint_of(5)).expect("append");
        append_raw(&log, br#"{"published_at_us":6,"signed_note":"auditex.te"#);
        assert_eq!(
            latest_size(dir.path(), &tenant),
            Some(5),
            "never synced whole"
        );
        append_history(&log, &checkpoint_of(7)).expect("append");
        assert_eq!(latest_size(dir.path(), &tenant), Some(7));
        let sizes: Vec<u64> = published_in_folder(dir.path(), &tenant)
            .iter()
            .map(|c| c.size.get())
            .collect();
        assert_eq!(sizes, [5, 7], "the cut line is a line of its own, skipped");
    }

    #[test]
    fn a_damaged_last_line_is_reported_so_the_tenant_is_held() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tenant = TenantId::parse("acme").expect("tenant");
        let log = history_file(dir.path(), &tenant);
        append_history(&log, &checkpoint_of(5)).expect("append");
        append_raw(&log, b"not a checkpoint\n");
        let err = read_latest(dir.path(), &tenant).expect_err("damaged");
        assert!(err.contains("the last line is not a checkpoint"), "{err}");
    }

    #[test]
    fn an_older_deployment_s_checkpoint_file_is_read_until_the_log_has_a_line_then_retired() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tenant = TenantId::parse("acme").expect("tenant");
        let legacy = checkpoint_file(dir.path(), &tenant);
        std::fs::write(&legacy, checkpoint_of(9).signed_note).expect("write");
        assert_eq!(latest_size(dir.path(), &tenant), Some(9));
        assert_eq!(
            tenants_with_files(dir.path()).expect("list"),
            std::slice::from_ref(&tenant)
        );
        retire_legacy_file(dir.path(), &tenant).expect("retire");
        assert!(!legacy.exists(), "the older file is removed");
        assert_eq!(
            latest_size(dir.path(), &tenant),
            Some(9),
            "its checkpoint is logged"
        );
        std::fs::write(&legacy, "not a note").expect("write");
        assert_eq!(
            latest_size(dir.path(), &tenant),
            Some(9),
            "the log wins once it has a line"
        );
        std::fs::remove_file(history_file(dir.path(), &tenant)).expect("remove");
        assert!(
            read_latest(dir.path(), &tenant).is_err(),
            "a damaged older file is reported while the log is empty"
        );
        retire_legacy_file(dir.path(), &tenant).expect("left alone");
        assert!(legacy.exists(), "a damaged file is kept for the operator");
    }
}
