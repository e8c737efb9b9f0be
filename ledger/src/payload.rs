//! Payload schemas per event type, checked at the edge with precise, path-naming errors.
//!
//! A pipeline that sends a decision without `model_version`, a score that is a string, or an
//! unknown field (usually a typo) gets told exactly which field is wrong before anything is
//! sequenced. Follow-up events name the decision they concern by its event id in `decision_id`
//! (a submission lists several in `decision_ids`): that link is what builds a chain of custody.

use serde_json::{Map, Value};

use crate::canonical::push_pointer_token;
use crate::record::EventType;
use crate::types::EventId;

/// Longest ordinary string field, in bytes.
pub const STRING_BYTES_MAX: usize = 1024;

/// Longest free-text explanation or statement, in bytes.
pub const TEXT_BYTES_MAX: usize = 16 * 1024;

/// Most entries in a list field (reason codes, decision ids of a submission).
pub const LIST_ITEMS_MAX: usize = 1000;

/// Oversight modes a decision may declare (EU AI Act Art. 14).
pub const OVERSIGHT_MODES: &[&str] = &[
    "automated",
    "human_in_the_loop",
    "human_on_the_loop",
    "human_in_command",
];

/// Kinds of model change (SR 11-7 model lifecycle).
pub const MODEL_CHANGES: &[&str] = &[
    "registered",
    "validated",
    "approved",
    "deployed",
    "monitoring_finding",
    "retired",
];

/// Outcomes of an integrity check.
pub const INTEGRITY_OUTCOMES: &[&str] = &["passed", "failed", "cancelled"];

/// The `action` of a `legal_hold` record: a hold is placed, or a placed hold is lifted.
pub const LEGAL_HOLD_ACTIONS: &[&str] = &["placed", "lifted"];

/// The one character no string of a record may hold: U+0000. PostgreSQL `text` and `jsonb`
/// cannot store it, so a record holding it could be sealed on SQLite but never projected on
/// PostgreSQL; C-string tools downstream truncate at it. Refused at the edge, on every backend,
/// so that no acknowledged record is one that a view cannot hold (FORMAT.md, section 7).
pub const FORBIDDEN_CHAR: char = '\u{0}';

/// Every string and member name in `value` (found at the JSON Pointer `at`) that holds
/// [`FORBIDDEN_CHAR`], one error each, naming its pointer (a member name's error names the
/// member).
pub fn forbidden_characters(value: &Value, at: &str) -> Vec<FieldError> {
    /// One step below `at`: a member's name or an element's index. The walk keeps the steps
    /// and writes a pointer only for a place at fault, which nearly every payload lacks.
    enum Step<'a> {
        Name(&'a str),
        Index(usize),
    }
    fn pointer(at: &str, steps: &[Step<'_>]) -> String {
        let mut path = at.to_owned();
        for step in steps {
            path.push('/');
            match step {
                Step::Name(name) => push_pointer_token(&mut path, name),
                Step::Index(i) => path.push_str(&i.to_string()),
            }
        }
        path
    }
    fn walk<'a>(
        value: &'a Value,
        at: &str,
        steps: &mut Vec<Step<'a>>,
        errors: &mut Vec<FieldError>,
    ) {
        match value {
            Value::String(s) if s.contains(FORBIDDEN_CHAR) => errors.push(FieldError {
                path: pointer(at, steps),
                problem: "must not contain U+0000 (NUL)".into(),
            }),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    steps.push(Step::Index(i));
                    walk(item, at, steps, errors);
                    steps.pop();
                }
            }
            Value::Object(map) => {
                for (name, item) in map {
                    steps.push(Step::Name(name));
                    if name.contains(FORBIDDEN_CHAR) {
                        errors.push(FieldError {
                            path: pointer(at, steps),
                            problem: "member name must not contain U+0000 (NUL)".into(),
                        });
                    } else {
                        walk(item, at, steps, errors);
                    }
                    steps.pop();
                }
            }
            _ => {}
        }
    }
    let mut errors = Vec::new();
    walk(value, at, &mut Vec::new(), &mut errors);
    errors
}

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("{path}: {problem}")]
pub struct FieldError {
    /// JSON Pointer from the record root, e.g. `/payload/model_version`.
    pub path: String,
    /// What is wrong, in words.
    pub problem: String,
}

