//! Turning what a client sent into a [`RecordDraft`]: the one place where event ids, event types,
//! payloads and erasable values are validated and canonicalized.
//!
//! Canonicalization happens here, at the edge, so the sequencer only concatenates, hashes and
//! signs. Salts for erasable commitments come from the caller (this crate draws no randomness).
//!
//! Some event types are written only by the service itself (key rotations, integrity checks,
//! rollback acknowledgements, the portal's audit records): a client that wrote one could forge
//! the key history that `auditex verify` follows. [`ClientDraft`] is a draft that cannot carry
//! such a type; it is what the store's public append takes, so every client path (HTTP, the
//! command line, library callers) is held to the same rule by the type system.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::payload::{FieldError, forbidden_characters, is_client_event, validate};
use crate::record::{
    ERASABLE_FIELDS_MAX, ERASABLE_SALT_BYTES, ErasableValue, EventType, FieldName, Payload,
    RecordDraft,
};
use crate::types::EventId;

/// A validated draft together with the erasable values to store beside the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedDraft {
    /// What the sequencer seals.
    pub draft: RecordDraft,
    /// The values (with salts) whose commitments are in `draft.erasable`.
    pub erasable_values: BTreeMap<FieldName, ErasableValue>,
}

/// A validated draft whose event type a client may append (see [`is_client_event`]).
///
/// The field is private: the only ways in are [`ClientDraft::new`] (or `TryFrom`) and
/// [`prepare_client_draft`], which refuse the event types that only the service writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientDraft(PreparedDraft);

/// An event type that only the service itself writes, offered as a client draft.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} events are written by the service itself and cannot be appended")]
pub struct ServiceOnlyEventType(pub EventType);

/// The one rule: a client may append exactly the client event types.
fn refuse_service_only(event_type: EventType) -> Result<(), ServiceOnlyEventType> {
    if is_client_event(event_type) {
        Ok(())
    } else {
        Err(ServiceOnlyEventType(event_type))
    }
}

impl ClientDraft {
    /// Accepts `draft` as a client draft.
    ///
    /// # Errors
    /// [`ServiceOnlyEventType`] naming the type when only the service may write it.
    pub fn new(draft: PreparedDraft) -> Result<Self, ServiceOnlyEventType> {
        refuse_service_only(draft.draft.event_type)?;
        Ok(ClientDraft(draft))
    }

    /// The record draft the sequencer seals.
    pub fn draft(&self) -> &RecordDraft {
        &self.0.draft
    }

    /// The erasable values (with salts) whose commitments are in the draft.
    pub fn erasable_values(&self) -> &BTreeMap<FieldName, ErasableValue> {
        &self.0.erasable_values
    }

    /// The validated draft, for the store to sequence.
    pub fn into_prepared(self) -> PreparedDraft {
        self.0
    }
}

impl TryFrom<PreparedDraft> for ClientDraft {
    type Error = ServiceOnlyEventType;

    fn try_from(draft: PreparedDraft) -> Result<Self, Self::Error> {
        ClientDraft::new(draft)
    }
}

/// Validates one event that a client asks to append: [`prepare_draft`], refusing the event types
/// that only the service writes.
///
/// # Errors
/// A service-only event type is the one error reported (at `/event_type`: nothing else about
/// such an event matters to its sender); otherwise every problem [`prepare_draft`] finds.
pub fn prepare_client_draft(
    event_id: &str,
    event_type: &str,
    payload: &Value,
    erasable: &BTreeMap<String, Value>,
    new_salt: impl FnMut() -> [u8; ERASABLE_SALT_BYTES],
) -> Result<ClientDraft, Vec<FieldError>> {
    let refused = |e: ServiceOnlyEventType| vec![field_error("/event_type", e.to_string())];
    if let Ok(t) = EventType::parse(event_type) {
        refuse_service_only(t).map_err(refused)?;
    }
    ClientDraft::new(prepare_draft(
        event_id, event_type, payload, erasable, new_salt,
    )?)
    .map_err(refused)
}

