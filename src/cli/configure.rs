//! Startup: turns the plain settings of [`crate::config`] into the services' configurations —
//! the store's (loading the master key), the listener's (choosing the TLS mode) and the portal's
//! (loading the session keys, building the mailer) — and opens the store for a one-shot command.
//! The settings know no service; this is the one place that knows both.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::result::CliError;
use crate::config::{
    ConfigError, HttpSettings, MASTER_KEY_FILE_NAME, PortalSettings, StoreSettings,
};
use crate::http::{HttpConfig, TlsMode};
use crate::portal::PortalConfig;
use crate::store::crypto::MasterKey;
use crate::store::{BATCH_RECORDS_MAX, DatabaseUrl, Store, StoreConfig, SystemClock};

/// The database the settings name.
pub fn database(store: &StoreSettings) -> DatabaseUrl {
    match &store.database_url {
        Some(url) => DatabaseUrl::parse(url),
        None => DatabaseUrl::Sqlite(store.default_sqlite_file()),
    }
}

/// What `auditex serve` checks for loose modes at startup: see
/// [`StoreSettings::private_paths`].
pub fn private_paths(store: &StoreSettings) -> Vec<PathBuf> {
    match database(store) {
        DatabaseUrl::Sqlite(file) => store.private_paths(Some(&file)),
        DatabaseUrl::Postgres(_) => store.private_paths(None),
    }
}

/// Whether a master key is configured or was generated before: commands that must open what is
/// stored (a rotation, a restore) never generate one, since a new key would open nothing.
pub fn master_key_exists(store: &StoreSettings) -> bool {
    store.master_key.is_some()
        || store.master_key_file.is_some()
        || store.data_dir().join(MASTER_KEY_FILE_NAME).exists()
}

