//! Read-side projections (issue 5) on each backend, beside the raw insert ceiling of the same
//! database measured in the same run.
//!
//! For each backend (SQLite always; PostgreSQL when configured) the harness:
//!
//! 1. measures `raw_insert`: plain batched INSERTs (1000 rows per transaction) of identical
//!    11-column rows into an unconstrained table, `AUDITEX_BENCH_RECORDS` rows — the baseline
//!    every rate is divided by (the same functions as `benches/store.rs`);
//! 2. populates one tenant's ledger with `AUDITEX_BENCH_RECORDS` records (default 1,000,000)
//!    through `Store::append`, 1000-record batches from 4 submitters, **not timed**: ~85 %
//!    decisions (5 models × 3 versions, three outcomes, 100,000 subjects, a quarter
//!    `human_in_the_loop`), ~15 % follow-ups naming earlier decisions (9 % human reviews,
//!    3.5 % overrides, 2.5 % contests; reviews of the same or a recent batch, contests of any
//!    earlier decision). Capture times come from a clock the submitters move, so the ledger
//!    spans 40 days (daily volumes and time ranges have something to select);
//! 3. times the first catch-up from position 0 (`runner::catch_up`), then a full rebuild of all
//!    views (`runner::rebuild(.., &projections::ALL, ..)`) into new generations beside the
//!    active ones, timed to three points: every record applied; the new generations serving
//!    (on PostgreSQL their indexes are built first), which the target applies to; and the old
//!    generations purged. Both run
//!    through a wrapper of the store's `ViewStore` that times reading records, reading decision
//!    facts and committing pages, and counts the statements each page costs. A second,
//!    profiled rebuild commits each view's page (and the decisions view's new rows apart from its
//!    follow-up UPDATEs) in a transaction of its own, to tell which view's writes cost what;
//! 4. times ~`AUDITEX_BENCH_QUERIES` (default 300) queries of 14 shapes an analyst uses (filters
//!    by model, version, subject, status, outcome, decision and capture time ranges, score,
//!    a deep cursor, oversight by reviewer, model inventory, subject records, 30 days of daily
//!    volumes), interleaved, after one untimed warm-up query per shape;
//! 5. reopens the store with the background runner (`projections_in_background`, woken after
//!    every append commit) and ingests for `AUDITEX_BENCH_LAG_SECS` seconds (default 30) at
//!    `AUDITEX_BENCH_LAG_RATE` records/s (default 38,500: the HTTPS batched ingestion rate of
//!    BENCHMARKS.md) in 1000-record batches from 4 submitters (batches prepared beforehand). A
//!    monitor reads the positions every 5 ms; a batch's lag is the time from its acknowledgement
//!    to the first poll where the decisions view's active generation (and, separately, the
//!    slowest view's) has passed its last sequence number.
//!
//! Run: `cargo bench --bench projections` (SQLite), with `AUDITEX_BENCH_POSTGRES_ADMIN_URL` (a
//! role that may create databases and owns the schema) and `AUDITEX_BENCH_POSTGRES_APP_URL` (the
//! application role) to include PostgreSQL: the harness creates the database
//! `auditex_bench_proj` on that server (replacing the URLs' database), migrates it as the owner,
//! runs the store as the application role, and drops it at the end. Quick check:
//! `AUDITEX_BENCH_RECORDS=100000 AUDITEX_BENCH_LAG_SECS=10 cargo bench --bench projections`.
//!
//! Other settings:
//! - `AUDITEX_BENCH_LAG_RATE`: comma-separated rates, one lag run each (`38500,5000`);
//!   `AUDITEX_BENCH_LAG_SECS=0` skips the lag runs;
//! - `AUDITEX_BENCH_PROFILE`: `rebuild` (default: the second, profiled rebuild), `catchup`
//!   (profile the first catch-up instead: on PostgreSQL a second rebuild's purge can take
//!   minutes) or `0`;
//! - `AUDITEX_BENCH_BACKENDS`: `sqlite,postgres` (default), or one of them;
//! - `AUDITEX_BENCH_SQLITE_DIR` keeps the SQLite database in that folder, and
//!   `AUDITEX_BENCH_KEEP_POSTGRES=1` keeps the PostgreSQL one, for `EXPLAIN`;
//! - `RUST_LOG` shows the store's and runner's logs on standard error; progress goes there too,
//!   the markdown table to standard output.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auditex::store::crypto::MasterKey;
use auditex::store::views::{DecisionQuery, OversightQuery};
use auditex::store::{Clock, DatabaseUrl, Store, StoreConfig, StoreError};
use ledger::draft::{ClientDraft, prepare_client_draft};
use ledger::types::{EventId, TenantId};
use projections::runner::{self, ProjectionState, TargetPage, ViewStore};
use projections::{DecisionFacts, Event};
use rayon::prelude::*;
use serde_json::{Value, json};
use sqlx::Connection;

#[path = "support/raw_insert.rs"]
mod raw_insert;
use raw_insert::{rate, raw_insert_postgres, raw_insert_sqlite};

/// Records per append request.
const BATCH: u64 = 1000;
/// Concurrent submitters, as in the store and HTTP benchmarks.
const SUBMITTERS: usize = 4;
const MODELS: [&str; 5] = [
    "credit-limit",
    "fraud-screen",
    "aml-alert",
    "mortgage-affordability",
    "card-approval",
];
const VERSIONS: [&str; 3] = ["1.0.0", "1.1.0", "2.0.0"];
const SUBJECTS: u64 = 100_000;
const REVIEWERS: u64 = 40;
const DAY_US: u64 = 86_400_000_000;
/// The populated ledger's capture times span this many days, ending two days ago.
const SPAN_DAYS: u64 = 40;
/// How long the lag monitor waits for the views to catch up once ingestion stops.
const DRAIN_SECS_MAX: u64 = 900;
/// The database the PostgreSQL run creates and drops.
const PG_DATABASE: &str = "auditex_bench_proj";

#[path = "support/settings.rs"]
#[allow(dead_code)]
mod settings;
use settings::env_u64;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn check(ok: bool) -> &'static str {
    if ok { "✔" } else { "✘" }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn now_us() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_micros()).expect("after 1970")
}

