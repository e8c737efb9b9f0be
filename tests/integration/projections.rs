//! The read-side projections against real databases: incremental maintenance equals a rebuild
//! and a naive recomputation for random streams, a crash during catch-up leaves exact views, a
//! new version is rebuilt while the old generation serves, and tenants never see each other.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use ::projections::runner::{self, ViewStore};
use ::projections::{Event, Views, reference};
use ledger::draft::{ClientDraft, prepare_client_draft};
use ledger::types::TenantId;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

use crate::crash::ProcessEnv;
use crate::support::{Backend, TestDb, backend_tests, read_chain, tenant_id};

/// The projections' input as read back from the ledger.
async fn events_of(store: &auditex::store::Store, tenant: &TenantId) -> Vec<Event> {
    read_chain(store, tenant)
        .await
        .into_iter()
        .map(|r| {
            let Value::Object(payload) =
                serde_json::from_str(r.payload.as_str()).expect("payload JSON")
            else {
                panic!("payload is an object");
            };
            Event {
                seq: r.seq.get(),
                event_id: r.event_id,
                event_type: r.event_type,
                captured_at_us: i64::try_from(r.captured_at_us.unix_micros())
                    .expect("capture time fits"),
                payload,
            }
        })
        .collect()
}

/// Asserts that the stored views of `tenant` equal the naive recomputation from its records.
async fn assert_views_exact(store: &auditex::store::Store, tenant: &TenantId) -> Views {
    let expected = reference::compute(&events_of(store, tenant).await);
    let stored = store.dump_views(tenant).await.expect("dump views");
    assert_eq!(
        stored, expected,
        "the views of {tenant:?} differ from a recomputation"
    );
    stored
}

/// One step of a random stream.
#[derive(Debug, Clone)]
enum Op {
    Decision {
        tenant: usize,
        model: u8,
        version: u8,
        outcome: u8,
        subject: u8,
        mode: u8,
        score: Option<u8>,
    },
    /// A follow-up naming decisions by index into the stream's pre-made decision ids (possibly
    /// another tenant's, or one made later), or unknown ids.
    FollowUp {
        tenant: usize,
        kind: u8,
        targets: Vec<usize>,
    },
    ModelChange {
        tenant: usize,
        model: u8,
        version: u8,
        change: u8,
    },
    Erasure {
        tenant: usize,
        subject: u8,
    },
    /// Let the runner catch up now.
    CatchUp,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..3usize, 0..3u8, 0..2u8, 0..3u8, 0..5u8, 0..4u8, proptest::option::of(0..100u8))
            .prop_map(|(tenant, model, version, outcome, subject, mode, score)| Op::Decision {
                tenant, model, version, outcome, subject, mode, score
            }),
        4 => (0..3usize, 0..5u8, proptest::collection::vec(0..80usize, 1..4))
            .prop_map(|(tenant, kind, targets)| Op::FollowUp { tenant, kind, targets }),
        1 => (0..3usize, 0..3u8, 0..2u8, 0..6u8)
            .prop_map(|(tenant, model, version, change)| Op::ModelChange { tenant, model, version, change }),
        1 => (0..3usize, 0..5u8).prop_map(|(tenant, subject)| Op::Erasure { tenant, subject }),
        1 => Just(Op::CatchUp),
    ]
}

/// The actions of the streams' reviews: some are steps of a four-eyes override, which the
/// decisions and models views do not count as reviews.
const REVIEW_ACTIONS: [&str; 4] = [
    "confirmed",
    "override_proposed",
    "confirmed",
    "override_withdrawn",
];

fn draft(event_type: &str, payload: &Value) -> ClientDraft {
    prepare_client_draft(
        &uuid::Uuid::now_v7().to_string(),
        event_type,
        payload,
        &BTreeMap::new(),
        rand::random,
    )
    .unwrap_or_else(|e| panic!("valid {event_type} draft: {e:?}"))
}

