//! Legal holds and retention on the store: a hold stops every erasure that would reach what it
//! holds (requests, pipeline-appended erasure records, retention), in chain order; lifting it
//! lets them through; retention erases exactly what has outlived its rule; a policy under six
//! months for decisions needs an override recorded in the ledger.

use std::collections::BTreeMap;
use std::sync::Arc;

use auditex::store::holds::{HoldError, PlaceHold};
use auditex::store::retention::{RetentionError, RetentionRule};
use auditex::store::subjects::{ErasureError, SubjectErasure};
use auditex::store::{AppendError, Store, StoreError};
use ledger::draft::{ClientDraft, prepare_client_draft};
use ledger::record::{EventType, FieldName};
use ledger::types::{EventId, TenantId};
use serde_json::{Value, json};

use crate::support::{
    Backend, ManualClock, TestDb, backend_tests, decision_payload, new_event_id, postgres_tests,
    read_chain, seq,
};

backend_tests!(
    a_held_subject_is_not_erased_and_its_values_stay_readable_until_the_hold_is_lifted,
    a_hold_on_one_decision_refuses_only_erasures_that_reach_that_decision,
    a_pipeline_erasure_of_a_held_subject_is_refused_and_nothing_of_its_batch_is_appended,
    holds_and_erasures_in_one_group_are_screened_in_chain_order,
    a_lift_names_an_active_hold_of_the_subject_and_lifting_again_answers_the_first_lift,
    placing_a_hold_checks_subject_decision_and_text_and_appends_nothing_when_refused,
    retention_erases_exactly_the_expired_values_and_skips_held_subjects_and_decisions,
    a_retention_backlog_is_erased_in_batches_and_the_young_records_are_left,
    retention_erases_the_values_of_the_first_record_of_the_chain,
    a_policy_under_six_months_for_decisions_needs_an_override_recorded_in_the_ledger,
    the_retention_scheduler_erases_expired_values_in_the_background_and_stops_with_the_store,
);

postgres_tests!(
    a_hold_placed_through_another_instance_refuses_this_instances_erasures_and_its_lift_frees_them,
    a_hold_committed_by_another_instance_after_screening_refuses_the_erasure_in_its_transaction,
);

const DAY_US: u64 = 86_400_000_000;

fn name() -> FieldName {
    FieldName::parse("name").expect("field name")
}

/// A decision about `subject` with an erasable `name`.
fn decision_of(subject: &str, model: &str, event_id: &str) -> ClientDraft {
    let mut payload = decision_payload("approved");
    payload["subject_ref"] = json!(subject);
    payload["model_id"] = json!(model);
    let fields = BTreeMap::from([("name".to_owned(), json!(format!("name of {subject}")))]);
    prepare_client_draft(event_id, "decision", &payload, &fields, rand::random)
        .unwrap_or_else(|e| panic!("valid decision: {e:?}"))
}

/// A decision about `subject` with two erasable fields, `name` and `email`.
fn decision_with_two_values(subject: &str) -> ClientDraft {
    let mut payload = decision_payload("approved");
    payload["subject_ref"] = json!(subject);
    let fields = BTreeMap::from([
        ("name".to_owned(), json!("Lena L.")),
        ("email".to_owned(), json!("lena@example.com")),
    ]);
    prepare_client_draft(&new_event_id(), "decision", &payload, &fields, rand::random)
        .unwrap_or_else(|e| panic!("valid decision: {e:?}"))
}

/// A follow-up (a contest) of decision `decision_id` with an erasable `name`.
fn contest_of(decision_id: &str) -> ClientDraft {
    let fields = BTreeMap::from([("name".to_owned(), json!("contesting person"))]);
    prepare_client_draft(
        &new_event_id(),
        "contest",
        &json!({"decision_id": decision_id, "statement": "I disagree"}),
        &fields,
        rand::random,
    )
    .unwrap_or_else(|e| panic!("valid contest: {e:?}"))
}

fn client(event_type: &str, payload: Value) -> ClientDraft {
    prepare_client_draft(
        &new_event_id(),
        event_type,
        &payload,
        &BTreeMap::new(),
        rand::random,
    )
    .unwrap_or_else(|e| panic!("valid {event_type}: {e:?}"))
}

fn whole(subject: &str) -> SubjectErasure {
    SubjectErasure {
        subject_ref: subject.to_owned(),
        event_ids: None,
        fields: None,
        reason: "the person asked".into(),
        legal_basis: "GDPR Art. 17(1)(a)".into(),
    }
}

