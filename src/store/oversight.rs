//! Human oversight done in the portal (EU AI Act Art. 14, GDPR Art. 22(3)): the queue of what
//! awaits a person, the records a reviewer appends, and the four-eyes rule for overrides.
//!
//! Every act is a client record appended through [`Store::append`], the door the API uses:
//! `human_review` (a confirmation, an answer to a contest or an explanation request) or
//! `override`, naming the decision in `decision_id` and the signed-in person as `reviewer`.
//!
//! **Four eyes.** When the tenant's setting asks for it, an override is first a *proposal*: a
//! `human_review` with action `override_proposed` and the `proposed_outcome`. It ends in exactly
//! one *resolution*: the `override` (naming `proposal_id`, the proposer as `reviewer` and the
//! second person as `approved_by`), or a `human_review` `override_withdrawn` (by the proposer) or
//! `override_rejected` (by another reviewer). The resolution's event id is derived from the
//! proposal's ([`resolution_id`]), so the ledger's own rule — one event id, one record — makes
//! two approvals racing (even on two service nodes) produce one override: the second append is a
//! conflict (or the duplicate of the first) and is answered as "already decided". Whether a
//! proposal is still pending is therefore read from the ledger (is there a record at its
//! resolution id?), never from a table that could disagree with it.
//!
//! A decision has **at most one pending proposal**, by the same rule: the `n`th proposal on a
//! decision takes the event id [`proposal_id`] derives from the decision's id and `n`, and a
//! reviewer proposing takes the first `n` whose proposal is not in the ledger. Two reviewers
//! proposing at once (even on two nodes) find the same `n`; one proposal is appended, and the other
//! reviewer is told one is pending ([`OversightError::ProposalPending`]). So two proposals cannot
//! both be approved into two overrides of one decision.
//!
//! The queue is read from the views (decisions, oversight actions), tenant-scoped and one
//! bounded page at a time, and so trails the ledger by the views' lag.

use ledger::draft::prepare_client_draft;
use ledger::payload::{STRING_BYTES_MAX, TEXT_BYTES_MAX};
use ledger::record::{EventType, Record};
use ledger::types::{EventId, TenantId};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::views::{DecisionQuery, OversightQuery, PAGE_ROWS_MAX};
use super::{AppendError, Receipt, Store, StoreError};

/// Hours a decision awaiting review may wait before it is overdue, by default.
pub const REVIEW_SLA_HOURS_DEFAULT: u32 = 24;
/// Hours a contest may wait for an answer before it is overdue, by default.
pub const CONTEST_SLA_HOURS_DEFAULT: u32 = 72;
/// Hours an explanation request may wait before it is overdue, by default.
pub const EXPLANATION_SLA_HOURS_DEFAULT: u32 = 72;
/// The longest service level a tenant may set: one year.
pub const SLA_HOURS_MAX: u32 = 366 * 24;

/// The `human_review` action of a confirmation.
pub const ACTION_CONFIRMED: &str = "confirmed";
/// The `human_review` action answering a contest (GDPR Art. 22(3)).
pub const ACTION_CONTEST_ANSWERED: &str = "contest_answered";
/// The `human_review` action answering an explanation request (EU AI Act Art. 86).
pub const ACTION_EXPLANATION_PROVIDED: &str = "explanation_provided";
/// The `human_review` action of a proposed override awaiting a second reviewer.
pub const ACTION_OVERRIDE_PROPOSED: &str = "override_proposed";
/// The `human_review` action of a proposal withdrawn by its proposer.
pub const ACTION_OVERRIDE_WITHDRAWN: &str = "override_withdrawn";
/// The `human_review` action of a proposal rejected by another reviewer.
pub const ACTION_OVERRIDE_REJECTED: &str = "override_rejected";

/// A tenant's oversight settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OversightSettings {
    /// Whether an override needs a second, different reviewer's approval.
    pub four_eyes: bool,
    /// Hours a decision awaiting review may wait.
    pub review_sla_hours: u32,
    /// Hours a contest may wait.
    pub contest_sla_hours: u32,
    /// Hours an explanation request may wait.
    pub explanation_sla_hours: u32,
}

impl Default for OversightSettings {
    fn default() -> Self {
        OversightSettings {
            four_eyes: false,
            review_sla_hours: REVIEW_SLA_HOURS_DEFAULT,
            contest_sla_hours: CONTEST_SLA_HOURS_DEFAULT,
            explanation_sla_hours: EXPLANATION_SLA_HOURS_DEFAULT,
        }
    }
}

