//! The ledger export: a tenant's records (all of them, or a suffix) as JSON Lines that a
//! regulator verifies offline in one pass with constant memory.
//!
//! ```text
//! {"format":"auditex-export/v1","tenant":…,"origin":…,"from_seq":N,"checkpoint":"<signed note>","keys":[…],"verifier_keys":[…]}
//! <record N as JSON>
//! <record N+1 as JSON>
//! …                                   (through record checkpoint size − 1, contiguous)
//! {"end":{"records":count,"last_seq":L,"inclusion_proof":["<hex>",…]}}
//! ```
//!
//! The hash links prove that the records form one unbroken chain ending in the last record,
//! and the trailer's inclusion proof proves that the last record is the last leaf of the signed
//! checkpoint; together they prove that the whole range is in the log. An export from sequence
//! 0 additionally recomputes the checkpoint's root from every record.
//!
//! The writer functions ([`ExportHeader::to_line`], [`record_line`], [`ExportTrailer::to_line`])
//! produce exactly what [`ExportVerifier`] reads, so the service and the verifier cannot drift.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::checkpoint::Checkpoint;
use crate::keys::{KeyId, KeyInterval, KeyRing};
use crate::merkle::{VerifyInclusionError, leaf_hash, verify_inclusion};
use crate::note::VerifierKey;
use crate::record::Record;
use crate::types::{Hash, LeafIndex, TenantId, TreeSize};
use crate::verify::{
    ChainAnchor, ChainError, ChainSummary, ChainVerifier, EvidenceHeadError, verify_evidence_head,
};

/// The value of the header's `format` field.
pub const EXPORT_FORMAT: &str = "auditex-export/v1";

/// Longest line [`ExportVerifier::push_line`] accepts, in bytes (without its newline). A reader
/// should refuse longer lines before buffering them.
pub const EXPORT_LINE_BYTES_MAX: usize = 4 * 1024 * 1024;

/// The header's `format` field: serializes as [`EXPORT_FORMAT`] and parses only from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExportFormat;

impl Serialize for ExportFormat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(EXPORT_FORMAT)
    }
}

impl<'de> Deserialize<'de> for ExportFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if text == EXPORT_FORMAT {
            Ok(ExportFormat)
        } else {
            Err(serde::de::Error::custom(format!(
                "unsupported format {:?}; expected {EXPORT_FORMAT:?}",
                text.chars().take(80).collect::<String>()
            )))
        }
    }
}

/// The first line of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportHeader {
    /// Always [`EXPORT_FORMAT`].
    pub format: ExportFormat,
    /// The tenant.
    pub tenant: TenantId,
    /// The tenant's log origin, `<service origin>/<tenant>`.
    pub origin: String,
    /// The sequence number of the first record line.
    pub from_seq: u64,
    /// The signed checkpoint note; the records run up to its tree size − 1.
    pub checkpoint: String,
    /// The tenant's full key history.
    pub keys: Vec<KeyInterval>,
    /// The C2SP verifier keys of the checkpoint-signing keys (named like the origin), listed
    /// for convenience; a verifier decides which keys it trusts.
    pub verifier_keys: Vec<String>,
}

impl ExportHeader {
    /// The header line, newline-terminated.
    ///
    /// # Panics
    /// Never in practice: every field serializes to JSON.
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).expect("a header always serializes to JSON");
        line.push('\n');
        line
    }
}

/// The line of one record, newline-terminated: the record's JSON, with its payload as the exact
/// canonical bytes that were hashed.
///
/// # Panics
/// Never in practice: a record always serializes to JSON.
pub fn record_line(record: &Record) -> String {
    let mut line = serde_json::to_string(record).expect("a record always serializes to JSON");
    line.push('\n');
    line
}

/// The last line of an export: `{"end":{…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportTrailer {
    /// The number of record lines.
    pub records: u64,
    /// The last record's sequence number; `null` when there are no records.
    #[serde(deserialize_with = "crate::keys::required_option")]
    pub last_seq: Option<u64>,
    /// The last record's inclusion proof in the header's checkpoint, hex, leaf's sibling first;
    /// empty when there are no records.
    pub inclusion_proof: Vec<Hash>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrailerLine {
    end: ExportTrailer,
}

