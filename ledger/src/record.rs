//! The record envelope (format version 1): its fields, its canonical hash preimage, sealing and
//! erasable-field commitments.
//!
//! A record's hash is `SHA-256("auditex:record:v1" || 0x00 || JCS(body))`, where `body` is the
//! record without `hash` and `sig`. Because every envelope field has a fixed name and a restricted
//! character set, the body is written here directly in RFC 8785 key order around the payload's
//! canonical bytes; a test checks that this equals a generic JCS of the same object. The signature is
//! Ed25519 over the 32-byte hash. FORMAT.md specifies all of this to the byte.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::canonical::{CanonicalError, canonicalize};
use crate::keys::{KeyId, RecordSignature, RecordSigner};
use crate::types::{CaptureTime, EventId, Hash, Sequence, TenantId};

/// The only record format version this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Domain-separation prefix of the record hash (followed by a 0x00 byte).
pub const RECORD_HASH_DOMAIN: &[u8] = b"auditex:record:v1";

/// Domain-separation prefix of an erasable-field commitment (followed by a 0x00 byte).
pub const ERASABLE_COMMITMENT_DOMAIN: &[u8] = b"auditex:erasable:v1";

/// Length of an erasable field's salt, in bytes.
pub const ERASABLE_SALT_BYTES: usize = 32;

/// Most erasable fields one record may carry.
pub const ERASABLE_FIELDS_MAX: usize = 32;

/// Longest erasable field name, in bytes.
pub const FIELD_NAME_BYTES_MAX: usize = 64;

/// What happened: the kind of event a record captures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// A model made (or supported) a decision about a person.
    Decision,
    /// A person reviewed a decision (EU AI Act Art. 14).
    HumanReview,
    /// A person replaced a decision's outcome; the original record is never edited.
    Override,
    /// The data subject contested a decision (GDPR Art. 22).
    Contest,
    /// Someone asked for an explanation of a decision (EU AI Act Art. 86).
    ExplanationRequest,
    /// Decisions were included in a regulatory submission.
    Submission,
    /// Erasable fields were erased (GDPR Art. 17, by crypto-shredding).
    Erasure,
    /// The tenant's signing key was rotated.
    KeyRotation,
    /// A model version was deployed, validated, approved or retired (SR 11-7).
    ModelChange,
    /// An integrity check of the ledger ran, with its result.
    IntegrityCheck,
    /// Someone read or exported evidence.
    Access,
    /// Someone changed users, keys or settings.
    Administration,
    /// An operator acknowledged that the database was restored to an earlier state.
    RollbackAcknowledged,
    /// A legal hold on a subject (or one of its decisions) was placed or lifted: while it is
    /// active, the subject's erasable values are not erased (GDPR Art. 17(3)(b) and (e)).
    LegalHold,
}

impl EventType {
    /// Every event type, in declaration order.
    pub const ALL: [EventType; 14] = [
        EventType::Decision,
        EventType::HumanReview,
        EventType::Override,
        EventType::Contest,
        EventType::ExplanationRequest,
        EventType::Submission,
        EventType::Erasure,
        EventType::KeyRotation,
        EventType::ModelChange,
        EventType::IntegrityCheck,
        EventType::Access,
        EventType::Administration,
        EventType::RollbackAcknowledged,
        EventType::LegalHold,
    ];

    /// The wire name, e.g. `human_review`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Decision => "decision",
            EventType::HumanReview => "human_review",
            EventType::Override => "override",
            EventType::Contest => "contest",
            EventType::ExplanationRequest => "explanation_request",
            EventType::Submission => "submission",
            EventType::Erasure => "erasure",
            EventType::KeyRotation => "key_rotation",
            EventType::ModelChange => "model_change",
            EventType::IntegrityCheck => "integrity_check",
            EventType::Access => "access",
            EventType::Administration => "administration",
            EventType::RollbackAcknowledged => "rollback_acknowledged",
            EventType::LegalHold => "legal_hold",
        }
    }

    /// Parses a wire name.
    ///
    /// # Errors
    /// [`UnknownEventType`] naming the rejected text.
    pub fn parse(text: &str) -> Result<Self, UnknownEventType> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == text)
            .ok_or_else(|| UnknownEventType(text.chars().take(80).collect()))
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event type name that this format version does not define.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type {0:?}")]
pub struct UnknownEventType(pub String);

/// The name of an erasable field: 1–64 characters of `a-z`, `0-9` and `_`, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldName(String);

