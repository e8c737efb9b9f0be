//! Verification of records, chains, checkpoints and single-record proof files.
//!
//! The checks build on each other:
//!
//! - [`verify_record`] checks one record on its own: format version, hash, signing key and its
//!   validity interval, Ed25519 signature.
//! - [`ChainVerifier`] checks a run of records as they stream past in sequence order: the same
//!   per-record checks, plus tenant, gap-free sequence numbers, hash links, non-decreasing capture
//!   times and key-rotation records, and it folds the records into the Merkle tree. Signatures are
//!   checked in batches, which is several times faster than one by one; when a batch fails the
//!   verifier checks its records one by one to name the first bad one. Every error names the
//!   *first* failing record in chain order, whichever check caught it.
//! - [`ChainSummary`] is what a verified run proves. Runs that start from an anchor (the record
//!   before them) can be verified independently, on as many cores as the caller likes, and
//!   stitched together with [`ChainSummary::then`]; the crate itself never spawns anything.
//! - [`verify_checkpoint_matches`], [`verify_record_inclusion`] and
//!   [`verify_checkpoint_consistency`] relate records and chains to signed checkpoints, and
//!   [`verify_tlog_proof`] checks a C2SP `tlog-proof` file end to end.
//!
//! Single records are verified with `verify_strict`. Batches use ed25519-dalek's batch equation,
//! which accepts every signature that `verify_strict` accepts; the reverse can fail only for a
//! signature that the holder of the private key crafted with a small-order component, which
//! proves nothing that key could not have signed properly. A verifier that must match
//! [`verify_record`] bit for bit sets [`ChainVerifier::with_signature_batch`] to 1.

use ed25519_dalek::{Signature, VerifyingKey};

use crate::checkpoint::{Checkpoint, OpenCheckpointError, open_checkpoint};
use crate::keys::{KeyError, KeyId, KeyInterval, KeyRing};
use crate::merkle::{
    VerifyConsistencyError, VerifyInclusionError, empty_root, leaf_hash, node_hash,
    verify_consistency, verify_inclusion,
};
use crate::note::{VerifierKey, VerifierKeyError};
use crate::proof_file::{TlogProof, TlogProofError};
use crate::record::{EventType, FORMAT_VERSION, Record};
use crate::types::{CaptureTime, EventId, Hash, LeafIndex, TenantId, TreeSize};

/// Signatures checked together in one batch by [`ChainVerifier`] unless the caller chooses
/// otherwise. Larger batches gain little: at 256 the per-batch overhead is already negligible.
pub const SIGNATURE_BATCH_RECORDS: usize = 256;

/// Most keys accepted in a published key history (a bundle's or an export's `keys`), and most
/// verifier keys beside them. A tenant rotating its key every day would need three years to
/// reach it.
pub const KEY_HISTORY_KEYS_MAX: usize = 1024;

/// Why a single record does not verify. Every variant names the record's sequence number and
/// event id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The record claims a format version this crate does not read.
    #[error(
        "record {seq} (event {event_id}): format version {found} is not supported (expected {FORMAT_VERSION})"
    )]
    UnsupportedVersion {
        /// The record's sequence number.
        seq: u64,
        /// The record's event id.
        event_id: EventId,
        /// The version it claims.
        found: u32,
    },
    /// The record's content does not hash to its stored hash: some field was changed.
    #[error(
        "record {seq} (event {event_id}): stored hash {stored} but the content hashes to {computed}"
    )]
    HashMismatch {
        /// The record's sequence number.
        seq: u64,
        /// The record's event id.
        event_id: EventId,
        /// The `hash` field.
        stored: Hash,
        /// The hash of the record's content.
        computed: Hash,
    },
    /// The signing key is unknown or was not valid for this sequence number.
    #[error("{source} (event {event_id})")]
    Key {
        /// The record's sequence number.
        seq: u64,
        /// The record's event id.
        event_id: EventId,
        /// What is wrong with the key.
        source: KeyError,
    },
    /// The signature is not a valid Ed25519 signature of the hash by the named key.
    #[error("record {seq} (event {event_id}): the signature by key {key_id} does not verify")]
    BadSignature {
        /// The record's sequence number.
        seq: u64,
        /// The record's event id.
        event_id: EventId,
        /// The key the record names.
        key_id: KeyId,
    },
}

impl RecordError {
    /// The sequence number of the record that failed.
    pub fn seq(&self) -> u64 {
        match self {
            RecordError::UnsupportedVersion { seq, .. }
            | RecordError::HashMismatch { seq, .. }
            | RecordError::Key { seq, .. }
            | RecordError::BadSignature { seq, .. } => *seq,
        }
    }

    /// The event id of the record that failed.
    pub fn event_id(&self) -> EventId {
        match self {
            RecordError::UnsupportedVersion { event_id, .. }
            | RecordError::HashMismatch { event_id, .. }
            | RecordError::Key { event_id, .. }
            | RecordError::BadSignature { event_id, .. } => *event_id,
        }
    }
}

/// Checks everything about a record except its signature, and returns the key that must have
/// signed it.
fn check_unsigned(record: &Record, ring: &KeyRing) -> Result<VerifyingKey, RecordError> {
    let seq = record.seq.get();
    let event_id = record.event_id;
    if record.v != FORMAT_VERSION {
        return Err(RecordError::UnsupportedVersion {
            seq,
            event_id,
            found: record.v,
        });
    }
    let computed = record.compute_hash();
    if computed != record.hash {
        return Err(RecordError::HashMismatch {
            seq,
            event_id,
            stored: record.hash,
            computed,
        });
    }
    ring.key_for(record.key_id, record.seq)
        .copied()
        .map_err(|source| RecordError::Key {
            seq,
            event_id,
            source,
        })
}

/// Verifies one record on its own: the format version, the hash of its content, that its key
/// is in `ring` and valid for its sequence number, and the Ed25519 signature (strict) over the
/// 32 hash bytes.
///
/// This says nothing about the record's place in the chain; see [`ChainVerifier`].
///
/// # Errors
/// The first failing check as a [`RecordError`].
pub fn verify_record(record: &Record, ring: &KeyRing) -> Result<(), RecordError> {
    let key = check_unsigned(record, ring)?;
    key.verify_strict(record.hash.as_bytes(), record.sig.signature())
        .map_err(|_| RecordError::BadSignature {
            seq: record.seq.get(),
            event_id: record.event_id,
            key_id: record.key_id,
        })
}