fn hold(subject: &str, decision: Option<&str>) -> PlaceHold {
    PlaceHold {
        subject_ref: subject.to_owned(),
        decision_id: decision.map(|d| EventId::parse(d).expect("event id")),
        reason: "litigation".into(),
        reference: Some("case 2026-17".into()),
    }
}

/// Appends drafts one request each, returning the sequence numbers.
async fn append_each(store: &Store, tenant: &TenantId, drafts: Vec<ClientDraft>) -> Vec<u64> {
    let mut out = Vec::new();
    for d in drafts {
        out.push(store.append(tenant, vec![d]).await.expect("append")[0].seq);
    }
    out
}

async fn readable(store: &Store, tenant: &TenantId, at: u64) -> bool {
    store
        .erasable_values(tenant, seq(at))
        .await
        .expect("values")
        .contains_key(&name())
}

async fn a_held_subject_is_not_erased_and_its_values_stay_readable_until_the_hold_is_lifted(
    backend: Backend,
) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("acme").await;
    let seqs = append_each(
        &store,
        &tenant,
        vec![
            decision_of("alice", "credit", &new_event_id()),
            decision_of("alice", "credit", &new_event_id()),
        ],
    )
    .await;
    let placed = store
        .place_hold(&tenant, hold("alice", None))
        .await
        .expect("hold placed");
    let size = store.tree_size(&tenant).await.expect("size").get();

    match store.erase_subject(&tenant, whole("alice")).await {
        Err(ErasureError::Held { hold_seq, reason }) => {
            assert_eq!(hold_seq, placed.seq);
            assert_eq!(reason, "litigation");
        }
        other => panic!("expected Held, got {other:?}"),
    }
    assert_eq!(store.tree_size(&tenant).await.expect("size").get(), size);
    for s in &seqs {
        assert!(
            readable(&store, &tenant, *s).await,
            "value {s} still readable"
        );
    }
    let holds = store.legal_holds(&tenant, "alice").await.expect("holds");
    assert_eq!(holds.len(), 1);
    assert!(holds[0].is_active());
    assert_eq!(holds[0].reference.as_deref(), Some("case 2026-17"));

    let lift = store
        .lift_hold(&tenant, "alice", placed.seq, "case closed")
        .await
        .expect("lifted");
    assert!(!lift.duplicate);
    let outcome = store
        .erase_subject(&tenant, whole("alice"))
        .await
        .expect("erased once lifted");
    assert_eq!(outcome.erased, 2);
    for s in &seqs {
        assert!(!readable(&store, &tenant, *s).await, "value {s} erased");
    }
    let holds = store.legal_holds(&tenant, "alice").await.expect("holds");
    assert_eq!(holds[0].lifted_seq, Some(lift.seq));
    assert_eq!(holds[0].lifted_reason.as_deref(), Some("case closed"));
    // Both hold records are in the chain, signed like any other.
    let chain = read_chain(&store, &tenant).await;
    let kinds: Vec<EventType> = chain.iter().map(|r| r.event_type).collect();
    assert_eq!(
        kinds.iter().filter(|t| **t == EventType::LegalHold).count(),
        2
    );
    store.shutdown().await;
}

async fn a_hold_on_one_decision_refuses_only_erasures_that_reach_that_decision(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("acme").await;
    let held_id = new_event_id();
    let free_id = new_event_id();
    let contest = contest_of(&held_id);
    let contest_id = contest.draft().event_id.to_string();
    let seqs = append_each(
        &store,
        &tenant,
        vec![
            decision_of("bob", "credit", &held_id),
            decision_of("bob", "credit", &free_id),
            contest,
        ],
    )
    .await;
    let placed = store
        .place_hold(&tenant, hold("bob", Some(&held_id)))
        .await
        .expect("hold placed");

    let named = |ids: &[&str]| SubjectErasure {
        event_ids: Some(ids.iter().map(|i| EventId::parse(i).expect("id")).collect()),
        ..whole("bob")
    };
    // The whole subject would reach the held decision: refused, naming the hold.
    for request in [whole("bob"), named(&[&held_id]), named(&[&contest_id])] {
        match store.erase_subject(&tenant, request).await {
            Err(ErasureError::Held { hold_seq, .. }) => assert_eq!(hold_seq, placed.seq),
            other => panic!("expected Held, got {other:?}"),
        }
    }
    let outcome = store
        .erase_subject(&tenant, named(&[&free_id]))
        .await
        .expect("the other decision is erasable");
    assert_eq!(outcome.erased, 1);
    assert!(readable(&store, &tenant, seqs[0]).await);
    assert!(!readable(&store, &tenant, seqs[1]).await);
    assert!(readable(&store, &tenant, seqs[2]).await);
    store.shutdown().await;
}

