//! The aggregates behind the portal's charts (`Store::dashboard_charts`, `Store::model_charts`)
//! on both backends: exact counts per day, outcome and model version over a window of days,
//! approvals by the documented outcome words (without regard to case), overrides on the day
//! they were recorded and on the day of the decision they changed, score bins with their edges,
//! the caps on outcomes and model versions with the count of the rest, days outside the window
//! left out, and another tenant's records never counted.

use std::collections::BTreeMap;

use auditex::store::Store;
use auditex::store::views::{ChartWindow, DAY_US, OutcomeMix, SCORE_BINS};
use ledger::draft::{ClientDraft, prepare_client_draft};
use ledger::types::TenantId;
use serde_json::{Value, json};

use crate::support::{Backend, ManualClock, TestDb, backend_tests, tenant_id};

backend_tests!(
    chart_aggregates_count_each_day_outcome_and_model_version_of_the_window_exactly,
    an_unknown_model_version_and_an_empty_window_give_zeros_and_no_score_bins,
);

fn draft(event_type: &str, id: &str, payload: &Value) -> ClientDraft {
    prepare_client_draft(id, event_type, payload, &BTreeMap::new(), rand::random)
        .unwrap_or_else(|e| panic!("valid {event_type} draft: {e:?}"))
}

/// A decision of `model` `version` with `outcome` and maybe a score; returns its id too.
fn decision(
    model: &str,
    version: &str,
    outcome: &str,
    score: Option<f64>,
) -> (String, ClientDraft) {
    let id = uuid::Uuid::now_v7().to_string();
    let mut payload = json!({
        "model_id": model,
        "model_version": version,
        "input_commitment": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "outcome": outcome,
        "subject_ref": format!("s-{id}"),
        "decided_at": "2026-01-01T00:00:00Z",
        "oversight_mode": "human_on_the_loop",
    });
    if let Some(s) = score {
        payload["score"] = json!(s);
    }
    let d = draft("decision", &id, &payload);
    (id, d)
}

fn drafts(list: Vec<(String, ClientDraft)>) -> Vec<ClientDraft> {
    list.into_iter().map(|(_, d)| d).collect()
}

/// The per-day values of the series of `outcome` (`None`: the rest summed).
fn series<'a>(mix: &'a OutcomeMix, outcome: Option<&str>) -> &'a [u64] {
    &mix.series
        .iter()
        .find(|s| s.outcome.as_deref() == outcome)
        .unwrap_or_else(|| panic!("a series for {outcome:?} in {mix:?}"))
        .per_day
}

/// A per-day vector of `days` zeros with the given values at the given positions.
fn days(days: usize, values: &[(usize, u64)]) -> Vec<u64> {
    let mut out = vec![0; days];
    for (i, v) in values {
        out[*i] = *v;
    }
    out
}

async fn open(db: &TestDb, clock: &std::sync::Arc<ManualClock>) -> Store {
    let mut config = db.config();
    config.clock = clock.clone();
    Store::open_with_workers(config).await.expect("open")
}

/// The start of day `n` counted from the manual clock's start (2026-01-01), plus an hour.
fn day(n: i64) -> u64 {
    let start = i64::try_from(ManualClock::START_US).expect("fits");
    u64::try_from(start + n * DAY_US + 3_600_000_000).expect("after the epoch")
}