/// How a key-rotation record disagrees with the key history.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RotationProblem {
    /// A payload field is missing or malformed.
    #[error("the payload field {field} is missing or malformed")]
    MalformedPayload {
        /// The field name.
        field: &'static str,
    },
    /// The new key does not take over from the next record.
    #[error(
        "effective_from_seq is {stated}, but a rotation takes effect at the next record, {expected}"
    )]
    EffectiveFrom {
        /// The payload's `effective_from_seq`.
        stated: u64,
        /// The rotation's sequence number plus one.
        expected: u64,
    },
    /// The key history has no key with the new key id.
    #[error("the new key {key_id} is not in the key history")]
    NewKeyNotInHistory {
        /// The payload's `new_key_id`.
        key_id: KeyId,
    },
    /// The key history holds another public key under the new key id.
    #[error("the key history holds another public key for {key_id}")]
    NewKeyMismatch {
        /// The payload's `new_key_id`.
        key_id: KeyId,
    },
    /// The key history starts the new key at another sequence number.
    #[error("the key history starts key {key_id} at {from_seq}, not at {expected}")]
    NewKeyStartsElsewhere {
        /// The new key.
        key_id: KeyId,
        /// Its first sequence in the history.
        from_seq: u64,
        /// The rotation's sequence number plus one.
        expected: u64,
    },
    /// The key history does not end the rotating key where the new one starts.
    #[error("the key history ends key {key_id} at {}, not at {expected}", until_seq.map_or("never".to_owned(), |u| u.to_string()))]
    OldKeyDoesNotEnd {
        /// The key that signed the rotation.
        key_id: KeyId,
        /// Its end in the history.
        until_seq: Option<u64>,
        /// The rotation's sequence number plus one.
        expected: u64,
    },
}

/// Why a chain (or a segment of one) does not verify. Every variant names the first failing
/// record; [`ChainError::seq`] returns its sequence number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The record itself does not verify.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// A record of another tenant is in the chain.
    #[error("record {seq} (event {event_id}) belongs to tenant {found}, not {expected}")]
    WrongTenant {
        /// The record's sequence number.
        seq: u64,
        /// The record's event id.
        event_id: EventId,
        /// The tenant being verified.
        expected: TenantId,
        /// The record's tenant.
        found: TenantId,
    },
    /// The next record does not carry the next sequence number: one is missing, repeated or out
    /// of order.
    #[error(
        "expected record {expected} but found record {found} (event {event_id}): a record is missing, repeated or out of order"
    )]
    Gap {
        /// The sequence number that should come next.
        expected: u64,
        /// The sequence number found.
        found: u64,
        /// The event id of the record found.
        event_id: EventId,
    },
    /// The record's `prev` is not the previous record's hash.
    #[error(
        "record {seq} (event {event_id}) links to {found}, but the previous record's hash is {expected}"
    )]
    BrokenLink {
        /// The record's sequence number.
        seq: u64,
        /// The record's event id.
        event_id: EventId,
        /// The previous record's hash.
        expected: Hash,
        /// The record's `prev`.
        found: Hash,
    },
    /// The record was captured before the previous one.
    #[error(
        "record {seq} (event {event_id}) was captured at {found}, before the previous record ({previous})"
    )]
    TimeWentBackwards {
        /// The record's sequence number.
        seq: u64,
        /// The record's event id.
        event_id: EventId,
        /// The previous record's capture time.
        previous: CaptureTime,
        /// The record's capture time.
        found: CaptureTime,
    },
    /// A key-rotation record disagrees with the key history.
    #[error("key rotation record {seq} (event {event_id}): {problem}")]
    Rotation {
        /// The record's sequence number.
        seq: u64,
        /// The record's event id.
        event_id: EventId,
        /// How it disagrees.
        problem: RotationProblem,
    },
    /// The key history starts a key after this record, but this record is not a key rotation.
    #[error("the key history starts key {next_key} at {}, but record {seq} (event {event_id}) before it is not a key rotation", seq + 1)]
    MissingRotation {
        /// The record's sequence number.
        seq: u64,
        /// The record's event id.
        event_id: EventId,
        /// The key the history starts after it.
        next_key: KeyId,
    },
    /// The record's event id is already taken by an earlier record of the chain: event ids are
    /// unique per chain (FORMAT.md), so one of the two is a replay.
    #[error("record {seq} repeats event id {event_id}, already used by record {first_seq}")]
    DuplicateEventId {
        /// The later record's sequence number.
        seq: u64,
        /// The repeated event id.
        event_id: EventId,
        /// The sequence number of the record that used it first.
        first_seq: u64,
    },
}

impl ChainError {
    /// The sequence number at which the chain first fails (for a gap, the missing one).
    pub fn seq(&self) -> u64 {
        match self {
            ChainError::Record(e) => e.seq(),
            ChainError::Gap { expected, .. } => *expected,
            ChainError::DuplicateEventId { seq, .. }
            | ChainError::WrongTenant { seq, .. }
            | ChainError::BrokenLink { seq, .. }
            | ChainError::TimeWentBackwards { seq, .. }
            | ChainError::Rotation { seq, .. }
            | ChainError::MissingRotation { seq, .. } => *seq,
        }
    }
}

/// Where a run of records starts: the sequence number of its first record, the hash that record
/// must link to and the earliest capture time it may carry. These are the values of the record
/// before the run (or of the genesis for a run from sequence 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainAnchor {
    /// The sequence number of the next record.
    pub next_seq: u64,
    /// The hash the next record's `prev` must equal.
    pub prev: Hash,
    /// The next record may not be captured before this; `None` at the genesis.
    pub not_before: Option<CaptureTime>,
}