/// Plays a stream: appends every record (a few at a time, as pipelines do) and lets the runner
/// catch up at the stream's `CatchUp` points.
async fn play(store: &auditex::store::Store, tenants: &[TenantId], ops: &[Op]) {
    // Decision ids are made up front so that follow-ups can name decisions that come later, or
    // belong to another tenant; ids past the decisions are never used.
    let ids: Vec<String> = (0..80).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let mut next_decision = 0;
    let outcomes = ["approved", "declined", "referred"];
    let modes = [
        "automated",
        "human_in_the_loop",
        "human_on_the_loop",
        "human_in_command",
    ];
    let changes = [
        "registered",
        "validated",
        "approved",
        "deployed",
        "monitoring_finding",
        "retired",
    ];
    for op in ops {
        let (tenant, draft) = match op {
            Op::CatchUp => {
                // Pages of 5 records read 2 at a time (the first page of a step is one read).
                let paging = runner::Paging {
                    page_records: 5,
                    read_records: 2,
                };
                runner::Runner::new()
                    .with_paging(paging)
                    .catch_up(store)
                    .await
                    .expect("catch up");
                continue;
            }
            Op::Decision {
                tenant,
                model,
                version,
                outcome,
                subject,
                mode,
                score,
            } => {
                let Some(id) = ids.get(next_decision) else {
                    continue;
                };
                next_decision += 1;
                let mut payload = json!({
                    "model_id": format!("model-{model}"),
                    "model_version": format!("1.{version}"),
                    "input_commitment": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                    "outcome": outcomes[usize::from(*outcome)],
                    "subject_ref": format!("subj-{subject}"),
                    "decided_at": "2026-11-29T08:49:27.5Z",
                    "oversight_mode": modes[usize::from(*mode)],
                });
                if let Some(s) = score {
                    payload["score"] = json!(f64::from(*s) / 100.0);
                }
                let d =
                    prepare_client_draft(id, "decision", &payload, &BTreeMap::new(), rand::random)
                        .expect("valid decision");
                (*tenant, d)
            }
            Op::FollowUp {
                tenant,
                kind,
                targets,
            } => {
                let target = |i: usize| ids[i % ids.len()].clone();
                let first = target(targets[0]);
                let d = match kind {
                    0 => draft(
                        "human_review",
                        // Some are steps of a four-eyes override, which are not reviews.
                        &json!({"decision_id": first, "reviewer": format!("rev-{}", targets[0] % 3), "action": REVIEW_ACTIONS[targets[0] % 4], "reason": "checked"}),
                    ),
                    1 => draft(
                        "override",
                        &json!({"decision_id": first, "reviewer": "rev-9", "new_outcome": outcomes[targets[0] % 3], "reason": "policy"}),
                    ),
                    2 => draft(
                        "contest",
                        &json!({"decision_id": first, "statement": "I disagree"}),
                    ),
                    3 => draft(
                        "explanation_request",
                        &json!({"decision_id": first, "requested_by": "subject"}),
                    ),
                    _ => draft(
                        "submission",
                        &json!({"decision_ids": targets.iter().map(|t| target(*t)).collect::<Vec<_>>(), "regulator": "ECB", "reference": "SUB-1"}),
                    ),
                };
                (*tenant, d)
            }
            Op::ModelChange {
                tenant,
                model,
                version,
                change,
            } => (
                *tenant,
                draft(
                    "model_change",
                    &json!({"model_id": format!("model-{model}"), "model_version": format!("1.{version}"), "change": changes[usize::from(*change)], "reference": format!("MRM-{change}")}),
                ),
            ),
            Op::Erasure { tenant, subject } => (
                *tenant,
                draft(
                    "erasure",
                    &json!({"subject_ref": format!("subj-{subject}"), "reason": "GDPR Art. 17"}),
                ),
            ),
        };
        let tenant = &tenants[tenant % tenants.len()];
        store.append(tenant, vec![draft]).await.expect("append");
    }
}