impl FieldName {
    /// Validates a field name.
    ///
    /// # Errors
    /// [`FieldNameError`] naming the rejected text.
    pub fn parse(text: &str) -> Result<Self, FieldNameError> {
        let ok = !text.is_empty()
            && text.len() <= FIELD_NAME_BYTES_MAX
            && text.as_bytes()[0].is_ascii_lowercase()
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(FieldName(text.to_owned()))
        } else {
            Err(FieldNameError(text.chars().take(80).collect()))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A field name that breaks the naming rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid erasable field name {0:?}: use 1-64 characters of a-z, 0-9 and '_', starting with a letter"
)]
pub struct FieldNameError(pub String);

impl Serialize for FieldName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for FieldName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        FieldName::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A JSON payload held as its RFC 8785 canonical bytes.
///
/// The only constructors canonicalize, so holding a `Payload` means holding canonical JSON; the
/// hash preimage embeds these bytes verbatim.
#[derive(Clone, PartialEq, Eq)]
pub struct Payload(Box<str>);

impl Payload {
    /// Canonicalizes a parsed JSON value (which must be an object).
    ///
    /// # Errors
    /// [`CanonicalError`] for numbers JCS cannot hold exactly, deep nesting, or a non-object.
    pub fn from_value(value: &serde_json::Value) -> Result<Self, CanonicalError> {
        if !value.is_object() {
            return Err(CanonicalError::NotAnObject {
                path: "/payload".into(),
            });
        }
        let bytes = canonicalize(value, "/payload")?;
        // serde_json emits UTF-8, so this cannot fail; map it to an error rather than panic.
        String::from_utf8(bytes)
            .map(|s| Payload(s.into_boxed_str()))
            .map_err(|e| CanonicalError::Library(e.to_string()))
    }

    /// Parses and canonicalizes JSON text.
    ///
    /// # Errors
    /// [`CanonicalError::Syntax`] for malformed JSON, otherwise as [`Payload::from_value`].
    pub fn from_json(text: &str) -> Result<Self, CanonicalError> {
        let value: serde_json::Value =
            crate::json::from_str(text).map_err(|e| CanonicalError::Syntax(e.to_string()))?;
        Payload::from_value(&value)
    }

    /// The canonical JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The payload parsed back into a value (for projections and display).
    ///
    /// # Errors
    /// Never for a payload built by this type; the error is kept for robustness.
    pub fn to_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_str(&self.0)
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload({})", self.0)
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Embed the canonical bytes as they are, so an export line carries exactly what was hashed.
        match RawValue::from_string(self.0.to_string()) {
            Ok(raw) => raw.serialize(s),
            Err(e) => Err(serde::ser::Error::custom(e)),
        }
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        Payload::from_value(&value).map_err(serde::de::Error::custom)
    }
}

/// The salted commitment to one erasable value:
/// `SHA-256("auditex:erasable:v1" || 0x00 || salt(32 bytes) || JCS(value))`.
///
/// The random salt stops anyone from confirming a guessed value (a name, a date of birth) against
/// the commitment once the value itself has been erased.
pub fn erasable_commitment(salt: &[u8; ERASABLE_SALT_BYTES], canonical_value: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update(ERASABLE_COMMITMENT_DOMAIN);
    h.update([0u8]);
    h.update(salt);
    h.update(canonical_value);
    Hash::from_bytes(h.finalize().into())
}

/// An erasable value as stored beside its record: the value and the salt of its commitment.
/// Erasure deletes this; the record (which holds only the commitment) is untouched.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasableValue {
    /// The salt, 64 lowercase hex digits.
    #[serde(with = "salt_hex")]
    pub salt: [u8; ERASABLE_SALT_BYTES],
    /// The value (any JSON), canonicalized when committed.
    pub value: serde_json::Value,
}

impl fmt::Debug for ErasableValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Personal data never goes to logs.
        f.write_str("ErasableValue(<redacted>)")
    }
}

impl ErasableValue {
    /// The commitment this value and salt produce.
    ///
    /// # Errors
    /// [`CanonicalError`] when the value cannot be canonicalized exactly.
    pub fn commitment(&self, path: &str) -> Result<Hash, CanonicalError> {
        let canonical = canonicalize(&self.value, path)?;
        Ok(erasable_commitment(&self.salt, &canonical))
    }
}

mod salt_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::ERASABLE_SALT_BYTES;

    pub fn serialize<S: Serializer>(
        salt: &[u8; ERASABLE_SALT_BYTES],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(salt))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<[u8; ERASABLE_SALT_BYTES], D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let mut out = [0u8; ERASABLE_SALT_BYTES];
        crate::types::decode_lower_hex(text.as_ref(), &mut out)
            .map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

/// What a caller asks to append, validated at the edge, before the store sequences it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordDraft {
    /// The client's event id (idempotency key).
    pub event_id: EventId,
    /// The event type.
    pub event_type: EventType,
    /// The canonical payload.
    pub payload: Payload,
    /// Commitments to erasable values (the values themselves travel separately).
    pub erasable: BTreeMap<FieldName, Hash>,
}

