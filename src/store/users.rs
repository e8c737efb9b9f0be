//! Portal accounts, sessions and password-reset tokens in the store.
//!
//! Nothing secret is stored: passwords as Argon2id PHC strings (hashed by the caller, off the
//! async runtime), session ids and reset tokens as SHA-256 hashes of 256-bit random values. The
//! SQL is written once with numbered parameters (`$1`…, which SQLite reads as numbered too) and
//! expanded per backend; on SQLite writes go through the single writer connection.
//!
//! Changing a password, disabling a user or taking a reset token are single transactions that
//! also end the user's sessions and invalidate outstanding reset tokens, so no path leaves an old
//! session or token alive.

use ledger::types::TenantId;

use super::{Db, Store, StoreError};

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

/// A server-side session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// SHA-256 of the session id.
    pub id_hash: Vec<u8>,
    /// Its user.
    pub user_id: String,
    /// The user's tenant.
    pub tenant: TenantId,
    /// Created, µs.
    pub created_at_us: i64,
    /// Last request, µs.
    pub last_seen_us: i64,
    /// Absolute expiry, µs.
    pub expires_at_us: i64,
    /// Ended (sign-out, password change, disable), µs.
    pub ended_at_us: Option<i64>,
    /// Client description (user agent, address) for the "my sessions" page.
    pub client: String,
}

const USER_COLUMNS: &str = "user_id, tenant_id, email, role, password_hash, created_at_us, password_changed_at_us, expires_at_us, disabled_at_us, failed_logins, locked_until_us";
const SESSION_COLUMNS: &str =
    "id_hash, user_id, tenant_id, created_at_us, last_seen_us, expires_at_us, ended_at_us, client";

type UserTuple = (
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    i64,
    Option<i64>,
);

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

type SessionTuple = (Vec<u8>, String, String, i64, i64, i64, Option<i64>, String);

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

/// Runs `$body` with `$c`, a transaction scoped to `$tenant`: on PostgreSQL it sets the
/// tenant for row-level security first; on SQLite a `write` runs on the single writer and a
/// `read` on the reader pool. The transaction commits when `$body` succeeds.
macro_rules! in_tenant {
    ($store:expr, $tenant:expr, $mode:ident, |$c:ident| $body:expr) => {
        match $store.db() {
            Db::Sqlite(b) => {
                let mut tx = in_tenant!(@pool b, $mode).begin().await?;
                let $c = &mut *tx;
                let out = $body;
                tx.commit().await?;
                out
            }
            Db::Postgres(b) => {
                let mut tx = b.pool().begin().await?;
                super::postgres::set_tenant(&mut tx, $tenant).await?;
                let $c = &mut *tx;
                let out = $body;
                tx.commit().await?;
                out
            }
        }
    };
    (@pool $b:ident, read) => {
        $b.reader_pool()
    };
    (@pool $b:ident, write) => {
        $b.writer_pool()
    };
}

