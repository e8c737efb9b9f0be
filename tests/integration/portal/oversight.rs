//! Human oversight in the portal (issue 23, part 2) on both backends: the queue, the signed
//! records a reviewer's forms append (attributed to the signed-in person, linked to the
//! decision), the four-eyes rule and its refusals (self-approval, twice, after a withdrawal,
//! another tenant's ids), two approvals racing, and the settings page.

use std::time::Duration;

use auditex::store::Store;
use auditex::store::oversight::{
    Act, OversightError, OversightSettings, QueueKind, QueueQuery, proposal_id, resolution_id,
};
use auditex::store::users::PortalRole;
use ledger::types::{EventId, TenantId};
use reqwest::StatusCode;
use serde_json::Value;

use super::{
    AUDITOR_EMAIL, Browser, OFFICER_EMAIL, REGULATOR_EMAIL, ROLE_REFUSED, append_decision,
    audited_actions, start,
};
use crate::portal_support::ADMIN_EMAIL;
use crate::support::{Backend, backend_tests, decision_payload, new_event_id, seq, tenant_id};

/// A second compliance officer, the four-eyes approver.
const SECOND_EMAIL: &str = "second@acme.test";

/// `(seq, event type, payload)` of the tenant's oversight records, in ledger order.
async fn oversight_records(store: &Store, tenant: &TenantId) -> Vec<(u64, String, Value)> {
    store
        .records(tenant, seq(0), 1000)
        .await
        .expect("read the ledger")
        .into_iter()
        .filter(|r| matches!(r.event_type.as_str(), "human_review" | "override"))
        .map(|r| {
            (
                r.seq.get(),
                r.event_type.as_str().to_owned(),
                serde_json::from_str(r.payload.as_str()).expect("JSON payload"),
            )
        })
        .collect()
}

/// Waits until `probe` over the decision's view row holds.
async fn until_view(
    store: &Store,
    tenant: &TenantId,
    id: &str,
    probe: impl Fn(&projections::DecisionRow, &[projections::OversightRow]) -> bool,
) {
    let id = EventId::parse(id).expect("event id");
    for _ in 0..600 {
        if let Ok(Some((d, actions))) = store.decision_view(tenant, id).await
            && probe(&d, &actions)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the views did not catch up");
}

async fn four_eyes_on(store: &Store, tenant: &TenantId) {
    store
        .set_oversight_settings(
            tenant,
            OversightSettings {
                four_eyes: true,
                ..OversightSettings::default()
            },
            ADMIN_EMAIL,
        )
        .await
        .expect("settings");
}

async fn a_reviewer_confirms_a_queued_decision_and_it_leaves_the_queue(backend: Backend) {
    let server = start(&backend, false).await;
    let (store, tenant) = (&server.store, &server.tenant);
    server
        .create_user(OFFICER_EMAIL, PortalRole::Compliance, None)
        .await;
    let id = append_decision(store, tenant).await;
    let mut officer = Browser::signed_in(&server, OFFICER_EMAIL).await;

    let queue = officer.get("/oversight").await;
    queue.assert_status(StatusCode::OK, "the queue");
    assert!(
        queue.body.contains(&format!("/decisions/{id}")),
        "the decision waits"
    );
    assert!(queue.body.contains("Due in"), "with its service level");

    let csrf = officer.csrf().await;
    let path = format!("/decisions/{id}/oversight");
    let refused = officer
        .post(
            &path,
            &[("csrf", &csrf), ("act", "confirm"), ("reason", "  ")],
        )
        .await;
    refused.assert_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        "a review without a reason",
    );
    assert!(
        refused.body.contains("The reason is required"),
        "{}",
        refused.body
    );
    let bad_act = officer
        .post(
            &path,
            &[("csrf", &csrf), ("act", "approve"), ("reason", "x")],
        )
        .await;
    bad_act.assert_status(StatusCode::BAD_REQUEST, "an unknown act");
    assert!(
        oversight_records(store, tenant).await.is_empty(),
        "nothing appended"
    );

    let done = officer
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("act", "confirm"),
                ("reason", "Income verified against payslips."),
            ],
        )
        .await;
    done.assert_status(StatusCode::SEE_OTHER, "the review");
    let records = oversight_records(store, tenant).await;
    assert_eq!(records.len(), 1, "one record: {records:?}");
    let (review_seq, event_type, payload) = &records[0];
    assert_eq!(event_type, "human_review");
    assert_eq!(payload["reviewer"], OFFICER_EMAIL);
    assert_eq!(payload["decision_id"], id.as_str());
    assert_eq!(payload["action"], "confirmed");
    assert_eq!(payload["reason"], "Income verified against payslips.");
    assert_eq!(
        done.location(),
        Some(format!("/decisions/{id}?recorded={review_seq}").as_str())
    );

    until_view(store, tenant, &id, |d, _| d.status == "reviewed").await;
    let queue = officer.get("/oversight").await;
    assert!(
        !queue.body.contains(&format!("/decisions/{id}")),
        "it left the queue"
    );
    let page = officer.get(&format!("/decisions/{id}")).await;
    assert!(
        page.body.contains("human review"),
        "the timeline shows the review"
    );
    assert!(page.body.contains(OFFICER_EMAIL), "by whom");
    server.stop().await;
}

