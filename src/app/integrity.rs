//! The integrity-check jobs of this service instance: each tenant's running check (its progress
//! and cancellation flag) and its last few finished checks, and the background task that runs a
//! check and files its result in the ledger.
//!
//! A check runs in the background ([`Store::check_integrity`]); its result is filed in the ledger
//! as an `integrity_check` record whose **event id is the check's id**, so that a check is found
//! by its id after a restart, and a retried append files it once. Past results are therefore read
//! from the ledger, never only from memory; what the ledger cannot hold lives in
//! [`IntegrityChecks`], including finished checks whose result could not be filed. One check runs
//! per tenant at a time: it occupies a reader connection and a core for the whole ledger, and a
//! second full read at once would prove nothing the first does not. Starts are also limited to
//! [`CHECK_STARTS_PER_WINDOW_MAX`] per [`CHECK_STARTS_WINDOW_SECS`] (counted per node).
//!
//! **Several nodes.** The running check is also registered in the database
//! ([`crate::store::integrity_runs`]): a start on any node is refused while another node runs a
//! check of the same ledger, any node shows the running check's progress (as its node last wrote
//! it, four times a second) and passes a cancellation on to it. A check whose node died stops
//! holding the ledger once its heartbeat is
//! [`INTEGRITY_RUN_STALE`](crate::store::integrity_runs::INTEGRITY_RUN_STALE) old.
//!
//! The API (`/v1/integrity-checks`) and the portal both start and follow checks through this
//! registry; the server stops every running check on shutdown ([`IntegrityChecks::stop_all`]).
//! The views of a check ([`IntegrityCheckBody`] and its parts) are what both show, and the
//! [`ReportBody`] is exactly the payload of the filed record.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ledger::record::EventType;
use ledger::types::{EventId, TenantId};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use utoipa::ToSchema;

use crate::store::integrity_runs::{INTEGRITY_RUN_HEARTBEAT, IntegrityRunRow};
use crate::store::{
    AppendError, CancelFlag, IntegrityOptions, IntegrityOutcome, IntegrityProgress,
    IntegrityReport, Receipt, ServiceDraft, Store, StoreError,
};

/// Finished checks kept in memory per tenant, besides the running one. Only those whose result
/// could not be filed are not also in the ledger, which keeps every filed result for good.
pub const FINISHED_CHECKS_KEPT_PER_TENANT: usize = 16;

/// Integrity checks a tenant may start per [`CHECK_STARTS_WINDOW_SECS`], besides the rule that
/// only one runs at a time: each reads the whole ledger and appends a record, so an auditor's key
/// must not be able to start them without end.
pub const CHECK_STARTS_PER_WINDOW_MAX: usize = 6;

/// The sliding window of [`CHECK_STARTS_PER_WINDOW_MAX`], in seconds (one hour).
pub const CHECK_STARTS_WINDOW_SECS: u64 = 3600;

/// Appends tried while the tenant's append queue is full, before the result is given up as
/// unfiled (it stays visible in memory).
const FILE_ATTEMPTS_MAX: u32 = 5;

/// Where a check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckState {
    /// Still reading the ledger.
    Running,
    /// Everything verified.
    Passed,
    /// Something did not verify: see `report.first_failure`.
    Failed,
    /// Stopped on request before the end; the part checked is in the report.
    Cancelled,
    /// The check could not run to the end (for example the database failed); nothing was
    /// filed. Start it again.
    Error,
}

/// How a check that produced a report ended (the `outcome` of its `integrity_check` record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckOutcome {
    /// Everything verified.
    Passed,
    /// Something did not verify.
    Failed,
    /// Stopped on request.
    Cancelled,
}

/// Records checked so far, and how fast.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ProgressBody {
    /// Records verified so far.
    pub checked: u64,
    /// Records the check verifies (the chain, or the latest checkpoint's size if that is larger,
    /// when it started). 0 until the check has read the chain's length.
    pub total: u64,
    /// Published checkpoints compared with the recomputed tree so far.
    pub checkpoints_checked: u64,
    /// Records verified per second.
    pub records_per_second: f64,
    /// Estimated seconds left (null once ended, or before the rate is known).
    pub eta_seconds: Option<u64>,
}