async fn a_pipeline_erasure_of_a_held_subject_is_refused_and_nothing_of_its_batch_is_appended(
    backend: Backend,
) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("acme").await;
    let seqs = append_each(
        &store,
        &tenant,
        vec![decision_of("carol", "credit", &new_event_id())],
    )
    .await;
    // A pipeline (a legal department's system) places the hold through the ordinary append.
    let placed = store
        .append(
            &tenant,
            vec![client(
                "legal_hold",
                json!({"action": "placed", "subject_ref": "carol", "reason": "regulator inquiry"}),
            )],
        )
        .await
        .expect("hold appended")[0]
        .seq;
    let size = store.tree_size(&tenant).await.expect("size").get();
    let batch = vec![
        decision_of("dave", "credit", &new_event_id()),
        client(
            "erasure",
            json!({"subject_ref": "carol", "reason": "asked by the person"}),
        ),
    ];
    match store.append(&tenant, batch).await {
        Err(AppendError::LegalHold {
            hold_seq, reason, ..
        }) => {
            assert_eq!(hold_seq, placed);
            assert_eq!(reason, "regulator inquiry");
        }
        other => panic!("expected LegalHold, got {other:?}"),
    }
    assert_eq!(store.tree_size(&tenant).await.expect("size").get(), size);
    assert!(readable(&store, &tenant, seqs[0]).await);
    // Other subjects' erasures go through.
    store
        .append(
            &tenant,
            vec![decision_of("erin", "credit", &new_event_id())],
        )
        .await
        .expect("append");
    store
        .append(
            &tenant,
            vec![client(
                "erasure",
                json!({"subject_ref": "erin", "reason": "asked"}),
            )],
        )
        .await
        .expect("an unheld subject's erasure is appended");
    store.shutdown().await;
}

async fn holds_and_erasures_in_one_group_are_screened_in_chain_order(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("acme").await;
    let seqs = append_each(
        &store,
        &tenant,
        vec![
            decision_of("frank", "credit", &new_event_id()),
            decision_of("gina", "credit", &new_event_id()),
        ],
    )
    .await;
    let hold_of = |s: &str| {
        client(
            "legal_hold",
            json!({"action": "placed", "subject_ref": s, "reason": "litigation"}),
        )
    };
    let erasure_of = |s: &str| client("erasure", json!({"subject_ref": s, "reason": "asked"}));
    let size = store.tree_size(&tenant).await.expect("size").get();
    // Hold first, erasure after it in the same batch: the erasure meets the hold.
    match store
        .append(&tenant, vec![hold_of("frank"), erasure_of("frank")])
        .await
    {
        Err(AppendError::LegalHold { hold_seq, .. }) => assert_eq!(hold_seq, size),
        other => panic!("expected LegalHold, got {other:?}"),
    }
    assert_eq!(store.tree_size(&tenant).await.expect("size").get(), size);
    assert!(readable(&store, &tenant, seqs[0]).await);
    // Erasure first, then the hold: the erasure came before any hold and is carried out.
    let receipts = store
        .append(&tenant, vec![erasure_of("gina"), hold_of("gina")])
        .await
        .expect("erasure then hold");
    assert_eq!(receipts.len(), 2);
    assert!(!readable(&store, &tenant, seqs[1]).await);
    let holds = store.legal_holds(&tenant, "gina").await.expect("holds");
    assert_eq!(holds.len(), 1);
    assert_eq!(holds[0].hold_seq, receipts[1].seq);
    // Two concurrent requests of one group: the one after the hold is refused, the hold stays.
    let (a, b) = tokio::join!(
        store.append(&tenant, vec![hold_of("frank")]),
        store.append(&tenant, vec![erasure_of("frank")]),
    );
    let a = a.expect("the hold is appended");
    match b {
        Err(AppendError::LegalHold { hold_seq, .. }) => assert_eq!(hold_seq, a[0].seq),
        Ok(r) => assert!(
            r[0].seq < a[0].seq,
            "an erasure after the hold was appended"
        ),
        Err(e) => panic!("unexpected {e}"),
    }
    let holds = store.legal_holds(&tenant, "frank").await.expect("holds");
    assert_eq!(holds.len(), 1, "the hold stays");
    assert_eq!(holds[0].hold_seq, a[0].seq);
    assert_eq!(holds[0].lifted_seq, None, "the hold stays active");
    store.shutdown().await;
}