/// A sealed record: the envelope, its hash and its signature. This is the unit of the chain, the
/// line format of an export and the `record` of a proof bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Format version; always [`FORMAT_VERSION`].
    pub v: u32,
    /// The tenant whose chain holds the record.
    pub tenant: TenantId,
    /// Position in the tenant's chain, from 0, gap-free.
    pub seq: Sequence,
    /// The previous record's hash; [`Hash::ZERO`] for sequence 0.
    pub prev: Hash,
    /// Capture time set by the server, µs since the Unix epoch, UTC.
    pub captured_at_us: CaptureTime,
    /// The client's event id.
    pub event_id: EventId,
    /// The event type.
    pub event_type: EventType,
    /// The canonical payload.
    pub payload: Payload,
    /// Commitments to erasable fields (may be empty).
    pub erasable: BTreeMap<FieldName, Hash>,
    /// The id of the key that signed the record.
    pub key_id: KeyId,
    /// `SHA-256("auditex:record:v1" || 0x00 || JCS(body))`.
    pub hash: Hash,
    /// Ed25519 signature over the 32 bytes of `hash`.
    pub sig: RecordSignature,
}

/// The position and time a sequencer assigns to a draft.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainPosition {
    /// The next sequence number.
    pub seq: Sequence,
    /// The previous record's hash (genesis: [`Hash::ZERO`]).
    pub prev: Hash,
    /// Capture time (never earlier than the previous record's).
    pub captured_at: CaptureTime,
}

/// The members of a record body, with the payload and the erasable map as the exact JSON text
/// that is hashed.
///
/// This is how a reader that already holds those texts in canonical form (the fast path of the
/// offline export verifier) gets the record hash without building a [`Record`]: the body is
/// laid out here and only here, so no reader can hash other bytes than the writer did. The
/// caller is responsible for the texts being canonical (RFC 8785) for the values it means; if
/// they are not, the hash is that of other bytes and does not match the signed one.
#[derive(Debug, Clone, Copy)]
pub struct BodyParts<'a> {
    /// The tenant.
    pub tenant: &'a TenantId,
    /// The sequence number.
    pub seq: Sequence,
    /// The previous record's hash.
    pub prev: &'a Hash,
    /// The capture time.
    pub captured_at: CaptureTime,
    /// The event id.
    pub event_id: &'a EventId,
    /// The event type.
    pub event_type: EventType,
    /// The canonical JSON text of the payload object.
    pub payload: &'a [u8],
    /// The canonical JSON text of the erasable map (`{}` when empty).
    pub erasable: &'a [u8],
    /// The signing key's id.
    pub key_id: KeyId,
}

impl BodyParts<'_> {
    /// Writes the canonical body into `out` (cleared first) and returns the record hash
    /// `SHA-256("auditex:record:v1" || 0x00 || body)`. `out` is a buffer the caller reuses.
    pub fn hash_into(&self, out: &mut Vec<u8>) -> Hash {
        out.clear();
        write_body(out, self, |out| out.extend_from_slice(self.erasable));
        hash_preimage(out)
    }
}

/// Writes the RFC 8785 canonical body (the record without `hash` and `sig`) into `out`, the
/// erasable map by `write_erasable` (from typed commitments or from canonical text).
///
/// Keys are emitted in JCS order (UTF-16 code-unit order, which for these ASCII names is byte
/// order): captured_at_us, erasable, event_id, event_type, key_id, payload, prev, seq, tenant, v.
/// No string here needs escaping: every one is restricted to ASCII letters, digits, `-` and `_`.
fn write_body(out: &mut Vec<u8>, p: &BodyParts<'_>, write_erasable: impl FnOnce(&mut Vec<u8>)) {
    use std::io::Write;
    out.extend_from_slice(b"{\"captured_at_us\":");
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{}", p.captured_at.unix_micros());
    out.extend_from_slice(b",\"erasable\":");
    write_erasable(out);
    out.extend_from_slice(b",\"event_id\":\"");
    let _ = write!(out, "{}", p.event_id);
    out.extend_from_slice(b"\",\"event_type\":\"");
    out.extend_from_slice(p.event_type.as_str().as_bytes());
    out.extend_from_slice(b"\",\"key_id\":\"");
    push_hex(out, p.key_id.as_bytes());
    out.extend_from_slice(b"\",\"payload\":");
    out.extend_from_slice(p.payload);
    out.extend_from_slice(b",\"prev\":\"");
    push_hex(out, p.prev.as_bytes());
    out.extend_from_slice(b"\",\"seq\":");
    let _ = write!(out, "{}", p.seq.get());
    out.extend_from_slice(b",\"tenant\":\"");
    out.extend_from_slice(p.tenant.as_str().as_bytes());
    out.extend_from_slice(b"\",\"v\":");
    let _ = write!(out, "{FORMAT_VERSION}");
    out.push(b'}');
}

