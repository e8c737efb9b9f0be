//! Owner-only folders and files for everything the service keeps on disk.
//!
//! The data folder holds every tenant's decisions and the portal's password hashes (the SQLite
//! database and its `-wal`/`-shm` files), the generated master key, TLS key and session keys, the
//! mail outbox (reset links), and the published-checkpoint files that detect a rolled-back
//! database. Folders the service creates are created 0700 and files 0600, before anything is
//! written into them. What exists already is never changed silently: [`loose_modes`] finds
//! group- or world-accessible folders and files, and [`warn_loose_modes`] reports each at startup
//! with its path and mode (never its contents), so an operator can tighten them knowingly.
//!
//! Modes are a Unix notion; elsewhere creation falls back to the platform defaults and nothing
//! is reported.

use std::path::{Path, PathBuf};

/// Mode of a folder the service creates: owner only.
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// Mode of a file the service creates: owner read and write only.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// Permission bits that let anyone but the owner in.
const GROUP_OTHER_BITS: u32 = 0o077;

/// How deep [`loose_modes`] looks below each folder it is given (the data folder's `tls/` and
/// `outbox/` are one level down).
const SCAN_DEPTH_MAX: usize = 2;

/// Most entries [`loose_modes`] looks at per folder given: a large mail outbox must not slow a
/// start.
const SCAN_ENTRIES_MAX: usize = 10_000;

/// Most warnings logged one by one; the rest are counted in one line.
const WARNINGS_LOGGED_MAX: usize = 20;

/// Creates `dir` and every missing parent with mode 0700. Folders that exist are left as they
/// are (see [`loose_modes`]).
///
/// # Errors
/// The I/O error of the creation.
pub fn create_private_dir_all(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(PRIVATE_DIR_MODE)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// Open options that create a missing file with mode 0600 (an existing file keeps its mode).
pub fn private_file_options() -> std::fs::OpenOptions {
    #[allow(unused_mut)] // Only Unix sets a mode.
    let mut options = std::fs::OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(PRIVATE_FILE_MODE);
    }
    options
}

/// Creates `path` as an empty file with mode 0600 unless it exists; an existing file is left
/// untouched, contents and mode alike.
///
/// # Errors
/// The I/O error of the creation.
pub fn create_private_file_if_missing(path: &Path) -> std::io::Result<()> {
    private_file_options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map(drop)
}

/// A secret file that may not be used: unreadable, or readable by group or others.
#[derive(Debug, thiserror::Error)]
pub enum PrivateFileError {
    /// The file could not be inspected.
    #[error("secret file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Group or others may read the file.
    #[error(
        "secret file {path} is readable by group or others (mode {mode:o}); run `chmod 600 {path}` (and keep it outside the repository)"
    )]
    Permissions {
        /// The file.
        path: String,
        /// Its mode bits.
        mode: u32,
    },
}

/// Refuses a secret file that group or others may read: the master key file, the TLS private
/// key, the session-signing keys, the SMTP password, a configuration file holding a database
/// password. Unlike [`loose_modes`], which reports, this is a gate.
///
/// # Errors
/// [`PrivateFileError::Io`] when the file cannot be inspected, [`PrivateFileError::Permissions`]
/// when its mode allows group or other access.
pub fn check_private_file(path: &Path) -> Result<(), PrivateFileError> {
    let meta = std::fs::metadata(path).map_err(|source| PrivateFileError::Io {
        path: path.display().to_string(),
        source,
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & GROUP_OTHER_BITS != 0 {
            return Err(PrivateFileError::Permissions {
                path: path.display().to_string(),
                mode,
            });
        }
    }
    let _ = meta;
    Ok(())
}

/// A folder or file that someone other than its owner may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LooseMode {
    /// The folder or file.
    pub path: PathBuf,
    /// Its permission bits, e.g. `0o644`.
    pub mode: u32,
    /// Whether it is a folder (expected 0700) rather than a file (expected 0600).
    pub is_dir: bool,
}

impl LooseMode {
    /// The mode the service would have created it with.
    pub fn expected(&self) -> u32 {
        if self.is_dir {
            PRIVATE_DIR_MODE
        } else {
            PRIVATE_FILE_MODE
        }
    }
}

/// The folders and files at or below `roots` (up to two levels down) that group or others may
/// use, in a stable order. Missing roots, symbolic links below a root, and unreadable entries
/// are skipped: this is a report, not a gate.
pub fn loose_modes(roots: &[PathBuf]) -> Vec<LooseMode> {
    let mut found = Vec::new();
    #[cfg(unix)]
    for root in roots {
        let mut seen = 0;
        // A root is followed if it is a link: the folder it names is what holds the data.
        if let Ok(meta) = std::fs::metadata(root) {
            scan(root, &meta, 0, &mut seen, &mut found);
        }
    }
    #[cfg(not(unix))]
    let _ = roots;
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found.dedup_by(|a, b| a.path == b.path);
    found
}

