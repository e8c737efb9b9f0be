//! The access tables on PostgreSQL: API keys, portal users, sessions and password-reset tokens.
//! Every statement runs in a transaction scoped to its tenant for row-level security, but the
//! two look-ups made before the tenant is known, which go through the owner's functions that
//! return the one row asked for. The statements both backends share are in `access_sql.rs`.

use ledger::types::TenantId;

use super::PgDb;
use crate::store::StoreError;
use crate::store::access_sql::SELECT_API_KEY;
use crate::store::access_sql::{self as sql, session_columns};
use crate::store::api_keys::{ApiKeyRow, ApiKeyTuple, api_key_row};
use crate::store::backend::{AccessBackend, AccessChange};
use crate::store::integrity_runs::{IntegrityRunRow, RunTuple};
use crate::store::rows::{Session, SessionTuple, UserTuple};

#[async_trait::async_trait]
impl AccessBackend for PgDb {
    async fn insert_api_key(&self, row: &ApiKeyRow) -> Result<(), StoreError> {
        let tenant =
            TenantId::parse(&row.tenant_id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut tx = self.tenant_tx(&tenant).await?;
        sqlx::query(
            "INSERT INTO api_keys (key_id, tenant_id, role, secret_hash, label, created_at_us, expires_at_us)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&row.key_id)
        .bind(&row.tenant_id)
        .bind(&row.role)
        .bind(&row.secret_hash)
        .bind(&row.label)
        .bind(row.created_at_us)
        .bind(row.expires_at_us)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn api_keys(&self, tenant: &TenantId) -> Result<Vec<ApiKeyRow>, StoreError> {
        let mut tx = self.tenant_tx(tenant).await?;
        let rows: Vec<ApiKeyTuple> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{SELECT_API_KEY} WHERE tenant_id = $1 ORDER BY created_at_us, key_id"
        )))
        .bind(tenant.as_str())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows.into_iter().map(api_key_row).collect())
    }

    /// The key with this id and secret hash, before the tenant is known: through the owner's
    /// `api_key_for_secret`, which returns that one row or none.
    async fn api_key(
        &self,
        key_id: &str,
        secret_hash: &[u8],
    ) -> Result<Option<ApiKeyRow>, StoreError> {
        let row: Option<ApiKeyTuple> = sqlx::query_as(
            "SELECT key_id, tenant_id, role, secret_hash, label, created_at_us, expires_at_us, revoked_at_us, last_used_at_us, rate_per_second FROM api_key_for_secret($1, $2)",
        )
        .bind(key_id)
        .bind(secret_hash)
        .fetch_optional(&self.pool)
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
            "UPDATE api_keys SET revoked_at_us = $1 WHERE tenant_id = $2 AND key_id = $3 AND revoked_at_us IS NULL",
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
            "UPDATE api_keys SET rate_per_second = $1 WHERE tenant_id = $2 AND key_id = $3 AND revoked_at_us IS NULL",
            rate_per_second)
            .await
    }

    async fn touch_api_key(
        &self,
        tenant: &TenantId,
        key_id: &str,
        now_us: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.tenant_tx(tenant).await?;
        sqlx::query(
            "UPDATE api_keys SET last_used_at_us = $1 WHERE key_id = $2 AND tenant_id = $3",
        )
        .bind(now_us)
        .bind(key_id)
        .bind(tenant.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
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
        self.execute_for(
            tenant,
            sqlx::query(sql::INSERT_USER)
                .bind(user_id)
                .bind(tenant.as_str())
                .bind(email)
                .bind(role)
                .bind(password_hash)
                .bind(now_us)
                .bind(expires_at_us),
        )
        .await?;
        Ok(())
    }

    async fn user_by_email(
        &self,
        tenant: &TenantId,
        email: &str,
    ) -> Result<Option<UserTuple>, StoreError> {
        let mut tx = self.tenant_tx(tenant).await?;
        let row = sqlx::query_as(sql::USER_BY_EMAIL)
            .bind(tenant.as_str())
            .bind(email)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(row)
    }

    async fn user_by_id(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<Option<UserTuple>, StoreError> {
        let mut tx = self.tenant_tx(tenant).await?;
        let row = sqlx::query_as(sql::USER_BY_ID)
            .bind(user_id)
            .bind(tenant.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(row)
    }

    async fn users(&self, tenant: &TenantId) -> Result<Vec<UserTuple>, StoreError> {
        let mut tx = self.tenant_tx(tenant).await?;
        let rows = sqlx::query_as(sql::USERS)
            .bind(tenant.as_str())
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(rows)
    }

    async fn end_user_access(
        &self,
        tenant: &TenantId,
        user_id: &str,
        change: AccessChange<'_>,
        now_us: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.tenant_tx(tenant).await?;
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
        self.execute_for(
            tenant,
            sqlx::query(sql::SET_USER_ROLE)
                .bind(role)
                .bind(expires_at_us)
                .bind(user_id)
                .bind(tenant.as_str()),
        )
        .await?;
        Ok(())
    }

    async fn oversight_settings(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<crate::store::backend::SettingsTuple>, StoreError> {
        let mut tx = self.tenant_tx(tenant).await?;
        let row = sqlx::query_as(sql::OVERSIGHT_SETTINGS)
            .bind(tenant.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(row)
    }

    async fn claim_integrity_run(
        &self,
        tenant: &TenantId,
        check_id: &str,
        now_us: i64,
        stale_before_us: i64,
        progress: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.tenant_tx(tenant).await?;
        sqlx::query(sql::PRUNE_STALE_INTEGRITY_RUN)
            .bind(tenant.as_str())
            .bind(stale_before_us)
            .execute(&mut *tx)
            .await?;
        // A start racing this one on another node commits its row first or waits for this
        // one's (the primary key), so exactly one insert changes a row.
        let claimed = sqlx::query(sql::CLAIM_INTEGRITY_RUN)
            .bind(tenant.as_str())
            .bind(check_id)
            .bind(now_us)
            .bind(false)
            .bind(progress)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(claimed == 1)
    }

    async fn integrity_run(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<IntegrityRunRow>, StoreError> {
        let mut tx = self.tenant_tx(tenant).await?;
        let row: Option<RunTuple> = sqlx::query_as(sql::INTEGRITY_RUN)
            .bind(tenant.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(row.map(IntegrityRunRow::from))
    }

    async fn beat_integrity_run(
        &self,
        tenant: &TenantId,
        check_id: &str,
        now_us: i64,
        progress: &str,
    ) -> Result<Option<bool>, StoreError> {
        let mut tx = self.tenant_tx(tenant).await?;
        let cancel: Option<bool> = sqlx::query_scalar(sql::BEAT_INTEGRITY_RUN)
            .bind(tenant.as_str())
            .bind(check_id)
            .bind(now_us)
            .bind(progress)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(cancel)
    }

    async fn cancel_integrity_run(
        &self,
        tenant: &TenantId,
        check_id: &str,
    ) -> Result<bool, StoreError> {
        let changed = self
            .execute_for(
                tenant,
                sqlx::query(sql::CANCEL_INTEGRITY_RUN)
                    .bind(tenant.as_str().to_owned())
                    .bind(check_id.to_owned())
                    .bind(true),
            )
            .await?;
        Ok(changed == 1)
    }

    async fn release_integrity_run(
        &self,
        tenant: &TenantId,
        check_id: &str,
    ) -> Result<(), StoreError> {
        self.execute_for(
            tenant,
            sqlx::query(sql::RELEASE_INTEGRITY_RUN)
                .bind(tenant.as_str().to_owned())
                .bind(check_id.to_owned()),
        )
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
        self.execute_for(
            tenant,
            sqlx::query(sql::SET_OVERSIGHT_SETTINGS)
                .bind(tenant.as_str().to_owned())
                .bind(four_eyes)
                .bind(review)
                .bind(contest)
                .bind(explanation)
                .bind(now_us)
                .bind(by.to_owned()),
        )
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
            .execute(&self.pool)
            .await?;
        Ok(sqlx::query_scalar(sql::COUNT_SIGN_IN_FAILURE)
            .bind(account)
            .bind(now_us)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn lock_sign_in(&self, account: &[u8], until_us: i64) -> Result<(), StoreError> {
        sqlx::query(sql::LOCK_SIGN_IN)
            .bind(until_us)
            .bind(account)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn sign_in_locked_until(&self, account: &[u8]) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(sql::SIGN_IN_LOCKED_UNTIL)
            .bind(account)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn clear_sign_in(&self, account: &[u8]) -> Result<(), StoreError> {
        sqlx::query(sql::CLEAR_SIGN_IN)
            .bind(account)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn insert_session(&self, s: &Session) -> Result<(), StoreError> {
        self.execute_for(
            &s.tenant,
            sqlx::query(sql::INSERT_SESSION)
                .bind(&s.id_hash)
                .bind(&s.user_id)
                .bind(s.tenant.as_str())
                .bind(s.created_at_us)
                .bind(s.last_seen_us)
                .bind(s.expires_at_us)
                .bind(&s.client),
        )
        .await?;
        Ok(())
    }

    /// Through the owner's `session_for_id_hash`, which returns only that row.
    async fn session(&self, id_hash: &[u8]) -> Result<Option<SessionTuple>, StoreError> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            session_columns!(),
            " FROM session_for_id_hash($1)"
        ))
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn touch_session(
        &self,
        tenant: &TenantId,
        id_hash: &[u8],
        now_us: i64,
    ) -> Result<(), StoreError> {
        self.execute_for(
            tenant,
            sqlx::query(sql::TOUCH_SESSION)
                .bind(now_us)
                .bind(id_hash)
                .bind(tenant.as_str()),
        )
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
        self.execute_for(
            tenant,
            sqlx::query(sql::END_SESSION)
                .bind(now_us)
                .bind(id_hash)
                .bind(user_id)
                .bind(tenant.as_str()),
        )
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
        self.execute_for(
            tenant,
            sqlx::query(sql::END_OTHER_SESSIONS)
                .bind(now_us)
                .bind(user_id)
                .bind(keep)
                .bind(tenant.as_str()),
        )
        .await
    }

    async fn live_sessions(
        &self,
        tenant: &TenantId,
        user_id: &str,
        now_us: i64,
    ) -> Result<Vec<SessionTuple>, StoreError> {
        let mut tx = self.tenant_tx(tenant).await?;
        let rows = sqlx::query_as(sql::LIVE_SESSIONS)
            .bind(user_id)
            .bind(now_us)
            .bind(tenant.as_str())
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(rows)
    }

    async fn create_password_reset(
        &self,
        tenant: &TenantId,
        user_id: &str,
        token_hash: &[u8],
        now_us: i64,
        expires_at_us: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.tenant_tx(tenant).await?;
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

    /// Through the owner's `password_reset_for_token_hash`, which returns only that row.
    async fn password_reset_user(
        &self,
        token_hash: &[u8],
        now_us: i64,
    ) -> Result<Option<(String, String)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT user_id, tenant_id FROM password_reset_for_token_hash($1, $2)")
                .bind(token_hash)
                .bind(now_us)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn take_password_reset(
        &self,
        tenant: &TenantId,
        token_hash: &[u8],
        now_us: i64,
    ) -> Result<Option<String>, StoreError> {
        let mut tx = self.tenant_tx(tenant).await?;
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

impl PgDb {
    /// Runs `update` (which sets one column of a live key to its first parameter) on the
    /// tenant's key `key_id`; whether a key changed (not when it is unknown or revoked).
    async fn update_live_key(
        &self,
        tenant: &TenantId,
        key_id: &str,
        update: &'static str,
        value: Option<i64>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.tenant_tx(tenant).await?;
        let done = sqlx::query(update)
            .bind(value)
            .bind(tenant.as_str())
            .bind(key_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }
}