impl ChainAnchor {
    /// The start of every chain: sequence 0, `prev` = [`Hash::ZERO`], no earlier capture time.
    pub const fn genesis() -> Self {
        ChainAnchor {
            next_seq: 0,
            prev: Hash::ZERO,
            not_before: None,
        }
    }

    /// The anchor for the records after `record`, taken from the record's own fields.
    pub fn after(record: &Record) -> Self {
        ChainAnchor {
            next_seq: record.seq.get() + 1,
            prev: record.hash,
            not_before: Some(record.captured_at_us),
        }
    }

    /// An anchor that takes `first`'s own `prev` and capture time on trust, for a run whose
    /// predecessor is not at hand. The run's link to what came before must then be proven
    /// otherwise; an export does it with the inclusion proof of its last record.
    pub fn assumed_for(first: &Record) -> Self {
        ChainAnchor {
            next_seq: first.seq.get(),
            prev: first.prev,
            not_before: Some(first.captured_at_us),
        }
    }

    /// Whether this is the genesis anchor.
    pub fn is_genesis(&self) -> bool {
        *self == ChainAnchor::genesis()
    }
}

/// Two ranges that do not meet end to begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a leaf range starting at {begin} cannot follow one ending at {end}")]
pub struct LeafRangeError {
    /// Where the first range ends.
    pub end: u64,
    /// Where the second range begins.
    pub begin: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RangeNode {
    first_leaf: u64,
    level: u8,
    hash: Hash,
}

/// The Merkle hashes of the leaves `[begin, end)`, reduced to the perfect subtrees that cover
/// them (a "compact range"): at most two per level, so O(log n) memory however long the range.
///
/// Two adjacent ranges merge into one, which is how independently verified chain segments
/// are stitched. A range that begins at 0 is the right edge of the tree of `end` leaves and
/// yields its root, the same one [`crate::merkle::CompactTree`] computes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafRange {
    begin: u64,
    end: u64,
    /// Left to right; the cover is canonical: no two neighbours are siblings.
    nodes: Vec<RangeNode>,
}

impl LeafRange {
    /// The empty range at `begin`.
    pub fn new(begin: u64) -> Self {
        LeafRange {
            begin,
            end: begin,
            nodes: Vec::new(),
        }
    }

    /// The first leaf index covered.
    pub fn begin(&self) -> u64 {
        self.begin
    }

    /// One past the last leaf index covered.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Appends the leaf at index [`LeafRange::end`], whose leaf hash is `leaf`.
    pub fn push_leaf(&mut self, leaf: Hash) {
        self.push_node(RangeNode {
            first_leaf: self.end,
            level: 0,
            hash: leaf,
        });
    }

    /// Appends `other`, which must begin where `self` ends.
    ///
    /// # Errors
    /// [`LeafRangeError`] when the ranges are not adjacent.
    pub fn append(&mut self, other: LeafRange) -> Result<(), LeafRangeError> {
        if other.begin != self.end {
            return Err(LeafRangeError {
                end: self.end,
                begin: other.begin,
            });
        }
        for node in other.nodes {
            self.push_node(node);
        }
        Ok(())
    }

    /// The RFC 9162 root of the tree of [`LeafRange::end`] leaves, when the range begins at 0.
    pub fn root(&self) -> Option<Hash> {
        if self.begin != 0 {
            return None;
        }
        // From 0 the cover is the tree's right edge, largest subtree first, and the root folds
        // it from the right.
        let mut hashes = self.nodes.iter().rev().map(|n| n.hash);
        let Some(last) = hashes.next() else {
            return Some(empty_root());
        };
        Some(hashes.fold(last, |right, left| node_hash(left, right)))
    }

    /// Appends a node that starts at `self.end`, then merges siblings at the right end like a
    /// binary counter carries. A node appended after a smaller one is never that one's sibling
    /// (its start would have to be aligned to its own size), so merging only the last two keeps
    /// the cover canonical.
    fn push_node(&mut self, node: RangeNode) {
        debug_assert_eq!(node.first_leaf, self.end, "nodes must be appended in order");
        self.end = node.first_leaf + (1u64 << node.level);
        self.nodes.push(node);
        while let [.., left, right] = self.nodes[..] {
            let siblings = left.level == right.level
                && left.level < 63
                && (left.first_leaf >> left.level) & 1 == 0;
            if !siblings {
                break;
            }
            self.nodes.truncate(self.nodes.len() - 2);
            self.nodes.push(RangeNode {
                first_leaf: left.first_leaf,
                level: left.level + 1,
                hash: node_hash(left.hash, right.hash),
            });
        }
    }
}

/// Why two chain summaries cannot be stitched together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StitchError {
    /// The summaries are of different tenants.
    #[error("cannot stitch a segment of tenant {second} onto one of tenant {first}")]
    TenantMismatch {
        /// The first summary's tenant.
        first: TenantId,
        /// The second summary's tenant.
        second: TenantId,
    },
    /// The second segment was not verified from the anchor the first one ends at.
    #[error("the segment verified from record {} (prev {}) does not continue the one that ends before record {} (last hash {})", found.next_seq, found.prev, expected.next_seq, expected.prev)]
    NotAdjacent {
        /// Where the first segment ends.
        expected: ChainAnchor,
        /// Where the second segment was verified from.
        found: ChainAnchor,
    },
    /// A record of the second segment repeats an event id of the first.
    #[error(transparent)]
    DuplicateEventId(ChainError),
}

/// What a [`ChainVerifier`] proved about a run of records: where it started, where it ended and
/// the Merkle hashes of its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSummary {
    tenant: TenantId,
    start: ChainAnchor,
    end: ChainAnchor,
    leaves: LeafRange,
    event_ids: EventIds,
}

impl ChainSummary {
    /// The tenant whose records were verified.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The anchor verification started from.
    pub fn start(&self) -> ChainAnchor {
        self.start
    }

    /// The anchor the next segment must start from.
    pub fn end(&self) -> ChainAnchor {
        self.end
    }

    /// The sequence number of the first record (of the next record, if there were none).
    pub fn first_seq(&self) -> u64 {
        self.start.next_seq
    }

    /// The number of records verified.
    pub fn records(&self) -> u64 {
        self.end.next_seq - self.start.next_seq
    }