#[cfg(unix)]
fn scan(
    path: &Path,
    meta: &std::fs::Metadata,
    depth: usize,
    seen: &mut usize,
    found: &mut Vec<LooseMode>,
) {
    use std::os::unix::fs::PermissionsExt;
    *seen += 1;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & GROUP_OTHER_BITS != 0 && (meta.is_dir() || meta.is_file()) {
        found.push(LooseMode {
            path: path.to_path_buf(),
            mode,
            is_dir: meta.is_dir(),
        });
    }
    if !meta.is_dir() || depth >= SCAN_DEPTH_MAX {
        return;
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return;
    };
    for entry in entries.flatten() {
        if *seen >= SCAN_ENTRIES_MAX {
            return;
        }
        // `DirEntry::metadata` does not follow links: a link's own mode means nothing.
        if let Ok(meta) = entry.metadata()
            && !meta.file_type().is_symlink()
        {
            scan(&entry.path(), &meta, depth + 1, seen, found);
        }
    }
}

/// Logs one WARN line per folder or file below `roots` that group or others may use (path and
/// mode only), and returns what it found.
pub fn warn_loose_modes(roots: &[PathBuf]) -> Vec<LooseMode> {
    let found = loose_modes(roots);
    for loose in found.iter().take(WARNINGS_LOGGED_MAX) {
        tracing::warn!(
            path = %loose.path.display(),
            mode = %format!("{:04o}", loose.mode),
            expected = %format!("{:04o}", loose.expected()),
            "{} {} is accessible to group or others (mode {:04o}); it may hold secrets or \
             evidence state: restrict it (chmod {:o}) unless this is intended",
            if loose.is_dir { "folder" } else { "file" },
            loose.path.display(),
            loose.mode,
            loose.expected(),
        );
    }
    if found.len() > WARNINGS_LOGGED_MAX {
        tracing::warn!(
            more = found.len() - WARNINGS_LOGGED_MAX,
            "more folders and files are accessible to group or others than are listed"
        );
    }
    found
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode_of(path: &Path) -> u32 {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn created_folders_are_0700_with_their_parents_and_files_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let nested = dir.path().join("a").join("b");
        create_private_dir_all(&nested).expect("create");
        assert_eq!(mode_of(&dir.path().join("a")), 0o700);
        assert_eq!(mode_of(&nested), 0o700);
        let file = nested.join("f");
        create_private_file_if_missing(&file).expect("create");
        assert_eq!(mode_of(&file), 0o600);
        let found = loose_modes(&[dir.path().join("a")]);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn existing_folders_and_files_keep_their_modes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let folder = dir.path().join("data");
        std::fs::create_dir(&folder).expect("mkdir");
        chmod(&folder, 0o755);
        create_private_dir_all(&folder).expect("exists");
        assert_eq!(mode_of(&folder), 0o755, "never changed silently");
        let file = folder.join("auditex.db");
        std::fs::write(&file, b"kept").expect("write");
        chmod(&file, 0o644);
        create_private_file_if_missing(&file).expect("exists");
        assert_eq!(mode_of(&file), 0o644);
        assert_eq!(std::fs::read(&file).expect("read"), b"kept");
    }

    #[test]
    fn a_world_readable_database_and_folder_are_reported_with_path_and_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        create_private_dir_all(&data.join("tls")).expect("create");
        let db = data.join("auditex.db");
        std::fs::write(&db, b"").expect("write");
        chmod(&db, 0o644);
        let key = data.join("tls").join("key.pem");
        std::fs::write(&key, b"").expect("write");
        chmod(&key, 0o640);
        let private = data.join("master.key");
        std::fs::write(&private, b"").expect("write");
        chmod(&private, 0o600);
        assert_eq!(
            warn_loose_modes(std::slice::from_ref(&data)),
            [
                LooseMode {
                    path: db.clone(),
                    mode: 0o644,
                    is_dir: false
                },
                LooseMode {
                    path: key,
                    mode: 0o640,
                    is_dir: false
                },
            ]
        );
        chmod(&data, 0o755);
        let found = loose_modes(&[data.clone(), data.clone()]);
        assert_eq!(found.len(), 3, "each path once: {found:?}");
        assert_eq!(
            found[0],
            LooseMode {
                path: data,
                mode: 0o755,
                is_dir: true
            }
        );
        assert_eq!(found[0].expected(), 0o700);
        assert_eq!(found[1].expected(), 0o600);
    }

    #[test]
    fn a_missing_folder_reports_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(loose_modes(&[dir.path().join("absent")]).is_empty());
    }
}
