//! The subject access package (FORMAT.md section 12b): every record concerning one data subject,
//! each proven in one signed checkpoint, with the subject's personal data that is still held and
//! the marks of what was erased — the answer to an access request (GDPR Art. 15, PIPEDA).
//!
//! A package is JSON Lines: a header like an export's (with `subject_ref` in place of
//! `from_seq`), one line per record that is exactly a bundle entry ([`BundleEntry`]), and a
//! trailer counting them. [`PackageVerifier`] reads it a line at a time and checks each entry with
//! the bundle's [`EntryChecker`]; what makes an entry belong is that it concerns the subject: a
//! record whose payload `subject_ref` is the subject (its decisions, erasures, legal holds), or a
//! record linked (FORMAT.md section 7) to one of the subject's decisions earlier in the package.
//!
//! Like a bundle, a package proves that what it holds is in the log and unaltered; it cannot prove
//! that no record concerning the subject was left out (an export proves completeness).

use std::collections::HashSet;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::bundle::{BundleEntry, BundleError, EntryChecker};
use crate::keys::{KeyId, KeyInterval};
use crate::note::VerifierKey;
use crate::payload::linked_decisions;
use crate::record::{EventType, Record};
use crate::types::{EventId, Hash, TenantId, TreeSize};
use crate::verify::{EvidenceHead, EvidenceHeadError, verify_evidence_head};

/// The value of a package header's `format` field.
pub const PACKAGE_FORMAT: &str = "auditex-subject-package/v1";

/// Longest line a verifier reads, in bytes (without the newline). A line holds one record with
/// its erasable values and its inclusion proof; the record and its values arrive in one request,
/// of at most 8 MiB, and their line adds the proof and the record's own fields to them. Twice
/// the largest request leaves room for any record the service accepts (a record whose value
/// nearly fills its request gives a line a little longer than that request).
pub const PACKAGE_LINE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Longest `subject_ref`, in bytes (the payload limit of a string, FORMAT.md section 7).
pub const SUBJECT_REF_BYTES_MAX: usize = 1024;

/// The `format` field of a package header: serializes as [`PACKAGE_FORMAT`] and parses only
/// from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PackageFormat;

impl Serialize for PackageFormat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(PACKAGE_FORMAT)
    }
}

impl<'de> Deserialize<'de> for PackageFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if text == PACKAGE_FORMAT {
            Ok(PackageFormat)
        } else {
            Err(serde::de::Error::custom(format!(
                "unsupported format {:?}; expected {PACKAGE_FORMAT:?}",
                text.chars().take(80).collect::<String>()
            )))
        }
    }
}

/// The first line of a package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageHeader {
    /// Always [`PACKAGE_FORMAT`].
    pub format: PackageFormat,
    /// The tenant.
    pub tenant: TenantId,
    /// The tenant's log origin, `<service origin>/<tenant>`.
    pub origin: String,
    /// The data subject (a pseudonymous reference, as in decision payloads).
    pub subject_ref: String,
    /// The signed checkpoint note every inclusion proof is against.
    pub checkpoint: String,
    /// The tenant's full key history.
    pub keys: Vec<KeyInterval>,
    /// The C2SP verifier keys of the checkpoint-signing keys; listed for convenience only.
    pub verifier_keys: Vec<String>,
}

impl PackageHeader {
    /// The header as one line of compact JSON, newline included.
    ///
    /// # Panics
    /// Never in practice: every field serializes to JSON.
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).expect("a header always serializes to JSON");
        line.push('\n');
        line
    }
}

/// One entry as a line of compact JSON, newline included.
///
/// # Panics
/// Never in practice: every field serializes to JSON.
pub fn entry_line(entry: &BundleEntry) -> String {
    let mut line = serde_json::to_string(entry).expect("an entry always serializes to JSON");
    line.push('\n');
    line
}

/// The last line of a package: `{"end":{"records":N}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageTrailer {
    /// The count.
    pub end: PackageEnd,
}

/// The member of the trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageEnd {
    /// How many entry lines the package holds.
    pub records: u64,
}

impl PackageTrailer {
    /// The trailer as one line, newline included.
    ///
    /// # Panics
    /// Never in practice: a count serializes to JSON.
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).expect("a trailer always serializes to JSON");
        line.push('\n');
        line
    }
}

/// Why a package does not verify, and on which line (1-based; the header is line 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct PackageError {
    /// The line.
    pub line: u64,
    /// What is wrong there.
    pub kind: PackageErrorKind,
}