    /// The size of the tree whose last leaf is the last record verified.
    pub fn size(&self) -> TreeSize {
        TreeSize::new(self.end.next_seq)
    }

    /// The Merkle root of the tree of [`ChainSummary::size`] records, known only when the run
    /// started at the genesis.
    pub fn root(&self) -> Option<Hash> {
        if self.start.is_genesis() {
            self.leaves.root()
        } else {
            None
        }
    }

    /// The last record's hash (the anchor's `prev` if there were no records).
    pub fn last_hash(&self) -> Hash {
        self.end.prev
    }

    /// The last record's capture time (the anchor's if there were no records).
    pub fn last_captured_at(&self) -> Option<CaptureTime> {
        self.end.not_before
    }

    /// The Merkle hashes of the verified records.
    pub fn leaves(&self) -> &LeafRange {
        &self.leaves
    }

    /// Joins this summary with the one of the segment that follows it. The segments must have
    /// been verified with the same key ring; the second from exactly the anchor this one ends at
    /// (typically built with [`ChainAnchor::after`] from a record read from storage, which this
    /// check then confirms).
    ///
    /// # Errors
    /// [`StitchError`] when the tenants differ or the second segment does not continue this one.
    pub fn then(mut self, next: ChainSummary) -> Result<ChainSummary, StitchError> {
        if next.tenant != self.tenant {
            return Err(StitchError::TenantMismatch {
                first: self.tenant,
                second: next.tenant,
            });
        }
        if next.start != self.end {
            return Err(StitchError::NotAdjacent {
                expected: self.end,
                found: next.start,
            });
        }
        let mut later: Vec<(EventId, u64)> = next.event_ids.into_iter().collect();
        later.sort_unstable_by_key(|&(_, seq)| seq);
        for (event_id, seq) in later {
            if let Some(first_seq) = self.event_ids.insert(event_id, seq) {
                return Err(StitchError::DuplicateEventId(
                    ChainError::DuplicateEventId {
                        seq,
                        event_id,
                        first_seq,
                    },
                ));
            }
        }
        // Equal anchors mean equal positions, so the ranges are adjacent.
        self.leaves
            .append(next.leaves)
            .expect("adjacent anchors give adjacent leaf ranges");
        self.end = next.end;
        Ok(self)
    }

    /// The event ids of the run's records, with their sequence numbers.
    pub fn event_ids(&self) -> &EventIds {
        &self.event_ids
    }
}

/// The event ids a verified run has seen, each with the sequence number of its record: the one
/// thing a chain verifier keeps per record, because event ids must be unique per chain.
pub type EventIds = std::collections::HashMap<EventId, u64>;

/// A signature whose check is deferred to the next batch.
struct PendingSignature {
    seq: u64,
    event_id: EventId,
    key_id: KeyId,
    key: VerifyingKey,
    hash: Hash,
    signature: Signature,
}

/// Verifies a chain, or a segment of one, record by record in sequence order.
///
/// Besides the event ids seen (about 40 bytes a record, the price of rejecting a replayed event
/// id), memory stays constant whatever the length: the verifier keeps the anchor for the next
/// record, the Merkle right edge and at most one batch of pending signatures.
///
/// ```text
/// let mut chain = ChainVerifier::new(tenant, ring);
/// for record in records { chain.push(&record)?; }
/// let summary = chain.finish()?;
/// verify_checkpoint_matches(&summary, checkpoint)?;
/// ```
///
/// After the first error the verifier is spent: every later call returns that error again.
pub struct ChainVerifier {
    tenant: TenantId,
    ring: KeyRing,
    start: ChainAnchor,
    next: ChainAnchor,
    leaves: LeafRange,
    pending: Vec<PendingSignature>,
    batch_records: usize,
    failed: Option<ChainError>,
    event_ids: EventIds,
}