/// A stored service level, or the default when a row holds something no valid write made.
fn hours(stored: i64, default: u32) -> u32 {
    u32::try_from(stored)
        .ok()
        .filter(|h| (1..=SLA_HOURS_MAX).contains(h))
        .unwrap_or(default)
}

/// What a reviewer does to a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Act {
    /// Confirms the decision as it stands.
    Confirm,
    /// Answers the subject's contest (the decision stands unless overridden).
    AnswerContest,
    /// Answers an explanation request.
    ProvideExplanation,
    /// Replaces the outcome (a proposal when four eyes apply).
    Override {
        /// The new outcome.
        new_outcome: String,
    },
}

/// Why an oversight act was refused. Nothing was appended.
#[derive(Debug, thiserror::Error)]
pub enum OversightError {
    /// No such decision or proposal in this tenant (another tenant's ids are not found either).
    #[error("{0} was not found")]
    NotFound(&'static str),
    /// A field is missing or too long.
    #[error("{field}: {problem}")]
    Invalid {
        /// The form field.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The proposer tried to approve their own override.
    #[error("an override must be approved by a second reviewer, not by the one who proposed it")]
    SelfApproval,
    /// The proposal was approved already.
    #[error("this proposal was approved already")]
    AlreadyApproved,
    /// The proposal was withdrawn or rejected.
    #[error("this proposal was withdrawn or rejected and can no longer be approved")]
    Closed,
    /// The decision has a pending override proposal already: it is approved, rejected or
    /// withdrawn before another can be made.
    #[error(
        "an override of this decision is proposed already and waits for a second reviewer: approve, reject or withdraw it first"
    )]
    ProposalPending(EventId),
    /// Another reviewer resolved the proposal at the same moment (its record is not readable
    /// yet).
    #[error("another reviewer decided this proposal at the same moment")]
    Decided,
    /// The ledger refused or failed the append.
    #[error(transparent)]
    Append(#[from] AppendError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The event id of the one record that resolves a proposal (its approval, withdrawal or
/// rejection): a UUIDv7 with the proposal's timestamp and the rest taken from a SHA-256 of a
/// fixed label and the proposal's id. Derived, so that every node computes the same id and the
/// ledger's uniqueness of event ids admits one resolution.
pub fn resolution_id(proposal: EventId) -> EventId {
    let digest = Sha256::new()
        .chain_update(b"auditex oversight resolution v1")
        .chain_update(proposal.as_bytes())
        .finalize();
    derived_id(proposal, &digest)
}

/// The most override proposals one decision can have had (each approved, rejected or withdrawn
/// before the next): far more than any review needs, and a bound on the look-ups that find the
/// next free [`proposal_id`].
pub const PROPOSALS_PER_DECISION_MAX: u32 = 256;

/// The event id of the `n`th override proposal on `decision` (from 0): a UUIDv7 with the
/// decision's timestamp and the rest taken from a SHA-256 of a fixed label, the decision's id
/// and `n`. Derived, so that every node computes the same id for the next proposal and the
/// ledger's uniqueness of event ids admits one (see the module documentation).
pub fn proposal_id(decision: EventId, n: u32) -> EventId {
    let digest = Sha256::new()
        .chain_update(b"auditex oversight proposal v1")
        .chain_update(decision.as_bytes())
        .chain_update(n.to_be_bytes())
        .finalize();
    derived_id(decision, &digest)
}

/// A UUIDv7 with `base`'s timestamp and the first ten bytes of `digest`.
fn derived_id(base: EventId, digest: &[u8]) -> EventId {
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&base.as_bytes()[..6]);
    bytes[6..].copy_from_slice(&digest[..10]);
    bytes[6] = 0x70 | (bytes[6] & 0x0f);
    bytes[8] = 0x80 | (bytes[8] & 0x3f);
    EventId::from_bytes(bytes)
        .unwrap_or_else(|_| unreachable!("version and variant bits were just set"))
}

/// A proposal's state, read from the ledger.
#[derive(Debug, Clone, PartialEq)]
pub enum ProposalState {
    /// Waiting for a second reviewer.
    Pending,
    /// Approved: the override's approver.
    Approved(String),
    /// Withdrawn or rejected, by whom.
    Closed(String),
}

/// A proposed override, as its record says.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    /// The proposal's event id.
    pub event_id: EventId,
    /// Its sequence number.
    pub seq: u64,
    /// The decision.
    pub decision_id: EventId,
    /// Who proposed it.
    pub proposer: String,
    /// The outcome proposed.
    pub proposed_outcome: String,
    /// The proposer's reason.
    pub reason: String,
    /// When it was captured, µs.
    pub captured_at_us: i64,
    /// Pending, approved or closed.
    pub state: ProposalState,
}

