//! Service settings: plain values (where the data lives, the master key, limits, the listener,
//! the portal), each validated with an error that names the setting — the environment variable an
//! operator sets. Nothing here knows the command line (the `cli` module fills these structs from
//! flags, environment variables and the configuration file) or builds a service (`cli` turns
//! settings into the store's, the listener's and the portal's configurations at startup), so
//! any module may depend on this one and this one depends on none but `file_modes`.
//!
//! Secrets (the master key, database passwords inside URLs) come only from the environment or
//! from files outside the repository; nothing here reads them from the working tree by default
//! except the embedded default's own data folder, which `.gitignore` excludes.

use std::path::{Path, PathBuf};

/// Default data folder of the embedded deployment.
pub const DATA_DIR_DEFAULT: &str = "data";

/// Name of the SQLite file inside the data folder.
pub const SQLITE_FILE_NAME: &str = "auditex.db";

/// The highest per-key request rate a deployment may set. High enough that the limit can be
/// lifted for one pipeline sending single appends at the service's capacity (the appender's
/// queue budgets then push back with 503); the per-address wall is four times it.
pub const RATE_PER_SECOND_MAX: u32 = 100_000;

/// The default sustained rate of an `ingest` key, per second: above what the service sustains
/// with single appends on two cores (BENCHMARKS.md), so that the limit does not cap one pipeline.
pub const INGEST_RATE_PER_SECOND_DEFAULT: u32 = 20_000;

/// Name of the generated master-key file inside the data folder.
pub const MASTER_KEY_FILE_NAME: &str = "master.key";

/// Name of the published-checkpoint folder inside the data folder, by default.
pub const CHECKPOINT_DIR_NAME: &str = "checkpoints";

/// Where vulnerability reports go (also in SECURITY.md and `auditex --help`).
pub const SECURITY_CONTACT: &str = "security@auditex.dev";

/// Reads a secret file (a key, a password): refused, naming the file and the `chmod 600` fix, when
/// group or others may read it. Every secret file the service reads goes through this (or through
/// [`crate::file_modes::check_private_file`], which it calls).
///
/// # Errors
/// [`ConfigError`] for `setting` when the file is unreadable or too widely readable.
pub fn read_secret_file(path: &Path, setting: &'static str) -> Result<String, ConfigError> {
    let problem = |e: &dyn std::fmt::Display| ConfigError {
        setting,
        problem: e.to_string(),
    };
    crate::file_modes::check_private_file(path).map_err(|e| problem(&e))?;
    std::fs::read_to_string(path)
        .map_err(|e| problem(&format!("secret file {}: {e}", path.display())))
}

/// A configuration error, naming the setting at fault.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {setting}: {problem}")]
pub struct ConfigError {
    /// The flag or environment variable.
    pub setting: &'static str,
    /// What is wrong and how to fix it.
    pub problem: String,
}