async fn a_lift_names_an_active_hold_of_the_subject_and_lifting_again_answers_the_first_lift(
    backend: Backend,
) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("acme").await;
    append_each(
        &store,
        &tenant,
        vec![
            decision_of("hank", "credit", &new_event_id()),
            decision_of("iris", "credit", &new_event_id()),
        ],
    )
    .await;
    let placed = store
        .place_hold(&tenant, hold("hank", None))
        .await
        .expect("placed");
    // Another subject's name on this hold, a number that is no hold: refused, nothing appended.
    let size = store.tree_size(&tenant).await.expect("size").get();
    assert!(matches!(
        store.lift_hold(&tenant, "iris", placed.seq, "x").await,
        Err(HoldError::UnknownHold(n)) if n == placed.seq
    ));
    assert!(matches!(
        store.lift_hold(&tenant, "hank", 0, "x").await,
        Err(HoldError::UnknownHold(0))
    ));
    match store
        .append(
            &tenant,
            vec![client(
                "legal_hold",
                json!({"action": "lifted", "subject_ref": "iris", "reason": "r", "hold_seq": placed.seq}),
            )],
        )
        .await
    {
        Err(AppendError::HoldNotActive { hold_seq, .. }) => assert_eq!(hold_seq, placed.seq),
        other => panic!("expected HoldNotActive, got {other:?}"),
    }
    assert!(matches!(
        store.lift_hold(&tenant, "hank", placed.seq, " ").await,
        Err(HoldError::BadText(_))
    ));
    assert_eq!(store.tree_size(&tenant).await.expect("size").get(), size);

    let first = store
        .lift_hold(&tenant, "hank", placed.seq, "settled")
        .await
        .expect("lifted");
    let again = store
        .lift_hold(&tenant, "hank", placed.seq, "settled")
        .await
        .expect("lifted again");
    assert!(again.duplicate);
    assert_eq!(again.seq, first.seq);
    assert_eq!(
        store.tree_size(&tenant).await.expect("size").get(),
        size + 1
    );
    store.shutdown().await;
}

async fn placing_a_hold_checks_subject_decision_and_text_and_appends_nothing_when_refused(
    backend: Backend,
) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("acme").await;
    let other = TenantId::parse("other").expect("tenant");
    store.create_tenant(&other).await.expect("tenant");
    let jack_decision = new_event_id();
    append_each(
        &store,
        &tenant,
        vec![
            decision_of("jack", "credit", &jack_decision),
            decision_of("kate", "credit", &new_event_id()),
        ],
    )
    .await;
    append_each(
        &store,
        &other,
        vec![decision_of("zoe", "credit", &new_event_id())],
    )
    .await;
    let size = store.tree_size(&tenant).await.expect("size").get();
    // Another tenant's subject is as unknown as one that never existed.
    for subject in ["zoe", "nobody"] {
        assert!(matches!(
            store.place_hold(&tenant, hold(subject, None)).await,
            Err(HoldError::UnknownSubject)
        ));
        assert!(matches!(
            store.legal_holds(&tenant, subject).await,
            Err(HoldError::UnknownSubject)
        ));
    }
    // Jack's decision is not Kate's.
    match store
        .place_hold(&tenant, hold("kate", Some(&jack_decision)))
        .await
    {
        Err(HoldError::UnknownDecision(id)) => assert_eq!(id, jack_decision),
        other => panic!("expected UnknownDecision, got {other:?}"),
    }
    let blank = PlaceHold {
        reason: "   ".into(),
        ..hold("jack", None)
    };
    match store.place_hold(&tenant, blank).await {
        Err(HoldError::BadText(m)) => assert!(m.starts_with("reason "), "{m}"),
        other => panic!("expected BadText, got {other:?}"),
    }
    let long = PlaceHold {
        reference: Some("x".repeat(5000)),
        ..hold("jack", None)
    };
    match store.place_hold(&tenant, long).await {
        Err(HoldError::BadText(m)) => assert!(m.starts_with("reference "), "{m}"),
        other => panic!("expected BadText, got {other:?}"),
    }
    assert_eq!(store.tree_size(&tenant).await.expect("size").get(), size);
    assert!(
        store
            .legal_holds(&tenant, "jack")
            .await
            .expect("known")
            .is_empty()
    );
    store.shutdown().await;
}