/// The published checkpoint a check compared against.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CheckedCheckpointBody {
    /// Its tree size.
    pub size: u64,
    /// Its root (hex).
    pub root: String,
}

/// The first thing that failed, in chain order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FailureBody {
    /// What kind of failure (`hash_mismatch`, `bad_signature`, `broken_link`, `gap`,
    /// `missing_records`, `checkpoint_root_mismatch`, `rolled_back`, `fork`, …).
    pub kind: String,
    /// The first affected sequence number.
    pub seq: u64,
    /// The event id of the record at `seq`, when there is one.
    pub event_id: Option<String>,
    /// What a valid ledger has there.
    pub expected: String,
    /// What was found.
    pub found: String,
    /// One sentence for people.
    pub message: String,
}

/// The result of a check, exactly as filed in its `integrity_check` record's payload.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReportBody {
    /// How it ended.
    pub outcome: CheckOutcome,
    /// The first sequence number of the range checked (a check always starts at 0).
    #[serde(default)]
    pub from_seq: u64,
    /// Records in the range checked: from 0 to the chain's head (or the latest checkpoint's size
    /// if that is larger) when the check started.
    #[serde(default)]
    pub records_total: u64,
    /// Records verified, from sequence 0.
    #[serde(default)]
    pub records_checked: u64,
    /// The latest published checkpoint when the check started (null if none was published).
    #[serde(default)]
    pub checkpoint: Option<CheckedCheckpointBody>,
    /// Published checkpoints compared with the recomputed tree.
    #[serde(default)]
    pub checkpoints_checked: u64,
    /// Checkpoints seen before (from the request) that were compared.
    #[serde(default)]
    pub seen_checkpoints_checked: u64,
    /// The first failure, when the outcome is `failed`.
    #[serde(default)]
    pub first_failure: Option<FailureBody>,
    /// When the check started, µs since the Unix epoch.
    #[serde(default)]
    pub started_at_us: u64,
    /// When it ended, µs since the Unix epoch.
    #[serde(default)]
    pub finished_at_us: u64,
}

/// The `integrity_check` record that files a result in the ledger.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FiledRecordBody {
    /// Its sequence number.
    pub seq: u64,
    /// Its event id (the check's id).
    pub event_id: String,
    /// Its record hash (hex).
    pub hash: String,
    /// Its capture time, µs since the Unix epoch.
    pub captured_at_us: u64,
}

/// One integrity check.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IntegrityCheckBody {
    /// The check's id (a UUIDv7), also the event id of the record that files its result.
    pub id: String,
    /// `running`, `passed`, `failed`, `cancelled` or `error`.
    pub state: CheckState,
    /// When it started, µs since the Unix epoch.
    pub started_at_us: u64,
    /// When it ended (null while running).
    pub finished_at_us: Option<u64>,
    /// Whether a cancellation was asked for; a running check stops at its next page of records.
    pub cancel_requested: bool,
    /// How far it got.
    pub progress: ProgressBody,
    /// The result, once the check has ended with one.
    pub report: Option<ReportBody>,
    /// The `integrity_check` record in the ledger, once filed.
    pub record: Option<FiledRecordBody>,
    /// Why there is no report, or why the report could not be filed.
    pub problem: Option<String>,
}

/// Why a check was not started.
#[derive(Debug, thiserror::Error)]
pub enum StartRefused {
    /// A check of the tenant's ledger is running (409 over HTTP).
    #[error(
        "integrity check {0} of this ledger is still running; follow it at /v1/integrity-checks/{0} or cancel it first"
    )]
    Running(EventId),
    /// The window's starts are used up (429 over HTTP).
    #[error("{detail}")]
    QuotaExceeded {
        /// What is used up.
        detail: String,
        /// Seconds until a start is admitted again.
        retry_after: u64,
    },
    /// The database could not say whether another node runs a check.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bug: the detail is logged, never shown.
    #[error("internal error")]
    Internal(String),
}