/// Loads the master key: from the variable, else the key file, else (embedded default only)
/// the generated `<data-dir>/master.key`, created on first start.
///
/// # Errors
/// [`ConfigError`] naming the setting that is missing or wrong.
pub fn load_master_key(s: &StoreSettings) -> Result<MasterKey, ConfigError> {
    if let Some(text) = &s.master_key {
        return MasterKey::from_hex(text, "AUDITEX_MASTER_KEY").map_err(|e| ConfigError {
            setting: "AUDITEX_MASTER_KEY",
            problem: e.to_string(),
        });
    }
    if let Some(path) = &s.master_key_file {
        return MasterKey::load_file(path).map_err(|e| ConfigError {
            setting: "AUDITEX_MASTER_KEY_FILE",
            problem: e.to_string(),
        });
    }
    if s.production {
        return Err(ConfigError {
            setting: "AUDITEX_MASTER_KEY_FILE",
            problem: "production mode needs a master key: set AUDITEX_MASTER_KEY_FILE to a file \
                      holding 64 hex digits (mode 0600), outside the repository"
                .into(),
        });
    }
    let path = s.data_dir.join(MASTER_KEY_FILE_NAME);
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
pub fn store_config(s: &StoreSettings) -> Result<StoreConfig, ConfigError> {
    s.validate(BATCH_RECORDS_MAX)?;
    let database = database(s);
    if !s.read_database_urls.is_empty() && matches!(database, DatabaseUrl::Sqlite(_)) {
        return Err(ConfigError {
            setting: "AUDITEX_READ_DATABASE_URLS",
            problem: "read replicas are PostgreSQL standbys: set AUDITEX_DATABASE_URL to the primary's postgres:// URL, or unset this".into(),
        });
    }
    if s.production && matches!(database, DatabaseUrl::Sqlite(_)) && s.database_url.is_none() {
        tracing::info!("production mode on the embedded SQLite default");
    }
    let master_key = load_master_key(s)?;
    s.check_checkpoint_dir()?;
    let mut config = StoreConfig::new(database, master_key);
    if let Some(path) = &s.previous_master_keys_file {
        config.previous_master_keys = MasterKey::load_list_file(path).map_err(|e| ConfigError {
            setting: "AUDITEX_PREVIOUS_MASTER_KEYS_FILE",
            problem: e.to_string(),
        })?;
    }
    config.admin_database = s.admin_database_url.clone();
    config.read_replicas = s.read_database_urls.clone();
    config.replica_lag_max = Duration::from_millis(s.replica_lag_max_ms);
    config.cells = s.cell_specs()?;
    if !config.cells.is_empty() && matches!(config.database, DatabaseUrl::Sqlite(_)) {
        return Err(ConfigError {
            setting: "AUDITEX_CELLS",
            problem: "tenant cells are PostgreSQL clusters: set AUDITEX_DATABASE_URL to the home database's postgres:// URL, or unset this".into(),
        });
    }
    config.service_origin = s.origin.clone();
    config.group_commit_window = Duration::from_micros(s.group_commit_window_us);
    config.checkpoint_interval = Duration::from_millis(s.checkpoint_interval_ms);
    config.queue_records_max = s.append_queue_records_max;
    config.queue_bytes_max = s.append_queue_bytes_max;
    config.queue_total_records_max = s.append_queue_total_records_max;
    config.queue_total_bytes_max = s.append_queue_total_bytes_max;
    config.queue_wait_max = Duration::from_millis(s.append_wait_ms_max);
    config.clock_behind_max = Duration::from_millis(s.clock_behind_ms_max);
    config.clock = Arc::new(SystemClock);
    config.checkpoint_dir = Some(s.checkpoint_dir());
    Ok(config)
}

/// Opens the store for a one-shot command.
///
/// # Errors
/// A [`ConfigError`] naming the setting at fault, or the store's error.
pub async fn open(store: &StoreSettings) -> Result<Store, CliError> {
    let config = store_config(store)?;
    Ok(Store::open_with_workers(config).await?)
}

/// Validates the settings and builds the HTTP configuration, choosing the TLS mode.
///
/// # Errors
/// [`ConfigError`] naming the setting at fault.
pub fn http_config(http: &HttpSettings, store: &StoreSettings) -> Result<HttpConfig, ConfigError> {
    http.validate()?;
    let tls = match (&http.tls_cert_file, &http.tls_key_file, http.dev_plain_http) {
        (_, _, true) if store.production => {
            return Err(ConfigError {
                setting: "AUDITEX_DEV_PLAIN_HTTP",
                problem: "plain HTTP is not allowed in production mode".into(),
            });
        }
        (_, _, true) => {
            if !http.listen.ip().is_loopback() {
                return Err(ConfigError {
                    setting: "AUDITEX_DEV_PLAIN_HTTP",
                    problem: format!(
                        "plain HTTP is allowed only on a loopback address, not {}",
                        http.listen
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
        listen: http.listen,
        tls,
        rate_per_second: http.rate_per_second,
        rate_burst: http.rate_burst,
        ingest_rate_per_second: http.ingest_rate_per_second,
        request_bodies_bytes_max: http.request_bodies_bytes_max,
    })
}

/// Validates the settings, loads (or creates) the session keys, builds the mailer and the
/// portal's configuration.
///
/// # Errors
/// [`ConfigError`] naming the setting at fault.
pub fn portal_config(
    portal: &PortalSettings,
    store: &StoreSettings,
    http: &HttpSettings,
) -> Result<PortalConfig, ConfigError> {
    let bad = |setting: &'static str, problem: String| ConfigError { setting, problem };
    portal.validate()?;
    let public_url = portal.public_url(store, http)?;
    let keys_path = portal.session_keys_path(store);
    let keys = crate::portal::security::KeyRing::load_or_create(&keys_path)
        .map_err(|e| bad("AUDITEX_SESSION_KEYS_FILE", e.to_string()))?;
    let mailer = match &portal.smtp_url {
        Some(url) => {
            let password = match &portal.smtp_password_file {
                Some(path) => Some(
                    crate::config::read_secret_file(path, "AUDITEX_SMTP_PASSWORD_FILE")?
                        .trim()
                        .to_owned(),
                ),
                None => None,
            };
            crate::portal::mail::Mailer::smtp(url, password, &portal.mail_from)
                .map_err(|e| bad("AUDITEX_SMTP_URL", e))?
        }
        None => crate::portal::mail::Mailer::Outbox(store.data_dir.join("outbox")),
    };
    let minutes = |n: u64| Duration::from_secs(n * 60);
    Ok(PortalConfig {
        keys,
        public_url,
        idle: minutes(portal.session_idle_minutes),
        absolute: Duration::from_secs(portal.session_absolute_hours * 3600),
        reset_ttl: minutes(portal.reset_link_minutes),
        mailer,
    })
}