/// A store on `db` whose capture times come from `clock`.
async fn open_with_clock(db: &TestDb, clock: &Arc<ManualClock>) -> (Store, TenantId) {
    let mut config = db.config();
    config.clock = clock.clone();
    let store = Store::open_with_workers(config).await.expect("opens");
    let tenant = TenantId::parse("acme").expect("tenant");
    store.create_tenant(&tenant).await.expect("tenant");
    (store, tenant)
}

async fn retention_erases_exactly_the_expired_values_and_skips_held_subjects_and_decisions(
    backend: Backend,
) {
    let db = TestDb::new(&backend).await;
    let clock = ManualClock::new();
    let (store, tenant) = open_with_clock(&db, &clock).await;
    let start = ManualClock::START_US;
    let rules = vec![
        RetentionRule::parse("event_type=decision,days=365").expect("rule"),
        RetentionRule::parse("event_type=decision,model_id=fraud,days=730").expect("rule"),
    ];
    store
        .set_retention_policy(&tenant, rules, "dpo@bank.example", None)
        .await
        .expect("policy set");
    // Day 0: old decisions of four subjects; day 200: a newer one of the first.
    let held_decision = new_event_id();
    let old = append_each(
        &store,
        &tenant,
        vec![
            decision_with_two_values("lena"),
            decision_of("mike", "fraud", &new_event_id()),
            decision_of("nina", "credit", &new_event_id()),
            decision_of("otto", "credit", &held_decision),
            decision_of("otto", "credit", &new_event_id()),
        ],
    )
    .await;
    clock.set(start + 200 * DAY_US);
    let newer = append_each(
        &store,
        &tenant,
        vec![decision_of("lena", "credit", &new_event_id())],
    )
    .await;
    store
        .place_hold(&tenant, hold("nina", None))
        .await
        .expect("hold");
    store
        .place_hold(&tenant, hold("otto", Some(&held_decision)))
        .await
        .expect("hold");

    // Day 300: nothing has outlived its rule yet.
    clock.set(start + 300 * DAY_US);
    let run = store.run_retention(&tenant, |_| {}).await.expect("run");
    assert_eq!((run.subjects, run.values, run.erasures), (0, 0, 0));

    // Day 400: the credit decisions of day 0 have; fraud (730 days) and day 200's have not.
    clock.set(start + 400 * DAY_US);
    let mut ticks = 0;
    let run = store
        .run_retention(&tenant, |_| ticks += 1)
        .await
        .expect("run");
    assert_eq!(run.values, 3, "lena's two values and otto's one: {run:?}");
    assert_eq!(run.subjects, 2, "{run:?}");
    assert_eq!(run.erasures, 2, "{run:?}");
    assert_eq!(run.held, 2, "nina entirely, otto's held decision: {run:?}");
    assert_eq!(ticks, 3, "one progress call per subject");
    assert!(!readable(&store, &tenant, old[0]).await, "lena's old value");
    assert!(
        readable(&store, &tenant, old[1]).await,
        "mike: fraud keeps 730 days"
    );
    assert!(readable(&store, &tenant, old[2]).await, "nina is held");
    assert!(
        readable(&store, &tenant, old[3]).await,
        "otto's held decision"
    );
    assert!(
        !readable(&store, &tenant, old[4]).await,
        "otto's other decision"
    );
    assert!(
        readable(&store, &tenant, newer[0]).await,
        "lena's newer value"
    );
    // Each erasure says it was retention, naming the rule.
    let chain = read_chain(&store, &tenant).await;
    let erasures: Vec<Value> = chain
        .iter()
        .filter(|r| r.event_type == EventType::Erasure)
        .map(|r| serde_json::from_str(r.payload.as_str()).expect("json"))
        .collect();
    assert_eq!(erasures.len(), 2);
    for e in &erasures {
        assert_eq!(e["legal_basis"], "retention");
        assert!(
            e["reason"]
                .as_str()
                .is_some_and(|r| r.contains("rule 1 (event_type=decision,days=365)")),
            "{e}"
        );
    }
    // Running again erases nothing more.
    let again = store.run_retention(&tenant, |_| {}).await.expect("run");
    assert_eq!((again.values, again.erasures), (0, 0));
    store.shutdown().await;
}

