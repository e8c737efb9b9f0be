//! The chain-of-custody bundle: one decision, the records that follow it up, and everything a
//! regulator needs to check them offline.
//!
//! A bundle is one JSON document (`"format": "auditex-custody-bundle/v1"`) holding a signed
//! checkpoint, the tenant's key history, and for each record its inclusion proof in that
//! checkpoint and, where still held, its erasable values, or for an erased value the sequence
//! number of the `erasure` record that erased it. [`verify_bundle`] checks all of it against
//! checkpoint keys the caller trusts.
//!
//! A bundle proves that each record it holds is in the log and unaltered, and that each
//! follow-up names the decision. It cannot prove that no follow-up was left out; an export of the
//! whole ledger (see [`crate::export`]) proves completeness.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::keys::{KeyId, KeyInterval};
use crate::note::VerifierKey;
use crate::payload::linked_decisions;
use crate::proof_file::PROOF_HASHES_MAX;
use crate::record::{ERASABLE_FIELDS_MAX, ErasableValue, EventType, FieldName, Record};
use crate::types::{EventId, Hash, Sequence, TenantId, TreeSize};
use crate::verify::{
    EvidenceHead, EvidenceHeadError, RecordError, RecordInclusionError, verify_evidence_head,
    verify_record, verify_record_inclusion,
};

/// The value of a bundle's `format` field.
pub const BUNDLE_FORMAT: &str = "auditex-custody-bundle/v1";

/// Most entries (the decision and its follow-ups) in one bundle.
pub const ENTRIES_MAX: usize = 4096;

/// Largest bundle [`Bundle::from_json`] parses, in bytes.
pub const BUNDLE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The `format` field of a bundle: serializes as [`BUNDLE_FORMAT`] and parses only from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BundleFormat;

impl Serialize for BundleFormat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(BUNDLE_FORMAT)
    }
}

impl<'de> Deserialize<'de> for BundleFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if text == BUNDLE_FORMAT {
            Ok(BundleFormat)
        } else {
            Err(serde::de::Error::custom(format!(
                "unsupported format {:?}; expected {BUNDLE_FORMAT:?}",
                text.chars().take(80).collect::<String>()
            )))
        }
    }
}

/// One record of a bundle with its proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleEntry {
    /// The record.
    pub record: Record,
    /// Its inclusion proof in the bundle's checkpoint, leaf's sibling first, hex.
    pub inclusion_proof: Vec<Hash>,
    /// Erasable values that have not been erased, with their salts; omitted when none are given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erasable_values: Option<BTreeMap<FieldName, ErasableValue>>,
    /// Committed erasable fields whose values were erased, each with the `erasure` record that
    /// erased it; omitted when none are (so a bundle without erasures keeps its bytes).
    #[serde(default, skip_serializing_if = "no_erased_fields")]
    pub erased: Option<BTreeMap<FieldName, ErasedField>>,
}

/// Where a bundle says that an erasable value was erased: by which `erasure` record.
///
/// This is the service's statement; the bundle proves it only when it also holds that record
/// (then [`verify_bundle`] checks that the record is an erasure that covers the field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErasedField {
    /// The sequence number of the `erasure` record; always after the record it erases from.
    pub erasure_seq: Sequence,
}

fn no_erased_fields(erased: &Option<BTreeMap<FieldName, ErasedField>>) -> bool {
    erased.as_ref().is_none_or(BTreeMap::is_empty)
}

/// A chain-of-custody bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// Always [`BUNDLE_FORMAT`].
    pub format: BundleFormat,
    /// The tenant.
    pub tenant: TenantId,
    /// The tenant's log origin, `<service origin>/<tenant>`.
    pub origin: String,
    /// The event id of the decision.
    pub decision_event_id: EventId,
    /// The signed checkpoint note every inclusion proof is against.
    pub checkpoint: String,
    /// The tenant's full key history.
    pub keys: Vec<KeyInterval>,
    /// The C2SP verifier keys of the checkpoint-signing keys (named like the origin). Listed for
    /// convenience only: a verifier decides which keys it trusts.
    pub verifier_keys: Vec<String>,
    /// The decision first, then the records that link to it, in sequence order.
    pub entries: Vec<BundleEntry>,
}

