//! Service configuration: where the data lives, the master key, and tuning, from command-line
//! flags and environment variables, validated at startup with errors that name the setting.
//!
//! Secrets (the master key, database passwords inside URLs) come only from the environment or
//! from files outside the repository; nothing here reads them from the working tree by default
//! except the embedded default's own data folder, which `.gitignore` excludes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::store::crypto::MasterKey;
use crate::store::{DatabaseUrl, StoreConfig, SystemClock};

/// Default data folder of the embedded deployment.
pub const DATA_DIR_DEFAULT: &str = "data";

/// Name of the SQLite file inside the data folder.
pub const SQLITE_FILE_NAME: &str = "auditex.db";

/// Name of the generated master-key file inside the data folder.
pub const MASTER_KEY_FILE_NAME: &str = "master.key";

/// Where vulnerability reports go (also in SECURITY.md and `auditex --help`).
pub const SECURITY_CONTACT: &str = "security@auditex.dev";

/// Reads a secret file (a key, a password): refused, naming the file and the `chmod 600` fix, when
/// group or others may read it. Every secret file the service reads goes through this (or through
/// [`crate::store::crypto::check_private_file`], which it calls).
///
/// # Errors
/// [`ConfigError`] for `setting` when the file is unreadable or too widely readable.
pub fn read_secret_file(path: &Path, setting: &'static str) -> Result<String, ConfigError> {
    let problem = |e: &dyn std::fmt::Display| ConfigError {
        setting,
        problem: e.to_string(),
    };
    crate::store::crypto::check_private_file(path).map_err(|e| problem(&e))?;
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
#[derive(Clone, clap::Args)]
pub struct StoreArgs {
    /// Folder for the embedded default: the SQLite file and the generated master key.
    #[arg(long, global = true, env = "AUDITEX_DATA_DIR", default_value = DATA_DIR_DEFAULT)]
    pub data_dir: PathBuf,

    /// Database URL: `postgres://…` for PostgreSQL, `sqlite:PATH` for another SQLite file.
    /// Defaults to `<data-dir>/auditex.db`.
    #[arg(
        long,
        global = true,
        env = "AUDITEX_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    /// PostgreSQL only: the schema owner's URL, used to apply migrations at startup.
    #[arg(
        long,
        global = true,
        env = "AUDITEX_ADMIN_DATABASE_URL",
        hide_env_values = true
    )]
    pub admin_database_url: Option<String>,

    /// The master key as 64 hex digits (prefer AUDITEX_MASTER_KEY_FILE).
    #[arg(
        long,
        global = true,
        env = "AUDITEX_MASTER_KEY",
        hide_env_values = true
    )]
    pub master_key: Option<String>,

    /// A file holding the master key (64 hex digits, mode 0600, outside the repository).
    #[arg(long, global = true, env = "AUDITEX_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,

    /// During a master-key rotation: a file of earlier master keys (64 hex digits per line, mode
    /// 0600), which open what they sealed but never seal (docs/OPERATIONS.md, key rotation).
    #[arg(long, global = true, env = "AUDITEX_PREVIOUS_MASTER_KEYS_FILE")]
    pub previous_master_keys_file: Option<PathBuf>,

    /// Production mode: refuse to generate a master key; one must be configured.
    #[arg(
        long,
        global = true,
        env = "AUDITEX_PRODUCTION",
        default_value_t = false
    )]
    pub production: bool,

    /// The service's checkpoint origin prefix; each tenant's origin is `<origin>/<tenant>`.
    #[arg(
        long,
        global = true,
        env = "AUDITEX_ORIGIN",
        default_value = "auditex.local/ledger"
    )]
    pub origin: String,

    /// Group-commit window in microseconds: how long an appender waits to fill a batch.
    #[arg(long, global = true, env = "AUDITEX_GROUP_COMMIT_WINDOW_US", default_value_t = crate::store::GROUP_COMMIT_WINDOW_US_DEFAULT)]
    pub group_commit_window_us: u64,

    /// Records that may wait in one tenant's append queue; beyond, appends get 503 at once.
    #[arg(long, global = true, env = "AUDITEX_APPEND_QUEUE_RECORDS_MAX", default_value_t = crate::store::APPEND_QUEUE_RECORDS_MAX)]
    pub append_queue_records_max: usize,

    /// Estimated bytes that may wait in one tenant's append queue.
    #[arg(long, global = true, env = "AUDITEX_APPEND_QUEUE_BYTES_MAX", default_value_t = crate::store::APPEND_QUEUE_BYTES_MAX)]
    pub append_queue_bytes_max: usize,

    /// Records that may wait in all tenants' append queues together.
    #[arg(long, global = true, env = "AUDITEX_APPEND_QUEUE_TOTAL_RECORDS_MAX", default_value_t = crate::store::APPEND_QUEUE_TOTAL_RECORDS_MAX)]
    pub append_queue_total_records_max: usize,

    /// Estimated bytes that may wait in all tenants' append queues together (the ceiling of the
    /// queues' memory).
    #[arg(long, global = true, env = "AUDITEX_APPEND_QUEUE_TOTAL_BYTES_MAX", default_value_t = crate::store::APPEND_QUEUE_TOTAL_BYTES_MAX)]
    pub append_queue_total_bytes_max: usize,

    /// The longest an append may wait in its queue, in milliseconds, before it is answered 503.
    #[arg(long, global = true, env = "AUDITEX_APPEND_WAIT_MS_MAX", default_value_t = crate::store::APPEND_QUEUE_WAIT_MS_DEFAULT)]
    pub append_wait_ms_max: u64,

    /// How far the clock may be behind the latest capture time, in milliseconds, before appends
    /// are refused.
    #[arg(long, global = true, env = "AUDITEX_CLOCK_BEHIND_MS_MAX", default_value_t = crate::store::CLOCK_BEHIND_MS_DEFAULT)]
    pub clock_behind_ms_max: u64,

    /// Checkpoint publication interval in milliseconds (at most 1000).
    #[arg(long, global = true, env = "AUDITEX_CHECKPOINT_INTERVAL_MS", default_value_t = crate::store::CHECKPOINT_INTERVAL_MS_DEFAULT)]
    pub checkpoint_interval_ms: u64,

    /// Folder keeping each tenant's latest published checkpoint outside the database, to detect
    /// a rolled-back database. Defaults to `<data-dir>/checkpoints`; keep it on persistent storage
    /// that database restores do not touch.
    #[arg(long, global = true, env = "AUDITEX_CHECKPOINT_DIR")]
    pub checkpoint_dir: Option<PathBuf>,
}

