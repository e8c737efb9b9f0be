//! The integrity check running for each tenant, shared through the database by every service
//! node, so that "one check at a time per ledger" holds across nodes and any node can show a
//! running check's progress or cancel it.
//!
//! The node that starts a check registers it (one row per tenant), refreshes its heartbeat and
//! progress every [`INTEGRITY_RUN_HEARTBEAT`], stops it when another node asked for its
//! cancellation, and forgets it once its result is filed in the ledger (where every node reads
//! finished checks). A check whose heartbeat stopped for [`INTEGRITY_RUN_STALE`] (its node died)
//! no longer holds the tenant: the next start takes over.

use std::time::Duration;

use ledger::types::{EventId, TenantId};

use super::{Store, StoreError};

/// How often the node running a check refreshes its registration, and so how soon it hears of
/// a cancellation asked on another node: one small row update per running check.
pub const INTEGRITY_RUN_HEARTBEAT: Duration = Duration::from_millis(250);

/// How long a registered check may go without a heartbeat before it counts as stopped.
pub const INTEGRITY_RUN_STALE: Duration = Duration::from_secs(30);

/// A registered check as stored, in the column order of the SQL.
pub(crate) type RunTuple = (String, i64, i64, bool, String);

/// The integrity check registered for a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrityRunRow {
    /// The check's id.
    pub check_id: String,
    /// When it started, µs since the Unix epoch.
    pub started_at_us: u64,
    /// Its node's last heartbeat, µs since the Unix epoch.
    pub heartbeat_us: u64,
    /// Whether a node was asked to cancel it.
    pub cancel_requested: bool,
    /// Its progress as its node last wrote it (JSON).
    pub progress: String,
}

impl From<RunTuple> for IntegrityRunRow {
    fn from((check_id, started, heartbeat, cancel_requested, progress): RunTuple) -> Self {
        IntegrityRunRow {
            check_id,
            started_at_us: u64::try_from(started).unwrap_or(0),
            heartbeat_us: u64::try_from(heartbeat).unwrap_or(0),
            cancel_requested,
            progress,
        }
    }
}

impl IntegrityRunRow {
    /// Whether its node stopped refreshing it (by `now_us`).
    pub fn is_stale(&self, now_us: u64) -> bool {
        now_us.saturating_sub(self.heartbeat_us) > stale_us()
    }
}

fn stale_us() -> u64 {
    u64::try_from(INTEGRITY_RUN_STALE.as_micros()).unwrap_or(u64::MAX)
}

fn db_time(us: u64) -> i64 {
    i64::try_from(us).unwrap_or(i64::MAX)
}

impl Store {
    /// Registers `check` as the tenant's running integrity check, taking over from one whose
    /// node stopped. `Ok(None)` when registered; else the check that holds the tenant.
    ///
    /// # Errors
    /// A database error.
    pub async fn claim_integrity_run(
        &self,
        tenant: &TenantId,
        check: EventId,
        progress: &str,
    ) -> Result<Option<IntegrityRunRow>, StoreError> {
        let check = check.to_string();
        // The holder may end between a refused claim and the read of it; then claim again
        // (each turn needs another check to start and end in between, which takes a whole read
        // of the ledger).
        loop {
            let now = self.config().clock.now_unix_micros();
            let claimed = self
                .backend()
                .claim_integrity_run(
                    tenant,
                    &check,
                    db_time(now),
                    db_time(now.saturating_sub(stale_us())),
                    progress,
                )
                .await?;
            if claimed {
                return Ok(None);
            }
            if let Some(holder) = self.backend().integrity_run(tenant).await? {
                return Ok(Some(holder));
            }
        }
    }

    /// The tenant's registered integrity check, if any (stale or not: see
    /// [`IntegrityRunRow::is_stale`]).
    ///
    /// # Errors
    /// A database error.
    pub async fn integrity_run(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<IntegrityRunRow>, StoreError> {
        self.backend().integrity_run(tenant).await
    }

    /// Refreshes the registration of `check`: whether its cancellation was asked for, or `None`
    /// when it is no longer registered (another node took over after it went stale).
    ///
    /// # Errors
    /// A database error.
    pub async fn beat_integrity_run(
        &self,
        tenant: &TenantId,
        check: EventId,
        progress: &str,
    ) -> Result<Option<bool>, StoreError> {
        let now = self.config().clock.now_unix_micros();
        self.backend()
            .beat_integrity_run(tenant, &check.to_string(), db_time(now), progress)
            .await
    }

    /// Asks the registered check `check` to stop: whether it was registered.
    ///
    /// # Errors
    /// A database error.
    pub async fn cancel_integrity_run(
        &self,
        tenant: &TenantId,
        check: EventId,
    ) -> Result<bool, StoreError> {
        self.backend()
            .cancel_integrity_run(tenant, &check.to_string())
            .await
    }

    /// Forgets `check` once it ended.
    ///
    /// # Errors
    /// A database error.
    pub async fn release_integrity_run(
        &self,
        tenant: &TenantId,
        check: EventId,
    ) -> Result<(), StoreError> {
        self.backend()
            .release_integrity_run(tenant, &check.to_string())
            .await
    }
}
