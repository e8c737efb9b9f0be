//! Drafts of the records only the service itself writes: key rotations, integrity checks,
//! rollback acknowledgements and the portal's `access` / `administration` audit records.
//!
//! Clients append [`ledger::draft::ClientDraft`]s, which cannot carry these types; a
//! [`ServiceDraft`] can be made only inside this crate and carries nothing else, so the two sets
//! are disjoint and each record's author is decided by the type it travelled in.

use std::collections::BTreeMap;

use ledger::draft::{PreparedDraft, prepare_draft};
use ledger::payload::{FieldError, is_client_event};
use ledger::record::EventType;

/// A validated draft of a service-only event type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceDraft(PreparedDraft);

/// Why the service could not make one of its own drafts (a defect of the service, not of input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ServiceDraftError {
    /// A client event type: the service does not write those in its own name.
    #[error("{0} events are appended by clients, not written by the service")]
    ClientType(EventType),
    /// The draft failed validation.
    #[error("the {event_type} record is invalid: {}", list(.errors))]
    Invalid {
        /// The type of the refused draft.
        event_type: EventType,
        /// What validation found.
        errors: Vec<FieldError>,
    },
}

fn list(errors: &[FieldError]) -> String {
    let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
    list.join("; ")
}

impl ServiceDraft {
    /// Validates a service record of `event_type` (no erasable fields: the service writes none).
    ///
    /// # Errors
    /// [`ServiceDraftError`] for a client type or an invalid payload or event id.
    pub(crate) fn prepare(
        event_id: &str,
        event_type: EventType,
        payload: &serde_json::Value,
    ) -> Result<Self, ServiceDraftError> {
        if is_client_event(event_type) {
            return Err(ServiceDraftError::ClientType(event_type));
        }
        prepare_draft(
            event_id,
            event_type.as_str(),
            payload,
            &BTreeMap::new(),
            rand::random,
        )
        .map(ServiceDraft)
        .map_err(|errors| ServiceDraftError::Invalid { event_type, errors })
    }

    /// The validated draft, for the sequencer.
    pub(crate) fn into_prepared(self) -> PreparedDraft {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{ServiceDraft, ServiceDraftError};
    use ledger::record::EventType;

    const ID: &str = "01932c07-0000-7000-8000-000000000001";

    #[test]
    fn the_service_does_not_write_client_event_types_in_its_own_name() {
        assert_eq!(
            ServiceDraft::prepare(ID, EventType::Decision, &json!({})),
            Err(ServiceDraftError::ClientType(EventType::Decision))
        );
    }

    #[test]
    fn a_service_record_is_validated_like_any_other() {
        let draft = ServiceDraft::prepare(
            ID,
            EventType::RollbackAcknowledged,
            &json!({"operator": "ops", "reason": "restored from backup"}),
        )
        .expect("valid");
        assert_eq!(
            draft.into_prepared().draft.event_type,
            EventType::RollbackAcknowledged
        );
        let refused = ServiceDraft::prepare(ID, EventType::IntegrityCheck, &json!({}))
            .expect_err("outcome is required");
        assert!(
            refused
                .to_string()
                .starts_with("the integrity_check record is invalid: "),
            "{refused}"
        );
    }
}
