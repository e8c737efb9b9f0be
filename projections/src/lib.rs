//! Read models of the Auditex ledger and the runner that keeps them up to date.
//!
//! The ledger is the source of truth; a projection is a query view derived from it that can be
//! thrown away and rebuilt from the ledger alone. Each [`Projection`] has a name, a version (bump
//! it when its meaning changes, and the service rebuilds it on startup), the tables where its
//! state lives, and a pure function that folds one record into a page of [`Changes`].
//!
//! Records are applied per tenant in sequence order. Sequence numbers are assigned under the
//! tenant's lock and commit in order, so reading a tenant's records by `seq >= position` never
//! skips one; no global position across tenants exists, which is why out-of-order commits across
//! tenants cannot make a projection miss a record (see docs/DESIGN.md).
//!
//! A follow-up (review, override, contest, explanation request, submission) changes the state of
//! the decision it names only when that decision is a `decision` record of the same tenant that
//! precedes it in the chain; the facts about that decision ([`DecisionFacts`]) are read from the
//! ledger, never from another projection, so each projection can be rebuilt on its own.
//!
//! The modules:
//! - [`views`]: the five projections (decisions, models, oversight, subjects, daily volumes);
//! - [`reference`]: a naive recomputation from the records, the oracle of the property tests;
//! - [`runner`]: catch-up, live tailing, rebuilds and lag, over any [`runner::ViewStore`].

#![forbid(unsafe_code)]

pub mod reference;
pub mod runner;
pub mod views;

use std::collections::{BTreeMap, HashMap};

use ledger::record::EventType;
use ledger::types::EventId;
use serde::Serialize;
use serde_json::{Map, Value};

pub use views::{ALL, Changes, by_name};

/// One record as projections see it: the signed envelope's fields that views use, and the
/// payload as parsed JSON. Erasable values (personal data) are never given to projections.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Sequence number in the tenant's chain.
    pub seq: u64,
    /// The record's event id.
    pub event_id: EventId,
    /// Its event type.
    pub event_type: EventType,
    /// Capture time, µs since the Unix epoch.
    pub captured_at_us: i64,
    /// The payload.
    pub payload: Map<String, Value>,
}

impl Event {
    /// A field of the payload. The projections look up some fifteen fields per record in
    /// payloads of about a dozen: comparing the names in turn (most differ in length) costs
    /// less than hashing the name for the map's index, which `perf` showed as the runner's
    /// hottest function during a rebuild.
    pub fn field(&self, field: &str) -> Option<&Value> {
        self.payload
            .iter()
            .find_map(|(name, value)| (name == field).then_some(value))
    }

    /// A string field of the payload.
    pub fn str(&self, field: &str) -> Option<&str> {
        self.field(field).and_then(Value::as_str)
    }

    /// The decisions this record names, each once, in the order given.
    pub fn linked(&self) -> Vec<EventId> {
        let mut ids = ledger::payload::linked_decisions(self.event_type, &self.payload);
        let mut seen = std::collections::HashSet::new();
        ids.retain(|id| seen.insert(*id));
        ids
    }
}

/// What a follow-up needs to know about the decision it names, read from the ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionFacts {
    /// The decision's sequence number.
    pub seq: u64,
    /// Model id.
    pub model_id: String,
    /// Model version.
    pub model_version: String,
    /// The subject reference.
    pub subject_ref: String,
}

impl DecisionFacts {
    /// The facts of a decision record, or `None` for any other record.
    pub fn of(event: &Event) -> Option<DecisionFacts> {
        if event.event_type != EventType::Decision {
            return None;
        }
        Some(DecisionFacts {
            seq: event.seq,
            model_id: event.str("model_id")?.to_owned(),
            model_version: event.str("model_version")?.to_owned(),
            subject_ref: event.str("subject_ref")?.to_owned(),
        })
    }
}