async fn with_four_eyes_an_override_is_pending_until_a_second_reviewer_approves_it(
    backend: Backend,
) {
    let server = start(&backend, false).await;
    let (store, tenant) = (&server.store, &server.tenant);
    for email in [OFFICER_EMAIL, SECOND_EMAIL] {
        server
            .create_user(email, PortalRole::Compliance, None)
            .await;
    }
    let id = append_decision(store, tenant).await;

    // The administrator turns four eyes on: an administration record first.
    let mut admin = Browser::signed_in(&server, ADMIN_EMAIL).await;
    let csrf = admin.csrf().await;
    let form = |four_eyes: &'static str, review: &'static str| {
        vec![
            ("four_eyes", four_eyes),
            ("review_sla_hours", review),
            ("contest_sla_hours", "72"),
            ("explanation_sla_hours", "72"),
        ]
    };
    let mut bad = form("on", "0");
    bad.push(("csrf", &csrf));
    admin
        .post("/settings/oversight", &bad)
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY, "a zero service level");
    assert!(
        !store
            .oversight_settings(tenant)
            .await
            .expect("settings")
            .four_eyes
    );
    let mut good = form("on", "8");
    good.push(("csrf", &csrf));
    let saved = admin.post("/settings/oversight", &good).await;
    saved.assert_status(StatusCode::SEE_OTHER, "the settings");
    let settings = store.oversight_settings(tenant).await.expect("settings");
    assert!(settings.four_eyes);
    assert_eq!(settings.review_sla_hours, 8);
    assert!(
        audited_actions(store, tenant)
            .await
            .iter()
            .filter(|a| *a == "oversight_settings_set")
            .count()
            == 1,
        "the change, once, in the ledger"
    );

    // Reviewer A proposes.
    let mut a = Browser::signed_in(&server, OFFICER_EMAIL).await;
    let csrf_a = a.csrf().await;
    let proposed = a
        .post(
            &format!("/decisions/{id}/oversight"),
            &[
                ("csrf", &csrf_a),
                ("act", "override"),
                ("new_outcome", "decline"),
                ("reason", "Debt ratio above policy."),
            ],
        )
        .await;
    proposed.assert_status(StatusCode::SEE_OTHER, "the proposal");
    let records = oversight_records(store, tenant).await;
    assert_eq!(records.len(), 1);
    let (_, event_type, payload) = &records[0];
    assert_eq!(event_type, "human_review", "a proposal, not an override");
    assert_eq!(payload["action"], "override_proposed");
    assert_eq!(payload["proposed_outcome"], "decline");
    assert_eq!(payload["reviewer"], OFFICER_EMAIL);
    let proposal = store
        .records(tenant, seq(0), 1000)
        .await
        .expect("records")
        .into_iter()
        .find(|r| r.event_type.as_str() == "human_review")
        .expect("the proposal")
        .event_id;

    // Pending, visibly: on the decision page and in the queue; the decision is not reviewed.
    until_view(store, tenant, &id, |_, actions| !actions.is_empty()).await;
    let page = a.get(&format!("/decisions/{id}")).await;
    assert!(
        page.body.contains("Override awaiting approval"),
        "pending on the decision"
    );
    assert!(
        page.body
            .contains("proposes decline: pending, awaiting a second reviewer")
    );
    assert!(
        page.body.contains("override pending approval"),
        "in the status too"
    );
    let queue = a.get("/oversight?kind=pending_approval").await;
    assert!(
        queue.body.contains(&format!("/decisions/{id}")),
        "pending in the queue"
    );
    let awaiting = a.get("/oversight").await;
    assert!(
        awaiting.body.contains(&format!("/decisions/{id}")),
        "a proposal is not a review: the decision still awaits one"
    );

    // A's own approval is refused and changes nothing.
    let approve = format!("/oversight/proposals/{proposal}/approve");
    let own = a
        .post(&approve, &[("csrf", &csrf_a), ("reason", "ok")])
        .await;
    own.assert_status(StatusCode::CONFLICT, "self-approval");
    assert!(own.body.contains("you cannot approve it"), "{}", own.body);
    assert_eq!(
        oversight_records(store, tenant).await.len(),
        1,
        "nothing appended"
    );

    // B approves: one override naming both.
    let mut b = Browser::signed_in(&server, SECOND_EMAIL).await;
    let csrf_b = b.csrf().await;
    let missing_reason = b.post(&approve, &[("csrf", &csrf_b), ("reason", "")]).await;
    missing_reason.assert_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        "an approval without a reason",
    );
    let approved = b
        .post(
            &approve,
            &[("csrf", &csrf_b), ("reason", "Checked the bureau file.")],
        )
        .await;
    approved.assert_status(StatusCode::SEE_OTHER, "the approval");
    let records = oversight_records(store, tenant).await;
    assert_eq!(records.len(), 2);
    let (_, event_type, payload) = &records[1];
    assert_eq!(event_type, "override");
    assert_eq!(payload["decision_id"], id.as_str());
    assert_eq!(payload["reviewer"], OFFICER_EMAIL);
    assert_eq!(payload["approved_by"], SECOND_EMAIL);
    assert_eq!(payload["new_outcome"], "decline");
    assert_eq!(payload["proposal_id"], proposal.to_string());
    assert_eq!(payload["approval_reason"], "Checked the bureau file.");

    // Twice, or closing it now, is refused and changes nothing.
    let again = b
        .post(&approve, &[("csrf", &csrf_b), ("reason", "again")])
        .await;
    again.assert_status(StatusCode::CONFLICT, "approving twice");
    assert!(again.body.contains("approved already"));
    let close = format!("/oversight/proposals/{proposal}/close");
    b.post(&close, &[("csrf", &csrf_b), ("reason", "late")])
        .await
        .assert_status(StatusCode::CONFLICT, "rejecting an approved proposal");
    assert_eq!(oversight_records(store, tenant).await.len(), 2);

    until_view(store, tenant, &id, |d, _| d.current_outcome == "decline").await;
    let page = b.get(&format!("/decisions/{id}")).await;
    assert!(
        !page.body.contains("Override awaiting approval"),
        "no longer pending"
    );
    assert!(
        page.body.contains(&format!(
            "proposed by {OFFICER_EMAIL}, approved by {SECOND_EMAIL}"
        )),
        "the override names both reviewers"
    );
    server.stop().await;
}