/// What kind of item waits in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    /// A `human_in_the_loop` decision nobody has reviewed.
    AwaitingReview,
    /// A contested decision without an answer since.
    Contested,
    /// An explanation request without an answer since.
    ExplanationRequested,
    /// A proposed override waiting for a second reviewer.
    PendingApproval,
}

impl QueueKind {
    /// Every kind, in the order the page shows them.
    pub const ALL: [QueueKind; 4] = [
        QueueKind::AwaitingReview,
        QueueKind::Contested,
        QueueKind::ExplanationRequested,
        QueueKind::PendingApproval,
    ];

    /// The name in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueKind::AwaitingReview => "awaiting_review",
            QueueKind::Contested => "contested",
            QueueKind::ExplanationRequested => "explanation_requested",
            QueueKind::PendingApproval => "pending_approval",
        }
    }

    /// Parses the name in URLs.
    pub fn parse(text: &str) -> Option<QueueKind> {
        QueueKind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// The service level of this kind under `settings`, in hours (a proposal has the level of
    /// a review: the decision is still waiting for a human's final word).
    pub fn sla_hours(self, settings: &OversightSettings) -> u32 {
        match self {
            QueueKind::AwaitingReview | QueueKind::PendingApproval => settings.review_sla_hours,
            QueueKind::Contested => settings.contest_sla_hours,
            QueueKind::ExplanationRequested => settings.explanation_sla_hours,
        }
    }
}

/// Which items of the queue to list.
#[derive(Debug, Clone)]
pub struct QueueQuery {
    /// The kind.
    pub kind: QueueKind,
    /// Only decisions of this model.
    pub model_id: Option<String>,
    /// Only items waiting at least this many hours.
    pub min_age_hours: Option<u32>,
    /// Cursor: the last sequence number of the previous page.
    pub after: Option<u64>,
    /// Rows read from the view per page (1..=[`PAGE_ROWS_MAX`]).
    pub limit: u32,
}

/// One item of the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueItem {
    /// Its kind.
    pub kind: QueueKind,
    /// The decision.
    pub decision_id: EventId,
    /// The decision's sequence number.
    pub decision_seq: u64,
    /// Model id and version.
    pub model: String,
    /// The outcome in force.
    pub outcome: String,
    /// The subject reference.
    pub subject_ref: String,
    /// Since when it waits (the decision's, contest's, request's or proposal's capture), µs.
    pub since_us: i64,
    /// When it is due, µs.
    pub due_us: i64,
    /// The proposal, for [`QueueKind::PendingApproval`].
    pub proposal: Option<Proposal>,
}

impl QueueItem {
    /// The item of `kind` about decision `d`, waiting since `since_us` for `sla_us`.
    fn of(
        kind: QueueKind,
        d: projections::DecisionRow,
        since_us: i64,
        sla_us: i64,
        proposal: Option<Proposal>,
    ) -> QueueItem {
        QueueItem {
            kind,
            decision_id: d.event_id,
            decision_seq: d.seq,
            model: format!("{} {}", d.model_id, d.model_version),
            outcome: d.current_outcome,
            subject_ref: d.subject_ref,
            since_us,
            due_us: since_us.saturating_add(sla_us),
            proposal,
        }
    }

    /// Whether it is past its due time at `now_us`.
    pub fn overdue(&self, now_us: i64) -> bool {
        now_us > self.due_us
    }
}

/// One page of the queue.
#[derive(Debug, Clone)]
pub struct QueuePage {
    /// The items (oldest decision first for decisions; newest request first for requests).
    pub items: Vec<QueueItem>,
    /// Pass as `after` for the next page.
    pub next_cursor: Option<u64>,
    /// The settings the page was judged by (its service levels), read once for the page.
    pub settings: OversightSettings,
}

const HOUR_US: i64 = 3_600_000_000;

