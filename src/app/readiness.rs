//! Readiness: a list of named facts about the service, each of which may make it not ready,
//! gathered at most once per [`READINESS_CACHE_MS`] (the HTTP layer serves it as `GET /readyz`).
//!
//! The endpoint is unauthenticated and probed often, so it must be cheap and must not tell an
//! anonymous caller anything about the tenants: facts give counts, never tenant names (those go
//! to the log, where the operator looks next). Facts are gathered at most once per
//! [`READINESS_CACHE_MS`]; concurrent probes wait for the one gathering in progress instead of
//! each opening every tenant's signing key again.
//!
//! To report a new condition, add one [`Fact`] in [`gather`]: its name becomes a member of the
//! body, and when it is not ready its name is listed in `not_ready` and the answer is 503.
//! Facts the HTTP layer owns the shape of (the projections' status, an API body) are passed in
//! by the caller and gathered with the others.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::store::Store;

/// How long a gathered readiness answer is served before the facts are gathered again.
pub const READINESS_CACHE_MS: u64 = 2_000;

/// One named fact about the service.
#[derive(Debug, Clone)]
pub struct Fact {
    /// The member name in the body (snake case, stable: monitoring matches on it).
    pub name: &'static str,
    /// False when this fact makes the service not ready.
    pub ready: bool,
    /// What the body shows for it; never a tenant's name.
    pub value: Value,
}

impl Fact {
    /// A fact that makes the service not ready when `ready` is false.
    pub fn new(name: &'static str, ready: bool, value: impl Into<Value>) -> Fact {
        Fact {
            name,
            ready,
            value: value.into(),
        }
    }

    /// A fact reported for information only: it never makes the service not ready.
    pub fn info(name: &'static str, value: impl Into<Value>) -> Fact {
        Fact::new(name, true, value)
    }
}

/// The facts gathered at one moment.
#[derive(Debug, Clone)]
pub struct Report {
    facts: Vec<Fact>,
}

impl Report {
    /// A report of these facts.
    pub fn new(facts: Vec<Fact>) -> Report {
        Report { facts }
    }

    /// True when every fact is ready.
    pub fn is_ready(&self) -> bool {
        self.facts.iter().all(|f| f.ready)
    }

    /// The names of the facts that make the service not ready, in gathering order.
    pub fn not_ready(&self) -> Vec<&'static str> {
        self.facts
            .iter()
            .filter(|f| !f.ready)
            .map(|f| f.name)
            .collect()
    }

    /// Every fact, in gathering order.
    pub fn facts(&self) -> &[Fact] {
        &self.facts
    }
}

/// The cached readiness answer, shared by every request.
#[derive(Clone, Default)]
pub struct Readiness {
    // A tokio mutex: held across the gathering so concurrent probes share one.
    cached: Arc<tokio::sync::Mutex<Option<(Instant, Report)>>>,
}

impl Readiness {
    /// The current report: the cached one while fresh, else freshly gathered, with the facts
    /// `more` adds after the service's own.
    pub async fn report(&self, store: &Store, more: impl FnOnce() -> Vec<Fact>) -> Report {
        let mut cached = self.cached.lock().await;
        if let Some((at, report)) = cached.as_ref()
            && at.elapsed() < Duration::from_millis(READINESS_CACHE_MS)
        {
            return report.clone();
        }
        let mut facts = gather(store).await;
        facts.extend(more());
        let report = Report::new(facts);
        if !report.is_ready() {
            tracing::warn!(not_ready = ?report.not_ready(), "not ready");
        }
        *cached = Some((Instant::now(), report.clone()));
        report
    }
}

/// Gathers every fact. Add a condition here.
async fn gather(store: &Store) -> Vec<Fact> {
    let database = store.ping().await;
    let reachable = database.is_ok();
    if let Err(e) = &database {
        tracing::warn!(error = %e, "readiness: database unreachable");
    }
    let held = store.rollback_status().held().len();
    // A tenant whose erasure journal was not carried out withholds its personal data.
    let journal_held = store.erasure_journal_problems().len();
    // A full disk or a clock too far behind refuses every append: send writes elsewhere.
    let faults = store.fault_status();
    let clock = if faults.clock_behind_seconds > 0.0 {
        format!(
            "{:.0} s behind the latest capture time{}",
            faults.clock_behind_seconds,
            if faults.clock_beyond_allowance {
                "; appends refused"
            } else {
                ""
            }
        )
    } else {
        "ok".to_owned()
    };
    vec![
        Fact::new(
            "database",
            reachable,
            if reachable { "ok" } else { "unreachable" },
        ),
        // The schema is checked at startup; it cannot change under a running service.
        Fact::new(
            "migrations",
            reachable,
            if reachable { "current" } else { "unknown" },
        ),
        signing_keys(store, reachable).await,
        Fact::new("rollback_held_tenants", held == 0, held),
        Fact::new(
            "erasure_journal_held_tenants",
            journal_held == 0,
            journal_held,
        ),
        Fact::new(
            "storage",
            !faults.storage_full,
            if faults.storage_full { "full" } else { "ok" },
        ),
        Fact::new("clock", !faults.clock_beyond_allowance, clock),
        witnesses(store),
    ]
}

/// The witnesses, counted (informational: checkpoints are published whether witnesses answer
/// or not). Which witness lags is in `/metrics`; which tenant, on that tenant's portal dashboard.
fn witnesses(store: &Store) -> Fact {
    let statuses = store.witness_statuses();
    let failing = statuses.iter().filter(|s| s.last_error.is_some()).count();
    let max_lag = statuses.iter().map(|s| s.lag_records()).max().unwrap_or(0);
    Fact::info(
        "witnesses",
        serde_json::json!({
            "configured": statuses.len(),
            "failing": failing,
            "max_lag_records": max_lag,
        }),
    )
}

/// Every tenant's signing key opens with the master key: a count of those that do not, with the
/// tenants named only in the log.
async fn signing_keys(store: &Store, reachable: bool) -> Fact {
    const NAME: &str = "signing_keys";
    if !reachable {
        return Fact::new(NAME, false, "unknown: database unreachable");
    }
    let tenants = match store.tenants().await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "readiness: cannot list tenants");
            return Fact::new(NAME, false, "unknown: tenants unreadable");
        }
    };
    let mut unusable = 0usize;
    for tenant in &tenants {
        if let Err(e) = store.current_signer(tenant).await {
            tracing::error!(tenant = %tenant, error = %e, "readiness: signing key not usable");
            unusable += 1;
        }
    }
    if unusable == 0 {
        Fact::new(NAME, true, format!("{} loaded", tenants.len()))
    } else {
        Fact::new(
            NAME,
            false,
            format!("{unusable} of {} not usable", tenants.len()),
        )
    }
}