/// Ends every session of a user and invalidates their reset links, in the caller's transaction
/// `$c`.
macro_rules! end_everything {
    ($c:ident, $tenant:expr, $user_id:expr, $now_us:expr) => {
        sqlx::query(
            "UPDATE sessions SET ended_at_us = $1 WHERE user_id = $2 AND tenant_id = $3 AND ended_at_us IS NULL",
        )
        .bind($now_us)
        .bind($user_id)
        .bind($tenant.as_str())
        .execute(&mut *$c)
        .await?;
        sqlx::query("UPDATE password_resets SET used_at_us = $1 WHERE user_id = $2 AND tenant_id = $3 AND used_at_us IS NULL")
            .bind($now_us)
            .bind($user_id)
            .bind($tenant.as_str())
            .execute(&mut *$c)
            .await?;
    };
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
        let sql = format!(
            "INSERT INTO users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $6, $7, NULL, 0, NULL)"
        );
        let result: Result<(), StoreError> = async {
            in_tenant!(self, tenant, write, |c| {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(&id)
                    .bind(tenant.as_str())
                    .bind(&email)
                    .bind(role.as_str())
                    .bind(password_hash)
                    .bind(now_us)
                    .bind(expires_at_us)
                    .execute(&mut *c)
                    .await?;
            });
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {}
            Err(StoreError::Unavailable(e)) if matches!(&*e, sqlx::Error::Database(d) if d.is_unique_violation()) =>
            {
                return Err(duplicate());
            }
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
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 AND email = $2");
        let email = email.trim().to_lowercase();
        let row: Option<UserTuple> = in_tenant!(self, tenant, read, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(tenant.as_str())
                .bind(&email)
                .fetch_optional(&mut *c)
                .await?
        });
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
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE user_id = $1 AND tenant_id = $2");
        let row: Option<UserTuple> = in_tenant!(self, tenant, read, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(user_id)
                .bind(tenant.as_str())
                .fetch_optional(&mut *c)
                .await?
        });
        row.map(user).transpose()
    }

    /// A tenant's accounts, by email.
    ///
    /// # Errors
    /// A database error.
    pub async fn users(&self, tenant: &TenantId) -> Result<Vec<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 ORDER BY email");
        let rows: Vec<UserTuple> = in_tenant!(self, tenant, read, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(tenant.as_str())
                .fetch_all(&mut *c)
                .await?
        });
        rows.into_iter().map(user).collect()
    }

    /// Counts a failed sign-in and sets the lock-out end.
    ///
    /// # Errors
    /// A database error.
    pub async fn record_login_failure(
        &self,
        tenant: &TenantId,
        user_id: &str,
        locked_until_us: Option<i64>,
    ) -> Result<(), StoreError> {
        in_tenant!(self, tenant, write, |c| {
            sqlx::query("UPDATE users SET failed_logins = failed_logins + 1, locked_until_us = $2 WHERE user_id = $1 AND tenant_id = $3")
                .bind(user_id)
                .bind(locked_until_us)
                .bind(tenant.as_str())
                .execute(&mut *c)
                .await?;
        });
        Ok(())
    }

    /// Clears the failure count after a successful sign-in.
    ///
    /// # Errors
    /// A database error.
    pub async fn clear_login_failures(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<(), StoreError> {
        in_tenant!(self, tenant, write, |c| {
            sqlx::query(
                "UPDATE users SET failed_logins = 0, locked_until_us = NULL WHERE user_id = $1 AND tenant_id = $2",
            )
            .bind(user_id)
            .bind(tenant.as_str())
            .execute(&mut *c)
            .await?;
        });
        Ok(())
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
        in_tenant!(self, tenant, write, |c| {
            sqlx::query("UPDATE users SET password_hash = $1, password_changed_at_us = $2, failed_logins = 0, locked_until_us = NULL WHERE user_id = $3 AND tenant_id = $4")
                .bind(password_hash)
                .bind(now_us)
                .bind(user_id)
                .bind(tenant.as_str())
                .execute(&mut *c)
                .await?;
            end_everything!(c, tenant, user_id, now_us);
        });
        Ok(())
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
        in_tenant!(self, tenant, write, |c| {
            sqlx::query("UPDATE users SET role = $1, expires_at_us = $2 WHERE user_id = $3 AND tenant_id = $4")
                .bind(role.as_str())
                .bind(expires_at_us)
                .bind(user_id)
                .bind(tenant.as_str())
                .execute(&mut *c)
                .await?;
        });
        Ok(())
    }

    /// Disables a user, ends every session of theirs and invalidates their reset (and
    /// invitation) links, in one transaction.
    ///
    /// # Errors
    /// A database error.
    pub async fn disable_user(
        &self,
        tenant: &TenantId,
        user_id: &str,
        now_us: i64,
    ) -> Result<(), StoreError> {
        in_tenant!(self, tenant, write, |c| {
            sqlx::query("UPDATE users SET disabled_at_us = $1 WHERE user_id = $2 AND tenant_id = $3 AND disabled_at_us IS NULL")
                .bind(now_us)
                .bind(user_id)
                .bind(tenant.as_str())
                .execute(&mut *c)
                .await?;
            // A link mailed before the account was disabled (or an invitation withdrawn this
            // way) must not set a password afterwards.
            end_everything!(c, tenant, user_id, now_us);
        });
        Ok(())
    }

    /// Stores a new session.
    ///
    /// # Errors
    /// A database error.
    pub async fn create_session(&self, s: &Session) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, NULL, $7)"
        );
        in_tenant!(self, &s.tenant, write, |c| {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&s.id_hash)
                .bind(&s.user_id)
                .bind(s.tenant.as_str())
                .bind(s.created_at_us)
                .bind(s.last_seen_us)
                .bind(s.expires_at_us)
                .bind(&s.client)
                .execute(&mut *c)
                .await?;
        });
        Ok(())
    }

    /// A session by the hash of its id: the one look-up made before a request's tenant is known
    /// (on PostgreSQL through the owner's `session_for_id_hash`, which returns only that row).
    ///
    /// # Errors
    /// A database error.
    pub async fn session(&self, id_hash: &[u8]) -> Result<Option<Session>, StoreError> {
        let row: Option<SessionTuple> = match self.db() {
            Db::Sqlite(b) => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions WHERE id_hash = $1"
                )))
                .bind(id_hash)
                .fetch_optional(b.reader_pool())
                .await?
            }
            Db::Postgres(b) => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {SESSION_COLUMNS} FROM session_for_id_hash($1)"
                )))
                .bind(id_hash)
                .fetch_optional(b.pool())
                .await?
            }
        };
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
        in_tenant!(self, tenant, write, |c| {
            sqlx::query(
                "UPDATE sessions SET last_seen_us = $1 WHERE id_hash = $2 AND tenant_id = $3",
            )
            .bind(now_us)
            .bind(id_hash)
            .bind(tenant.as_str())
            .execute(&mut *c)
            .await?;
        });
        Ok(())
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
        in_tenant!(self, tenant, write, |c| {
            sqlx::query("UPDATE sessions SET ended_at_us = $1 WHERE id_hash = $2 AND user_id = $3 AND tenant_id = $4 AND ended_at_us IS NULL")
                .bind(now_us)
                .bind(id_hash)
                .bind(user_id)
                .bind(tenant.as_str())
                .execute(&mut *c)
                .await?;
        });
        Ok(())
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
        let done = in_tenant!(self, tenant, write, |c| {
            sqlx::query("UPDATE sessions SET ended_at_us = $1 WHERE user_id = $2 AND tenant_id = $4 AND id_hash <> $3 AND ended_at_us IS NULL")
                .bind(now_us)
                .bind(user_id)
                .bind(keep)
                .bind(tenant.as_str())
                .execute(&mut *c)
                .await?
                .rows_affected()
        });
        Ok(done)
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
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1 AND tenant_id = $3 AND ended_at_us IS NULL AND expires_at_us > $2 ORDER BY created_at_us DESC LIMIT 100"
        );
        let rows: Vec<SessionTuple> = in_tenant!(self, tenant, read, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(user_id)
                .bind(now_us)
                .bind(tenant.as_str())
                .fetch_all(&mut *c)
                .await?
        });
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
        in_tenant!(self, tenant, write, |c| {
            sqlx::query("UPDATE password_resets SET used_at_us = $1 WHERE user_id = $2 AND tenant_id = $3 AND used_at_us IS NULL")
                .bind(now_us)
                .bind(user_id)
                .bind(tenant.as_str())
                .execute(&mut *c)
                .await?;
            sqlx::query("INSERT INTO password_resets (token_hash, user_id, tenant_id, created_at_us, expires_at_us, used_at_us) VALUES ($1, $2, $3, $4, $5, NULL)")
                .bind(token_hash)
                .bind(user_id)
                .bind(tenant.as_str())
                .bind(now_us)
                .bind(expires_at_us)
                .execute(&mut *c)
                .await?;
        });
        Ok(())
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
        let row: Option<(String, String)> = match self.db() {
            Db::Sqlite(b) => {
                sqlx::query_as("SELECT user_id, tenant_id FROM password_resets WHERE token_hash = $1 AND used_at_us IS NULL AND expires_at_us > $2")
                    .bind(token_hash)
                    .bind(now_us)
                    .fetch_optional(b.reader_pool())
                    .await?
            }
            Db::Postgres(b) => {
                sqlx::query_as("SELECT user_id, tenant_id FROM password_reset_for_token_hash($1, $2)")
                    .bind(token_hash)
                    .bind(now_us)
                    .fetch_optional(b.pool())
                    .await?
            }
        };
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
        let taken: Option<String> = in_tenant!(self, &owner.tenant, write, |c| {
            sqlx::query_scalar("UPDATE password_resets SET used_at_us = $1 WHERE token_hash = $2 AND tenant_id = $3 AND used_at_us IS NULL AND expires_at_us > $1 RETURNING user_id")
                .bind(now_us)
                .bind(token_hash)
                .bind(owner.tenant.as_str())
                .fetch_optional(&mut *c)
                .await?
        });
        Ok(taken.filter(|u| *u == owner.user_id).map(|_| owner))
    }
}