impl std::fmt::Debug for ChainVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainVerifier")
            .field("tenant", &self.tenant)
            .field("start", &self.start)
            .field("next", &self.next)
            .field("pending", &self.pending.len())
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl ChainVerifier {
    /// A verifier for `tenant`'s whole chain, from sequence 0.
    pub fn new(tenant: TenantId, ring: KeyRing) -> Self {
        ChainVerifier::from_anchor(tenant, ring, ChainAnchor::genesis())
    }

    /// A verifier for the segment of `tenant`'s chain that starts at `anchor`.
    pub fn from_anchor(tenant: TenantId, ring: KeyRing, anchor: ChainAnchor) -> Self {
        ChainVerifier {
            tenant,
            ring,
            start: anchor,
            next: anchor,
            leaves: LeafRange::new(anchor.next_seq),
            pending: Vec::with_capacity(SIGNATURE_BATCH_RECORDS),
            batch_records: SIGNATURE_BATCH_RECORDS,
            failed: None,
            event_ids: EventIds::new(),
        }
    }

    /// Checks signatures `records` at a time (1 checks each one strictly as it arrives; 0 is
    /// taken as 1).
    pub fn with_signature_batch(mut self, records: usize) -> Self {
        self.batch_records = records.max(1);
        self
    }

    /// The sequence number the next record must carry.
    pub fn next_seq(&self) -> u64 {
        self.next.next_seq
    }

    /// The number of records accepted so far (their signatures may still be pending).
    pub fn records(&self) -> u64 {
        self.next.next_seq - self.start.next_seq
    }

    /// Checks the next record.
    ///
    /// # Errors
    /// The first failing record in chain order, which may be an earlier record whose signature
    /// was pending.
    pub fn push(&mut self, record: &Record) -> Result<(), ChainError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.check(record) {
            Ok(pending) => {
                self.accept(record);
                self.pending.push(pending);
                if self.pending.len() >= self.batch_records {
                    self.check_pending()?;
                }
                Ok(())
            }
            // An earlier record's pending signature fails first in chain order.
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Verifies the pending signatures now instead of when the batch fills.
    ///
    /// # Errors
    /// The first record whose signature does not verify.
    pub fn check_pending(&mut self) -> Result<(), ChainError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = verify_signatures(&self.pending);
        self.pending.clear();
        result.map_err(|e| {
            let e = ChainError::Record(e);
            self.failed = Some(e.clone());
            e
        })
    }

    /// Verifies the pending signatures and returns what the records proved.
    ///
    /// # Errors
    /// The first failing record in chain order.
    pub fn finish(mut self) -> Result<ChainSummary, ChainError> {
        self.check_pending()?;
        Ok(ChainSummary {
            tenant: self.tenant,
            start: self.start,
            end: self.next,
            leaves: self.leaves,
            event_ids: self.event_ids,
        })
    }

    /// Records `e` as the verifier's failure, unless a pending signature fails first.
    fn fail(&mut self, e: ChainError) -> ChainError {
        match self.check_pending() {
            Err(earlier) => earlier,
            Ok(()) => {
                self.failed = Some(e.clone());
                e
            }
        }
    }

    fn check(&self, record: &Record) -> Result<PendingSignature, ChainError> {
        let seq = record.seq.get();
        let event_id = record.event_id;
        // The position comes first, so every other error is about the record at the expected
        // position and names its sequence number.
        if seq != self.next.next_seq {
            return Err(ChainError::Gap {
                expected: self.next.next_seq,
                found: seq,
                event_id,
            });
        }
        if record.tenant != self.tenant {
            return Err(ChainError::WrongTenant {
                seq,
                event_id,
                expected: self.tenant.clone(),
                found: record.tenant.clone(),
            });
        }
        if record.prev != self.next.prev {
            return Err(ChainError::BrokenLink {
                seq,
                event_id,
                expected: self.next.prev,
                found: record.prev,
            });
        }
        if let Some(previous) = self.next.not_before
            && record.captured_at_us < previous
        {
            return Err(ChainError::TimeWentBackwards {
                seq,
                event_id,
                previous,
                found: record.captured_at_us,
            });
        }
        if let Some(&first_seq) = self.event_ids.get(&event_id) {
            return Err(ChainError::DuplicateEventId {
                seq,
                event_id,
                first_seq,
            });
        }
        let key = check_unsigned(record, &self.ring)?;
        self.check_rotation(record)?;
        Ok(PendingSignature {
            seq,
            event_id,
            key_id: record.key_id,
            key,
            hash: record.hash,
            signature: *record.sig.signature(),
        })
    }

    /// A rotation record must agree with the key history, and every key change in the history
    /// must follow a rotation record. Both are properties of one record, so segments check them
    /// independently.
    fn check_rotation(&self, record: &Record) -> Result<(), ChainError> {
        let seq = record.seq.get();
        let event_id = record.event_id;
        if record.event_type == EventType::KeyRotation {
            return rotation_problem(record, &self.ring).map_err(|problem| ChainError::Rotation {
                seq,
                event_id,
                problem,
            });
        }
        let keys = self.ring.intervals();
        if let Ok(i) = keys.binary_search_by_key(&(seq + 1), |k| k.from_seq) {
            return Err(ChainError::MissingRotation {
                seq,
                event_id,
                next_key: keys[i].key_id,
            });
        }
        Ok(())
    }

    fn accept(&mut self, record: &Record) {
        self.event_ids.insert(record.event_id, record.seq.get());
        self.leaves.push_leaf(leaf_hash(record.hash.as_bytes()));
        self.next = ChainAnchor::after(record);
    }
}

fn rotation_problem(record: &Record, ring: &KeyRing) -> Result<(), RotationProblem> {
    let payload = record
        .payload
        .to_value()
        .map_err(|_| RotationProblem::MalformedPayload { field: "payload" })?;
    let new_key_id = payload
        .get("new_key_id")
        .and_then(serde_json::Value::as_str)
        .and_then(|s| KeyId::parse(s).ok())
        .ok_or(RotationProblem::MalformedPayload {
            field: "new_key_id",
        })?;
    let mut new_public_key = [0u8; 32];
    payload
        .get("new_public_key")
        .and_then(serde_json::Value::as_str)
        .and_then(|s| crate::types::decode_lower_hex(s, &mut new_public_key).ok())
        .ok_or(RotationProblem::MalformedPayload {
            field: "new_public_key",
        })?;
    let stated = payload
        .get("effective_from_seq")
        .and_then(serde_json::Value::as_u64)
        .ok_or(RotationProblem::MalformedPayload {
            field: "effective_from_seq",
        })?;
    let expected = record.seq.get() + 1;
    if stated != expected {
        return Err(RotationProblem::EffectiveFrom { stated, expected });
    }
    let new_key = ring
        .get(new_key_id)
        .ok_or(RotationProblem::NewKeyNotInHistory { key_id: new_key_id })?;
    if new_key.public_key.as_bytes() != &new_public_key {
        return Err(RotationProblem::NewKeyMismatch { key_id: new_key_id });
    }
    if new_key.from_seq != expected {
        return Err(RotationProblem::NewKeyStartsElsewhere {
            key_id: new_key_id,
            from_seq: new_key.from_seq,
            expected,
        });
    }
    // The record already passed `key_for`, so its key is in the ring.
    let old_until = ring.get(record.key_id).and_then(|k| k.until_seq);
    if old_until != Some(expected) {
        return Err(RotationProblem::OldKeyDoesNotEnd {
            key_id: record.key_id,
            until_seq: old_until,
            expected,
        });
    }
    Ok(())
}

/// Verifies a batch of signatures; when the batch equation fails, checks them one by one in
/// order so that the error names the first bad one.
fn verify_signatures(pending: &[PendingSignature]) -> Result<(), RecordError> {
    if pending.is_empty() {
        return Ok(());
    }
    // `verify_strict` rejects small-order keys and the batch equation does not, so a batch with
    // one goes straight to the one-by-one path.
    if pending.len() > 1 && pending.iter().all(|p| !p.key.is_weak()) {
        let messages: Vec<&[u8]> = pending
            .iter()
            .map(|p| p.hash.as_bytes().as_slice())
            .collect();
        let signatures: Vec<Signature> = pending.iter().map(|p| p.signature).collect();
        let keys: Vec<VerifyingKey> = pending.iter().map(|p| p.key).collect();
        if ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok() {
            return Ok(());
        }
    }
    for p in pending {
        p.key
            .verify_strict(p.hash.as_bytes(), &p.signature)
            .map_err(|_| RecordError::BadSignature {
                seq: p.seq,
                event_id: p.event_id,
                key_id: p.key_id,
            })?;
    }
    Ok(())
}