/// Looks at a proposal that lost a race before answering [`OversightError::Decided`].
const RACE_LOOKS_MAX: u32 = 40;
/// Between two such looks.
const RACE_LOOK_INTERVAL_MS: u64 = 25;

fn required_text(
    field: &'static str,
    value: &str,
    max_bytes: usize,
) -> Result<String, OversightError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(OversightError::Invalid {
            field,
            problem: "is required".into(),
        });
    }
    if value.len() > max_bytes {
        return Err(OversightError::Invalid {
            field,
            problem: format!("must be at most {max_bytes} bytes"),
        });
    }
    Ok(value.to_owned())
}

fn text_of(payload: &Value, name: &str) -> Option<String> {
    payload.get(name).and_then(Value::as_str).map(str::to_owned)
}

impl Store {
    /// The tenant's oversight settings (the defaults until an administrator changes them).
    ///
    /// # Errors
    /// A database error.
    pub async fn oversight_settings(
        &self,
        tenant: &TenantId,
    ) -> Result<OversightSettings, StoreError> {
        let defaults = OversightSettings::default();
        Ok(match self.backend().oversight_settings(tenant).await? {
            None => defaults,
            Some((four_eyes, review, contest, explanation)) => OversightSettings {
                four_eyes,
                review_sla_hours: hours(review, defaults.review_sla_hours),
                contest_sla_hours: hours(contest, defaults.contest_sla_hours),
                explanation_sla_hours: hours(explanation, defaults.explanation_sla_hours),
            },
        })
    }

    /// Replaces the tenant's oversight settings. The caller appends the `administration`
    /// record of the change first (the portal does).
    ///
    /// # Errors
    /// [`OversightError::Invalid`] for a service level outside 1..=[`SLA_HOURS_MAX`] (nothing
    /// is written), or a database error.
    pub async fn set_oversight_settings(
        &self,
        tenant: &TenantId,
        settings: OversightSettings,
        by: &str,
    ) -> Result<(), OversightError> {
        for (field, value) in [
            ("review_sla_hours", settings.review_sla_hours),
            ("contest_sla_hours", settings.contest_sla_hours),
            ("explanation_sla_hours", settings.explanation_sla_hours),
        ] {
            if !(1..=SLA_HOURS_MAX).contains(&value) {
                return Err(OversightError::Invalid {
                    field,
                    problem: format!("must be between 1 and {SLA_HOURS_MAX} hours"),
                });
            }
        }
        let tuple = (
            settings.four_eyes,
            i64::from(settings.review_sla_hours),
            i64::from(settings.contest_sla_hours),
            i64::from(settings.explanation_sla_hours),
        );
        self.backend()
            .set_oversight_settings(tenant, tuple, self.now_us(), by)
            .await?;
        Ok(())
    }

    /// Appends one client record of an oversight act, as the API would, and returns its
    /// receipt.
    async fn append_oversight(
        &self,
        tenant: &TenantId,
        event_id: EventId,
        event_type: EventType,
        payload: &Value,
    ) -> Result<Receipt, OversightError> {
        let draft = prepare_client_draft(
            &event_id.to_string(),
            event_type.as_str(),
            payload,
            &std::collections::BTreeMap::new(),
            rand::random,
        )
        .map_err(|errors| OversightError::Invalid {
            field: "record",
            problem: errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        })?;
        let mut receipts = self.append(tenant, vec![draft]).await?;
        receipts
            .pop()
            .ok_or_else(|| StoreError::Corrupt("an append returned no receipt".into()).into())
    }

    /// A record of this tenant by event id, if it has the expected type.
    async fn record_of_type(
        &self,
        tenant: &TenantId,
        id: EventId,
        event_type: EventType,
    ) -> Result<Option<(Record, Value)>, StoreError> {
        let Some(record) = self.record_by_event_id(tenant, id).await? else {
            return Ok(None);
        };
        if record.event_type != event_type {
            return Ok(None);
        }
        let payload = record
            .payload
            .to_value()
            .map_err(|e| StoreError::Corrupt(format!("payload of {id}: {e}")))?;
        Ok(Some((record, payload)))
    }