impl Bundle {
    /// Parses a bundle strictly: unknown fields anywhere in the envelope are rejected.
    ///
    /// # Errors
    /// [`BundleError::TooLarge`] above [`BUNDLE_BYTES_MAX`], [`BundleError::Json`] for anything
    /// that is not a well-formed bundle.
    pub fn from_json(bytes: &[u8]) -> Result<Bundle, BundleError> {
        if bytes.len() > BUNDLE_BYTES_MAX {
            return Err(BundleError::TooLarge {
                bytes: bytes.len(),
                max: BUNDLE_BYTES_MAX,
            });
        }
        crate::json::from_slice(bytes).map_err(|e| BundleError::Json(e.to_string()))
    }

    /// The bundle as indented JSON.
    ///
    /// # Panics
    /// Never in practice: every field serializes to JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a bundle always serializes to JSON")
    }
}

/// Why a bundle does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The text is not a well-formed bundle.
    #[error("malformed bundle: {0}")]
    Json(String),
    /// The bundle is larger than [`BUNDLE_BYTES_MAX`].
    #[error("bundle is {bytes} bytes, more than the maximum {max}")]
    TooLarge {
        /// Its length.
        bytes: usize,
        /// [`BUNDLE_BYTES_MAX`].
        max: usize,
    },
    /// The bundle has no entries.
    #[error("bundle has no entries")]
    NoEntries,
    /// The bundle has more than [`ENTRIES_MAX`] entries.
    #[error("bundle has {entries} entries, more than the maximum {max}")]
    TooManyEntries {
        /// How many it has.
        entries: usize,
        /// [`ENTRIES_MAX`].
        max: usize,
    },
    /// The checkpoint, key history or verifier keys do not check out.
    #[error(transparent)]
    Head(#[from] EvidenceHeadError),
    /// An entry's record belongs to another tenant.
    #[error("record {seq} (event {event_id}) belongs to tenant {found}, not the bundle's")]
    WrongTenant {
        /// The record's sequence number.
        seq: u64,
        /// The record's event id.
        event_id: EventId,
        /// The record's tenant.
        found: TenantId,
    },
    /// Entries are not in increasing sequence order, or one is repeated.
    #[error(
        "record {seq} (event {event_id}) follows record {previous}: entries must be in increasing sequence order without repeats"
    )]
    OutOfOrder {
        /// The record's sequence number.
        seq: u64,
        /// The record's event id.
        event_id: EventId,
        /// The sequence number of the entry before it.
        previous: u64,
    },
    /// A record does not verify against the key history.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// An inclusion proof has more than [`PROOF_HASHES_MAX`] hashes.
    #[error("record {seq}: inclusion proof has {hashes} hashes, more than the maximum {max}")]
    ProofTooLong {
        /// The record's sequence number.
        seq: u64,
        /// How many it has.
        hashes: usize,
        /// [`PROOF_HASHES_MAX`].
        max: usize,
    },
    /// A record is not proven to be in the checkpoint's tree.
    #[error(transparent)]
    Inclusion(#[from] RecordInclusionError),
    /// The first entry is not a decision.
    #[error(
        "the first entry, record {seq} (event {event_id}), is a {event_type} event, not a decision"
    )]
    FirstNotADecision {
        /// The record's sequence number.
        seq: u64,
        /// The record's event id.
        event_id: EventId,
        /// Its event type.
        event_type: EventType,
    },
    /// The decision is not the one the bundle names.
    #[error("the decision in the bundle, record {seq}, has event id {found}, not {expected}")]
    DecisionIdMismatch {
        /// The record's sequence number.
        seq: u64,
        /// `decision_event_id`.
        expected: EventId,
        /// The record's event id.
        found: EventId,
    },
    /// A later entry does not link to the decision.
    #[error("record {seq} (event {event_id}) does not link to decision {decision_event_id}")]
    NotLinked {
        /// The record's sequence number.
        seq: u64,
        /// The record's event id.
        event_id: EventId,
        /// `decision_event_id`.
        decision_event_id: EventId,
    },
    /// More erasable values than a record can have.
    #[error("record {seq}: {count} erasable values, more than the maximum {max}")]
    TooManyErasableValues {
        /// The record's sequence number.
        seq: u64,
        /// How many were given.
        count: usize,
        /// [`ERASABLE_FIELDS_MAX`].
        max: usize,
    },
    /// An erasable value is given for a field the record has no commitment for.
    #[error("record {seq}: erasable value {} has no commitment in the record", field.as_str())]
    ErasableNotCommitted {
        /// The record's sequence number.
        seq: u64,
        /// The field.
        field: FieldName,
    },
    /// An erasable value and salt do not produce the record's commitment.
    #[error("record {seq}: erasable value {} does not match its commitment", field.as_str())]
    ErasableMismatch {
        /// The record's sequence number.
        seq: u64,
        /// The field.
        field: FieldName,
    },
    /// A field marked erased has no commitment in the record.
    #[error("record {seq}: erased field {} has no commitment in the record", field.as_str())]
    ErasedNotCommitted {
        /// The record's sequence number.
        seq: u64,
        /// The field.
        field: FieldName,
    },
    /// A field is given a value and marked erased at once.
    #[error("record {seq}: field {} is both given a value and marked erased", field.as_str())]
    ErasedAndSupplied {
        /// The record's sequence number.
        seq: u64,
        /// The field.
        field: FieldName,
    },
    /// A field is marked erased by a record that does not come after it.
    #[error(
        "record {seq}: field {} is marked erased by record {erasure_seq}, which does not come after it",
        field.as_str()
    )]
    ErasureNotAfter {
        /// The record's sequence number.
        seq: u64,
        /// The field.
        field: FieldName,
        /// The sequence number named as the erasure.
        erasure_seq: u64,
    },
    /// The bundle holds the record named as a field's erasure, and it is not an `erasure`.
    #[error(
        "record {erasure_seq} (event {event_id}) is named as the erasure of field {} of record {seq}, but is a {event_type} event",
        field.as_str()
    )]
    ErasedByNonErasure {
        /// The sequence number of the record whose field is marked erased.
        seq: u64,
        /// The field.
        field: FieldName,
        /// The sequence number of the record named as the erasure.
        erasure_seq: u64,
        /// Its event id.
        event_id: EventId,
        /// Its event type.
        event_type: EventType,
    },
    /// The bundle holds the `erasure` record named for a field, and it does not erase that field.
    #[error(
        "record {erasure_seq} (event {event_id}) is named as the erasure of field {} of record {seq}, but its {member} do not include it",
        field.as_str()
    )]
    ErasureDoesNotCover {
        /// The sequence number of the record whose field is marked erased.
        seq: u64,
        /// The field.
        field: FieldName,
        /// The sequence number of the erasure record.
        erasure_seq: u64,
        /// Its event id.
        event_id: EventId,
        /// The payload member that leaves the field out: `event_ids` or `fields`.
        member: &'static str,
    },
}