/// Settings shared by every command that opens the store. `Debug` redacts the secrets (the
/// master key and database URLs, which may carry passwords).
#[derive(Clone)]
pub struct StoreSettings {
    /// Folder for the embedded default: the SQLite file and the generated master key
    /// (`AUDITEX_DATA_DIR`).
    pub data_dir: PathBuf,
    /// Database URL; `None` means `<data_dir>/auditex.db` (`AUDITEX_DATABASE_URL`).
    pub database_url: Option<String>,
    /// PostgreSQL only: the schema owner's URL, for migrations (`AUDITEX_ADMIN_DATABASE_URL`).
    pub admin_database_url: Option<String>,
    /// The master key as 64 hex digits (`AUDITEX_MASTER_KEY`).
    pub master_key: Option<String>,
    /// A file holding the master key (`AUDITEX_MASTER_KEY_FILE`).
    pub master_key_file: Option<PathBuf>,
    /// A file of earlier master keys, during a rotation (`AUDITEX_PREVIOUS_MASTER_KEYS_FILE`).
    pub previous_master_keys_file: Option<PathBuf>,
    /// Production mode: a master key, TLS files and more must be configured
    /// (`AUDITEX_PRODUCTION`).
    pub production: bool,
    /// The service's checkpoint origin prefix (`AUDITEX_ORIGIN`).
    pub origin: String,
    /// Group-commit window in microseconds (`AUDITEX_GROUP_COMMIT_WINDOW_US`).
    pub group_commit_window_us: u64,
    /// Records that may wait in one tenant's append queue (`AUDITEX_APPEND_QUEUE_RECORDS_MAX`).
    pub append_queue_records_max: usize,
    /// Estimated bytes that may wait in one tenant's append queue
    /// (`AUDITEX_APPEND_QUEUE_BYTES_MAX`).
    pub append_queue_bytes_max: usize,
    /// Records that may wait in all append queues together
    /// (`AUDITEX_APPEND_QUEUE_TOTAL_RECORDS_MAX`).
    pub append_queue_total_records_max: usize,
    /// Estimated bytes that may wait in all append queues together
    /// (`AUDITEX_APPEND_QUEUE_TOTAL_BYTES_MAX`).
    pub append_queue_total_bytes_max: usize,
    /// The longest an append may wait in its queue, in milliseconds (`AUDITEX_APPEND_WAIT_MS_MAX`).
    pub append_wait_ms_max: u64,
    /// How far the clock may be behind the latest capture time, in milliseconds
    /// (`AUDITEX_CLOCK_BEHIND_MS_MAX`).
    pub clock_behind_ms_max: u64,
    /// Checkpoint publication interval in milliseconds (`AUDITEX_CHECKPOINT_INTERVAL_MS`).
    pub checkpoint_interval_ms: u64,
    /// Folder of the published-checkpoint files; `None` means `<data_dir>/checkpoints`
    /// (`AUDITEX_CHECKPOINT_DIR`).
    pub checkpoint_dir: Option<PathBuf>,
    /// How often `auditex serve` runs the retention scheduler, in seconds; 0 runs none
    /// (`AUDITEX_RETENTION_INTERVAL_S`).
    pub retention_interval_s: u64,
    /// PostgreSQL only: URLs of hot standbys that serve read-only requests
    /// (`AUDITEX_READ_DATABASE_URLS`, separated by spaces).
    pub read_database_urls: Vec<String>,
    /// How far behind the primary a read replica may replay, in milliseconds, before it is taken
    /// out of reads (`AUDITEX_REPLICA_LAG_MAX_MS`).
    pub replica_lag_max_ms: u64,
    /// PostgreSQL only: the other clusters tenants may be placed on, each `NAME=URL`
    /// (`AUDITEX_CELLS`, separated by spaces).
    pub cells: Vec<String>,
}