    /// Records a reviewer's act on a decision of this tenant, with a mandatory reason. Under
    /// four eyes an override is appended as a proposal (`human_review`, `override_proposed`).
    ///
    /// # Errors
    /// [`OversightError::NotFound`] for a decision that is not this tenant's,
    /// [`OversightError::Invalid`] for a missing or too long reason or outcome (nothing is
    /// appended), or the append's error.
    pub async fn record_oversight(
        &self,
        tenant: &TenantId,
        decision_id: EventId,
        reviewer: &str,
        act: &Act,
        reason: &str,
    ) -> Result<Receipt, OversightError> {
        let reason = required_text("reason", reason, TEXT_BYTES_MAX)?;
        let reviewer = required_text("reviewer", reviewer, STRING_BYTES_MAX)?;
        let new_outcome = match act {
            Act::Override { new_outcome } => {
                Some(required_text("new_outcome", new_outcome, STRING_BYTES_MAX)?)
            }
            _ => None,
        };
        if self
            .record_of_type(tenant, decision_id, EventType::Decision)
            .await?
            .is_none()
        {
            return Err(OversightError::NotFound("decision"));
        }
        let four_eyes = self.oversight_settings(tenant).await?.four_eyes;
        let proposing = four_eyes && matches!(act, Act::Override { .. });
        let id = if proposing {
            self.next_proposal_id(tenant, decision_id).await?
        } else {
            EventId::from_bytes(*uuid::Uuid::now_v7().as_bytes())
                .map_err(|e| StoreError::Corrupt(e.to_string()))?
        };
        let decision = decision_id.to_string();
        let (event_type, payload) = match (act, new_outcome) {
            (Act::Override { .. }, Some(outcome)) if four_eyes => (
                EventType::HumanReview,
                json!({"decision_id": decision, "reviewer": reviewer, "action": ACTION_OVERRIDE_PROPOSED,
                       "proposed_outcome": outcome, "reason": reason}),
            ),
            (Act::Override { .. }, Some(outcome)) => (
                EventType::Override,
                json!({"decision_id": decision, "reviewer": reviewer, "new_outcome": outcome, "reason": reason}),
            ),
            (other, _) => {
                let action = match other {
                    Act::AnswerContest => ACTION_CONTEST_ANSWERED,
                    Act::ProvideExplanation => ACTION_EXPLANATION_PROVIDED,
                    _ => ACTION_CONFIRMED,
                };
                (
                    EventType::HumanReview,
                    json!({"decision_id": decision, "reviewer": reviewer, "action": action, "reason": reason}),
                )
            }
        };
        match self
            .append_oversight(tenant, id, event_type, &payload)
            .await
        {
            // Another reviewer's proposal took this id first.
            Err(OversightError::Append(AppendError::Conflict { .. })) if proposing => {
                Err(OversightError::ProposalPending(id))
            }
            other => other,
        }
    }

    /// The id the next override proposal on `decision` takes: the first [`proposal_id`] not in
    /// the ledger, or [`OversightError::ProposalPending`] when a proposal before it is pending.
    async fn next_proposal_id(
        &self,
        tenant: &TenantId,
        decision: EventId,
    ) -> Result<EventId, OversightError> {
        for n in 0..PROPOSALS_PER_DECISION_MAX {
            let id = proposal_id(decision, n);
            if self.record_by_event_id(tenant, id).await?.is_none() {
                return Ok(id);
            }
            // A record of another shape under the id (the API refuses the proposal forms, so
            // only a client could have put one there) is passed over like a closed proposal.
            if let Some(p) = self.proposal(tenant, id).await?
                && p.state == ProposalState::Pending
            {
                return Err(OversightError::ProposalPending(id));
            }
        }
        Err(OversightError::Invalid {
            field: "new_outcome",
            problem: format!(
                "cannot be proposed: this decision has had {PROPOSALS_PER_DECISION_MAX} override proposals"
            ),
        })
    }

