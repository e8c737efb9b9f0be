//! Record signing keys, their ids, and the key ring that knows when each key was valid.
//!
//! A tenant signs with one Ed25519 key at a time. Rotation is itself a record (signed by the old
//! key) that names the new key and the first sequence number it signs, so a key's validity interval
//! is a range of sequence numbers that anyone can derive from the chain. A record signed by a key
//! outside that key's interval does not verify, which stops a leaked retired key from being used to
//! forge later records.

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::types::{ParseError, Sequence};

/// Domain-separation prefix of the key-id derivation (followed by a 0x00 byte).
pub const KEY_ID_DOMAIN: &[u8] = b"auditex:key:v1";

/// Length of a record key id, in bytes (16 lowercase hex digits on the wire).
pub const KEY_ID_BYTES: usize = 8;

/// Length of an Ed25519 signature, in bytes.
pub const SIGNATURE_BYTES: usize = 64;

/// The id of a record-signing key: the first 8 bytes of
/// `SHA-256("auditex:key:v1" || 0x00 || public key)`, as 16 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; KEY_ID_BYTES]);

impl KeyId {
    /// Derives the id of a public key.
    pub fn of(key: &VerifyingKey) -> Self {
        let mut h = Sha256::new();
        h.update(KEY_ID_DOMAIN);
        h.update([0u8]);
        h.update(key.as_bytes());
        let digest = h.finalize();
        let mut id = [0u8; KEY_ID_BYTES];
        id.copy_from_slice(&digest[..KEY_ID_BYTES]);
        KeyId(id)
    }

    /// Parses 16 lowercase hex digits.
    ///
    /// # Errors
    /// [`ParseError::Hash`] when the text is not 16 lowercase hex digits.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        if text.len() != 2 * KEY_ID_BYTES || text.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ParseError::Hash(format!(
                "key id must be {} lowercase hex digits",
                2 * KEY_ID_BYTES
            )));
        }
        let mut id = [0u8; KEY_ID_BYTES];
        crate::types::decode_lower_hex(text, &mut id)
            .map_err(|e| ParseError::Hash(format!("key id: {e}")))?;
        Ok(KeyId(id))
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The 8 bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_ID_BYTES] {
        &self.0
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.to_hex())
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for KeyId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        KeyId::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// An Ed25519 signature over a record hash, hex on the wire (128 lowercase digits).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RecordSignature(Signature);

impl RecordSignature {
    /// Wraps a signature.
    pub fn new(sig: Signature) -> Self {
        RecordSignature(sig)
    }

    /// The signature.
    pub fn signature(&self) -> &Signature {
        &self.0
    }

    /// The 64 bytes.
    pub fn to_bytes(&self) -> [u8; SIGNATURE_BYTES] {
        self.0.to_bytes()
    }

    /// Parses 128 hex digits.
    ///
    /// # Errors
    /// [`ParseError::Hash`] for anything else.
    pub fn from_hex(text: &str) -> Result<Self, ParseError> {
        let mut bytes = [0u8; SIGNATURE_BYTES];
        crate::types::decode_lower_hex(text, &mut bytes)
            .map_err(|e| ParseError::Hash(format!("signature must be 128 hex digits: {e}")))?;
        Ok(RecordSignature(Signature::from_bytes(&bytes)))
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.to_bytes())
    }
}

impl fmt::Debug for RecordSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordSignature({})", self.to_hex())
    }
}

impl Serialize for RecordSignature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for RecordSignature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        RecordSignature::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

/// A tenant's current signing key together with its derived id.
pub struct RecordSigner {
    key: SigningKey,
    id: KeyId,
}

impl RecordSigner {
    /// Wraps a signing key (the caller generated it from a secure random source).
    pub fn new(key: SigningKey) -> Self {
        let id = KeyId::of(&key.verifying_key());
        RecordSigner { key, id }
    }

    /// The key id written into every record this signer seals.
    pub fn key_id(&self) -> KeyId {
        self.id
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The underlying signing key (for checkpoint notes, which the same key signs).
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// Signs a 32-byte record hash.
    pub fn sign_hash(&self, hash: &crate::types::Hash) -> RecordSignature {
        RecordSignature(self.key.sign(hash.as_bytes()))
    }
}

impl fmt::Debug for RecordSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("RecordSigner")
            .field("key_id", &self.id)
            .finish_non_exhaustive()
    }
}