impl std::fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |set: bool| if set { Some("<redacted>") } else { None };
        f.debug_struct("StoreSettings")
            .field("data_dir", &self.data_dir)
            .field("database_url", &redacted(self.database_url.is_some()))
            .field(
                "admin_database_url",
                &redacted(self.admin_database_url.is_some()),
            )
            .field("master_key", &redacted(self.master_key.is_some()))
            .field("master_key_file", &self.master_key_file)
            .field("previous_master_keys_file", &self.previous_master_keys_file)
            .field("production", &self.production)
            .field("origin", &self.origin)
            .field("group_commit_window_us", &self.group_commit_window_us)
            .field("checkpoint_interval_ms", &self.checkpoint_interval_ms)
            .field("append_queue_records_max", &self.append_queue_records_max)
            .field("append_queue_bytes_max", &self.append_queue_bytes_max)
            .field(
                "append_queue_total_records_max",
                &self.append_queue_total_records_max,
            )
            .field(
                "append_queue_total_bytes_max",
                &self.append_queue_total_bytes_max,
            )
            .field("append_wait_ms_max", &self.append_wait_ms_max)
            .field("clock_behind_ms_max", &self.clock_behind_ms_max)
            .field("checkpoint_dir", &self.checkpoint_dir)
            .field("retention_interval_s", &self.retention_interval_s)
            .field(
                "read_database_urls",
                &redacted(!self.read_database_urls.is_empty()),
            )
            .field("replica_lag_max_ms", &self.replica_lag_max_ms)
            .field(
                "cells",
                &self
                    .cells
                    .iter()
                    .map(|c| c.split('=').next().unwrap_or_default())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Whether `name` can name a cell: 1–32 characters of a-z, 0-9 and '-', not starting with '-'
/// (migration 0028's check on the placement table).
pub fn valid_cell_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl StoreSettings {
    /// `AUDITEX_CELLS` as (name, URL) pairs, checked: names of 1–32 characters of a-z, 0-9 and
    /// '-', none twice and none `home` (the database of `AUDITEX_DATABASE_URL`), and `postgres://`
    /// URLs.
    ///
    /// # Errors
    /// [`ConfigError`] naming the entry that is wrong.
    pub fn cell_specs(&self) -> Result<Vec<(String, String)>, ConfigError> {
        let mut out: Vec<(String, String)> = Vec::new();
        for entry in &self.cells {
            let bad = |problem: String| ConfigError {
                setting: "AUDITEX_CELLS",
                problem,
            };
            let Some((name, url)) = entry.split_once('=') else {
                return Err(bad(format!(
                    "an entry is not NAME=postgres://…: {:?}",
                    entry.split("://").next().unwrap_or_default()
                )));
            };
            if !valid_cell_name(name) || name == "home" {
                return Err(bad(format!(
                    "{name:?} cannot name a cell: 1-32 characters of a-z, 0-9 and '-', not \
                     \"home\" (the database of AUDITEX_DATABASE_URL)"
                )));
            }
            if out.iter().any(|(n, _)| n == name) {
                return Err(bad(format!("cell {name} is named twice")));
            }
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(bad(format!("cell {name}: the URL must be postgres://…")));
            }
            out.push((name.to_owned(), url.to_owned()));
        }
        Ok(out)
    }
}

/// Shortest retention scheduler interval, in seconds (a minute).
pub const RETENTION_INTERVAL_S_MIN: u64 = 60;

/// Longest retention scheduler interval, in seconds (a week).
pub const RETENTION_INTERVAL_S_MAX: u64 = 604_800;

impl StoreSettings {
    /// The retention scheduler's interval (`None`: no scheduler).
    pub fn retention_interval(&self) -> Option<std::time::Duration> {
        (self.retention_interval_s > 0)
            .then(|| std::time::Duration::from_secs(self.retention_interval_s))
    }

    /// Checks the limits and the origin, in this order: the checkpoint interval, the retention
    /// interval, the group-commit window, the append queues (a queue holds at least `batch_records_max`, the
    /// store's largest batch), the append wait, the origin. The master key and the checkpoint
    /// folder are checked where they are loaded.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first setting at fault.
    pub fn validate(&self, batch_records_max: usize) -> Result<(), ConfigError> {
        if self.checkpoint_interval_ms == 0 || self.checkpoint_interval_ms > 1000 {
            return Err(ConfigError {
                setting: "AUDITEX_CHECKPOINT_INTERVAL_MS",
                problem: format!(
                    "{} is out of range: checkpoints must be published at least once a second (1..=1000)",
                    self.checkpoint_interval_ms
                ),
            });
        }
        if self.retention_interval_s != 0
            && !(RETENTION_INTERVAL_S_MIN..=RETENTION_INTERVAL_S_MAX)
                .contains(&self.retention_interval_s)
        {
            return Err(ConfigError {
                setting: "AUDITEX_RETENTION_INTERVAL_S",
                problem: format!(
                    "{} is out of range: 0 (no scheduler) or {RETENTION_INTERVAL_S_MIN}..={RETENTION_INTERVAL_S_MAX} seconds",
                    self.retention_interval_s
                ),
            });
        }
        if !(100..=60_000).contains(&self.replica_lag_max_ms) {
            return Err(ConfigError {
                setting: "AUDITEX_REPLICA_LAG_MAX_MS",
                problem: format!(
                    "{} is out of range: 100..=60000 milliseconds",
                    self.replica_lag_max_ms
                ),
            });
        }
        self.cell_specs()?;
        if self.group_commit_window_us > 100_000 {
            return Err(ConfigError {
                setting: "AUDITEX_GROUP_COMMIT_WINDOW_US",
                problem: "must be at most 100000 (100 ms)".into(),
            });
        }
        if self.append_queue_records_max < batch_records_max
            || self.append_queue_total_records_max < self.append_queue_records_max
        {
            return Err(ConfigError {
                setting: "AUDITEX_APPEND_QUEUE_RECORDS_MAX",
                problem: format!(
                    "must be at least one full batch ({batch_records_max}) and at most AUDITEX_APPEND_QUEUE_TOTAL_RECORDS_MAX"
                ),
            });
        }
        if self.append_queue_bytes_max == 0
            || self.append_queue_total_bytes_max < self.append_queue_bytes_max
        {
            return Err(ConfigError {
                setting: "AUDITEX_APPEND_QUEUE_BYTES_MAX",
                problem: "must be positive and at most AUDITEX_APPEND_QUEUE_TOTAL_BYTES_MAX".into(),
            });
        }
        if self.append_wait_ms_max == 0 {
            return Err(ConfigError {
                setting: "AUDITEX_APPEND_WAIT_MS_MAX",
                problem: "must be positive".into(),
            });
        }
        if self.origin.is_empty() || self.origin.chars().any(|c| c.is_whitespace() || c == '+') {
            return Err(ConfigError {
                setting: "AUDITEX_ORIGIN",
                problem: "must be non-empty, without spaces or '+', e.g. ledger.example-bank.com"
                    .into(),
            });
        }
        Ok(())
    }