/// A backlog larger than one batch (10,000 expired records) is erased whole, in batches of
/// erasures naming at most 1000 records each; records captured within the rule, after it, keep
/// their values.
async fn a_retention_backlog_is_erased_in_batches_and_the_young_records_are_left(backend: Backend) {
    const EXPIRED: usize = 12_000;
    let db = TestDb::new(&backend).await;
    let clock = ManualClock::new();
    let (store, tenant) = open_with_clock(&db, &clock).await;
    let start = ManualClock::START_US;
    store
        .set_retention_policy(
            &tenant,
            vec![RetentionRule::parse("event_type=decision,days=365").expect("rule")],
            "dpo@bank.example",
            None,
        )
        .await
        .expect("policy set");
    let drafts: Vec<ClientDraft> = (0..EXPIRED)
        .map(|i| decision_of(["pia", "quin"][i % 2], "credit", &new_event_id()))
        .collect();
    let mut old = Vec::new();
    for chunk in drafts.chunks(1000) {
        let receipts = store.append(&tenant, chunk.to_vec()).await.expect("append");
        old.extend(receipts.iter().map(|r| r.seq));
    }
    clock.set(start + 200 * DAY_US);
    let young = append_each(
        &store,
        &tenant,
        vec![
            decision_of("pia", "credit", &new_event_id()),
            decision_of("rosa", "credit", &new_event_id()),
        ],
    )
    .await;
    clock.set(start + 400 * DAY_US);
    let run = store.run_retention(&tenant, |_| {}).await.expect("run");
    assert_eq!(run.values, EXPIRED as u64, "{run:?}");
    // Batch one: 5,000 records of each subject (5 erasures each); batch two: 1,000 each.
    assert_eq!(run.erasures, 12, "{run:?}");
    assert_eq!(run.subjects, 4, "each subject once per batch: {run:?}");
    assert_eq!(run.held, 0, "{run:?}");
    for at in [old[0], old[EXPIRED / 2], old[EXPIRED - 1]] {
        assert!(!readable(&store, &tenant, at).await, "expired record {at}");
    }
    for at in young {
        assert!(readable(&store, &tenant, at).await, "young record {at}");
    }
    let erasures: Vec<Value> = read_chain(&store, &tenant)
        .await
        .iter()
        .filter(|r| r.event_type == EventType::Erasure)
        .map(|r| serde_json::from_str(r.payload.as_str()).expect("json"))
        .collect();
    assert_eq!(erasures.len(), 12);
    assert!(
        erasures.iter().all(|e| e["event_ids"]
            .as_array()
            .is_some_and(|ids| ids.len() <= 1000)),
        "each erasure names at most 1000 records"
    );
    let again = store.run_retention(&tenant, |_| {}).await.expect("run");
    assert_eq!((again.values, again.erasures), (0, 0));
    store.shutdown().await;
}

/// The first record of a tenant's chain (seq 0) expires like any other: the scan of expired
/// values starts at it, not after it.
async fn retention_erases_the_values_of_the_first_record_of_the_chain(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let clock = ManualClock::new();
    let (store, tenant) = open_with_clock(&db, &clock).await;
    let start = ManualClock::START_US;
    // The decisions come before the policy, so the first of them is the chain's first record.
    let old = append_each(
        &store,
        &tenant,
        vec![
            decision_of("s0", "credit", &new_event_id()),
            decision_of("s1", "credit", &new_event_id()),
            decision_of("s2", "credit", &new_event_id()),
        ],
    )
    .await;
    assert_eq!(old, vec![0, 1, 2]);
    store
        .set_retention_policy(
            &tenant,
            vec![RetentionRule::parse("event_type=decision,days=365").expect("rule")],
            "dpo@bank.example",
            None,
        )
        .await
        .expect("policy set");
    clock.set(start + 400 * DAY_US);
    let run = store.run_retention(&tenant, |_| {}).await.expect("run");
    assert_eq!(
        (run.subjects, run.values, run.erasures),
        (3, 3, 3),
        "{run:?}"
    );
    for at in old {
        assert!(!readable(&store, &tenant, at).await, "expired record {at}");
    }
    let again = store.run_retention(&tenant, |_| {}).await.expect("run");
    assert_eq!((again.values, again.erasures), (0, 0));
    store.shutdown().await;
}