/// One verified entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleEntryReport {
    /// The record's sequence number.
    pub seq: u64,
    /// The record's event id.
    pub event_id: EventId,
    /// The record's event type.
    pub event_type: EventType,
    /// How many erasable values were present and matched their commitments.
    pub erasable_values_verified: usize,
    /// How many committed erasable fields had no value and were not marked erased (withheld).
    pub erasable_values_absent: usize,
    /// How many committed erasable fields were marked erased.
    pub erasable_values_erased: usize,
    /// The erased fields, each with the sequence number of the `erasure` record named for it.
    pub erased: BTreeMap<FieldName, u64>,
}

/// What a verified bundle proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleReport {
    /// The tenant.
    pub tenant: TenantId,
    /// The log origin.
    pub origin: String,
    /// The checkpoint's tree size.
    pub checkpoint_size: TreeSize,
    /// The checkpoint's root.
    pub checkpoint_root: Hash,
    /// The key (from the history) that signed the checkpoint.
    pub checkpoint_key_id: KeyId,
    /// The decision's event id.
    pub decision_event_id: EventId,
    /// The entries, decision first.
    pub entries: Vec<BundleEntryReport>,
}

/// Verifies a chain-of-custody bundle.
///
/// The checkpoint must open under one of `trusted` (named like the bundle's origin), and that
/// key must be in the bundle's key history; the bundle's own `verifier_keys` are trusted only if
/// the caller passes them here. Then every record must verify against the key history and be
/// proven in the checkpoint, the first entry must be the decision named by `decision_event_id`,
/// every later entry must link to it, entries must be in increasing sequence order, and every
/// erasable value given must match its commitment. A field marked erased must be committed, not
/// also given a value, and erased by a later record; where the bundle holds that record, it must
/// be an `erasure` covering the field (such an entry need not link to the decision).
///
/// # Errors
/// [`BundleError`] naming the first failing check and, for entries, the record's sequence number.
pub fn verify_bundle(
    bundle: &Bundle,
    trusted: &[VerifierKey],
) -> Result<BundleReport, BundleError> {
    if bundle.entries.is_empty() {
        return Err(BundleError::NoEntries);
    }
    if bundle.entries.len() > ENTRIES_MAX {
        return Err(BundleError::TooManyEntries {
            entries: bundle.entries.len(),
            max: ENTRIES_MAX,
        });
    }
    let head = verify_evidence_head(
        &bundle.tenant,
        &bundle.origin,
        &bundle.checkpoint,
        &bundle.keys,
        &bundle.verifier_keys,
        trusted,
    )?;
    let mut checker = EntryChecker::new(bundle.tenant.clone());
    let mut reports = Vec::with_capacity(bundle.entries.len());
    for (index, entry) in bundle.entries.iter().enumerate() {
        reports.push(checker.check(entry, &head, |record| {
            check_role(index, record, bundle.decision_event_id)
        })?);
    }
    Ok(BundleReport {
        tenant: bundle.tenant.clone(),
        origin: bundle.origin.clone(),
        checkpoint_size: head.checkpoint.size(),
        checkpoint_root: head.checkpoint.root(),
        checkpoint_key_id: head.checkpoint_key_id,
        decision_event_id: bundle.decision_event_id,
        entries: reports,
    })
}