    /// Refuses, in production, a published-checkpoint folder that is not configured or lies
    /// inside the data folder, and warns about it otherwise. The folder is what detects a
    /// rolled-back database; restored together with the database (a volume or VM snapshot of
    /// the data folder, the most common restore), it is rolled back too and detects nothing.
    ///
    /// # Errors
    /// [`ConfigError`] naming `AUDITEX_CHECKPOINT_DIR`, in production mode only.
    pub fn check_checkpoint_dir(&self) -> Result<(), ConfigError> {
        let problem = match &self.checkpoint_dir {
            None => Some(format!(
                "is not set, so published checkpoints are kept in {}, inside the data folder: \
                 restoring a copy of the data folder restores them with the database and the \
                 rollback goes undetected. Set it to a folder on another volume, outside every \
                 backup and restore of the data folder",
                self.checkpoint_dir().display()
            )),
            Some(dir) if inside(dir, &self.data_dir) => Some(format!(
                "{} is inside the data folder {}: restoring a copy of the data folder restores \
                 it with the database and the rollback goes undetected. Use a folder on another \
                 volume, outside every backup and restore of the data folder",
                dir.display(),
                self.data_dir.display()
            )),
            Some(_) => None,
        };
        match problem {
            Some(problem) if self.production => Err(ConfigError {
                setting: "AUDITEX_CHECKPOINT_DIR",
                problem,
            }),
            Some(problem) => {
                tracing::warn!(
                    "ROLLBACK PROTECTION IS WEAK: AUDITEX_CHECKPOINT_DIR {problem} (production \
                     mode refuses to start like this)"
                );
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// The folder of published-checkpoint files (the store's rollback guard).
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.checkpoint_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join(CHECKPOINT_DIR_NAME))
    }

    /// The data folder.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The SQLite file of the embedded default, when no database URL is configured.
    pub fn default_sqlite_file(&self) -> PathBuf {
        self.data_dir.join(SQLITE_FILE_NAME)
    }

    /// What `auditex serve` checks for loose modes at startup (see [`crate::file_modes`]): the
    /// data folder, the published-checkpoint folder, and `sqlite_file` (the SQLite database the
    /// settings name, if they name one) when it is kept elsewhere, with its `-wal` and `-shm`
    /// files and the views' file beside it (`-views`, with its own two).
    pub fn private_paths(&self, sqlite_file: Option<&Path>) -> Vec<PathBuf> {
        let mut paths = vec![self.data_dir.clone(), self.checkpoint_dir()];
        if let Some(db) = sqlite_file
            && !inside(db, &self.data_dir)
        {
            for suffix in ["", "-wal", "-shm", "-views", "-views-wal", "-views-shm"] {
                let mut name = db.as_os_str().to_owned();
                name.push(suffix);
                paths.push(name.into());
            }
        }
        paths
    }
}

/// Whether `dir` is `parent` or lies below it, comparing resolved paths where they exist (a
/// symbolic link into the data folder is inside it) and absolute paths otherwise.
fn inside(dir: &Path, parent: &Path) -> bool {
    let resolve = |p: &Path| {
        std::fs::canonicalize(p).unwrap_or_else(|_| std::path::absolute(p).unwrap_or(p.to_owned()))
    };
    let (dir, parent) = (resolve(dir), resolve(parent));
    dir.starts_with(&parent)
}

/// Settings of the compliance portal (`auditex serve`).
#[derive(Debug, Clone)]
pub struct PortalSettings {
    /// The service's public base URL; links in mail are built from it only
    /// (`AUDITEX_PUBLIC_URL`).
    pub public_url: Option<String>,
    /// File of session-signing keys; `None` means `<data_dir>/session-keys`
    /// (`AUDITEX_SESSION_KEYS_FILE`).
    pub session_keys_file: Option<PathBuf>,
    /// A portal session ends after this many minutes without a request
    /// (`AUDITEX_SESSION_IDLE_MINUTES`).
    pub session_idle_minutes: u64,
    /// A portal session ends this many hours after sign-in (`AUDITEX_SESSION_ABSOLUTE_HOURS`).
    pub session_absolute_hours: u64,
    /// A password-reset or invitation link works this many minutes
    /// (`AUDITEX_RESET_LINK_MINUTES`).
    pub reset_link_minutes: u64,
    /// SMTP server for outgoing mail; `None` writes mail to `<data_dir>/outbox`
    /// (`AUDITEX_SMTP_URL`).
    pub smtp_url: Option<String>,
    /// File holding the SMTP password (`AUDITEX_SMTP_PASSWORD_FILE`).
    pub smtp_password_file: Option<PathBuf>,
    /// Sender of outgoing mail (`AUDITEX_MAIL_FROM`).
    pub mail_from: String,
}

impl PortalSettings {
    /// The session key file in use.
    pub fn session_keys_path(&self, store: &StoreSettings) -> PathBuf {
        self.session_keys_file
            .clone()
            .unwrap_or_else(|| store.data_dir.join("session-keys"))
    }