impl std::fmt::Debug for StoreArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |set: bool| if set { Some("<redacted>") } else { None };
        f.debug_struct("StoreArgs")
            .field("data_dir", &self.data_dir)
            .field("database", &self.database())
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
            .finish()
    }
}

impl StoreArgs {
    /// The database this configuration names.
    pub fn database(&self) -> DatabaseUrl {
        match &self.database_url {
            Some(url) => DatabaseUrl::parse(url),
            None => DatabaseUrl::Sqlite(self.data_dir.join(SQLITE_FILE_NAME)),
        }
    }

    /// Loads the master key: from the variable, else the key file, else (embedded default only)
    /// the generated `<data-dir>/master.key`, created on first start.
    ///
    /// # Errors
    /// [`ConfigError`] naming the setting that is missing or wrong.
    pub fn load_master_key(&self) -> Result<MasterKey, ConfigError> {
        if let Some(text) = &self.master_key {
            return MasterKey::from_hex(text, "AUDITEX_MASTER_KEY").map_err(|e| ConfigError {
                setting: "AUDITEX_MASTER_KEY",
                problem: e.to_string(),
            });
        }
        if let Some(path) = &self.master_key_file {
            return MasterKey::load_file(path).map_err(|e| ConfigError {
                setting: "AUDITEX_MASTER_KEY_FILE",
                problem: e.to_string(),
            });
        }
        if self.production {
            return Err(ConfigError {
                setting: "AUDITEX_MASTER_KEY_FILE",
                problem:
                    "production mode needs a master key: set AUDITEX_MASTER_KEY_FILE to a file \
                          holding 64 hex digits (mode 0600), outside the repository"
                        .into(),
            });
        }
        let path = self.data_dir.join(MASTER_KEY_FILE_NAME);
        let existed = path.exists();
        let key = MasterKey::load_or_create_file(&path).map_err(|e| ConfigError {
            setting: "AUDITEX_DATA_DIR",
            problem: e.to_string(),
        })?;
        if !existed {
            tracing::warn!(
                path = %path.display(),
                "generated a new master key for the embedded default; back it up, without it the \
                 signing keys cannot be opened"
            );
        }
        Ok(key)
    }

