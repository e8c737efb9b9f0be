//! Portal accounts, sessions and password-reset tokens in the store.
//!
//! Nothing secret is stored: passwords as Argon2id PHC strings (hashed by the caller, off the
//! async runtime), session ids and reset tokens as SHA-256 hashes of 256-bit random values. The
//! SQL is behind the storage seam (`AccessBackend`, see `backend.rs`); this module keeps the rules
//! (normalized emails, duplicates, which token is usable) and turns rows into types.
//!
//! Changing a password, disabling a user or taking a reset token are single transactions that
//! also end the user's sessions and invalidate outstanding reset tokens, so no path leaves an old
//! session or token alive.

use ledger::types::TenantId;

use super::backend::AccessChange;
pub use super::rows::Session;
use super::rows::{SessionTuple, UserTuple};
use super::{Store, StoreError};

/// A portal role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PortalRole {
    /// Manages users and API keys, and everything a compliance officer does.
    Admin,
    /// Searches decisions, exports evidence, runs integrity checks.
    Compliance,
    /// Reads everything, runs integrity checks, downloads evidence.
    Auditor,
    /// Time-boxed, read-only access (an expiry date is required).
    Regulator,
}

impl PortalRole {
    /// Every role.
    pub const ALL: [PortalRole; 4] = [
        PortalRole::Admin,
        PortalRole::Compliance,
        PortalRole::Auditor,
        PortalRole::Regulator,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            PortalRole::Admin => "admin",
            PortalRole::Compliance => "compliance",
            PortalRole::Auditor => "auditor",
            PortalRole::Regulator => "regulator",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<PortalRole> {
        PortalRole::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

/// A portal account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Its id (a UUIDv7).
    pub user_id: String,
    /// The tenant it belongs to.
    pub tenant: TenantId,
    /// Email address (lower case; unique).
    pub email: String,
    /// Role.
    pub role: PortalRole,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Created, µs.
    pub created_at_us: i64,
    /// Last password change, µs.
    pub password_changed_at_us: i64,
    /// Access ends at (regulators), µs.
    pub expires_at_us: Option<i64>,
    /// Disabled at, µs.
    pub disabled_at_us: Option<i64>,
    /// Consecutive failed sign-ins.
    pub failed_logins: i64,
    /// Sign-in refused until, µs.
    pub locked_until_us: Option<i64>,
}

impl User {
    /// Whether the account may sign in at `now_us`.
    pub fn is_active(&self, now_us: i64) -> bool {
        self.disabled_at_us.is_none() && self.expires_at_us.is_none_or(|t| now_us < t)
    }
}

fn user(t: UserTuple) -> Result<User, StoreError> {
    Ok(User {
        user_id: t.0,
        tenant: TenantId::parse(&t.1).map_err(|e| StoreError::Corrupt(format!("user: {e}")))?,
        email: t.2,
        role: PortalRole::parse(&t.3)
            .ok_or_else(|| StoreError::Corrupt(format!("user role {:?}", t.3)))?,
        password_hash: t.4,
        created_at_us: t.5,
        password_changed_at_us: t.6,
        expires_at_us: t.7,
        disabled_at_us: t.8,
        failed_logins: t.9,
        locked_until_us: t.10,
    })
}

fn session(t: SessionTuple) -> Result<Session, StoreError> {
    Ok(Session {
        id_hash: t.0,
        user_id: t.1,
        tenant: TenantId::parse(&t.2).map_err(|e| StoreError::Corrupt(format!("session: {e}")))?,
        created_at_us: t.3,
        last_seen_us: t.4,
        expires_at_us: t.5,
        ended_at_us: t.6,
        client: t.7,
    })
}

/// Who a usable reset token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetOwner {
    /// The user's tenant.
    pub tenant: TenantId,
    /// The user.
    pub user_id: String,
}

impl Store {
    /// Creates a portal account.
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] when the tenant has an account with that email (other tenants'
    /// accounts are not looked at); a database error.
    pub async fn create_user(
        &self,
        tenant: &TenantId,
        email: &str,
        role: PortalRole,
        password_hash: &str,
        expires_at_us: Option<i64>,
        now_us: i64,
    ) -> Result<User, StoreError> {
        let id = uuid::Uuid::now_v7().to_string();
        let email = email.trim().to_lowercase();
        let taken = self.user_by_email(tenant, &email).await?.is_some();
        let duplicate = || {
            StoreError::Duplicate(format!(
                "a user with the email {email} exists already in this organisation"
            ))
        };
        if taken {
            return Err(duplicate());
        }
        let result = self
            .backend()
            .insert_user(
                tenant,
                &id,
                &email,
                role.as_str(),
                password_hash,
                expires_at_us,
                now_us,
            )
            .await;
        match result {
            Ok(()) => {}
            Err(e) if e.is_unique_violation() => return Err(duplicate()),
            Err(e) => return Err(e),
        }
        self.user_by_id(tenant, &id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("the new user is not there".into()))
    }

    /// The tenant's account with this email (sign-in and password reset name the tenant).
    ///
    /// # Errors
    /// A database error.
    pub async fn user_by_email(
        &self,
        tenant: &TenantId,
        email: &str,
    ) -> Result<Option<User>, StoreError> {
        let email = email.trim().to_lowercase();
        let row = self.backend().user_by_email(tenant, &email).await?;
        row.map(user).transpose()
    }

    /// A tenant's account by id.
    ///
    /// # Errors
    /// A database error.
    pub async fn user_by_id(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<Option<User>, StoreError> {
        let row = self.backend().user_by_id(tenant, user_id).await?;
        row.map(user).transpose()
    }

    /// A tenant's accounts, by email.
    ///
    /// # Errors
    /// A database error.
    pub async fn users(&self, tenant: &TenantId) -> Result<Vec<User>, StoreError> {
        let rows = self.backend().users(tenant).await?;
        rows.into_iter().map(user).collect()
    }

    /// Sets a new password hash; ends every session of the user and invalidates every reset
    /// token, in one transaction.
    ///
    /// # Errors
    /// A database error.
    pub async fn set_password(
        &self,
        tenant: &TenantId,
        user_id: &str,
        password_hash: &str,
        now_us: i64,
    ) -> Result<(), StoreError> {
        self.backend()
            .end_user_access(
                tenant,
                user_id,
                AccessChange::Password(password_hash),
                now_us,
            )
            .await
    }

    /// Sets a user's role and expiry.
    ///
    /// # Errors
    /// A database error.
    pub async fn set_user_role(
        &self,
        tenant: &TenantId,
        user_id: &str,
        role: PortalRole,
        expires_at_us: Option<i64>,
    ) -> Result<(), StoreError> {
        self.backend()
            .set_user_role(tenant, user_id, role.as_str(), expires_at_us)
            .await
    }

    /// Disables a user, ends every session of theirs and invalidates their reset (and
    /// invitation) links, in one transaction: a link mailed before the account was disabled (or
    /// an invitation withdrawn this way) must not set a password afterwards.
    ///
    /// # Errors
    /// A database error.
    pub async fn disable_user(
        &self,
        tenant: &TenantId,
        user_id: &str,
        now_us: i64,
    ) -> Result<(), StoreError> {
        self.backend()
            .end_user_access(tenant, user_id, AccessChange::Disable, now_us)
            .await
    }

    /// Stores a new session.
    ///
    /// # Errors
    /// A database error.
    pub async fn create_session(&self, s: &Session) -> Result<(), StoreError> {
        self.backend().insert_session(s).await
    }

    /// Until when sign-ins of `account` (the portal's hash of organisation and email, naming no
    /// tenant) are refused, shared by every service node on this database.
    ///
    /// # Errors
    /// A database error.
    pub async fn sign_in_locked_until(&self, account: &[u8]) -> Result<Option<i64>, StoreError> {
        self.backend().sign_in_locked_until(account).await
    }

    /// Counts a failed sign-in of `account` and returns the failures counted so far; failures
    /// older than a day are forgotten.
    ///
    /// # Errors
    /// A database error.
    pub async fn count_sign_in_failure(
        &self,
        account: &[u8],
        now_us: i64,
    ) -> Result<i64, StoreError> {
        const FORGET_AFTER_US: i64 = 24 * 3600 * 1_000_000;
        self.backend()
            .count_sign_in_failure(account, now_us, now_us.saturating_sub(FORGET_AFTER_US))
            .await
    }

    /// Refuses sign-ins of `account` until `until_us` (a longer wait already set stays).
    ///
    /// # Errors
    /// A database error.
    pub async fn lock_sign_in(&self, account: &[u8], until_us: i64) -> Result<(), StoreError> {
        self.backend().lock_sign_in(account, until_us).await
    }

    /// Forgets the failed sign-ins of `account`.
    ///
    /// # Errors
    /// A database error.
    pub async fn clear_sign_in(&self, account: &[u8]) -> Result<(), StoreError> {
        self.backend().clear_sign_in(account).await
    }

    /// A session by the hash of its id: the one look-up made before a request's tenant is known
    /// (on PostgreSQL through the owner's `session_for_id_hash`, which returns only that row).
    ///
    /// # Errors
    /// A database error.
    pub async fn session(&self, id_hash: &[u8]) -> Result<Option<Session>, StoreError> {
        let row = self.backend().session(id_hash).await?;
        row.map(session).transpose()
    }

    /// Records activity on a session (for idle expiry).
    ///
    /// # Errors
    /// A database error.
    pub async fn touch_session(
        &self,
        tenant: &TenantId,
        id_hash: &[u8],
        now_us: i64,
    ) -> Result<(), StoreError> {
        self.backend().touch_session(tenant, id_hash, now_us).await
    }

    /// Ends one session of a user.
    ///
    /// # Errors
    /// A database error.
    pub async fn end_session(
        &self,
        tenant: &TenantId,
        user_id: &str,
        id_hash: &[u8],
        now_us: i64,
    ) -> Result<(), StoreError> {
        self.backend()
            .end_session(tenant, user_id, id_hash, now_us)
            .await
    }

    /// Ends every session of a user but `keep`.
    ///
    /// # Errors
    /// A database error.
    pub async fn end_other_sessions(
        &self,
        tenant: &TenantId,
        user_id: &str,
        keep: &[u8],
        now_us: i64,
    ) -> Result<u64, StoreError> {
        self.backend()
            .end_other_sessions(tenant, user_id, keep, now_us)
            .await
    }

    /// A user's sessions that have not ended or expired at `now_us`, newest first.
    ///
    /// # Errors
    /// A database error.
    pub async fn live_sessions(
        &self,
        tenant: &TenantId,
        user_id: &str,
        now_us: i64,
    ) -> Result<Vec<Session>, StoreError> {
        let rows = self
            .backend()
            .live_sessions(tenant, user_id, now_us)
            .await?;
        rows.into_iter().map(session).collect()
    }

    /// Stores a reset token's hash; every older token of the user stops working.
    ///
    /// # Errors
    /// A database error.
    pub async fn create_password_reset(
        &self,
        tenant: &TenantId,
        user_id: &str,
        token_hash: &[u8],
        now_us: i64,
        expires_at_us: i64,
    ) -> Result<(), StoreError> {
        self.backend()
            .create_password_reset(tenant, user_id, token_hash, now_us, expires_at_us)
            .await
    }

    /// Whether a reset token is usable now (unused, unexpired); returns its user and tenant. The
    /// token's hash is the only key: on PostgreSQL the owner's `password_reset_for_token_hash`
    /// returns that one row and nothing else of the table.
    ///
    /// # Errors
    /// A database error.
    pub async fn password_reset_user(
        &self,
        token_hash: &[u8],
        now_us: i64,
    ) -> Result<Option<ResetOwner>, StoreError> {
        let row = self
            .backend()
            .password_reset_user(token_hash, now_us)
            .await?;
        row.map(|(user_id, tenant)| {
            Ok(ResetOwner {
                tenant: TenantId::parse(&tenant)
                    .map_err(|e| StoreError::Corrupt(format!("password reset: {e}")))?,
                user_id,
            })
        })
        .transpose()
    }

    /// Uses a reset token: marks it used — only if it still was usable — and returns its user.
    /// Exactly one of two concurrent uses succeeds: the update, scoped to the token's tenant,
    /// checks again that the token is unused.
    ///
    /// # Errors
    /// A database error.
    pub async fn take_password_reset(
        &self,
        token_hash: &[u8],
        now_us: i64,
    ) -> Result<Option<ResetOwner>, StoreError> {
        let Some(owner) = self.password_reset_user(token_hash, now_us).await? else {
            return Ok(None);
        };
        let taken = self
            .backend()
            .take_password_reset(&owner.tenant, token_hash, now_us)
            .await?;
        Ok(taken.filter(|u| *u == owner.user_id).map(|_| owner))
    }
}
