//! Human oversight in a real browser (issue 23, part 2): a reviewer works the queue; with four
//! eyes on, reviewer A proposes an override, A's own approval is refused, reviewer B approves,
//! and the decision page shows the override and both names. Screenshots `20-…` to `26-…`.

use std::time::Duration;

use auditex::store::users::PortalRole;
use ledger::types::EventId;
use serde_json::json;

use super::{Browser, draft, eventually};
use crate::portal_support::{ADMIN_EMAIL, PASSWORD, PortalServer};
use crate::support::Backend;

const REVIEWER_A: &str = "amira.haddad@acme.test";
const REVIEWER_B: &str = "jonas.berg@acme.test";

/// Four `human_in_the_loop` decisions of two models, the views caught up and checkpointed;
/// their ids and page headings.
async fn seed(server: &PortalServer) -> Vec<(String, String)> {
    let models = [
        ("credit-limit", "2.3.1", "approve", 0.81),
        ("credit-limit", "2.3.1", "refer", 0.52),
        ("mortgage-affordability", "1.4.0", "approve", 0.74),
        ("credit-limit", "2.3.1", "decline", 0.18),
    ];
    // Decided a minute before the ledger captured it, on the server's (manual) clock.
    let decided_at = chrono::DateTime::from_timestamp_micros(server.store.now_us() - 60_000_000)
        .expect("a time")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut ids = Vec::new();
    let mut drafts = Vec::new();
    for (i, (model, version, outcome, score)) in models.into_iter().enumerate() {
        let id = uuid::Uuid::now_v7().to_string();
        drafts.push(draft(
            &id,
            "decision",
            &json!({
                "model_id": model,
                "model_version": version,
                "input_commitment": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                "outcome": outcome,
                "score": score,
                "subject_ref": format!("cust-{:04}", 1201 + i),
                "decided_at": decided_at,
                "oversight_mode": "human_in_the_loop",
            }),
        ));
        ids.push(id);
    }
    server
        .store
        .append(&server.tenant, drafts)
        .await
        .expect("append");
    let last = EventId::parse(&ids[3]).expect("id");
    eventually("the views", || async {
        matches!(
            server.store.decision_view(&server.tenant, last).await,
            Ok(Some(_))
        )
        .then_some(())
    })
    .await;
    server
        .store
        .publish_checkpoints()
        .await
        .expect("checkpoint");
    let mut out = Vec::new();
    for id in ids {
        let record = server
            .store
            .record_by_event_id(&server.tenant, EventId::parse(&id).expect("id"))
            .await
            .expect("read")
            .expect("record");
        out.push((id, format!("Decision {}", record.seq.get())));
    }
    out
}

/// Scrolls the element matching `css` to the top of the window (for a screenshot of it).
async fn scroll_to(browser: &Browser, css: &str) {
    browser
        .driver
        .execute(
            "document.querySelector(arguments[0]).scrollIntoView();",
            vec![json!(css)],
        )
        .await
        .unwrap_or_else(|e| panic!("scroll to {css}: {e}"));
}

