//! The five projections and the page of changes they produce.
//!
//! A projection never reads its own tables while applying a record: it folds the record into
//! [`Changes`] — new rows, and additive or last-writer-wins deltas for rows that may already
//! exist — and the store turns a page of changes into a few bulk statements (inserts and
//! upserts) committed together with the new position. That keeps a rebuild at bulk-insert speed
//! on both backends, and makes applying a page a pure function the tests can check.

use std::collections::BTreeMap;

use ledger::record::EventType;
use ledger::types::EventId;

use crate::{
    DecisionRow, Event, Facts, OversightRow, SubjectRow, day_of, initial_status, is_proposal_step,
    model_status_of, rfc3339_micros,
};

/// A projection: a named, versioned view of the ledger.
pub trait Projection: Send + Sync {
    /// Its name (what `auditex projections rebuild NAME` takes).
    fn name(&self) -> &'static str;
    /// Its version; a new version is rebuilt on startup while the old one keeps serving.
    fn version(&self) -> u32;
    /// The tables where its state lives (each keyed by generation and tenant).
    fn tables(&self) -> &'static [&'static str];
    /// Folds one record into the page's changes. Records come in sequence order; `facts` knows
    /// every decision the record names that exists in the tenant's ledger.
    fn apply(&self, changes: &mut Changes, event: &Event, facts: &Facts);
}

/// Every projection, in the order they are applied.
pub static ALL: [&dyn Projection; 5] = [&Decisions, &Models, &Oversight, &Subjects, &Daily];

/// The projection called `name`.
pub fn by_name(name: &str) -> Option<&'static dyn Projection> {
    ALL.iter().copied().find(|p| p.name() == name)
}

/// What a page of records changes, per view.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Changes {
    /// New decision rows (with the page's own follow-ups already applied).
    pub decision_inserts: BTreeMap<EventId, DecisionRow>,
    /// Follow-ups to decisions of earlier pages.
    pub decision_patches: BTreeMap<EventId, DecisionPatch>,
    /// Per model and version.
    pub models: BTreeMap<(String, String), ModelDelta>,
    /// Decisions per model, version and outcome.
    pub model_outcomes: BTreeMap<(String, String, String), i64>,
    /// New oversight rows.
    pub oversight: Vec<OversightRow>,
    /// New subject-index rows.
    pub subjects: Vec<SubjectRow>,
    /// Decisions per day, model, version and outcome.
    pub daily: BTreeMap<(String, String, String, String), i64>,
}

impl Changes {
    /// Whether the page changes nothing.
    pub fn is_empty(&self) -> bool {
        self == &Changes::default()
    }

    /// Rows the page writes, roughly: its share of a commit's work.
    pub fn rows(&self) -> usize {
        self.decision_inserts.len()
            + self.decision_patches.len()
            + self.models.len()
            + self.model_outcomes.len()
            + self.oversight.len()
            + self.subjects.len()
            + self.daily.len()
    }
}

/// Follow-ups to one decision within a page: counters add up, the rest is the last writer's.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DecisionPatch {
    /// The decision's own sequence number: its row's key in the view, which the stores update
    /// it by.
    pub decision_seq: u64,
    /// Reviews to add.
    pub reviews: i64,
    /// Overrides to add.
    pub overrides: i64,
    /// Contests to add.
    pub contests: i64,
    /// Explanation requests to add.
    pub explanation_requests: i64,
    /// Submissions to add.
    pub submissions: i64,
    /// New status, if a follow-up set one.
    pub status: Option<String>,
    /// New outcome in force, if an override set one.
    pub current_outcome: Option<String>,
    /// New last reviewer, if a review or override named one.
    pub last_reviewer: Option<String>,
    /// The last follow-up's sequence number.
    pub last_event_seq: u64,
}