/// The checks every entry of a bundle or of a subject access package (see [`crate::package`])
/// passes, in order: the record is the tenant's, comes after the previous entry, verifies
/// against the key history, is proven in the checkpoint; its erasable values match their
/// commitments and its erased marks are well formed. It remembers the erasures earlier entries
/// name, so that the entry holding one is checked to be an erasure covering the marks; every
/// other entry passes the caller's `role` check (what makes it belong in the evidence).
///
/// Its memory is the erased marks whose erasure has not been reached yet, not the entries.
#[derive(Debug)]
pub struct EntryChecker {
    tenant: TenantId,
    previous: Option<u64>,
    /// Erasure sequence numbers named by earlier entries, with what each is named for: the
    /// erasure comes after what it erases, so it is checked when its own entry is reached.
    named: BTreeMap<u64, Vec<NamedErasure>>,
    /// The subject the evidence concerns: the `subject_ref` of its first record that names one
    /// (the decision of a bundle; any record of a package).
    subject: Option<String>,
}

impl EntryChecker {
    /// A checker for the entries of `tenant`'s evidence, before the first entry.
    pub fn new(tenant: TenantId) -> Self {
        EntryChecker {
            tenant,
            previous: None,
            named: BTreeMap::new(),
            subject: None,
        }
    }

