//! API keys in the store: create, list, revoke, and authenticate. The key text format and hashing
//! live in [`crate::auth`]; the SQL is behind the storage seam (`AccessBackend`, `backend.rs`).

use std::collections::HashMap;
use std::sync::Mutex;

use ledger::types::TenantId;

use super::{Store, StoreError, db_int};
use crate::auth::{ApiKeyId, ApiKeySecret, Role};

/// The highest request rate a key may be given, per second (as `AUDITEX_RATE_PER_SECOND`).
pub const API_KEY_RATE_MAX: u32 = 100_000;

/// Longest label of an API key, in bytes.
pub const API_KEY_LABEL_BYTES_MAX: usize = 200;

/// What is wrong with `label` as an API key's label, said to follow "the label": at most
/// [`API_KEY_LABEL_BYTES_MAX`] bytes and no control character. A label is one line of text that
/// pages and `auditex apikey list` show as it is: a NUL cannot be stored, and line breaks or
/// escape sequences would forge lines of a terminal. Whether it may be empty is the caller's.
pub fn api_key_label_problem(label: &str) -> Option<String> {
    if label.len() > API_KEY_LABEL_BYTES_MAX {
        return Some(format!(
            "is at most {API_KEY_LABEL_BYTES_MAX} bytes, not {}",
            label.len()
        ));
    }
    label
        .chars()
        .any(char::is_control)
        .then(|| "must not contain control characters (line breaks, tabs, escape sequences)".into())
}

/// Last-use times are written at most this often per key, so that authentication does not turn
/// every read into a database write.
pub const LAST_USED_WRITE_INTERVAL_US: u64 = 60_000_000;

/// A stored API key row.
#[derive(Debug, Clone)]
pub(crate) struct ApiKeyRow {
    pub key_id: String,
    pub tenant_id: String,
    pub role: String,
    pub secret_hash: Vec<u8>,
    pub label: String,
    pub created_at_us: i64,
    pub expires_at_us: Option<i64>,
    pub revoked_at_us: Option<i64>,
    pub last_used_at_us: Option<i64>,
    pub rate_per_second: Option<i64>,
}

/// What a listing shows about a key (never its secret or hash).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiKeyInfo {
    /// The public key id.
    pub key_id: String,
    /// The role.
    pub role: Role,
    /// A label chosen at creation.
    pub label: String,
    /// Creation time, µs since the Unix epoch.
    pub created_at_us: u64,
    /// Expiry, if any.
    pub expires_at_us: Option<u64>,
    /// Revocation time, if revoked.
    pub revoked_at_us: Option<u64>,
    /// Last successful use (to the minute), if ever used.
    pub last_used_at_us: Option<u64>,
    /// The key's own request rate per second; `None` keeps the service's default for its role.
    pub rate_per_second: Option<u32>,
}

/// Who an authenticated request acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The tenant, taken from the key and nothing else.
    pub tenant: TenantId,
    /// The key's role.
    pub role: Role,
    /// The key's id (for rate limiting and audit).
    pub key_id: ApiKeyId,
    /// The key's own request rate per second, if one was set (see [`Store::set_api_key_rate`]).
    pub rate_per_second: Option<u32>,
}