impl DecisionPatch {
    /// Applies the patch to a row (the same rule the stores' UPDATE statements implement).
    pub fn apply_to(&self, row: &mut DecisionRow) {
        row.reviews += self.reviews;
        row.overrides += self.overrides;
        row.contests += self.contests;
        row.explanation_requests += self.explanation_requests;
        row.submissions += self.submissions;
        if let Some(status) = &self.status {
            row.status.clone_from(status);
        }
        if let Some(outcome) = &self.current_outcome {
            row.current_outcome.clone_from(outcome);
        }
        if let Some(reviewer) = &self.last_reviewer {
            row.last_reviewer = Some(reviewer.clone());
        }
        row.last_event_seq = row.last_event_seq.max(self.last_event_seq);
    }
}

/// Changes to one model version within a page.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ModelDelta {
    /// Earliest decision capture time in the page.
    pub first_seen_us: Option<i64>,
    /// Latest decision capture time in the page.
    pub last_seen_us: Option<i64>,
    /// Decisions to add.
    pub decisions: i64,
    /// Reviews to add.
    pub reviews: i64,
    /// Overrides to add.
    pub overrides: i64,
    /// Contests to add.
    pub contests: i64,
    /// Findings to add.
    pub findings: i64,
    /// The last lifecycle status set in the page.
    pub status: Option<String>,
    /// The last model-change record's sequence number in the page.
    pub last_change_seq: Option<u64>,
    /// The last validation in the page: reference and capture time.
    pub validation: Option<(Option<String>, i64)>,
    /// The last approval in the page: reference and capture time.
    pub approval: Option<(Option<String>, i64)>,
}

fn model_delta<'c>(changes: &'c mut Changes, id: &str, version: &str) -> &'c mut ModelDelta {
    changes
        .models
        .entry((id.to_owned(), version.to_owned()))
        .or_default()
}

/// Applies the follow-up at `seq` to its decision (`decision`, at `decision_seq`): to the row
/// itself when the decision is new in this page, otherwise to the page's patch for it.
fn follow_up(
    changes: &mut Changes,
    (decision, decision_seq): (EventId, u64),
    seq: u64,
    f: impl Fn(&mut DecisionPatch),
) {
    let mut patch = DecisionPatch {
        decision_seq,
        last_event_seq: seq,
        ..DecisionPatch::default()
    };
    f(&mut patch);
    if let Some(row) = changes.decision_inserts.get_mut(&decision) {
        patch.apply_to(row);
        return;
    }
    let merged = changes.decision_patches.entry(decision).or_default();
    merged.decision_seq = decision_seq;
    merged.reviews += patch.reviews;
    merged.overrides += patch.overrides;
    merged.contests += patch.contests;
    merged.explanation_requests += patch.explanation_requests;
    merged.submissions += patch.submissions;
    if patch.status.is_some() {
        merged.status = patch.status;
    }
    if patch.current_outcome.is_some() {
        merged.current_outcome = patch.current_outcome;
    }
    if patch.last_reviewer.is_some() {
        merged.last_reviewer = patch.last_reviewer;
    }
    merged.last_event_seq = merged.last_event_seq.max(seq);
}

/// The decisions view.
pub struct Decisions;

