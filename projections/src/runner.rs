//! Keeps every projection up to date: catch-up from the stored positions, live tailing of new
//! records, rebuilds into a new generation, and lag.
//!
//! **Positions.** Each projection has one position per tenant and generation: the next sequence
//! number to apply. A page of a tenant's records (from the smallest position among the
//! projections) is folded into [`Changes`] per projection, and each projection's changes are
//! written by [`ViewStore::commit`] in **one transaction together with its new positions**,
//! which the store moves only if they still hold the values the page was computed from. (A page
//! commits in [`ViewStore::commit_lanes`] transactions at once, each carrying whole
//! projections.) A crash therefore loses a projection's page or none of it, never applies a
//! record twice and never skips one; two runners on one database (two service instances) cannot
//! both apply a page: the second sees a moved position, writes nothing and reads again.
//!
//! **Generations.** A projection's rows carry a generation number. Queries read the *active*
//! generation. A rebuild — `auditex projections rebuild`, or a new projection version found at
//! startup — starts a *building* generation from position 0 beside it; the runner maintains both,
//! and when the building one has caught up with every tenant's chain it becomes active in one
//! transaction (which first builds the indexes a store defers while a generation fills) and the
//! old generation is purged. Until then the old view keeps serving.
//!
//! **Tailing.** The append pipeline wakes the runner after each commit ([`Runner::wake`]); a
//! poll interval covers records written by another process sharing the database.
//!
//! **Failure isolation.** A page that fails is not a reason to stop every tenant. When a
//! tenant's step fails the runner first asks the database something trivial: if that fails too
//! it is an outage, and the whole round is retried later with back-off. If the database answers,
//! each projection is retried alone on smaller and smaller pages of that tenant's records, down
//! to one record; a projection that cannot apply one record alone is marked *stuck* at it in the
//! store ([`ViewStore::mark_stuck`]), logged at ERROR with the tenant and sequence number, and
//! skipped for that tenant until an operator retries it (`auditex projections retry`). Every
//! other projection of the tenant, and every other tenant, keeps up. A stuck projection's lag
//! is computed like any other, from the chain's length and the stored position, so it keeps
//! growing, also across restarts. A fold that *panics* on a record (a defect in a projection)
//! is caught where it folds and becomes that page's error ([`FoldPanicked`]), so it is isolated
//! and marked stuck the same way instead of ending the runner for every tenant.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ledger::types::{EventId, TenantId};
use serde::Serialize;
use tokio::sync::{Notify, watch};

use crate::views::Projection;
use crate::{ALL, Changes, DecisionFacts, Event, Facts};

/// Records applied between two refreshes of the planner's statistics.
pub const OPTIMIZE_EVERY_RECORDS: u64 = 100_000;

/// Most records folded into one page (per tenant, one transaction). A runner that is caught up
/// applies what is new, so pages are only this large while it catches up or rebuilds. There a
/// larger transaction writes each B-tree page it touches once for more records: the subject
/// index and the follow-ups' rows are inserted and updated in random order, so their cost per
/// record falls with the page size (see BENCHMARKS.md). A page keeps its folded changes (a row
/// per decision, subject entry and oversight action), not the parsed records.
pub const PAGE_RECORDS: u64 = 100_000;

/// Most records read from the ledger at a time while a page is folded: parsed records (their
/// JSON payloads) are dropped once folded.
pub const READ_RECORDS: u64 = 10_000;

/// How records are paged: most records per page and per read. [`Paging::default`] is
/// [`PAGE_RECORDS`] and [`READ_RECORDS`]; tests use small pages to cross page and read
/// boundaries often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// Most records folded into one page (one transaction).
    pub page_records: u64,
    /// Most records read from the ledger at a time.
    pub read_records: u64,
}

impl Default for Paging {
    fn default() -> Self {
        Paging {
            page_records: PAGE_RECORDS,
            read_records: READ_RECORDS,
        }
    }
}

/// Most pages one tenant gets in a round before the next tenant's turn (and a status update).
pub const PAGES_PER_ROUND: usize = 4;

/// The state of one projection in the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectionState {
    /// Its name.
    pub name: String,
    /// The generation queries read.
    pub active_generation: i64,
    /// The projection version that generation was built by.
    pub active_version: u32,
    /// A generation being rebuilt beside it, and its version.
    pub building: Option<(i64, u32)>,
}

/// A projection generation that could not apply one of a tenant's records, even alone: it stays
/// at that record until an operator retries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stuck {
    /// The tenant.
    pub tenant: String,
    /// Projection name.
    pub name: String,
    /// The generation (active or building).
    pub generation: i64,
    /// The sequence number of the record it cannot apply (its position).
    pub seq: u64,
    /// Why, as the store reported it.
    pub error: String,
    /// When it was marked, µs since the Unix epoch.
    pub since_us: i64,
}

/// A projection's fold panicked on a record: a defect in the projection, contained by the
/// runner and treated as a record that projection cannot apply (it is marked stuck there for
/// that tenant only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoldPanicked {
    /// The projection.
    pub name: &'static str,
    /// The record's sequence number.
    pub seq: u64,
    /// The panic's message, when it had one.
    pub message: String,
}

impl std::fmt::Display for FoldPanicked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "projection {} panicked folding record {}: {}",
            self.name, self.seq, self.message
        )
    }
}

impl std::error::Error for FoldPanicked {}

/// Folds `events` from position `at` on into `changes` for one projection, catching a panic of
/// the projection's code. The page's changes are dropped after a panic (the caller returns an
/// error), so state half-written by the panicking fold is never committed: hence
/// `AssertUnwindSafe`.
fn fold_contained(
    projection: &dyn Projection,
    changes: &mut Changes,
    events: &[Event],
    at: u64,
    facts: &Facts,
) -> Result<(), FoldPanicked> {
    let mut current = at;
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for event in events.iter().filter(|e| e.seq >= at) {
            current = event.seq;
            #[cfg(any(test, feature = "test-faults"))]
            test_faults::check(projection.name(), event);
            projection.apply(changes, event, facts);
        }
    }))
    .map_err(|payload| FoldPanicked {
        name: projection.name(),
        seq: current,
        message: payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_owned()),
    })
}