/// What is wrong with a package.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PackageErrorKind {
    /// The file holds no line at all.
    #[error("the package is empty: no header line")]
    Empty,
    /// The header is not exactly a package header.
    #[error("malformed package header: {0}")]
    MalformedHeader(String),
    /// The header's `subject_ref` is empty or too long.
    #[error("the header's subject_ref must be 1 to {SUBJECT_REF_BYTES_MAX} bytes")]
    BadSubjectRef,
    /// A line is not exactly an entry or the trailer.
    #[error("malformed entry: {0}")]
    MalformedEntry(String),
    /// A line is longer than [`PACKAGE_LINE_BYTES_MAX`].
    #[error("line is {bytes} bytes, more than the maximum {max}")]
    LineTooLong {
        /// Its length.
        bytes: usize,
        /// [`PACKAGE_LINE_BYTES_MAX`].
        max: usize,
    },
    /// A line holds a control character (lines end with `\n` alone, FORMAT.md section 1).
    #[error("control character 0x{byte:02x} at byte {offset}; lines end with \\n alone")]
    ControlCharacter {
        /// The byte.
        byte: u8,
        /// Its offset in the line.
        offset: usize,
    },
    /// The last line does not end with a newline.
    #[error("the line does not end with a newline")]
    NoFinalNewline,
    /// The checkpoint, key history or verifier keys do not check out.
    #[error(transparent)]
    Head(#[from] EvidenceHeadError),
    /// An entry fails a check that bundle entries pass too.
    #[error(transparent)]
    Entry(#[from] BundleError),
    /// An entry's record does not concern the package's subject.
    #[error(
        "record {seq} (event {event_id}, {event_type}) does not concern subject {subject_ref:?}: it is neither a record whose subject_ref is the subject nor linked to one of the subject's decisions earlier in the package"
    )]
    NotConcerning {
        /// The record's sequence number.
        seq: u64,
        /// Its event id.
        event_id: EventId,
        /// Its event type.
        event_type: EventType,
        /// The package's subject.
        subject_ref: String,
    },
    /// The package ends without the trailer line (it was cut short).
    #[error(
        "the package ends without its trailer line {{\"end\":{{\"records\":N}}}}: it is incomplete"
    )]
    MissingTrailer,
    /// The trailer's count is not the number of entries.
    #[error("the trailer counts {declared} records, but the package holds {found}")]
    CountMismatch {
        /// What the trailer says.
        declared: u64,
        /// Entry lines read.
        found: u64,
    },
    /// A line follows the trailer.
    #[error("a line follows the trailer")]
    AfterTrailer,
}

impl PackageErrorKind {
    /// The sequence number and event id of the record the failure is about, when there is one.
    pub fn record(&self) -> Option<(u64, Option<EventId>)> {
        match self {
            PackageErrorKind::NotConcerning { seq, event_id, .. } => Some((*seq, Some(*event_id))),
            PackageErrorKind::Entry(e) => bundle_error_record(e),
            _ => None,
        }
    }
}

/// The record a bundle-entry failure is about.
fn bundle_error_record(e: &BundleError) -> Option<(u64, Option<EventId>)> {
    use BundleError as B;
    match e {
        B::Record(r) => Some((r.seq(), Some(r.event_id()))),
        B::Inclusion(i) => Some((i.seq, Some(i.event_id))),
        B::WrongTenant { seq, event_id, .. }
        | B::OutOfOrder { seq, event_id, .. }
        | B::FirstNotADecision { seq, event_id, .. }
        | B::NotLinked { seq, event_id, .. } => Some((*seq, Some(*event_id))),
        B::ErasedByNonErasure {
            erasure_seq,
            event_id,
            ..
        }
        | B::ErasureDoesNotCover {
            erasure_seq,
            event_id,
            ..
        } => Some((*erasure_seq, Some(*event_id))),
        B::DecisionIdMismatch { seq, .. }
        | B::ProofTooLong { seq, .. }
        | B::TooManyErasableValues { seq, .. }
        | B::ErasableNotCommitted { seq, .. }
        | B::ErasableMismatch { seq, .. }
        | B::ErasedNotCommitted { seq, .. }
        | B::ErasedAndSupplied { seq, .. }
        | B::ErasureNotAfter { seq, .. } => Some((*seq, None)),
        _ => None,
    }
}