impl Projection for Decisions {
    fn name(&self) -> &'static str {
        "decisions"
    }
    fn version(&self) -> u32 {
        2
    }
    fn tables(&self) -> &'static [&'static str] {
        &["proj_decisions"]
    }
    fn apply(&self, changes: &mut Changes, event: &Event, facts: &Facts) {
        let s = |f: &str| event.str(f).map(str::to_owned);
        match event.event_type {
            EventType::Decision => {
                let (Some(model_id), Some(model_version), Some(outcome), Some(subject_ref)) = (
                    s("model_id"),
                    s("model_version"),
                    s("outcome"),
                    s("subject_ref"),
                ) else {
                    return;
                };
                let mode = s("oversight_mode").unwrap_or_default();
                changes.decision_inserts.insert(
                    event.event_id,
                    DecisionRow {
                        event_id: event.event_id,
                        seq: event.seq,
                        model_id,
                        model_version,
                        current_outcome: outcome.clone(),
                        outcome,
                        score: event.field("score").and_then(serde_json::Value::as_f64),
                        subject_ref,
                        decided_at_us: event.str("decided_at").and_then(rfc3339_micros),
                        captured_at_us: event.captured_at_us,
                        status: initial_status(&mode).to_owned(),
                        oversight_mode: mode,
                        reviews: 0,
                        overrides: 0,
                        contests: 0,
                        explanation_requests: 0,
                        submissions: 0,
                        last_reviewer: None,
                        last_event_seq: event.seq,
                    },
                );
            }
            EventType::HumanReview
            | EventType::Override
            | EventType::Contest
            | EventType::ExplanationRequest
            | EventType::Submission => {
                for decision in event.linked() {
                    let Some(known) = facts.get(&decision, event.seq) else {
                        continue;
                    };
                    let target = (decision, known.seq);
                    follow_up(changes, target, event.seq, |p| match event.event_type {
                        EventType::HumanReview if is_proposal_step(event.str("action")) => {}
                        EventType::HumanReview => {
                            p.reviews = 1;
                            p.status = Some("reviewed".into());
                            p.last_reviewer = s("reviewer");
                        }
                        EventType::Override => {
                            p.overrides = 1;
                            p.status = Some("overridden".into());
                            p.current_outcome = s("new_outcome");
                            p.last_reviewer = s("reviewer");
                        }
                        EventType::Contest => {
                            p.contests = 1;
                            p.status = Some("contested".into());
                        }
                        EventType::ExplanationRequest => p.explanation_requests = 1,
                        _ => {
                            p.submissions = 1;
                            p.status = Some("submitted".into());
                        }
                    });
                }
            }
            _ => {}
        }
    }
}

/// The model inventory.
pub struct Models;