    /// Checks the session and reset-link durations.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first setting at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |setting: &'static str, problem: &str| ConfigError {
            setting,
            problem: problem.to_owned(),
        };
        if !(1..=24 * 60).contains(&self.session_idle_minutes) {
            return Err(bad("AUDITEX_SESSION_IDLE_MINUTES", "must be 1 to 1440"));
        }
        if !(1..=7 * 24).contains(&self.session_absolute_hours) {
            return Err(bad("AUDITEX_SESSION_ABSOLUTE_HOURS", "must be 1 to 168"));
        }
        if !(5..=7 * 24 * 60).contains(&self.reset_link_minutes) {
            return Err(bad("AUDITEX_RESET_LINK_MINUTES", "must be 5 to 10080"));
        }
        Ok(())
    }

    /// The public base URL without a trailing slash: the configured one (https, or http with
    /// plain development HTTP), else, outside production, the local listener's.
    ///
    /// # Errors
    /// [`ConfigError`] naming `AUDITEX_PUBLIC_URL` when it is malformed, not https, or missing
    /// in production.
    pub fn public_url(
        &self,
        store: &StoreSettings,
        http: &HttpSettings,
    ) -> Result<String, ConfigError> {
        let bad = |problem: String| ConfigError {
            setting: "AUDITEX_PUBLIC_URL",
            problem,
        };
        match &self.public_url {
            Some(u) => {
                let parsed = url::Url::parse(u).map_err(|e| bad(format!("{u:?}: {e}")))?;
                if parsed.scheme() != "https" && !(http.dev_plain_http && parsed.scheme() == "http")
                {
                    return Err(bad("must be an https:// URL".into()));
                }
                Ok(u.trim_end_matches('/').to_owned())
            }
            None if store.production => Err(bad(
                "is required in production (links in mail are built from it)".into(),
            )),
            None => {
                let scheme = if http.dev_plain_http { "http" } else { "https" };
                Ok(format!("{scheme}://localhost:{}", http.listen.port()))
            }
        }
    }
}