#[derive(Clone, Copy)]
enum Kind {
    Str(usize),
    Uuid7,
    Uuid7List,
    Sha256Hex,
    KeyIdHex,
    Rfc3339,
    Number,
    UInt,
    StrList,
    OneOf(&'static [&'static str]),
    Object,
}

struct Field {
    name: &'static str,
    kind: Kind,
    required: bool,
}

const fn req(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: true,
    }
}

const fn opt(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: false,
    }
}

const S: Kind = Kind::Str(STRING_BYTES_MAX);
const TEXT: Kind = Kind::Str(TEXT_BYTES_MAX);

/// The schema of each event type: its fields and whether fields not listed are accepted.
fn schema(event_type: EventType) -> (&'static [Field], bool) {
    use EventType as E;
    match event_type {
        E::Decision => {
            const F: &[Field] = &[
                req("model_id", S),
                req("model_version", S),
                req("input_commitment", Kind::Sha256Hex),
                req("outcome", S),
                opt("score", Kind::Number),
                opt("reason_codes", Kind::StrList),
                opt("explanation", TEXT),
                req("subject_ref", S),
                req("decided_at", Kind::Rfc3339),
                req("oversight_mode", Kind::OneOf(OVERSIGHT_MODES)),
                opt("attributes", Kind::Object),
            ];
            (F, false)
        }
        E::HumanReview => {
            const F: &[Field] = &[
                req("decision_id", Kind::Uuid7),
                req("reviewer", S),
                req("action", S),
                opt("reason", TEXT),
                opt("reviewed_at", Kind::Rfc3339),
                // Four eyes (FORMAT.md): a proposed override names its outcome; a withdrawal
                // or rejection names the proposal it ends.
                opt("proposed_outcome", S),
                opt("proposed_score", Kind::Number),
                opt("proposal_id", Kind::Uuid7),
            ];
            (F, false)
        }
        E::Override => {
            const F: &[Field] = &[
                req("decision_id", Kind::Uuid7),
                req("reviewer", S),
                req("new_outcome", S),
                opt("new_score", Kind::Number),
                req("reason", TEXT),
                // Four eyes (FORMAT.md): the approved proposal, its approver and their reason.
                opt("proposal_id", Kind::Uuid7),
                opt("approved_by", S),
                opt("approval_reason", TEXT),
            ];
            (F, false)
        }
        E::Contest => {
            const F: &[Field] = &[
                req("decision_id", Kind::Uuid7),
                opt("channel", S),
                opt("statement", TEXT),
                opt("received_at", Kind::Rfc3339),
            ];
            (F, false)
        }
        E::ExplanationRequest => {
            const F: &[Field] = &[
                req("decision_id", Kind::Uuid7),
                opt("requested_by", S),
                opt("channel", S),
            ];
            (F, false)
        }
        E::Submission => {
            const F: &[Field] = &[
                req("decision_ids", Kind::Uuid7List),
                req("regulator", S),
                req("reference", S),
                opt("submitted_at", Kind::Rfc3339),
            ];
            (F, false)
        }
        E::Erasure => {
            const F: &[Field] = &[
                req("subject_ref", S),
                req("reason", TEXT),
                opt("legal_basis", TEXT),
                opt("event_ids", Kind::Uuid7List),
                opt("fields", Kind::StrList),
            ];
            (F, false)
        }
        E::KeyRotation => {
            const F: &[Field] = &[
                req("new_key_id", Kind::KeyIdHex),
                req("new_public_key", Kind::Sha256Hex),
                req("effective_from_seq", Kind::UInt),
            ];
            (F, false)
        }
        E::ModelChange => {
            const F: &[Field] = &[
                req("model_id", S),
                req("model_version", S),
                req("change", Kind::OneOf(MODEL_CHANGES)),
                opt("reference", S),
                opt("actor", S),
                opt("notes", TEXT),
            ];
            (F, false)
        }
        E::IntegrityCheck => {
            const F: &[Field] = &[req("outcome", Kind::OneOf(INTEGRITY_OUTCOMES))];
            (F, true)
        }
        E::Access | E::Administration => {
            const F: &[Field] = &[req("actor", S), req("action", S), opt("target", S)];
            (F, true)
        }
        E::RollbackAcknowledged => {
            const F: &[Field] = &[req("operator", S), req("reason", TEXT)];
            (F, true)
        }
        E::LegalHold => {
            const F: &[Field] = &[
                req("action", Kind::OneOf(LEGAL_HOLD_ACTIONS)),
                req("subject_ref", S),
                req("reason", TEXT),
                opt("decision_id", Kind::Uuid7),
                opt("reference", S),
                opt("hold_seq", Kind::UInt),
            ];
            (F, false)
        }
    }
}