/// With four eyes on, a decision and the officer's proposal to override it.
async fn proposed(store: &Store, tenant: &TenantId) -> (EventId, EventId) {
    four_eyes_on(store, tenant).await;
    let id = EventId::parse(&append_decision(store, tenant).await).expect("id");
    let over = Act::Override {
        new_outcome: "decline".into(),
    };
    let proposal = store
        .record_oversight(tenant, id, OFFICER_EMAIL, &over, "too risky")
        .await
        .expect("proposal")
        .event_id;
    (id, proposal)
}

async fn two_approvals_racing_produce_one_override(backend: Backend) {
    let server = start(&backend, false).await;
    let (store, tenant) = (&server.store, &server.tenant);
    let (_, proposal) = proposed(store, tenant).await;
    let (one, two) = tokio::join!(
        store.approve_override(tenant, proposal, SECOND_EMAIL, "agreed"),
        store.approve_override(tenant, proposal, ADMIN_EMAIL, "agreed too"),
    );
    let winners = [one.is_ok(), two.is_ok()].iter().filter(|w| **w).count();
    assert_eq!(winners, 1, "exactly one approval wins: {one:?} {two:?}");
    let loser = if one.is_ok() { two } else { one };
    assert!(
        matches!(
            loser,
            Err(OversightError::AlreadyApproved | OversightError::Decided)
        ),
        "the other is told it was decided already: {loser:?}"
    );
    let overrides: Vec<_> = oversight_records(store, tenant)
        .await
        .into_iter()
        .filter(|(_, t, _)| t == "override")
        .collect();
    assert_eq!(overrides.len(), 1, "one override in the ledger");
    server.stop().await;
}