/// Below this many records a read is folded on the runner's own task: handing it to the
/// blocking pool would cost more than it saves.
const BLOCKING_FOLD_RECORDS_MIN: usize = 64;

/// Folds `events` into each target's changes, every target from its own position; gives back
/// the changes and the facts (which later reads of the page add to). A read of thousands of
/// records is tens of milliseconds of folding: it runs on the blocking pool, so that the async
/// workers keep serving requests meanwhile. `None` when the runtime shut down first.
async fn fold_all(
    targets: Vec<(&'static dyn Projection, u64)>,
    mut changes: Vec<Changes>,
    events: Vec<Event>,
    facts: Facts,
) -> Option<(Vec<Changes>, Facts, Result<(), FoldPanicked>)> {
    let small = events.len() < BLOCKING_FOLD_RECORDS_MIN;
    let fold = move || {
        let mut result = Ok(());
        for ((p, at), changes) in targets.iter().zip(&mut changes) {
            result = fold_contained(*p, changes, &events, *at, &facts);
            if result.is_err() {
                break;
            }
        }
        (changes, facts, result)
    };
    if small {
        return Some(fold());
    }
    match tokio::task::spawn_blocking(fold).await {
        Ok(folded) => Some(folded),
        // A panic outside the contained folds is a bug: raise it where the runner is.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => None,
    }
}

/// Folds that panic on demand, to show that the runner contains them. Compiled only for tests
/// (this crate's, and the service's test builds through the `test-faults` feature, which no
/// release build enables).
#[cfg(any(test, feature = "test-faults"))]
pub mod test_faults {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    use crate::Event;

    /// (projection, subject reference) pairs whose fold panics.
    static PANICS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

    /// Set once a test arms a fault: until then every fold skips the lock above (a service never
    /// arms one, and the check runs for every record in every view).
    static ARMED: AtomicBool = AtomicBool::new(false);

    /// Makes projection `name` panic when it folds a record whose `subject_ref` is `subject`
    /// (tests use a subject of their own, so tests running at once do not disturb each other).
    pub fn panic_on_subject(name: &str, subject: &str) {
        ARMED.store(true, Ordering::Release);
        PANICS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name.to_owned(), subject.to_owned()));
    }

    /// Removes every panic on `subject`.
    pub fn clear_subject(subject: &str) {
        PANICS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(_, s)| s != subject);
    }

    pub(crate) fn check(name: &str, event: &Event) {
        if !ARMED.load(Ordering::Acquire) {
            return;
        }
        let Some(subject) = event.str("subject_ref") else {
            return;
        };
        let hit = PANICS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|(n, s)| n == name && s == subject);
        if hit {
            panic!("test fault: {name} panics on subject {subject}");
        }
    }
}

/// Longest error text kept with a stuck mark, in bytes.
pub const STUCK_ERROR_BYTES_MAX: usize = 1000;

/// Most single-projection steps one round spends isolating a failed page of one tenant
/// (each either halves the page or applies one); the next round goes on from there.
pub const ISOLATE_STEPS_MAX: usize = 64;

/// The changes of one page for one projection generation, and the position move they make.
#[derive(Debug, Clone)]
pub struct TargetPage {
    /// Projection name.
    pub name: &'static str,
    /// Generation written.
    pub generation: i64,
    /// The position the page was computed from (the store checks it still holds).
    pub from: u64,
    /// The new position.
    pub to: u64,
    /// What changes.
    pub changes: Changes,
}

