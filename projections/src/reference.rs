//! A naive recomputation of every view straight from a tenant's records: the oracle the property
//! tests compare the incrementally maintained tables with.
//!
//! It is written for obviousness, not speed, and shares no code with the projections' `apply`
//! beyond the small pure helpers of the crate root (day, time parsing, status names): it walks
//! the records once, keeps whole rows in maps and edits them in place.

use std::collections::{BTreeMap, HashMap};

use ledger::record::EventType;
use ledger::types::EventId;

use crate::{
    DailyRow, DecisionRow, Event, ModelRow, OversightRow, SubjectRow, Views, day_of,
    initial_status, is_proposal_step, model_status_of, rfc3339_micros,
};

/// Computes every view of one tenant from its records, given in sequence order.
pub fn compute(events: &[Event]) -> Views {
    let mut decisions: BTreeMap<EventId, DecisionRow> = BTreeMap::new();
    let mut models: BTreeMap<(String, String), ModelRow> = BTreeMap::new();
    let mut daily: BTreeMap<(String, String, String, String), i64> = BTreeMap::new();
    let mut views = Views::default();
    let mut seen: HashMap<EventId, u64> = HashMap::new();

    fn model<'m>(
        models: &'m mut BTreeMap<(String, String), ModelRow>,
        id: &str,
        version: &str,
    ) -> &'m mut ModelRow {
        models
            .entry((id.to_owned(), version.to_owned()))
            .or_insert_with(|| ModelRow {
                model_id: id.to_owned(),
                model_version: version.to_owned(),
                first_seen_us: None,
                last_seen_us: None,
                decisions: 0,
                reviews: 0,
                overrides: 0,
                contests: 0,
                status: "unregistered".to_owned(),
                validation_ref: None,
                validated_at_us: None,
                approval_ref: None,
                approved_at_us: None,
                findings: 0,
                last_change_seq: None,
                outcomes: BTreeMap::new(),
            })
    }

    for e in events {
        seen.insert(e.event_id, e.seq);
        let get = |f: &str| e.payload.get(f).and_then(|v| v.as_str()).map(str::to_owned);
        if e.event_type == EventType::Decision {
            let (Some(model_id), Some(version), Some(outcome), Some(subject)) = (
                get("model_id"),
                get("model_version"),
                get("outcome"),
                get("subject_ref"),
            ) else {
                continue;
            };
            let mode = get("oversight_mode").unwrap_or_default();
            decisions.insert(
                e.event_id,
                DecisionRow {
                    event_id: e.event_id,
                    seq: e.seq,
                    model_id: model_id.clone(),
                    model_version: version.clone(),
                    outcome: outcome.clone(),
                    current_outcome: outcome.clone(),
                    score: e.payload.get("score").and_then(|v| v.as_f64()),
                    subject_ref: subject.clone(),
                    decided_at_us: get("decided_at").as_deref().and_then(rfc3339_micros),
                    captured_at_us: e.captured_at_us,
                    status: initial_status(&mode).to_owned(),
                    oversight_mode: mode,
                    reviews: 0,
                    overrides: 0,
                    contests: 0,
                    explanation_requests: 0,
                    submissions: 0,
                    last_reviewer: None,
                    last_event_seq: e.seq,
                },
            );
            let m = model(&mut models, &model_id, &version);
            m.decisions += 1;
            m.first_seen_us = Some(m.first_seen_us.unwrap_or(e.captured_at_us));
            m.last_seen_us = Some(e.captured_at_us);
            *m.outcomes.entry(outcome.clone()).or_default() += 1;
            *daily
                .entry((day_of(e.captured_at_us), model_id, version, outcome))
                .or_default() += 1;
            views.subjects.push(SubjectRow {
                subject_ref: subject,
                seq: e.seq,
                event_id: e.event_id,
                event_type: "decision".to_owned(),
                decision_id: None,
                captured_at_us: e.captured_at_us,
            });
            continue;
        }
        if matches!(e.event_type, EventType::Erasure | EventType::LegalHold) {
            if let Some(subject) = get("subject_ref") {
                views.subjects.push(SubjectRow {
                    subject_ref: subject,
                    seq: e.seq,
                    event_id: e.event_id,
                    event_type: e.event_type.as_str().to_owned(),
                    decision_id: None,
                    captured_at_us: e.captured_at_us,
                });
            }
            continue;
        }
        if e.event_type == EventType::ModelChange {
            let (Some(id), Some(version), Some(change)) =
                (get("model_id"), get("model_version"), get("change"))
            else {
                continue;
            };
            let m = model(&mut models, &id, &version);
            m.last_change_seq = Some(e.seq);
            if let Some(status) = model_status_of(&change) {
                m.status = status.to_owned();
            } else {
                m.findings += 1;
            }
            if change == "validated" {
                m.validation_ref = get("reference");
                m.validated_at_us = Some(e.captured_at_us);
            }
            if change == "approved" {
                m.approval_ref = get("reference");
                m.approved_at_us = Some(e.captured_at_us);
            }
            continue;
        }
        // Follow-ups: the decisions they name, each once, in the order given.
        let mut linked: Vec<EventId> = Vec::new();
        let ids: Vec<String> = match e.event_type {
            EventType::Submission => e
                .payload
                .get("decision_ids")
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            EventType::HumanReview
            | EventType::Override
            | EventType::Contest
            | EventType::ExplanationRequest => get("decision_id").into_iter().collect(),
            _ => continue,
        };
        for id in ids {
            if let Ok(id) = EventId::parse(&id)
                && !linked.contains(&id)
            {
                linked.push(id);
            }
        }
        let mut subjects_done: Vec<String> = Vec::new();
        for id in linked {
            // Only a decision earlier in the chain counts (a later one cannot have been known).
            let known = decisions.contains_key(&id) && seen.get(&id).is_some_and(|s| *s < e.seq);
            if e.event_type != EventType::Submission {
                let (actor, action, reason) = match e.event_type {
                    EventType::HumanReview => (get("reviewer"), get("action"), get("reason")),
                    EventType::Override => (get("reviewer"), get("new_outcome"), get("reason")),
                    EventType::Contest => (None, None, get("statement")),
                    _ => (get("requested_by"), None, None),
                };
                views.oversight.push(OversightRow {
                    seq: e.seq,
                    event_id: e.event_id,
                    event_type: e.event_type.as_str().to_owned(),
                    decision_id: id,
                    decision_known: known,
                    actor,
                    action,
                    reason,
                    captured_at_us: e.captured_at_us,
                });
            }
            if !known {
                continue;
            }
            let Some(d) = decisions.get_mut(&id) else {
                continue;
            };
            d.last_event_seq = e.seq;
            let proposal_step = is_proposal_step(get("action").as_deref());
            match e.event_type {
                EventType::HumanReview if proposal_step => {}
                EventType::HumanReview => {
                    d.reviews += 1;
                    d.status = "reviewed".to_owned();
                    d.last_reviewer = get("reviewer").or(d.last_reviewer.take());
                }
                EventType::Override => {
                    d.overrides += 1;
                    d.status = "overridden".to_owned();
                    if let Some(o) = get("new_outcome") {
                        d.current_outcome = o;
                    }
                    d.last_reviewer = get("reviewer").or(d.last_reviewer.take());
                }
                EventType::Contest => {
                    d.contests += 1;
                    d.status = "contested".to_owned();
                }
                EventType::ExplanationRequest => d.explanation_requests += 1,
                _ => {
                    d.submissions += 1;
                    d.status = "submitted".to_owned();
                }
            }
            let (model_id, version, subject) = (
                d.model_id.clone(),
                d.model_version.clone(),
                d.subject_ref.clone(),
            );
            let m = model(&mut models, &model_id, &version);
            match e.event_type {
                EventType::HumanReview if proposal_step => {}
                EventType::HumanReview => m.reviews += 1,
                EventType::Override => m.overrides += 1,
                EventType::Contest => m.contests += 1,
                _ => {}
            }
            if !subjects_done.contains(&subject) {
                subjects_done.push(subject.clone());
                views.subjects.push(SubjectRow {
                    subject_ref: subject,
                    seq: e.seq,
                    event_id: e.event_id,
                    event_type: e.event_type.as_str().to_owned(),
                    decision_id: Some(id),
                    captured_at_us: e.captured_at_us,
                });
            }
        }
    }
    views.decisions = decisions.into_values().collect();
    views.models = models.into_values().collect();
    views.daily = daily
        .into_iter()
        .map(
            |((day, model_id, model_version, outcome), decisions)| DailyRow {
                day,
                model_id,
                model_version,
                outcome,
                decisions,
            },
        )
        .collect();
    views.sort();
    views
}