/// A decision has one pending proposal at a time: a second reviewer proposing while one waits is
/// refused and nothing is appended, two proposing at once append one proposal, and once it is
/// rejected the next proposal takes the next id and can be approved. So no decision gets two
/// overrides from two pending proposals.
async fn a_decision_has_at_most_one_pending_proposal(backend: Backend) {
    let server = start(&backend, false).await;
    let (store, tenant) = (&server.store, &server.tenant);
    let (decision, first) = proposed(store, tenant).await;
    assert_eq!(first, proposal_id(decision, 0));
    let over = |outcome: &str| Act::Override {
        new_outcome: outcome.into(),
    };
    let again = store
        .record_oversight(tenant, decision, SECOND_EMAIL, &over("refer"), "other view")
        .await;
    assert!(
        matches!(again, Err(OversightError::ProposalPending(id)) if id == first),
        "{again:?}"
    );
    assert_eq!(
        oversight_records(store, tenant).await.len(),
        1,
        "nothing appended"
    );
    // The proposer sending it again (a double click) is told it waits; nothing is appended.
    let repeated = store
        .record_oversight(
            tenant,
            decision,
            OFFICER_EMAIL,
            &over("decline"),
            "too risky",
        )
        .await;
    assert!(
        matches!(repeated, Err(OversightError::ProposalPending(_))),
        "{repeated:?}"
    );

    store
        .close_proposal(tenant, first, SECOND_EMAIL, "not convinced")
        .await
        .expect("rejected");
    // Two reviewers propose at the same moment: one proposal.
    let (decline, refer) = (over("decline"), over("refer"));
    let (one, two) = tokio::join!(
        store.record_oversight(tenant, decision, OFFICER_EMAIL, &decline, "still risky"),
        store.record_oversight(tenant, decision, SECOND_EMAIL, &refer, "refer it"),
    );
    let won: Vec<_> = [&one, &two].into_iter().filter(|r| r.is_ok()).collect();
    assert_eq!(won.len(), 1, "one proposal wins: {one:?} {two:?}");
    let loser = if one.is_ok() { &two } else { &one };
    assert!(
        matches!(loser, Err(OversightError::ProposalPending(_))),
        "{loser:?}"
    );
    let second = proposal_id(decision, 1);
    assert_eq!(won[0].as_ref().map(|r| r.event_id).ok(), Some(second));
    let proposer = store
        .proposal(tenant, second)
        .await
        .expect("read")
        .expect("the proposal")
        .proposer;
    store
        .approve_override(tenant, second, ADMIN_EMAIL, "agreed")
        .await
        .expect("approved by a second person");
    assert_ne!(proposer, ADMIN_EMAIL);
    let overrides = oversight_records(store, tenant)
        .await
        .into_iter()
        .filter(|(_, t, _)| t == "override")
        .count();
    assert_eq!(overrides, 1, "one override of the decision");
    // After the approval, another override is a new proposal (the decision's third).
    let third = store
        .record_oversight(
            tenant,
            decision,
            SECOND_EMAIL,
            &over("approve"),
            "new evidence",
        )
        .await
        .expect("a new proposal");
    assert_eq!(third.event_id, proposal_id(decision, 2));
    server.stop().await;
}