/// Where projections read records and keep their state: implemented by the service's store for
/// SQLite and PostgreSQL.
pub trait ViewStore: Clone + Send + Sync + 'static {
    /// The store's error; a fold that panicked ([`FoldPanicked`]) becomes one, so that it is
    /// isolated like any record a projection cannot apply.
    type Error: std::fmt::Display + Send + Sync + 'static + From<FoldPanicked>;

    /// Every projection's state (created on first use by [`ViewStore::ensure`]).
    fn states(&self) -> impl Future<Output = Result<Vec<ProjectionState>, Self::Error>> + Send;

    /// Creates the state of a projection that has none: generation 1, active, built by
    /// `version`, at position 0.
    fn ensure(
        &self,
        name: &str,
        version: u32,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Starts a building generation for `name` by `version` (replacing an unfinished one) and
    /// returns its number.
    fn start_rebuild(
        &self,
        name: &str,
        version: u32,
    ) -> impl Future<Output = Result<i64, Self::Error>> + Send;

    /// Makes the building generation `generation` active, if it still is the building one,
    /// having built the indexes its tables lack. Returns the generation it replaced.
    fn activate(
        &self,
        name: &str,
        generation: i64,
    ) -> impl Future<Output = Result<Option<i64>, Self::Error>> + Send;

    /// Deletes every row and position of a generation that is neither active nor building.
    fn purge(
        &self,
        name: &str,
        generation: i64,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// The tenants.
    fn tenants(&self) -> impl Future<Output = Result<Vec<TenantId>, Self::Error>> + Send;

    /// How many records the tenant's chain holds.
    fn chain_length(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<u64, Self::Error>> + Send;

    /// The tenant's positions: (projection, generation) → next sequence number to apply.
    fn positions(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<HashMap<(String, i64), u64>, Self::Error>> + Send;

    /// The projection generations stuck at one of the tenant's records
    /// ([`ViewStore::mark_stuck`]), which the runner skips for this tenant.
    fn stuck(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<Vec<Stuck>, Self::Error>> + Send {
        let _ = tenant;
        async { Ok(Vec::new()) }
    }

    /// Marks the generation of `name` stuck for the tenant at `seq`, if its position is still
    /// `seq` (another runner may have moved it meanwhile).
    fn mark_stuck(
        &self,
        tenant: &TenantId,
        name: &str,
        generation: i64,
        seq: u64,
        error: &str,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = (tenant, name, generation, seq, error);
        async { Ok(()) }
    }

    /// Up to `limit` records from `from` on, in sequence order.
    fn events(
        &self,
        tenant: &TenantId,
        from: u64,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<Event>, Self::Error>> + Send;

    /// The facts of those of `ids` that are decisions in the tenant's ledger.
    fn facts(
        &self,
        tenant: &TenantId,
        ids: Vec<EventId>,
    ) -> impl Future<Output = Result<Vec<(EventId, DecisionFacts)>, Self::Error>> + Send;

    /// Builds whatever indexes a generation's tables still lack (none, unless the store defers
    /// them while a generation fills; see [`ViewStore::activate`]) and tells whether it built
    /// any. The runner calls it once the active generation has caught up: the first generation
    /// of a view, created when no view existed, serves while it fills. It is idempotent.
    fn index_generation(
        &self,
        name: &str,
        generation: i64,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send {
        let _ = (name, generation);
        async { Ok(false) }
    }

    /// Refreshes the query planner's statistics of the views (after a rebuild, and now and then
    /// while they grow).
    fn optimize(&self) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Records applied between two refreshes of the statistics while the views grow
    /// ([`OPTIMIZE_EVERY_RECORDS`] unless the store says otherwise).
    fn optimize_every(&self) -> u64 {
        OPTIMIZE_EVERY_RECORDS
    }

    /// How many transactions may write one page at the same time, each with some of its
    /// projections and their positions (1 unless the store says otherwise). A store whose
    /// database takes concurrent writers spreads a page's commit over more than one core.
    fn commit_lanes(&self) -> usize {
        1
    }

    /// Writes the pages and moves the positions in one transaction. Returns `false`, having
    /// written nothing, when a position no longer holds its page's `from`.
    fn commit(
        &self,
        tenant: &TenantId,
        pages: Vec<TargetPage>,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;
}

/// Lag of one projection's active generation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Lag {
    /// Records not yet applied, over all tenants.
    pub records: u64,
    /// Age of the oldest record not yet applied, in seconds (0 when caught up).
    pub seconds: f64,
}

/// Status of one projection, for `/readyz`, `/metrics` and the CLI.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// Name.
    pub name: String,
    /// The code's version.
    pub version: u32,
    /// The generation queries read, and the version that built it.
    pub active_generation: i64,
    /// The version of the active generation.
    pub active_version: u32,
    /// Lag of the active generation.
    pub lag: Lag,
    /// A rebuild in progress: its generation and records applied / to apply.
    pub rebuilding: Option<Rebuilding>,
    /// The tenants for which a generation of this projection is stuck (see [`Stuck`]), with
    /// the records each has not applied.
    pub stuck: Vec<StuckLag>,
}

/// A stuck projection generation of one tenant and its lag.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StuckLag {
    /// Where and why it stopped.
    pub stuck: Stuck,
    /// Records of the tenant's chain it has not applied (growing while it is stuck).
    pub records: u64,
    /// Age of the record it stopped at, in seconds.
    pub seconds: f64,
}

/// Progress of a rebuild.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rebuilding {
    /// The generation being built.
    pub generation: i64,
    /// Records applied so far, over all tenants.
    pub applied: u64,
    /// Records in all chains.
    pub total: u64,
}

/// A stuck mark as (tenant, projection, generation, seq).
type StuckKey = (String, String, i64, u64);

/// The runner's handle: wake it, read its status, stop it.
#[derive(Clone)]
pub struct Runner {
    /// Records applied since the planner's statistics were last refreshed.
    since_optimize: Arc<std::sync::atomic::AtomicU64>,
    /// Active generations known to have all their indexes, as (projection, generation).
    indexed: Arc<Mutex<std::collections::HashSet<(String, i64)>>>,
    /// Whether a refresh of the statistics is running (in the background).
    optimizing: Arc<std::sync::atomic::AtomicBool>,
    wake: Arc<Notify>,
    status: Arc<Mutex<Vec<Status>>>,
    applied: watch::Sender<u64>,
    stop: Arc<Notify>,
    stopped: Arc<std::sync::atomic::AtomicBool>,
    paging: Paging,
    /// Stuck marks already logged by this process, as (tenant, projection, generation, seq).
    reported: Arc<Mutex<std::collections::HashSet<StuckKey>>>,
    /// Tenants that appended since the last round ([`Runner::wake_for`]).
    appended: Arc<Mutex<std::collections::HashSet<TenantId>>>,
}

/// Tenants a background round visits besides those that appended or were behind: the sweep
/// that finds, now and then, what this process was not told of (another node's appends).
pub const SWEEP_TENANTS_PER_ROUND: usize = 500;

/// Which tenants the background task's rounds visit: the tenants that appended (the appender
/// says so), those still behind after their last visit, and the next [`SWEEP_TENANTS_PER_ROUND`]
/// of all tenants in turn. With many tenants of which few append, a round then costs what the
/// active tenants cost, not a read of every tenant's chain and positions (with 80,000 tenants, a
/// round over all of them took minutes, and the active tenants' views waited for it). A rebuild
/// caught up with every chain is decided only in a round that visits every tenant, so while a
/// rebuild runs every round does; a generation is indexed once the sweep has been through every
/// tenant and none is behind.
#[derive(Debug, Default)]
struct Sweep {
    /// Whether the sweep has been through every tenant since the runner started.
    visited_all: bool,
    /// Tenants behind (or stuck) after their last visit.
    behind: std::collections::HashSet<TenantId>,
    /// All tenants as last listed, and where the sweep is in that list.
    tenants: Vec<TenantId>,
    cursor: usize,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner").finish_non_exhaustive()
    }
}

impl Default for Runner {
    fn default() -> Self {
        Runner {
            since_optimize: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            indexed: Arc::default(),
            optimizing: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            wake: Arc::new(Notify::new()),
            status: Arc::new(Mutex::new(Vec::new())),
            applied: watch::channel(0).0,
            stop: Arc::new(Notify::new()),
            stopped: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            paging: Paging::default(),
            reported: Arc::default(),
            appended: Arc::default(),
        }
    }
}

impl Runner {
    /// A handle not yet running (wakes before the start are kept).
    pub fn new() -> Self {
        Runner::default()
    }

    /// The same handle with other page sizes.
    #[must_use]
    pub fn with_paging(mut self, paging: Paging) -> Self {
        self.paging = paging;
        self
    }

    /// Tells the runner that records were appended (a wake-up is remembered if it is busy).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Tells the runner that `tenant` appended records: its next round visits it.
    pub fn wake_for(&self, tenant: &TenantId) {
        self.appended
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.clone());
        self.wake.notify_one();
    }

    /// The latest status of every projection.
    pub fn status(&self) -> Vec<Status> {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A counter of committed pages, for waiting until the views have moved.
    pub fn applied(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// Asks the background task to stop after its current page.
    pub fn stop(&self) {
        self.stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.stop.notify_one();
    }

    /// Runs until [`Runner::stop`]: prepares the states (starting rebuilds for new versions),
    /// then applies pages as records arrive, polling every `poll` as a fallback.
    pub async fn run<S: ViewStore>(self, store: S, poll: Duration) {
        let mut backoff = poll;
        let mut sweep = Sweep::default();
        loop {
            if self.stopped.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            match self.round(&store, Some(&mut sweep)).await {
                Ok(applied) if applied > 0 => {
                    backoff = poll;
                    continue;
                }
                Ok(_) => backoff = poll,
                Err(e) => {
                    tracing::warn!(error = %e, "projection runner: will retry");
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(backoff) => {}
                () = self.stop.notified() => return,
            }
        }
    }

    /// One pass over every tenant, or with `sweep`, over the tenants it picks (see [`Sweep`]);
    /// returns the records applied (when any, another pass may follow at once).
    async fn round<S: ViewStore>(
        &self,
        store: &S,
        mut sweep: Option<&mut Sweep>,
    ) -> Result<u64, S::Error> {
        let states = prepare(store).await?;
        let appended: Vec<TenantId> = self
            .appended
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        let rebuilding = states.iter().any(|s| s.building.is_some());
        let every = rebuilding || sweep.is_none();
        let tenants = match sweep.as_deref_mut() {
            Some(sweep) if !every => sweep.pick(store, appended).await?,
            _ => store.tenants().await?,
        };
        let targets = targets_of(&states, None);
        let mut worked = 0;
        let mut lags: HashMap<String, Lag> = HashMap::new();
        let mut building: HashMap<String, (u64, u64)> = HashMap::new();
        let mut stuck_lags: HashMap<String, Vec<StuckLag>> = HashMap::new();
        for tenant in &tenants {
            let length = store.chain_length(tenant).await?;
            let stuck = store.stuck(tenant).await?;
            let live: Vec<_> = targets
                .iter()
                .copied()
                .filter(|(p, g)| {
                    !stuck
                        .iter()
                        .any(|s| s.name == p.name() && s.generation == *g)
                })
                .collect();
            let outcome = match step(
                store,
                tenant,
                &live,
                (self.paging, PAGES_PER_ROUND),
                &mut |_| {},
            )
            .await
            {
                Ok(outcome) => outcome,
                Err(error) => isolate(store, tenant, &live, self.paging, error).await?,
            };
            // A mark made just now is read back with the rest.
            let stuck = if outcome.marked {
                store.stuck(tenant).await?
            } else {
                stuck
            };
            if outcome.applied > 0 {
                worked += outcome.applied;
                self.applied.send_modify(|n| *n += 1);
            }
            let positions = store.positions(tenant).await?;
            // Whether the sweep must come back to this tenant next round.
            let mut behind = !stuck.is_empty();
            for state in &states {
                let active = positions
                    .get(&(state.name.clone(), state.active_generation))
                    .copied()
                    .unwrap_or(0);
                let lag = lags.entry(state.name.clone()).or_default();
                lag.records += length.saturating_sub(active);
                behind |= active < length;
                if active < length {
                    // A stuck generation was not in the page read: its oldest pending record
                    // is read on its own, so that its age keeps growing.
                    let age = match outcome.oldest_pending_age(active) {
                        Some(age) => Some(age),
                        None => pending_age(store, tenant, active).await,
                    };
                    lag.seconds = lag.seconds.max(age.unwrap_or(0.0));
                }
                if let Some((generation, _)) = state.building {
                    let done = positions
                        .get(&(state.name.clone(), generation))
                        .copied()
                        .unwrap_or(0);
                    let b = building.entry(state.name.clone()).or_default();
                    b.0 += done.min(length);
                    b.1 += length;
                    behind |= done < length;
                }
            }
            if let Some(sweep) = sweep.as_deref_mut() {
                if behind {
                    sweep.behind.insert(tenant.clone());
                } else {
                    sweep.behind.remove(tenant);
                }
            }
            for mark in stuck {
                let at = positions
                    .get(&(mark.name.clone(), mark.generation))
                    .copied()
                    .unwrap_or(mark.seq);
                self.report_stuck(&mark);
                let seconds = pending_age(store, tenant, at).await.unwrap_or(0.0);
                stuck_lags
                    .entry(mark.name.clone())
                    .or_default()
                    .push(StuckLag {
                        records: length.saturating_sub(at),
                        seconds,
                        stuck: mark,
                    });
            }
        }
        // With a sweep, whether every tenant was visited since the start and none is behind.
        let sweep_caught_up = match sweep {
            Some(sweep) => {
                sweep.visited_all |= every;
                sweep.visited_all && sweep.behind.is_empty()
            }
            None => false,
        };
        // A rebuild that has caught up with every chain replaces the old generation (decided
        // only in a round that visited every tenant).
        let caught_up: Vec<(String, i64)> = states
            .iter()
            .filter(|_| every)
            .filter_map(|state| {
                let (generation, _) = state.building?;
                let (applied, total) = building.get(&state.name)?;
                (applied >= total).then(|| (state.name.clone(), generation))
            })
            .collect();
        // An active generation that has caught up gets the indexes it lacks (the first
        // generation of a view fills unindexed, as a rebuild's does) — unless a rebuild is
        // about to replace it. Once per generation and process: the store's call is
        // idempotent, so a restart merely repeats it.
        let unindexed: Vec<(String, i64)> = states
            .iter()
            .map(|s| (s.name.clone(), s.active_generation))
            .filter(|key| {
                (if every {
                    lags.get(&key.0).is_some_and(|lag| lag.records == 0)
                } else {
                    sweep_caught_up
                }) && !caught_up.iter().any(|(name, _)| *name == key.0)
                    && !self
                        .indexed
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .contains(key)
            })
            .collect();
        // New indexes call for fresh statistics; a restart that finds them built does not.
        let mut refresh = false;
        if !unindexed.is_empty() {
            refresh =
                side_by_side(
                    store,
                    unindexed.clone(),
                    |store, name, generation| async move {
                        store.index_generation(&name, generation).await
                    },
                )
                .await?;
            self.indexed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(unindexed);
        }
        refresh |= finish_rebuilds(store, caught_up).await?;
        let status = states
            .iter()
            .map(|s| Status {
                name: s.name.clone(),
                version: crate::by_name(&s.name).map_or(0, |p| p.version()),
                active_generation: s.active_generation,
                active_version: s.active_version,
                lag: lags.get(&s.name).copied().unwrap_or_default(),
                rebuilding: s.building.map(|(generation, _)| {
                    let (applied, total) = building.get(&s.name).copied().unwrap_or((0, 0));
                    Rebuilding {
                        generation,
                        applied,
                        total,
                    }
                }),
                stuck: stuck_lags.remove(&s.name).unwrap_or_default(),
            })
            .collect();
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = status;
        // Fresh statistics as the views grow and once a new generation serves: a planner that
        // believes the tables are empty scans them.
        let pending = self
            .since_optimize
            .fetch_add(worked, std::sync::atomic::Ordering::SeqCst)
            + worked;
        if pending >= store.optimize_every() || refresh {
            self.since_optimize
                .store(0, std::sync::atomic::Ordering::SeqCst);
            self.optimize_in_background(store);
        }
        Ok(worked)
    }

    /// Logs a stuck mark at ERROR once per process (a restart logs it again), so that the log
    /// names every tenant and record a projection has stopped at.
    fn report_stuck(&self, mark: &Stuck) {
        let key = (
            mark.tenant.clone(),
            mark.name.clone(),
            mark.generation,
            mark.seq,
        );
        if self
            .reported
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key)
        {
            tracing::error!(
                tenant = %mark.tenant,
                projection = %mark.name,
                generation = mark.generation,
                seq = mark.seq,
                error = %mark.error,
                "projection stuck: it cannot apply this record of this tenant and waits for \
                 `auditex projections retry`; other tenants and projections keep up"
            );
        }
    }

    /// Refreshes the statistics on a task of its own, unless a refresh is running. On
    /// PostgreSQL an `ANALYZE` of views of millions of rows takes seconds, which the runner
    /// would otherwise add to the lag of every record pending meanwhile; it does not block
    /// writes to the tables it samples.
    fn optimize_in_background<S: ViewStore>(&self, store: &S) {
        if self
            .optimizing
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return;
        }
        let (store, optimizing) = (store.clone(), self.optimizing.clone());
        tokio::spawn(async move {
            if let Err(e) = store.optimize().await {
                tracing::warn!(error = %e, "projection runner: refreshing statistics failed");
            }
            optimizing.store(false, std::sync::atomic::Ordering::SeqCst);
        });
    }
}

impl Sweep {
    /// The tenants a round visits after the first: those that appended, those behind, and the
    /// sweep's next slice of all tenants (listed again once the sweep has gone through them).
    async fn pick<S: ViewStore>(
        &mut self,
        store: &S,
        appended: Vec<TenantId>,
    ) -> Result<Vec<TenantId>, S::Error> {
        if self.cursor >= self.tenants.len() {
            self.tenants = store.tenants().await?;
            self.cursor = 0;
        }
        let end = (self.cursor + SWEEP_TENANTS_PER_ROUND).min(self.tenants.len());
        // Through every tenant once this slice is visited.
        self.visited_all |= end == self.tenants.len();
        let mut seen = std::collections::HashSet::new();
        let picked = appended
            .into_iter()
            .chain(self.behind.iter().cloned())
            .chain(self.tenants[self.cursor..end].iter().cloned())
            .filter(|t| seen.insert(t.clone()))
            .collect();
        self.cursor = end;
        Ok(picked)
    }
}

/// Creates missing states and starts a rebuild of every projection whose active generation
/// was built by another version than the code's; returns the states.
pub async fn prepare<S: ViewStore>(store: &S) -> Result<Vec<ProjectionState>, S::Error> {
    let mut states = store.states().await?;
    let mut changed = false;
    for p in ALL {
        match states.iter().find(|s| s.name == p.name()) {
            None => {
                store.ensure(p.name(), p.version()).await?;
                changed = true;
            }
            Some(s)
                if s.active_version != p.version()
                    && s.building.is_none_or(|(_, v)| v != p.version()) =>
            {
                tracing::info!(
                    projection = p.name(),
                    from = s.active_version,
                    to = p.version(),
                    "projection version changed: rebuilding while the old view keeps serving"
                );
                store.start_rebuild(p.name(), p.version()).await?;
                changed = true;
            }
            Some(_) => {}
        }
    }
    if changed {
        states = store.states().await?;
    }
    Ok(states)
}

/// The (projection, generation) pairs to maintain: active and building generations, of every
/// projection or of `only`.
fn targets_of(
    states: &[ProjectionState],
    only: Option<(&str, i64)>,
) -> Vec<(&'static dyn Projection, i64)> {
    let mut targets = Vec::new();
    for s in states {
        let Some(p) = crate::by_name(&s.name) else {
            continue;
        };
        if let Some((name, generation)) = only {
            if name == s.name {
                targets.push((p, generation));
            }
            continue;
        }
        targets.push((p, s.active_generation));
        if let Some((generation, _)) = s.building {
            targets.push((p, generation));
        }
    }
    targets
}

/// What one step did.
#[derive(Debug, Default)]
struct StepOutcome {
    /// Records applied (to the furthest-behind target).
    applied: u64,
    /// Capture times of the page read, to tell the age of pending records.
    first: Option<(u64, i64)>,
    /// Whether a projection was marked stuck.
    marked: bool,
}

impl StepOutcome {
    fn oldest_pending_age(&self, position: u64) -> Option<f64> {
        let (seq, captured) = self.first?;
        (seq <= position).then(|| {
            let now = chrono::Utc::now().timestamp_micros();
            (now.saturating_sub(captured) as f64 / 1e6).max(0.0)
        })
    }
}

/// Age in seconds of the tenant's record `seq`, if it can be read.
async fn pending_age<S: ViewStore>(store: &S, tenant: &TenantId, seq: u64) -> Option<f64> {
    let events = store.events(tenant, seq, 1).await.ok()?;
    let captured = events.first()?.captured_at_us;
    let now = chrono::Utc::now().timestamp_micros();
    Some((now.saturating_sub(captured) as f64 / 1e6).max(0.0))
}

/// A step of `tenant` failed with `error`. Tells an outage from a record that a projection
/// cannot apply: an outage (the database does not answer a trivial read) is returned as the
/// error, and the round is retried later. Otherwise each target goes on alone, on pages halved
/// after each failure; one that fails on a single record is marked stuck there (and logged),
/// the others apply what they can. Returns what was applied.
async fn isolate<S: ViewStore>(
    store: &S,
    tenant: &TenantId,
    targets: &[(&'static dyn Projection, i64)],
    paging: Paging,
    error: S::Error,
) -> Result<StepOutcome, S::Error> {
    if store.tenants().await.is_err() {
        return Err(error);
    }
    tracing::warn!(tenant = %tenant, error = %error, "projection page failed: retrying each projection alone");
    let mut outcome = StepOutcome::default();
    let mut steps = 0;
    for (projection, generation) in targets {
        let target = [(*projection, *generation)];
        let mut size = paging.read_records.min(paging.page_records).max(1);
        while steps < ISOLATE_STEPS_MAX {
            steps += 1;
            let alone = Paging {
                page_records: size,
                read_records: size,
            };
            match step(store, tenant, &target, (alone, 1), &mut |_| {}).await {
                Ok(done) => {
                    outcome.applied += done.applied;
                    outcome.first = match (outcome.first, done.first) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    if done.first.is_none() || done.applied == 0 {
                        // Caught up (or another runner moved it): this target is done.
                        break;
                    }
                }
                Err(_) if size > 1 => size = size.div_ceil(2).min(size - 1),
                Err(failure) => {
                    // One record, alone: unless the database has gone away meanwhile, this
                    // record is what the projection cannot apply.
                    if store.tenants().await.is_err() {
                        return Err(failure);
                    }
                    let seq = store
                        .positions(tenant)
                        .await?
                        .get(&(projection.name().to_owned(), *generation))
                        .copied()
                        .unwrap_or(0);
                    let mut text = failure.to_string();
                    if text.len() > STUCK_ERROR_BYTES_MAX {
                        let mut end = STUCK_ERROR_BYTES_MAX;
                        while !text.is_char_boundary(end) {
                            end -= 1;
                        }
                        text.truncate(end);
                    }
                    store
                        .mark_stuck(tenant, projection.name(), *generation, seq, &text)
                        .await?;
                    outcome.marked = true;
                    break;
                }
            }
        }
    }
    Ok(outcome)
}

/// A page read and folded, ready to commit.
struct Folded {
    pages: Vec<TargetPage>,
    /// The smallest position the page starts from, and the sequence number after it.
    from: u64,
    end: u64,
    /// Sequence number and capture time of its first record.
    first: (u64, i64),
}

/// Reads the tenant's next page from `positions` (the smallest among the targets), up to
/// `paging.page_records` records in reads of `paging.read_records`, and folds it for every
/// target that has not seen it; `None` when there is nothing to apply. A follow-up to a decision
/// of the same page changes that decision's new row, so a larger page also writes fewer UPDATEs.
async fn fold_next<S: ViewStore>(
    store: &S,
    tenant: &TenantId,
    targets: &[(&'static dyn Projection, i64)],
    positions: &HashMap<(String, i64), u64>,
    paging: Paging,
) -> Result<Option<Folded>, S::Error> {
    let position = |p: &dyn Projection, g: i64| {
        positions
            .get(&(p.name().to_owned(), g))
            .copied()
            .unwrap_or(0)
    };
    let Some(from) = targets.iter().map(|(p, g)| position(*p, *g)).min() else {
        return Ok(None);
    };
    let mut changes: Vec<Changes> = targets.iter().map(|_| Changes::default()).collect();
    let mut facts = Facts::default();
    let mut first = None;
    let mut end = from;
    let (page_records, read_records) = (paging.page_records.max(1), paging.read_records.max(1));
    while end - from < page_records {
        let limit = read_records.min(page_records - (end - from));
        let events = store.events(tenant, end, limit).await?;
        let (Some(head), Some(last)) = (events.first(), events.last()) else {
            break;
        };
        first.get_or_insert((head.seq, head.captured_at_us));
        add_facts(store, tenant, &events, &mut facts).await?;
        let (next, read) = (last.seq + 1, events.len() as u64);
        let at: Vec<(&'static dyn Projection, u64)> = targets
            .iter()
            .map(|(p, generation)| (*p, position(*p, *generation)))
            .collect();
        let Some((folded, known, result)) = fold_all(at, changes, events, facts).await else {
            // The runtime is shutting down: nothing of this page is committed.
            return Ok(None);
        };
        (changes, facts) = (folded, known);
        result?;
        end = next;
        if read < limit {
            // The end of the chain.
            break;
        }
    }
    let Some(first) = first else {
        return Ok(None);
    };
    let mut pages = Vec::new();
    for ((p, generation), changes) in targets.iter().zip(changes) {
        let at = position(*p, *generation);
        if at >= end {
            continue;
        }
        pages.push(TargetPage {
            name: p.name(),
            generation: *generation,
            from: at,
            to: end,
            changes,
        });
    }
    Ok((!pages.is_empty()).then_some(Folded {
        pages,
        from,
        end,
        first,
    }))
}

/// Applies up to `max_pages` pages of the tenant's records to every target that has not seen
/// them. Each page commits on tasks of its own (one per [`ViewStore::commit_lanes`]) while the
/// next one is read and folded, so the database and the folding work at the same time; should
/// a commit find a position moved (another runner), the page folded meanwhile is dropped and the
/// next step reads again. `on_commit` hears the records of each page as it commits.
async fn step<S: ViewStore>(
    store: &S,
    tenant: &TenantId,
    targets: &[(&'static dyn Projection, i64)],
    (paging, max_pages): (Paging, usize),
    on_commit: &mut (dyn FnMut(u64) + Send),
) -> Result<StepOutcome, S::Error> {
    let mut outcome = StepOutcome::default();
    if targets.is_empty() {
        return Ok(outcome);
    }
    let mut positions = store.positions(tenant).await?;
    // The first page is one read long, so that the database starts on it at once instead of
    // idling while a whole page folds; later pages fold while their predecessor commits.
    let first_paging = Paging {
        page_records: paging.read_records.min(paging.page_records),
        ..paging
    };
    let Some(mut page) = fold_next(store, tenant, targets, &positions, first_paging).await? else {
        return Ok(outcome);
    };
    outcome.first = Some(page.first);
    for n in 1.. {
        for p in &page.pages {
            positions.insert((p.name.to_owned(), p.generation), p.to);
        }
        // Each lane commits whole projections with their positions, so a crash between two
        // lanes' commits leaves positions that differ by projection, which the next page folds
        // from (every target applies only what lies past its own position).
        let commits: Vec<_> = lanes(page.pages, store.commit_lanes())
            .into_iter()
            .map(|pages| {
                let (store, tenant) = (store.clone(), tenant.clone());
                tokio::spawn(async move { store.commit(&tenant, pages).await })
            })
            .collect();
        let next = if n < max_pages {
            fold_next(store, tenant, targets, &positions, paging).await
        } else {
            Ok(None)
        };
        let mut committed = true;
        for commit in commits {
            committed &= match commit.await {
                Ok(committed) => committed?,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                // Cancelled: the runtime is shutting down. Nothing is lost; each lane commits
                // or not.
                Err(_) => return Ok(outcome),
            };
        }
        if !committed {
            // Another runner moved a position first; the next step reads again.
            return Ok(outcome);
        }
        outcome.applied += page.end - page.from;
        on_commit(page.end - page.from);
        match next? {
            Some(following) => page = following,
            None => break,
        }
    }
    Ok(outcome)
}

/// Splits a page's targets into at most `lanes` groups of about equal work (rows written),
/// heaviest first, each going to the lightest group so far. Each group is then put back in
/// (name, generation) order, the order in which every transaction takes position rows, so that
/// two runners' commits never wait on each other in a cycle.
fn lanes(pages: Vec<TargetPage>, lanes: usize) -> Vec<Vec<TargetPage>> {
    let mut pages = pages;
    pages.sort_by_key(|p| std::cmp::Reverse(p.changes.rows()));
    let mut groups: Vec<(usize, Vec<TargetPage>)> = Vec::new();
    for page in pages {
        let rows = page.changes.rows();
        if groups.len() < lanes.max(1) {
            groups.push((rows, vec![page]));
        } else if let Some(lightest) = groups.iter_mut().min_by_key(|(load, _)| *load) {
            lightest.0 += rows;
            lightest.1.push(page);
        }
    }
    groups
        .into_iter()
        .map(|(_, mut pages)| {
            pages.sort_by_key(|p| (p.name, p.generation));
            pages
        })
        .collect()
}

/// Adds to `facts` those of every decision the records name: the records' own decisions, and
/// the rest read from the ledger.
async fn add_facts<S: ViewStore>(
    store: &S,
    tenant: &TenantId,
    events: &[Event],
    facts: &mut Facts,
) -> Result<(), S::Error> {
    for e in events {
        if let Some(f) = DecisionFacts::of(e) {
            facts.insert(e.event_id, f);
        }
    }
    let mut missing: Vec<EventId> = events
        .iter()
        .flat_map(Event::linked)
        .filter(|id| !facts.contains(id))
        .collect();
    missing.sort_unstable();
    missing.dedup();
    if !missing.is_empty() {
        for (id, f) in store.facts(tenant, missing).await? {
            facts.insert(id, f);
        }
    }
    Ok(())
}

/// Makes a caught-up building generation active and deletes the one it replaces; `true` when
/// it did (the caller refreshes the statistics).
async fn finish_rebuild<S: ViewStore>(
    store: &S,
    name: &str,
    generation: i64,
) -> Result<bool, S::Error> {
    let Some(old) = store.activate(name, generation).await? else {
        return Ok(false);
    };
    tracing::info!(
        projection = name,
        generation,
        "rebuilt projection caught up: now serving it"
    );
    store.purge(name, old).await?;
    Ok(true)
}

/// Finishes the caught-up rebuilds `(name, generation)` at the same time. `true` when any took
/// over.
async fn finish_rebuilds<S: ViewStore>(
    store: &S,
    caught_up: Vec<(String, i64)>,
) -> Result<bool, S::Error> {
    side_by_side(store, caught_up, |store, name, generation| async move {
        finish_rebuild(&store, &name, generation).await
    })
    .await
}

/// Runs `work` for each `(name, generation)` at the same time, each on a task of its own: on
/// PostgreSQL each builds its indexes in a transaction (and a backend) of its own. `true` when
/// any returned `true`.
async fn side_by_side<S, W, F>(
    store: &S,
    items: Vec<(String, i64)>,
    work: W,
) -> Result<bool, S::Error>
where
    S: ViewStore,
    W: Fn(S, String, i64) -> F,
    F: Future<Output = Result<bool, S::Error>> + Send + 'static,
{
    let tasks: Vec<_> = items
        .into_iter()
        .map(|(name, generation)| tokio::spawn(work(store.clone(), name, generation)))
        .collect();
    let mut any = false;
    for task in tasks {
        any |= match task.await {
            Ok(done) => done?,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Cancelled: the runtime is shutting down; the next start does it again.
            Err(_) => false,
        };
    }
    Ok(any)
}

/// Progress of [`rebuild`]: records applied so far and records to apply.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Send + Sync);

/// Rebuilds projections from the ledger into new generations — all of them in one pass over
/// each chain — reporting progress, then makes each new generation active and deletes the old
/// rows. Returns the records read. A running service keeps serving the old generations
/// meanwhile (and helps build the new ones).
///
/// # Errors
/// The store's error; an unfinished generation is left for the service (or a new rebuild).
pub async fn rebuild<S: ViewStore>(
    store: &S,
    chosen: &[&'static dyn Projection],
    progress: Progress<'_>,
) -> Result<u64, S::Error> {
    rebuild_paged(store, chosen, Paging::default(), progress).await
}

/// [`rebuild`] with other page sizes.
///
/// # Errors
/// The store's error.
pub async fn rebuild_paged<S: ViewStore>(
    store: &S,
    chosen: &[&'static dyn Projection],
    paging: Paging,
    progress: Progress<'_>,
) -> Result<u64, S::Error> {
    prepare(store).await?;
    let mut targets = Vec::new();
    for p in chosen {
        let generation = store.start_rebuild(p.name(), p.version()).await?;
        targets.push((*p, generation));
    }
    let tenants = store.tenants().await?;
    let mut total = 0;
    for tenant in &tenants {
        total += store.chain_length(tenant).await?;
    }
    let mut applied = 0u64;
    let started = Instant::now();
    for tenant in &tenants {
        loop {
            // As many pages as the chain holds, so that the next page is always folding while
            // one commits (a round's limit is for fairness between tenants, which a rebuild
            // taking them in turn does not need).
            let outcome = step(store, tenant, &targets, (paging, usize::MAX), &mut |n| {
                applied += n;
                progress(applied.min(total), total);
            })
            .await?;
            if outcome.first.is_none() {
                // Every target has read the whole chain. (A page another runner applied first
                // is read again.)
                break;
            }
        }
    }
    let caught_up = targets
        .iter()
        .map(|(p, generation)| (p.name().to_owned(), *generation))
        .collect();
    finish_rebuilds(store, caught_up).await?;
    store.optimize().await?;
    tracing::info!(
        records = applied,
        seconds = started.elapsed().as_secs_f64(),
        "rebuild finished"
    );
    Ok(applied)
}

/// Brings every projection up to date once, without a background task (for the CLI, tests and
/// benchmarks). Returns the records applied (counted once per page).
///
/// # Errors
/// The store's error.
pub async fn catch_up<S: ViewStore>(store: &S) -> Result<u64, S::Error> {
    Runner::new().catch_up(store).await
}

impl Runner {
    /// Like [`catch_up`], recording the status in this handle (as the background task does).
    ///
    /// # Errors
    /// The store's error.
    pub async fn catch_up<S: ViewStore>(&self, store: &S) -> Result<u64, S::Error> {
        let mut applied = 0;
        loop {
            let round = self.round(store, None).await?;
            if round == 0 {
                return Ok(applied);
            }
            applied += round;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A target page for `name` writing `rows` rows (daily counters).
    fn page(name: &'static str, rows: usize) -> TargetPage {
        let mut changes = Changes::default();
        for n in 0..rows {
            let key = (
                format!("2026-01-{n:02}"),
                "m".into(),
                "1".into(),
                "ok".into(),
            );
            changes.daily.insert(key, 1);
        }
        TargetPage {
            name,
            generation: 1,
            from: 0,
            to: 10,
            changes,
        }
    }

    fn names(groups: &[Vec<TargetPage>]) -> Vec<Vec<&'static str>> {
        groups
            .iter()
            .map(|g| g.iter().map(|p| p.name).collect())
            .collect()
    }

    /// A projection whose fold panics on record 2 and counts the records it folds otherwise.
    struct PanicsOnTwo;

    impl Projection for PanicsOnTwo {
        fn name(&self) -> &'static str {
            "panics_on_two"
        }
        fn version(&self) -> u32 {
            1
        }
        fn tables(&self) -> &'static [&'static str] {
            &[]
        }
        fn apply(&self, changes: &mut Changes, event: &Event, _facts: &Facts) {
            assert_ne!(event.seq, 2, "a defect on record 2");
            changes.daily.insert(
                (
                    format!("{}", event.seq),
                    "m".into(),
                    "1".into(),
                    "ok".into(),
                ),
                1,
            );
        }
    }

    fn events(seqs: std::ops::Range<u64>) -> Vec<Event> {
        seqs.map(|seq| Event {
            seq,
            event_id: EventId::parse(&format!("0190a000-0000-7000-8000-{seq:012}"))
                .expect("event id"),
            event_type: ledger::record::EventType::Decision,
            captured_at_us: 0,
            payload: serde_json::Map::new(),
        })
        .collect()
    }

    #[test]
    fn a_fold_that_panics_is_caught_and_names_its_projection_and_record() {
        let mut changes = Changes::default();
        let facts = Facts::default();
        let error = fold_contained(&PanicsOnTwo, &mut changes, &events(0..5), 0, &facts)
            .expect_err("the panic is an error");
        assert_eq!(error.name, "panics_on_two");
        assert_eq!(error.seq, 2);
        assert!(error.message.contains("a defect on record 2"), "{error}");
        // From the record after it on, the same fold succeeds: only that record is refused.
        let mut changes = Changes::default();
        fold_contained(&PanicsOnTwo, &mut changes, &events(0..5), 3, &facts)
            .expect("records 3 and 4 fold");
        assert_eq!(changes.daily.len(), 2);
    }

    #[test]
    fn lanes_share_the_rows_and_keep_every_page_once() {
        let pages = || {
            vec![
                page("a", 1),
                page("b", 10),
                page("c", 0),
                page("d", 5),
                page("e", 6),
            ]
        };
        let two = lanes(pages(), 2);
        assert_eq!(names(&two), vec![vec!["a", "b", "c"], vec!["d", "e"]]);
        let load = |g: &Vec<TargetPage>| g.iter().map(|p| p.changes.rows()).sum::<usize>();
        assert_eq!(two.iter().map(load).collect::<Vec<_>>(), vec![11, 11]);
        assert_eq!(
            names(&lanes(pages(), 1)),
            vec![vec!["a", "b", "c", "d", "e"]]
        );
        // No lanes at all still commits, in one.
        assert_eq!(lanes(pages(), 0).len(), 1);
        // More lanes than pages: one page each, no empty transaction.
        assert_eq!(lanes(vec![page("a", 3), page("b", 2)], 4).len(), 2);
        assert!(lanes(Vec::new(), 2).is_empty());
    }
}
