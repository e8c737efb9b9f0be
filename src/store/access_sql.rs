//! The statements on the access tables (API keys, portal users, sessions, password-reset tokens)
//! that both backends send unchanged: written with numbered parameters (`$1`…, which SQLite reads as
//! numbered too), once, here. Each backend runs them its own way (`sqlite/access.rs`,
//! `postgres/access.rs`); the few that differ (look-ups made before the tenant is known) stay in
//! those files.

/// The columns of a user, in the order of `users::UserTuple`.
macro_rules! user_columns {
    () => {
        "user_id, tenant_id, email, role, password_hash, created_at_us, password_changed_at_us, expires_at_us, disabled_at_us, failed_logins, locked_until_us"
    };
}

/// The columns of a session, in the order of `users::SessionTuple`.
macro_rules! session_columns {
    () => {
        "id_hash, user_id, tenant_id, created_at_us, last_seen_us, expires_at_us, ended_at_us, client"
    };
}
pub(crate) use session_columns;

/// An API key row, in the order of `api_keys::ApiKeyTuple` (a `WHERE` clause follows).
pub(crate) const SELECT_API_KEY: &str = "SELECT key_id, tenant_id, role, secret_hash, label, created_at_us, expires_at_us, revoked_at_us, last_used_at_us, rate_per_second FROM api_keys";

pub(crate) const INSERT_USER: &str = concat!(
    "INSERT INTO users (",
    user_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $6, $7, NULL, 0, NULL)"
);

pub(crate) const USER_BY_EMAIL: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users WHERE tenant_id = $1 AND email = $2"
);

pub(crate) const USER_BY_ID: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users WHERE user_id = $1 AND tenant_id = $2"
);

pub(crate) const USERS: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users WHERE tenant_id = $1 ORDER BY email"
);

pub(crate) const SET_PASSWORD: &str = "UPDATE users SET password_hash = $1, password_changed_at_us = $2, failed_logins = 0, locked_until_us = NULL WHERE user_id = $3 AND tenant_id = $4";

pub(crate) const DISABLE_USER: &str = "UPDATE users SET disabled_at_us = $1 WHERE user_id = $2 AND tenant_id = $3 AND disabled_at_us IS NULL";

/// With [`END_RESETS`]: what ends a user's access (`$1` now, `$2` user, `$3` tenant).
pub(crate) const END_SESSIONS: &str = "UPDATE sessions SET ended_at_us = $1 WHERE user_id = $2 AND tenant_id = $3 AND ended_at_us IS NULL";

/// Invalidates a user's outstanding reset tokens (`$1` now, `$2` user, `$3` tenant).
pub(crate) const END_RESETS: &str = "UPDATE password_resets SET used_at_us = $1 WHERE user_id = $2 AND tenant_id = $3 AND used_at_us IS NULL";

pub(crate) const SET_USER_ROLE: &str =
    "UPDATE users SET role = $1, expires_at_us = $2 WHERE user_id = $3 AND tenant_id = $4";

pub(crate) const INSERT_SESSION: &str = concat!(
    "INSERT INTO sessions (",
    session_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, NULL, $7)"
);

pub(crate) const TOUCH_SESSION: &str =
    "UPDATE sessions SET last_seen_us = $1 WHERE id_hash = $2 AND tenant_id = $3";

pub(crate) const END_SESSION: &str = "UPDATE sessions SET ended_at_us = $1 WHERE id_hash = $2 AND user_id = $3 AND tenant_id = $4 AND ended_at_us IS NULL";

pub(crate) const END_OTHER_SESSIONS: &str = "UPDATE sessions SET ended_at_us = $1 WHERE user_id = $2 AND tenant_id = $4 AND id_hash <> $3 AND ended_at_us IS NULL";

pub(crate) const LIVE_SESSIONS: &str = concat!(
    "SELECT ",
    session_columns!(),
    " FROM sessions WHERE user_id = $1 AND tenant_id = $3 AND ended_at_us IS NULL AND expires_at_us > $2 ORDER BY created_at_us DESC LIMIT 100"
);

pub(crate) const INSERT_RESET: &str = "INSERT INTO password_resets (token_hash, user_id, tenant_id, created_at_us, expires_at_us, used_at_us) VALUES ($1, $2, $3, $4, $5, NULL)";