// ---------------------------------------------------------------------------------------------
// The synthetic ledger: record n is a pure function of n (and of the capture time of its batch).

/// splitmix64: a well-mixed hash of `x`.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Decision,
    Review,
    Override,
    Contest,
}

fn kind(n: u64) -> Kind {
    // The first batch holds decisions only, so every follow-up has an earlier decision.
    if n < BATCH {
        return Kind::Decision;
    }
    match mix(n) % 1000 {
        0..850 => Kind::Decision,
        850..940 => Kind::Review,
        940..975 => Kind::Override,
        _ => Kind::Contest,
    }
}

/// The decision follow-up `n` names: half the reviews one of the same request, other reviews
/// and overrides one of the last ~50 requests, contests any earlier decision. Outside the same
/// request it is at least five requests back, so it is committed (4 submitters) before `n` is.
fn target(n: u64) -> u64 {
    let h = mix(n ^ 0x5eed_5eed);
    let in_batch = n % BATCH;
    let back = match kind(n) {
        Kind::Review if in_batch > 0 && h.is_multiple_of(2) => 1 + (h >> 8) % in_batch,
        Kind::Review | Kind::Override => 5 * BATCH + (h >> 8) % (50 * BATCH),
        _ => 5 * BATCH + (h >> 8) % n.saturating_sub(5 * BATCH).max(1),
    };
    let mut m = n.saturating_sub(back);
    while kind(m) != Kind::Decision {
        m -= 1;
    }
    m
}

/// A UUIDv7 event id that is a function of `n` (the database is fresh on every run).
fn event_id(n: u64) -> String {
    let mut bytes = [0u8; 10];
    bytes[2..].copy_from_slice(&n.to_be_bytes());
    uuid::Builder::from_unix_timestamp_millis(1_790_000_000_000 + n, &bytes)
        .into_uuid()
        .to_string()
}