async fn a_withdrawn_proposal_or_another_tenants_ids_change_nothing(backend: Backend) {
    let server = start(&backend, false).await;
    let (store, tenant) = (&server.store, &server.tenant);
    let (id, proposal) = proposed(store, tenant).await;

    // Changing the settings again replaces them (the row is updated in place).
    let changed = OversightSettings {
        four_eyes: true,
        review_sla_hours: 12,
        ..OversightSettings::default()
    };
    store
        .set_oversight_settings(tenant, changed, ADMIN_EMAIL)
        .await
        .expect("settings again");
    assert_eq!(
        store.oversight_settings(tenant).await.expect("read"),
        changed
    );

    // Another tenant knows neither the decision nor the proposal.
    let other = tenant_id("globex-bank");
    store.create_tenant(&other).await.expect("second tenant");
    four_eyes_on(store, &other).await;
    assert!(matches!(
        store
            .record_oversight(&other, id, SECOND_EMAIL, &Act::Confirm, "x")
            .await,
        Err(OversightError::NotFound("decision"))
    ));
    assert!(matches!(
        store
            .approve_override(&other, proposal, SECOND_EMAIL, "x")
            .await,
        Err(OversightError::NotFound("proposal"))
    ));
    assert!(matches!(
        store
            .close_proposal(&other, proposal, SECOND_EMAIL, "x")
            .await,
        Err(OversightError::NotFound("proposal"))
    ));
    // Nor is a decision's id a proposal.
    assert!(matches!(
        store.approve_override(tenant, id, SECOND_EMAIL, "x").await,
        Err(OversightError::NotFound("proposal"))
    ));
    assert!(oversight_records(store, &other).await.is_empty());
    assert_eq!(oversight_records(store, tenant).await.len(), 1);

    // The proposer withdraws; approving it afterwards is refused.
    let withdrawn = store
        .close_proposal(tenant, proposal, OFFICER_EMAIL, "second thoughts")
        .await
        .expect("withdrawn");
    assert_eq!(withdrawn.event_id, resolution_id(proposal));
    assert!(matches!(
        store
            .approve_override(tenant, proposal, SECOND_EMAIL, "agreed")
            .await,
        Err(OversightError::Closed)
    ));
    assert!(matches!(
        store
            .close_proposal(tenant, proposal, SECOND_EMAIL, "no")
            .await,
        Err(OversightError::Closed)
    ));
    let records = oversight_records(store, tenant).await;
    assert_eq!(records.len(), 2, "the proposal and its withdrawal only");
    assert_eq!(records[1].2["action"], "override_withdrawn");
    assert_eq!(records[1].2["proposal_id"], proposal.to_string());

    // A withdrawn proposal left the decision awaiting review.
    until_view(store, tenant, &id.to_string(), |_, a| a.len() == 2).await;
    let (d, _) = store
        .decision_view(tenant, id)
        .await
        .expect("view")
        .expect("row");
    assert_eq!((d.status.as_str(), d.reviews), ("awaiting_review", 0));
    server.stop().await;
}

