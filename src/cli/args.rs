//! The flags and environment variables that fill the settings of [`crate::config`]: one clap
//! struct per settings struct, with the same fields, the built-in defaults (the service's own
//! constants) and the help text. Only this module knows how a setting is spelled on the command
//! line; everything after parsing works with the plain settings.

use std::path::PathBuf;

use crate::config::{DATA_DIR_DEFAULT, HttpSettings, PortalSettings, StoreSettings};

/// The flags and environment variables of [`StoreSettings`], shared by every command that opens
/// the store. `Debug` redacts the secrets as the settings' does.
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

    /// Folder logging every checkpoint published for each tenant outside the database, to detect
    /// a rolled-back database. Defaults to `<data-dir>/checkpoints`; keep it on persistent storage
    /// that database restores do not touch.
    #[arg(long, global = true, env = "AUDITEX_CHECKPOINT_DIR")]
    pub checkpoint_dir: Option<PathBuf>,

    /// How often the service erases values past their retention policy, in seconds (0: never;
    /// otherwise 60 to 604800).
    #[arg(long, global = true, env = "AUDITEX_RETENTION_INTERVAL_S", default_value_t = crate::store::retention::RETENTION_INTERVAL_S_DEFAULT)]
    pub retention_interval_s: u64,

    /// PostgreSQL only: hot standbys that serve read-only requests (records, proofs,
    /// checkpoints, keys, bundles, exports, tiles), one `postgres://` URL each; in the variable,
    /// separated by spaces. A standby lagging beyond --replica-lag-max-ms is left out of reads.
    #[arg(
        long = "read-database-url",
        global = true,
        env = "AUDITEX_READ_DATABASE_URLS",
        value_delimiter = ' ',
        hide_env_values = true
    )]
    pub read_database_urls: Vec<String>,

    /// How far behind the primary a read replica may replay, in milliseconds (100 to 60000),
    /// before its requests go to the primary instead.
    #[arg(long, global = true, env = "AUDITEX_REPLICA_LAG_MAX_MS", default_value_t = crate::store::REPLICA_LAG_MAX_MS_DEFAULT)]
    pub replica_lag_max_ms: u64,

    /// PostgreSQL only: other clusters (cells) tenants' ledgers may be placed on, each
    /// `NAME=postgres://…` (the database of --database-url is the cell `home`); in the variable,
    /// separated by spaces. `auditex tenant move` places a tenant; every node must list the same
    /// cells.
    #[arg(
        long = "cell",
        global = true,
        env = "AUDITEX_CELLS",
        value_delimiter = ' ',
        hide_env_values = true
    )]
    pub cells: Vec<String>,
}

impl std::fmt::Debug for StoreArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The settings' `Debug` redacts the master key and the database URLs.
        f.debug_tuple("StoreArgs").field(&self.settings()).finish()
    }
}

impl StoreArgs {
    /// The settings these flags and variables give.
    pub fn settings(&self) -> StoreSettings {
        StoreSettings {
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            admin_database_url: self.admin_database_url.clone(),
            read_database_urls: self
                .read_database_urls
                .iter()
                .filter(|u| !u.is_empty())
                .cloned()
                .collect(),
            replica_lag_max_ms: self.replica_lag_max_ms,
            cells: self
                .cells
                .iter()
                .filter(|c| !c.is_empty())
                .cloned()
                .collect(),
            master_key: self.master_key.clone(),
            master_key_file: self.master_key_file.clone(),
            previous_master_keys_file: self.previous_master_keys_file.clone(),
            production: self.production,
            origin: self.origin.clone(),
            group_commit_window_us: self.group_commit_window_us,
            append_queue_records_max: self.append_queue_records_max,
            append_queue_bytes_max: self.append_queue_bytes_max,
            append_queue_total_records_max: self.append_queue_total_records_max,
            append_queue_total_bytes_max: self.append_queue_total_bytes_max,
            append_wait_ms_max: self.append_wait_ms_max,
            clock_behind_ms_max: self.clock_behind_ms_max,
            checkpoint_interval_ms: self.checkpoint_interval_ms,
            checkpoint_dir: self.checkpoint_dir.clone(),
            retention_interval_s: self.retention_interval_s,
        }
    }
}

/// The flags and environment variables of [`PortalSettings`] (`auditex serve`).
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
    /// The settings these flags and variables give.
    pub fn settings(&self) -> PortalSettings {
        PortalSettings {
            public_url: self.public_url.clone(),
            session_keys_file: self.session_keys_file.clone(),
            session_idle_minutes: self.session_idle_minutes,
            session_absolute_hours: self.session_absolute_hours,
            reset_link_minutes: self.reset_link_minutes,
            smtp_url: self.smtp_url.clone(),
            smtp_password_file: self.smtp_password_file.clone(),
            mail_from: self.mail_from.clone(),
        }
    }
}

/// The flags and environment variables of [`HttpSettings`] (`auditex serve`).
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

    /// Sustained requests per second allowed per `ingest` key (twice that at once), unless the key
    /// has a rate of its own (`auditex apikey rate`): high enough by default for one pipeline to
    /// reach the service's capacity with single appends.
    #[arg(
        long,
        global = true,
        env = "AUDITEX_INGEST_RATE_PER_SECOND",
        default_value_t = crate::config::INGEST_RATE_PER_SECOND_DEFAULT
    )]
    pub ingest_rate_per_second: u32,

    /// Bytes of request bodies the service may hold at once, all connections together; a request
    /// that does not fit is answered 503 with Retry-After before its body is read.
    #[arg(long, global = true, env = "AUDITEX_REQUEST_BODIES_BYTES_MAX", default_value_t = crate::app::bodies::REQUEST_BODIES_BYTES_MAX)]
    pub request_bodies_bytes_max: usize,
}

impl HttpArgs {
    /// The settings these flags and variables give.
    pub fn settings(&self) -> HttpSettings {
        HttpSettings {
            listen: self.listen,
            tls_cert_file: self.tls_cert_file.clone(),
            tls_key_file: self.tls_key_file.clone(),
            dev_plain_http: self.dev_plain_http,
            rate_per_second: self.rate_per_second,
            rate_burst: self.rate_burst,
            ingest_rate_per_second: self.ingest_rate_per_second,
            request_bodies_bytes_max: self.request_bodies_bytes_max,
        }
    }
}
