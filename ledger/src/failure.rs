//! The report of the first thing that failed in a tenant's ledger, in chain order: its kind,
//! sequence number, event id, what a valid ledger has there and what was found. One type for the
//! service's integrity check and for the offline verifiers, so that both describe a failure in the
//! same words, and the verifiers need nothing of the store.

use serde::Serialize;

use crate::types::EventId;
use crate::verify::{ChainError, RecordError};

/// The class of the first failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegrityFailureKind {
    /// A stored row cannot even be read as a record.
    UnreadableRecord,
    /// A record claims an unknown format version.
    UnsupportedVersion,
    /// A record of another tenant is in the chain.
    WrongTenant,
    /// A sequence number is missing, repeated or out of order.
    Gap,
    /// A record does not link to its predecessor's hash.
    BrokenLink,
    /// A capture time is earlier than its predecessor's.
    TimeWentBackwards,
    /// A record's content does not hash to its stored hash.
    HashMismatch,
    /// The signing key is unknown or not valid for the record's sequence number.
    KeyNotValid,
    /// The signature does not verify.
    BadSignature,
    /// A key-rotation record and the key history disagree.
    KeyRotation,
    /// A published checkpoint covers records that are not in the database.
    MissingRecords,
    /// A stored checkpoint's signature does not verify, or its stored columns differ from the
    /// signed note.
    CheckpointSignature,
    /// The records hash to another root than a published checkpoint of the same size.
    CheckpointRootMismatch,
    /// Two consecutive checkpoints are not linked by a valid consistency proof.
    CheckpointInconsistent,
    /// A checkpoint seen before is larger than anything the database holds now.
    RolledBack,
    /// A checkpoint seen before has another root than the database's tree of that size.
    Fork,
}

/// The first thing that failed, in chain order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IntegrityFailure {
    /// What kind of failure.
    pub kind: IntegrityFailureKind,
    /// The first affected sequence number. For a checkpoint failure with an intact chain this is
    /// the checkpoint's last leaf (size − 1); for a fork the largest size up to which the seen
    /// history still agreed; for missing records and rollbacks the first missing one.
    pub seq: u64,
    /// The event id of the record at `seq`, when there is one.
    pub event_id: Option<EventId>,
    /// What a valid ledger has there.
    pub expected: String,
    /// What was found.
    pub found: String,
    /// One sentence for people.
    pub message: String,
}

impl IntegrityFailure {
    /// The failure report of a chain error (also used by the offline verifier): its kind, first
    /// sequence number, event id, and what was expected and found.
    pub fn from_chain_error(e: &ChainError) -> IntegrityFailure {
        chain_failure(e)
    }
}

fn chain_failure(e: &ChainError) -> IntegrityFailure {
    use IntegrityFailureKind as K;
    let message = e.to_string();
    let (kind, seq, event_id, expected, found) = match e {
        ChainError::Record(RecordError::UnsupportedVersion {
            seq,
            event_id,
            found,
        }) => (
            K::UnsupportedVersion,
            *seq,
            *event_id,
            crate::record::FORMAT_VERSION.to_string(),
            found.to_string(),
        ),
        ChainError::Record(RecordError::HashMismatch {
            seq,
            event_id,
            stored,
            computed,
        }) => (
            K::HashMismatch,
            *seq,
            *event_id,
            format!("content hashing to {stored} (the signed, linked hash)"),
            format!("content hashing to {computed}"),
        ),
        ChainError::Record(RecordError::Key {
            seq,
            event_id,
            source,
        }) => (
            K::KeyNotValid,
            *seq,
            *event_id,
            format!("a key of the history valid for record {seq}"),
            source.to_string(),
        ),
        ChainError::Record(RecordError::BadSignature {
            seq,
            event_id,
            key_id,
        }) => (
            K::BadSignature,
            *seq,
            *event_id,
            format!("a valid Ed25519 signature by key {key_id}"),
            "a signature that does not verify".into(),
        ),
        ChainError::WrongTenant {
            seq,
            event_id,
            expected,
            found,
        } => (
            K::WrongTenant,
            *seq,
            *event_id,
            expected.to_string(),
            found.to_string(),
        ),
        ChainError::Gap {
            expected,
            found,
            event_id,
        } => (
            K::Gap,
            *expected,
            *event_id,
            format!("record {expected}"),
            format!("record {found}"),
        ),
        ChainError::BrokenLink {
            seq,
            event_id,
            expected,
            found,
        } => (
            K::BrokenLink,
            *seq,
            *event_id,
            format!("prev {expected}"),
            format!("prev {found}"),
        ),
        ChainError::TimeWentBackwards {
            seq,
            event_id,
            previous,
            found,
        } => (
            K::TimeWentBackwards,
            *seq,
            *event_id,
            format!("captured at or after {}", previous.unix_micros()),
            format!("captured at {}", found.unix_micros()),
        ),
        ChainError::Rotation {
            seq,
            event_id,
            problem,
        } => (
            K::KeyRotation,
            *seq,
            *event_id,
            "a rotation record that agrees with the key history".into(),
            problem.to_string(),
        ),
        ChainError::MissingRotation {
            seq,
            event_id,
            next_key,
        } => (
            K::KeyRotation,
            *seq,
            *event_id,
            format!("a key_rotation record announcing key {next_key}"),
            "another event".into(),
        ),
        ChainError::DuplicateEventId {
            seq,
            event_id,
            first_seq,
        } => (
            K::Gap,
            *seq,
            *event_id,
            "an event id not used before in the chain".into(),
            format!("the event id of record {first_seq}"),
        ),
    };
    IntegrityFailure {
        kind,
        seq,
        event_id: Some(event_id),
        expected,
        found,
        message,
    }
}

/// The message of a fork: a checkpoint seen before commits to another tree of `size` records, when
/// the largest smaller seen checkpoint that matched has size `agreed_through` (0: none). Where the
/// histories part is not computed — that needs the other history's records — so the message never
/// claims a common prefix it did not check.
pub fn fork_message(size: u64, agreed_through: u64) -> String {
    let last = size.saturating_sub(1);
    if agreed_through == 0 {
        format!(
            "the log forked: a checkpoint seen before commits to another tree of size {size}; no \
             smaller checkpoint seen before was compared, so where the histories part (somewhere \
             in records 0..={last}) was not computed"
        )
    } else {
        format!(
            "the log forked: a checkpoint seen before commits to another tree of size {size}; the \
             histories agree through the seen checkpoint of size {agreed_through} and part \
             somewhere in records {agreed_through}..={last} (the exact record was not computed)"
        )
    }
}