/// One public key and the sequence numbers it may sign: `[from_seq, until_seq)`.
///
/// Its JSON form is a closed set of four members, all required (`until_seq` is `null` while the
/// key is current): a misspelled or missing member is an error, never a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyInterval {
    /// The key's id (derived from `public_key`; checked when the ring is built).
    pub key_id: KeyId,
    /// The Ed25519 public key, 64 lowercase hex digits.
    #[serde(with = "verifying_key_hex")]
    pub public_key: VerifyingKey,
    /// First sequence number this key signs.
    pub from_seq: u64,
    /// First sequence number this key no longer signs; `None` while it is the current key.
    #[serde(deserialize_with = "required_option")]
    pub until_seq: Option<u64>,
}

/// Makes an `Option` member required (serde otherwise reads a missing one as `None`).
pub(crate) fn required_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<u64>, D::Error> {
    Option::<u64>::deserialize(d)
}

/// One entry of the key-history document that `auditex key history` and `GET /v1/keys` publish:
/// a [`KeyInterval`] and the C2SP verifier key of the same public key under the log's origin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyHistoryEntry {
    /// The key's id.
    pub key_id: KeyId,
    /// The Ed25519 public key, 64 lowercase hex digits.
    #[serde(with = "verifying_key_hex")]
    pub public_key: VerifyingKey,
    /// First sequence number this key signs.
    pub from_seq: u64,
    /// First sequence number this key no longer signs; `null` while it is the current key.
    #[serde(deserialize_with = "required_option")]
    pub until_seq: Option<u64>,
    /// `<origin>+<8 hex digits>+<base64(0x01 || public key)>`.
    pub verifier_key: String,
}

/// The key-history document (FORMAT.md): `{"origin": …, "keys": [entry, …]}`, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyHistory {
    /// The log origin whose checkpoints these keys sign.
    pub origin: String,
    /// The keys, oldest first.
    pub keys: Vec<KeyHistoryEntry>,
}