/// Checks a payload against its event type's schema.
///
/// # Errors
/// Every problem found, each with the JSON Pointer of the field (under `/payload`).
pub fn validate(event_type: EventType, payload: &Value) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    let Some(map) = payload.as_object() else {
        errors.push(FieldError {
            path: "/payload".into(),
            problem: "must be a JSON object".into(),
        });
        return Err(errors);
    };
    let (fields, extra_allowed) = schema(event_type);
    for field in fields {
        // The pointer is written only for a field at fault: most payloads have none.
        let path = || format!("/payload/{}", field.name);
        match map.get(field.name) {
            None | Some(Value::Null) if field.required => errors.push(FieldError {
                path: path(),
                problem: format!("is required for a {event_type} event"),
            }),
            None | Some(Value::Null) => {}
            Some(value) => {
                if let Err(problem) = check_kind(field.kind, value) {
                    errors.push(FieldError {
                        path: path(),
                        problem,
                    });
                }
            }
        }
    }
    if !extra_allowed {
        for key in map.keys() {
            if !fields.iter().any(|f| f.name == key) {
                let mut path = String::from("/payload/");
                push_pointer_token(&mut path, key);
                errors.push(FieldError {
                    path,
                    problem: format!(
                        "is not a field of a {event_type} event (allowed: {})",
                        fields.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
                    ),
                });
            }
        }
    }
    if event_type == EventType::LegalHold {
        legal_hold_rules(map, &mut errors);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// What a `legal_hold` payload needs beyond its fields' kinds: a lift names the hold it lifts
/// (`hold_seq`, the sequence number of the `placed` record); a placement names none.
fn legal_hold_rules(map: &Map<String, Value>, errors: &mut Vec<FieldError>) {
    let lifted = map.get("action").and_then(Value::as_str) == Some("lifted");
    let placed = map.get("action").and_then(Value::as_str) == Some("placed");
    let names_hold = map.get("hold_seq").is_some_and(|v| !v.is_null());
    if lifted && !names_hold {
        errors.push(FieldError {
            path: "/payload/hold_seq".into(),
            problem: "is required when action is lifted (the seq of the placed hold)".into(),
        });
    }
    if placed && names_hold {
        errors.push(FieldError {
            path: "/payload/hold_seq".into(),
            problem: "is only for action lifted".into(),
        });
    }
}

fn check_kind(kind: Kind, value: &Value) -> Result<(), String> {
    match kind {
        Kind::Str(max) => check_str(value, max).map(|_| ()),
        Kind::Uuid7 => {
            let s = check_str(value, 36)?;
            EventId::parse(s).map(|_| ()).map_err(|e| e.to_string())
        }
        Kind::Uuid7List => {
            let items = check_list(value)?;
            if items.is_empty() {
                return Err("must list at least one event id".into());
            }
            for (i, item) in items.iter().enumerate() {
                check_kind(Kind::Uuid7, item).map_err(|e| format!("item {i}: {e}"))?;
            }
            Ok(())
        }
        Kind::Sha256Hex => check_hex(value, 64),
        Kind::KeyIdHex => check_hex(value, 16),
        Kind::Rfc3339 => {
            let s = check_str(value, 64)?;
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|_| ())
                .map_err(|e| {
                    format!("must be an RFC 3339 date-time such as 2026-11-29T08:49:27Z ({e})")
                })
        }
        Kind::Number => {
            if value.is_number() {
                Ok(())
            } else {
                Err(format!("must be a number, not {}", type_name(value)))
            }
        }
        Kind::UInt => {
            if value.as_u64().is_some() {
                Ok(())
            } else {
                Err(format!(
                    "must be a non-negative integer, not {}",
                    type_name(value)
                ))
            }
        }
        Kind::StrList => {
            for (i, item) in check_list(value)?.iter().enumerate() {
                check_str(item, STRING_BYTES_MAX).map_err(|e| format!("item {i}: {e}"))?;
            }
            Ok(())
        }
        Kind::OneOf(allowed) => {
            let s = check_str(value, STRING_BYTES_MAX)?;
            if allowed.contains(&s) {
                Ok(())
            } else {
                Err(format!("must be one of {}", allowed.join(", ")))
            }
        }
        Kind::Object => {
            if value.is_object() {
                Ok(())
            } else {
                Err(format!("must be an object, not {}", type_name(value)))
            }
        }
    }
}