impl StartRefused {
    /// The reason for the person who asked, and the seconds to wait when waiting helps.
    fn for_people(self) -> (String, Option<u64>) {
        match self {
            StartRefused::QuotaExceeded {
                detail,
                retry_after,
            } => (detail, Some(retry_after)),
            other => (other.to_string(), None),
        }
    }
}

/// How a store error is worded for whoever reads a check: never internal detail (the HTTP
/// layer's public wording, given when the registry is made).
pub type PublicError = fn(AppendError) -> String;

/// The checks started through this service instance: each tenant's running check and its last
/// few finished ones. Cheap to clone; shared by every handler.
#[derive(Clone)]
pub struct IntegrityChecks {
    tenants: Arc<Mutex<HashMap<TenantId, Vec<Check>>>>,
    /// When each tenant started its checks within the last window, oldest first. A start is
    /// counted only once the database admitted it as the tenant's one running check, so two
    /// starts racing count one.
    starts: Arc<Mutex<HashMap<TenantId, std::collections::VecDeque<std::time::Instant>>>>,
    /// How a check that could not run to the end, or could not be filed, says why.
    public_error: PublicError,
}

/// One check in memory, oldest first in its tenant's list.
struct Check {
    id: EventId,
    started_at_us: u64,
    cancel: CancelFlag,
    progress: watch::Receiver<IntegrityProgress>,
    /// `None` while running.
    end: Option<End>,
    /// The background task, until it ends (or shutdown takes it to wait for it).
    task: Option<JoinHandle<()>>,
}

/// How a check ended.
enum End {
    /// It produced a report; `filed` is the receipt of its `integrity_check` record, or why the
    /// record could not be appended.
    Reported {
        report: Box<IntegrityReport>,
        filed: Result<Receipt, String>,
    },
    /// It could not run to the end; nothing was filed.
    Error(String),
}

/// What a cancellation request found.
pub enum Cancelled {
    /// The check was running; it stops at its next page.
    Requested(Box<IntegrityCheckBody>),
    /// The check had already ended.
    AlreadyEnded(CheckState),
    /// No such check in memory.
    Unknown,
}