/// Settings of the HTTPS listener (`auditex serve`).
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Address and port to listen on (`AUDITEX_LISTEN`).
    pub listen: std::net::SocketAddr,
    /// TLS certificate chain, PEM (`AUDITEX_TLS_CERT_FILE`).
    pub tls_cert_file: Option<PathBuf>,
    /// TLS private key, PEM (`AUDITEX_TLS_KEY_FILE`).
    pub tls_key_file: Option<PathBuf>,
    /// Development only: plain HTTP on a loopback address (`AUDITEX_DEV_PLAIN_HTTP`).
    pub dev_plain_http: bool,
    /// Sustained requests per second per API key (`AUDITEX_RATE_PER_SECOND`, at most
    /// [`RATE_PER_SECOND_MAX`]).
    pub rate_per_second: u32,
    /// Requests allowed in a burst above the sustained rate (`AUDITEX_RATE_BURST`).
    pub rate_burst: u32,
    /// Sustained requests per second per `ingest` key without a rate of its own
    /// (`AUDITEX_INGEST_RATE_PER_SECOND`, at most [`RATE_PER_SECOND_MAX`]).
    pub ingest_rate_per_second: u32,
    /// Bytes of request bodies held at once, all connections together
    /// (`AUDITEX_REQUEST_BODIES_BYTES_MAX`).
    pub request_bodies_bytes_max: usize,
}

impl HttpSettings {
    /// Checks the rate limits. Which TLS settings go together is checked where the listener's
    /// TLS mode is chosen from them.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first setting at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.rate_per_second == 0 || self.rate_per_second > RATE_PER_SECOND_MAX {
            return Err(ConfigError {
                setting: "AUDITEX_RATE_PER_SECOND",
                problem: format!("must be between 1 and {RATE_PER_SECOND_MAX}"),
            });
        }
        if self.ingest_rate_per_second == 0 || self.ingest_rate_per_second > RATE_PER_SECOND_MAX {
            return Err(ConfigError {
                setting: "AUDITEX_INGEST_RATE_PER_SECOND",
                problem: format!("must be between 1 and {RATE_PER_SECOND_MAX}"),
            });
        }
        if self.rate_burst == 0 {
            return Err(ConfigError {
                setting: "AUDITEX_RATE_BURST",
                problem: "must be at least 1".into(),
            });
        }
        Ok(())
    }
}

/// Settings a configuration file may not hold: secrets come only from the environment or from
/// key files outside the repository.
const SECRET_SETTINGS: &[&str] = &["AUDITEX_MASTER_KEY"];