fn check_str(value: &Value, max: usize) -> Result<&str, String> {
    let Some(s) = value.as_str() else {
        return Err(format!("must be a string, not {}", type_name(value)));
    };
    if s.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > max {
        return Err(format!(
            "must be at most {max} bytes long (got {})",
            s.len()
        ));
    }
    Ok(s)
}

fn check_list(value: &Value) -> Result<&Vec<Value>, String> {
    let Some(items) = value.as_array() else {
        return Err(format!("must be an array, not {}", type_name(value)));
    };
    if items.len() > LIST_ITEMS_MAX {
        return Err(format!(
            "must have at most {LIST_ITEMS_MAX} items (got {})",
            items.len()
        ));
    }
    Ok(items)
}

fn check_hex(value: &Value, digits: usize) -> Result<(), String> {
    let s = check_str(value, digits)?;
    if s.len() == digits
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(format!("must be {digits} lowercase hex digits"))
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The decisions a record concerns: `decision_id` of a follow-up, each of a submission's
/// `decision_ids`, nothing for other events. Call on a validated payload.
pub fn linked_decisions(event_type: EventType, payload: &Map<String, Value>) -> Vec<EventId> {
    let parse = |v: &Value| v.as_str().and_then(|s| EventId::parse(s).ok());
    match event_type {
        EventType::HumanReview
        | EventType::Override
        | EventType::Contest
        | EventType::ExplanationRequest => payload
            .get("decision_id")
            .and_then(parse)
            .into_iter()
            .collect(),
        EventType::Submission => payload
            .get("decision_ids")
            .and_then(Value::as_array)
            .map(|ids| ids.iter().filter_map(parse).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Event types that a pipeline may append (through the API, the command line or the store's
/// public append); the rest are written by the service itself (key rotation, integrity checks,
/// portal audit events, rollback acknowledgements). [`crate::draft::ClientDraft`] enforces it.
pub fn is_client_event(event_type: EventType) -> bool {
    matches!(
        event_type,
        EventType::Decision
            | EventType::HumanReview
            | EventType::Override
            | EventType::Contest
            | EventType::ExplanationRequest
            | EventType::Submission
            | EventType::Erasure
            | EventType::ModelChange
            | EventType::LegalHold
    )
}

#[cfg(test)]
mod legal_hold_tests {
    use serde_json::json;

    use super::{EventType, is_client_event, validate};

    fn paths(payload: serde_json::Value) -> Vec<String> {
        validate(EventType::LegalHold, &payload)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.path)
            .collect()
    }

    #[test]
    fn a_placed_hold_needs_subject_and_reason_and_may_name_a_decision_and_a_case() {
        assert!(
            paths(json!({"action": "placed", "subject_ref": "s-1", "reason": "litigation"}))
                .is_empty()
        );
        assert!(
            paths(json!({
                "action": "placed", "subject_ref": "s-1", "reason": "litigation",
                "decision_id": "01932c07-0000-7000-8000-000000000001", "reference": "case 42",
            }))
            .is_empty()
        );
        assert_eq!(
            paths(json!({"action": "placed"})),
            ["/payload/subject_ref", "/payload/reason"]
        );
    }

    #[test]
    fn a_lift_must_name_the_hold_and_a_placement_must_not() {
        assert_eq!(
            paths(json!({"action": "lifted", "subject_ref": "s-1", "reason": "settled"})),
            ["/payload/hold_seq"]
        );
        assert!(
            paths(json!({"action": "lifted", "subject_ref": "s-1", "reason": "settled", "hold_seq": 7}))
                .is_empty()
        );
        assert_eq!(
            paths(json!({"action": "placed", "subject_ref": "s-1", "reason": "r", "hold_seq": 7})),
            ["/payload/hold_seq"]
        );
    }

    #[test]
    fn an_unknown_action_or_member_is_refused_and_pipelines_may_append_holds() {
        assert_eq!(
            paths(json!({"action": "paused", "subject_ref": "s-1", "reason": "r", "extra": 1})),
            ["/payload/action", "/payload/extra"]
        );
        assert!(is_client_event(EventType::LegalHold));
    }
}

#[cfg(test)]
mod four_eyes_tests {
    use serde_json::json;

    use super::{EventType, validate};

    const DECISION: &str = "01932c07-0000-7000-8000-000000000001";
    const PROPOSAL: &str = "01932c07-0000-7000-8000-000000000002";

    fn paths(event_type: EventType, payload: serde_json::Value) -> Vec<String> {
        validate(event_type, &payload)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.path)
            .collect()
    }

    #[test]
    fn records_written_before_the_four_eyes_members_stay_valid() {
        assert!(
            paths(
                EventType::HumanReview,
                json!({"decision_id": DECISION, "reviewer": "r-1", "action": "confirmed"})
            )
            .is_empty()
        );
        assert!(
            paths(
                EventType::Override,
                json!({"decision_id": DECISION, "reviewer": "r-1", "new_outcome": "deny", "reason": "policy"})
            )
            .is_empty()
        );
    }

    #[test]
    fn a_proposal_and_its_approval_carry_their_links_and_are_checked() {
        assert!(
            paths(
                EventType::HumanReview,
                json!({"decision_id": DECISION, "reviewer": "a", "action": "override_proposed",
                       "proposed_outcome": "deny", "proposed_score": 0.2, "reason": "policy"})
            )
            .is_empty()
        );
        assert!(
            paths(
                EventType::Override,
                json!({"decision_id": DECISION, "reviewer": "a", "new_outcome": "deny", "reason": "policy",
                       "proposal_id": PROPOSAL, "approved_by": "b", "approval_reason": "agreed"})
            )
            .is_empty()
        );
        assert_eq!(
            paths(
                EventType::Override,
                json!({"decision_id": DECISION, "reviewer": "a", "new_outcome": "deny", "reason": "policy",
                       "proposal_id": "not-an-id", "approved_by": 7})
            ),
            ["/payload/proposal_id", "/payload/approved_by"]
        );
        assert_eq!(
            paths(
                EventType::HumanReview,
                json!({"decision_id": DECISION, "reviewer": "a", "action": "x", "approved_by": "b"})
            ),
            ["/payload/approved_by"],
            "members of the other type are still refused"
        );
    }
}