/// Reloads the page until its text contains `text`.
async fn until_shown(browser: &Browser, server: &PortalServer, path: &str, text: &str) {
    eventually(&format!("{text:?} on {path}"), || async {
        browser.open(server, path).await;
        browser.text().await.contains(text).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviewers_work_the_queue_and_a_second_reviewer_approves_an_override_in_the_browser() {
    let server = PortalServer::start(&Backend::Sqlite, true).await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    for email in [REVIEWER_A, REVIEWER_B] {
        server
            .create_user(email, PortalRole::Compliance, None)
            .await;
    }
    let ids = seed(&server).await;
    // A day and a half later: past the 24-hour review service level.
    server.advance(Duration::from_secs(36 * 3600));
    server
        .store
        .publish_checkpoints()
        .await
        .expect("checkpoint");

    // Reviewer A works the queue: every decision waits, overdue.
    browser.sign_in(&server, REVIEWER_A, PASSWORD).await;
    assert!(
        browser
            .texts("nav a")
            .await
            .contains(&"Oversight".to_owned())
    );
    browser.follow("Oversight").await;
    browser.expect_page("Oversight").await;
    let text = browser.text().await;
    assert!(
        text.contains("4 of 4 items on this page are past their service level"),
        "{text}"
    );
    assert_eq!(browser.texts("table.queue tr.overdue").await.len(), 4);
    browser.screenshot("20-oversight-queue").await;

    // A confirms the first decision.
    let (first_id, first_heading) = &ids[0];
    browser
        .click(&format!("a[href='/decisions/{first_id}']"))
        .await;
    browser.expect_page(first_heading).await;
    browser
        .fill(
            "reason",
            "Income and affordability checked against payslips.",
        )
        .await;
    browser.press("Record").await;
    browser.expect_page(first_heading).await;
    browser.expect_text("in your name").await;
    let first = format!("/decisions/{first_id}");
    until_shown(
        &browser,
        &server,
        &first,
        &format!("by {REVIEWER_A}: confirmed"),
    )
    .await;
    browser.open(&server, "/oversight").await;
    browser.expect_page("Oversight").await;
    assert_eq!(
        browser.texts("table.queue tbody tr").await.len(),
        3,
        "it left the queue"
    );
    browser.sign_out().await;

    // The administrator turns four eyes on.
    browser.sign_in(&server, ADMIN_EMAIL, PASSWORD).await;
    browser.follow("Settings").await;
    browser.expect_page("Settings").await;
    browser.click("main input[name='four_eyes']").await;
    browser.press("Save").await;
    browser.expect_page("Settings").await;
    browser.expect_text("Settings saved").await;
    browser.screenshot("21-settings-four-eyes").await;
    browser.sign_out().await;

    // A proposes an override of the second decision.
    browser.sign_in(&server, REVIEWER_A, PASSWORD).await;
    let (second_id, second_heading) = &ids[1];
    let second = format!("/decisions/{second_id}");
    browser.open(&server, &second).await;
    browser.expect_page(second_heading).await;
    browser.expect_text("Four eyes are on").await;
    browser
        .click("main select[name='act'] option[value='override']")
        .await;
    browser.fill("new_outcome", "decline").await;
    browser
        .fill(
            "reason",
            "Debt-to-income ratio of 52 % is above the policy limit of 45 %.",
        )
        .await;
    browser.press("Record").await;
    browser.expect_page(second_heading).await;
    until_shown(&browser, &server, &second, "Override awaiting approval").await;
    browser.expect_text("override pending approval").await;
    scroll_to(&browser, "ol.timeline").await;
    browser.screenshot("22-decision-override-pending").await;

    // A's own approval is refused.
    browser.fill("reason", "Approving my own proposal.").await;
    browser.press("Approve override").await;
    browser.expect_page("Not approved").await;
    browser.expect_text("you cannot approve it").await;
    browser.screenshot("23-self-approval-refused").await;
    browser.open(&server, "/").await;
    browser.expect_page("Dashboard").await;
    browser.sign_out().await;

    // B finds it in the queue and approves.
    browser.sign_in(&server, REVIEWER_B, PASSWORD).await;
    browser
        .open(&server, "/oversight?kind=pending_approval")
        .await;
    browser.expect_page("Oversight").await;
    assert!(
        browser.text().await.contains(REVIEWER_A),
        "the proposer is named"
    );
    browser.screenshot("24-oversight-pending-approval").await;
    browser
        .click(&format!("a[href='/decisions/{second_id}']"))
        .await;
    browser.expect_page(second_heading).await;
    browser
        .fill("reason", "Checked the bureau file; the ratio is right.")
        .await;
    browser.press("Approve override").await;
    browser.expect_page(second_heading).await;
    let both = format!("proposed by {REVIEWER_A}, approved by {REVIEWER_B}");
    until_shown(&browser, &server, &second, &both).await;
    let text = browser.text().await;
    assert!(
        !text.contains("Override awaiting approval"),
        "no longer pending"
    );
    let decision = server
        .store
        .decision_view(&server.tenant, EventId::parse(second_id).expect("id"))
        .await
        .expect("view")
        .expect("row")
        .0;
    assert_eq!(decision.current_outcome, "decline");
    assert!(text.contains("decline"), "the page shows the new outcome");
    scroll_to(&browser, "ol.timeline").await;
    browser.screenshot("25-decision-override-approved").await;

    browser.quit().await;
    server.stop().await;
}