/// What a verified package proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageReport {
    /// The tenant.
    pub tenant: TenantId,
    /// The log origin.
    pub origin: String,
    /// The subject.
    pub subject_ref: String,
    /// The key history the package carries (a caller compares it with one it trusts).
    pub keys: Vec<KeyInterval>,
    /// The checkpoint's tree size.
    pub checkpoint_size: TreeSize,
    /// The checkpoint's root.
    pub checkpoint_root: Hash,
    /// The key that signed the checkpoint.
    pub checkpoint_key_id: KeyId,
    /// Entries verified.
    pub records: u64,
    /// Of which decisions of the subject.
    pub decisions: u64,
    /// Erasable values present that matched their commitments.
    pub values_verified: u64,
    /// Committed fields without a value and not marked erased (withheld).
    pub values_withheld: u64,
    /// Committed fields marked erased.
    pub fields_erased: u64,
    /// `erasure` records in the package.
    pub erasures: u64,
}

enum State {
    Header,
    Entries(Box<Body>),
    Done(Box<PackageReport>),
}

/// What is known once the header verified.
struct Body {
    head: EvidenceHead,
    checker: EntryChecker,
    report: PackageReport,
    /// The event ids of the subject's decisions read so far: a follow-up must name one. This is
    /// the verifier's only memory that grows with the package (16 bytes per decision).
    decisions: HashSet<EventId>,
}

/// Verifies a package one line at a time, in memory that does not grow with its records (beyond
/// the subject's decision ids).
pub struct PackageVerifier {
    trusted: Vec<VerifierKey>,
    line: u64,
    state: State,
}

impl std::fmt::Debug for PackageVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackageVerifier")
            .field("line", &self.line)
            .finish_non_exhaustive()
    }
}

/// Only to tell the trailer from an entry before parsing the line strictly.
#[derive(Deserialize)]
struct Probe {
    end: Option<serde::de::IgnoredAny>,
}

impl PackageVerifier {
    /// A verifier that trusts the checkpoint keys `trusted` (named like the package's origin).
    pub fn new(trusted: &[VerifierKey]) -> Self {
        PackageVerifier {
            trusted: trusted.to_vec(),
            line: 0,
            state: State::Header,
        }
    }

    /// Lines read so far.
    pub fn lines(&self) -> u64 {
        self.line
    }

    /// Checks the next line (without its newline).
    ///
    /// # Errors
    /// [`PackageError`] naming the line and the first failing check; the verifier must not be
    /// fed further lines then.
    pub fn push_line(&mut self, text: &str) -> Result<(), PackageError> {
        self.line += 1;
        let line = self.line;
        let fail = |kind: PackageErrorKind| PackageError { line, kind };
        if text.len() > PACKAGE_LINE_BYTES_MAX {
            return Err(fail(PackageErrorKind::LineTooLong {
                bytes: text.len(),
                max: PACKAGE_LINE_BYTES_MAX,
            }));
        }
        // FORMAT.md section 1: a line ends with \n alone and holds no other control character
        // (JSON would read a \r or a tab between members as white space).
        if let Some(offset) = text.bytes().position(|b| b < 0x20) {
            return Err(fail(PackageErrorKind::ControlCharacter {
                byte: text.as_bytes()[offset],
                offset,
            }));
        }
        match &mut self.state {
            State::Header => {
                let header: PackageHeader = crate::json::from_str(text)
                    .map_err(|e| fail(PackageErrorKind::MalformedHeader(e.to_string())))?;
                if header.subject_ref.is_empty() || header.subject_ref.len() > SUBJECT_REF_BYTES_MAX
                {
                    return Err(fail(PackageErrorKind::BadSubjectRef));
                }
                let head = verify_evidence_head(
                    &header.tenant,
                    &header.origin,
                    &header.checkpoint,
                    &header.keys,
                    &header.verifier_keys,
                    &self.trusted,
                )
                .map_err(|e| fail(e.into()))?;
                let report = PackageReport {
                    tenant: header.tenant.clone(),
                    origin: header.origin,
                    subject_ref: header.subject_ref,
                    keys: header.keys,
                    checkpoint_size: head.checkpoint.size(),
                    checkpoint_root: head.checkpoint.root(),
                    checkpoint_key_id: head.checkpoint_key_id,
                    records: 0,
                    decisions: 0,
                    values_verified: 0,
                    values_withheld: 0,
                    fields_erased: 0,
                    erasures: 0,
                };
                self.state = State::Entries(Box::new(Body {
                    head,
                    checker: EntryChecker::new(header.tenant),
                    report,
                    decisions: HashSet::new(),
                }));
                Ok(())
            }
            State::Entries(body) => {
                let probe: Probe = serde_json::from_str(text)
                    .map_err(|e| fail(PackageErrorKind::MalformedEntry(e.to_string())))?;
                if probe.end.is_some() {
                    let trailer: PackageTrailer = crate::json::from_str(text)
                        .map_err(|e| fail(PackageErrorKind::MalformedEntry(e.to_string())))?;
                    if trailer.end.records != body.report.records {
                        return Err(fail(PackageErrorKind::CountMismatch {
                            declared: trailer.end.records,
                            found: body.report.records,
                        }));
                    }
                    self.state = State::Done(Box::new(body.report.clone()));
                    return Ok(());
                }
                let entry: BundleEntry = crate::json::from_str(text)
                    .map_err(|e| fail(PackageErrorKind::MalformedEntry(e.to_string())))?;
                let Body {
                    head,
                    checker,
                    report,
                    decisions,
                } = &mut **body;
                let subject = report.subject_ref.as_str();
                // An erasure an earlier entry names passes as that erasure, not through
                // `concerns`: in a package it must still be one of the subject's, which is the
                // first thing said of one that is not.
                if entry.record.event_type == EventType::Erasure {
                    concerns(&entry.record, subject, decisions).map_err(fail)?;
                }
                let checked =
                    checker.check(&entry, head, |record| concerns(record, subject, decisions));
                let checked = checked.map_err(fail)?;
                report.records += 1;
                report.values_verified += checked.erasable_values_verified as u64;
                report.values_withheld += checked.erasable_values_absent as u64;
                report.fields_erased += checked.erasable_values_erased as u64;
                match checked.event_type {
                    EventType::Erasure => report.erasures += 1,
                    EventType::Decision => report.decisions += 1,
                    _ => {}
                }
                Ok(())
            }
            State::Done(_) => Err(fail(PackageErrorKind::AfterTrailer)),
        }
    }