    /// A proposed override of this tenant, with its state read from the ledger.
    ///
    /// # Errors
    /// A database error.
    pub async fn proposal(
        &self,
        tenant: &TenantId,
        id: EventId,
    ) -> Result<Option<Proposal>, StoreError> {
        let Some((record, payload)) = self
            .record_of_type(tenant, id, EventType::HumanReview)
            .await?
        else {
            return Ok(None);
        };
        if text_of(&payload, "action").as_deref() != Some(ACTION_OVERRIDE_PROPOSED) {
            return Ok(None);
        }
        let decision_id = text_of(&payload, "decision_id")
            .and_then(|d| EventId::parse(&d).ok())
            .ok_or_else(|| StoreError::Corrupt(format!("proposal {id} names no decision")))?;
        let state = match self.record_by_event_id(tenant, resolution_id(id)).await? {
            None => ProposalState::Pending,
            Some(r) => {
                let p = r
                    .payload
                    .to_value()
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                // Only a record that is this proposal's resolution counts as one: the API refuses
                // the resolution forms, but a record of another shape could still have been
                // appended under the derived id; it closes the proposal without approving it.
                let own = text_of(&p, "proposal_id").as_deref() == Some(id.to_string().as_str())
                    && text_of(&p, "decision_id").as_deref()
                        == Some(decision_id.to_string().as_str());
                let action = text_of(&p, "action");
                if r.event_type == EventType::Override && own {
                    ProposalState::Approved(text_of(&p, "approved_by").unwrap_or_default())
                } else if r.event_type == EventType::HumanReview
                    && own
                    && matches!(
                        action.as_deref(),
                        Some(ACTION_OVERRIDE_WITHDRAWN | ACTION_OVERRIDE_REJECTED)
                    )
                {
                    ProposalState::Closed(text_of(&p, "reviewer").unwrap_or_default())
                } else {
                    ProposalState::Closed(format!(
                        "an unrelated {} record (seq {}) under this proposal's resolution id",
                        r.event_type.as_str(),
                        r.seq
                    ))
                }
            }
        };
        Ok(Some(Proposal {
            event_id: id,
            seq: record.seq.get(),
            decision_id,
            proposer: text_of(&payload, "reviewer").unwrap_or_default(),
            proposed_outcome: text_of(&payload, "proposed_outcome").unwrap_or_default(),
            reason: text_of(&payload, "reason").unwrap_or_default(),
            captured_at_us: i64::try_from(record.captured_at_us.unix_micros()).unwrap_or(i64::MAX),
            state,
        }))
    }

    /// A pending proposal, or the refusal that applies to it.
    async fn pending_proposal(
        &self,
        tenant: &TenantId,
        id: EventId,
    ) -> Result<Proposal, OversightError> {
        let proposal = self
            .proposal(tenant, id)
            .await?
            .ok_or(OversightError::NotFound("proposal"))?;
        match proposal.state {
            ProposalState::Pending => Ok(proposal),
            ProposalState::Approved(_) => Err(OversightError::AlreadyApproved),
            ProposalState::Closed(_) => Err(OversightError::Closed),
        }
    }

    /// The checked person and reason of a resolution, and the pending proposal it resolves.
    async fn pending_for(
        &self,
        tenant: &TenantId,
        proposal: EventId,
        person: &str,
        reason: &str,
    ) -> Result<(Proposal, String, String), OversightError> {
        let reason = required_text("reason", reason, TEXT_BYTES_MAX)?;
        let person = required_text("reviewer", person, STRING_BYTES_MAX)?;
        Ok((
            self.pending_proposal(tenant, proposal).await?,
            person,
            reason,
        ))
    }

    /// Appends a proposal's one resolution; a lost race (another resolution came first) is
    /// answered with what that one was.
    async fn resolve(
        &self,
        tenant: &TenantId,
        proposal: EventId,
        event_type: EventType,
        payload: &Value,
    ) -> Result<Receipt, OversightError> {
        let id = resolution_id(proposal);
        match self.append_oversight(tenant, id, event_type, payload).await {
            Ok(receipt) if !receipt.duplicate => return Ok(receipt),
            // A duplicate or a conflict: another resolution came first.
            Ok(_) | Err(OversightError::Append(AppendError::Conflict { .. })) => {}
            Err(e) => return Err(e),
        }
        // The winner's record may still be committing (the appender answers a conflict within
        // its group before the group commits): look a few times, then say what is known.
        for _ in 0..RACE_LOOKS_MAX {
            self.pending_proposal(tenant, proposal).await?;
            tokio::time::sleep(std::time::Duration::from_millis(RACE_LOOK_INTERVAL_MS)).await;
        }
        Err(OversightError::Decided)
    }