/// Why a key-history document is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyHistoryError {
    /// Not strict JSON of the document's shape.
    #[error("not a key history: {0}")]
    Json(#[from] crate::json::JsonError),
    /// The intervals do not form a valid ring.
    #[error("key history: {0}")]
    Ring(#[from] KeyError),
    /// An entry's verifier key is not the one its public key and the origin give.
    #[error("the verifier key of {key_id} does not match its public key and the origin")]
    VerifierKeyMismatch {
        /// The entry's key id.
        key_id: KeyId,
    },
}

impl KeyHistory {
    /// Builds the document for `origin` from a ring.
    ///
    /// # Errors
    /// [`crate::note::VerifierKeyError`] when `origin` is not a valid key name.
    pub fn of(origin: &str, ring: &KeyRing) -> Result<Self, crate::note::VerifierKeyError> {
        let keys = ring
            .intervals()
            .iter()
            .map(|k| {
                Ok(KeyHistoryEntry {
                    key_id: k.key_id,
                    public_key: k.public_key,
                    from_seq: k.from_seq,
                    until_seq: k.until_seq,
                    verifier_key: crate::note::VerifierKey::new(origin, k.public_key)?.to_string(),
                })
            })
            .collect::<Result<_, crate::note::VerifierKeyError>>()?;
        Ok(KeyHistory {
            origin: origin.to_owned(),
            keys,
        })
    }

    /// Parses the document strictly and checks it: every verifier key is derived from its
    /// public key and the origin, and the intervals form a valid [`KeyRing`].
    ///
    /// # Errors
    /// [`KeyHistoryError`] naming the first problem.
    pub fn parse(text: &str) -> Result<Self, KeyHistoryError> {
        let history: KeyHistory = crate::json::from_str(text)?;
        for entry in &history.keys {
            let derived = crate::note::VerifierKey::new(&history.origin, entry.public_key)
                .map(|v| v.to_string())
                .ok();
            if derived.as_deref() != Some(entry.verifier_key.as_str()) {
                return Err(KeyHistoryError::VerifierKeyMismatch {
                    key_id: entry.key_id,
                });
            }
        }
        history.ring()?;
        Ok(history)
    }

    /// The intervals, oldest first.
    pub fn intervals(&self) -> Vec<KeyInterval> {
        self.keys
            .iter()
            .map(|e| KeyInterval {
                key_id: e.key_id,
                public_key: e.public_key,
                from_seq: e.from_seq,
                until_seq: e.until_seq,
            })
            .collect()
    }

    /// The intervals as a ring.
    ///
    /// # Errors
    /// [`KeyError`] when they do not form a valid ring.
    pub fn ring(&self) -> Result<KeyRing, KeyError> {
        KeyRing::new(self.intervals())
    }

    /// The document as indented JSON, as `auditex key history` prints it.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

mod verifying_key_hex {
    use ed25519_dalek::VerifyingKey;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(key: &VerifyingKey, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(key.as_bytes()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<VerifyingKey, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let mut bytes = [0u8; 32];
        crate::types::decode_lower_hex(text.as_ref(), &mut bytes)
            .map_err(serde::de::Error::custom)?;
        super::strict_verifying_key(&bytes).map_err(serde::de::Error::custom)
    }
}

/// Why 32 bytes are not an acceptable Ed25519 public key (FORMAT.md section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublicKeyError {
    /// Not the encoding of a curve point.
    #[error("not an Ed25519 public key")]
    NotAPoint,
    /// A point, but not in its one canonical encoding (y at or above 2^255 - 19).
    #[error("the Ed25519 public key is not canonically encoded")]
    NonCanonical,
    /// A point of small order, which verifies signatures it never made.
    #[error("the Ed25519 public key has small order")]
    SmallOrder,
}

/// Reads an Ed25519 public key strictly: a canonical encoding of a point not of small order.
/// `verify_strict` rejects small-order keys at each signature; refusing them (and non-canonical
/// encodings, which ed25519-dalek would otherwise accept) where a key is read makes every key
/// have exactly one written form.
///
/// # Errors
/// [`PublicKeyError`] naming why the bytes are refused.
pub fn strict_verifying_key(bytes: &[u8; 32]) -> Result<VerifyingKey, PublicKeyError> {
    let key = VerifyingKey::from_bytes(bytes).map_err(|_| PublicKeyError::NotAPoint)?;
    if key.to_edwards().compress().to_bytes() != *bytes {
        return Err(PublicKeyError::NonCanonical);
    }
    if key.is_weak() {
        return Err(PublicKeyError::SmallOrder);
    }
    Ok(key)
}

/// Why a key ring could not be built or a key could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// An entry's id does not match its public key.
    #[error("key id {stated} does not match its public key (derived {derived})")]
    IdMismatch {
        /// The id written in the entry.
        stated: KeyId,
        /// The id derived from the public key.
        derived: KeyId,
    },
    /// Intervals are empty, overlap, leave a gap or do not start at sequence 0.
    #[error("key history is not one contiguous series of intervals from sequence 0: {0}")]
    BadIntervals(String),
    /// No key of the ring has this id.
    #[error("record {seq} is signed by unknown key {key_id}")]
    UnknownKey {
        /// The record's sequence number.
        seq: u64,
        /// The unknown key id.
        key_id: KeyId,
    },
    /// The key exists but was not valid for this sequence number.
    #[error("record {seq} is signed by key {key_id}, which is valid only for sequences {from_seq}..{}", until_seq.map_or(String::new(), |u| u.to_string()))]
    OutsideInterval {
        /// The record's sequence number.
        seq: u64,
        /// The key id.
        key_id: KeyId,
        /// The key's first sequence.
        from_seq: u64,
        /// The key's end (exclusive).
        until_seq: Option<u64>,
    },
}

/// Every public key a tenant ever used, with validity intervals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRing {
    keys: Vec<KeyInterval>,
}

impl KeyRing {
    /// Builds a ring from a key history, checking ids and that the intervals tile `[0, ∞)` in
    /// order with no gap or overlap (only the last may be open-ended).
    ///
    /// # Errors
    /// [`KeyError::IdMismatch`] or [`KeyError::BadIntervals`].
    pub fn new(keys: Vec<KeyInterval>) -> Result<Self, KeyError> {
        let mut expected_from = 0u64;
        for (i, k) in keys.iter().enumerate() {
            let derived = KeyId::of(&k.public_key);
            if derived != k.key_id {
                return Err(KeyError::IdMismatch {
                    stated: k.key_id,
                    derived,
                });
            }
            if k.from_seq != expected_from {
                return Err(KeyError::BadIntervals(format!(
                    "key {} starts at {} but {} was expected",
                    k.key_id, k.from_seq, expected_from
                )));
            }
            match k.until_seq {
                Some(until) if until <= k.from_seq => {
                    return Err(KeyError::BadIntervals(format!(
                        "key {} has an empty interval {}..{}",
                        k.key_id, k.from_seq, until
                    )));
                }
                Some(until) => expected_from = until,
                None if i + 1 != keys.len() => {
                    return Err(KeyError::BadIntervals(format!(
                        "key {} is open-ended but is not the last key",
                        k.key_id
                    )));
                }
                None => {}
            }
        }
        if keys.is_empty() {
            return Err(KeyError::BadIntervals("no keys".into()));
        }
        Ok(KeyRing { keys })
    }

    /// A ring with one key valid from sequence 0 onwards.
    pub fn single(key: VerifyingKey) -> Self {
        KeyRing {
            keys: vec![KeyInterval {
                key_id: KeyId::of(&key),
                public_key: key,
                from_seq: 0,
                until_seq: None,
            }],
        }
    }

