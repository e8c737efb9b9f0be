//! Turning what a client sent into a [`RecordDraft`]: the one place where event ids, event types,
//! payloads and erasable values are validated and canonicalized.
//!
//! Canonicalization happens here, at the edge, so the sequencer only concatenates, hashes and
//! signs. Salts for erasable commitments come from the caller (this crate draws no randomness).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::payload::{FieldError, forbidden_characters, validate};
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

/// Validates one client event.
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