/// Why a verified chain does not match a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointMatchError {
    /// The summary does not start at the genesis, so it has no root to compare.
    #[error("the verified records start at {first_seq}, not at the genesis, so they have no root")]
    NotFromGenesis {
        /// The first sequence number verified.
        first_seq: u64,
    },
    /// The chain has another number of records than the checkpoint. Fewer means records
    /// `chain..checkpoint` are missing (for example a deleted tail).
    #[error("the chain has {chain} records but the checkpoint commits to {checkpoint}")]
    SizeMismatch {
        /// The checkpoint's tree size.
        checkpoint: TreeSize,
        /// The number of records verified.
        chain: TreeSize,
    },
    /// The records hash to another root than the checkpoint's.
    #[error("the {size} records hash to root {computed}, but the checkpoint says {expected}")]
    RootMismatch {
        /// The tree size.
        size: TreeSize,
        /// The checkpoint's root.
        expected: Hash,
        /// The root of the verified records.
        computed: Hash,
    },
}

/// Checks that a chain verified from the genesis is exactly the tree a checkpoint commits to.
/// The checkpoint must come from [`open_checkpoint`] (its signatures checked).
///
/// # Errors
/// [`CheckpointMatchError`] when the summary has no root, or the size or root differs.
pub fn verify_checkpoint_matches(
    summary: &ChainSummary,
    checkpoint: &Checkpoint,
) -> Result<(), CheckpointMatchError> {
    let computed = summary.root().ok_or(CheckpointMatchError::NotFromGenesis {
        first_seq: summary.first_seq(),
    })?;
    if summary.size() != checkpoint.size() {
        return Err(CheckpointMatchError::SizeMismatch {
            checkpoint: checkpoint.size(),
            chain: summary.size(),
        });
    }
    if computed != checkpoint.root() {
        return Err(CheckpointMatchError::RootMismatch {
            size: summary.size(),
            expected: checkpoint.root(),
            computed,
        });
    }
    Ok(())
}

/// An inclusion proof that does not place a record in a checkpoint's tree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record {seq} (event {event_id}) is not proven to be in the tree of size {size}: {source}")]
pub struct RecordInclusionError {
    /// The record's sequence number.
    pub seq: u64,
    /// The record's event id.
    pub event_id: EventId,
    /// The checkpoint's tree size.
    pub size: TreeSize,
    /// Why the proof failed.
    pub source: VerifyInclusionError,
}

/// Checks that `record` is the leaf at index `seq` of the tree `checkpoint` commits to: the leaf
/// hash is `leaf_hash(record.hash)`. The record itself is not verified here.
///
/// # Errors
/// [`RecordInclusionError`] when the proof does not lead to the checkpoint's root.
pub fn verify_record_inclusion(
    record: &Record,
    proof: &[Hash],
    checkpoint: &Checkpoint,
) -> Result<(), RecordInclusionError> {
    verify_inclusion(
        leaf_hash(record.hash.as_bytes()),
        record.seq.leaf_index(),
        checkpoint.size(),
        proof,
        checkpoint.root(),
    )
    .map_err(|source| RecordInclusionError {
        seq: record.seq.get(),
        event_id: record.event_id,
        size: checkpoint.size(),
        source,
    })
}

/// Why two checkpoints of a log are not consistent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointConsistencyError {
    /// The checkpoints are of different logs.
    #[error("checkpoints of different logs: {older:?} and {newer:?}")]
    OriginMismatch {
        /// The older checkpoint's origin.
        older: String,
        /// The newer checkpoint's origin.
        newer: String,
    },
    /// The newer checkpoint is smaller than one already seen: the log was rolled back.
    #[error(
        "the log was rolled back: a checkpoint of size {seen} was seen, now one of size {offered} is offered"
    )]
    RolledBack {
        /// The size already seen.
        seen: TreeSize,
        /// The smaller size offered.
        offered: TreeSize,
    },
    /// Two different roots for the same tree size: the log forked.
    #[error("the log forked: two different roots {root1} and {root2} for tree size {size}")]
    Fork {
        /// The tree size.
        size: TreeSize,
        /// The older checkpoint's root.
        root1: Hash,
        /// The newer checkpoint's root.
        root2: Hash,
    },
    /// The consistency proof does not show that the newer tree extends the older one.
    #[error("the consistency proof fails: {0}")]
    Proof(#[from] VerifyConsistencyError),
}

/// Checks that `newer` extends `older` (same origin, nothing rewritten) with an RFC 9162
/// consistency proof. Both checkpoints must come from [`open_checkpoint`].
///
/// Equal sizes need equal roots and an empty proof; an empty older tree needs the empty root and
/// an empty proof.
///
/// # Errors
/// [`CheckpointConsistencyError`] naming the way the checkpoints disagree.
pub fn verify_checkpoint_consistency(
    older: &Checkpoint,
    newer: &Checkpoint,
    proof: &[Hash],
) -> Result<(), CheckpointConsistencyError> {
    if older.origin() != newer.origin() {
        return Err(CheckpointConsistencyError::OriginMismatch {
            older: older.origin().to_owned(),
            newer: newer.origin().to_owned(),
        });
    }
    if newer.size() < older.size() {
        return Err(CheckpointConsistencyError::RolledBack {
            seen: older.size(),
            offered: newer.size(),
        });
    }
    if newer.size() == older.size() && newer.root() != older.root() {
        return Err(CheckpointConsistencyError::Fork {
            size: older.size(),
            root1: older.root(),
            root2: newer.root(),
        });
    }
    if older.size() == TreeSize::ZERO {
        // RFC 9162 defines no proof from the empty tree: every tree extends it, provided the
        // older checkpoint really carries the empty root.
        if older.root() != empty_root() {
            return Err(CheckpointConsistencyError::Fork {
                size: TreeSize::ZERO,
                root1: older.root(),
                root2: empty_root(),
            });
        }
        if !proof.is_empty() {
            return Err(VerifyConsistencyError::WrongProofLength {
                expected: 0,
                got: proof.len(),
            }
            .into());
        }
        return Ok(());
    }
    verify_consistency(
        older.size(),
        newer.size(),
        proof,
        older.root(),
        newer.root(),
    )?;
    Ok(())
}