    /// The history, oldest first.
    pub fn intervals(&self) -> &[KeyInterval] {
        &self.keys
    }

    /// Looks up a key by id.
    pub fn get(&self, key_id: KeyId) -> Option<&KeyInterval> {
        self.keys.iter().find(|k| k.key_id == key_id)
    }

    /// The key that may sign record `seq` under id `key_id`.
    ///
    /// # Errors
    /// [`KeyError::UnknownKey`] or [`KeyError::OutsideInterval`].
    pub fn key_for(&self, key_id: KeyId, seq: Sequence) -> Result<&VerifyingKey, KeyError> {
        let seq = seq.get();
        let k = self
            .get(key_id)
            .ok_or(KeyError::UnknownKey { seq, key_id })?;
        let inside = seq >= k.from_seq && k.until_seq.is_none_or(|u| seq < u);
        if !inside {
            return Err(KeyError::OutsideInterval {
                seq,
                key_id,
                from_seq: k.from_seq,
                until_seq: k.until_seq,
            });
        }
        Ok(&k.public_key)
    }

    /// Whether `key_id` may sign a checkpoint of `size` records: its interval must have begun at or
    /// before `size` and not ended before `size` (so the old key can sign the checkpoint that ends on
    /// its rotation record, and the new key every checkpoint after).
    pub fn may_sign_checkpoint(&self, key_id: KeyId, size: u64) -> bool {
        self.get(key_id)
            .is_some_and(|k| k.from_seq <= size && k.until_seq.is_none_or(|u| size <= u))
    }
}

#[cfg(test)]
mod strictness_tests {
    use super::*;

    /// RFC 8032 section 7.1, TEST 1.
    const PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    const SIGNATURE: &str = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

    fn bytes<const N: usize>(hex_text: &str) -> [u8; N] {
        let mut out = [0u8; N];
        hex::decode_to_slice(hex_text, &mut out).expect("hex");
        out
    }

    #[test]
    fn the_rfc_8032_key_is_accepted_and_its_signature_verifies_strictly() {
        let key = strict_verifying_key(&bytes(PUBLIC)).expect("a good key");
        let sig = ed25519_dalek::Signature::from_bytes(&bytes(SIGNATURE));
        assert!(key.verify_strict(b"", &sig).is_ok());
    }

    #[test]
    fn a_non_canonical_s_is_rejected() {
        let key = strict_verifying_key(&bytes(PUBLIC)).expect("a good key");
        let mut sig: [u8; 64] = bytes(SIGNATURE);
        // S + L, little-endian: L = 2^252 + 27742317777372353535851937790883648493.
        let l: [u8; 32] = bytes("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");
        let mut carry = 0u16;
        for i in 0..32 {
            let sum = u16::from(sig[32 + i]) + u16::from(l[i]) + carry;
            sig[32 + i] = (sum & 0xff) as u8;
            carry = sum >> 8;
        }
        assert_eq!(carry, 0, "S + L fits in 32 bytes");
        let sig = ed25519_dalek::Signature::from_bytes(&sig);
        assert!(key.verify_strict(b"", &sig).is_err());
    }

    #[test]
    fn a_small_order_key_is_refused_even_where_the_equation_holds() {
        let identity = {
            let mut b = [0u8; 32];
            b[0] = 1;
            b
        };
        assert_eq!(
            strict_verifying_key(&identity),
            Err(PublicKeyError::SmallOrder)
        );
        // [S]B = R + [k]A holds for A = R = identity and S = 0, for every message.
        let key = VerifyingKey::from_bytes(&identity).expect("a point");
        let mut sig = [0u8; 64];
        sig[0] = 1;
        let sig = ed25519_dalek::Signature::from_bytes(&sig);
        assert!(key.verify_strict(b"any message", &sig).is_err());
    }

    #[test]
    fn a_non_canonical_encoding_of_a_point_is_refused() {
        // y + p for small y: the same point as y if it exists, written a second way.
        let mut tested = 0;
        for y in 0u8..19 {
            for sign in [0u8, 0x80] {
                let mut e = [0xffu8; 32];
                e[0] = 0xed + y; // p = 2^255 - 19 = ed ff … ff 7f (little-endian)
                e[31] = 0x7f | sign;
                if VerifyingKey::from_bytes(&e).is_ok() {
                    tested += 1;
                    assert!(strict_verifying_key(&e).is_err(), "y = p + {y}");
                }
            }
        }
        assert!(tested > 0, "some non-canonical encoding decodes to a point");
    }
}