async fn auditors_read_the_queue_but_only_reviewers_record_and_only_admins_change_settings(
    backend: Backend,
) {
    let server = start(&backend, false).await;
    let (store, tenant) = (&server.store, &server.tenant);
    server
        .create_user(AUDITOR_EMAIL, PortalRole::Auditor, None)
        .await;
    server
        .create_user(OFFICER_EMAIL, PortalRole::Compliance, None)
        .await;
    let expires = store.now_us() + 86_400_000_000;
    server
        .create_user(REGULATOR_EMAIL, PortalRole::Regulator, Some(expires))
        .await;
    let id = append_decision(store, tenant).await;

    let mut auditor = Browser::signed_in(&server, AUDITOR_EMAIL).await;
    auditor
        .get("/oversight")
        .await
        .assert_status(StatusCode::OK, "an auditor reads the queue");
    let page = auditor.get(&format!("/decisions/{id}")).await;
    assert!(
        !page.body.contains("Record oversight"),
        "but has no review form"
    );
    let csrf = auditor.csrf().await;
    let refused = auditor
        .post(
            &format!("/decisions/{id}/oversight"),
            &[("csrf", &csrf), ("act", "confirm"), ("reason", "x")],
        )
        .await;
    refused.assert_status(StatusCode::FORBIDDEN, "an auditor's review");
    assert!(refused.body.contains(ROLE_REFUSED));

    let mut regulator = Browser::signed_in(&server, REGULATOR_EMAIL).await;
    regulator
        .get("/oversight")
        .await
        .assert_status(StatusCode::FORBIDDEN, "a regulator and the work queue");

    let mut officer = Browser::signed_in(&server, OFFICER_EMAIL).await;
    officer
        .get("/settings")
        .await
        .assert_status(StatusCode::FORBIDDEN, "an officer and the settings");
    let csrf = officer.csrf().await;
    officer
        .post(
            "/settings/oversight",
            &[
                ("csrf", &csrf),
                ("four_eyes", "on"),
                ("review_sla_hours", "1"),
                ("contest_sla_hours", "1"),
                ("explanation_sla_hours", "1"),
            ],
        )
        .await
        .assert_status(StatusCode::FORBIDDEN, "an officer's settings change");
    assert_eq!(
        store.oversight_settings(tenant).await.expect("settings"),
        OversightSettings::default()
    );
    assert!(oversight_records(store, tenant).await.is_empty());
    server.stop().await;
}

/// The decision ids of one page of the queue of `kind`.
async fn queued(
    store: &Store,
    tenant: &TenantId,
    kind: QueueKind,
    model_id: Option<&str>,
    min_age_hours: Option<u32>,
) -> Vec<String> {
    store
        .oversight_queue(
            tenant,
            &QueueQuery {
                kind,
                model_id: model_id.map(str::to_owned),
                min_age_hours,
                after: None,
                limit: 50,
            },
        )
        .await
        .expect("queue")
        .items
        .into_iter()
        .map(|i| i.decision_id.to_string())
        .collect()
}

fn client_draft(event_type: &str, payload: &Value) -> ledger::draft::ClientDraft {
    ledger::draft::prepare_client_draft(
        &new_event_id(),
        event_type,
        payload,
        &std::collections::BTreeMap::new(),
        rand::random,
    )
    .unwrap_or_else(|e| panic!("valid {event_type}: {e:?}"))
}