/// Why a published checkpoint and key history are not a trustworthy starting point.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvidenceHeadError {
    /// The origin is not `<service origin>/<tenant>`.
    #[error("origin {origin:?} is not the log of tenant {tenant}")]
    TenantNotInOrigin {
        /// The tenant.
        tenant: TenantId,
        /// The origin.
        origin: String,
    },
    /// The key history or the verifier key list is too long.
    #[error("{what} lists {count} keys, more than the maximum {max}")]
    TooManyKeys {
        /// `keys` or `verifier_keys`.
        what: &'static str,
        /// How many were listed.
        count: usize,
        /// [`KEY_HISTORY_KEYS_MAX`].
        max: usize,
    },
    /// The checkpoint is malformed, not signed by a trusted key, or of another log.
    #[error(transparent)]
    Checkpoint(#[from] OpenCheckpointError),
    /// The key history is malformed.
    #[error("key history: {0}")]
    KeyHistory(#[from] KeyError),
    /// None of the trusted keys that signed the checkpoint is in the key history with an
    /// interval that allows it to sign a checkpoint of this size.
    #[error(
        "the key that signed the checkpoint of size {size} is not in the key history (or was not current at that size)"
    )]
    CheckpointKeyNotInHistory {
        /// The checkpoint's tree size.
        size: TreeSize,
    },
    /// A listed verifier key is malformed.
    #[error("verifier key {index}: {source}")]
    VerifierKey {
        /// 0-based position in the list.
        index: usize,
        /// What is wrong with it.
        source: VerifierKeyError,
    },
    /// A listed verifier key is not a log key of this origin that appears in the key history.
    #[error("verifier key {index} ({vkey}) is not named like the origin or not in the key history")]
    VerifierKeyNotInHistory {
        /// 0-based position in the list.
        index: usize,
        /// The key as listed.
        vkey: String,
    },
}

/// The trusted starting point of a bundle or export: a checkpoint whose signature verified
/// under a caller-trusted key that the published key history also holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceHead {
    /// The verified checkpoint.
    pub checkpoint: Checkpoint,
    /// The key history, as a ring.
    pub ring: KeyRing,
    /// The record key (by id) that signed the checkpoint.
    pub checkpoint_key_id: KeyId,
}

/// Opens the checkpoint of a bundle or export and checks it against the published key history.
///
/// The checkpoint must verify under `trusted` with origin `origin` (which must be the log of
/// `tenant`), the key history must be a valid ring that holds the trusted key that signed it,
/// and every entry of `verifier_keys` must be a well-formed verifier key named `origin` whose
/// public key is in the history. The published `verifier_keys` are never trusted here: trust
/// comes only from `trusted`, which the caller chooses.
///
/// # Errors
/// [`EvidenceHeadError`] naming the first failing check.
pub fn verify_evidence_head(
    tenant: &TenantId,
    origin: &str,
    signed_checkpoint: &str,
    keys: &[KeyInterval],
    verifier_keys: &[String],
    trusted: &[VerifierKey],
) -> Result<EvidenceHead, EvidenceHeadError> {
    check_tenant_origin(tenant, origin)?;
    for (what, count) in [("keys", keys.len()), ("verifier_keys", verifier_keys.len())] {
        if count > KEY_HISTORY_KEYS_MAX {
            return Err(EvidenceHeadError::TooManyKeys {
                what,
                count,
                max: KEY_HISTORY_KEYS_MAX,
            });
        }
    }
    let verified = open_checkpoint(signed_checkpoint.as_bytes(), trusted, Some(origin))?;
    let ring = KeyRing::new(keys.to_vec())?;
    let size = verified.checkpoint().size();
    let checkpoint_key_id = checkpoint_signing_key(&verified, &ring, origin)
        .ok_or(EvidenceHeadError::CheckpointKeyNotInHistory { size })?;
    for (index, text) in verifier_keys.iter().enumerate() {
        let vkey = VerifierKey::parse(text)
            .map_err(|source| EvidenceHeadError::VerifierKey { index, source })?;
        let in_history = vkey.name() == origin
            && ring
                .get(KeyId::of(vkey.verifying_key()))
                .is_some_and(|k| &k.public_key == vkey.verifying_key());
        if !in_history {
            return Err(EvidenceHeadError::VerifierKeyNotInHistory {
                index,
                vkey: text.clone(),
            });
        }
    }
    Ok(EvidenceHead {
        checkpoint: verified.into_checkpoint(),
        ring,
        checkpoint_key_id,
    })
}

/// The record key (by id) that signed `verified` and whose interval in `ring` lets it sign a
/// checkpoint of that size; `None` when no trusted signer of the log qualifies. FORMAT.md: a
/// checkpoint signed outside its key's interval MUST be rejected, whatever evidence carries it.
pub fn checkpoint_signing_key(
    verified: &crate::checkpoint::VerifiedCheckpoint,
    ring: &KeyRing,
    origin: &str,
) -> Option<KeyId> {
    let size = verified.checkpoint().size();
    verified
        .verified_by()
        .iter()
        .filter(|vkey| vkey.name() == origin)
        .find_map(|vkey| {
            let id = KeyId::of(vkey.verifying_key());
            let same_key = ring
                .get(id)
                .is_some_and(|k| &k.public_key == vkey.verifying_key());
            (same_key && ring.may_sign_checkpoint(id, size.get())).then_some(id)
        })
}