async fn a_policy_under_six_months_for_decisions_needs_an_override_recorded_in_the_ledger(
    backend: Backend,
) {
    let db = TestDb::new(&backend).await;
    let (store, tenant) = db.open_with_tenant("acme").await;
    let short = vec![
        RetentionRule::parse("event_type=contest,days=30").expect("rule"),
        RetentionRule::parse("days=90").expect("rule"),
    ];
    match store
        .set_retention_policy(&tenant, short.clone(), "dpo@bank.example", None)
        .await
    {
        Err(RetentionError::BelowMinimum { index, rule }) => {
            assert_eq!(index, 2, "the contest rule does not reach decisions");
            assert_eq!(rule.erase_after_days, 90);
        }
        other => panic!("expected BelowMinimum, got {other:?}"),
    }
    assert_eq!(store.tree_size(&tenant).await.expect("size").get(), 0);
    assert!(
        store
            .retention_policy(&tenant)
            .await
            .expect("policy")
            .rules
            .is_empty()
    );
    assert!(matches!(
        store
            .set_retention_policy(&tenant, short.clone(), "dpo@bank.example", Some("  "))
            .await,
        Err(RetentionError::Invalid(_))
    ));

    let receipt = store
        .set_retention_policy(
            &tenant,
            short.clone(),
            "dpo@bank.example",
            Some("supervisory authority agreed shorter retention for this pilot"),
        )
        .await
        .expect("override accepted");
    let policy = store.retention_policy(&tenant).await.expect("policy");
    assert_eq!(policy.rules, short);
    assert_eq!(policy.set_by_seq, Some(receipt.seq));
    let chain = read_chain(&store, &tenant).await;
    let admin: Vec<Value> = chain
        .iter()
        .filter(|r| r.event_type == EventType::Administration)
        .map(|r| serde_json::from_str(r.payload.as_str()).expect("json"))
        .collect();
    assert_eq!(admin.len(), 2);
    assert_eq!(admin[0]["action"], "retention_minimum_override");
    assert_eq!(
        admin[0]["reason"],
        "supervisory authority agreed shorter retention for this pilot"
    );
    assert_eq!(admin[0]["rules"], json!([{"erase_after_days": 90}]));
    assert_eq!(admin[1]["action"], "retention_policy_set");
    assert_eq!(admin[1]["actor"], "dpo@bank.example");
    assert_eq!(admin[1]["rules"].as_array().map(Vec::len), Some(2));

    // A compliant policy needs no override and replaces the old one.
    let ok = vec![RetentionRule::parse("event_type=decision,days=183").expect("rule")];
    store
        .set_retention_policy(&tenant, ok.clone(), "dpo@bank.example", None)
        .await
        .expect("six months is enough");
    assert_eq!(
        store.retention_policy(&tenant).await.expect("policy").rules,
        ok
    );
    // No rules: the policy is removed (recorded like any other).
    store
        .set_retention_policy(&tenant, Vec::new(), "dpo@bank.example", None)
        .await
        .expect("cleared");
    assert_eq!(
        store.retention_policy(&tenant).await.expect("policy"),
        auditex::store::retention::RetentionPolicy::default()
    );
    store.shutdown().await;
}