    /// Approves a pending override proposal of this tenant: appends the `override`, naming the
    /// proposer as `reviewer` and `approver` as `approved_by`.
    ///
    /// # Errors
    /// [`OversightError::SelfApproval`] when the approver proposed it,
    /// [`OversightError::AlreadyApproved`] / [`OversightError::Closed`] when it is no longer
    /// pending (also for the loser of two approvals racing), [`OversightError::NotFound`] for
    /// an id that is not a proposal of this tenant, [`OversightError::Invalid`] without a
    /// reason. Nothing is appended then.
    pub async fn approve_override(
        &self,
        tenant: &TenantId,
        proposal: EventId,
        approver: &str,
        reason: &str,
    ) -> Result<Receipt, OversightError> {
        let (p, approver, reason) = self.pending_for(tenant, proposal, approver, reason).await?;
        if p.proposer == approver {
            return Err(OversightError::SelfApproval);
        }
        let payload = json!({
            "decision_id": p.decision_id.to_string(),
            "reviewer": p.proposer,
            "new_outcome": p.proposed_outcome,
            "reason": p.reason,
            "proposal_id": proposal.to_string(),
            "approved_by": approver,
            "approval_reason": reason,
        });
        self.resolve(tenant, proposal, EventType::Override, &payload)
            .await
    }

    /// Ends a pending proposal without an override: withdrawn when its proposer does it,
    /// rejected when another reviewer does.
    ///
    /// # Errors
    /// As [`Store::approve_override`], without the self-approval refusal.
    pub async fn close_proposal(
        &self,
        tenant: &TenantId,
        proposal: EventId,
        reviewer: &str,
        reason: &str,
    ) -> Result<Receipt, OversightError> {
        let (p, reviewer, reason) = self.pending_for(tenant, proposal, reviewer, reason).await?;
        let action = if p.proposer == reviewer {
            ACTION_OVERRIDE_WITHDRAWN
        } else {
            ACTION_OVERRIDE_REJECTED
        };
        let payload = json!({
            "decision_id": p.decision_id.to_string(),
            "reviewer": reviewer,
            "action": action,
            "reason": reason,
            "proposal_id": proposal.to_string(),
        });
        self.resolve(tenant, proposal, EventType::HumanReview, &payload)
            .await
    }

    /// One page of the oversight queue of this tenant.
    ///
    /// Decisions awaiting review and contested decisions come from the decisions view by
    /// status (oldest first); explanation requests and proposals from the oversight view
    /// (newest first), each checked against the actions on its decision since (at most
    /// [`PAGE_ROWS_MAX`] rows each), so a page may hold fewer items than rows read.
    ///
    /// # Errors
    /// A database error, or [`StoreError::ViewNotReady`] before the views exist.
    pub async fn oversight_queue(
        &self,
        tenant: &TenantId,
        query: &QueueQuery,
    ) -> Result<QueuePage, StoreError> {
        let settings = self.oversight_settings(tenant).await?;
        let sla_us = i64::from(query.kind.sla_hours(&settings)) * HOUR_US;
        let now = self.now_us();
        let oldest_allowed = query
            .min_age_hours
            .map(|h| now.saturating_sub(i64::from(h) * HOUR_US));
        let limit = query.limit.clamp(1, PAGE_ROWS_MAX);
        let mut items = Vec::new();
        let next_cursor;
        match query.kind {
            QueueKind::AwaitingReview | QueueKind::Contested => {
                let page = self
                    .search_decisions(
                        tenant,
                        &DecisionQuery {
                            model_id: query.model_id.clone(),
                            // The two kinds are named after the statuses they list.
                            status: Some(query.kind.as_str().to_owned()),
                            // `captured_until` is exclusive; waiting exactly the minimum counts.
                            captured_until: oldest_allowed
                                .filter(|_| query.kind == QueueKind::AwaitingReview)
                                .map(|t| t.saturating_add(1)),
                            ascending: true,
                            after: query.after,
                            limit,
                            ..DecisionQuery::default()
                        },
                    )
                    .await?;
                next_cursor = page.next_cursor.and_then(|c| c.parse().ok());
                for d in page.items {
                    let since = if query.kind == QueueKind::Contested {
                        // The contest's own time: the decision may be months older.
                        self.decision_view(tenant, d.event_id)
                            .await?
                            .and_then(|(_, actions)| {
                                actions
                                    .iter()
                                    .rev()
                                    .find(|a| a.event_type == "contest")
                                    .map(|a| a.captured_at_us)
                            })
                            .unwrap_or(d.captured_at_us)
                    } else {
                        d.captured_at_us
                    };
                    if oldest_allowed.is_some_and(|t| since > t) {
                        continue;
                    }
                    items.push(QueueItem::of(query.kind, d, since, sla_us, None));
                }
            }
            QueueKind::ExplanationRequested | QueueKind::PendingApproval => {
                let pending = query.kind == QueueKind::PendingApproval;
                let page = self
                    .oversight_actions(
                        tenant,
                        &OversightQuery {
                            event_type: Some(
                                if pending {
                                    "human_review"
                                } else {
                                    "explanation_request"
                                }
                                .to_owned(),
                            ),
                            action: pending.then(|| ACTION_OVERRIDE_PROPOSED.to_owned()),
                            after: query.after,
                            limit,
                            ..OversightQuery::default()
                        },
                    )
                    .await?;
                next_cursor = page.next_cursor.and_then(|c| c.parse().ok());
                for a in page.items {
                    if oldest_allowed.is_some_and(|t| a.captured_at_us > t) {
                        continue;
                    }
                    let Some((d, actions)) = self.decision_view(tenant, a.decision_id).await?
                    else {
                        continue;
                    };
                    if query.model_id.as_ref().is_some_and(|m| *m != d.model_id) {
                        continue;
                    }
                    let proposal = if pending {
                        let resolution = resolution_id(a.event_id);
                        if actions.iter().any(|x| x.event_id == resolution) {
                            continue;
                        }
                        match self.proposal(tenant, a.event_id).await? {
                            Some(p) if p.state == ProposalState::Pending => Some(p),
                            _ => continue,
                        }
                    } else {
                        let answered = actions.iter().any(|x| {
                            x.seq > a.seq
                                && x.event_type == "human_review"
                                && x.action.as_deref() == Some(ACTION_EXPLANATION_PROVIDED)
                        });
                        if answered {
                            continue;
                        }
                        None
                    };
                    items.push(QueueItem::of(
                        query.kind,
                        d,
                        a.captured_at_us,
                        sla_us,
                        proposal,
                    ));
                }
            }
        }
        Ok(QueuePage {
            items,
            next_cursor,
            settings,
        })
    }