/// How the verifier tells the trailer from a record line: a record starts with `{"v":`.
const TRAILER_PREFIX: &str = "{\"end\"";

impl ExportTrailer {
    /// The trailer line, newline-terminated.
    ///
    /// # Panics
    /// Never in practice: every field serializes to JSON.
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(&TrailerLine { end: self.clone() })
            .expect("a trailer always serializes to JSON");
        line.push('\n');
        line
    }

    /// Reads a trailer line (without its newline) strictly: one reading for every verifier, so
    /// that the sequential and the parallel ones judge the same bytes the same way.
    ///
    /// # Errors
    /// The strict JSON reading's error: duplicate or unknown members, bad values, bad syntax.
    pub fn from_line(line: &str) -> Result<ExportTrailer, crate::json::JsonError> {
        crate::json::from_str::<TrailerLine>(line).map(|t| t.end)
    }
}

/// An export that does not verify, with the 1-based line at which it fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct ExportError {
    /// The 1-based line number (for a missing line, the number it would have had).
    pub line: u64,
    /// What is wrong.
    pub kind: ExportErrorKind,
}

impl ExportError {
    /// The sequence number of the first failing record, when the error concerns one.
    pub fn seq(&self) -> Option<u64> {
        match &self.kind {
            ExportErrorKind::Chain(e) => Some(e.seq()),
            ExportErrorKind::BeyondCheckpoint { seq, .. }
            | ExportErrorKind::Inclusion { seq, .. } => Some(*seq),
            _ => None,
        }
    }
}

/// What is wrong with an export.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExportErrorKind {
    /// The line holds a control character: lines end with `\n` alone and hold no other
    /// (no `\r`, no tab), so that an export has exactly one written form (FORMAT.md section 1).
    #[error(
        "the line holds the control character 0x{byte:02x} at byte {offset}; lines end with \\n alone and hold no other control character"
    )]
    ControlCharacter {
        /// The byte.
        byte: u8,
        /// Its 0-based offset in the line.
        offset: usize,
    },
    /// The last line does not end with `\n`.
    #[error("the export does not end with a newline")]
    MissingFinalNewline,
    /// The line is longer than [`EXPORT_LINE_BYTES_MAX`].
    #[error("line is {bytes} bytes, more than the maximum {max}")]
    LineTooLong {
        /// Its length.
        bytes: usize,
        /// [`EXPORT_LINE_BYTES_MAX`].
        max: usize,
    },
    /// The export is empty.
    #[error("the export has no header line")]
    MissingHeader,
    /// The header line is not a well-formed header.
    #[error("malformed header: {0}")]
    MalformedHeader(String),
    /// The checkpoint, key history or verifier keys do not check out.
    #[error(transparent)]
    Head(#[from] EvidenceHeadError),
    /// `from_seq` lies beyond the checkpoint.
    #[error("from_seq {from_seq} is beyond the checkpoint's tree size {size}")]
    StartBeyondCheckpoint {
        /// The header's `from_seq`.
        from_seq: u64,
        /// The checkpoint's size.
        size: TreeSize,
    },
    /// A record line is not a well-formed record.
    #[error("malformed record: {0}")]
    MalformedRecord(String),
    /// A record lies beyond the checkpoint.
    #[error("record {seq} is beyond the checkpoint's tree size {size}")]
    BeyondCheckpoint {
        /// The record's sequence number.
        seq: u64,
        /// The checkpoint's size.
        size: TreeSize,
    },
    /// The records do not form a valid chain.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The trailer line is not a well-formed trailer.
    #[error("malformed trailer: {0}")]
    MalformedTrailer(String),
    /// The trailer states another record count than the lines held.
    #[error("the trailer states {stated} records but {counted} were read")]
    RecordCount {
        /// The trailer's `records`.
        stated: u64,
        /// The record lines read.
        counted: u64,
    },
    /// The trailer states another last sequence number than the last record's.
    #[error("the trailer states last_seq {stated:?} but the last record read is {counted:?}")]
    LastSeq {
        /// The trailer's `last_seq`.
        stated: Option<u64>,
        /// The last record read.
        counted: Option<u64>,
    },
    /// The records stop before the checkpoint's last leaf.
    #[error("the export holds {found} records, but from_seq {from_seq} to the checkpoint's tree size {size} needs {expected}: records from {} on are missing", from_seq + found)]
    Incomplete {
        /// The header's `from_seq`.
        from_seq: u64,
        /// The checkpoint's size.
        size: TreeSize,
        /// The number of records needed.
        expected: u64,
        /// The number of records read.
        found: u64,
    },
    /// The last record's inclusion proof fails.
    #[error("record {seq} is not proven to be the checkpoint's last leaf: {source}")]
    Inclusion {
        /// The last record's sequence number.
        seq: u64,
        /// Why the proof failed.
        source: VerifyInclusionError,
    },
    /// An export without records carries an inclusion proof.
    #[error("the export has no records but its trailer carries {hashes} proof hashes")]
    UnexpectedProof {
        /// How many hashes.
        hashes: usize,
    },
    /// The records hash to another root than the checkpoint's.
    #[error("the {size} records hash to root {computed}, but the checkpoint says {expected}")]
    RootMismatch {
        /// The tree size.
        size: TreeSize,
        /// The checkpoint's root.
        expected: Hash,
        /// The root of the records.
        computed: Hash,
    },
    /// The export ends without a trailer line.
    #[error("the export ends without a trailer line (truncated?)")]
    MissingTrailer,
    /// A line follows the trailer.
    #[error("a line follows the trailer")]
    AfterTrailer,
}