    /// Checks the next entry against the verified `head`; `role` decides whether a record that
    /// no earlier entry names as an erasure belongs in the evidence.
    ///
    /// # Errors
    /// The first failing check, as a [`BundleError`] (converted into `E`) or `role`'s error.
    pub fn check<E: From<BundleError>>(
        &mut self,
        entry: &BundleEntry,
        head: &EvidenceHead,
        role: impl FnOnce(&Record) -> Result<(), E>,
    ) -> Result<BundleEntryReport, E> {
        let record = &entry.record;
        let seq = record.seq.get();
        let event_id = record.event_id;
        if record.tenant != self.tenant {
            return Err(BundleError::WrongTenant {
                seq,
                event_id,
                found: record.tenant.clone(),
            }
            .into());
        }
        if let Some(previous) = self.previous
            && seq <= previous
        {
            return Err(BundleError::OutOfOrder {
                seq,
                event_id,
                previous,
            }
            .into());
        }
        self.previous = Some(seq);
        verify_record(record, &head.ring).map_err(BundleError::from)?;
        if entry.inclusion_proof.len() > PROOF_HASHES_MAX {
            return Err(BundleError::ProofTooLong {
                seq,
                hashes: entry.inclusion_proof.len(),
                max: PROOF_HASHES_MAX,
            }
            .into());
        }
        verify_record_inclusion(record, &entry.inclusion_proof, &head.checkpoint)
            .map_err(BundleError::from)?;
        match self.named.remove(&seq) {
            Some(fields) => check_named_erasure(record, &fields)?,
            None => role(record)?,
        }
        let (verified, absent) = check_erasable(entry)?;
        let erased = check_erased(entry)?;
        let own_subject = subject_ref_of(record);
        if self.subject.is_none() {
            self.subject.clone_from(&own_subject);
        }
        let subject = own_subject.or_else(|| self.subject.clone());
        for (field, erasure_seq) in &erased {
            self.named
                .entry(*erasure_seq)
                .or_default()
                .push(NamedErasure {
                    seq,
                    event_id,
                    field: field.clone(),
                    subject: subject.clone(),
                });
        }
        Ok(BundleEntryReport {
            seq,
            event_id,
            event_type: record.event_type,
            erasable_values_verified: verified,
            erasable_values_absent: absent - erased.len(),
            erasable_values_erased: erased.len(),
            erased,
        })
    }
}

/// The first entry is the decision; every other one links to it.
fn check_role(index: usize, record: &Record, decision: EventId) -> Result<(), BundleError> {
    let seq = record.seq.get();
    if index == 0 {
        if record.event_type != EventType::Decision {
            return Err(BundleError::FirstNotADecision {
                seq,
                event_id: record.event_id,
                event_type: record.event_type,
            });
        }
        if record.event_id != decision {
            return Err(BundleError::DecisionIdMismatch {
                seq,
                expected: decision,
                found: record.event_id,
            });
        }
        return Ok(());
    }
    let linked = match record.payload.to_value() {
        Ok(serde_json::Value::Object(map)) => linked_decisions(record.event_type, &map),
        _ => Vec::new(),
    };
    if linked.contains(&decision) {
        Ok(())
    } else {
        Err(BundleError::NotLinked {
            seq,
            event_id: record.event_id,
            decision_event_id: decision,
        })
    }
}

/// Checks the erasable values given against the record's commitments; returns how many matched
/// and how many committed fields had no value.
fn check_erasable(entry: &BundleEntry) -> Result<(usize, usize), BundleError> {
    let record = &entry.record;
    let seq = record.seq.get();
    let empty = BTreeMap::new();
    let values = entry.erasable_values.as_ref().unwrap_or(&empty);
    if values.len() > ERASABLE_FIELDS_MAX {
        return Err(BundleError::TooManyErasableValues {
            seq,
            count: values.len(),
            max: ERASABLE_FIELDS_MAX,
        });
    }
    for (field, value) in values {
        let Some(commitment) = record.erasable.get(field) else {
            return Err(BundleError::ErasableNotCommitted {
                seq,
                field: field.clone(),
            });
        };
        // A value that cannot be canonicalized cannot have produced the commitment.
        let path = format!("/erasable/{}", field.as_str());
        if value.commitment(&path).ok().as_ref() != Some(commitment) {
            return Err(BundleError::ErasableMismatch {
                seq,
                field: field.clone(),
            });
        }
    }
    Ok((values.len(), record.erasable.len() - values.len()))
}