async fn the_queue_lists_each_kind_until_it_is_answered_filtered_by_model_and_age(
    backend: Backend,
) {
    let server = start(&backend, true).await;
    let (store, tenant) = (&server.store, &server.tenant);
    // A decision a human must review, and an automated one of another model that its subject
    // contests and asks to have explained.
    let reviewed = append_decision(store, tenant).await;
    let mut payload = decision_payload("decline");
    payload["model_id"] = "fraud-detect".into();
    payload["oversight_mode"] = "automated".into();
    let contested = new_event_id();
    store
        .append(
            tenant,
            vec![
                ledger::draft::prepare_client_draft(
                    &contested,
                    "decision",
                    &payload,
                    &std::collections::BTreeMap::new(),
                    rand::random,
                )
                .expect("decision"),
            ],
        )
        .await
        .expect("append");
    server.advance(Duration::from_secs(3600));
    store
        .append(
            tenant,
            vec![
                client_draft("contest", &serde_json::json!({"decision_id": contested, "statement": "I repaid that loan."})),
                client_draft("explanation_request", &serde_json::json!({"decision_id": contested, "requested_by": "subject"})),
            ],
        )
        .await
        .expect("follow-ups");
    until_view(store, tenant, &contested, |_, a| a.len() == 2).await;

    let k = |kind| queued(store, tenant, kind, None, None);
    assert_eq!(
        k(QueueKind::AwaitingReview).await,
        vec![reviewed.clone()],
        "automated decisions need no review"
    );
    assert_eq!(k(QueueKind::Contested).await, vec![contested.clone()]);
    assert_eq!(
        k(QueueKind::ExplanationRequested).await,
        vec![contested.clone()]
    );
    assert!(k(QueueKind::PendingApproval).await.is_empty());
    assert!(
        queued(
            store,
            tenant,
            QueueKind::AwaitingReview,
            Some("fraud-detect"),
            None
        )
        .await
        .is_empty()
    );
    assert_eq!(
        queued(
            store,
            tenant,
            QueueKind::Contested,
            Some("fraud-detect"),
            None
        )
        .await,
        vec![contested.clone()]
    );
    assert!(
        queued(
            store,
            tenant,
            QueueKind::ExplanationRequested,
            Some("credit-limit"),
            None
        )
        .await
        .is_empty()
    );

    // Age: the review has waited an hour, the contest not yet; past 24 hours the review is
    // overdue, the contest (72 hours) is not.
    assert_eq!(
        queued(store, tenant, QueueKind::AwaitingReview, None, Some(1)).await,
        vec![reviewed.clone()]
    );
    assert!(
        queued(store, tenant, QueueKind::Contested, None, Some(1))
            .await
            .is_empty()
    );
    server.advance(Duration::from_secs(24 * 3600));
    let now = store.now_us();
    let page = |kind| async move {
        store
            .oversight_queue(
                tenant,
                &QueueQuery {
                    kind,
                    model_id: None,
                    min_age_hours: None,
                    after: None,
                    limit: 50,
                },
            )
            .await
            .expect("queue")
            .items
    };
    assert!(page(QueueKind::AwaitingReview).await[0].overdue(now));
    assert!(!page(QueueKind::Contested).await[0].overdue(now));

    // Answers take them off the queue, each its own kind.
    let id = EventId::parse(&contested).expect("id");
    store
        .record_oversight(
            tenant,
            id,
            OFFICER_EMAIL,
            &Act::AnswerContest,
            "Loan repaid; decision stands on other grounds.",
        )
        .await
        .expect("answer");
    until_view(store, tenant, &contested, |_, a| a.len() == 3).await;
    assert!(k(QueueKind::Contested).await.is_empty());
    assert_eq!(
        k(QueueKind::ExplanationRequested).await,
        vec![contested.clone()]
    );
    store
        .record_oversight(
            tenant,
            id,
            OFFICER_EMAIL,
            &Act::ProvideExplanation,
            "Sent the main factors by letter.",
        )
        .await
        .expect("explanation");
    until_view(store, tenant, &contested, |_, a| a.len() == 4).await;
    assert!(k(QueueKind::ExplanationRequested).await.is_empty());
    assert_eq!(
        k(QueueKind::AwaitingReview).await,
        [reviewed],
        "the other item stays"
    );
    server.stop().await;
}

backend_tests!(
    the_queue_lists_each_kind_until_it_is_answered_filtered_by_model_and_age,
    a_reviewer_confirms_a_queued_decision_and_it_leaves_the_queue,
    with_four_eyes_an_override_is_pending_until_a_second_reviewer_approves_it,
    two_approvals_racing_produce_one_override,
    a_decision_has_at_most_one_pending_proposal,
    a_withdrawn_proposal_or_another_tenants_ids_change_nothing,
    auditors_read_the_queue_but_only_reviewers_record_and_only_admins_change_settings,
);