/// Day -40: one decision (outside a 30-day window, inside a 90-day one). Day 0: credit 1 decides
/// approved ×3 (scores .15, .5, .9) and declined ×1 (score 1.0); limit 1 decides `APPROVED`
/// without a score. Day 1: credit 1 decides approved (score .55) and referred ×2 without a score,
/// and one of day 0's decisions is overridden. Day 2: fraud 1 decides nine outcomes o0…o8 once
/// each, and m4…m8 decide approved once each. Another tenant decides the same models meanwhile.
async fn chart_aggregates_count_each_day_outcome_and_model_version_of_the_window_exactly(
    backend: Backend,
) {
    let db = TestDb::new(&backend).await;
    let clock = ManualClock::new();
    clock.set(day(-40));
    let store = open(&db, &clock).await;
    let (a, b): (TenantId, TenantId) = (tenant_id("bank-a"), tenant_id("bank-b"));
    for t in [&a, &b] {
        store.create_tenant(t).await.expect("tenant");
    }
    store
        .append(
            &a,
            drafts(vec![decision("credit", "1", "approved", Some(0.3))]),
        )
        .await
        .expect("append");
    clock.set(day(0));
    let day0 = vec![
        decision("credit", "1", "approved", Some(0.15)),
        decision("credit", "1", "approved", Some(0.5)),
        decision("credit", "1", "approved", Some(0.9)),
        decision("credit", "1", "declined", Some(1.0)),
        decision("limit", "1", "APPROVED", None),
    ];
    let overridden = day0[0].0.clone();
    store.append(&a, drafts(day0)).await.expect("append");
    store
        .append(
            &b,
            drafts(vec![
                decision("credit", "1", "declined", Some(0.2)),
                decision("credit", "1", "declined", Some(0.2)),
            ]),
        )
        .await
        .expect("append");
    clock.set(day(1));
    let mut day1 = drafts(vec![
        decision("credit", "1", "approved", Some(0.55)),
        decision("credit", "1", "referred", None),
        decision("credit", "1", "referred", None),
    ]);
    day1.push(draft(
        "override",
        &uuid::Uuid::now_v7().to_string(),
        &json!({"decision_id": overridden, "reviewer": "supervisor-3", "new_outcome": "declined",
                "reason": "Income not verified"}),
    ));
    store.append(&a, day1).await.expect("append");
    clock.set(day(2));
    let mut day2: Vec<(String, ClientDraft)> = (0..9)
        .map(|i| decision("fraud", "1", &format!("o{i}"), Some(0.5)))
        .collect();
    for m in 4..=8 {
        day2.push(decision(&format!("m{m}"), "1", "approved", None));
    }
    store.append(&a, drafts(day2)).await.expect("append");
    ::projections::runner::catch_up(&store)
        .await
        .expect("catch up");

    let now = i64::try_from(day(2)).expect("fits");
    let w30 = ChartWindow::ending_at(now, 30);
    let (d0, d1, d2) = (27, 28, 29);
    let dash = store.dashboard_charts(&a, &w30).await.expect("dashboard");
    assert_eq!(dash.window, w30);
    // Seven outcomes by name, most frequent first (ties by name), and the six others summed.
    let names: Vec<Option<&str>> = dash
        .outcomes
        .series
        .iter()
        .map(|s| s.outcome.as_deref())
        .collect();
    assert_eq!(
        names,
        vec![
            Some("approved"),
            Some("referred"),
            Some("APPROVED"),
            Some("declined"),
            Some("o0"),
            Some("o1"),
            Some("o2"),
            None
        ]
    );
    assert_eq!(dash.outcomes.others, 6);
    assert_eq!(
        series(&dash.outcomes, Some("approved")),
        days(30, &[(d0, 3), (d1, 1), (d2, 5)])
    );
    assert_eq!(
        series(&dash.outcomes, Some("referred")),
        days(30, &[(d1, 2)])
    );
    assert_eq!(
        series(&dash.outcomes, Some("declined")),
        days(30, &[(d0, 1)])
    );
    assert_eq!(series(&dash.outcomes, None), days(30, &[(d2, 6)]));
    // Six busiest versions, two more counted; approvals by word, without regard to case.
    let versions: Vec<(&str, &[u64], &[u64])> = dash
        .versions
        .iter()
        .map(|v| (v.model_id.as_str(), &v.decisions[..], &v.approvals[..]))
        .collect();
    assert_eq!(versions.len(), 6);
    assert_eq!(dash.versions_more, 2);
    assert_eq!(
        versions.iter().map(|v| v.0).collect::<Vec<_>>(),
        vec!["fraud", "credit", "limit", "m4", "m5", "m6"]
    );
    assert_eq!(versions[0].1, &days(30, &[(d2, 9)])[..]);
    assert_eq!(versions[0].2, &days(30, &[])[..]);
    assert_eq!(versions[1].1, &days(30, &[(d0, 4), (d1, 3)])[..]);
    assert_eq!(versions[1].2, &days(30, &[(d0, 3), (d1, 1)])[..]);
    assert_eq!(
        versions[2].2,
        &days(30, &[(d0, 1)])[..],
        "APPROVED is an approval"
    );
    assert_eq!(dash.overrides, days(30, &[(d1, 1)]));

    // Ninety days reach the decision of day -40.
    let w90 = ChartWindow::ending_at(now, 90);
    let dash90 = store.dashboard_charts(&a, &w90).await.expect("dashboard");
    assert_eq!(
        series(&dash90.outcomes, Some("approved")),
        days(90, &[(47, 1), (87, 3), (88, 1), (89, 5)])
    );

    // The credit model's page: its own outcomes, the day-0 decision overridden on day 1 counts
    // on day 0, and five scores in twentieths of 0..1 (1.0 in the last bin), two unscored.
    let model = store
        .model_charts(&a, "credit", "1", &w30)
        .await
        .expect("model charts");
    assert_eq!(model.decisions, days(30, &[(d0, 4), (d1, 3)]));
    assert_eq!(model.overridden, days(30, &[(d0, 1)]));
    assert_eq!(
        model
            .outcomes
            .series
            .iter()
            .map(|s| s.outcome.as_deref())
            .collect::<Vec<_>>(),
        vec![Some("approved"), Some("referred"), Some("declined")]
    );
    assert_eq!(model.outcomes.others, 0);
    assert_eq!((model.scores.low, model.scores.high), (0.0, 1.0));
    assert_eq!(model.scores.bins.len(), SCORE_BINS);
    let mut bins = vec![0; SCORE_BINS];
    for b in [3, 10, 11, 18, 19] {
        bins[b] = 1;
    }
    assert_eq!(model.scores.bins, bins);
    assert_eq!(model.scores.unscored, 2);

    // The other tenant sees only its own two decisions.
    let other = store.dashboard_charts(&b, &w30).await.expect("dashboard");
    assert_eq!(
        other
            .outcomes
            .series
            .iter()
            .map(|s| s.outcome.as_deref())
            .collect::<Vec<_>>(),
        vec![Some("declined")]
    );
    assert_eq!(
        series(&other.outcomes, Some("declined")),
        days(30, &[(d0, 2)])
    );
    assert_eq!(other.versions.len(), 1);
    assert_eq!(other.overrides, days(30, &[]));
    let other_model = store
        .model_charts(&b, "credit", "1", &w30)
        .await
        .expect("model charts");
    assert_eq!(other_model.decisions, days(30, &[(d0, 2)]));
    assert_eq!(other_model.scores.bins.iter().sum::<u64>(), 2);
    store.shutdown().await;
}