    /// Validates the settings and builds the store configuration.
    ///
    /// # Errors
    /// [`ConfigError`] naming the setting at fault.
    pub fn store_config(&self) -> Result<StoreConfig, ConfigError> {
        if self.checkpoint_interval_ms == 0 || self.checkpoint_interval_ms > 1000 {
            return Err(ConfigError {
                setting: "AUDITEX_CHECKPOINT_INTERVAL_MS",
                problem: format!(
                    "{} is out of range: checkpoints must be published at least once a second (1..=1000)",
                    self.checkpoint_interval_ms
                ),
            });
        }
        if self.group_commit_window_us > 100_000 {
            return Err(ConfigError {
                setting: "AUDITEX_GROUP_COMMIT_WINDOW_US",
                problem: "must be at most 100000 (100 ms)".into(),
            });
        }
        if self.append_queue_records_max < crate::store::BATCH_RECORDS_MAX
            || self.append_queue_total_records_max < self.append_queue_records_max
        {
            return Err(ConfigError {
                setting: "AUDITEX_APPEND_QUEUE_RECORDS_MAX",
                problem: format!(
                    "must be at least one full batch ({}) and at most AUDITEX_APPEND_QUEUE_TOTAL_RECORDS_MAX",
                    crate::store::BATCH_RECORDS_MAX
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
        let database = self.database();
        if self.production
            && matches!(database, DatabaseUrl::Sqlite(_))
            && self.database_url.is_none()
        {
            tracing::info!("production mode on the embedded SQLite default");
        }
        let master_key = self.load_master_key()?;
        self.check_checkpoint_dir()?;
        let mut config = StoreConfig::new(database, master_key);
        if let Some(path) = &self.previous_master_keys_file {
            config.previous_master_keys =
                MasterKey::load_list_file(path).map_err(|e| ConfigError {
                    setting: "AUDITEX_PREVIOUS_MASTER_KEYS_FILE",
                    problem: e.to_string(),
                })?;
        }
        config.admin_database = self.admin_database_url.clone();
        config.service_origin = self.origin.clone();
        config.group_commit_window = Duration::from_micros(self.group_commit_window_us);
        config.checkpoint_interval = Duration::from_millis(self.checkpoint_interval_ms);
        config.queue_records_max = self.append_queue_records_max;
        config.queue_bytes_max = self.append_queue_bytes_max;
        config.queue_total_records_max = self.append_queue_total_records_max;
        config.queue_total_bytes_max = self.append_queue_total_bytes_max;
        config.queue_wait_max = Duration::from_millis(self.append_wait_ms_max);
        config.clock_behind_max = Duration::from_millis(self.clock_behind_ms_max);
        config.clock = Arc::new(SystemClock);
        config.checkpoint_dir = Some(self.checkpoint_dir());
        Ok(config)
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

    /// The folder of published-checkpoint files (see [`crate::store::rollback`]).
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.checkpoint_dir.clone().unwrap_or_else(|| {
            self.data_dir
                .join(crate::store::rollback::CHECKPOINT_DIR_NAME)
        })
    }

    /// The data folder.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// What `auditex serve` checks for loose modes at startup (see [`crate::file_modes`]): the
    /// data folder, the published-checkpoint folder, and an SQLite database kept elsewhere with
    /// its `-wal` and `-shm` files.
    pub fn private_paths(&self) -> Vec<PathBuf> {
        let mut paths = vec![self.data_dir.clone(), self.checkpoint_dir()];
        if let DatabaseUrl::Sqlite(db) = self.database()
            && !inside(&db, &self.data_dir)
        {
            for suffix in ["", "-wal", "-shm"] {
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
#[derive(Debug, Clone, clap::Args)]
pub struct PortalArgs {
    /// The service's public base URL, e.g. https://auditex.example.com. Links in mail are built
    /// from it only, never from a request's Host header. Default: https://localhost:<port>.
    #[arg(long, global = true, env = "AUDITEX_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// File of session-signing keys (`<id> <64 hex digits>` per line, newest first; mode 0600).
    /// Generated in the data folder when absent; `auditex session-keys rotate` adds a key.
    #[arg(long, global = true, env = "AUDITEX_SESSION_KEYS_FILE")]
    pub session_keys_file: Option<PathBuf>,

    /// A portal session ends after this many minutes without a request.
    #[arg(long, global = true, env = "AUDITEX_SESSION_IDLE_MINUTES", default_value_t = crate::portal::IDLE_MINUTES_DEFAULT)]
    pub session_idle_minutes: u64,

    /// A portal session ends this many hours after sign-in.
    #[arg(long, global = true, env = "AUDITEX_SESSION_ABSOLUTE_HOURS", default_value_t = crate::portal::ABSOLUTE_HOURS_DEFAULT)]
    pub session_absolute_hours: u64,

    /// A password-reset or invitation link works this many minutes.
    #[arg(long, global = true, env = "AUDITEX_RESET_LINK_MINUTES", default_value_t = crate::portal::RESET_MINUTES_DEFAULT)]
    pub reset_link_minutes: u64,

    /// SMTP server for outgoing mail, `smtps://user@host:465` or `smtp://user@host:587`
    /// (STARTTLS). Without it, mail is written to `<data dir>/outbox`.
    #[arg(long, global = true, env = "AUDITEX_SMTP_URL")]
    pub smtp_url: Option<String>,

    /// File holding the SMTP password (mode 0600).
    #[arg(long, global = true, env = "AUDITEX_SMTP_PASSWORD_FILE")]
    pub smtp_password_file: Option<PathBuf>,

    /// Sender of outgoing mail.
    #[arg(
        long,
        global = true,
        env = "AUDITEX_MAIL_FROM",
        default_value = "Auditex <auditex@localhost>"
    )]
    pub mail_from: String,
}

impl PortalArgs {
    /// The session key file in use.
    pub fn session_keys_path(&self, store: &StoreArgs) -> PathBuf {
        self.session_keys_file
            .clone()
            .unwrap_or_else(|| store.data_dir.join("session-keys"))
    }

    /// Validates the settings, loads (or creates) the session keys and builds the portal's
    /// configuration.
    ///
    /// # Errors
    /// [`ConfigError`] naming the setting at fault.
    pub fn portal_config(
        &self,
        store: &StoreArgs,
        http: &HttpArgs,
    ) -> Result<crate::portal::PortalConfig, ConfigError> {
        use std::time::Duration;
        let bad = |setting: &'static str, problem: String| ConfigError { setting, problem };
        let minutes = |n: u64| Duration::from_secs(n * 60);
        if !(1..=24 * 60).contains(&self.session_idle_minutes) {
            return Err(bad(
                "AUDITEX_SESSION_IDLE_MINUTES",
                "must be 1 to 1440".into(),
            ));
        }
        if !(1..=7 * 24).contains(&self.session_absolute_hours) {
            return Err(bad(
                "AUDITEX_SESSION_ABSOLUTE_HOURS",
                "must be 1 to 168".into(),
            ));
        }
        if !(5..=7 * 24 * 60).contains(&self.reset_link_minutes) {
            return Err(bad(
                "AUDITEX_RESET_LINK_MINUTES",
                "must be 5 to 10080".into(),
            ));
        }
        let public_url = match &self.public_url {
            Some(u) => {
                let parsed = url::Url::parse(u)
                    .map_err(|e| bad("AUDITEX_PUBLIC_URL", format!("{u:?}: {e}")))?;
                if parsed.scheme() != "https" && !(http.dev_plain_http && parsed.scheme() == "http")
                {
                    return Err(bad("AUDITEX_PUBLIC_URL", "must be an https:// URL".into()));
                }
                u.trim_end_matches('/').to_owned()
            }
            None if store.production => {
                return Err(bad(
                    "AUDITEX_PUBLIC_URL",
                    "is required in production (links in mail are built from it)".into(),
                ));
            }
            None => {
                let scheme = if http.dev_plain_http { "http" } else { "https" };
                format!("{scheme}://localhost:{}", http.listen.port())
            }
        };
        let keys_path = self.session_keys_path(store);
        let keys = crate::portal::security::KeyRing::load_or_create(&keys_path)
            .map_err(|e| bad("AUDITEX_SESSION_KEYS_FILE", e.to_string()))?;
        let mailer = match &self.smtp_url {
            Some(url) => {
                let password = match &self.smtp_password_file {
                    Some(path) => {
                        crate::store::crypto::check_private_file(path)
                            .map_err(|e| bad("AUDITEX_SMTP_PASSWORD_FILE", e.to_string()))?;
                        Some(
                            std::fs::read_to_string(path)
                                .map_err(|e| bad("AUDITEX_SMTP_PASSWORD_FILE", e.to_string()))?
                                .trim()
                                .to_owned(),
                        )
                    }
                    None => None,
                };
                crate::portal::mail::Mailer::smtp(url, password, &self.mail_from)
                    .map_err(|e| bad("AUDITEX_SMTP_URL", e))?
            }
            None => crate::portal::mail::Mailer::Outbox(store.data_dir.join("outbox")),
        };
        Ok(crate::portal::PortalConfig {
            keys,
            public_url,
            idle: minutes(self.session_idle_minutes),
            absolute: Duration::from_secs(self.session_absolute_hours * 3600),
            reset_ttl: minutes(self.reset_link_minutes),
            mailer,
        })
    }
}

/// Settings of the HTTPS listener (`auditex serve`).
#[derive(Debug, Clone, clap::Args)]
pub struct HttpArgs {
    /// Address and port to listen on.
    #[arg(
        long,
        global = true,
        env = "AUDITEX_LISTEN",
        default_value = "127.0.0.1:8443"
    )]
    pub listen: std::net::SocketAddr,

    /// TLS certificate chain (PEM). Without it (and outside production) a self-signed
    /// certificate is generated in the data folder.
    #[arg(long, global = true, env = "AUDITEX_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,

    /// TLS private key (PEM, mode 0600, outside the repository).
    #[arg(long, global = true, env = "AUDITEX_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,

    /// Development only: serve plain HTTP (refused unless the listen address is loopback).
    #[arg(
        long,
        global = true,
        env = "AUDITEX_DEV_PLAIN_HTTP",
        default_value_t = false
    )]
    pub dev_plain_http: bool,

    /// Sustained requests per second allowed per API key (and four times that per client address).
    #[arg(
        long,
        global = true,
        env = "AUDITEX_RATE_PER_SECOND",
        default_value_t = 200
    )]
    pub rate_per_second: u32,