    /// Ends the package.
    ///
    /// # Errors
    /// [`PackageErrorKind::Empty`] without a header, [`PackageErrorKind::MissingTrailer`] when
    /// the trailer was not read.
    pub fn finish(self) -> Result<PackageReport, PackageError> {
        let line = self.line;
        match self.state {
            State::Done(report) => Ok(*report),
            State::Header => Err(PackageError {
                line: 1,
                kind: PackageErrorKind::Empty,
            }),
            State::Entries(_) => Err(PackageError {
                line: line + 1,
                kind: PackageErrorKind::MissingTrailer,
            }),
        }
    }
}

/// Verifies a whole package held in memory (tests, small files).
///
/// # Errors
/// The first [`PackageError`].
pub fn verify_package(text: &str, trusted: &[VerifierKey]) -> Result<PackageReport, PackageError> {
    let mut verifier = PackageVerifier::new(trusted);
    // Split on \n alone, as the streaming readers do: a \r stays in its line (and is refused as
    // a control character), and a last line without its newline is refused.
    let mut lines = text.split_terminator('\n').peekable();
    while let Some(line) = lines.next() {
        if lines.peek().is_none() && !text.ends_with('\n') {
            return Err(PackageError {
                line: verifier.line + 1,
                kind: PackageErrorKind::NoFinalNewline,
            });
        }
        verifier.push_line(line)?;
    }
    verifier.finish()
}

/// Whether `record` concerns `subject`: its payload's `subject_ref` is the subject (a decision
/// of the subject — then remembered in `decisions` —, an erasure, a legal hold, any later kind
/// that names a subject), or it is a follow-up linked to one of the subject's `decisions`.
fn concerns(
    record: &Record,
    subject: &str,
    decisions: &mut HashSet<EventId>,
) -> Result<(), PackageErrorKind> {
    let payload = match record.payload.to_value() {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let concerns = if payload
        .get("subject_ref")
        .and_then(serde_json::Value::as_str)
        == Some(subject)
    {
        if record.event_type == EventType::Decision {
            decisions.insert(record.event_id);
        }
        true
    } else {
        record.event_type != EventType::Decision
            && linked_decisions(record.event_type, &payload)
                .iter()
                .any(|d| decisions.contains(d))
    };
    if concerns {
        Ok(())
    } else {
        Err(PackageErrorKind::NotConcerning {
            seq: record.seq.get(),
            event_id: record.event_id,
            event_type: record.event_type,
            subject_ref: subject.to_owned(),
        })
    }
}
