//! Human oversight in the portal (EU AI Act Art. 14, GDPR Art. 22(3)): the queue page, the
//! reviewer's forms on a decision's page, the four-eyes approval of overrides and the tenant's
//! oversight settings.
//!
//! A reviewer's act is not audited by a separate `access` record: it *is* a signed ledger
//! record (`human_review` or `override`) naming the signed-in person, appended by
//! `Store::record_oversight` and friends through the door the API uses. Changing the settings
//! is an administrator's act and is recorded as an `administration` record before it is done,
//! like every other portal change. Every form passes the CSRF check, then the role check.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Admitted, admit, nonempty, parse_id, require};
use crate::app::AppState;
use crate::portal::input::{FormFields, PortalQuery, number};
use crate::portal::pages::{csrf_field, layout, notice, when};
use crate::portal::{Portal, PortalError, Viewer};
use crate::store::oversight::{
    Act, OversightError, OversightSettings, Proposal, ProposalState, QueueKind, QueueQuery,
    SLA_HOURS_MAX, resolution_id,
};
use crate::store::users::PortalRole;

/// Roles that record reviews, overrides and answers, and approve overrides.
pub(super) const REVIEWERS: &[PortalRole] = &[PortalRole::Admin, PortalRole::Compliance];

/// Roles that see the queue (auditors read it; regulators see decisions, not the work queue).
pub(super) const QUEUE_READERS: &[PortalRole] = &[
    PortalRole::Admin,
    PortalRole::Compliance,
    PortalRole::Auditor,
];

/// Items per page of the queue.
const QUEUE_PAGE_ROWS: u32 = 50;

fn kind_label(kind: QueueKind) -> &'static str {
    match kind {
        QueueKind::AwaitingReview => "Awaiting review",
        QueueKind::Contested => "Contested",
        QueueKind::ExplanationRequested => "Explanation requested",
        QueueKind::PendingApproval => "Override awaiting approval",
    }
}

/// A duration for people: `3 d 4 h`, `5 h 12 min`, `12 min`.
fn span(us: i64) -> String {
    let minutes = us.max(0) / 60_000_000;
    let (d, h, m) = (minutes / 1440, (minutes / 60) % 24, minutes % 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else {
        format!("{m} min")
    }
}

/// The queue page's filters and its next page (`after`); no other parameter is taken.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct QueueForm {
    kind: Option<String>,
    model_id: Option<String>,
    min_age_hours: Option<String>,
    after: Option<String>,
}