/// What a verified export proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    /// The tenant.
    pub tenant: TenantId,
    /// The log origin.
    pub origin: String,
    /// The first sequence number exported.
    pub from_seq: u64,
    /// The number of records verified.
    pub records: u64,
    /// The last record's sequence number, if any.
    pub last_seq: Option<u64>,
    /// The last record's hash, if any.
    pub last_hash: Option<Hash>,
    /// The last record's capture time, if any (the latest: capture times never decrease).
    pub last_captured: Option<crate::types::CaptureTime>,
    /// The checkpoint's tree size.
    pub checkpoint_size: TreeSize,
    /// The checkpoint's root.
    pub checkpoint_root: Hash,
    /// The key (from the history) that signed the checkpoint.
    pub checkpoint_key_id: KeyId,
    /// Whether the root was recomputed from every record (an export from sequence 0), rather
    /// than proven through the last record's inclusion proof alone.
    pub root_recomputed: bool,
}

/// An export header whose checkpoint, key history and verifier keys check out: what every
/// export verifier (the sequential one here and the parallel one of the offline verifier) knows
/// before the first record, obtained by [`ExportHeader::verify`] alone.
#[derive(Debug, Clone)]
pub struct VerifiedExportHeader {
    /// The tenant.
    pub tenant: TenantId,
    /// The log origin.
    pub origin: String,
    /// The sequence number of the first record line.
    pub from_seq: u64,
    /// The verified checkpoint.
    pub checkpoint: Checkpoint,
    /// The tenant's keys, from the header's history.
    pub ring: KeyRing,
    /// The key (from the history) that signed the checkpoint.
    pub checkpoint_key_id: KeyId,
}

/// What the record lines of an export proved, to be held against its trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordsRead {
    /// The number of record lines verified.
    pub records: u64,
    /// The last record's sequence number and hash; `None` without records.
    pub last: Option<(u64, Hash)>,
    /// The last record's capture time; `None` without records.
    pub last_captured: Option<crate::types::CaptureTime>,
    /// The Merkle root of every record, when the export starts at 0 (else `None`).
    pub root: Option<Hash>,
}