fn rfc3339(us: u64) -> String {
    chrono::DateTime::from_timestamp_micros(i64::try_from(us).expect("a plausible time"))
        .expect("a plausible time")
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn decision_fields(n: u64) -> (usize, usize, &'static str, String) {
    let h = mix(n.wrapping_mul(31) ^ 0xdec1_5104);
    let outcome = match (h >> 16) % 10 {
        0..6 => "approved",
        6..9 => "declined",
        _ => "referred",
    };
    (
        (h % 5) as usize,
        ((h >> 8) % 3) as usize,
        outcome,
        format!("subj-{:06}", (h >> 34) % SUBJECTS),
    )
}

fn reviewer(n: u64) -> String {
    format!("reviewer-{:02}", mix(n ^ 0x7e71) % REVIEWERS)
}

/// Record `n`, captured around `at_us`.
fn draft(n: u64, at_us: u64) -> ClientDraft {
    let h = mix(n ^ 0xf00d);
    let (event_type, payload): (&str, Value) = match kind(n) {
        Kind::Decision => {
            let (model, version, outcome, subject) = decision_fields(n);
            let mode = if h.is_multiple_of(4) {
                "human_in_the_loop"
            } else {
                "human_on_the_loop"
            };
            (
                "decision",
                json!({
                    "model_id": MODELS[model],
                    "model_version": VERSIONS[version],
                    "input_commitment": format!("{n:064x}"),
                    "outcome": outcome,
                    "score": ((h >> 8) % 1000) as f64 / 1000.0,
                    "reason_codes": ["R01", "R17"],
                    "subject_ref": subject,
                    "decided_at": rfc3339(at_us.saturating_sub((h >> 20) % 600 * 1_000_000)),
                    "oversight_mode": mode,
                }),
            )
        }
        Kind::Review => (
            "human_review",
            json!({
                "decision_id": event_id(target(n)),
                "reviewer": reviewer(n),
                "action": if h % 10 < 8 { "confirmed" } else { "escalated" },
                "reason": "checked against the affordability policy",
            }),
        ),
        Kind::Override => (
            "override",
            json!({
                "decision_id": event_id(target(n)),
                "reviewer": reviewer(n),
                "new_outcome": if h % 10 < 7 { "approved" } else { "declined" },
                "reason": "income evidence supplied after the automated decision",
            }),
        ),
        Kind::Contest => (
            "contest",
            json!({
                "decision_id": event_id(target(n)),
                "channel": "web",
                "statement": "The applicant disputes the outcome.",
            }),
        ),
    };
    prepare_client_draft(
        &event_id(n),
        event_type,
        &payload,
        &BTreeMap::new(),
        rand::random,
    )
    .expect("valid draft")
}

/// A clock the populating submitters move forward, so capture times spread over days.
#[derive(Debug)]
struct VirtualClock(AtomicU64);

impl Clock for VirtualClock {
    fn now_unix_micros(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The capture-time span of the populated ledger.
#[derive(Debug, Clone, Copy)]
struct Span {
    start_us: u64,
    step_us: u64,
    end_us: u64,
}

async fn append_retrying(store: &Store, tenant: &TenantId, batch: Vec<ClientDraft>) -> u64 {
    loop {
        match store.append(tenant, batch.clone()).await {
            Ok(receipts) => return receipts.last().map_or(0, |r| r.seq),
            Err(e) if e.is_retryable() => tokio::time::sleep(Duration::from_millis(5)).await,
            Err(e) => panic!("append failed: {e}"),
        }
    }
}

/// Appends records `0..count` (untimed setup); batch `b` is captured at `span.start + b × step`.
async fn populate(
    store: &Store,
    tenant: &TenantId,
    clock: &Arc<VirtualClock>,
    count: u64,
    span: Span,
) {
    let batches = count.div_ceil(BATCH);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..SUBMITTERS {
        let (store, tenant, clock, next) =
            (store.clone(), tenant.clone(), clock.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let b = next.fetch_add(1, Ordering::SeqCst);
                if b >= batches {
                    break;
                }
                let at = span.start_us + b * span.step_us;
                let drafts: Vec<ClientDraft> = (b * BATCH..((b + 1) * BATCH).min(count))
                    .map(|n| draft(n, at))
                    .collect();
                clock.0.fetch_max(at, Ordering::SeqCst);
                append_retrying(&store, &tenant, drafts).await;
                if (b + 1) % (batches / 10).max(1) == 0 {
                    eprintln!(
                        "  populated {} of {count} records ({:.0} s)",
                        ((b + 1) * BATCH).min(count),
                        started.elapsed().as_secs_f64()
                    );
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("populating task");
    }
}

// ---------------------------------------------------------------------------------------------
// Where a catch-up or rebuild spends its time: the store's `ViewStore`, timed.

#[derive(Debug, Default)]
struct Phases {
    events_ns: AtomicU64,
    facts_ns: AtomicU64,
    commit_ns: AtomicU64,
    positions_ns: AtomicU64,
    switch_ns: AtomicU64,
    commits: AtomicU64,
    pages: AtomicU64,
    statements: AtomicU64,
    decision_rows: AtomicU64,
    patches: AtomicU64,
    upserts: AtomicU64,
    /// When the last new generation took over (an `activate` that switched).
    serving_at: Mutex<Option<Instant>>,
}

impl Phases {
    fn add(slot: &AtomicU64, since: Instant) {
        slot.fetch_add(
            u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    fn secs(slot: &AtomicU64) -> f64 {
        slot.load(Ordering::Relaxed) as f64 / 1e9
    }

    fn count(slot: &AtomicU64) -> u64 {
        slot.load(Ordering::Relaxed)
    }

    fn reset(&self) {
        for slot in [
            &self.events_ns,
            &self.facts_ns,
            &self.commit_ns,
            &self.positions_ns,
            &self.switch_ns,
            &self.commits,
            &self.pages,
            &self.statements,
            &self.decision_rows,
            &self.patches,
            &self.upserts,
        ] {
            slot.store(0, Ordering::Relaxed);
        }
        *self.serving_at.lock().expect("phases") = None;
    }

    /// One line: where `total` went.
    fn describe(&self, total: Duration) -> String {
        let total = total.as_secs_f64();
        let (events, facts, commit, positions, switch) = (
            Self::secs(&self.events_ns),
            Self::secs(&self.facts_ns),
            Self::secs(&self.commit_ns),
            Self::secs(&self.positions_ns),
            Self::secs(&self.switch_ns),
        );
        let other = (total - events - facts - commit - positions - switch).max(0.0);
        let pct = |s: f64| 100.0 * s / total;
        let commits = Self::count(&self.commits).max(1);
        let per = |slot: &AtomicU64| Self::count(slot) as f64 / commits as f64;
        format!(
            "read records {events:.1} s ({:.0} %), decision facts {facts:.1} s ({:.0} %), commit pages {commit:.1} s ({:.0} %, summed over transactions that may overlap), \
             positions {positions:.1} s ({:.0} %), activate + purge {switch:.1} s ({:.0} %), fold + rest {other:.1} s ({:.0} %); \
             {commits} commits of up to {} records ({} view pages), per commit {:.0} statements: {:.0} decision rows inserted, \
             {:.0} follow-up UPDATEs, {:.0} upserts (models, outcomes, daily)",
            pct(events),
            pct(facts),
            pct(commit),
            pct(positions),
            pct(switch),
            pct(other),
            runner::PAGE_RECORDS,
            Self::count(&self.pages),
            per(&self.statements),
            per(&self.decision_rows),
            per(&self.patches),
            per(&self.upserts),
        )
    }
}

/// The parts a profiled commit is split into, each committed (and timed) on its own.
const PARTS: [&str; 6] = [
    "decisions: new rows",
    "decisions: follow-up UPDATEs",
    "models + outcomes",
    "oversight",
    "subjects",
    "daily",
];

/// Per part of a profiled commit: time spent and transactions.
type PartTimes = [(Duration, u64); PARTS.len()];

#[derive(Clone)]
struct Timed {
    store: Store,
    phases: Arc<Phases>,
    /// Profiling: commit each view's page (and the decisions view's new rows apart from its
    /// follow-up UPDATEs) in a transaction of its own, timing each part. The view content is the
    /// same; positions move through intermediate values, which only this process sees.
    split: Option<Arc<Mutex<PartTimes>>>,
}

impl Timed {
    /// Commits one part; `false` when its position moved (only possible for the first).
    async fn commit_part(
        &self,
        tenant: &TenantId,
        part: usize,
        page: TargetPage,
    ) -> Result<bool, StoreError> {
        let t = Instant::now();
        let ok = ViewStore::commit(&self.store, tenant, vec![page]).await?;
        if let Some(split) = &self.split {
            let mut split = split.lock().expect("split");
            split[part].0 += t.elapsed();
            split[part].1 += 1;
        }
        Ok(ok)
    }

    async fn commit_split(
        &self,
        tenant: &TenantId,
        pages: Vec<TargetPage>,
    ) -> Result<bool, StoreError> {
        let mut first = true;
        for page in pages {
            let mut parts = Vec::new();
            match page.name {
                "decisions" if page.to - page.from >= 2 => {
                    let mut rows = page.clone();
                    rows.to = page.from + 1;
                    rows.changes.decision_patches.clear();
                    let mut patches = page;
                    patches.from = rows.to;
                    patches.changes.decision_inserts.clear();
                    parts.push((0, rows));
                    parts.push((1, patches));
                }
                "decisions" => parts.push((0, page)),
                "models" => parts.push((2, page)),
                "oversight" => parts.push((3, page)),
                "subjects" => parts.push((4, page)),
                _ => parts.push((5, page)),
            }
            for (part, page) in parts {
                let ok = self.commit_part(tenant, part, page).await?;
                assert!(ok || first, "a profiled commit lost its position half-way");
                if !ok {
                    return Ok(false);
                }
                first = false;
            }
        }
        Ok(true)
    }

    fn describe_split(&self) -> String {
        let Some(split) = &self.split else {
            return String::new();
        };
        let split = split.lock().expect("split");
        let total: f64 = split.iter().map(|(d, _)| d.as_secs_f64()).sum();
        PARTS
            .iter()
            .zip(split.iter())
            .map(|(name, (d, n))| {
                format!(
                    "{name} {:.1} s ({:.0} %, {n} transactions, {:.1} ms each)",
                    d.as_secs_f64(),
                    100.0 * d.as_secs_f64() / total.max(1e-9),
                    d.as_secs_f64() * 1e3 / (*n).max(1) as f64
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl ViewStore for Timed {
    type Error = StoreError;

    async fn states(&self) -> Result<Vec<ProjectionState>, StoreError> {
        ViewStore::states(&self.store).await
    }

    async fn ensure(&self, name: &str, version: u32) -> Result<(), StoreError> {
        ViewStore::ensure(&self.store, name, version).await
    }

    async fn start_rebuild(&self, name: &str, version: u32) -> Result<i64, StoreError> {
        let t = Instant::now();
        let r = ViewStore::start_rebuild(&self.store, name, version).await;
        Phases::add(&self.phases.switch_ns, t);
        r
    }

    async fn activate(&self, name: &str, generation: i64) -> Result<Option<i64>, StoreError> {
        let t = Instant::now();
        let r = ViewStore::activate(&self.store, name, generation).await;
        Phases::add(&self.phases.switch_ns, t);
        if matches!(r, Ok(Some(_))) {
            *self.phases.serving_at.lock().expect("phases") = Some(Instant::now());
        }
        r
    }

    async fn purge(&self, name: &str, generation: i64) -> Result<(), StoreError> {
        let t = Instant::now();
        let r = ViewStore::purge(&self.store, name, generation).await;
        Phases::add(&self.phases.switch_ns, t);
        r
    }

    async fn tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        ViewStore::tenants(&self.store).await
    }

    async fn chain_length(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        ViewStore::chain_length(&self.store, tenant).await
    }

    async fn positions(
        &self,
        tenant: &TenantId,
    ) -> Result<HashMap<(String, i64), u64>, StoreError> {
        let t = Instant::now();
        let r = ViewStore::positions(&self.store, tenant).await;
        Phases::add(&self.phases.positions_ns, t);
        r
    }

    async fn events(
        &self,
        tenant: &TenantId,
        from: u64,
        limit: u64,
    ) -> Result<Vec<Event>, StoreError> {
        let t = Instant::now();
        let r = ViewStore::events(&self.store, tenant, from, limit).await;
        Phases::add(&self.phases.events_ns, t);
        r
    }

    async fn facts(
        &self,
        tenant: &TenantId,
        ids: Vec<EventId>,
    ) -> Result<Vec<(EventId, DecisionFacts)>, StoreError> {
        let t = Instant::now();
        let r = ViewStore::facts(&self.store, tenant, ids).await;
        Phases::add(&self.phases.facts_ns, t);
        r
    }

    async fn optimize(&self) -> Result<(), StoreError> {
        ViewStore::optimize(&self.store).await
    }

    fn optimize_every(&self) -> u64 {
        ViewStore::optimize_every(&self.store)
    }

    fn commit_lanes(&self) -> usize {
        ViewStore::commit_lanes(&self.store)
    }

    async fn index_generation(&self, name: &str, generation: i64) -> Result<bool, StoreError> {
        let t = Instant::now();
        let r = ViewStore::index_generation(&self.store, name, generation).await;
        Phases::add(&self.phases.switch_ns, t);
        r
    }

    async fn commit(&self, tenant: &TenantId, pages: Vec<TargetPage>) -> Result<bool, StoreError> {
        // Statements as the store writes them (src/store/views.rs): one position move, inserts,
        // follow-up UPDATEs and aggregate upserts in chunks of 500 rows, one upsert per model.
        let chunks = |n: usize| n.div_ceil(500) as u64;
        let p = &self.phases;
        for page in &pages {
            let c = &page.changes;
            let upserts =
                c.models.len() as u64 + chunks(c.model_outcomes.len()) + chunks(c.daily.len());
            let patches = chunks(c.decision_patches.len());
            p.pages.fetch_add(1, Ordering::Relaxed);
            p.decision_rows
                .fetch_add(c.decision_inserts.len() as u64, Ordering::Relaxed);
            p.patches.fetch_add(patches, Ordering::Relaxed);
            p.upserts.fetch_add(upserts, Ordering::Relaxed);
            p.statements.fetch_add(
                1 + chunks(c.decision_inserts.len())
                    + chunks(c.oversight.len())
                    + chunks(c.subjects.len())
                    + patches
                    + upserts,
                Ordering::Relaxed,
            );
        }
        p.commits.fetch_add(1, Ordering::Relaxed);
        let t = Instant::now();
        let r = if self.split.is_some() {
            self.commit_split(tenant, pages).await
        } else {
            ViewStore::commit(&self.store, tenant, pages).await
        };
        Phases::add(&p.commit_ns, t);
        r
    }
}

// ---------------------------------------------------------------------------------------------
// Search.

#[derive(Debug, Clone, Copy)]
enum Shape {
    Newest,
    Model,
    ModelVersion,
    Subject,
    Overridden,
    Outcome,
    DecidedDay,
    CapturedDay,
    ScoreMin,
    DeepCursor,
    OversightByReviewer,
    Inventory,
    SubjectRecords,
    Daily30,
}

const SHAPES: [(Shape, &str); 14] = [
    (Shape::Newest, "newest decisions, no filter"),
    (Shape::Model, "model_id"),
    (Shape::ModelVersion, "model_id + model_version"),
    (Shape::Subject, "subject_ref"),
    (Shape::Overridden, "status = overridden"),
    (Shape::Outcome, "outcome (in force)"),
    (Shape::DecidedDay, "decided_from/until, one day"),
    (Shape::CapturedDay, "captured_from/until, one day"),
    (Shape::ScoreMin, "score_min = 0.95"),
    (Shape::DeepCursor, "model_id, deep cursor"),
    (Shape::OversightByReviewer, "oversight actions by reviewer"),
    (Shape::Inventory, "model inventory (all models)"),
    (Shape::SubjectRecords, "subject records"),
    (Shape::Daily30, "daily volumes, 30 days"),
];

/// Runs query `i` of `shape`; returns the rows it gave.
async fn query(
    store: &Store,
    tenant: &TenantId,
    shape: Shape,
    i: u64,
    span: Span,
    count: u64,
) -> usize {
    let h = mix(i ^ 0x5ea7c4);
    let page = |q: DecisionQuery| DecisionQuery { limit: 50, ..q };
    let day = |d: u64| span.start_us + d * DAY_US;
    let days = SPAN_DAYS - 1;
    let decisions = |q: DecisionQuery| async move {
        store
            .search_decisions(tenant, &page(q))
            .await
            .expect("search")
            .items
            .len()
    };
    let subject = format!("subj-{:06}", h % SUBJECTS);
    let model = MODELS[(h % 5) as usize].to_owned();
    match shape {
        Shape::Newest => decisions(DecisionQuery::default()).await,
        Shape::Model => {
            decisions(DecisionQuery {
                model_id: Some(model),
                ..DecisionQuery::default()
            })
            .await
        }
        Shape::ModelVersion => {
            decisions(DecisionQuery {
                model_id: Some(model),
                model_version: Some(VERSIONS[((h >> 8) % 3) as usize].to_owned()),
                ..DecisionQuery::default()
            })
            .await
        }
        Shape::Subject => {
            decisions(DecisionQuery {
                subject_ref: Some(subject),
                ..DecisionQuery::default()
            })
            .await
        }
        Shape::Overridden => {
            decisions(DecisionQuery {
                status: Some("overridden".to_owned()),
                ..DecisionQuery::default()
            })
            .await
        }
        Shape::Outcome => {
            decisions(DecisionQuery {
                outcome: Some(["declined", "referred", "approved"][(h % 3) as usize].to_owned()),
                ..DecisionQuery::default()
            })
            .await
        }
        Shape::DecidedDay => {
            let d = h % days;
            decisions(DecisionQuery {
                decided_from: Some(day(d) as i64),
                decided_until: Some(day(d + 1) as i64),
                ..DecisionQuery::default()
            })
            .await
        }
        Shape::CapturedDay => {
            let d = h % days;
            decisions(DecisionQuery {
                captured_from: Some(day(d) as i64),
                captured_until: Some(day(d + 1) as i64),
                ..DecisionQuery::default()
            })
            .await
        }
        Shape::ScoreMin => {
            decisions(DecisionQuery {
                score_min: Some(0.95),
                ..DecisionQuery::default()
            })
            .await
        }
        Shape::DeepCursor => {
            // A cursor somewhere in the older 90 % of the ledger (newest first).
            decisions(DecisionQuery {
                model_id: Some(model),
                after: Some(1 + (h >> 16) % (count * 9 / 10).max(1)),
                ..DecisionQuery::default()
            })
            .await
        }
        Shape::OversightByReviewer => store
            .oversight_actions(
                tenant,
                &OversightQuery {
                    actor: Some(format!("reviewer-{:02}", h % REVIEWERS)),
                    limit: 50,
                    ..OversightQuery::default()
                },
            )
            .await
            .expect("oversight")
            .items
            .len(),
        Shape::Inventory => store
            .model_inventory(tenant, None)
            .await
            .expect("inventory")
            .len(),
        Shape::SubjectRecords => store
            .subject_records(tenant, &subject, None, 50)
            .await
            .expect("subject records")
            .items
            .len(),
        Shape::Daily30 => {
            let until = span.end_us - (h % 5) * DAY_US;
            store
                .daily_volumes(
                    tenant,
                    &projections::day_of((until - 29 * DAY_US) as i64),
                    &projections::day_of(until as i64),
                    None,
                )
                .await
                .expect("daily volumes")
                .len()
        }
    }
}

/// Per shape: latencies (sorted) and total rows.
type ShapeResults = Vec<(Vec<Duration>, usize)>;

async fn search(
    store: &Store,
    tenant: &TenantId,
    span: Span,
    count: u64,
    total: u64,
) -> ShapeResults {
    let per_shape = total.div_ceil(SHAPES.len() as u64);
    // One untimed query per shape: the first statement of a shape prepares it.
    for (s, (shape, _)) in SHAPES.iter().enumerate() {
        query(store, tenant, *shape, 1_000_000 + s as u64, span, count).await;
    }
    let mut results: ShapeResults = vec![(Vec::new(), 0); SHAPES.len()];
    for i in 0..per_shape {
        for (s, (shape, _)) in SHAPES.iter().enumerate() {
            let t = Instant::now();
            let rows = query(store, tenant, *shape, i * 64 + s as u64, span, count).await;
            results[s].0.push(t.elapsed());
            results[s].1 += rows;
        }
    }
    for r in &mut results {
        r.0.sort();
    }
    results
}

// ---------------------------------------------------------------------------------------------
// Lag under sustained ingestion.

#[derive(Debug, Default)]
struct LagReport {
    target: f64,
    rate: f64,
    records: u64,
    /// Records the decisions view applied per second while ingestion ran.
    applied_rate: f64,
    decisions: Vec<Duration>,
    slowest: Vec<Duration>,
    unseen: usize,
    drain: Duration,
}

/// One lag run; returns the report and the next unused record number.
async fn lag(
    store: &Store,
    tenant: &TenantId,
    first: u64,
    secs: u64,
    target_rate: f64,
) -> (LagReport, u64) {
    // Prepared beforehand (on every core), so the submitters only append.
    let batches_max = (target_rate * secs as f64 / BATCH as f64).ceil() as u64 + 8;
    let prepared_at = now_us();
    let batches: VecDeque<Vec<ClientDraft>> = (0..batches_max)
        .into_par_iter()
        .map(|b| {
            let from = first + b * BATCH;
            (from..from + BATCH)
                .map(|n| draft(n, prepared_at))
                .collect()
        })
        .collect::<Vec<_>>()
        .into();
    let states = ViewStore::states(store).await.expect("states");
    let active: Vec<(String, i64)> = states
        .iter()
        .map(|s| (s.name.clone(), s.active_generation))
        .collect();
    let queue = Arc::new(Mutex::new((0u64, batches)));
    let (acks, mut acked) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
    let interval = Duration::from_secs_f64(BATCH as f64 / target_rate);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let appended = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..SUBMITTERS {
        let (store, tenant, queue, acks, appended) = (
            store.clone(),
            tenant.clone(),
            queue.clone(),
            acks.clone(),
            appended.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let next = {
                    let mut q = queue.lock().expect("queue");
                    let i = q.0;
                    q.0 += 1;
                    q.1.pop_front().map(|b| (i, b))
                };
                let Some((i, batch)) = next else { break };
                // Open loop: batch i is due at start + i × interval; late batches go at once.
                let due = start + interval * u32::try_from(i).expect("batch index");
                if due >= deadline || Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                let n = batch.len() as u64;
                let last = append_retrying(&store, &tenant, batch).await;
                let _ = acks.send((last, Instant::now()));
                appended.fetch_add(n, Ordering::Relaxed);
            }
        }));
    }
    drop(acks);
    // The monitor: every 5 ms, which acknowledged batches have the views passed?
    let mut pending_decisions: BTreeMap<u64, Instant> = BTreeMap::new();
    let mut pending_slowest: BTreeMap<u64, Instant> = BTreeMap::new();
    let mut report = LagReport::default();
    let mut ingesting = true;
    let mut ingestion_end = None;
    let mut first_position = None;
    let mut applied_during = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(5)).await;
        loop {
            match acked.try_recv() {
                Ok((seq, at)) => {
                    pending_decisions.insert(seq, at);
                    pending_slowest.insert(seq, at);
                }
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break,
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                    if ingesting {
                        ingesting = false;
                        ingestion_end = Some(Instant::now());
                    }
                    break;
                }
            }
        }
        let positions = ViewStore::positions(store, tenant)
            .await
            .expect("positions");
        let now = Instant::now();
        let at = |name: &str, g: i64| positions.get(&(name.to_owned(), g)).copied().unwrap_or(0);
        let decisions = active
            .iter()
            .find(|(n, _)| n == "decisions")
            .map_or(0, |(n, g)| at(n, *g));
        let slowest = active.iter().map(|(n, g)| at(n, *g)).min().unwrap_or(0);
        let from = *first_position.get_or_insert(decisions);
        if ingesting {
            applied_during = decisions - from;
        }
        for (pending, position, out) in [
            (&mut pending_decisions, decisions, &mut report.decisions),
            (&mut pending_slowest, slowest, &mut report.slowest),
        ] {
            while let Some((&seq, &acked_at)) = pending.first_key_value() {
                if seq >= position {
                    break;
                }
                out.push(now.saturating_duration_since(acked_at));
                pending.pop_first();
            }
        }
        if let Some(end) = ingestion_end {
            let caught_up = pending_decisions.is_empty() && pending_slowest.is_empty();
            if caught_up || end.elapsed() > Duration::from_secs(DRAIN_SECS_MAX) {
                report.unseen = pending_slowest.len();
                report.drain = end.elapsed();
                break;
            }
        }
    }
    for t in tasks {
        t.await.expect("submitter");
    }
    let elapsed = ingestion_end.map_or(start.elapsed(), |e| e - start);
    report.target = target_rate;
    report.records = appended.load(Ordering::Relaxed);
    report.rate = rate(report.records, elapsed);
    report.applied_rate = rate(applied_during, elapsed);
    report.decisions.sort();
    report.slowest.sort();
    (report, first + batches_max * BATCH)
}

// ---------------------------------------------------------------------------------------------

struct Backend {
    name: &'static str,
    database: DatabaseUrl,
    admin: Option<String>,
}

fn config(backend: &Backend, master: &MasterKey) -> StoreConfig {
    let mut config = StoreConfig::new(backend.database.clone(), master.clone());
    config.admin_database.clone_from(&backend.admin);
    config
}

/// How long a rebuild took to each of its milestones.
struct RebuildTimes {
    /// Every record applied to the new generations.
    applied: Duration,
    /// The last new generation took over (indexed, on PostgreSQL): queries read it.
    serving: Duration,
    /// The old generations purged too: the rebuild returned.
    total: Duration,
}

/// A timed rebuild of every view: records, its milestones, and where the time went.
async fn timed_rebuild(timed: &Timed, label: &str) -> (u64, RebuildTimes, String) {
    timed.phases.reset();
    let applied_at: Mutex<Option<Instant>> = Mutex::new(None);
    let decile = AtomicU64::new(0);
    let progress = |done: u64, total: u64| {
        let d = (done * 10).checked_div(total).unwrap_or(10);
        if d > decile.swap(d, Ordering::Relaxed) {
            eprintln!("  {label}: {done} of {total}");
        }
        if done >= total {
            applied_at
                .lock()
                .expect("progress")
                .get_or_insert_with(Instant::now);
        }
    };
    let t = Instant::now();
    let rebuilt = runner::rebuild(timed, &projections::ALL, &progress)
        .await
        .expect("rebuild");
    let total = t.elapsed();
    let applied = applied_at
        .lock()
        .expect("progress")
        .map_or(total, |at| at - t);
    let serving = timed
        .phases
        .serving_at
        .lock()
        .expect("phases")
        .map_or(total, |at| at - t);
    let phases = timed.phases.describe(total);
    eprintln!(
        "{label}: {rebuilt} records in {:.1} s (applied in {:.1} s, serving after {:.1} s); {phases}; load {}",
        total.as_secs_f64(),
        applied.as_secs_f64(),
        serving.as_secs_f64(),
        loadavg()
    );
    let times = RebuildTimes {
        applied,
        serving,
        total,
    };
    (rebuilt, times, phases)
}

async fn run_backend(backend: &Backend, raw: f64, count: u64) {
    let name = backend.name;
    let master = MasterKey::generate();
    let tenant = TenantId::parse("bench-projections").expect("tenant");
    let rebuild_target = 50_000.0;

    // 1. Populate (untimed), with capture times spread over SPAN_DAYS days.
    let end_us = now_us() - 2 * DAY_US;
    let start_us = end_us - SPAN_DAYS * DAY_US;
    let span = Span {
        start_us,
        step_us: SPAN_DAYS * DAY_US / count.div_ceil(BATCH).max(1),
        end_us,
    };
    let clock = Arc::new(VirtualClock(AtomicU64::new(start_us)));
    let mut c = config(backend, &master);
    c.clock = clock.clone();
    let store = Store::open_with_workers(c).await.expect("open store");
    store.create_tenant(&tenant).await.expect("tenant");
    let t = Instant::now();
    populate(&store, &tenant, &clock, count, span).await;
    let populated = t.elapsed();
    eprintln!(
        "{name}: populated {count} records in {:.0} s ({:.0} rec/s, untimed setup); load {}",
        populated.as_secs_f64(),
        rate(count, populated),
        loadavg()
    );

    // 2. First catch-up from position 0, then a rebuild of every view (and a profiled one).
    let profile = std::env::var("AUDITEX_BENCH_PROFILE").unwrap_or_else(|_| "rebuild".to_owned());
    let split = || Some(Arc::new(Mutex::new([(Duration::ZERO, 0); PARTS.len()])));
    let mut timed = Timed {
        store: store.clone(),
        phases: Arc::new(Phases::default()),
        split: if profile == "catchup" { split() } else { None },
    };
    let t = Instant::now();
    let caught = runner::catch_up(&timed).await.expect("catch-up");
    let catch_up = t.elapsed();
    let catch_up_phases = timed.phases.describe(catch_up);
    let catch_up_split = timed.describe_split();
    eprintln!(
        "{name}: first catch-up: {caught} records in {:.1} s; {catch_up_phases}{}{catch_up_split}; load {}",
        catch_up.as_secs_f64(),
        if catch_up_split.is_empty() { "" } else { "; " },
        loadavg()
    );
    timed.split = None;
    let (rebuilt, rebuild, rebuild_phases) =
        timed_rebuild(&timed, &format!("{name}: rebuild")).await;
    let profiled = if profile == "rebuild" {
        timed.split = split();
        let (_, times, phases) = timed_rebuild(&timed, &format!("{name}: profiled rebuild")).await;
        Some((times.total, phases, timed.describe_split()))
    } else {
        None
    };

    // 3. Search.
    let queries = env_u64("AUDITEX_BENCH_QUERIES", 300);
    let results = search(&store, &tenant, span, count, queries).await;
    eprintln!("{name}: search done; load {}", loadavg());
    store.shutdown().await;
    drop(timed);
    drop(store);

    // 4. Lag under sustained ingestion, with the background runner, on the populated ledger.
    let secs = env_u64("AUDITEX_BENCH_LAG_SECS", 30);
    let rates: Vec<f64> = std::env::var("AUDITEX_BENCH_LAG_RATE")
        .unwrap_or_else(|_| "38500".to_owned())
        .split(',')
        .map(|r| {
            r.trim()
                .parse()
                .expect("AUDITEX_BENCH_LAG_RATE: records/s, comma-separated")
        })
        .collect();
    let mut c = config(backend, &master);
    c.projections_in_background = true;
    let store = Store::open_with_workers(c).await.expect("reopen store");
    // Records 0..count are the populated ones; the numbering continues after them.
    let mut next = count;
    let mut lagged = Vec::new();
    for r in rates {
        let (report, after) = lag(&store, &tenant, next, secs, r).await;
        next = after;
        eprintln!("{name}: lag run at {r:.0} rec/s done; load {}", loadavg());
        lagged.push(report);
    }
    store.shutdown().await;
    drop(store);

    // The table.
    let catch_up_rate = rate(caught, catch_up);
    let apply_rate = rate(rebuilt, rebuild.applied);
    let serving_rate = rate(rebuilt, rebuild.serving);
    let rebuild_rate = rate(rebuilt, rebuild.total);
    println!("| {name} | raw insert (baseline) | {raw:.0} rec/s | 1.00 | — |");
    println!(
        "| {name} | first catch-up from 0, all views{} | {catch_up_rate:.0} rec/s ({caught} records, {:.1} s) | {:.2} | ≥ 50,000 rec/s {} |",
        if catch_up_split.is_empty() {
            ""
        } else {
            " (profiled: a transaction per view and page)"
        },
        catch_up.as_secs_f64(),
        catch_up_rate / raw,
        check(catch_up_rate >= rebuild_target)
    );
    println!(
        "| {name} | rebuild all views: applying every record | {apply_rate:.0} rec/s ({rebuilt} records, {:.1} s) | {:.2} | — |",
        rebuild.applied.as_secs_f64(),
        apply_rate / raw,
    );
    println!(
        "| {name} | rebuild all views: until the new views serve (+ indexing on PostgreSQL, switch-over) | {serving_rate:.0} rec/s ({:.1} s) | {:.2} | ≥ 50,000 rec/s {} |",
        rebuild.serving.as_secs_f64(),
        serving_rate / raw,
        check(serving_rate >= rebuild_target)
    );
    println!(
        "| {name} | rebuild all views: end to end (+ purge of the old generation) | {rebuild_rate:.0} rec/s ({:.1} s) | {:.2} | — |",
        rebuild.total.as_secs_f64(),
        rebuild_rate / raw,
    );
    let mut all = Vec::new();
    for ((_, label), (lat, rows)) in SHAPES.iter().zip(&results) {
        all.extend_from_slice(lat);
        println!(
            "| {name} | search: {label} ({} queries, {:.0} rows avg) | p50 {}, p99 {} | — | p99 ≤ 50 ms {} |",
            lat.len(),
            *rows as f64 / lat.len().max(1) as f64,
            ms(percentile(lat, 0.50)),
            ms(percentile(lat, 0.99)),
            check(percentile(lat, 0.99) <= Duration::from_millis(50))
        );
    }
    all.sort();
    println!(
        "| {name} | search: all {} queries | p50 {}, p99 {}, max {} | — | p99 ≤ 50 ms {} |",
        all.len(),
        ms(percentile(&all, 0.50)),
        ms(percentile(&all, 0.99)),
        ms(all.last().copied().unwrap_or_default()),
        check(percentile(&all, 0.99) <= Duration::from_millis(50))
    );
    for l in &lagged {
        let target = l.target;
        println!(
            "| {name} | lag run at {target:.0} rec/s ({SUBMITTERS} submitters, {secs} s): ingestion achieved | {:.0} rec/s ({} records) | {:.2} | — |",
            l.rate,
            l.records,
            l.rate / raw
        );
        println!(
            "| {name} | lag run at {target:.0} rec/s: decisions view applied during ingestion | {:.0} rec/s | {:.2} | — |",
            l.applied_rate,
            l.applied_rate / raw
        );
        for (label, lat) in [
            ("decisions view", &l.decisions),
            ("slowest view", &l.slowest),
        ] {
            println!(
                "| {name} | lag run at {target:.0} rec/s: lag, {label} ({} batches) | p50 {}, p99 {}, max {} | — | p99 ≤ 1 s {} |",
                lat.len(),
                ms(percentile(lat, 0.50)),
                ms(percentile(lat, 0.99)),
                ms(lat.last().copied().unwrap_or_default()),
                check(l.unseen == 0 && percentile(lat, 0.99) <= Duration::from_secs(1))
            );
        }
        if l.unseen > 0 {
            println!(
                "| {name} | lag run at {target:.0} rec/s: batches not applied {:.0} s after ingestion stopped | {} | — | ✘ |",
                l.drain.as_secs_f64(),
                l.unseen
            );
        }
    }
    println!();
    println!("{name} first catch-up: {catch_up_phases}");
    if !catch_up_split.is_empty() {
        println!("{name} first catch-up, commit time by part: {catch_up_split}");
    }
    println!("{name} rebuild: {rebuild_phases}");
    if let Some((total, phases, split)) = profiled {
        println!(
            "{name} profiled rebuild (each view's page in its own transaction, {:.1} s, {:.0} rec/s): {phases}",
            total.as_secs_f64(),
            rate(rebuilt, total)
        );
        println!("{name} profiled rebuild, commit time by part: {split}");
    }
    for l in &lagged {
        println!(
            "{name} lag run at {:.0} rec/s: views caught up {:.2} s after ingestion stopped",
            l.target,
            l.drain.as_secs_f64()
        );
    }
    println!();
}

/// The PostgreSQL server, when configured: the owner's and the application role's URLs, with
/// the database replaced by [`PG_DATABASE`].
fn postgres_urls() -> Option<(String, String, String)> {
    let admin = std::env::var("AUDITEX_BENCH_POSTGRES_ADMIN_URL").ok()?;
    let app = std::env::var("AUDITEX_BENCH_POSTGRES_APP_URL").ok()?;
    let with_db = |text: &str| {
        let mut url = url::Url::parse(text).expect("a PostgreSQL URL");
        url.set_path(PG_DATABASE);
        url.to_string()
    };
    Some((admin.clone(), with_db(&admin), with_db(&app)))
}

async fn pg_admin(server: &str, statement: String) {
    let mut admin = sqlx::PgConnection::connect(server)
        .await
        .expect("connect to PostgreSQL as the owner");
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .execute(&mut admin)
        .await
        .expect("administrative statement");
    admin.close().await.ok();
}

fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    // `cargo bench` passes --bench; this harness has no filters of its own.
    let count = env_u64("AUDITEX_BENCH_RECORDS", 1_000_000).max(BATCH);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        println!(
            "records: {count}; cores: {}; load at start: {}",
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            loadavg()
        );
        println!();
        println!("| backend | measurement | result | vs raw insert | target |");
        println!("|---|---|---|---|---|");
        let backends = std::env::var("AUDITEX_BENCH_BACKENDS")
            .unwrap_or_else(|_| "sqlite,postgres".to_owned())
            .to_lowercase();
        if backends.contains("sqlite") {
            sqlite(count).await;
        }
        if !backends.contains("postgres") {
            println!("(PostgreSQL skipped: not in AUDITEX_BENCH_BACKENDS)");
        } else if let Some((server, owner, app)) = postgres_urls() {
            postgres(count, &server, owner, app).await;
        } else {
            println!(
                "(PostgreSQL skipped: set AUDITEX_BENCH_POSTGRES_ADMIN_URL and AUDITEX_BENCH_POSTGRES_APP_URL)"
            );
        }
        println!("load at end: {}", loadavg());
    });
}

async fn sqlite(count: u64) {
    // AUDITEX_BENCH_SQLITE_DIR keeps the SQLite database for inspection (`sqlite3`).
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = std::env::var_os("AUDITEX_BENCH_SQLITE_DIR")
        .map_or_else(|| temp.path().to_owned(), std::path::PathBuf::from);
    std::fs::create_dir_all(&dir).expect("SQLite directory");
    let raw = raw_insert_sqlite(&temp.path().join("raw.db"), count).await;
    std::fs::remove_file(temp.path().join("raw.db")).ok();
    let sqlite = Backend {
        name: "SQLite",
        database: DatabaseUrl::Sqlite(dir.join("projections-bench.db")),
        admin: None,
    };
    run_backend(&sqlite, raw, count).await;
    drop(temp);
}

async fn postgres(count: u64, server: &str, owner: String, app: String) {
    let drop_db = format!("DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)");
    pg_admin(server, drop_db.clone()).await;
    pg_admin(server, format!("CREATE DATABASE {PG_DATABASE}")).await;
    Store::migrate(&DatabaseUrl::Postgres(app.clone()), Some(&owner))
        .await
        .expect("migrations apply as the owner");
    let raw = raw_insert_postgres(&owner, count).await;
    let postgres = Backend {
        name: "PostgreSQL",
        database: DatabaseUrl::Postgres(app),
        admin: Some(owner),
    };
    run_backend(&postgres, raw, count).await;
    // AUDITEX_BENCH_KEEP_POSTGRES=1 keeps the database for inspection (`psql`).
    if std::env::var("AUDITEX_BENCH_KEEP_POSTGRES").as_deref() != Ok("1") {
        pg_admin(server, drop_db).await;
    }
}