/// `GET /oversight`: one kind of the queue, filtered, oldest decisions first.
pub(super) async fn queue_page(
    State(state): State<AppState>,
    viewer: Viewer,
    PortalQuery(q): PortalQuery<QueueForm>,
) -> Result<Response, PortalError> {
    require(&viewer, QUEUE_READERS)?;
    let after: Option<u64> = number("after", q.after.as_deref())?;
    let kind = match nonempty(&q.kind) {
        None => QueueKind::AwaitingReview,
        Some(k) => QueueKind::parse(&k).ok_or_else(|| {
            PortalError::BadRequest(format!(
                "kind: {k:?} is not one of awaiting_review, contested, explanation_requested, pending_approval."
            ))
        })?,
    };
    let min_age_hours = match nonempty(&q.min_age_hours) {
        None => None,
        Some(h) => Some(
            h.parse::<u32>()
                .ok()
                .filter(|h| *h <= SLA_HOURS_MAX)
                .ok_or_else(|| {
                    PortalError::BadRequest(format!(
                        "min_age_hours: {h:?} is not a whole number of hours between 0 and {SLA_HOURS_MAX}."
                    ))
                })?,
        ),
    };
    let model_id = nonempty(&q.model_id);
    let store = &state.store;
    let tenant = viewer.tenant();
    let page = store
        .oversight_queue(
            tenant,
            &QueueQuery {
                kind,
                model_id: model_id.clone(),
                min_age_hours,
                after,
                limit: QUEUE_PAGE_ROWS,
            },
        )
        .await?;
    let settings = page.settings;
    let now = store.now_us();
    let link = |kind: QueueKind, after: Option<u64>| {
        let mut params = url::form_urlencoded::Serializer::new(String::new());
        params.append_pair("kind", kind.as_str());
        if let Some(m) = &model_id {
            params.append_pair("model_id", m);
        }
        if let Some(h) = min_age_hours {
            params.append_pair("min_age_hours", &h.to_string());
        }
        if let Some(a) = after {
            params.append_pair("after", &a.to_string());
        }
        format!("/oversight?{}", params.finish())
    };
    let overdue = page.items.iter().filter(|i| i.overdue(now)).count();
    let body = html! {
        h1 { "Oversight" }
        p.muted {
            "Decisions and requests that wait for a person (EU AI Act Art. 14, GDPR Art. 22(3)). "
            "Service levels: review " (settings.review_sla_hours) " h, contest " (settings.contest_sla_hours)
            " h, explanation " (settings.explanation_sla_hours) " h. Four eyes on overrides: "
            strong { @if settings.four_eyes { "on" } @else { "off" } } "."
        }
        nav.tabs aria-label="Queue" {
            ul {
                @for k in QueueKind::ALL {
                    li {
                        @if k == kind {
                            a href=(link(k, None)) aria-current="page" { (kind_label(k)) }
                        } @else {
                            a href=(link(k, None)) { (kind_label(k)) }
                        }
                    }
                }
            }
        }
        form.grid method="get" action="/oversight" {
            label { "Kind"
                select name="kind" {
                    @for k in QueueKind::ALL {
                        option value=(k.as_str()) selected[k == kind] { (kind_label(k)) }
                    }
                }
            }
            label { "Model" input name="model_id" value=(model_id.clone().unwrap_or_default()) placeholder="any model"; }
            label { "Waiting at least (hours)" input name="min_age_hours" type="number" min="0" max=(SLA_HOURS_MAX) value=(min_age_hours.map(|h| h.to_string()).unwrap_or_default()); }
            button type="submit" { "Filter" }
        }
        h2 { (kind_label(kind)) }
        @if page.items.is_empty() {
            (notice("Nothing waits here."))
        } @else {
            @if overdue > 0 {
                p.error role="status" { (overdue) " of " (page.items.len()) " items on this page are past their service level." }
            }
            table.queue {
                thead { tr {
                    th scope="col" { "Decision" }
                    th scope="col" { "Model" }
                    th scope="col" { "Subject" }
                    th scope="col" { "Outcome in force" }
                    @if kind == QueueKind::PendingApproval { th scope="col" { "Proposed" } }
                    th scope="col" { "Waiting" }
                    th scope="col" { "Service level" }
                } }
                tbody {
                    @for item in &page.items {
                        tr class=[item.overdue(now).then_some("overdue")] {
                            td { a href={ "/decisions/" (item.decision_id) } { "Decision " (item.decision_seq) } }
                            td { (item.model) }
                            td { (item.subject_ref) }
                            td { (item.outcome) }
                            @if let Some(p) = &item.proposal {
                                td { strong { (p.proposed_outcome) } br; span.muted { "by " (p.proposer) } }
                            }
                            td { (span(now - item.since_us)) br; span.muted { "since " (when(item.since_us)) } }
                            td {
                                @if item.overdue(now) {
                                    span.bad { "Overdue by " (span(now - item.due_us)) }
                                } @else {
                                    span.ok { "Due in " (span(item.due_us - now)) }
                                }
                                br; span.muted { (when(item.due_us)) }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(after) = page.next_cursor {
            p { a href=(link(kind, Some(after))) { "Next page" } }
        }
    };
    Ok(layout("Oversight", &viewer.chrome(), body).into_response())
}

/// What the decision page shows of oversight: a note per timeline entry (pending, approved by,
/// withdrawn by) and the reviewer's forms.
pub(super) struct DecisionOversight {
    notes: BTreeMap<String, String>,
    proposals: Vec<Proposal>,
    four_eyes: bool,
    reviewer: bool,
}

impl DecisionOversight {
    /// Reads the proposals of the decision's actions from the ledger.
    ///
    /// # Errors
    /// A store failure.
    pub(super) async fn load(
        state: &AppState,
        viewer: &Viewer,
        actions: &[projections::OversightRow],
    ) -> Result<DecisionOversight, PortalError> {
        let store = &state.store;
        let proposals = store.proposals_of(viewer.tenant(), actions).await?;
        let mut notes = BTreeMap::new();
        for p in &proposals {
            let note = match &p.state {
                ProposalState::Pending => format!(
                    "proposes {}: pending, awaiting a second reviewer's approval",
                    p.proposed_outcome
                ),
                ProposalState::Approved(by) => {
                    format!("proposes {}: approved by {by}", p.proposed_outcome)
                }
                ProposalState::Closed(by) if *by == p.proposer => format!("withdrawn by {by}"),
                ProposalState::Closed(by) => format!("rejected by {by}"),
            };
            notes.insert(p.event_id.to_string(), note);
            if let ProposalState::Approved(by) = &p.state {
                notes.insert(
                    resolution_id(p.event_id).to_string(),
                    format!("proposed by {}, approved by {by} (four eyes)", p.proposer),
                );
            }
        }
        Ok(DecisionOversight {
            notes,
            proposals,
            four_eyes: store.oversight_settings(viewer.tenant()).await?.four_eyes,
            reviewer: REVIEWERS.contains(&viewer.role()),
        })
    }

    /// Whether an override of the decision awaits approval.
    pub(super) fn pending(&self) -> bool {
        self.proposals
            .iter()
            .any(|p| p.state == ProposalState::Pending)
    }

    /// The note of one timeline entry, if it has one.
    pub(super) fn note(&self, event_id: &str) -> Option<&str> {
        self.notes.get(event_id).map(String::as_str)
    }

    /// The pending proposals and the reviewer's forms.
    pub(super) fn section(&self, viewer: &Viewer, decision_id: &str) -> Markup {
        let pending: Vec<&Proposal> = self
            .proposals
            .iter()
            .filter(|p| p.state == ProposalState::Pending)
            .collect();
        html! {
            @for p in &pending {
                section.pending aria-label="Override awaiting approval" {
                    h3 { "Override awaiting approval" }
                    p {
                        "Proposed by " strong { (p.proposer) } " on " (when(p.captured_at_us))
                        ": new outcome " strong { (p.proposed_outcome) } "."
                    }
                    p.muted { (p.reason) }
                    @if self.reviewer {
                        div.actions {
                            form.stack method="post" action={ "/oversight/proposals/" (p.event_id) "/approve" } {
                                (csrf_field(&viewer.csrf))
                                label { "Reason for approval" textarea name="reason" rows="2" required {} }
                                button type="submit" { "Approve override" }
                            }
                            form.stack method="post" action={ "/oversight/proposals/" (p.event_id) "/close" } {
                                (csrf_field(&viewer.csrf))
                                @if p.proposer == viewer.user.email {
                                    label { "Reason for withdrawal" textarea name="reason" rows="2" required {} }
                                    button.secondary type="submit" { "Withdraw proposal" }
                                } @else {
                                    label { "Reason for rejection" textarea name="reason" rows="2" required {} }
                                    button.secondary type="submit" { "Reject proposal" }
                                }
                            }
                        }
                    }
                }
            }
            @if self.reviewer {
                h2 id="review" { "Record oversight" }
                @if self.four_eyes {
                    p.notice { "Four eyes are on: an override is recorded as a proposal and takes effect when a second reviewer approves it." }
                }
                form.stack method="post" action={ "/decisions/" (decision_id) "/oversight" } {
                    (csrf_field(&viewer.csrf))
                    label { "Action"
                        select name="act" {
                            option value="confirm" { "Confirm the decision" }
                            option value="answer_contest" { "Answer the contest" }
                            option value="provide_explanation" { "Provide the explanation" }
                            option value="override" { "Override the outcome" }
                        }
                    }
                    label { "New outcome (for an override)" input name="new_outcome" maxlength="1024"; }
                    label { "Reason (kept in the ledger)" textarea name="reason" rows="3" required {} }
                    button type="submit" { "Record" }
                }
            }
        }
    }
}

/// What a refused act says; nothing was recorded in each case.
fn refusal(e: OversightError) -> PortalError {
    let refused = |status, title, message: String| PortalError::Refused {
        status,
        title,
        message,
        retry_after: None,
    };
    match e {
        OversightError::NotFound(_) => PortalError::NotFound,
        OversightError::Invalid { field, problem } => refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Not recorded",
            format!(
                "The {} {problem}. Nothing was recorded.",
                field.replace('_', " ")
            ),
        ),
        OversightError::SelfApproval => refused(
            StatusCode::CONFLICT,
            "Not approved",
            "You proposed this override, so you cannot approve it: four eyes need a second, \
             different reviewer. Nothing was recorded."
                .to_owned(),
        ),
        OversightError::AlreadyApproved => refused(
            StatusCode::CONFLICT,
            "Not approved",
            "This override was approved already. Nothing was recorded.".to_owned(),
        ),
        OversightError::Closed => refused(
            StatusCode::CONFLICT,
            "Not approved",
            "This proposal was withdrawn or rejected. Nothing was recorded.".to_owned(),
        ),
        OversightError::ProposalPending(_) => refused(
            StatusCode::CONFLICT,
            "Not proposed",
            "An override of this decision is proposed already and waits for a second reviewer. \
             It must be approved, rejected or withdrawn before another can be proposed. Nothing \
             was recorded."
                .to_owned(),
        ),
        OversightError::Decided => refused(
            StatusCode::CONFLICT,
            "Not recorded",
            "Another reviewer decided this proposal at the same moment. Reload the decision to \
             see what was recorded. Nothing was recorded for you."
                .to_owned(),
        ),
        OversightError::Append(e) => PortalError::AuditUnavailable(e.to_string()),
        OversightError::Store(e) => PortalError::Internal(e.to_string()),
    }
}

/// Back to the decision, saying which record was appended.
fn recorded(decision_id: &str, seq: u64) -> Response {
    Redirect::to(&format!("/decisions/{decision_id}?recorded={seq}")).into_response()
}

/// `POST /decisions/{id}/oversight`: a review, an answer or an override (a proposal under four
/// eyes), with a mandatory reason.
pub(super) async fn record(
    State(state): State<AppState>,
    axum::Extension(portal): axum::Extension<Portal>,
    viewer: Viewer,
    Path(id): Path<String>,
    form: FormFields,
) -> Result<Response, PortalError> {
    let reviewer: Admitted<'_> = admit(&state, &portal, &viewer, form.get("csrf"), REVIEWERS)?;
    let decision_id = parse_id(&id)?;
    let act = match form.get("act") {
        "confirm" => Act::Confirm,
        "answer_contest" => Act::AnswerContest,
        "provide_explanation" => Act::ProvideExplanation,
        "override" => Act::Override {
            new_outcome: form.get("new_outcome").to_owned(),
        },
        other => {
            return Err(PortalError::BadRequest(format!(
                "act: {other:?} is not one of confirm, answer_contest, provide_explanation, override."
            )));
        }
    };
    let receipt = reviewer
        .store
        .record_oversight(
            viewer.tenant(),
            decision_id,
            &viewer.user.email,
            &act,
            form.get("reason"),
        )
        .await
        .map_err(refusal)?;
    Ok(recorded(&decision_id.to_string(), receipt.seq))
}

/// What a second reviewer (or the proposer) does with a proposal.
#[derive(Clone, Copy)]
enum Verdict {
    Approve,
    Close,
}

/// `POST /oversight/proposals/{id}/approve`: a second reviewer approves an override.
pub(super) async fn approve(
    State(state): State<AppState>,
    axum::Extension(portal): axum::Extension<Portal>,
    viewer: Viewer,
    Path(id): Path<String>,
    form: FormFields,
) -> Result<Response, PortalError> {
    resolve(&state, &portal, &viewer, &id, &form, Verdict::Approve).await
}

/// `POST /oversight/proposals/{id}/close`: the proposer withdraws, another reviewer rejects.
pub(super) async fn close(
    State(state): State<AppState>,
    axum::Extension(portal): axum::Extension<Portal>,
    viewer: Viewer,
    Path(id): Path<String>,
    form: FormFields,
) -> Result<Response, PortalError> {
    resolve(&state, &portal, &viewer, &id, &form, Verdict::Close).await
}

/// The two proposal forms: admitted (CSRF, then role), then the store's refusals or the record.
async fn resolve(
    state: &AppState,
    portal: &Portal,
    viewer: &Viewer,
    id: &str,
    form: &FormFields,
    verdict: Verdict,
) -> Result<Response, PortalError> {
    let reviewer = admit(state, portal, viewer, form.get("csrf"), REVIEWERS)?;
    let proposal = parse_id(id)?;
    let (tenant, email, reason) = (viewer.tenant(), &viewer.user.email, form.get("reason"));
    let receipt = match verdict {
        Verdict::Approve => {
            reviewer
                .store
                .approve_override(tenant, proposal, email, reason)
                .await
        }
        Verdict::Close => {
            reviewer
                .store
                .close_proposal(tenant, proposal, email, reason)
                .await
        }
    }
    .map_err(refusal)?;
    let decision = decision_of(state, viewer, proposal).await?;
    Ok(recorded(&decision, receipt.seq))
}

async fn decision_of(
    state: &AppState,
    viewer: &Viewer,
    proposal: ledger::types::EventId,
) -> Result<String, PortalError> {
    state
        .store
        .proposal(viewer.tenant(), proposal)
        .await?
        .map(|p| p.decision_id.to_string())
        .ok_or(PortalError::NotFound)
}

/// The settings page's query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SettingsQuery {
    saved: Option<String>,
}

/// `GET /settings`: the tenant's oversight settings (administrators).
pub(super) async fn settings_page(
    State(state): State<AppState>,
    viewer: Viewer,
    PortalQuery(q): PortalQuery<SettingsQuery>,
) -> Result<Markup, PortalError> {
    require(&viewer, &[PortalRole::Admin])?;
    let s = state.store.oversight_settings(viewer.tenant()).await?;
    Ok(settings_markup(&viewer, &s, q.saved.is_some()))
}

fn settings_markup(viewer: &Viewer, s: &OversightSettings, saved: bool) -> Markup {
    layout(
        "Settings",
        &viewer.chrome(),
        html! {
            h1 { "Settings" }
            @if saved { (notice("Settings saved. The change is recorded in the ledger.")) }
            h2 { "Human oversight" }
            form.stack method="post" action="/settings/oversight" {
                (csrf_field(&viewer.csrf))
                label.choice {
                    input type="checkbox" name="four_eyes" value="on" checked[s.four_eyes];
                    "Four eyes: an override needs the approval of a second, different reviewer"
                }
                label { "Service level for a decision awaiting review (hours)"
                    input type="number" name="review_sla_hours" min="1" max=(SLA_HOURS_MAX) required value=(s.review_sla_hours); }
                label { "Service level for a contest (hours)"
                    input type="number" name="contest_sla_hours" min="1" max=(SLA_HOURS_MAX) required value=(s.contest_sla_hours); }
                label { "Service level for an explanation request (hours)"
                    input type="number" name="explanation_sla_hours" min="1" max=(SLA_HOURS_MAX) required value=(s.explanation_sla_hours); }
                button type="submit" { "Save" }
            }
        },
    )
}

/// `POST /settings/oversight`: checked, recorded (`administration`), then stored.
pub(super) async fn save_settings(
    State(state): State<AppState>,
    axum::Extension(portal): axum::Extension<Portal>,
    viewer: Viewer,
    form: FormFields,
) -> Result<Response, PortalError> {
    let admin = admit(
        &state,
        &portal,
        &viewer,
        form.get("csrf"),
        &[PortalRole::Admin],
    )?;
    let hours = |name: &'static str| {
        let text = form.get(name).trim();
        text.parse::<u32>()
            .ok()
            .filter(|h| (1..=SLA_HOURS_MAX).contains(h))
            .ok_or_else(|| PortalError::Refused {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                title: "Not saved",
                message: format!(
                    "{}: {text:?} is not a whole number of hours between 1 and {SLA_HOURS_MAX}. Nothing was changed.",
                    name.replace('_', " ")
                ),
                retry_after: None,
            })
    };
    let settings = OversightSettings {
        four_eyes: form.get("four_eyes") == "on",
        review_sla_hours: hours("review_sla_hours")?,
        contest_sla_hours: hours("contest_sla_hours")?,
        explanation_sla_hours: hours("explanation_sla_hours")?,
    };
    let target = format!(
        "four_eyes={} review_sla_hours={} contest_sla_hours={} explanation_sla_hours={}",
        if settings.four_eyes { "on" } else { "off" },
        settings.review_sla_hours,
        settings.contest_sla_hours,
        settings.explanation_sla_hours
    );
    let audited = admin
        .record("oversight_settings_set", Some(&target))
        .await?;
    let result = state
        .store
        .set_oversight_settings(viewer.tenant(), settings, &viewer.user.email)
        .await
        .map_err(refusal);
    audited
        .settle(&state.store, result, "the settings were not saved")
        .await?;
    Ok(Redirect::to("/settings?saved=1").into_response())
}

#[cfg(test)]
mod tests {
    use super::span;

    #[test]
    fn a_span_reads_in_the_largest_units_that_matter() {
        assert_eq!(span(0), "0 min");
        assert_eq!(span(-5), "0 min");
        assert_eq!(span(59 * 60_000_000), "59 min");
        assert_eq!(span(125 * 60_000_000), "2 h 5 min");
        assert_eq!(span((3 * 1440 + 4 * 60 + 7) * 60_000_000), "3 d 4 h");
    }
}