/// A field that an entry marks erased, by the record it names as the erasure.
#[derive(Debug)]
struct NamedErasure {
    /// The sequence number of the record whose field was erased.
    seq: u64,
    /// Its event id.
    event_id: EventId,
    /// The field.
    field: FieldName,
    /// The subject the record concerns (its own `subject_ref`, else the evidence's).
    subject: Option<String>,
}

/// A record's own `subject_ref`, when its payload names one.
fn subject_ref_of(record: &Record) -> Option<String> {
    match record.payload.to_value() {
        Ok(serde_json::Value::Object(map)) => map
            .get("subject_ref")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned),
        _ => None,
    }
}

/// Checks the fields an entry marks erased (after [`check_erasable`], so each is one of the
/// absent ones when it passes); returns each with its erasure's sequence number.
fn check_erased(entry: &BundleEntry) -> Result<BTreeMap<FieldName, u64>, BundleError> {
    let record = &entry.record;
    let seq = record.seq.get();
    let mut out = BTreeMap::new();
    for (field, erased) in entry.erased.iter().flatten() {
        if !record.erasable.contains_key(field) {
            return Err(BundleError::ErasedNotCommitted {
                seq,
                field: field.clone(),
            });
        }
        if entry
            .erasable_values
            .as_ref()
            .is_some_and(|values| values.contains_key(field))
        {
            return Err(BundleError::ErasedAndSupplied {
                seq,
                field: field.clone(),
            });
        }
        let erasure_seq = erased.erasure_seq.get();
        if erasure_seq <= seq {
            return Err(BundleError::ErasureNotAfter {
                seq,
                field: field.clone(),
                erasure_seq,
            });
        }
        out.insert(field.clone(), erasure_seq);
    }
    Ok(out)
}

/// A record that earlier entries name as the erasure of their fields must be an `erasure` whose
/// `event_ids` and `fields`, where given, include each of them. It proves the erasure, so it
/// belongs in the bundle without linking to the decision.
fn check_named_erasure(record: &Record, named: &[NamedErasure]) -> Result<(), BundleError> {
    let erasure_seq = record.seq.get();
    let event_id = record.event_id;
    // A verified erasure record's payload is an object; a missing list means "all of them".
    let payload = match record.payload.to_value() {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let listed = |member: &str, wanted: &str| match payload.get(member) {
        Some(serde_json::Value::Array(items)) => items.iter().any(|v| v.as_str() == Some(wanted)),
        _ => true,
    };
    for n in named {
        if record.event_type != EventType::Erasure {
            return Err(BundleError::ErasedByNonErasure {
                seq: n.seq,
                field: n.field.clone(),
                erasure_seq,
                event_id,
                event_type: record.event_type,
            });
        }
        // An erasure that names no records reaches only its own subject's values (section 6):
        // another subject's cannot prove this mark.
        let names_records = matches!(payload.get("event_ids"), Some(serde_json::Value::Array(_)));
        let own_subject = payload
            .get("subject_ref")
            .and_then(serde_json::Value::as_str);
        let missing = if !names_records && own_subject != n.subject.as_deref() {
            Some("subject_ref")
        } else if !listed("event_ids", &n.event_id.to_string()) {
            Some("event_ids")
        } else if !listed("fields", n.field.as_str()) {
            Some("fields")
        } else {
            None
        };
        if let Some(member) = missing {
            return Err(BundleError::ErasureDoesNotCover {
                seq: n.seq,
                field: n.field.clone(),
                erasure_seq,
                event_id,
                member,
            });
        }
    }
    Ok(())
}