pub(crate) const TAKE_RESET: &str = "UPDATE password_resets SET used_at_us = $1 WHERE token_hash = $2 AND tenant_id = $3 AND used_at_us IS NULL AND expires_at_us > $1 RETURNING user_id";

/// Counts one failed sign-in of an account key; returns the failures counted so far.
pub(crate) const COUNT_SIGN_IN_FAILURE: &str = "INSERT INTO sign_in_backoff (account_hash, failures, locked_until_us, updated_at_us) VALUES ($1, 1, 0, $2) ON CONFLICT (account_hash) DO UPDATE SET failures = sign_in_backoff.failures + 1, updated_at_us = excluded.updated_at_us RETURNING failures";
/// Refuses the account's attempts until `$1` (never shortening a wait another node set).
pub(crate) const LOCK_SIGN_IN: &str = "UPDATE sign_in_backoff SET locked_until_us = $1 WHERE account_hash = $2 AND locked_until_us < $1";
/// Forgets accounts whose last failure is older than `$1`.
pub(crate) const FORGET_SIGN_IN_FAILURES: &str =
    "DELETE FROM sign_in_backoff WHERE updated_at_us < $1";
pub(crate) const SIGN_IN_LOCKED_UNTIL: &str =
    "SELECT locked_until_us FROM sign_in_backoff WHERE account_hash = $1";
pub(crate) const CLEAR_SIGN_IN: &str = "DELETE FROM sign_in_backoff WHERE account_hash = $1";

/// The tenant's oversight settings, in the order of `oversight::SettingsTuple` (`$1` tenant).
pub(crate) const OVERSIGHT_SETTINGS: &str = "SELECT four_eyes, review_sla_hours, contest_sla_hours, explanation_sla_hours FROM oversight_settings WHERE tenant_id = $1";

/// Replaces the tenant's oversight settings (`$1` tenant, `$2` four eyes, `$3`..`$5` hours,
/// `$6` now, `$7` who).
pub(crate) const SET_OVERSIGHT_SETTINGS: &str = "INSERT INTO oversight_settings (tenant_id, four_eyes, review_sla_hours, contest_sla_hours, explanation_sla_hours, updated_at_us, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id) DO UPDATE SET four_eyes = excluded.four_eyes, review_sla_hours = excluded.review_sla_hours, contest_sla_hours = excluded.contest_sla_hours, explanation_sla_hours = excluded.explanation_sla_hours, updated_at_us = excluded.updated_at_us, updated_by = excluded.updated_by";

/// Forgets the tenant's running integrity check whose heartbeat stopped before `$2` (its node
/// died), so that the next start may take over.
pub(crate) const PRUNE_STALE_INTEGRITY_RUN: &str =
    "DELETE FROM integrity_runs WHERE tenant_id = $1 AND heartbeat_us < $2";

/// Registers the tenant's running integrity check unless one is (`$1` tenant, `$2` check id,
/// `$3` now, `$4` cancel requested: false, `$5` progress JSON); one row changed when it was.
pub(crate) const CLAIM_INTEGRITY_RUN: &str = "INSERT INTO integrity_runs (tenant_id, check_id, started_at_us, heartbeat_us, cancel_requested, progress) VALUES ($1, $2, $3, $3, $4, $5) ON CONFLICT (tenant_id) DO NOTHING";

/// The tenant's running integrity check, in the order of `integrity_runs::RunTuple`.
pub(crate) const INTEGRITY_RUN: &str = "SELECT check_id, started_at_us, heartbeat_us, cancel_requested, progress FROM integrity_runs WHERE tenant_id = $1";

/// Refreshes a running check's heartbeat (`$3`) and progress (`$4`); returns whether its
/// cancellation was asked for, and no row when the check is no longer registered.
pub(crate) const BEAT_INTEGRITY_RUN: &str = "UPDATE integrity_runs SET heartbeat_us = $3, progress = $4 WHERE tenant_id = $1 AND check_id = $2 RETURNING cancel_requested";

/// Asks a running check to stop (`$3`: true); one row changed when it was registered.
pub(crate) const CANCEL_INTEGRITY_RUN: &str =
    "UPDATE integrity_runs SET cancel_requested = $3 WHERE tenant_id = $1 AND check_id = $2";

/// Forgets a check that ended.
pub(crate) const RELEASE_INTEGRITY_RUN: &str =
    "DELETE FROM integrity_runs WHERE tenant_id = $1 AND check_id = $2";