/// Reads a configuration file of `AUDITEX_…=value` lines (`#` starts a comment line). Every key
/// must be a setting this service knows; the environment overrides the file.
///
/// # Errors
/// [`ConfigError`] naming the line and what is wrong with it, or the file when it cannot be read
/// or holds a database password while readable by group or others.
pub fn read_config_file(
    path: &Path,
    known: &[String],
) -> Result<Vec<(String, String)>, ConfigError> {
    let err = |problem: String| ConfigError {
        setting: "AUDITEX_CONFIG_FILE",
        problem,
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(err(format!(
                "{} line {}: expected KEY=value",
                path.display(),
                n + 1
            )));
        };
        let (key, value) = (key.trim(), value.trim().trim_matches('"'));
        if SECRET_SETTINGS.contains(&key) {
            return Err(err(format!(
                "{} line {}: {key} is a secret; give it in the environment or use AUDITEX_MASTER_KEY_FILE",
                path.display(),
                n + 1
            )));
        }
        if key != "RUST_LOG" && !known.iter().any(|k| k == key) {
            return Err(err(format!(
                "{} line {}: unknown setting {key}",
                path.display(),
                n + 1
            )));
        }
        // AUDITEX_READ_DATABASE_URLS holds several URLs, separated by spaces.
        let has_password = (key.ends_with("DATABASE_URL") || key.ends_with("DATABASE_URLS"))
            && value.split(' ').any(|url| {
                url.split_once("://").is_some_and(|(_, rest)| {
                    rest.split_once('@')
                        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
                })
            });
        if has_password {
            crate::file_modes::check_private_file(path)
                .map_err(|e| err(format!("{e} (it holds a database password)")))?;
        }
        out.push((key.to_owned(), value.to_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Valid settings with the given data folder.
    fn settings(data_dir: &Path) -> StoreSettings {
        StoreSettings {
            data_dir: data_dir.to_owned(),
            database_url: None,
            admin_database_url: None,
            master_key: None,
            master_key_file: None,
            previous_master_keys_file: None,
            production: false,
            origin: "auditex.local/ledger".into(),
            group_commit_window_us: 2_000,
            append_queue_records_max: 100_000,
            append_queue_bytes_max: 64 << 20,
            append_queue_total_records_max: 1_000_000,
            append_queue_total_bytes_max: 512 << 20,
            append_wait_ms_max: 5_000,
            clock_behind_ms_max: 5_000,
            checkpoint_interval_ms: 1_000,
            checkpoint_dir: None,
            retention_interval_s: 3_600,
            read_database_urls: Vec::new(),
            replica_lag_max_ms: 2_000,
            cells: Vec::new(),
        }
    }

    #[test]
    fn cell_names_are_short_lowercase_words_and_never_home() {
        for ok in ["eu-1", "b", "cell-02"] {
            assert!(valid_cell_name(ok), "{ok}");
        }
        for bad in ["", "-x", "EU", "a b", "a_b", &"x".repeat(33)] {
            assert!(!valid_cell_name(bad), "{bad}");
        }
        let root = tempfile::tempdir().expect("tempdir");
        let mut s = settings(root.path());
        s.cells = vec!["b=postgres://h/db".into(), "c=postgres://h/db2".into()];
        assert_eq!(s.cell_specs().expect("valid").len(), 2);
        for bad in [
            "home=postgres://h/db",
            "b",
            "b=sqlite:x.db",
            "B=postgres://h/db",
        ] {
            s.cells = vec![bad.into()];
            assert!(s.cell_specs().is_err(), "{bad}");
        }
        s.cells = vec!["b=postgres://h/db".into(), "b=postgres://h/db2".into()];
        assert!(s.cell_specs().is_err(), "a name twice");
    }

    #[test]
    fn the_retention_interval_is_off_or_between_a_minute_and_a_week() {
        let root = tempfile::tempdir().expect("tempdir");
        let mut s = settings(root.path());
        for ok in [0, 60, 3_600, 604_800] {
            s.retention_interval_s = ok;
            assert!(s.validate(1000).is_ok(), "{ok}");
        }
        assert_eq!(
            s.retention_interval(),
            Some(std::time::Duration::from_secs(604_800))
        );
        s.retention_interval_s = 0;
        assert_eq!(s.retention_interval(), None);
        for bad in [1, 59, 604_801] {
            s.retention_interval_s = bad;
            let err = s.validate(1000).expect_err("out of range");
            assert_eq!(err.setting, "AUDITEX_RETENTION_INTERVAL_S");
        }
    }

    #[test]
    fn production_refuses_a_checkpoint_folder_that_a_data_folder_restore_would_roll_back() {
        let root = tempfile::tempdir().expect("tempdir");
        let data = root.path().join("data");
        let inside = data.join("checkpoints");
        let outside = root.path().join("witness");
        let check = |production: bool, dir: Option<&Path>| {
            let mut s = settings(&data);
            s.production = production;
            s.checkpoint_dir = dir.map(Path::to_owned);
            s.check_checkpoint_dir()
        };
        for bad in [None, Some(inside.as_path())] {
            let err = check(true, bad).expect_err("refused in production");
            assert_eq!(err.setting, "AUDITEX_CHECKPOINT_DIR");
            assert!(err.problem.contains("data folder"), "{}", err.problem);
        }
        assert!(check(true, Some(&outside)).is_ok());
        // Outside production (the embedded default of `auditex serve`) it only warns.
        assert!(check(false, None).is_ok());
        assert!(check(false, Some(&inside)).is_ok());
    }

    #[test]
    fn the_startup_mode_check_covers_the_data_and_checkpoint_folders_and_a_database_kept_elsewhere()
    {
        let root = tempfile::tempdir().expect("tempdir");
        let data = root.path().join("data");
        let witness = root.path().join("witness");
        let db = root.path().join("db").join("ledger.db");
        let mut s = settings(&data);
        s.checkpoint_dir = Some(witness.clone());
        assert_eq!(
            s.private_paths(Some(&s.default_sqlite_file())),
            [data.clone(), witness.clone()],
            "the default database lies in the data folder, which is scanned"
        );
        assert_eq!(
            s.private_paths(None),
            [data.clone(), witness.clone()],
            "a PostgreSQL database has no files here"
        );
        let beside = |suffix: &str| root.path().join("db").join(format!("ledger.db{suffix}"));
        assert_eq!(
            s.private_paths(Some(&db)),
            [
                data.clone(),
                witness,
                db,
                beside("-wal"),
                beside("-shm"),
                beside("-views"),
                beside("-views-wal"),
                beside("-views-shm"),
            ]
        );
    }

    #[test]
    fn debug_output_of_the_settings_redacts_every_secret() {
        let key = "ab".repeat(32);
        let mut s = settings(Path::new("data"));
        s.database_url = Some("postgres://auditex_app:s3cret-app@db/ledger".into());
        s.admin_database_url = Some("postgres://owner:s3cret-owner@db/ledger".into());
        s.master_key = Some(key.clone());
        let text = format!("{s:?}");
        for secret in ["s3cret-app", "s3cret-owner", key.as_str()] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(text.contains("<redacted>"));
    }

    #[test]
    fn store_limits_are_checked_in_order_naming_the_first_setting_at_fault() {
        let mut s = settings(Path::new("data"));
        assert!(s.validate(1_000).is_ok());
        s.append_queue_records_max = 999;
        let err = s.validate(1_000).expect_err("below one batch");
        assert_eq!(err.setting, "AUDITEX_APPEND_QUEUE_RECORDS_MAX");
        assert_eq!(
            err.problem,
            "must be at least one full batch (1000) and at most AUDITEX_APPEND_QUEUE_TOTAL_RECORDS_MAX"
        );
        s.checkpoint_interval_ms = 1_001;
        let err = s.validate(1_000).expect_err("two faults");
        assert_eq!(err.setting, "AUDITEX_CHECKPOINT_INTERVAL_MS");
    }

    #[test]
    fn a_secret_file_readable_by_others_is_refused_naming_the_setting_and_the_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("smtp.password");
        std::fs::write(&path, "hunter2").expect("write");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
            let err = read_secret_file(&path, "AUDITEX_TEST_SECRET_FILE").expect_err("refused");
            let text = err.to_string();
            assert!(text.contains("AUDITEX_TEST_SECRET_FILE"), "{text}");
            assert!(
                text.contains(&format!("chmod 600 {}", path.display())),
                "{text}"
            );
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        assert_eq!(
            read_secret_file(&path, "AUDITEX_TEST_SECRET_FILE").expect("read"),
            "hunter2"
        );
    }

    #[test]
    fn the_key_rate_may_be_lifted_to_the_maximum_and_no_further() {
        let http = |rate| HttpSettings {
            listen: "127.0.0.1:8443".parse().expect("address"),
            tls_cert_file: None,
            tls_key_file: None,
            dev_plain_http: false,
            rate_per_second: rate,
            rate_burst: 1,
            ingest_rate_per_second: rate,
            request_bodies_bytes_max: 1 << 20,
        };
        assert!(http(1).validate().is_ok());
        assert!(http(RATE_PER_SECOND_MAX).validate().is_ok());
        for bad in [0, RATE_PER_SECOND_MAX + 1] {
            let err = http(bad).validate().expect_err("out of range");
            assert_eq!(err.setting, "AUDITEX_RATE_PER_SECOND");
            assert_eq!(err.problem, "must be between 1 and 100000");
            let err = HttpSettings {
                ingest_rate_per_second: bad,
                ..http(200)
            }
            .validate()
            .expect_err("out of range");
            assert_eq!(err.setting, "AUDITEX_INGEST_RATE_PER_SECOND");
            assert_eq!(err.problem, "must be between 1 and 100000");
        }
    }
}
