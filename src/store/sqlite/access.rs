//! The access tables on SQLite: API keys, portal users, sessions and password-reset tokens.
//! Writes go through the single writer connection, reads through the reader pool; the statements
//! both backends share are in `access_sql.rs`.

use ledger::types::TenantId;

use super::SqliteDb;
use crate::store::StoreError;
use crate::store::access_sql::SELECT_API_KEY;
use crate::store::access_sql::{self as sql, session_columns};
use crate::store::api_keys::{ApiKeyRow, ApiKeyTuple, api_key_row};
use crate::store::backend::{AccessBackend, AccessChange};
use crate::store::integrity_runs::{IntegrityRunRow, RunTuple};
use crate::store::rows::{Session, SessionTuple, UserTuple};

#[async_trait::async_trait]
impl AccessBackend for SqliteDb {
    async fn insert_api_key(&self, row: &ApiKeyRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (key_id, tenant_id, role, secret_hash, label, created_at_us, expires_at_us)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&row.key_id)
        .bind(&row.tenant_id)
        .bind(&row.role)
        .bind(&row.secret_hash)
        .bind(&row.label)
        .bind(row.created_at_us)
        .bind(row.expires_at_us)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn api_keys(&self, tenant: &TenantId) -> Result<Vec<ApiKeyRow>, StoreError> {
        let rows: Vec<ApiKeyTuple> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{SELECT_API_KEY} WHERE tenant_id = ? ORDER BY created_at_us, key_id"
        )))
        .bind(tenant.as_str())
        .fetch_all(&self.readers)
        .await?;
        Ok(rows.into_iter().map(api_key_row).collect())
    }

    /// The key with this id and secret hash (as on PostgreSQL, where nothing else is visible
    /// before the tenant is known).
    async fn api_key(
        &self,
        key_id: &str,
        secret_hash: &[u8],
    ) -> Result<Option<ApiKeyRow>, StoreError> {
        let row: Option<ApiKeyTuple> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{SELECT_API_KEY} WHERE key_id = ? AND secret_hash = ?"
        )))
        .bind(key_id)
        .bind(secret_hash)
        .fetch_optional(&self.readers)
        .await?;
        Ok(row.map(api_key_row))
    }

    async fn revoke_api_key(
        &self,
        tenant: &TenantId,
        key_id: &str,
        now_us: i64,
    ) -> Result<bool, StoreError> {
        self.update_live_key(
            tenant,
            key_id,
            "UPDATE api_keys SET revoked_at_us = ? WHERE tenant_id = ? AND key_id = ? AND revoked_at_us IS NULL",
            Some(now_us))
            .await
    }

    async fn set_api_key_rate(
        &self,
        tenant: &TenantId,
        key_id: &str,
        rate_per_second: Option<i64>,
    ) -> Result<bool, StoreError> {
        self.update_live_key(
            tenant,
            key_id,
            "UPDATE api_keys SET rate_per_second = ? WHERE tenant_id = ? AND key_id = ? AND revoked_at_us IS NULL",
            rate_per_second)
            .await
    }

    async fn touch_api_key(
        &self,
        tenant: &TenantId,
        key_id: &str,
        now_us: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_keys SET last_used_at_us = ? WHERE key_id = ? AND tenant_id = ?")
            .bind(now_us)
            .bind(key_id)
            .bind(tenant.as_str())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn insert_user(
        &self,
        tenant: &TenantId,
        user_id: &str,
        email: &str,
        role: &str,
        password_hash: &str,
        expires_at_us: Option<i64>,
        now_us: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(sql::INSERT_USER)
            .bind(user_id)
            .bind(tenant.as_str())
            .bind(email)
            .bind(role)
            .bind(password_hash)
            .bind(now_us)
            .bind(expires_at_us)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn user_by_email(
        &self,
        tenant: &TenantId,
        email: &str,
    ) -> Result<Option<UserTuple>, StoreError> {
        Ok(sqlx::query_as(sql::USER_BY_EMAIL)
            .bind(tenant.as_str())
            .bind(email)
            .fetch_optional(&self.readers)
            .await?)
    }

    async fn user_by_id(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<Option<UserTuple>, StoreError> {
        Ok(sqlx::query_as(sql::USER_BY_ID)
            .bind(user_id)
            .bind(tenant.as_str())
            .fetch_optional(&self.readers)
            .await?)
    }

    async fn users(&self, tenant: &TenantId) -> Result<Vec<UserTuple>, StoreError> {
        Ok(sqlx::query_as(sql::USERS)
            .bind(tenant.as_str())
            .fetch_all(&self.readers)
            .await?)
    }

    async fn end_user_access(
        &self,
        tenant: &TenantId,
        user_id: &str,
        change: AccessChange<'_>,
        now_us: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        match change {
            AccessChange::Password(hash) => sqlx::query(sql::SET_PASSWORD)
                .bind(hash)
                .bind(now_us)
                .bind(user_id)
                .bind(tenant.as_str()),
            AccessChange::Disable => sqlx::query(sql::DISABLE_USER)
                .bind(now_us)
                .bind(user_id)
                .bind(tenant.as_str()),
        }
        .execute(&mut *tx)
        .await?;
        for end in [sql::END_SESSIONS, sql::END_RESETS] {
            sqlx::query(end)
                .bind(now_us)
                .bind(user_id)
                .bind(tenant.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn set_user_role(
        &self,
        tenant: &TenantId,
        user_id: &str,
        role: &str,
        expires_at_us: Option<i64>,
    ) -> Result<(), StoreError> {
        sqlx::query(sql::SET_USER_ROLE)
            .bind(role)
            .bind(expires_at_us)
            .bind(user_id)
            .bind(tenant.as_str())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn oversight_settings(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<crate::store::backend::SettingsTuple>, StoreError> {
        Ok(sqlx::query_as(sql::OVERSIGHT_SETTINGS)
            .bind(tenant.as_str())
            .fetch_optional(&self.readers)
            .await?)
    }

    async fn claim_integrity_run(
        &self,
        tenant: &TenantId,
        check_id: &str,
        now_us: i64,
        stale_before_us: i64,
        progress: &str,
    ) -> Result<bool, StoreError> {
        // Two statements without a transaction: a start racing this one may take the row
        // between them, and then this insert changes nothing.
        sqlx::query(sql::PRUNE_STALE_INTEGRITY_RUN)
            .bind(tenant.as_str())
            .bind(stale_before_us)
            .execute(&self.writer)
            .await?;
        let claimed = sqlx::query(sql::CLAIM_INTEGRITY_RUN)
            .bind(tenant.as_str())
            .bind(check_id)
            .bind(now_us)
            .bind(false)
            .bind(progress)
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(claimed == 1)
    }

    async fn integrity_run(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<IntegrityRunRow>, StoreError> {
        let row: Option<RunTuple> = sqlx::query_as(sql::INTEGRITY_RUN)
            .bind(tenant.as_str())
            .fetch_optional(&self.readers)
            .await?;
        Ok(row.map(IntegrityRunRow::from))
    }

    async fn beat_integrity_run(
        &self,
        tenant: &TenantId,
        check_id: &str,
        now_us: i64,
        progress: &str,
    ) -> Result<Option<bool>, StoreError> {
        Ok(sqlx::query_scalar(sql::BEAT_INTEGRITY_RUN)
            .bind(tenant.as_str())
            .bind(check_id)
            .bind(now_us)
            .bind(progress)
            .fetch_optional(&self.writer)
            .await?)
    }

    async fn cancel_integrity_run(
        &self,
        tenant: &TenantId,
        check_id: &str,
    ) -> Result<bool, StoreError> {
        let changed = sqlx::query(sql::CANCEL_INTEGRITY_RUN)
            .bind(tenant.as_str())
            .bind(check_id)
            .bind(true)
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(changed == 1)
    }

    async fn release_integrity_run(
        &self,
        tenant: &TenantId,
        check_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(sql::RELEASE_INTEGRITY_RUN)
            .bind(tenant.as_str())
            .bind(check_id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn set_oversight_settings(
        &self,
        tenant: &TenantId,
        (four_eyes, review, contest, explanation): crate::store::backend::SettingsTuple,
        now_us: i64,
        by: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(sql::SET_OVERSIGHT_SETTINGS)
            .bind(tenant.as_str())
            .bind(four_eyes)
            .bind(review)
            .bind(contest)
            .bind(explanation)
            .bind(now_us)
            .bind(by)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn count_sign_in_failure(
        &self,
        account: &[u8],
        now_us: i64,
        forget_before_us: i64,
    ) -> Result<i64, StoreError> {
        sqlx::query(sql::FORGET_SIGN_IN_FAILURES)
            .bind(forget_before_us)
            .execute(&self.writer)
            .await?;
        Ok(sqlx::query_scalar(sql::COUNT_SIGN_IN_FAILURE)
            .bind(account)
            .bind(now_us)
            .fetch_one(&self.writer)
            .await?)
    }

    async fn lock_sign_in(&self, account: &[u8], until_us: i64) -> Result<(), StoreError> {
        sqlx::query(sql::LOCK_SIGN_IN)
            .bind(until_us)
            .bind(account)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn sign_in_locked_until(&self, account: &[u8]) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(sql::SIGN_IN_LOCKED_UNTIL)
            .bind(account)
            .fetch_optional(&self.readers)
            .await?)
    }

    async fn clear_sign_in(&self, account: &[u8]) -> Result<(), StoreError> {
        sqlx::query(sql::CLEAR_SIGN_IN)
            .bind(account)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn insert_session(&self, s: &Session) -> Result<(), StoreError> {
        sqlx::query(sql::INSERT_SESSION)
            .bind(&s.id_hash)
            .bind(&s.user_id)
            .bind(s.tenant.as_str())
            .bind(s.created_at_us)
            .bind(s.last_seen_us)
            .bind(s.expires_at_us)
            .bind(&s.client)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn session(&self, id_hash: &[u8]) -> Result<Option<SessionTuple>, StoreError> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE id_hash = $1"
        ))
        .bind(id_hash)
        .fetch_optional(&self.readers)
        .await?)
    }

    async fn touch_session(
        &self,
        tenant: &TenantId,
        id_hash: &[u8],
        now_us: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(sql::TOUCH_SESSION)
            .bind(now_us)
            .bind(id_hash)
            .bind(tenant.as_str())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn end_session(
        &self,
        tenant: &TenantId,
        user_id: &str,
        id_hash: &[u8],
        now_us: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(sql::END_SESSION)
            .bind(now_us)
            .bind(id_hash)
            .bind(user_id)
            .bind(tenant.as_str())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn end_other_sessions(
        &self,
        tenant: &TenantId,
        user_id: &str,
        keep: &[u8],
        now_us: i64,
    ) -> Result<u64, StoreError> {
        Ok(sqlx::query(sql::END_OTHER_SESSIONS)
            .bind(now_us)
            .bind(user_id)
            .bind(keep)
            .bind(tenant.as_str())
            .execute(&self.writer)
            .await?
            .rows_affected())
    }

    async fn live_sessions(
        &self,
        tenant: &TenantId,
        user_id: &str,
        now_us: i64,
    ) -> Result<Vec<SessionTuple>, StoreError> {
        Ok(sqlx::query_as(sql::LIVE_SESSIONS)
            .bind(user_id)
            .bind(now_us)
            .bind(tenant.as_str())
            .fetch_all(&self.readers)
            .await?)
    }

    async fn create_password_reset(
        &self,
        tenant: &TenantId,
        user_id: &str,
        token_hash: &[u8],
        now_us: i64,
        expires_at_us: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(sql::END_RESETS)
            .bind(now_us)
            .bind(user_id)
            .bind(tenant.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query(sql::INSERT_RESET)
            .bind(token_hash)
            .bind(user_id)
            .bind(tenant.as_str())
            .bind(now_us)
            .bind(expires_at_us)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn password_reset_user(
        &self,
        token_hash: &[u8],
        now_us: i64,
    ) -> Result<Option<(String, String)>, StoreError> {
        Ok(sqlx::query_as("SELECT user_id, tenant_id FROM password_resets WHERE token_hash = $1 AND used_at_us IS NULL AND expires_at_us > $2")
            .bind(token_hash)
            .bind(now_us)
            .fetch_optional(&self.readers)
            .await?)
    }

    async fn take_password_reset(
        &self,
        tenant: &TenantId,
        token_hash: &[u8],
        now_us: i64,
    ) -> Result<Option<String>, StoreError> {
        // In a transaction, so that the update is committed only once its row was read back.
        let mut tx = self.writer.begin().await?;
        let taken = sqlx::query_scalar(sql::TAKE_RESET)
            .bind(now_us)
            .bind(token_hash)
            .bind(tenant.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(taken)
    }
}

impl SqliteDb {
    /// Runs `update` (which sets one column of a live key to its first parameter) on the
    /// tenant's key `key_id`; whether a key changed (not when it is unknown or revoked).
    async fn update_live_key(
        &self,
        tenant: &TenantId,
        key_id: &str,
        update: &'static str,
        value: Option<i64>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(update)
            .bind(value)
            .bind(tenant.as_str())
            .bind(key_id)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