impl IntegrityChecks {
    /// An empty registry whose checks word store errors with `public_error`.
    pub fn new(public_error: PublicError) -> IntegrityChecks {
        IntegrityChecks {
            tenants: Arc::default(),
            starts: Arc::default(),
            public_error,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<TenantId, Vec<Check>>> {
        // Every update leaves the map consistent, so a panic elsewhere does not spoil it.
        self.tenants.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a check of `tenant` unless one is running, on this node or another.
    ///
    /// # Errors
    /// [`StartRefused`]: a check is running, the window's starts are used up, or the database
    /// failed.
    pub async fn start(
        &self,
        store: &Store,
        tenant: &TenantId,
        seen_checkpoints: Vec<String>,
    ) -> Result<IntegrityCheckBody, StartRefused> {
        let id = new_check_id()?;
        // What this node can refuse alone, before the database is asked.
        let running = self
            .lock()
            .get(tenant)
            .and_then(|checks| checks.iter().find(|c| c.end.is_none()).map(|c| c.id));
        if let Some(running) = running {
            return Err(StartRefused::Running(running));
        }
        self.quota(tenant, false)?;
        // The database admits one running check per tenant across nodes (and so between two
        // starts on this node racing here too).
        let progress = progress_json(&ProgressBody::default());
        if let Some(holder) = store.claim_integrity_run(tenant, id, &progress).await? {
            return Err(StartRefused::Running(
                EventId::parse(&holder.check_id)
                    .map_err(|e| StartRefused::Internal(format!("a registered check id: {e}")))?,
            ));
        }
        if let Err(refused) = self.admit(tenant) {
            release(store, tenant, id).await;
            return Err(refused);
        }
        let (sender, receiver) = watch::channel(IntegrityProgress::default());
        let cancel = CancelFlag::new();
        let watched = (receiver.clone(), cancel.clone());
        let mut tenants = self.lock();
        let checks = tenants.entry(tenant.clone()).or_default();
        let check = Check {
            id,
            started_at_us: store.config().clock.now_unix_micros(),
            cancel: cancel.clone(),
            progress: receiver,
            end: None,
            task: None,
        };
        let body = check.body();
        checks.push(check);
        // Spawned outside the lock: a task dropped at once (by a runtime shutting down) files
        // its end through `Reporter`, which takes the lock.
        drop(tenants);
        let options = IntegrityOptions {
            seen_checkpoints,
            cancel,
            progress: Some(sender),
        };
        let reporter = Reporter {
            registry: self.clone(),
            store: store.clone(),
            tenant: tenant.clone(),
            id,
            end: None,
        };
        let task = tokio::spawn(run(store.clone(), options, reporter, watched));
        // Kept so that shutdown can wait for the result to be filed; a check that has ended
        // meanwhile needs no waiting for.
        if let Some(check) = self
            .lock()
            .get_mut(tenant)
            .and_then(|checks| checks.iter_mut().find(|c| c.id == id))
            .filter(|c| c.end.is_none())
        {
            check.task = Some(task);
        }
        Ok(body)
    }

    /// Counts a start of `tenant`'s check, or refuses it when the window's starts are used up.
    fn admit(&self, tenant: &TenantId) -> Result<(), StartRefused> {
        self.quota(tenant, true)
    }

    /// Whether `tenant` may start a check now (none running on any node, starts left in the
    /// window), without counting a start: the portal asks before it records the start.
    ///
    /// # Errors
    /// The reason, and the seconds to wait when waiting helps.
    pub async fn may_start(
        &self,
        store: &Store,
        tenant: &TenantId,
    ) -> Result<(), (String, Option<u64>)> {
        if self.running(store, tenant).await.is_some() {
            return Err(("a check of this ledger is running".to_owned(), None));
        }
        self.quota(tenant, false).map_err(StartRefused::for_people)
    }

    /// Refuses a start when the window's starts are used up; otherwise counts it if `count`.
    fn quota(&self, tenant: &TenantId, count: bool) -> Result<(), StartRefused> {
        let window = Duration::from_secs(CHECK_STARTS_WINDOW_SECS);
        let now = std::time::Instant::now();
        let mut starts = self.starts.lock().unwrap_or_else(|p| p.into_inner());
        // Forget tenants whose starts all left the window, so the map stays bounded.
        starts.retain(|_, times| {
            while times
                .front()
                .is_some_and(|t| now.duration_since(*t) >= window)
            {
                times.pop_front();
            }
            !times.is_empty()
        });
        let times = starts.entry(tenant.clone()).or_default();
        if times.len() >= CHECK_STARTS_PER_WINDOW_MAX {
            let oldest = times.front().copied().unwrap_or(now);
            let wait = window.saturating_sub(now.duration_since(oldest));
            return Err(StartRefused::QuotaExceeded {
                detail: format!(
                    "this ledger's {CHECK_STARTS_PER_WINDOW_MAX} integrity checks per hour are used up; start the next one later"
                ),
                retry_after: wait.as_secs().saturating_add(1),
            });
        }
        if count {
            times.push_back(now);
        }
        Ok(())
    }

    /// Records how a check ended and forgets the oldest finished checks beyond the limit.
    fn finish(&self, tenant: &TenantId, id: EventId, end: End) {
        let mut tenants = self.lock();
        let Some(checks) = tenants.get_mut(tenant) else {
            return;
        };
        if let Some(check) = checks.iter_mut().find(|c| c.id == id) {
            check.end = Some(end);
            check.task = None;
        }
        let finished = checks.iter().filter(|c| c.end.is_some()).count();
        let mut excess = finished.saturating_sub(FINISHED_CHECKS_KEPT_PER_TENANT);
        // Oldest first, so the first finished ones found are the ones to forget.
        checks.retain(|c| {
            if excess > 0 && c.end.is_some() {
                excess -= 1;
                false
            } else {
                true
            }
        });
    }

    /// The check `id` of `tenant`, while this node remembers it.
    fn local_view(&self, tenant: &TenantId, id: EventId) -> Option<IntegrityCheckBody> {
        self.lock()
            .get(tenant)?
            .iter()
            .find(|c| c.id == id)
            .map(Check::body)
    }

    /// The check `id` of `tenant`, while this node remembers it or another node runs it.
    pub async fn view(
        &self,
        store: &Store,
        tenant: &TenantId,
        id: EventId,
    ) -> Option<IntegrityCheckBody> {
        if let Some(check) = self.local_view(tenant, id) {
            return Some(check);
        }
        registered(store, tenant)
            .await
            .filter(|(run, _)| run.check_id == id.to_string())
            .map(|(run, now)| remote_body(&run, now))
    }

    /// Asks the check `id` of `tenant` to stop at its next page, on whichever node runs it.
    pub async fn cancel(&self, store: &Store, tenant: &TenantId, id: EventId) -> Cancelled {
        match self.local_cancel(tenant, id) {
            Cancelled::Unknown => {}
            known => return known,
        }
        let Some((run, now)) = registered(store, tenant)
            .await
            .filter(|(run, _)| run.check_id == id.to_string())
        else {
            return Cancelled::Unknown;
        };
        if run.is_stale(now) {
            return Cancelled::AlreadyEnded(CheckState::Error);
        }
        match store.cancel_integrity_run(tenant, id).await {
            Ok(true) => {
                let mut body = remote_body(&run, now);
                body.cancel_requested = true;
                Cancelled::Requested(Box::new(body))
            }
            Ok(false) => Cancelled::Unknown,
            Err(e) => {
                tracing::warn!(%tenant, check = %id, error = %e, "could not pass a cancellation on to the node running the check");
                Cancelled::Unknown
            }
        }
    }

    /// [`IntegrityChecks::cancel`] of a check this node runs or remembers.
    fn local_cancel(&self, tenant: &TenantId, id: EventId) -> Cancelled {
        let tenants = self.lock();
        let Some(check) = tenants
            .get(tenant)
            .and_then(|checks| checks.iter().find(|c| c.id == id))
        else {
            return Cancelled::Unknown;
        };
        if check.end.is_some() {
            return Cancelled::AlreadyEnded(check.state());
        }
        check.cancel.cancel();
        Cancelled::Requested(Box::new(check.body()))
    }

    /// The tenant's checks that are not in the ledger (running here or on another node, or
    /// ended unfiled here), newest first.
    pub async fn unfiled(&self, store: &Store, tenant: &TenantId) -> Vec<IntegrityCheckBody> {
        let mut out = self.local_unfiled(tenant);
        if let Some((run, now)) = registered(store, tenant).await
            && !out.iter().any(|c| c.id == run.check_id)
        {
            out.insert(0, remote_body(&run, now));
        }
        out
    }

    /// [`IntegrityChecks::unfiled`] of this node alone.
    fn local_unfiled(&self, tenant: &TenantId) -> Vec<IntegrityCheckBody> {
        let tenants = self.lock();
        tenants.get(tenant).map_or_else(Vec::new, |checks| {
            checks
                .iter()
                .rev()
                .filter(|c| !matches!(c.end, Some(End::Reported { filed: Ok(_), .. })))
                .map(Check::body)
                .collect()
        })
    }

    /// The tenant's running check on this node, if any.
    fn local_running(&self, tenant: &TenantId) -> Option<IntegrityCheckBody> {
        self.lock()
            .get(tenant)
            .and_then(|checks| checks.iter().find(|c| c.end.is_none()).map(Check::body))
    }

    /// The tenant's running check on any node, if any (the portal shows its progress).
    pub async fn running(&self, store: &Store, tenant: &TenantId) -> Option<IntegrityCheckBody> {
        if let Some(check) = self.local_running(tenant) {
            return Some(check);
        }
        registered(store, tenant)
            .await
            .filter(|(run, now)| !run.is_stale(*now))
            .map(|(run, now)| remote_body(&run, now))
    }

    /// Starts a check of the whole ledger for the portal; returns its id, or why not (one runs,
    /// or the hour's starts are used up).
    ///
    /// # Errors
    /// The reason, for the person who asked, and the seconds to wait when waiting helps.
    pub async fn start_for(
        &self,
        store: &Store,
        tenant: &TenantId,
    ) -> Result<String, (String, Option<u64>)> {
        self.start(store, tenant, Vec::new())
            .await
            .map(|body| body.id)
            .map_err(StartRefused::for_people)
    }

    /// Cancels every running check and waits up to `grace` for each to file its `cancelled`
    /// result, so that a restart leaves a ledger record of every check it stopped. Called on
    /// shutdown, before the store stops accepting appends.
    pub async fn stop_all(&self, grace: Duration) {
        let tasks: Vec<JoinHandle<()>> = self
            .lock()
            .values_mut()
            .flat_map(|checks| checks.iter_mut())
            .filter(|c| c.end.is_none())
            .filter_map(|c| {
                c.cancel.cancel();
                c.task.take()
            })
            .collect();
        if tasks.is_empty() {
            return;
        }
        let waited = tokio::time::timeout(grace, async {
            for task in tasks {
                // A task that panicked has already been reported by its `Reporter`.
                let _ = task.await;
            }
        })
        .await;
        if waited.is_err() {
            tracing::warn!("integrity checks did not file their cancelled results in time");
        }
    }
}

impl Check {
    fn state(&self) -> CheckState {
        match &self.end {
            None => CheckState::Running,
            Some(End::Error(_)) => CheckState::Error,
            Some(End::Reported { report, .. }) => match report.outcome {
                IntegrityOutcome::Passed => CheckState::Passed,
                IntegrityOutcome::Failed => CheckState::Failed,
                IntegrityOutcome::Cancelled => CheckState::Cancelled,
            },
        }
    }

    fn body(&self) -> IntegrityCheckBody {
        let mut body = IntegrityCheckBody {
            id: self.id.to_string(),
            state: self.state(),
            started_at_us: self.started_at_us,
            finished_at_us: None,
            cancel_requested: self.cancel.is_cancelled(),
            progress: progress_body(&self.progress.borrow()),
            report: None,
            record: None,
            problem: None,
        };
        match &self.end {
            None => {}
            Some(End::Error(problem)) => body.problem = Some(problem.clone()),
            Some(End::Reported { report, filed }) => {
                body.started_at_us = report.started_at_us;
                body.finished_at_us = Some(report.finished_at_us);
                // Through the record payload, so that a report reads the same here and once
                // read back from the ledger.
                match serde_json::from_value::<ReportBody>(report.record_payload()) {
                    Ok(r) => body.report = Some(r),
                    Err(e) => body.problem = Some(format!("the report cannot be shown: {e}")),
                }
                match filed {
                    Ok(receipt) => {
                        body.record = Some(FiledRecordBody {
                            seq: receipt.seq,
                            event_id: receipt.event_id.to_string(),
                            hash: receipt.hash.to_hex(),
                            captured_at_us: receipt.captured_at_us,
                        });
                    }
                    Err(problem) => {
                        body.problem = Some(format!(
                            "the result could not be filed in the ledger: {problem}"
                        ));
                    }
                }
            }
        }
        body
    }
}

/// Files how the check ended when it is dropped: normally at the end of [`run`], but also if
/// the task panics or is aborted, so that a check never stays `running` forever and blocks the
/// tenant's next one.
struct Reporter {
    registry: IntegrityChecks,
    store: Store,
    tenant: TenantId,
    id: EventId,
    end: Option<End>,
}

impl Drop for Reporter {
    fn drop(&mut self) {
        let end = self.end.take().unwrap_or_else(|| {
            // Stopped before its end: the registration would hold the ledger until it went
            // stale, so it is forgotten here too.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let (store, tenant, id) = (self.store.clone(), self.tenant.clone(), self.id);
                runtime.spawn(async move { release(&store, &tenant, id).await });
            }
            End::Error("the check stopped unexpectedly; the service log has the details".into())
        });
        self.registry.finish(&self.tenant, self.id, end);
    }
}

/// The check's progress as the API shows it.
fn progress_body(progress: &IntegrityProgress) -> ProgressBody {
    ProgressBody {
        checked: progress.checked,
        total: progress.total,
        checkpoints_checked: progress.checkpoints_checked,
        records_per_second: progress.records_per_second,
        eta_seconds: progress.eta_seconds,
    }
}

fn progress_json(progress: &ProgressBody) -> String {
    serde_json::to_string(progress).unwrap_or_else(|_| "{}".to_owned())
}

/// The tenant's check registered in the database, and the time now; `None` when there is none
/// or the database cannot say (logged: the caller then answers from the ledger alone).
async fn registered(store: &Store, tenant: &TenantId) -> Option<(IntegrityRunRow, u64)> {
    match store.integrity_run(tenant).await {
        Ok(run) => run.map(|r| (r, store.config().clock.now_unix_micros())),
        Err(e) => {
            tracing::warn!(%tenant, error = %e, "could not read the running integrity check");
            None
        }
    }
}

/// A check another node runs, as the API shows it: its progress as that node last wrote it.
fn remote_body(run: &IntegrityRunRow, now_us: u64) -> IntegrityCheckBody {
    let stale = run.is_stale(now_us);
    IntegrityCheckBody {
        id: run.check_id.clone(),
        state: if stale {
            CheckState::Error
        } else {
            CheckState::Running
        },
        started_at_us: run.started_at_us,
        finished_at_us: None,
        cancel_requested: run.cancel_requested,
        progress: serde_json::from_str(&run.progress).unwrap_or_default(),
        report: None,
        record: None,
        problem: stale.then(|| {
            format!(
                "the service node running this check stopped refreshing it {} s ago; start it again",
                now_us.saturating_sub(run.heartbeat_us) / 1_000_000
            )
        }),
    }
}

/// Forgets a check's registration (logged when the database refuses: it then goes stale).
async fn release(store: &Store, tenant: &TenantId, id: EventId) {
    if let Err(e) = store.release_integrity_run(tenant, id).await {
        tracing::warn!(%tenant, check = %id, error = %e,
            "could not forget the integrity check's registration; it stops holding the ledger once stale");
    }
}

/// Refreshes the check's registration with its progress until aborted, and stops the check when
/// another node asked for its cancellation or took the registration over.
async fn heartbeat(
    store: Store,
    tenant: TenantId,
    id: EventId,
    progress: watch::Receiver<IntegrityProgress>,
    cancel: CancelFlag,
) {
    let mut ticker = tokio::time::interval(INTEGRITY_RUN_HEARTBEAT);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let json = progress_json(&progress_body(&progress.borrow()));
        match store.beat_integrity_run(&tenant, id, &json).await {
            Ok(Some(false)) => {}
            Ok(Some(true)) => cancel.cancel(),
            Ok(None) => {
                tracing::warn!(%tenant, check = %id,
                    "the integrity check's registration was taken over by another node; stopping it");
                cancel.cancel();
            }
            Err(e) => {
                tracing::warn!(%tenant, check = %id, error = %e, "could not refresh the integrity check's registration; will retry");
            }
        }
    }
}

/// What the heartbeat needs of a check just registered: its progress and cancellation flag.
type Watched = (watch::Receiver<IntegrityProgress>, CancelFlag);

/// The background task: the check, then its result filed in the ledger, then its registration
/// forgotten.
async fn run(store: Store, options: IntegrityOptions, mut reporter: Reporter, watched: Watched) {
    let (tenant, id) = (reporter.tenant.clone(), reporter.id);
    let beat = tokio::spawn(heartbeat(
        store.clone(),
        tenant.clone(),
        id,
        watched.0,
        watched.1,
    ));
    let end = match store.check_integrity(&tenant, options).await {
        Ok(report) => {
            let filed = file(&store, &tenant, id, &report, reporter.registry.public_error).await;
            match &filed {
                Ok(receipt) => tracing::info!(
                    %tenant, check = %id, outcome = report.outcome.as_str(),
                    records = report.records_checked, seq = receipt.seq,
                    "integrity check ended and filed"
                ),
                Err(problem) => tracing::error!(
                    %tenant, check = %id, outcome = report.outcome.as_str(), %problem,
                    "integrity check ended but its result could not be filed"
                ),
            }
            End::Reported {
                report: Box::new(report),
                filed,
            }
        }
        Err(e) => {
            tracing::error!(%tenant, check = %id, error = %e, "integrity check could not run to the end");
            // The same wording an HTTP error would have: no internal detail leaves the service.
            End::Error((reporter.registry.public_error)(AppendError::Store(e)))
        }
    };
    beat.abort();
    // After the result is filed, so that another node finds the check in the ledger once the
    // registration is gone.
    release(&store, &tenant, id).await;
    reporter.end = Some(end);
}

/// Appends the report as an `integrity_check` record whose event id is the check's id.
///
/// This is what [`Store::append_integrity_check`] does, except that the event id is chosen here:
/// it makes the check findable by its id in the ledger, and a repeated append idempotent.
async fn file(
    store: &Store,
    tenant: &TenantId,
    id: EventId,
    report: &IntegrityReport,
    public_error: PublicError,
) -> Result<Receipt, String> {
    let draft = ServiceDraft::prepare(
        &id.to_string(),
        EventType::IntegrityCheck,
        &report.record_payload(),
    )
    .map_err(|e| format!("the record was rejected: {e}"))?;
    let mut attempt = 1;
    loop {
        match store.append_service(tenant, vec![draft.clone()]).await {
            Ok(mut receipts) => {
                return receipts
                    .pop()
                    .ok_or_else(|| "the store returned no receipt".to_owned());
            }
            Err(AppendError::Overloaded { retry_after }) if attempt < FILE_ATTEMPTS_MAX => {
                attempt += 1;
                tokio::time::sleep(retry_after).await;
            }
            Err(e) => return Err(public_error(e)),
        }
    }
}

fn new_check_id() -> Result<EventId, StartRefused> {
    EventId::parse(&uuid::Uuid::now_v7().to_string())
        .map_err(|e| StartRefused::Internal(format!("a fresh UUIDv7 is not an event id: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(name: &str) -> TenantId {
        TenantId::parse(name).expect("tenant")
    }

    /// A check as `start` records it, without a task.
    fn running(registry: &IntegrityChecks, tenant: &TenantId) -> EventId {
        let id = new_check_id().expect("id");
        let (_, progress) = watch::channel(IntegrityProgress::default());
        registry
            .lock()
            .entry(tenant.clone())
            .or_default()
            .push(Check {
                id,
                started_at_us: 0,
                cancel: CancelFlag::new(),
                progress,
                end: None,
                task: None,
            });
        id
    }

    #[test]
    fn only_the_newest_finished_checks_are_kept_and_the_running_one_never_goes() {
        let registry = IntegrityChecks::new(|e| e.to_string());
        let acme = tenant("acme-bank");
        let finished: Vec<EventId> = (0..FINISHED_CHECKS_KEPT_PER_TENANT + 3)
            .map(|_| {
                let id = running(&registry, &acme);
                registry.finish(&acme, id, End::Error("database down".into()));
                id
            })
            .collect();
        let live = running(&registry, &acme);

        let kept = registry.local_unfiled(&acme);
        assert_eq!(kept.len(), FINISHED_CHECKS_KEPT_PER_TENANT + 1);
        assert_eq!(kept[0].id, live.to_string(), "newest first");
        assert_eq!(kept[0].state, CheckState::Running);
        assert!(
            registry.local_view(&acme, finished[0]).is_none(),
            "oldest forgotten"
        );
        assert_eq!(
            registry
                .local_view(&acme, finished[finished.len() - 1])
                .map(|c| c.state),
            Some(CheckState::Error)
        );
    }

    #[test]
    fn a_check_is_invisible_to_another_tenant_and_cancels_once() {
        let registry = IntegrityChecks::new(|e| e.to_string());
        let (acme, other) = (tenant("acme-bank"), tenant("other-bank"));
        let id = running(&registry, &acme);

        assert!(registry.local_view(&other, id).is_none());
        assert!(matches!(
            registry.local_cancel(&other, id),
            Cancelled::Unknown
        ));
        assert!(registry.local_unfiled(&other).is_empty());
        match registry.local_cancel(&acme, id) {
            Cancelled::Requested(check) => assert!(check.cancel_requested),
            _ => panic!("a running check is cancelled"),
        }
        registry.finish(&acme, id, End::Error("stopped".into()));
        assert!(matches!(
            registry.local_cancel(&acme, id),
            Cancelled::AlreadyEnded(CheckState::Error)
        ));
    }
}