impl ExportHeader {
    /// Checks the header: the checkpoint under a trusted key (named like the origin) that the
    /// history allows at its size, the history and verifier keys (FORMAT.md section 12), and
    /// `from_seq` within the checkpoint.
    ///
    /// # Errors
    /// [`ExportErrorKind::Head`] or [`ExportErrorKind::StartBeyondCheckpoint`].
    pub fn verify(self, trusted: &[VerifierKey]) -> Result<VerifiedExportHeader, ExportErrorKind> {
        let head = verify_evidence_head(
            &self.tenant,
            &self.origin,
            &self.checkpoint,
            &self.keys,
            &self.verifier_keys,
            trusted,
        )?;
        let size = head.checkpoint.size();
        if self.from_seq > size.get() {
            return Err(ExportErrorKind::StartBeyondCheckpoint {
                from_seq: self.from_seq,
                size,
            });
        }
        Ok(VerifiedExportHeader {
            tenant: self.tenant,
            origin: self.origin,
            from_seq: self.from_seq,
            checkpoint: head.checkpoint,
            ring: head.ring,
            checkpoint_key_id: head.checkpoint_key_id,
        })
    }
}

impl VerifiedExportHeader {
    /// Holds the trailer against the records read and the checkpoint (FORMAT.md section 12):
    /// the stated count and last sequence number, completeness up to the checkpoint, the last
    /// record's inclusion proof, and the recomputed root of an export from 0.
    ///
    /// # Errors
    /// The first check that fails, as an [`ExportErrorKind`].
    pub fn check_trailer(
        &self,
        trailer: &ExportTrailer,
        read: RecordsRead,
    ) -> Result<ExportReport, ExportErrorKind> {
        let records = read.records;
        if trailer.records != records {
            return Err(ExportErrorKind::RecordCount {
                stated: trailer.records,
                counted: records,
            });
        }
        let last_seq = read.last.map(|(seq, _)| seq);
        if trailer.last_seq != last_seq {
            return Err(ExportErrorKind::LastSeq {
                stated: trailer.last_seq,
                counted: last_seq,
            });
        }
        let size = self.checkpoint.size();
        let expected = size.get() - self.from_seq;
        if records != expected {
            return Err(ExportErrorKind::Incomplete {
                from_seq: self.from_seq,
                size,
                expected,
                found: records,
            });
        }
        match read.last {
            Some((seq, hash)) => verify_inclusion(
                leaf_hash(hash.as_bytes()),
                LeafIndex::new(seq),
                size,
                &trailer.inclusion_proof,
                self.checkpoint.root(),
            )
            .map_err(|source| ExportErrorKind::Inclusion { seq, source })?,
            None if !trailer.inclusion_proof.is_empty() => {
                return Err(ExportErrorKind::UnexpectedProof {
                    hashes: trailer.inclusion_proof.len(),
                });
            }
            None => {}
        }
        if let Some(computed) = read.root
            && computed != self.checkpoint.root()
        {
            return Err(ExportErrorKind::RootMismatch {
                size,
                expected: self.checkpoint.root(),
                computed,
            });
        }
        Ok(ExportReport {
            tenant: self.tenant.clone(),
            origin: self.origin.clone(),
            from_seq: self.from_seq,
            records,
            last_seq,
            last_hash: read.last.map(|(_, hash)| hash),
            last_captured: read.last_captured,
            checkpoint_size: size,
            checkpoint_root: self.checkpoint.root(),
            checkpoint_key_id: self.checkpoint_key_id,
            root_recomputed: read.root.is_some(),
        })
    }
}

/// Everything known after a valid header.
struct Body {
    head: VerifiedExportHeader,
    /// Created at the header for an export from 0 (anchored at the genesis), otherwise at the
    /// first record (anchored on that record's own link, see [`ChainAnchor::assumed_for`]).
    chain: Option<ChainVerifier>,
}

impl Body {
    /// The line of record `seq`.
    fn line_of(&self, seq: u64) -> u64 {
        seq.saturating_sub(self.head.from_seq).saturating_add(2)
    }

    fn chain_error(&self, e: ChainError) -> ExportError {
        ExportError {
            line: self.line_of(e.seq()),
            kind: ExportErrorKind::Chain(e),
        }
    }