    /// The override proposals of one decision, oldest first, with their state from the ledger
    /// (for the decision page).
    ///
    /// # Errors
    /// A database error.
    pub async fn proposals_of(
        &self,
        tenant: &TenantId,
        actions: &[projections::OversightRow],
    ) -> Result<Vec<Proposal>, StoreError> {
        let mut out = Vec::new();
        for a in actions.iter().filter(|a| {
            a.event_type == "human_review" && a.action.as_deref() == Some(ACTION_OVERRIDE_PROPOSED)
        }) {
            if let Some(p) = self.proposal(tenant, a.event_id).await? {
                out.push(p);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposal_ids_are_uuidv7s_fixed_by_their_decision_and_number_and_all_distinct() {
        let decision = EventId::parse("01936f5e-7b00-7c3d-8e4f-a1b2c3d4e5f7").expect("valid");
        let ids: std::collections::HashSet<EventId> = (0..PROPOSALS_PER_DECISION_MAX)
            .map(|n| proposal_id(decision, n))
            .collect();
        assert_eq!(ids.len(), PROPOSALS_PER_DECISION_MAX as usize);
        let first = proposal_id(decision, 0);
        assert_eq!(first, proposal_id(decision, 0));
        assert_ne!(first, decision);
        assert_ne!(first, resolution_id(decision));
        assert_eq!(EventId::parse(&first.to_string()).expect("a UUIDv7"), first);
        assert_eq!(&first.as_bytes()[..6], &decision.as_bytes()[..6]);
    }

    #[test]
    fn a_resolution_id_is_a_uuidv7_fixed_by_its_proposal_and_distinct_from_it() {
        let proposal = EventId::parse("01936f5e-7b00-7c3d-8e4f-a1b2c3d4e5f7").expect("valid");
        let a = resolution_id(proposal);
        assert_eq!(a, resolution_id(proposal));
        assert_ne!(a, proposal);
        assert_eq!(EventId::parse(&a.to_string()).expect("a UUIDv7"), a);
        assert_eq!(&a.as_bytes()[..6], &proposal.as_bytes()[..6]);
        let other = EventId::parse("01936f5e-7b00-7c3d-8e4f-a1b2c3d4e5f8").expect("valid");
        assert_ne!(resolution_id(other), a);
    }

    #[test]
    fn a_stored_service_level_outside_the_range_reads_as_the_default() {
        assert_eq!(hours(48, 72), 48);
        assert_eq!(hours(0, 72), 72);
        assert_eq!(hours(-5, 72), 72);
        assert_eq!(hours(i64::from(SLA_HOURS_MAX) + 1, 72), 72);
    }
}