/// Scores outside 0..1 get their own extent; a model version without decisions, and a tenant
/// without any, get zeros, no bins and no series rather than an error.
async fn an_unknown_model_version_and_an_empty_window_give_zeros_and_no_score_bins(
    backend: Backend,
) {
    let db = TestDb::new(&backend).await;
    let clock = ManualClock::new();
    let store = open(&db, &clock).await;
    let (a, empty) = (tenant_id("bank-a"), tenant_id("bank-empty"));
    for t in [&a, &empty] {
        store.create_tenant(t).await.expect("tenant");
    }
    store
        .append(
            &a,
            drafts(vec![
                decision("rating", "7", "A", Some(300.0)),
                decision("rating", "7", "B", Some(850.0)),
            ]),
        )
        .await
        .expect("append");
    ::projections::runner::catch_up(&store)
        .await
        .expect("catch up");
    let now = i64::try_from(ManualClock::START_US).expect("fits");
    let w = ChartWindow::ending_at(now, 30);
    let rating = store
        .model_charts(&a, "rating", "7", &w)
        .await
        .expect("model charts");
    assert_eq!((rating.scores.low, rating.scores.high), (300.0, 850.0));
    assert_eq!(rating.scores.bins.first(), Some(&1));
    assert_eq!(rating.scores.bins.last(), Some(&1));
    // Neither outcome is an approval word.
    let dash = store.dashboard_charts(&a, &w).await.expect("dashboard");
    assert_eq!(dash.versions[0].approvals, vec![0; 30]);

    let unknown = store
        .model_charts(&a, "rating", "8", &w)
        .await
        .expect("model charts");
    assert_eq!(unknown.decisions, vec![0; 30]);
    assert!(unknown.outcomes.series.is_empty());
    assert!(unknown.scores.bins.is_empty());
    assert_eq!(unknown.scores.unscored, 0);
    let nothing = store.dashboard_charts(&empty, &w).await.expect("dashboard");
    assert!(nothing.outcomes.series.is_empty());
    assert!(nothing.versions.is_empty());
    assert_eq!(nothing.versions_more, 0);
    assert_eq!(nothing.overrides, vec![0; 30]);
    store.shutdown().await;
}
