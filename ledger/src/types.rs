//! Domain newtypes shared by every part of the ledger.
//!
//! Each type is built once at the edge (`parse` / `TryFrom` / `new`) and is then known to be valid,
//! so the rest of the crate never re-checks a tenant id or a hash length. Quantities that are
//! persisted or sent on the wire are `u64`; none of these types derefs to its inner value.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Length of every hash in the ledger (SHA-256), in bytes.
pub const HASH_BYTES: usize = 32;

/// The largest integer that RFC 8785 (via IEEE-754 doubles) represents exactly: 2^53 - 1.
///
/// Sequence numbers, tree sizes and microsecond timestamps are written into canonical JSON as
/// numbers, so they are bounded by this value; a ledger reaching it would hold 9 × 10^15 records.
pub const JSON_SAFE_INTEGER_MAX: u64 = (1 << 53) - 1;

/// Errors from parsing a domain value at the edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// A hash was not 64 lowercase-or-uppercase hex digits (or 32 bytes).
    #[error("invalid hash: {0}")]
    Hash(String),
    /// A tenant id broke the naming rule.
    #[error("invalid tenant id {value:?}: {reason}")]
    TenantId {
        /// The rejected input (truncated for display).
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A number above [`JSON_SAFE_INTEGER_MAX`].
    #[error("{what} {value} is above the largest exactly representable JSON integer 2^53-1")]
    TooLarge {
        /// Which quantity.
        what: &'static str,
        /// The rejected value.
        value: u64,
    },
    /// An event id that is not a UUID version 7.
    #[error("invalid event id {0:?}: expected a UUIDv7 in lowercase hyphenated form")]
    EventId(String),
}

/// A SHA-256 digest: a record hash, a Merkle node hash or a root.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash([u8; HASH_BYTES]);

impl Hash {
    /// The all-zero hash, used as the `prev` link of a tenant's first record (the genesis value).
    pub const ZERO: Hash = Hash([0; HASH_BYTES]);

    /// Wraps 32 bytes.
    pub const fn from_bytes(bytes: [u8; HASH_BYTES]) -> Self {
        Hash(bytes)
    }

    /// Borrows the 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; HASH_BYTES] {
        &self.0
    }

    /// Takes a slice that must be exactly 32 bytes long.
    ///
    /// # Errors
    /// [`ParseError::Hash`] when the slice has another length.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ParseError> {
        <[u8; HASH_BYTES]>::try_from(bytes).map(Hash).map_err(|_| {
            ParseError::Hash(format!("expected {HASH_BYTES} bytes, got {}", bytes.len()))
        })
    }

    /// Parses 64 hex digits.
    ///
    /// # Errors
    /// [`ParseError::Hash`] when the text is not 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, ParseError> {
        let mut out = [0u8; HASH_BYTES];
        decode_lower_hex(text, &mut out)
            .map_err(|e| ParseError::Hash(format!("expected 64 hex digits: {e}")))?;
        Ok(Hash(out))
    }

    /// Lowercase hex, the form used in every JSON document of the ledger.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Hash::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

/// The number of leaves in a tenant's Merkle tree (equal to the number of records).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TreeSize(u64);

impl TreeSize {
    /// The empty tree.
    pub const ZERO: TreeSize = TreeSize(0);

    /// Wraps a size.
    pub const fn new(size: u64) -> Self {
        TreeSize(size)
    }

    /// The size as a number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for TreeSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The 0-based position of a leaf in a tenant's Merkle tree; equal to the record's sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LeafIndex(u64);

impl LeafIndex {
    /// Wraps an index.
    pub const fn new(index: u64) -> Self {
        LeafIndex(index)
    }