/// Validates one event (of any type: the store decides who may append which, see
/// [`ClientDraft`]).
///
/// `new_salt` is called once per erasable field and must return fresh random bytes.
///
/// # Errors
/// Every problem found, each naming the field by JSON Pointer (`/event_id`, `/payload/score`,
/// `/erasable/name`, …).
pub fn prepare_draft(
    event_id: &str,
    event_type: &str,
    payload: &Value,
    erasable: &BTreeMap<String, Value>,
    mut new_salt: impl FnMut() -> [u8; ERASABLE_SALT_BYTES],
) -> Result<PreparedDraft, Vec<FieldError>> {
    let mut errors = Vec::new();
    let event_id = EventId::parse(event_id)
        .map_err(|e| errors.push(field_error("/event_id", e.to_string())))
        .ok();
    let event_type = EventType::parse(event_type)
        .map_err(|e| {
            let names: Vec<_> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            errors.push(field_error(
                "/event_type",
                format!("{e}; known types: {}", names.join(", ")),
            ))
        })
        .ok();
    if let Some(event_type) = event_type
        && let Err(mut field_errors) = validate(event_type, payload)
    {
        errors.append(&mut field_errors);
    }
    // The one string rule of the whole record. Ids, event types and erasable field names
    // are parsed to narrower alphabets, which hold no NUL.
    errors.extend(forbidden_characters(payload, "/payload"));
    for (name, value) in erasable {
        if FieldName::parse(name).is_ok() {
            errors.extend(forbidden_characters(value, &format!("/erasable/{name}")));
        }
    }
    let payload = match Payload::from_value(payload) {
        Ok(p) => Some(p),
        Err(e) => {
            errors.push(field_error(e.path().unwrap_or("/payload"), e.to_string()));
            None
        }
    };
    if erasable.len() > ERASABLE_FIELDS_MAX {
        errors.push(field_error(
            "/erasable",
            format!(
                "at most {ERASABLE_FIELDS_MAX} erasable fields (got {})",
                erasable.len()
            ),
        ));
    }
    let mut commitments = BTreeMap::new();
    let mut values = BTreeMap::new();
    for (name, value) in erasable.iter().take(ERASABLE_FIELDS_MAX) {
        let path = format!("/erasable/{name}");
        let name = match FieldName::parse(name) {
            Ok(n) => n,
            Err(e) => {
                errors.push(field_error(&path, e.to_string()));
                continue;
            }
        };
        if value.is_null() {
            errors.push(field_error(
                &path,
                "an erasable value must not be null".into(),
            ));
            continue;
        }
        let stored = ErasableValue {
            salt: new_salt(),
            value: value.clone(),
        };
        match stored.commitment(&path) {
            Ok(c) => {
                commitments.insert(name.clone(), c);
                values.insert(name, stored);
            }
            Err(e) => errors.push(field_error(e.path().unwrap_or(&path), e.to_string())),
        }
    }
    match (event_id, event_type, payload) {
        (Some(event_id), Some(event_type), Some(payload)) if errors.is_empty() => {
            Ok(PreparedDraft {
                draft: RecordDraft {
                    event_id,
                    event_type,
                    payload,
                    erasable: commitments,
                },
                erasable_values: values,
            })
        }
        _ => Err(errors),
    }
}

fn field_error(path: &str, problem: String) -> FieldError {
    FieldError {
        path: path.to_owned(),
        problem,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key_rotation_payload() -> Value {
        json!({
            "new_key_id": "0123456789abcdef",
            "new_public_key": "ab".repeat(32),
            "effective_from_seq": 1,
        })
    }

    /// A payload that validates for `event_type`, so that only the type decides.
    fn valid_payload(event_type: EventType) -> Value {
        match event_type {
            EventType::KeyRotation => key_rotation_payload(),
            EventType::IntegrityCheck => json!({"outcome": "passed"}),
            EventType::Access | EventType::Administration => {
                json!({"actor": "a@example.com", "action": "sign_in"})
            }
            EventType::RollbackAcknowledged => json!({"operator": "ops", "reason": "restored"}),
            other => panic!("no payload written for {other}"),
        }
    }

    const ID: &str = "01932c07-0000-7000-8000-000000000001";

    #[test]
    fn every_service_only_type_is_refused_as_a_client_draft_naming_the_type() {
        let service_only: Vec<EventType> = EventType::ALL
            .into_iter()
            .filter(|t| !is_client_event(*t))
            .collect();
        assert_eq!(
            service_only,
            [
                EventType::KeyRotation,
                EventType::IntegrityCheck,
                EventType::Access,
                EventType::Administration,
                EventType::RollbackAcknowledged,
            ]
        );
        for t in service_only {
            let payload = valid_payload(t);
            let prepared = prepare_draft(ID, t.as_str(), &payload, &BTreeMap::new(), || [7; 32])
                .expect("a valid draft of the type");
            assert_eq!(
                ClientDraft::try_from(prepared.clone()),
                Err(ServiceOnlyEventType(t))
            );
            assert_eq!(
                ClientDraft::new(prepared).map_err(|e| e.to_string()),
                Err(format!(
                    "{t} events are written by the service itself and cannot be appended"
                ))
            );
            let errors =
                prepare_client_draft(ID, t.as_str(), &payload, &BTreeMap::new(), || [7; 32])
                    .expect_err("refused");
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert_eq!(errors[0].path, "/event_type");
            assert!(errors[0].problem.starts_with(t.as_str()), "{errors:?}");
        }
    }

    #[test]
    fn a_service_only_type_is_the_one_error_even_when_the_payload_is_wrong_too() {
        let errors = prepare_client_draft(
            "not-an-id",
            "key_rotation",
            &json!({"x": 1}),
            &BTreeMap::new(),
            || [7; 32],
        )
        .expect_err("refused");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "/event_type");
    }

    #[test]
    fn a_client_type_becomes_a_client_draft_equal_to_the_prepared_one() {
        let payload = json!({
            "decision_id": ID,
            "reviewer": "r",
            "action": "confirmed",
        });
        let prepared = prepare_draft(ID, "human_review", &payload, &BTreeMap::new(), || [7; 32])
            .expect("valid");
        let client =
            prepare_client_draft(ID, "human_review", &payload, &BTreeMap::new(), || [7; 32])
                .expect("a client may append a human review");
        assert_eq!(client.draft(), &prepared.draft);
        assert_eq!(client.clone().into_prepared(), prepared);
        assert_eq!(ClientDraft::new(prepared), Ok(client));
    }

    #[test]
    fn an_unknown_type_is_reported_as_before_by_the_client_path() {
        let errors = prepare_client_draft(ID, "decison", &json!({}), &BTreeMap::new(), || [7; 32])
            .expect_err("refused");
        assert_eq!(errors[0].path, "/event_type");
        assert!(errors[0].problem.contains("known types"), "{errors:?}");
    }
}