impl Projection for Models {
    fn name(&self) -> &'static str {
        "models"
    }
    fn version(&self) -> u32 {
        2
    }
    fn tables(&self) -> &'static [&'static str] {
        &["proj_models", "proj_model_outcomes"]
    }
    fn apply(&self, changes: &mut Changes, event: &Event, facts: &Facts) {
        match event.event_type {
            EventType::Decision => {
                let (Some(id), Some(version), Some(outcome)) = (
                    event.str("model_id"),
                    event.str("model_version"),
                    event.str("outcome"),
                ) else {
                    return;
                };
                let at = event.captured_at_us;
                let d = model_delta(changes, id, version);
                d.decisions += 1;
                d.first_seen_us = Some(d.first_seen_us.map_or(at, |t| t.min(at)));
                d.last_seen_us = Some(d.last_seen_us.map_or(at, |t| t.max(at)));
                *changes
                    .model_outcomes
                    .entry((id.to_owned(), version.to_owned(), outcome.to_owned()))
                    .or_default() += 1;
            }
            EventType::HumanReview | EventType::Override | EventType::Contest => {
                for decision in event.linked() {
                    let Some(f) = facts.get(&decision, event.seq) else {
                        continue;
                    };
                    let d = model_delta(changes, &f.model_id, &f.model_version);
                    match event.event_type {
                        EventType::HumanReview if is_proposal_step(event.str("action")) => {}
                        EventType::HumanReview => d.reviews += 1,
                        EventType::Override => d.overrides += 1,
                        _ => d.contests += 1,
                    }
                }
            }
            EventType::ModelChange => {
                let (Some(id), Some(version), Some(change)) = (
                    event.str("model_id"),
                    event.str("model_version"),
                    event.str("change"),
                ) else {
                    return;
                };
                let reference = event.str("reference").map(str::to_owned);
                let d = model_delta(changes, id, version);
                d.last_change_seq = Some(event.seq);
                match model_status_of(change) {
                    Some(status) => d.status = Some(status.to_owned()),
                    None => d.findings += 1,
                }
                match change {
                    "validated" => d.validation = Some((reference, event.captured_at_us)),
                    "approved" => d.approval = Some((reference, event.captured_at_us)),
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

/// The human-oversight view.
pub struct Oversight;

impl Projection for Oversight {
    fn name(&self) -> &'static str {
        "oversight"
    }
    fn version(&self) -> u32 {
        1
    }
    fn tables(&self) -> &'static [&'static str] {
        &["proj_oversight"]
    }
    fn apply(&self, changes: &mut Changes, event: &Event, facts: &Facts) {
        let s = |f: &str| event.str(f).map(str::to_owned);
        let (actor, action, reason) = match event.event_type {
            EventType::HumanReview => (s("reviewer"), s("action"), s("reason")),
            EventType::Override => (s("reviewer"), s("new_outcome"), s("reason")),
            EventType::Contest => (None, None, s("statement")),
            EventType::ExplanationRequest => (s("requested_by"), None, None),
            _ => return,
        };
        for decision in event.linked() {
            changes.oversight.push(OversightRow {
                seq: event.seq,
                event_id: event.event_id,
                event_type: event.event_type.as_str().to_owned(),
                decision_id: decision,
                decision_known: facts.get(&decision, event.seq).is_some(),
                actor: actor.clone(),
                action: action.clone(),
                reason: reason.clone(),
                captured_at_us: event.captured_at_us,
            });
        }
    }
}

/// The subject index.
pub struct Subjects;

impl Projection for Subjects {
    fn name(&self) -> &'static str {
        "subjects"
    }
    /// 2: the table keeps only subject, sequence number and decision (migration 0006).
    fn version(&self) -> u32 {
        2
    }
    fn tables(&self) -> &'static [&'static str] {
        &["proj_subjects"]
    }
    fn apply(&self, changes: &mut Changes, event: &Event, facts: &Facts) {
        let row = |subject: &str, decision_id: Option<EventId>| SubjectRow {
            subject_ref: subject.to_owned(),
            seq: event.seq,
            event_id: event.event_id,
            event_type: event.event_type.as_str().to_owned(),
            decision_id,
            captured_at_us: event.captured_at_us,
        };
        match event.event_type {
            // Records naming the subject themselves: decisions, erasures, legal holds.
            EventType::Decision | EventType::Erasure | EventType::LegalHold => {
                if let Some(subject) = event.str("subject_ref") {
                    changes.subjects.push(row(subject, None));
                }
            }
            _ => {
                // A follow-up concerns the subjects of the decisions it names: one entry per
                // subject, pointing at the first of that subject's decisions.
                let mut subjects: Vec<&str> = Vec::new();
                for decision in event.linked() {
                    let Some(f) = facts.get(&decision, event.seq) else {
                        continue;
                    };
                    if !subjects.contains(&f.subject_ref.as_str()) {
                        subjects.push(&f.subject_ref);
                        changes.subjects.push(row(&f.subject_ref, Some(decision)));
                    }
                }
            }
        }
    }
}

/// Daily volumes.
pub struct Daily;

impl Projection for Daily {
    fn name(&self) -> &'static str {
        "daily"
    }
    fn version(&self) -> u32 {
        1
    }
    fn tables(&self) -> &'static [&'static str] {
        &["proj_daily"]
    }
    fn apply(&self, changes: &mut Changes, event: &Event, _facts: &Facts) {
        if event.event_type != EventType::Decision {
            return;
        }
        let (Some(id), Some(version), Some(outcome)) = (
            event.str("model_id"),
            event.str("model_version"),
            event.str("outcome"),
        ) else {
            return;
        };
        *changes
            .daily
            .entry((
                day_of(event.captured_at_us),
                id.to_owned(),
                version.to_owned(),
                outcome.to_owned(),
            ))
            .or_default() += 1;
    }
}