    /// Requests allowed in a burst above the sustained rate.
    #[arg(long, global = true, env = "AUDITEX_RATE_BURST", default_value_t = 400)]
    pub rate_burst: u32,

    /// Bytes of request bodies the service may hold at once, all connections together; a request
    /// that does not fit is answered 503 with Retry-After before its body is read.
    #[arg(long, global = true, env = "AUDITEX_REQUEST_BODIES_BYTES_MAX", default_value_t = crate::http::bodies::REQUEST_BODIES_BYTES_MAX)]
    pub request_bodies_bytes_max: usize,
}

impl HttpArgs {
    /// Validates the settings and builds the HTTP configuration.
    ///
    /// # Errors
    /// [`ConfigError`] naming the setting at fault.
    pub fn http_config(&self, store: &StoreArgs) -> Result<crate::http::HttpConfig, ConfigError> {
        use crate::http::{HttpConfig, TlsMode};
        if self.rate_per_second == 0 || self.rate_per_second > 1000 {
            return Err(ConfigError {
                setting: "AUDITEX_RATE_PER_SECOND",
                problem: "must be between 1 and 1000".into(),
            });
        }
        if self.rate_burst == 0 {
            return Err(ConfigError {
                setting: "AUDITEX_RATE_BURST",
                problem: "must be at least 1".into(),
            });
        }
        let tls = match (&self.tls_cert_file, &self.tls_key_file, self.dev_plain_http) {
            (_, _, true) if store.production => {
                return Err(ConfigError {
                    setting: "AUDITEX_DEV_PLAIN_HTTP",
                    problem: "plain HTTP is not allowed in production mode".into(),
                });
            }
            (_, _, true) => {
                if !self.listen.ip().is_loopback() {
                    return Err(ConfigError {
                        setting: "AUDITEX_DEV_PLAIN_HTTP",
                        problem: format!(
                            "plain HTTP is allowed only on a loopback address, not {}",
                            self.listen
                        ),
                    });
                }
                TlsMode::PlainDevelopment
            }
            (Some(cert), Some(key), false) => TlsMode::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            (None, None, false) if store.production => {
                return Err(ConfigError {
                    setting: "AUDITEX_TLS_CERT_FILE",
                    problem: "production mode needs AUDITEX_TLS_CERT_FILE and AUDITEX_TLS_KEY_FILE"
                        .into(),
                });
            }
            (None, None, false) => TlsMode::SelfSigned(store.data_dir.join("tls")),
            (Some(_), None, false) => {
                return Err(ConfigError {
                    setting: "AUDITEX_TLS_KEY_FILE",
                    problem: "a certificate was given without its private key".into(),
                });
            }
            (None, Some(_), false) => {
                return Err(ConfigError {
                    setting: "AUDITEX_TLS_CERT_FILE",
                    problem: "a private key was given without its certificate".into(),
                });
            }
        };
        Ok(HttpConfig {
            listen: self.listen,
            tls,
            rate_per_second: self.rate_per_second,
            rate_burst: self.rate_burst,
            request_bodies_bytes_max: self.request_bodies_bytes_max,
        })
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
        let has_password = (key.ends_with("DATABASE_URL"))
            && value.split_once("://").is_some_and(|(_, rest)| {
                rest.split_once('@')
                    .is_some_and(|(userinfo, _)| userinfo.contains(':'))
            });
        if has_password {
            crate::store::crypto::check_private_file(path)
                .map_err(|e| err(format!("{e} (it holds a database password)")))?;
        }
        out.push((key.to_owned(), value.to_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Args {
        #[command(flatten)]
        store: StoreArgs,
    }

    #[test]
    fn production_refuses_a_checkpoint_folder_that_a_data_folder_restore_would_roll_back() {
        let root = tempfile::tempdir().expect("tempdir");
        let data = root.path().join("data");
        let data = data.to_str().expect("utf-8");
        let inside = format!("{data}/checkpoints");
        let outside = root.path().join("witness");
        let outside = outside.to_str().expect("utf-8");
        let check = |extra: &[&str]| {
            let mut argv = vec!["auditex", "--data-dir", data];
            argv.extend_from_slice(extra);
            Args::parse_from(argv).store.check_checkpoint_dir()
        };
        for bad in [
            vec!["--production"],
            vec!["--production", "--checkpoint-dir", &inside],
        ] {
            let err = check(&bad).expect_err("refused in production");
            assert_eq!(err.setting, "AUDITEX_CHECKPOINT_DIR");
            assert!(err.problem.contains("data folder"), "{}", err.problem);
        }
        assert!(check(&["--production", "--checkpoint-dir", outside]).is_ok());
        // Outside production (the embedded default of `auditex serve`) it only warns.
        assert!(check(&[]).is_ok());
        assert!(check(&["--checkpoint-dir", &inside]).is_ok());
    }

    #[test]
    fn the_startup_mode_check_covers_the_data_and_checkpoint_folders_and_a_database_kept_elsewhere()
    {
        let root = tempfile::tempdir().expect("tempdir");
        let data = root.path().join("data");
        let witness = root.path().join("witness");
        let db = root.path().join("db").join("ledger.db");
        let paths = |extra: &[&str]| {
            let mut argv = vec!["auditex", "--data-dir", data.to_str().expect("utf-8")];
            argv.extend_from_slice(extra);
            Args::parse_from(argv).store.private_paths()
        };
        let checkpoint = format!("--checkpoint-dir={}", witness.display());
        assert_eq!(
            paths(&[&checkpoint]),
            [data.clone(), witness.clone()],
            "the default database lies in the data folder, which is scanned"
        );
        let elsewhere = format!("--database-url=sqlite:{}", db.display());
        let with_db = paths(&[&checkpoint, &elsewhere]);
        let wal = root.path().join("db").join("ledger.db-wal");
        let shm = root.path().join("db").join("ledger.db-shm");
        assert_eq!(with_db, [data.clone(), witness, db, wal, shm]);
    }

    #[test]
    fn debug_output_of_the_settings_redacts_every_secret() {
        let key = "ab".repeat(32);
        let args = Args::parse_from([
            "auditex",
            "--database-url",
            "postgres://auditex_app:s3cret-app@db/ledger",
            "--admin-database-url",
            "postgres://owner:s3cret-owner@db/ledger",
            "--master-key",
            &key,
        ]);
        let text = format!("{args:?}");
        for secret in ["s3cret-app", "s3cret-owner", key.as_str()] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(text.contains("<redacted>"));
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
}