/// Checks that `origin` is `<service origin>/<tenant>` (see [`crate::checkpoint::tenant_origin`]).
fn check_tenant_origin(tenant: &TenantId, origin: &str) -> Result<(), EvidenceHeadError> {
    let ok = origin
        .strip_suffix(tenant.as_str())
        .is_some_and(|service| service.len() > 1 && service.ends_with('/'));
    if ok {
        Ok(())
    } else {
        Err(EvidenceHeadError::TenantNotInOrigin {
            tenant: tenant.clone(),
            origin: origin.to_owned(),
        })
    }
}

/// Why a C2SP tlog-proof file does not prove a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlogProofVerifyError {
    /// The file is malformed.
    #[error("malformed proof file: {0}")]
    Parse(#[from] TlogProofError),
    /// The checkpoint does not open under the trusted keys with the expected origin.
    #[error(transparent)]
    Checkpoint(#[from] OpenCheckpointError),
    /// The origin is not the log of the record's tenant.
    #[error("origin {origin:?} is not the log of tenant {tenant}")]
    TenantNotInOrigin {
        /// The record's tenant.
        tenant: TenantId,
        /// The expected origin.
        origin: String,
    },
    /// The proof is for another leaf than the record's.
    #[error("the proof is for leaf {index}, but the record is number {seq}")]
    IndexMismatch {
        /// The file's index.
        index: LeafIndex,
        /// The record's sequence number.
        seq: u64,
    },
    /// The record does not verify.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The inclusion proof fails.
    #[error(transparent)]
    Inclusion(#[from] RecordInclusionError),
    /// The file has no `extra` line, so it does not carry its record.
    #[error("the proof file carries no record in its extra data")]
    MissingRecord,
    /// The `extra` data is not a record.
    #[error("the proof file's extra data is not a record: {0}")]
    MalformedRecord(String),
    /// No trusted key that signed the checkpoint is in the key ring with an interval that lets
    /// it sign a checkpoint of this size (a retired key vouching for a later tree).
    #[error(
        "the key that signed the checkpoint of size {size} is not in the key history (or was not current at that size)"
    )]
    CheckpointKeyOutsideInterval {
        /// The checkpoint's tree size.
        size: TreeSize,
    },
}

/// A record proven by a tlog-proof file, and the checkpoint it is proven in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenRecord {
    /// The record, verified against the key ring.
    pub record: Record,
    /// The checkpoint, verified against the trusted keys.
    pub checkpoint: Checkpoint,
}

/// Builds the C2SP tlog-proof file for `record`: its index is the record's sequence number, and
/// `extra` holds the record's JSON so that the file is self-contained (a verifier reads the
/// record back with [`verify_tlog_proof_file`]; the extra data is authenticated only by that
/// verification).
///
/// # Errors
/// [`TlogProofError`] when the record is too large for the extra data, the proof too long, or
/// the checkpoint not a well-formed signed checkpoint.
///
/// # Panics
/// Never in practice: a record always serializes to JSON.
pub fn tlog_proof_for(
    record: &Record,
    proof: Vec<Hash>,
    signed_checkpoint: String,
) -> Result<TlogProof, TlogProofError> {
    let extra = serde_json::to_vec(record).expect("a record always serializes to JSON");
    TlogProof::new(
        Some(extra),
        record.seq.leaf_index(),
        proof,
        signed_checkpoint,
    )
}

/// Verifies a C2SP tlog-proof file for `record`: the checkpoint opens under `vkeys` with origin
/// `origin` (the log of the record's tenant), the file's index is the record's sequence number,
/// the record verifies against `ring`, and the inclusion proof leads to the checkpoint's root.
/// Any `extra` data in the file is ignored. Returns the verified checkpoint.
///
/// # Errors
/// [`TlogProofVerifyError`] naming the first failing check.
pub fn verify_tlog_proof(
    file: &[u8],
    record: &Record,
    vkeys: &[VerifierKey],
    ring: &KeyRing,
    origin: &str,
) -> Result<Checkpoint, TlogProofVerifyError> {
    let proof = TlogProof::parse(file)?;
    verify_parsed_tlog_proof(&proof, record, vkeys, ring, origin)
}

/// Verifies a self-contained tlog-proof file (see [`tlog_proof_for`]): reads the record from
/// its `extra` data, then checks it as [`verify_tlog_proof`] does.
///
/// # Errors
/// [`TlogProofVerifyError::MissingRecord`] / [`TlogProofVerifyError::MalformedRecord`] when the
/// file carries no record, otherwise as [`verify_tlog_proof`].
pub fn verify_tlog_proof_file(
    file: &[u8],
    vkeys: &[VerifierKey],
    ring: &KeyRing,
    origin: &str,
) -> Result<ProvenRecord, TlogProofVerifyError> {
    let proof = TlogProof::parse(file)?;
    let extra = proof.extra().ok_or(TlogProofVerifyError::MissingRecord)?;
    let record: Record = crate::json::from_slice(extra)
        .map_err(|e| TlogProofVerifyError::MalformedRecord(e.to_string()))?;
    let checkpoint = verify_parsed_tlog_proof(&proof, &record, vkeys, ring, origin)?;
    Ok(ProvenRecord { record, checkpoint })
}

fn verify_parsed_tlog_proof(
    proof: &TlogProof,
    record: &Record,
    vkeys: &[VerifierKey],
    ring: &KeyRing,
    origin: &str,
) -> Result<Checkpoint, TlogProofVerifyError> {
    let verified = open_checkpoint(proof.checkpoint().as_bytes(), vkeys, Some(origin))?;
    let size = verified.checkpoint().size();
    if checkpoint_signing_key(&verified, ring, origin).is_none() {
        return Err(TlogProofVerifyError::CheckpointKeyOutsideInterval { size });
    }
    let checkpoint = verified.into_checkpoint();
    check_tenant_origin(&record.tenant, origin).map_err(|_| {
        TlogProofVerifyError::TenantNotInOrigin {
            tenant: record.tenant.clone(),
            origin: origin.to_owned(),
        }
    })?;
    if proof.index() != record.seq.leaf_index() {
        return Err(TlogProofVerifyError::IndexMismatch {
            index: proof.index(),
            seq: record.seq.get(),
        });
    }
    verify_record(record, ring)?;
    verify_record_inclusion(record, proof.proof(), &checkpoint)?;
    Ok(checkpoint)
}