/// API key rows (see `api_keys.rs`).
pub(crate) type ApiKeyTuple = (
    String,
    String,
    String,
    Vec<u8>,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

pub(crate) fn api_key_row(t: ApiKeyTuple) -> ApiKeyRow {
    ApiKeyRow {
        key_id: t.0,
        tenant_id: t.1,
        role: t.2,
        secret_hash: t.3,
        label: t.4,
        created_at_us: t.5,
        expires_at_us: t.6,
        revoked_at_us: t.7,
        last_used_at_us: t.8,
        rate_per_second: t.9,
    }
}
/// Remembers when each key's last use was written.
#[derive(Default)]
pub(crate) struct LastUsed(Mutex<HashMap<String, u64>>);

/// How long a verified key is trusted without reading its row again. A revocation made through
/// this store takes effect at once (the cache is emptied); one made by another service instance
/// sharing the database, within this time. An expiry is checked on every use.
pub const VERIFIED_KEY_CACHE_MS: u64 = 2_000;

/// Most verified keys remembered; when full, the cache is emptied.
const VERIFIED_KEYS_MAX: usize = 10_000;

/// A key verified recently.
struct VerifiedKey {
    principal: Principal,
    expires_at_us: Option<u64>,
    verified: std::time::Instant,
}

/// Keys verified recently, by (key id, hash of the secret): a request with the same key text
/// skips the database; any other text (a wrong secret included) is read as before. The
/// generation moves with every revocation, so that a row read before a revocation is never
/// remembered after it.
#[derive(Default)]
pub(crate) struct VerifiedKeys(Mutex<(u64, KeyMap)>);

/// Verified keys by (key id, hash of the secret).
type KeyMap = HashMap<(String, [u8; 32]), VerifiedKey>;

impl VerifiedKeys {
    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, KeyMap)> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets every key and moves the generation (after a revocation).
    pub(crate) fn clear(&self) {
        let mut cache = self.lock();
        cache.0 = cache.0.wrapping_add(1);
        cache.1.clear();
    }
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl ApiKeyRow {
    fn info(&self) -> Result<ApiKeyInfo, StoreError> {
        Ok(ApiKeyInfo {
            key_id: self.key_id.clone(),
            role: Role::parse(&self.role).map_err(StoreError::Corrupt)?,
            label: self.label.clone(),
            created_at_us: to_u64(self.created_at_us),
            expires_at_us: self.expires_at_us.map(to_u64),
            revoked_at_us: self.revoked_at_us.map(to_u64),
            last_used_at_us: self.last_used_at_us.map(to_u64),
            rate_per_second: self.rate_per_second.and_then(|r| u32::try_from(r).ok()),
        })
    }
}

impl Store {
    /// Creates an API key for `tenant` and returns it; its text is shown once and never stored.
    ///
    /// # Errors
    /// [`StoreError::UnknownTenant`] or a database error.
    pub async fn create_api_key(
        &self,
        tenant: &TenantId,
        role: Role,
        label: &str,
        expires_at_us: Option<u64>,
    ) -> Result<ApiKeySecret, StoreError> {
        let key = ApiKeySecret::generate();
        self.store_api_key(tenant, &key, role, label, expires_at_us)
            .await?;
        Ok(key)
    }

    /// Stores a key made by the caller, who needs its id before it exists (the portal appends
    /// the record naming it first).
    ///
    /// # Errors
    /// [`StoreError::UnknownTenant`] or a database error.
    pub async fn store_api_key(
        &self,
        tenant: &TenantId,
        key: &ApiKeySecret,
        role: Role,
        label: &str,
        expires_at_us: Option<u64>,
    ) -> Result<(), StoreError> {
        if !self.tenant_exists(tenant).await? {
            return Err(StoreError::UnknownTenant);
        }
        let row = ApiKeyRow {
            key_id: key.id().to_string(),
            tenant_id: tenant.to_string(),
            role: role.as_str().to_owned(),
            secret_hash: key.hash().to_vec(),
            label: label.to_owned(),
            created_at_us: db_int(self.config().clock.now_unix_micros()),
            expires_at_us: expires_at_us.map(db_int),
            revoked_at_us: None,
            last_used_at_us: None,
            rate_per_second: None,
        };
        self.backend().insert_api_key(&row).await
    }

    /// The tenant's keys, oldest first.
    pub async fn api_keys(&self, tenant: &TenantId) -> Result<Vec<ApiKeyInfo>, StoreError> {
        let rows = self.backend().api_keys(tenant).await?;
        rows.iter().map(ApiKeyRow::info).collect()
    }

    /// Revokes one of the tenant's keys; `false` when the tenant has no such active key.
    pub async fn revoke_api_key(
        &self,
        tenant: &TenantId,
        key_id: &ApiKeyId,
    ) -> Result<bool, StoreError> {
        let now = db_int(self.config().clock.now_unix_micros());
        let revoked = self
            .backend()
            .revoke_api_key(tenant, key_id.as_str(), now)
            .await;
        // Whatever the outcome, no key is trusted from memory any more.
        self.inner.verified_keys.clear();
        revoked
    }

    /// Sets one of the tenant's keys' own request rate (`None`: back to the service's default
    /// for its role); `false` when the tenant has no such active key. Takes effect on the key's
    /// next request through this store, and within [`VERIFIED_KEY_CACHE_MS`] on other nodes.
    ///
    /// # Errors
    /// [`StoreError::OutOfRange`] for a rate outside 1 to [`API_KEY_RATE_MAX`], or a database
    /// error.
    pub async fn set_api_key_rate(
        &self,
        tenant: &TenantId,
        key_id: &ApiKeyId,
        rate_per_second: Option<u32>,
    ) -> Result<bool, StoreError> {
        if let Some(rate) = rate_per_second
            && !(1..=API_KEY_RATE_MAX).contains(&rate)
        {
            return Err(StoreError::OutOfRange(format!(
                "a key's rate must be between 1 and {API_KEY_RATE_MAX} requests a second, not {rate}"
            )));
        }
        let set = self
            .backend()
            .set_api_key_rate(tenant, key_id.as_str(), rate_per_second.map(i64::from))
            .await;
        // The verified keys in memory carry the old rate.
        self.inner.verified_keys.clear();
        set
    }

    /// Who `text` acts for, if it is a key this store verified within [`VERIFIED_KEY_CACHE_MS`]
    /// (and that has not been revoked or changed through it since): a cheap look-up, without the
    /// database, for the address rate wall, which charges such requests to their key's bucket
    /// instead of the address's.
    pub fn recently_verified(&self, text: &str) -> Option<Principal> {
        let Ok(key) = ApiKeySecret::parse(text) else {
            return None;
        };
        let fresh = std::time::Duration::from_millis(VERIFIED_KEY_CACHE_MS);
        let now = self.config().clock.now_unix_micros();
        self.inner
            .verified_keys
            .lock()
            .1
            .get(&(key.id().as_str().to_owned(), key.hash()))
            .filter(|k| k.verified.elapsed() < fresh && k.expires_at_us.is_none_or(|e| e > now))
            .map(|k| k.principal.clone())
    }

    /// Authenticates key text: it must parse, exist, match its stored hash (compared in constant
    /// time), and be neither revoked nor expired. `None` in every other case, without saying why.
    pub async fn authenticate(&self, text: &str) -> Result<Option<Principal>, StoreError> {
        let Ok(key) = ApiKeySecret::parse(text) else {
            return Ok(None);
        };
        // The key is found by its id and the hash of its secret together: an unknown id and a
        // wrong secret are the same miss, and nothing of a key is read without its secret.
        let hash = key.hash();
        let now = self.config().clock.now_unix_micros();
        let cache_key = (key.id().as_str().to_owned(), hash);
        let fresh = std::time::Duration::from_millis(VERIFIED_KEY_CACHE_MS);
        let (cached, generation) = {
            let cache = self.inner.verified_keys.lock();
            let found = cache
                .1
                .get(&cache_key)
                .filter(|k| k.verified.elapsed() < fresh)
                .map(|k| (k.principal.clone(), k.expires_at_us));
            (found, cache.0)
        };
        if let Some((principal, expires)) = cached {
            if expires.is_some_and(|e| e <= now) {
                return Ok(None);
            }
            self.note_use(&principal, now).await?;
            return Ok(Some(principal));
        }
        let Some(row) = self.backend().api_key(key.id().as_str(), &hash[..]).await? else {
            return Ok(None);
        };
        if !key.matches(&row.secret_hash) {
            return Ok(None);
        }
        if row.revoked_at_us.is_some() || row.expires_at_us.is_some_and(|e| to_u64(e) <= now) {
            return Ok(None);
        }
        let tenant =
            TenantId::parse(&row.tenant_id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let role = Role::parse(&row.role).map_err(StoreError::Corrupt)?;
        let principal = Principal {
            tenant,
            role,
            key_id: key.id().clone(),
            rate_per_second: row.rate_per_second.and_then(|r| u32::try_from(r).ok()),
        };
        {
            let mut cache = self.inner.verified_keys.lock();
            // A revocation since the row was read would make it stale: then nothing is remembered.
            if cache.0 == generation {
                if cache.1.len() >= VERIFIED_KEYS_MAX {
                    cache.1.clear();
                }
                cache.1.insert(
                    cache_key,
                    VerifiedKey {
                        principal: principal.clone(),
                        expires_at_us: row.expires_at_us.map(to_u64),
                        verified: std::time::Instant::now(),
                    },
                );
            }
        }
        self.note_use(&principal, now).await?;
        Ok(Some(principal))
    }

    /// Writes the key's last use, at most once per [`LAST_USED_WRITE_INTERVAL_US`].
    async fn note_use(&self, principal: &Principal, now: u64) -> Result<(), StoreError> {
        let key_id = principal.key_id.as_str();
        let due = {
            let mut seen = self.last_used().0.lock().unwrap_or_else(|p| p.into_inner());
            let last = seen.get(key_id).copied().unwrap_or(0);
            let due = now.saturating_sub(last) >= LAST_USED_WRITE_INTERVAL_US;
            if due {
                seen.insert(key_id.to_owned(), now);
            }
            due
        };
        if due {
            self.backend()
                .touch_api_key(&principal.tenant, key_id, db_int(now))
                .await?;
        }
        Ok(())
    }
}