/// The decisions a page of records links to, keyed by event id. Only decisions of the page's
/// tenant are ever in it; [`Facts::get`] applies the "precedes in the chain" rule.
#[derive(Debug, Clone, Default)]
pub struct Facts(HashMap<EventId, DecisionFacts>);

impl Facts {
    /// Adds the facts of a decision.
    pub fn insert(&mut self, id: EventId, facts: DecisionFacts) {
        self.0.insert(id, facts);
    }

    /// The decision `id` as seen by the record at `seq`: known only if it precedes it.
    pub fn get(&self, id: &EventId, seq: u64) -> Option<&DecisionFacts> {
        self.0.get(id).filter(|f| f.seq < seq)
    }

    /// Whether `id` is already known.
    pub fn contains(&self, id: &EventId) -> bool {
        self.0.contains_key(id)
    }
}

/// The decisions view: one row per decision, with its status after follow-ups.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionRow {
    /// The decision's event id.
    pub event_id: EventId,
    /// Its sequence number.
    pub seq: u64,
    /// Model id.
    pub model_id: String,
    /// Model version.
    pub model_version: String,
    /// The model's outcome.
    pub outcome: String,
    /// The outcome in force: the last override's, or the model's.
    pub current_outcome: String,
    /// The model's score, if given.
    pub score: Option<f64>,
    /// The subject reference.
    pub subject_ref: String,
    /// When the model decided (the payload's `decided_at`), µs since the Unix epoch.
    pub decided_at_us: Option<i64>,
    /// When the ledger captured it, µs since the Unix epoch.
    pub captured_at_us: i64,
    /// The declared oversight mode.
    pub oversight_mode: String,
    /// `decided`, `awaiting_review`, `reviewed`, `overridden`, `contested` or `submitted`.
    pub status: String,
    /// Human reviews received.
    pub reviews: i64,
    /// Overrides received.
    pub overrides: i64,
    /// Contests received.
    pub contests: i64,
    /// Explanation requests received.
    pub explanation_requests: i64,
    /// Regulatory submissions that included it.
    pub submissions: i64,
    /// The reviewer of the last review or override.
    pub last_reviewer: Option<String>,
    /// Sequence number of the last record that changed this row.
    pub last_event_seq: u64,
}

/// The model inventory (SR 11-7): one row per model and version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelRow {
    /// Model id.
    pub model_id: String,
    /// Model version.
    pub model_version: String,
    /// First decision's capture time.
    pub first_seen_us: Option<i64>,
    /// Last decision's capture time.
    pub last_seen_us: Option<i64>,
    /// Decisions made.
    pub decisions: i64,
    /// Human reviews of its decisions.
    pub reviews: i64,
    /// Overrides of its decisions.
    pub overrides: i64,
    /// Contests of its decisions.
    pub contests: i64,
    /// Latest lifecycle change (`registered`, `validated`, `approved`, `deployed`, `retired`),
    /// or `unregistered` when no model-change record names it.
    pub status: String,
    /// Reference of the latest validation.
    pub validation_ref: Option<String>,
    /// When the latest validation was recorded.
    pub validated_at_us: Option<i64>,
    /// Reference of the latest approval.
    pub approval_ref: Option<String>,
    /// When the latest approval was recorded.
    pub approved_at_us: Option<i64>,
    /// Monitoring findings recorded.
    pub findings: i64,
    /// Sequence number of the latest model-change record.
    pub last_change_seq: Option<u64>,
    /// Decisions per model outcome.
    pub outcomes: BTreeMap<String, i64>,
}

/// One human-oversight action (EU AI Act Art. 14).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OversightRow {
    /// The action's sequence number.
    pub seq: u64,
    /// Its event id.
    pub event_id: EventId,
    /// `human_review`, `override`, `contest` or `explanation_request`.
    pub event_type: String,
    /// The decision it concerns.
    pub decision_id: EventId,
    /// Whether that decision precedes it in this tenant's chain.
    pub decision_known: bool,
    /// Who acted: the reviewer, or who requested an explanation.
    pub actor: Option<String>,
    /// The review's action (`confirmed`, ...), or the override's new outcome.
    pub action: Option<String>,
    /// The stated reason (a contest's statement).
    pub reason: Option<String>,
    /// Capture time.
    pub captured_at_us: i64,
}