    /// Reports `kind` at `line`, unless an earlier record's pending signature fails first.
    fn fail(&mut self, line: u64, kind: ExportErrorKind) -> ExportError {
        if let Some(chain) = &mut self.chain
            && let Err(e) = chain.check_pending()
        {
            return self.chain_error(e);
        }
        ExportError { line, kind }
    }
}

enum State {
    AwaitingHeader,
    Records(Box<Body>),
    Finished(ExportReport),
    Failed(ExportError),
}

/// Verifies an export line by line with constant memory.
///
/// ```text
/// let mut export = ExportVerifier::new(&trusted_keys);
/// for line in reader.lines() { export.push_line(&line?)?; }
/// let report = export.finish()?;
/// ```
///
/// After the first error the verifier is spent: every later call returns that error again.
pub struct ExportVerifier {
    trusted: Vec<VerifierKey>,
    lines: u64,
    state: State,
}

impl std::fmt::Debug for ExportVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportVerifier")
            .field("lines", &self.lines)
            .finish_non_exhaustive()
    }
}

/// Checks one export line (without its `\n`) for control characters: FORMAT.md section 1 gives
/// line-based texts one written form, lines ending with `\n` alone. JSON would read a `\r` or a
/// tab between tokens as white space, so without this check `\r\n` line endings and other
/// unsigned variants would verify.
///
/// # Errors
/// [`ExportErrorKind::ControlCharacter`] naming the first one.
pub fn check_line_bytes(line: &[u8]) -> Result<(), ExportErrorKind> {
    match line.iter().position(|&b| b < 0x20) {
        Some(offset) => Err(ExportErrorKind::ControlCharacter {
            byte: line[offset],
            offset,
        }),
        None => Ok(()),
    }
}

impl ExportVerifier {
    /// A verifier that accepts the export's checkpoint only under one of `trusted` (a key named
    /// like the export's origin).
    pub fn new(trusted: &[VerifierKey]) -> Self {
        ExportVerifier {
            trusted: trusted.to_vec(),
            lines: 0,
            state: State::AwaitingHeader,
        }
    }

    /// The number of lines consumed so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Consumes the next line (without its newline; one trailing `\n` is tolerated). A line that
    /// holds any other control character fails (see [`check_line_bytes`]).
    ///
    /// # Errors
    /// [`ExportError`] with the line number of the first failing line or record.
    pub fn push_line(&mut self, line: &str) -> Result<(), ExportError> {
        if let State::Failed(e) = &self.state {
            return Err(e.clone());
        }
        self.lines += 1;
        let n = self.lines;
        let line = line.strip_suffix('\n').unwrap_or(line);
        let state = std::mem::replace(&mut self.state, State::AwaitingHeader);
        let bad = if line.len() > EXPORT_LINE_BYTES_MAX {
            Some(ExportErrorKind::LineTooLong {
                bytes: line.len(),
                max: EXPORT_LINE_BYTES_MAX,
            })
        } else {
            check_line_bytes(line.as_bytes()).err()
        };
        let result = if let Some(kind) = bad {
            match state {
                State::Records(mut body) => Err(body.fail(n, kind)),
                _ => Err(ExportError { line: n, kind }),
            }
        } else {
            match state {
                State::AwaitingHeader => self.header(n, line).map(State::Records),
                State::Records(body) if line.starts_with(TRAILER_PREFIX) => {
                    trailer(body, n, line).map(State::Finished)
                }
                State::Records(body) => record(body, n, line).map(State::Records),
                State::Finished(_) => Err(ExportError {
                    line: n,
                    kind: ExportErrorKind::AfterTrailer,
                }),
                State::Failed(e) => Err(e),
            }
        };
        match result {
            Ok(state) => {
                self.state = state;
                Ok(())
            }
            Err(e) => {
                self.state = State::Failed(e.clone());
                Err(e)
            }
        }
    }

    /// Ends the export and returns what it proved.
    ///
    /// # Errors
    /// The error of an earlier line, or [`ExportErrorKind::MissingHeader`] /
    /// [`ExportErrorKind::MissingTrailer`] when the export stops early.
    pub fn finish(self) -> Result<ExportReport, ExportError> {
        let line = self.lines + 1;
        match self.state {
            State::Finished(report) => Ok(report),
            State::Failed(e) => Err(e),
            State::AwaitingHeader => Err(ExportError {
                line,
                kind: ExportErrorKind::MissingHeader,
            }),
            State::Records(mut body) => Err(body.fail(line, ExportErrorKind::MissingTrailer)),
        }
    }