async fn incremental_views_equal_rebuild_and_recomputation(backend: Backend) {
    let cases = if matches!(backend, Backend::Sqlite) {
        16
    } else {
        6
    };
    let mut runner_ = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        // Each case opens a database and plays up to 120 records: unbounded shrinking of a
        // failure could run for many minutes before anything is reported.
        max_shrink_time: 120_000,
        ..Config::default()
    });
    let handle = tokio::runtime::Handle::current();
    let strategy = proptest::collection::vec(op(), 1..120);
    // proptest drives a synchronous closure; each case runs its async body on this runtime
    // from a blocking thread.
    let result = tokio::task::block_in_place(|| {
        runner_.run(&strategy, |ops| {
            handle.block_on(async {
                let db = TestDb::new(&backend).await;
                let store = db.open().await;
                let tenants: Vec<TenantId> = ["bank-a", "bank-b", "bank-c"]
                    .iter()
                    .map(|t| tenant_id(t))
                    .collect();
                for t in &tenants {
                    store.create_tenant(t).await.expect("tenant");
                }
                play(&store, &tenants, &ops).await;
                runner::catch_up(&store).await.expect("catch up");
                let mut incremental = Vec::new();
                for t in &tenants {
                    incremental.push(assert_views_exact(&store, t).await);
                }
                // From scratch: every projection rebuilt into a new generation, in pages of 7
                // records read 3 at a time, so that follow-ups land in the page of their
                // decision, in a later read of it, and in later pages.
                let paging = runner::Paging {
                    page_records: 7,
                    read_records: 3,
                };
                runner::rebuild_paged(&store, &::projections::ALL, paging, &|_, _| {})
                    .await
                    .expect("rebuild");
                for (t, before) in tenants.iter().zip(&incremental) {
                    let rebuilt = store.dump_views(t).await.expect("dump");
                    assert_eq!(&rebuilt, before, "rebuild differs for {t:?}");
                }
                store.shutdown().await;
            });
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// A new projection version is rebuilt into a new generation while the old one keeps serving,
/// then takes over; the old generation's rows are gone.
async fn a_new_generation_takes_over_only_when_caught_up(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("bank-a").await;
    crate::support::append_many(&store, &tenant, 300, 100).await;
    runner::catch_up(&store).await.expect("catch up");
    let before = assert_views_exact(&store, &tenant).await;
    assert_eq!(before.decisions.len(), 300);
    let states = store.states().await.expect("states");
    let decisions = states
        .iter()
        .find(|s| s.name == "decisions")
        .expect("decisions state");
    assert_eq!(decisions.active_generation, 1);

    // Start a rebuild by hand and apply nothing yet: queries still read generation 1.
    let version = ::projections::views::Projection::version(&::projections::views::Decisions);
    let generation = store
        .start_rebuild("decisions", version)
        .await
        .expect("start rebuild");
    assert_eq!(generation, 2);
    assert_eq!(
        crate::support::decisions_served(&store, &tenant).await,
        300,
        "the old generation keeps serving"
    );
    // The runner maintains both and switches when the new one has caught up.
    runner::catch_up(&store).await.expect("catch up");
    let states = store.states().await.expect("states");
    let decisions = states
        .iter()
        .find(|s| s.name == "decisions")
        .expect("decisions state");
    assert_eq!(decisions.active_generation, 2);
    assert_eq!(decisions.building, None);
    assert_eq!(assert_views_exact(&store, &tenant).await, before);
    let positions = store.positions(&tenant).await.expect("positions");
    assert!(
        !positions.contains_key(&("decisions".to_owned(), 1)),
        "the retired generation's position is purged"
    );
    store.shutdown().await;

    // A projection whose stored version differs from the code's (as after an upgrade that
    // bumps it) is rebuilt by the runner on startup, then served.
    let sql = "UPDATE projection_state SET active_version = 0 WHERE name = 'models'";
    if db.is_postgres() {
        let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(db.postgres_app_url())
            .await
            .expect("connect");
        sqlx::query(sql).execute(&mut c).await.expect("update");
    } else {
        // The views have a file of their own beside the ledger's.
        let url = format!("sqlite:{}-views", db.sqlite_path().display());
        let mut c = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
            .await
            .expect("connect");
        sqlx::query(sql).execute(&mut c).await.expect("update");
    }
    let mut config = db.config();
    config.projections_in_background = true;
    let store = auditex::store::Store::open_with_workers(config)
        .await
        .expect("open");
    let models_version = ::projections::views::Projection::version(&::projections::views::Models);
    let models = |states: Vec<::projections::runner::ProjectionState>| {
        states
            .into_iter()
            .find(|s| s.name == "models")
            .expect("models state")
    };
    // (The rebuild of 300 records may already be over here; that it happened shows in the
    // generation number: 2, built beside generation 1.)
    tokio::time::timeout(Duration::from_secs(30), async {
        while models(store.states().await.expect("states")).active_version != models_version {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the rebuilt generation takes over");
    assert_eq!(
        models(store.states().await.expect("states")).active_generation,
        2
    );
    assert_eq!(assert_views_exact(&store, &tenant).await, before);
    store.shutdown().await;
}

/// The runner started with the store follows appends by itself (woken by the appender).
async fn the_background_runner_tails_appends(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let mut config = db.config();
    config.projections_in_background = true;
    config.projection_poll_interval = Duration::from_secs(60);
    let store = auditex::store::Store::open_with_workers(config)
        .await
        .expect("open");
    let tenant = tenant_id("bank-a");
    store.create_tenant(&tenant).await.expect("tenant");
    let mut applied = store.views_runner().applied();
    crate::support::append_many(&store, &tenant, 50, 10).await;
    // The poll interval is a minute: only the appender's wake-ups can bring the views up to date
    // within the deadline.
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let rows = store
                .dump_views(&tenant)
                .await
                .expect("dump")
                .decisions
                .len();
            if rows == 50 {
                break;
            }
            let _ = applied.changed().await;
        }
    })
    .await
    .expect("the views follow the appends");
    assert_views_exact(&store, &tenant).await;
    store.shutdown().await;
}

/// The background runner visits, after its first round, the tenants its own appender woke it
/// for, those behind, and a slice of all tenants in turn: appends made through another node
/// (which wakes only its own runner) still reach this node's views, and so do tenants that
/// appended before it started.
async fn the_background_runner_finds_appends_it_was_not_told_of(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let earlier = tenant_id("bank-early");
    let (other, quiet) = (db.open().await, tenant_id("bank-quiet"));
    other.create_tenant(&earlier).await.expect("tenant");
    crate::support::append_many(&other, &earlier, 20, 10).await;
    let mut config = db.config();
    config.projections_in_background = true;
    config.projection_poll_interval = Duration::from_millis(200);
    let store = auditex::store::Store::open_with_workers(config)
        .await
        .expect("open");
    let busy = tenant_id("bank-busy");
    for t in [&busy, &quiet] {
        store.create_tenant(t).await.expect("tenant");
    }
    crate::support::append_many(&store, &busy, 30, 10).await;
    // Appended through the other node, whose store runs no projections: nothing wakes this
    // node's runner for it.
    crate::support::append_many(&other, &quiet, 40, 10).await;
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let mut rows = Vec::new();
            for t in [&earlier, &busy, &quiet] {
                rows.push(store.dump_views(t).await.expect("dump").decisions.len());
            }
            if rows == [20, 30, 40] {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("every tenant's views catch up");
    for t in [&earlier, &busy, &quiet] {
        assert_views_exact(&store, t).await;
    }
    store.shutdown().await;
    other.shutdown().await;
}

/// Capture-time ranges select exactly the decisions captured in them, at every boundary: the
/// store turns them into sequence ranges, which holds only because capture time never
/// decreases along a chain. Several records share a capture time, other record types sit
/// between decisions, and another tenant's records interleave. Decision-time ranges, which the
/// store reads by their index and sorts, come back complete and in order across pages.
async fn time_ranges_select_exactly_their_decisions(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let clock = crate::support::ManualClock::new();
    let mut config = db.config();
    config.clock = clock.clone();
    let store = auditex::store::Store::open_with_workers(config)
        .await
        .expect("open");
    let (a, b) = (tenant_id("bank-a"), tenant_id("bank-b"));
    for t in [&a, &b] {
        store.create_tenant(t).await.expect("tenant");
    }
    let start = crate::support::ManualClock::START_US;
    let mut times = Vec::new();
    for step in 0..30u64 {
        // Capture times 0, 1000, 1000, 2000, … µs after the start: every third step repeats.
        let at = start + (step - step / 3) * 1000;
        clock.set(at);
        times.push(at);
        let payload = |n: u64| {
            json!({
                "model_id": "m", "model_version": "1",
                "input_commitment": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                "outcome": "approved", "subject_ref": format!("s-{n}"),
                // Decision times out of sequence order (and some repeated).
                "decided_at": format!("2025-12-{:02}T00:00:00Z", 1 + (n * 7) % 23),
                "oversight_mode": "automated",
            })
        };
        let mut batch = vec![draft("decision", &payload(step))];
        if step % 4 == 1 {
            batch.push(draft(
                "model_change",
                &json!({"model_id": "m", "model_version": "1", "change": "validated"}),
            ));
        }
        if step % 5 == 0 {
            batch.push(draft("decision", &payload(step + 100)));
        }
        store.append(&a, batch).await.expect("append");
        store
            .append(&b, vec![draft("decision", &payload(step))])
            .await
            .expect("append");
    }
    runner::catch_up(&store).await.expect("catch up");
    let all = store.dump_views(&a).await.expect("dump").decisions;
    // Every capture time, and one microsecond either side of it.
    let mut bounds: Vec<i64> = Vec::new();
    for t in &times {
        let t = i64::try_from(*t).expect("fits");
        bounds.extend([t - 1, t, t + 1]);
    }
    bounds.sort_unstable();
    bounds.dedup();
    let mut checked = 0;
    for (i, from) in bounds.iter().enumerate().step_by(2) {
        for until in bounds[i..].iter().step_by(3) {
            for (captured_from, captured_until) in [
                (Some(*from), Some(*until)),
                (Some(*from), None),
                (None, Some(*until)),
            ] {
                let query = auditex::store::views::DecisionQuery {
                    captured_from,
                    captured_until,
                    ascending: true,
                    limit: 500,
                    ..Default::default()
                };
                let page = store.search_decisions(&a, &query).await.expect("search");
                let expected: Vec<u64> = all
                    .iter()
                    .filter(|d| captured_from.is_none_or(|f| d.captured_at_us >= f))
                    .filter(|d| captured_until.is_none_or(|u| d.captured_at_us < u))
                    .map(|d| d.seq)
                    .collect();
                let found: Vec<u64> = page.items.iter().map(|d| d.seq).collect();
                assert_eq!(
                    found, expected,
                    "captured {captured_from:?}..{captured_until:?}"
                );
                checked += usize::from(!expected.is_empty());
            }
        }
    }
    assert!(checked > 100, "too few non-empty ranges ({checked})");
    // Decision-time ranges (read by their index and sorted when narrow), in both orders and in
    // small pages: the same decisions, in sequence order, as a filter of the whole view.
    let day =
        |d: i64| i64::try_from(1_764_547_200_000_000u64).expect("fits") + (d - 1) * 86_400_000_000;
    for (from, until) in [(1, 24), (3, 4), (5, 12), (22, 23), (30, 31)] {
        for ascending in [true, false] {
            let mut expected: Vec<u64> = all
                .iter()
                .filter(|d| {
                    d.decided_at_us
                        .is_some_and(|t| t >= day(from) && t < day(until))
                })
                .map(|d| d.seq)
                .collect();
            if !ascending {
                expected.reverse();
            }
            let mut found = Vec::new();
            let mut after = None;
            loop {
                let query = auditex::store::views::DecisionQuery {
                    decided_from: Some(day(from)),
                    decided_until: Some(day(until)),
                    ascending,
                    after,
                    limit: 3,
                    ..Default::default()
                };
                let page = store.search_decisions(&a, &query).await.expect("search");
                found.extend(page.items.iter().map(|d| d.seq));
                match page.next_cursor {
                    Some(c) => after = Some(c.parse().expect("cursor")),
                    None => break,
                }
            }
            assert_eq!(
                found, expected,
                "decided {from}..{until}, ascending {ascending}"
            );
        }
    }
    store.shutdown().await;
}

/// `auditex projections status` killed with SIGKILL while catching up, several times; after a
/// final run the views are exactly right.
async fn a_killed_catch_up_leaves_exact_views(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let env = ProcessEnv::new(&db);
    let store = auditex::store::Store::open_with_workers(env.store_config(&db))
        .await
        .expect("open");
    let tenants = [tenant_id("bank-a"), tenant_id("bank-b")];
    for t in &tenants {
        store.create_tenant(t).await.expect("tenant");
        crate::support::append_many(&store, t, 12_000, 500).await;
    }
    store.shutdown().await;
    let total: u64 = 24_000;
    let mut interrupted = 0;
    // One store handle watches the positions while the processes run (it never writes views:
    // its runner is off).
    let watcher = auditex::store::Store::open_with_workers(env.store_config(&db))
        .await
        .expect("reopen");
    let applied_now = || async {
        let mut applied = 0;
        for t in &tenants {
            applied += watcher
                .positions(t)
                .await
                .expect("positions")
                .iter()
                .filter(|((name, _), _)| name == "decisions")
                .map(|(_, next)| *next)
                .sum::<u64>();
        }
        applied
    };
    for _round in 0..4 {
        let before = applied_now().await;
        let mut child = env
            .command(&["projections", "status"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn auditex");
        // Kill as soon as a page has committed (or the process has finished): the kill then
        // lands in the middle of the catch-up, whatever the machine's speed.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while applied_now().await == before
            && child.try_wait().ok().flatten().is_none()
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // SIGKILL: no destructor, no rollback on our side; the database sees a dropped
        // connection mid-transaction.
        let _ = child.kill();
        let _ = child.wait();
        // Count the rounds that really were cut off mid-way (neither nothing nor everything
        // applied), so the test cannot pass without a crash during catch-up.
        let applied = applied_now().await;
        if applied > 0 && applied < total {
            interrupted += 1;
        }
    }
    watcher.shutdown().await;
    assert!(
        interrupted > 0,
        "no SIGKILL landed during catch-up; the timing needs adjusting"
    );
    let status = env
        .command(&["projections", "status"])
        .output()
        .expect("run auditex");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let store = auditex::store::Store::open_with_workers(env.store_config(&db))
        .await
        .expect("reopen");
    for t in &tenants {
        let views = assert_views_exact(&store, t).await;
        assert_eq!(views.decisions.len(), 12_000);
    }
    store.shutdown().await;
}

/// A decision draft of `subject`.
pub(crate) fn decision_of(subject: &str) -> ClientDraft {
    let mut payload = crate::support::decision_payload("approved");
    payload["subject_ref"] = json!(subject);
    draft("decision", &payload)
}

/// Makes the decisions view refuse any row whose subject is `poison`, as the schema owner: a
/// record that one projection cannot apply (the edge refuses the NUL that did this in the field).
/// `false` drops the trigger again (the cause removed).
pub(crate) async fn poison_decisions_view(db: &TestDb, on: bool) {
    use sqlx::Connection;
    if db.is_postgres() {
        let mut c = sqlx::PgConnection::connect(db.postgres_owner_url())
            .await
            .expect("owner connects");
        let statements: &[&'static str] = if on {
            &[
                "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.subject_ref = 'poison' THEN RAISE EXCEPTION 'poisoned row'; END IF; RETURN NEW; END $$",
                "CREATE TRIGGER poison BEFORE INSERT ON proj_decisions FOR EACH ROW EXECUTE FUNCTION poison()",
            ]
        } else {
            &["DROP TRIGGER poison ON proj_decisions"]
        };
        for sql in statements {
            sqlx::query(*sql).execute(&mut c).await.expect("owner DDL");
        }
    } else {
        let url = format!("sqlite://{}-views", db.sqlite_path().display());
        let mut c = sqlx::SqliteConnection::connect(&url)
            .await
            .expect("sqlite connects");
        let sql = if on {
            "CREATE TRIGGER poison BEFORE INSERT ON proj_decisions WHEN NEW.subject_ref = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned row'); END"
        } else {
            "DROP TRIGGER poison"
        };
        sqlx::query(sql).execute(&mut c).await.expect("DDL");
    }
}

/// A record that the decisions projection cannot apply in tenant A stops that projection for
/// A only: B's views stay current, A's other projections keep up, A's lag keeps growing in the
/// runner's status (what /metrics and /readyz show), and retrying after the cause is removed
/// brings A's view up to date exactly.
async fn a_record_a_projection_cannot_apply_stops_it_for_that_tenant_only(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let store = db.open().await;
    let (a, b) = (tenant_id("bank-a"), tenant_id("bank-b"));
    for t in [&a, &b] {
        store.create_tenant(t).await.expect("tenant");
    }
    poison_decisions_view(&db, true).await;
    store
        .append(&a, vec![decision_of("s-1")])
        .await
        .expect("append");
    let poisoned = store
        .append(&a, vec![decision_of("poison")])
        .await
        .expect("append");
    let poisoned_seq = poisoned[0].seq;
    store
        .append(&a, vec![decision_of("s-3"), decision_of("s-4")])
        .await
        .expect("append");
    crate::support::append_many(&store, &b, 5, 2).await;
    let runner = store.views_runner().clone();
    runner
        .catch_up(&store)
        .await
        .expect("a stuck projection is no outage");

    assert_eq!(crate::support::decisions_served(&store, &b).await, 5);
    assert_views_exact(&store, &b).await;
    let views_a = store.dump_views(&a).await.expect("dump");
    assert_eq!(
        views_a.decisions.len(),
        1,
        "A's decisions stop before the poison"
    );
    assert_eq!(views_a.subjects.len(), 4, "A's other projections keep up");
    let stuck = store.stuck_projections(None).await.expect("stuck");
    assert_eq!(stuck.len(), 1, "{stuck:?}");
    assert_eq!(
        (
            stuck[0].tenant.as_str(),
            stuck[0].name.as_str(),
            stuck[0].seq
        ),
        (a.as_str(), "decisions", poisoned_seq)
    );
    assert!(
        stuck[0].error.contains("poisoned row"),
        "{}",
        stuck[0].error
    );

    // More records: B follows, A's lag grows, also as a fresh runner (a restart) sees it.
    store
        .append(&a, vec![decision_of("s-5")])
        .await
        .expect("append");
    crate::support::append_many(&store, &b, 2, 2).await;
    let restarted = ::projections::runner::Runner::new();
    restarted.catch_up(&store).await.expect("catch up");
    assert_eq!(crate::support::decisions_served(&store, &b).await, 7);
    let status = restarted.status();
    let decisions = status
        .iter()
        .find(|s| s.name == "decisions")
        .expect("decisions status");
    assert_eq!(
        decisions.lag.records, 4,
        "A's four records from the poison on"
    );
    assert_eq!(decisions.stuck.len(), 1);
    assert_eq!(decisions.stuck[0].records, 4);
    assert!(decisions.lag.seconds >= 0.0);
    assert!(
        status
            .iter()
            .filter(|s| s.name != "decisions")
            .all(|s| s.lag.records == 0 && s.stuck.is_empty())
    );

    // Retrying while the cause remains marks it stuck again; once removed, it catches up.
    assert_eq!(store.clear_stuck(Some(&a), None).await.expect("clear"), 1);
    restarted.catch_up(&store).await.expect("catch up");
    assert_eq!(
        store
            .stuck_projections(Some(&a))
            .await
            .expect("stuck")
            .len(),
        1
    );
    poison_decisions_view(&db, false).await;
    assert_eq!(
        store
            .clear_stuck(None, Some("decisions"))
            .await
            .expect("clear"),
        1
    );
    restarted.catch_up(&store).await.expect("catch up");
    assert!(
        store
            .stuck_projections(None)
            .await
            .expect("stuck")
            .is_empty()
    );
    assert_views_exact(&store, &a).await;
    assert_eq!(crate::support::decisions_served(&store, &a).await, 5);
    store.shutdown().await;
}

/// A fold that panics on a record of tenant A (a defect in a projection's code) is contained:
/// the runner survives, marks that projection stuck at that record for A only, names the panic,
/// and every other projection of A and every projection of B keep up. Once the defect is gone,
/// a retry brings A's view up to date exactly.
async fn a_fold_that_panics_stops_that_projection_for_that_tenant_only(backend: Backend) {
    fold_panic_is_contained(backend, 1).await;
}

/// The same with 100 records before the defect: a read that large is folded on the blocking
/// pool rather than on the runner's task, and its panic is contained all the same.
async fn a_fold_that_panics_on_the_blocking_pool_is_contained_too(backend: Backend) {
    fold_panic_is_contained(backend, 100).await;
}

/// A's chain: `before` decisions of subjects of their own, the one whose fold panics, and one
/// more.
async fn fold_panic_is_contained(backend: Backend, before: usize) {
    use ::projections::runner::test_faults;
    let db = TestDb::new(&backend).await;
    let store = db.open().await;
    let (a, b) = (tenant_id("bank-a"), tenant_id("bank-b"));
    for t in [&a, &b] {
        store.create_tenant(t).await.expect("tenant");
    }
    // A subject of this test's own: other tests running at once fold normally.
    let defect = format!("panics-{}", crate::support::new_event_id());
    test_faults::panic_on_subject("decisions", &defect);
    store
        .append(
            &a,
            (0..before)
                .map(|i| decision_of(&format!("s-{i}")))
                .collect(),
        )
        .await
        .expect("append");
    let panicking = store
        .append(&a, vec![decision_of(&defect)])
        .await
        .expect("append");
    let panicking_seq = panicking[0].seq;
    store
        .append(&a, vec![decision_of("s-after")])
        .await
        .expect("append");
    crate::support::append_many(&store, &b, 5, 2).await;
    let runner = store.views_runner().clone();
    runner
        .catch_up(&store)
        .await
        .expect("a panicking fold is no outage");

    assert_eq!(crate::support::decisions_served(&store, &b).await, 5);
    assert_views_exact(&store, &b).await;
    let views_a = store.dump_views(&a).await.expect("dump");
    assert_eq!(
        views_a.decisions.len(),
        before,
        "A's decisions stop before the record whose fold panics"
    );
    assert_eq!(
        views_a.subjects.len(),
        before + 2,
        "A's other projections keep up"
    );
    let stuck = store.stuck_projections(None).await.expect("stuck");
    assert_eq!(stuck.len(), 1, "{stuck:?}");
    assert_eq!(
        (
            stuck[0].tenant.as_str(),
            stuck[0].name.as_str(),
            stuck[0].seq
        ),
        (a.as_str(), "decisions", panicking_seq)
    );
    assert!(
        stuck[0].error.contains(&format!(
            "projection decisions panicked folding record {panicking_seq}"
        )),
        "{}",
        stuck[0].error
    );
    let status = runner.status();
    let decisions = status
        .iter()
        .find(|s| s.name == "decisions")
        .expect("decisions status");
    assert_eq!(decisions.lag.records, 2, "A's records from the panic on");
    assert_eq!(decisions.stuck.len(), 1);

    // B keeps following in later rounds; the runner did not stop.
    crate::support::append_many(&store, &b, 2, 2).await;
    runner.catch_up(&store).await.expect("catch up");
    assert_eq!(crate::support::decisions_served(&store, &b).await, 7);

    test_faults::clear_subject(&defect);
    assert_eq!(store.clear_stuck(Some(&a), None).await.expect("clear"), 1);
    runner.catch_up(&store).await.expect("catch up");
    assert!(
        store
            .stuck_projections(None)
            .await
            .expect("stuck")
            .is_empty()
    );
    assert_views_exact(&store, &a).await;
    assert_eq!(
        crate::support::decisions_served(&store, &a).await,
        before + 2
    );
    store.shutdown().await;
}

/// Asserts that `tenant` has no view positions and that the decisions view answers "not built
/// yet" rather than any row.
async fn assert_views_emptied(store: &auditex::store::Store, tenant: &TenantId, why: &str) {
    assert!(
        store.positions(tenant).await.expect("positions").is_empty(),
        "{why}: no positions"
    );
    let query = auditex::store::views::DecisionQuery::default();
    assert!(
        matches!(
            store.search_decisions(tenant, &query).await,
            Err(auditex::store::StoreError::ViewNotReady(_))
        ),
        "{why}: the decisions view is not served"
    );
}

/// Opens `db` again and asserts that the views of `tenant` were emptied (`why`), then that they
/// are rebuilt from the ledger: `decisions` served, equal to a recomputation.
async fn reopened_views_are_rebuilt(
    db: &TestDb,
    tenant: &TenantId,
    why: &str,
    decisions: usize,
) -> auditex::store::Store {
    let store = db.open().await;
    assert_views_emptied(&store, tenant, why).await;
    runner::catch_up(&store).await.expect("catch up");
    assert_eq!(
        crate::support::decisions_served(&store, tenant).await,
        decisions
    );
    assert_views_exact(&store, tenant).await;
    store
}

/// The embedded backend keeps the views in a file of their own beside the ledger's
/// (`<database>-views`). Views that are ahead of the ledger beside them (an older copy of the
/// ledger restored), that were built from another history of it (the older copy appended to,
/// then a newer copy restored over it) or from another database (a views file copied in) are
/// emptied when the store opens and rebuilt from the ledger: they never serve records the ledger
/// does not hold. Views that match their ledger are kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_views_not_built_from_the_ledger_beside_them_are_rebuilt() {
    let db = TestDb::new(&Backend::Sqlite).await;
    let ledger = db.sqlite_path().to_owned();
    let views = std::path::PathBuf::from(format!("{}-views", ledger.display()));
    let older = ledger.with_file_name("older.db");
    let newer = ledger.with_file_name("newer.db");
    let (store, tenant) = db.open_with_tenant("bank-a").await;
    crate::support::append_many(&store, &tenant, 40, 20).await;
    store.backup(&older).await.expect("backup of 40 records");
    crate::support::append_many(&store, &tenant, 60, 20).await;
    store.backup(&newer).await.expect("backup of 100 records");
    runner::catch_up(&store).await.expect("catch up");
    assert_eq!(crate::support::decisions_served(&store, &tenant).await, 100);
    store.shutdown().await;
    assert!(views.is_file(), "the views have a file of their own");

    drop(store);

    // The same ledger, opened again: its views are kept (nothing left to catch up).
    let store = db.open().await;
    assert_eq!(crate::support::decisions_served(&store, &tenant).await, 100);
    store.shutdown().await;
    drop(store);

    // The older copy restored in place of the ledger: the views (100 records) are ahead of it.
    auditex::store::backup::restore_sqlite(&older, &db.config(), true)
        .await
        .expect("the older copy is restored");
    let store =
        reopened_views_are_rebuilt(&db, &tenant, "views ahead of the ledger are not served", 40)
            .await;

    // Appended to (another history from record 40 on), then the newer copy restored over it:
    // the views (60 records) are behind the restored ledger (100), but of the other history.
    crate::support::append_many(&store, &tenant, 20, 20).await;
    runner::catch_up(&store).await.expect("catch up");
    assert_eq!(crate::support::decisions_served(&store, &tenant).await, 60);
    store.shutdown().await;
    drop(store);
    auditex::store::backup::restore_sqlite(&newer, &db.config(), true)
        .await
        .expect("the newer copy is restored");
    let store =
        reopened_views_are_rebuilt(&db, &tenant, "views of another history are not served", 100)
            .await;
    store.shutdown().await;

    // Another database's views file, of a tenant of the same name with fewer records (so that
    // only the hash of the last record the views applied tells them apart).
    let other = TestDb::new(&Backend::Sqlite).await;
    let (other_store, other_tenant) = other.open_with_tenant("bank-a").await;
    crate::support::append_many(&other_store, &other_tenant, 30, 15).await;
    runner::catch_up(&other_store).await.expect("catch up");
    other_store.shutdown().await;
    drop(other_store);
    drop(store);
    // Copied under new names and renamed into place, as a file copy by an operator would be
    // (the closed stores' connections may still hold the old files).
    let other_views = format!("{}-views", other.sqlite_path().display());
    for suffix in ["", "-wal", "-shm"] {
        let target = format!("{}{suffix}", views.display());
        let _ = std::fs::remove_file(&target);
        if let Ok(bytes) = std::fs::read(format!("{other_views}{suffix}")) {
            let temp = format!("{target}.copy");
            std::fs::write(&temp, bytes).expect("copy");
            std::fs::rename(&temp, &target).expect("rename");
        }
    }
    let store =
        reopened_views_are_rebuilt(&db, &tenant, "another ledger's views are not served", 100)
            .await;
    store.shutdown().await;
}

backend_tests!(
    a_fold_that_panics_stops_that_projection_for_that_tenant_only,
    a_fold_that_panics_on_the_blocking_pool_is_contained_too,
    a_record_a_projection_cannot_apply_stops_it_for_that_tenant_only,
    incremental_views_equal_rebuild_and_recomputation,
    time_ranges_select_exactly_their_decisions,
    a_new_generation_takes_over_only_when_caught_up,
    the_background_runner_tails_appends,
    a_killed_catch_up_leaves_exact_views,
);

crate::support::postgres_tests!(the_background_runner_finds_appends_it_was_not_told_of);