    /// The index as a number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for LeafIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Longest tenant id, in bytes.
pub const TENANT_ID_BYTES_MAX: usize = 63;

/// A tenant's identifier: 1–63 characters of `a-z`, `0-9` and `-`, starting with a letter or digit.
///
/// The character set is restricted so that the id can appear unescaped in canonical JSON, in a
/// checkpoint origin line and in a URL path without any encoding question.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    /// Parses and validates a tenant id.
    ///
    /// # Errors
    /// [`ParseError::TenantId`] saying which rule was broken.
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        let reject = |reason| ParseError::TenantId {
            value: value.chars().take(80).collect(),
            reason,
        };
        if value.is_empty() {
            return Err(reject("must not be empty"));
        }
        if value.len() > TENANT_ID_BYTES_MAX {
            return Err(reject("must be at most 63 characters"));
        }
        if !value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(reject("only a-z, 0-9 and '-' are allowed"));
        }
        if value.starts_with('-') {
            return Err(reject("must start with a letter or digit"));
        }
        Ok(TenantId(value.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for TenantId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TenantId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        TenantId::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A record's 0-based position in its tenant's chain; equal to its Merkle leaf index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Sequence(u64);

impl Sequence {
    /// The first record of every tenant.
    pub const FIRST: Sequence = Sequence(0);

    /// Wraps a sequence number.
    ///
    /// # Errors
    /// [`ParseError::TooLarge`] above 2^53 − 1 (canonical JSON could not hold it exactly).
    pub fn new(seq: u64) -> Result<Self, ParseError> {
        if seq > JSON_SAFE_INTEGER_MAX {
            return Err(ParseError::TooLarge {
                what: "sequence number",
                value: seq,
            });
        }
        Ok(Sequence(seq))
    }

    /// The number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The next sequence number.
    ///
    /// # Errors
    /// [`ParseError::TooLarge`] when the chain is full (2^53 records).
    pub fn next(self) -> Result<Self, ParseError> {
        Sequence::new(self.0 + 1)
    }

    /// This record's leaf index in the tenant's Merkle tree.
    pub const fn leaf_index(self) -> LeafIndex {
        LeafIndex::new(self.0)
    }

    /// The size of the tree whose last leaf is this record.
    pub const fn tree_size_through(self) -> TreeSize {
        TreeSize::new(self.0 + 1)
    }
}

impl fmt::Display for Sequence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl<'de> Deserialize<'de> for Sequence {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Sequence::new(u64::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Capture time: microseconds since the Unix epoch, UTC, set by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct CaptureTime(u64);

impl CaptureTime {
    /// Wraps a count of microseconds since 1970-01-01T00:00:00Z.
    ///
    /// # Errors
    /// [`ParseError::TooLarge`] above 2^53 − 1 µs (year 2255).
    pub fn from_unix_micros(micros: u64) -> Result<Self, ParseError> {
        if micros > JSON_SAFE_INTEGER_MAX {
            return Err(ParseError::TooLarge {
                what: "capture time",
                value: micros,
            });
        }
        Ok(CaptureTime(micros))
    }

    /// Microseconds since the Unix epoch.
    pub const fn unix_micros(self) -> u64 {
        self.0
    }

    /// RFC 3339 text with microseconds, e.g. `2026-11-29T08:49:27.123456Z`.
    pub fn to_rfc3339(self) -> String {
        let secs = (self.0 / 1_000_000) as i64;
        let nanos = ((self.0 % 1_000_000) * 1000) as u32;
        match chrono::DateTime::from_timestamp(secs, nanos) {
            Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
            None => format!("{}us", self.0),
        }
    }
}

impl fmt::Display for CaptureTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for CaptureTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        CaptureTime::from_unix_micros(u64::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// An event id: a UUID version 7, which doubles as the idempotency key of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(uuid::Uuid);

impl EventId {
    /// Parses the lowercase, hyphenated form of a UUIDv7 (the only form that is ever hashed).
    ///
    /// # Errors
    /// [`ParseError::EventId`] for anything else, including upper case or another UUID version.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let bad = || ParseError::EventId(text.chars().take(80).collect());
        if text.len() != 36 || text.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad());
        }
        let id = uuid::Uuid::try_parse(text).map_err(|_| bad())?;
        if id.get_version_num() != 7 || id.get_variant() != uuid::Variant::RFC4122 {
            return Err(bad());
        }
        Ok(EventId(id))
    }

    /// Builds a UUIDv7 from its 16 bytes, as produced by a generator at the edge.
    ///
    /// # Errors
    /// [`ParseError::EventId`] when the bytes are not a version-7, RFC 4122 variant UUID.
    pub fn from_bytes(bytes: [u8; 16]) -> Result<Self, ParseError> {
        EventId::parse(&uuid::Uuid::from_bytes(bytes).hyphenated().to_string())
    }

    /// The 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.hyphenated())
    }
}

impl Serialize for EventId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        EventId::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Decodes hex into `out`, accepting only lower-case digits and exactly `2 * out.len()` of them.
///
/// FORMAT.md allows exactly one encoding of every hashed or signed value: a verifier that also
/// took `A`–`F` would accept text that a reader recomputing the body from the members as written
/// hashes differently.
///
/// # Errors
/// A message naming the first character that is not a lower-case hex digit, or the wrong length.
pub fn decode_lower_hex(text: &str, out: &mut [u8]) -> Result<(), String> {
    if text.len() != 2 * out.len() {
        return Err(format!(
            "expected {} lower-case hex digits, got {} characters",
            2 * out.len(),
            text.chars().count()
        ));
    }
    if let Some(c) = text.chars().find(|c| !matches!(c, '0'..='9' | 'a'..='f')) {
        return Err(format!("{c:?} is not a lower-case hex digit"));
    }
    hex::decode_to_slice(text, out).map_err(|e| e.to_string())
}