    fn header(&self, n: u64, line: &str) -> Result<Box<Body>, ExportError> {
        let fail = |kind| ExportError { line: n, kind };
        let header: ExportHeader = crate::json::from_str(line)
            .map_err(|e| fail(ExportErrorKind::MalformedHeader(e.to_string())))?;
        let head = header.verify(&self.trusted).map_err(fail)?;
        let chain = (head.from_seq == 0)
            .then(|| ChainVerifier::new(head.tenant.clone(), head.ring.clone()));
        Ok(Box::new(Body { head, chain }))
    }
}

fn record(mut body: Box<Body>, n: u64, line: &str) -> Result<Box<Body>, ExportError> {
    let record = match Record::from_json(line) {
        Ok(record) => record,
        Err(e) => return Err(body.fail(n, ExportErrorKind::MalformedRecord(e.to_string()))),
    };
    let size = body.head.checkpoint.size();
    if record.seq.get() >= size.get() {
        let seq = record.seq.get();
        return Err(body.fail(n, ExportErrorKind::BeyondCheckpoint { seq, size }));
    }
    let chain = body.chain.get_or_insert_with(|| {
        // Only an export from a later sequence gets here: the first record's own link and time
        // are taken on trust, and the trailer's inclusion proof ties the chain to the log.
        let anchor = ChainAnchor {
            next_seq: body.head.from_seq,
            ..ChainAnchor::assumed_for(&record)
        };
        ChainVerifier::from_anchor(body.head.tenant.clone(), body.head.ring.clone(), anchor)
    });
    match chain.push(&record) {
        Ok(()) => Ok(body),
        Err(e) => Err(body.chain_error(e)),
    }
}

fn trailer(mut body: Box<Body>, n: u64, line: &str) -> Result<ExportReport, ExportError> {
    let trailer = match ExportTrailer::from_line(line) {
        Ok(t) => t,
        Err(e) => return Err(body.fail(n, ExportErrorKind::MalformedTrailer(e.to_string()))),
    };
    let summary: Option<ChainSummary> = match body.chain.take().map(ChainVerifier::finish) {
        None => None,
        Some(Ok(summary)) => Some(summary),
        Some(Err(e)) => return Err(body.chain_error(e)),
    };
    let read = RecordsRead {
        records: summary.as_ref().map_or(0, ChainSummary::records),
        last: summary
            .as_ref()
            .filter(|s| s.records() > 0)
            .map(|s| (s.size().get() - 1, s.last_hash())),
        last_captured: summary
            .as_ref()
            .filter(|s| s.records() > 0)
            .and_then(|s| s.end().not_before),
        root: summary.as_ref().and_then(ChainSummary::root),
    };
    body.head
        .check_trailer(&trailer, read)
        .map_err(|kind| ExportError { line: n, kind })
}

#[cfg(test)]
mod line_tests {
    use super::*;

    #[test]
    fn a_line_with_a_carriage_return_or_tab_has_a_second_written_form_and_is_refused() {
        assert_eq!(check_line_bytes(b"{\"a\": 1}"), Ok(()));
        assert_eq!(
            check_line_bytes(b"{\"a\":1}\r"),
            Err(ExportErrorKind::ControlCharacter {
                byte: b'\r',
                offset: 7
            })
        );
        assert_eq!(
            check_line_bytes(b"{\"a\":\t1}"),
            Err(ExportErrorKind::ControlCharacter {
                byte: b'\t',
                offset: 5
            })
        );
        let mut v = ExportVerifier::new(&[]);
        let e = v
            .push_line("{\"format\":\"auditex-export/v1\"}\r\n")
            .expect_err("refused");
        assert_eq!(e.line, 1);
        assert!(matches!(
            e.kind,
            ExportErrorKind::ControlCharacter { byte: b'\r', .. }
        ));
    }
}