/// One entry of the subject index (GDPR Art. 15, PIPEDA access requests).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubjectRow {
    /// The subject reference.
    pub subject_ref: String,
    /// The record's sequence number.
    pub seq: u64,
    /// Its event id.
    pub event_id: EventId,
    /// Its event type.
    pub event_type: String,
    /// For a follow-up, the (first) decision of this subject it names.
    pub decision_id: Option<EventId>,
    /// Capture time.
    pub captured_at_us: i64,
}

/// Decisions per day (UTC, by capture time), model and outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DailyRow {
    /// The day, `YYYY-MM-DD`.
    pub day: String,
    /// Model id.
    pub model_id: String,
    /// Model version.
    pub model_version: String,
    /// Outcome.
    pub outcome: String,
    /// Decisions.
    pub decisions: i64,
}

/// The whole content of every view for one tenant, in a canonical order (rows sorted by their
/// keys), so two ways of computing it can be compared with `==`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Views {
    /// Sorted by `seq`.
    pub decisions: Vec<DecisionRow>,
    /// Sorted by model id, version.
    pub models: Vec<ModelRow>,
    /// Sorted by `seq`.
    pub oversight: Vec<OversightRow>,
    /// Sorted by subject, `seq`.
    pub subjects: Vec<SubjectRow>,
    /// Sorted by day, model id, version, outcome.
    pub daily: Vec<DailyRow>,
}

impl Views {
    /// Sorts every view into the canonical order.
    pub fn sort(&mut self) {
        self.decisions.sort_by_key(|r| r.seq);
        self.models
            .sort_by(|a, b| (&a.model_id, &a.model_version).cmp(&(&b.model_id, &b.model_version)));
        self.oversight.sort_by_key(|r| r.seq);
        self.subjects
            .sort_by(|a, b| (&a.subject_ref, a.seq).cmp(&(&b.subject_ref, b.seq)));
        self.daily.sort_by(|a, b| {
            (&a.day, &a.model_id, &a.model_version, &a.outcome).cmp(&(
                &b.day,
                &b.model_id,
                &b.model_version,
                &b.outcome,
            ))
        });
    }
}

/// The UTC day (`YYYY-MM-DD`) of a capture time.
pub fn day_of(captured_at_us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(captured_at_us)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "invalid".to_owned())
}

/// Parses an RFC 3339 time to µs since the Unix epoch.
pub fn rfc3339_micros(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_micros())
}

/// The `human_review` actions that are steps of a four-eyes override (a proposal, its withdrawal
/// or its rejection) rather than reviews: they leave a decision's status, review count and last
/// reviewer as they were, so that a decision awaiting review or contested stays in the
/// oversight queue until the override is approved (FORMAT.md, "Four eyes").
pub const PROPOSAL_ACTIONS: &[&str] = &[
    "override_proposed",
    "override_withdrawn",
    "override_rejected",
];

/// Whether a `human_review` with this `action` is a step of a four-eyes override, not a review.
pub fn is_proposal_step(action: Option<&str>) -> bool {
    action.is_some_and(|a| PROPOSAL_ACTIONS.contains(&a))
}

/// Status of a decision when it is recorded: `awaiting_review` when a human must confirm it
/// (`human_in_the_loop`), `decided` otherwise.
pub fn initial_status(oversight_mode: &str) -> &'static str {
    if oversight_mode == "human_in_the_loop" {
        "awaiting_review"
    } else {
        "decided"
    }
}

/// The lifecycle status a model change sets, or `None` for a monitoring finding (which is
/// counted, not a status).
pub fn model_status_of(change: &str) -> Option<&str> {
    match change {
        "monitoring_finding" => None,
        other => Some(other),
    }
}