async fn the_retention_scheduler_erases_expired_values_in_the_background_and_stops_with_the_store(
    backend: Backend,
) {
    let db = TestDb::new(&backend).await;
    let clock = ManualClock::new();
    let mut config = db.config();
    config.clock = clock.clone();
    config.retention_interval = Some(std::time::Duration::from_millis(100));
    let store = Store::open(config).await.expect("opens");
    let workers = store.start_workers().await.expect("workers");
    assert!(
        workers.names().contains(&"retention scheduler"),
        "{:?}",
        workers.names()
    );
    let tenant = TenantId::parse("acme").expect("tenant");
    store.create_tenant(&tenant).await.expect("tenant");
    store
        .set_retention_policy(
            &tenant,
            vec![RetentionRule::parse("days=365").expect("rule")],
            "dpo@bank.example",
            None,
        )
        .await
        .expect("policy");
    let seqs = append_each(
        &store,
        &tenant,
        vec![decision_of("paula", "credit", &new_event_id())],
    )
    .await;
    // Not expired: several ticks pass and the value stays.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert!(readable(&store, &tenant, seqs[0]).await);
    clock.set(ManualClock::START_US + 366 * DAY_US);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while readable(&store, &tenant, seqs[0]).await {
        assert!(
            std::time::Instant::now() < deadline,
            "the scheduler did not erase the expired value"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    store.shutdown().await;
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        workers.join(std::time::Duration::from_secs(5)),
    )
    .await
    .expect("the workers stop with the store");
}

async fn a_hold_placed_through_another_instance_refuses_this_instances_erasures_and_its_lift_frees_them(
    backend: Backend,
) {
    let db = TestDb::new(&backend).await;
    let (first, tenant) = db.open_with_tenant("acme").await;
    let second = db.open().await;
    let seqs = append_each(
        &first,
        &tenant,
        vec![decision_of("quinn", "credit", &new_event_id())],
    )
    .await;
    let placed = second
        .place_hold(&tenant, hold("quinn", None))
        .await
        .expect("placed by the second instance");
    match first.erase_subject(&tenant, whole("quinn")).await {
        Err(ErasureError::Held { hold_seq, .. }) => assert_eq!(hold_seq, placed.seq),
        other => panic!("expected Held, got {other:?}"),
    }
    assert!(readable(&first, &tenant, seqs[0]).await);
    second
        .lift_hold(&tenant, "quinn", placed.seq, "case closed")
        .await
        .expect("lifted");
    let outcome = first
        .erase_subject(&tenant, whole("quinn"))
        .await
        .expect("erased once lifted elsewhere");
    assert_eq!(outcome.erased, 1);
    first.shutdown().await;
    second.shutdown().await;
}

/// The appender screens erasures against the holds it read before its transaction; a hold that
/// another instance commits between that read and the transaction must still win. The tenant's
/// append lock is held from outside while the other instance's hold and then this instance's
/// erasure queue for it (PostgreSQL grants advisory locks to waiters in order), so the erasure is
/// screened on no hold and reaches its transaction after the hold committed: the check inside the
/// transaction refuses it, and nothing is erased or appended.
async fn a_hold_committed_by_another_instance_after_screening_refuses_the_erasure_in_its_transaction(
    backend: Backend,
) {
    use sqlx::{Connection, Executor};
    let db = TestDb::new(&backend).await;
    let (first, tenant) = db.open_with_tenant("acme").await;
    let second = db.open().await;
    let seqs = append_each(
        &first,
        &tenant,
        vec![decision_of("rhea", "credit", &new_event_id())],
    )
    .await;
    let size = first.tree_size(&tenant).await.expect("size").get();
    let mut lock = sqlx::PgConnection::connect(db.postgres_owner_url())
        .await
        .expect("connect");
    lock.execute("BEGIN").await.expect("begin");
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('auditex:append:' || $1, 0))")
        .bind(tenant.as_str())
        .execute(&mut lock)
        .await
        .expect("lock");
    let placing = {
        let (second, tenant) = (second.clone(), tenant.clone());
        tokio::spawn(async move { second.place_hold(&tenant, hold("rhea", None)).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let erasing = {
        let (first, tenant) = (first.clone(), tenant.clone());
        tokio::spawn(async move { first.erase_subject(&tenant, whole("rhea")).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !placing.is_finished() && !erasing.is_finished(),
        "both wait for the lock"
    );
    lock.execute("COMMIT").await.expect("unlock");
    let placed = placing.await.expect("task").expect("hold placed");
    let erased = erasing.await.expect("task");
    // Refused by the check inside the transaction (named, so a lost connection does not pass),
    // or by the screening if it saw the hold after all.
    assert!(
        match &erased {
            Err(ErasureError::Append(AppendError::Store(StoreError::Unavailable(e)))) => e
                .to_string()
                .contains("legal holds changed while the group was prepared"),
            Err(ErasureError::Held { hold_seq, .. }) => *hold_seq == placed.seq,
            _ => false,
        },
        "the erasure screened before the hold must be refused, got {erased:?}"
    );
    assert!(
        readable(&first, &tenant, seqs[0]).await,
        "the value is kept"
    );
    assert_eq!(
        first.tree_size(&tenant).await.expect("size").get(),
        size + 1,
        "only the hold was appended"
    );
    // Asked again, the erasure is screened on the hold and refused naming it.
    match first.erase_subject(&tenant, whole("rhea")).await {
        Err(ErasureError::Held { hold_seq, .. }) => assert_eq!(hold_seq, placed.seq),
        other => panic!("expected Held, got {other:?}"),
    }
    first.shutdown().await;
    second.shutdown().await;
}