/// The erasable map's canonical text from its typed commitments.
fn write_erasable_map(out: &mut Vec<u8>, erasable: &BTreeMap<FieldName, Hash>) {
    out.push(b'{');
    for (i, (name, commitment)) in erasable.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b"\":\"");
        push_hex(out, commitment.as_bytes());
        out.push(b'"');
    }
    out.push(b'}');
}

fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize]);
        out.push(DIGITS[(b & 0x0f) as usize]);
    }
}

fn hash_preimage(body: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update(RECORD_HASH_DOMAIN);
    h.update([0u8]);
    h.update(body);
    Hash::from_bytes(h.finalize().into())
}

/// A record whose hash is computed but which is not yet signed.
///
/// Hashing must follow the chain order (each record links to the previous hash), but signing
/// does not, so a sequencer hashes a batch in order and then signs it on several cores.
#[derive(Debug, Clone)]
pub struct UnsignedRecord {
    tenant: TenantId,
    at: ChainPosition,
    draft: RecordDraft,
    key_id: KeyId,
    hash: Hash,
}

impl UnsignedRecord {
    /// Computes the hash of `draft` at position `at`, to be signed by key `key_id`.
    pub fn new(tenant: &TenantId, at: ChainPosition, draft: RecordDraft, key_id: KeyId) -> Self {
        let mut body = Vec::with_capacity(256 + draft.payload.as_str().len());
        let parts = BodyParts {
            tenant,
            seq: at.seq,
            prev: &at.prev,
            captured_at: at.captured_at,
            event_id: &draft.event_id,
            event_type: draft.event_type,
            payload: draft.payload.as_str().as_bytes(),
            erasable: b"",
            key_id,
        };
        write_body(&mut body, &parts, |out| {
            write_erasable_map(out, &draft.erasable)
        });
        UnsignedRecord {
            tenant: tenant.clone(),
            at,
            draft,
            key_id,
            hash: hash_preimage(&body),
        }
    }

    /// The record hash.
    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// Signs the hash and returns the sealed record.
    ///
    /// # Panics
    /// If `signer` is not the key named when the hash was computed: that is a bug in the caller,
    /// and a record whose `key_id` disagrees with its signature must never be produced.
    pub fn sign(self, signer: &RecordSigner) -> Record {
        assert_eq!(
            self.key_id,
            signer.key_id(),
            "record hashed for another key"
        );
        let sig = signer.sign_hash(&self.hash);
        Record {
            v: FORMAT_VERSION,
            tenant: self.tenant,
            seq: self.at.seq,
            prev: self.at.prev,
            captured_at_us: self.at.captured_at,
            event_id: self.draft.event_id,
            event_type: self.draft.event_type,
            payload: self.draft.payload,
            erasable: self.draft.erasable,
            key_id: self.key_id,
            hash: self.hash,
            sig,
        }
    }
}

/// Seals a draft at a chain position: computes the hash and signs it.
pub fn seal(
    tenant: &TenantId,
    at: ChainPosition,
    draft: RecordDraft,
    signer: &RecordSigner,
) -> Record {
    UnsignedRecord::new(tenant, at, draft, signer.key_id()).sign(signer)
}

impl Record {
    /// The canonical body bytes (the hash preimage without its domain prefix).
    pub fn canonical_body(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(256 + self.payload.as_str().len());
        let parts = BodyParts {
            tenant: &self.tenant,
            seq: self.seq,
            prev: &self.prev,
            captured_at: self.captured_at_us,
            event_id: &self.event_id,
            event_type: self.event_type,
            payload: self.payload.as_str().as_bytes(),
            erasable: b"",
            key_id: self.key_id,
        };
        write_body(&mut body, &parts, |out| {
            write_erasable_map(out, &self.erasable)
        });
        body
    }

    /// Recomputes the record hash from the envelope fields (ignoring the stored `hash`).
    pub fn compute_hash(&self) -> Hash {
        hash_preimage(&self.canonical_body())
    }

    /// The draft this record was sealed from.
    pub fn draft(&self) -> RecordDraft {
        RecordDraft {
            event_id: self.event_id,
            event_type: self.event_type,
            payload: self.payload.clone(),
            erasable: self.erasable.clone(),
        }
    }

    /// Parses one record from JSON text.
    ///
    /// # Errors
    /// A [`crate::json::JsonError`] for a duplicate member name or out-of-range number (with its
    /// pointer), or for any malformed field.
    pub fn from_json(text: &str) -> Result<Self, crate::json::JsonError> {
        crate::json::from_str(text)
    }
}
